//! Phone numbers rented from FreJun. A number is unique across the platform (one tenant holds
//! it); every method on tenant data takes the tenant's id and filters by it.

use bson::{DateTime, doc};
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::PHONE_NUMBERS;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::{Storage, StorageError};
use crate::domain::ids::AssistantId;
use crate::domain::ids::PhoneNumberId;
use crate::domain::ids::TenantId;
use crate::domain::phone::Capabilities;
use crate::domain::phone::NumberStatus;

pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PhoneNumberRecord {
    #[serde(rename = "_id")]
    pub id: PhoneNumberId,
    /// E.164, normalised.
    pub phone_number: String,
    /// Always "frejun" today; kept so admins' queries written for the Convis data model work.
    pub provider: String,
    pub user_id: TenantId,
    pub assigned_assistant_id: Option<AssistantId>,
    pub status: NumberStatus,
    pub capabilities: Capabilities,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub schema_version: i32,
}

#[derive(Clone, Debug)]
pub(crate) struct PhoneNumbers {
    collection: Collection<PhoneNumberRecord>,
}

impl Storage {
    pub(crate) fn phone_numbers(&self) -> PhoneNumbers {
        PhoneNumbers {
            collection: self.collection(PHONE_NUMBERS),
        }
    }
}

impl PhoneNumbers {
    pub(crate) async fn get(
        &self,
        user_id: TenantId,
        id: PhoneNumberId,
    ) -> Result<PhoneNumberRecord, StorageError> {
        self.collection
            .find_one(doc! { "_id": id, "user_id": user_id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// The tenant's number `phone_number` (E.164), if it holds it.
    pub(crate) async fn find_by_number(
        &self,
        user_id: TenantId,
        phone_number: &str,
    ) -> Result<Option<PhoneNumberRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(doc! { "user_id": user_id, "phone_number": phone_number })
            .await?)
    }

    /// Whoever holds `phone_number`, across tenants. Only for routing FreJun's incoming calls,
    /// which name a number, not a tenant: the caller must check the owner against the tenant
    /// whose URL secret came with the request before acting on the record.
    pub(crate) async fn route(
        &self,
        phone_number: &str,
    ) -> Result<Option<PhoneNumberRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(doc! { "phone_number": phone_number })
            .await?)
    }

    pub(crate) async fn list(
        &self,
        user_id: TenantId,
        page: &PageRequest,
    ) -> Result<Page<PhoneNumberRecord>, StorageError> {
        fetch_page(
            &self.collection,
            doc! { "user_id": user_id },
            page,
            |number| Cursor {
                created_at: number.created_at,
                id: number.id.object_id(),
            },
        )
        .await
    }

    pub(crate) async fn set_status(
        &self,
        user_id: TenantId,
        id: PhoneNumberId,
        status: NumberStatus,
        now: DateTime,
    ) -> Result<PhoneNumberRecord, StorageError> {
        let status =
            bson::to_bson(&status).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        self.update(
            user_id,
            id,
            doc! { "$set": { "status": status, "updated_at": now } },
        )
        .await
    }

    /// Removes the number's assistant. (Assigning one is `Storage::assign_number`, which must
    /// check the assistant in the same transaction.)
    pub(crate) async fn unassign(
        &self,
        user_id: TenantId,
        id: PhoneNumberId,
        now: DateTime,
    ) -> Result<PhoneNumberRecord, StorageError> {
        self.update(
            user_id,
            id,
            doc! { "$set": { "assigned_assistant_id": null, "updated_at": now } },
        )
        .await
    }

    pub(crate) async fn delete(
        &self,
        user_id: TenantId,
        id: PhoneNumberId,
    ) -> Result<(), StorageError> {
        let result = self
            .collection
            .delete_one(doc! { "_id": id, "user_id": user_id })
            .await?;
        if result.deleted_count == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn update(
        &self,
        user_id: TenantId,
        id: PhoneNumberId,
        update: bson::Document,
    ) -> Result<PhoneNumberRecord, StorageError> {
        self.collection
            .find_one_and_update(doc! { "_id": id, "user_id": user_id }, update)
            .return_document(ReturnDocument::After)
            .await?
            .ok_or(StorageError::NotFound)
    }
}
