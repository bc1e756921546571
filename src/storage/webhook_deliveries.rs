//! Deliveries of events to tenants' webhook endpoints: one document per (event, endpoint),
//! with every attempt. Workers on every instance claim due deliveries with a lease (like
//! `call_slots`), so any instance delivers and a dead instance's claims simply expire.
//! Finished deliveries (delivered or given up) expire after the retention the TTL index holds.

use bson::{DateTime, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::WEBHOOK_DELIVERIES;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::{Storage, StorageError};
use crate::domain::ids::{CallId, TenantId, WebhookDeliveryId, WebhookEndpointId};
use crate::domain::webhook::EventType;

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeliveryStatus {
    /// Due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: a final answer, the retry schedule exhausted, or the endpoint gone.
    Failed,
}

/// One attempt, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    pub at: DateTime,
    pub status: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the endpoint's answer.
    pub response: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WebhookDeliveryRecord {
    #[serde(rename = "_id")]
    pub id: WebhookDeliveryId,
    /// `<event id>:<endpoint id>`, unique: handing the same event to the same endpoint twice
    /// is a no-op.
    pub key: String,
    pub event_id: String,
    pub event_type: EventType,
    pub user_id: TenantId,
    pub endpoint_id: WebhookEndpointId,
    pub call_id: Option<CallId>,
    /// The event's JSON body, exactly as every attempt sends (and signs) it.
    pub body: String,
    pub status: DeliveryStatus,
    pub next_attempt_at: DateTime,
    /// While an instance is attempting it; a claim past this time can be taken over.
    pub lease_until: Option<DateTime>,
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// When a finished delivery is removed (TTL); `None` while pending.
    pub expires_at: Option<DateTime>,
    pub created_at: DateTime,
}

#[derive(Clone, Debug)]
pub(crate) struct WebhookDeliveries {
    collection: Collection<WebhookDeliveryRecord>,
}

impl Storage {
    pub(crate) fn webhook_deliveries(&self) -> WebhookDeliveries {
        WebhookDeliveries {
            collection: self.collection(WEBHOOK_DELIVERIES),
        }
    }
}

impl WebhookDeliveries {
    /// Records the delivery unless it exists (a relay that crashed after writing it, before
    /// emptying the outbox, writes it again).
    pub(crate) async fn insert_once(
        &self,
        delivery: &WebhookDeliveryRecord,
    ) -> Result<(), StorageError> {
        match self
            .collection
            .insert_one(delivery)
            .await
            .map_err(StorageError::from)
        {
            Ok(_) | Err(StorageError::Conflict) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Takes the oldest due delivery for `lease` (until `lease_until`), if there is one.
    pub(crate) async fn claim_due(
        &self,
        now: DateTime,
        lease_until: DateTime,
    ) -> Result<Option<WebhookDeliveryRecord>, StorageError> {
        Ok(self
            .collection
            .find_one_and_update(
                doc! {
                    "status": "pending",
                    "next_attempt_at": { "$lte": now },
                    "$or": [ { "lease_until": null }, { "lease_until": { "$lte": now } } ],
                },
                doc! { "$set": { "lease_until": lease_until } },
            )
            .sort(doc! { "next_attempt_at": 1, "created_at": 1 })
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Records an attempt and what follows: pending again at `next` (`None`: finished, with
    /// `status`), releasing the claim.
    pub(crate) async fn record_attempt(
        &self,
        id: WebhookDeliveryId,
        attempt: &AttemptRecord,
        status: DeliveryStatus,
        next: Option<DateTime>,
        expires_at: Option<DateTime>,
    ) -> Result<(), StorageError> {
        let status =
            bson::to_bson(&status).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        let attempt =
            bson::to_bson(attempt).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        let mut set =
            doc! { "status": status, "lease_until": bson::Bson::Null, "expires_at": expires_at };
        if let Some(next) = next {
            set.insert("next_attempt_at", next);
        }
        self.collection
            .update_one(
                doc! { "_id": id },
                doc! { "$set": set, "$push": { "attempts": attempt } },
            )
            .await?;
        Ok(())
    }

    /// A page of the tenant's deliveries matching `filter`, newest first.
    pub(crate) async fn list(
        &self,
        user_id: TenantId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDeliveryRecord>, StorageError> {
        let mut query = doc! { "user_id": user_id };
        if let Some(kind) = filter.event_type {
            query.insert("event_type", kind.as_str());
        }
        if let Some(call_id) = filter.call_id {
            query.insert("call_id", call_id);
        }
        if let Some(status) = filter.status {
            query.insert(
                "status",
                bson::to_bson(&status).map_err(|err| StorageError::Unavailable(err.to_string()))?,
            );
        }
        fetch_page(&self.collection, query, page, |delivery| Cursor {
            created_at: delivery.created_at,
            id: delivery.id.object_id(),
        })
        .await
    }

    /// The deliveries of the tenant's event `event_id` (one per endpoint), oldest first.
    pub(crate) async fn for_event(
        &self,
        user_id: TenantId,
        event_id: &str,
    ) -> Result<Vec<WebhookDeliveryRecord>, StorageError> {
        Ok(self
            .collection
            .find(doc! { "user_id": user_id, "event_id": event_id })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await?
            .try_collect()
            .await?)
    }

    /// Makes every delivery of the tenant's event `event_id` due again now, whatever became of
    /// it (the attempts so far are kept). Answers how many there are.
    pub(crate) async fn redeliver(
        &self,
        user_id: TenantId,
        event_id: &str,
        now: DateTime,
    ) -> Result<u64, StorageError> {
        let result = self
            .collection
            .update_many(
                doc! { "user_id": user_id, "event_id": event_id },
                doc! { "$set": {
                    "status": "pending",
                    "next_attempt_at": now,
                    "lease_until": bson::Bson::Null,
                    "expires_at": bson::Bson::Null,
                } },
            )
            .await?;
        Ok(result.matched_count)
    }
}

/// Which deliveries a list asks for; every condition is optional.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryFilter {
    pub event_type: Option<EventType>,
    pub call_id: Option<CallId>,
    pub status: Option<DeliveryStatus>,
}
