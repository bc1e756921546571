//! Concurrency slots: how many calls a tenant has live, counted atomically in MongoDB so that
//! any number of instances together never admit more than `max_concurrent_calls`.
//!
//! Each tenant has one document in `call_slots`: `{_id: user_id, calls: [{call_id,
//! expires_at}]}`. Taking a slot is a single-document update that appends the call only if the
//! tenant holds fewer unexpired entries than its limit, so the check and the write cannot be
//! split by another instance. Every entry is a lease: it is extended while the call is alive
//! and expires if the holder disappears (an instance that crashed, a media stream that never
//! arrived), which is why a crashed instance cannot leak capacity. Expired entries no longer
//! count against the limit at once; the reaper (`calls::reaper`) closes their call logs and
//! removes them. Taking and releasing are idempotent, so a retried request cannot take two
//! slots or free someone else's.

use std::collections::HashSet;

use bson::{DateTime, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::CALL_SLOTS;
use super::{Storage, StorageError};
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;

/// One held slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotLease {
    pub call_id: CallId,
    pub expires_at: DateTime,
}

/// A tenant's document with only its calls' ids, as [`CallSlots::extend_many`] reads it.
#[derive(Debug, Deserialize)]
struct HeldCallIds {
    #[serde(rename = "_id")]
    user_id: TenantId,
    #[serde(default)]
    calls: Vec<HeldCallId>,
}

#[derive(Debug, Deserialize)]
struct HeldCallId {
    call_id: CallId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenantSlots {
    #[serde(rename = "_id")]
    user_id: TenantId,
    calls: Vec<SlotLease>,
}

/// A slot whose lease ran out, found by [`CallSlots::expired`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpiredSlot {
    pub user_id: TenantId,
    pub lease: SlotLease,
}

