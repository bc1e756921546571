//! Tenants' webhook endpoints. Every method takes the tenant's id and filters by it. The
//! signing secret (and, during a rotation's overlap, the previous one) is stored encrypted,
//! bound to the tenant and the endpoint; no view shows it after creation.

use bson::{DateTime, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::WEBHOOK_ENDPOINTS;
use super::error::to_bson;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::users::StoredCredential;
use super::{Storage, StorageError};
use crate::crypto::{Keyring, webhook_endpoint_context};
use crate::domain::ids::{TenantId, WebhookEndpointId};
use crate::domain::webhook::EndpointSpec;

/// Version of the document layout; bump with a migration when it changes.
pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WebhookEndpointRecord {
    #[serde(rename = "_id")]
    pub id: WebhookEndpointId,
    pub user_id: TenantId,
    #[serde(flatten)]
    pub spec: EndpointSpec,
    /// The `whsec_…` secret, encrypted.
    pub secret: StoredCredential,
    /// After a rotation, the secret it replaced: deliveries carry both signatures until
    /// `previous_secret_expires_at`.
    #[serde(default)]
    pub previous_secret: Option<StoredCredential>,
    #[serde(default)]
    pub previous_secret_expires_at: Option<DateTime>,
    /// Why voxbridge disabled the endpoint (a 410, or failing for too long); cleared when the
    /// tenant enables it again.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Since when every attempt to this endpoint has failed; `None` after a success.
    #[serde(default)]
    pub failing_since: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub schema_version: i32,
}

#[derive(Clone, Debug)]
pub(crate) struct WebhookEndpoints {
    collection: Collection<WebhookEndpointRecord>,
}

impl Storage {
    pub(crate) fn webhook_endpoints(&self) -> WebhookEndpoints {
        WebhookEndpoints {
            collection: self.collection(WEBHOOK_ENDPOINTS),
        }
    }
}

impl WebhookEndpoints {
    pub(crate) async fn insert(
        &self,
        endpoint: &WebhookEndpointRecord,
    ) -> Result<(), StorageError> {
        self.collection.insert_one(endpoint).await?;
        Ok(())
    }

    pub(crate) async fn get(
        &self,
        user_id: TenantId,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpointRecord, StorageError> {
        self.collection
            .find_one(doc! { "_id": id, "user_id": user_id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    pub(crate) async fn list(
        &self,
        user_id: TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpointRecord>, StorageError> {
        fetch_page(
            &self.collection,
            doc! { "user_id": user_id },
            page,
            |endpoint| Cursor {
                created_at: endpoint.created_at,
                id: endpoint.id.object_id(),
            },
        )
        .await
    }

    /// Every enabled endpoint of the tenant (an event is handed to those that want it).
    pub(crate) async fn enabled(
        &self,
        user_id: TenantId,
    ) -> Result<Vec<WebhookEndpointRecord>, StorageError> {
        Ok(self
            .collection
            .find(doc! { "user_id": user_id, "enabled": true })
            .await?
            .try_collect()
            .await?)
    }

    /// Records how an attempt went: a success clears `failing_since`, a failure sets it if it
    /// is not set. Answers the endpoint as stored afterwards.
    pub(crate) async fn record_outcome(
        &self,
        user_id: TenantId,
        id: WebhookEndpointId,
        delivered: bool,
        now: DateTime,
    ) -> Result<Option<WebhookEndpointRecord>, StorageError> {
        let (filter, update) = if delivered {
            (
                doc! { "_id": id, "user_id": user_id },
                doc! { "$set": { "failing_since": bson::Bson::Null } },
            )
        } else {
            (
                doc! { "_id": id, "user_id": user_id, "failing_since": null },
                doc! { "$set": { "failing_since": now } },
            )
        };
        self.collection.update_one(filter, update).await?;
        Ok(self
            .collection
            .find_one(doc! { "_id": id, "user_id": user_id })
            .await?)
    }

    /// Disables the endpoint, saying why (it answered 410, or it kept failing).
    pub(crate) async fn disable(
        &self,
        user_id: TenantId,
        id: WebhookEndpointId,
        reason: &str,
        now: DateTime,
    ) -> Result<(), StorageError> {
        self.collection
            .update_one(
                doc! { "_id": id, "user_id": user_id },
                doc! { "$set": { "enabled": false, "disabled_reason": reason, "updated_at": now } },
            )
            .await?;
        Ok(())
    }

    /// Replaces the configuration (merged and validated by the caller). Enabling an endpoint
    /// clears why it was disabled, and its failure streak.
    pub(crate) async fn replace_spec(
        &self,
        user_id: TenantId,
        id: WebhookEndpointId,
        spec: &EndpointSpec,
        now: DateTime,
    ) -> Result<WebhookEndpointRecord, StorageError> {
        let mut set =
            bson::to_document(spec).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        set.insert("updated_at", now);
        if spec.enabled {
            set.insert("disabled_reason", bson::Bson::Null);
            set.insert("failing_since", bson::Bson::Null);
        }
        self.collection
            .find_one_and_update(doc! { "_id": id, "user_id": user_id }, doc! { "$set": set })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or(StorageError::NotFound)
    }

    pub(crate) async fn delete(
        &self,
        user_id: TenantId,
        id: WebhookEndpointId,
    ) -> Result<(), StorageError> {
        let result = self
            .collection
            .delete_one(doc! { "_id": id, "user_id": user_id })
            .await?;
        if result.deleted_count == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// Replaces the signing secret, keeping the current one as the previous one until
    /// `previous_until`. Conditional on the secret read, so two rotations at once cannot both
    /// win (the loser gets `Conflict`).
    pub(crate) async fn rotate_secret(
        &self,
        endpoint: &WebhookEndpointRecord,
        fresh: &StoredCredential,
        previous_until: DateTime,
        now: DateTime,
    ) -> Result<WebhookEndpointRecord, StorageError> {
        let current = to_bson(&endpoint.secret)?;
        self.collection
            .find_one_and_update(
                doc! { "_id": endpoint.id, "user_id": endpoint.user_id, "secret": current.clone() },
                doc! { "$set": {
                    "secret": to_bson(fresh)?,
                    "previous_secret": current,
                    "previous_secret_expires_at": previous_until,
                    "updated_at": now,
                } },
            )
            .return_document(ReturnDocument::After)
            .await?
            .ok_or(StorageError::Conflict)
    }

    /// Re-encrypts every endpoint secret not under the keyring's current key (master-key
    /// rotation). Answers (re-encrypted, already current).
    pub(crate) async fn rotate_master_key(
        &self,
        keyring: &Keyring,
    ) -> Result<(u64, u64), StorageError> {
        let (mut reencrypted, mut current) = (0, 0);
        let mut cursor = self.collection.find(doc! {}).await?;
        while let Some(endpoint) = cursor.try_next().await? {
            let context = webhook_endpoint_context(endpoint.user_id, endpoint.id);
            let mut set = doc! {};
            for (field, stored) in [
                ("secret", Some(&endpoint.secret)),
                ("previous_secret", endpoint.previous_secret.as_ref()),
            ] {
                let Some(stored) = stored else { continue };
                let encrypted = stored.encrypted();
                if keyring.is_current(&encrypted) {
                    current += 1;
                    continue;
                }
                let fresh = keyring.reencrypt(&encrypted, &context).map_err(|err| {
                    StorageError::Unavailable(format!(
                        "webhook endpoint {}: a secret does not decrypt: {err}",
                        endpoint.id
                    ))
                })?;
                let fresh = StoredCredential::new(fresh, stored.last4.clone(), stored.updated_at);
                set.insert(field, to_bson(&fresh)?);
                reencrypted += 1;
            }
            if !set.is_empty() {
                self.collection
                    .update_one(doc! { "_id": endpoint.id }, doc! { "$set": set })
                    .await?;
            }
        }
        Ok((reencrypted, current))
    }
}
