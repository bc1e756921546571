//! Tenants' assistants. Every method takes the tenant's id and filters by it. Deleting one is
//! `Storage::delete_assistant` (in `assignments`), which checks assigned numbers in the same
//! transaction.

use std::collections::HashMap;

use bson::{DateTime, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::ASSISTANTS;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::{Storage, StorageError};
use crate::domain::assistant::AssistantSpec;
use crate::domain::ids::AssistantId;
use crate::domain::ids::TenantId;
use crate::domain::model_retirement::ModelKind;

pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AssistantRecord {
    #[serde(rename = "_id")]
    pub id: AssistantId,
    pub user_id: TenantId,
    /// The configuration's fields sit at the top level of the document (as the data model and
    /// admins' queries expect), not under a sub-document.
    #[serde(flatten)]
    pub spec: AssistantSpec,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub schema_version: i32,
}

#[derive(Clone, Debug)]
pub(crate) struct Assistants {
    collection: Collection<AssistantRecord>,
}

impl Storage {
    pub(crate) fn assistants(&self) -> Assistants {
        Assistants {
            collection: self.collection(ASSISTANTS),
        }
    }
}

impl Assistants {
    pub(crate) async fn insert(&self, assistant: &AssistantRecord) -> Result<(), StorageError> {
        self.collection.insert_one(assistant).await?;
        Ok(())
    }

    pub(crate) async fn get(
        &self,
        user_id: TenantId,
        id: AssistantId,
    ) -> Result<AssistantRecord, StorageError> {
        self.find(user_id, id).await?.ok_or(StorageError::NotFound)
    }

    /// The tenant's assistant `id`, or `None` when there is no such assistant (for callers to
    /// whom a missing assistant is an error of their own).
    pub(crate) async fn find(
        &self,
        user_id: TenantId,
        id: AssistantId,
    ) -> Result<Option<AssistantRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(doc! { "_id": id, "user_id": user_id })
            .await?)
    }

    pub(crate) async fn list(
        &self,
        user_id: TenantId,
        page: &PageRequest,
    ) -> Result<Page<AssistantRecord>, StorageError> {
        fetch_page(
            &self.collection,
            doc! { "user_id": user_id },
            page,
            |assistant| Cursor {
                created_at: assistant.created_at,
                id: assistant.id.object_id(),
            },
        )
        .await
    }

    /// Replaces the configuration (the caller has merged and validated it).
    pub(crate) async fn replace_spec(
        &self,
        user_id: TenantId,
        id: AssistantId,
        spec: &AssistantSpec,
        now: DateTime,
    ) -> Result<AssistantRecord, StorageError> {
        let mut set =
            bson::to_document(spec).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        set.insert("updated_at", now);
        self.collection
            .find_one_and_update(doc! { "_id": id, "user_id": user_id }, doc! { "$set": set })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Platform-wide, for the operator: how many assistants name each of `models` as their
    /// model of `kind` (models no assistant names are left out).
    pub(crate) async fn count_naming(
        &self,
        kind: ModelKind,
        models: &[&str],
    ) -> Result<HashMap<String, u64>, StorageError> {
        let field = kind.field();
        let pipeline = [
            doc! { "$match": { field: { "$in": models } } },
            doc! { "$group": { "_id": format!("${field}"), "assistants": { "$sum": 1 } } },
        ];
        let mut counts = HashMap::new();
        let mut cursor = self.collection.aggregate(pipeline).await?;
        while let Some(row) = cursor.try_next().await? {
            if let (Ok(model), Some(count)) = (row.get_str("_id"), as_count(&row)) {
                counts.insert(model.to_owned(), count);
            }
        }
        Ok(counts)
    }

    /// Platform-wide, for the operator: every assistant whose model of `kind` is `from` gets
    /// `to` instead. Answers how many changed.
    pub(crate) async fn replace_model(
        &self,
        kind: ModelKind,
        from: &str,
        to: &str,
        now: DateTime,
    ) -> Result<u64, StorageError> {
        let field = kind.field();
        let result = self
            .collection
            .update_many(
                doc! { field: from },
                doc! { "$set": { field: to, "updated_at": now } },
            )
            .await?;
        Ok(result.modified_count)
    }
}

fn as_count(row: &bson::Document) -> Option<u64> {
    match row.get("assistants")? {
        bson::Bson::Int32(n) => u64::try_from(*n).ok(),
        bson::Bson::Int64(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}