/// Each tenant of `calls` once.
pub(crate) fn distinct_tenants(calls: &[(TenantId, CallId)]) -> Vec<TenantId> {
    calls
        .iter()
        .map(|(user_id, _)| *user_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

#[derive(Clone, Debug)]
pub struct CallSlots {
    collection: Collection<Document>,
}

impl Storage {
    pub fn call_slots(&self) -> CallSlots {
        CallSlots {
            collection: self.collection(CALL_SLOTS),
        }
    }
}

impl CallSlots {
    /// Takes a slot for `call_id` if the tenant holds fewer than `max` unexpired slots at `now`;
    /// the lease lasts until `lease_until`. Returns whether the call holds a slot afterwards
    /// (taking again for a call that already holds one extends it and answers `true`).
    pub(crate) async fn take(
        &self,
        user_id: TenantId,
        call_id: CallId,
        max: u32,
        now: DateTime,
        lease_until: DateTime,
    ) -> Result<bool, StorageError> {
        let live = doc! { "$filter": {
            "input": "$calls",
            "cond": { "$gt": ["$$this.expires_at", now] },
        } };
        let entry = doc! { "call_id": call_id, "expires_at": lease_until };
        // One pipeline update: MongoDB evaluates the count and the append on the same document
        // version, so two instances cannot both take the last slot.
        let pipeline = vec![
            doc! { "$set": { "calls": { "$ifNull": ["$calls", []] } } },
            doc! { "$set": { "calls": { "$cond": {
                "if": { "$in": [call_id, "$calls.call_id"] },
                // Already held: extend the lease.
                "then": { "$map": {
                    "input": "$calls",
                    "in": { "$cond": {
                        "if": { "$eq": ["$$this.call_id", call_id] },
                        "then": entry.clone(),
                        "else": "$$this",
                    } },
                } },
                "else": { "$cond": {
                    "if": { "$lt": [{ "$size": live }, i64::from(max)] },
                    "then": { "$concatArrays": ["$calls", [entry]] },
                    "else": "$calls",
                } },
            } } } },
            doc! { "$set": { "updated_at": now } },
        ];
        let mut attempt = 0;
        let slots = loop {
            let result = self
                .collection
                .find_one_and_update(doc! { "_id": user_id }, pipeline.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await;
            match result.map_err(StorageError::from) {
                // Two first-ever takes for a tenant may race to insert its document; the loser
                // retries against the winner's.
                Err(StorageError::Conflict) if attempt < 2 => attempt += 1,
                other => break other?,
            }
        };
        let held = slots
            .and_then(|document| bson::from_document::<TenantSlots>(document).ok())
            .is_some_and(|slots| slots.calls.iter().any(|lease| lease.call_id == call_id));
        Ok(held)
    }

    /// Moves the leases of many calls' slots, across tenants, to `lease_until`, and answers
    /// which of them hold a slot afterwards (the others were released, or removed by the
    /// reaper after they expired, and are not taken again here). Two commands whatever the
    /// number of calls: an update of the tenants' documents, then a read of their call ids.
    pub(crate) async fn extend_many(
        &self,
        calls: &[(TenantId, CallId)],
        lease_until: DateTime,
    ) -> Result<HashSet<CallId>, StorageError> {
        if calls.is_empty() {
            return Ok(HashSet::new());
        }
        let tenants = distinct_tenants(calls);
        // Call ids are unique across tenants, so a tenant's document holds only its own.
        let call_ids: Vec<CallId> = calls.iter().map(|(_, call_id)| *call_id).collect();
        self.collection
            .update_many(
                doc! { "_id": { "$in": &tenants } },
                doc! { "$set": { "calls.$[held].expires_at": lease_until } },
            )
            .array_filters([doc! { "held.call_id": { "$in": &call_ids } }])
            .await?;
        let mut cursor = self
            .collection
            .find(doc! { "_id": { "$in": &tenants } })
            .projection(doc! { "calls.call_id": 1 })
            .await?;
        let wanted: HashSet<(TenantId, CallId)> = calls.iter().copied().collect();
        let mut holding = HashSet::with_capacity(calls.len());
        while let Some(document) = cursor.try_next().await? {
            let Ok(slots) = bson::from_document::<HeldCallIds>(document) else {
                continue;
            };
            holding.extend(
                slots
                    .calls
                    .into_iter()
                    .map(|held| held.call_id)
                    // A tenant's document answers for its own calls only.
                    .filter(|call_id| wanted.contains(&(slots.user_id, *call_id))),
            );
        }
        Ok(holding)
    }

    /// Frees the call's slot. Releasing a slot that is not held is a no-op.
    pub async fn release(&self, user_id: TenantId, call_id: CallId) -> Result<(), StorageError> {
        self.collection
            .update_one(
                doc! { "_id": user_id },
                doc! { "$pull": { "calls": { "call_id": call_id } } },
            )
            .await?;
        Ok(())
    }

    /// Removes an expired lease, but only if it was not extended since it was read: a call that
    /// came back to life keeps its slot. Returns whether it was removed.
    pub(crate) async fn remove_expired(&self, slot: &ExpiredSlot) -> Result<bool, StorageError> {
        let result = self
            .collection
            .update_one(
                doc! { "_id": slot.user_id },
                doc! { "$pull": { "calls": {
                    "call_id": slot.lease.call_id,
                    "expires_at": slot.lease.expires_at,
                } } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// The slots a tenant holds, expired or not.
    pub async fn held(&self, user_id: TenantId) -> Result<Vec<SlotLease>, StorageError> {
        let document = self.collection.find_one(doc! { "_id": user_id }).await?;
        Ok(document
            .and_then(|document| bson::from_document::<TenantSlots>(document).ok())
            .map(|slots| slots.calls)
            .unwrap_or_default())
    }

    /// Up to `limit` leases that expired before `now`, across tenants.
    pub(crate) async fn expired(
        &self,
        now: DateTime,
        limit: usize,
    ) -> Result<Vec<ExpiredSlot>, StorageError> {
        let mut cursor = self
            .collection
            .find(doc! { "calls.expires_at": { "$lt": now } })
            .await?;
        let mut expired = Vec::new();
        while let Some(document) = cursor.try_next().await? {
            let Ok(slots) = bson::from_document::<TenantSlots>(document) else {
                continue;
            };
            for lease in slots.calls {
                if lease.expires_at < now {
                    expired.push(ExpiredSlot {
                        user_id: slots.user_id,
                        lease,
                    });
                    if expired.len() >= limit {
                        return Ok(expired);
                    }
                }
            }
        }
        Ok(expired)
    }
}
