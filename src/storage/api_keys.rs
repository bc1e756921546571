//! Tenants' API keys: only a SHA-256 hash of each secret is stored.

use std::time::Duration;

use bson::{DateTime, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::API_KEYS;
use super::{Storage, StorageError};
use crate::domain::ids::ApiKeyId;
use crate::domain::ids::TenantId;

pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    #[serde(rename = "_id")]
    pub id: ApiKeyId,
    pub user_id: TenantId,
    /// The visible start of the key (e.g. `vxb_3f9a1c2e`), so tenants can tell keys apart.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub key_hash: String,
    pub name: String,
    pub created_at: DateTime,
    pub last_used_at: Option<DateTime>,
    pub revoked_at: Option<DateTime>,
    pub schema_version: i32,
}

#[derive(Clone, Debug)]
pub(crate) struct ApiKeys {
    collection: Collection<ApiKeyRecord>,
}

impl Storage {
    pub(crate) fn api_keys(&self) -> ApiKeys {
        ApiKeys {
            collection: self.collection(API_KEYS),
        }
    }
}

impl ApiKeys {
    pub(crate) async fn insert(&self, key: &ApiKeyRecord) -> Result<(), StorageError> {
        self.collection.insert_one(key).await?;
        Ok(())
    }

    /// The key with this hash, revoked or not (the caller tells the two apart).
    pub(crate) async fn find_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(doc! { "key_hash": key_hash })
            .await?)
    }

    /// All of a tenant's keys, newest first.
    pub(crate) async fn list(&self, user_id: TenantId) -> Result<Vec<ApiKeyRecord>, StorageError> {
        Ok(self
            .collection
            .find(doc! { "user_id": user_id })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Revokes one of the tenant's keys. Revoking twice keeps the first revocation time; a key
    /// of another tenant is `NotFound`.
    pub(crate) async fn revoke(
        &self,
        user_id: TenantId,
        key_id: ApiKeyId,
        now: DateTime,
    ) -> Result<ApiKeyRecord, StorageError> {
        let revoked = self
            .collection
            .find_one_and_update(
                doc! { "_id": key_id, "user_id": user_id, "revoked_at": null },
                doc! { "$set": { "revoked_at": now } },
            )
            .return_document(ReturnDocument::After)
            .await?;
        match revoked {
            Some(key) => Ok(key),
            None => self
                .collection
                .find_one(doc! { "_id": key_id, "user_id": user_id })
                .await?
                .ok_or(StorageError::NotFound),
        }
    }

    /// Records use, unless it was recorded less than `min_interval` ago (by any instance).
    pub(crate) async fn touch(
        &self,
        key_id: ApiKeyId,
        now: DateTime,
        min_interval: Duration,
    ) -> Result<(), StorageError> {
        let stale_before =
            DateTime::from_millis(now.timestamp_millis() - min_interval.as_millis() as i64);
        self.collection
            .update_one(
                doc! {
                    "_id": key_id,
                    "$or": [{ "last_used_at": null }, { "last_used_at": { "$lt": stale_before } }],
                },
                doc! { "$set": { "last_used_at": now } },
            )
            .await?;
        Ok(())
    }
}
