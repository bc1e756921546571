//! What a live call adds to its call log while it runs: transcript turns, usage, cost and
//! metrics, written in batches by the bridge's call-log keeper.
//!
//! Every write is idempotent, because the keeper retries a write whose outcome it did not learn
//! (a timeout after MongoDB applied it): turns are pushed only if the transcript does not yet
//! hold an entry at the batch's first index, and everything else is `$set` to the call's running
//! totals.

use bson::{DateTime, doc};

use super::StorageError;
use super::call_logs::{CallLogRecord, CallLogs};
use super::error::to_bson;
use crate::domain::call::record::CallProgress;
use crate::domain::cluster::CallOwner;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;

impl CallLogs {
    /// A call by id alone, for the media stream: its signed token, not a tenant's key, is what
    /// authorises the read, and the record names the tenant every later access uses.
    pub(crate) async fn get_for_media_stream(
        &self,
        id: CallId,
    ) -> Result<CallLogRecord, StorageError> {
        self.collection()
            .find_one(doc! { "_id": id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Claims the tenant's call `id` for a media stream bridged by `owner`: one conditional
    /// update, which only the first claim wins, whichever instance makes it. Answers whether
    /// this claim won.
    pub(crate) async fn claim_media_stream(
        &self,
        user_id: TenantId,
        id: CallId,
        owner: &CallOwner,
    ) -> Result<bool, StorageError> {
        let owner_document = to_bson(owner)?;
        let result = self
            .collection()
            .update_one(
                doc! { "_id": id, "user_id": user_id, "media_stream_claimed_at": null },
                doc! { "$set": {
                    "media_stream_claimed_at": owner.started_at,
                    "owner": owner_document,
                    "updated_at": owner.started_at,
                } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Writes one batch of the tenant's call `id` (see the module docs for why retrying is safe).
    pub async fn record_progress(
        &self,
        user_id: TenantId,
        id: CallId,
        progress: &CallProgress,
        now: DateTime,
    ) -> Result<(), StorageError> {
        let mut set = doc! { "updated_at": now };
        for index in &progress.interrupted_turns {
            set.insert(format!("transcript.{index}.interrupted"), true);
        }
        if let Some(usage) = &progress.usage {
            set.insert("usage", to_bson(usage)?);
        }
        if let Some(cost) = progress.cost_usd {
            set.insert("cost_usd", cost);
        }
        if let Some(metrics) = &progress.metrics {
            set.insert("metrics", to_bson(metrics)?);
        }
        if !progress.new_turns.is_empty() {
            let turns = to_bson(&progress.new_turns)?;
            let next_slot = format!("transcript.{}", progress.first_turn_index);
            let unwritten = doc! { "_id": id, "user_id": user_id, next_slot: { "$exists": false } };
            let push = doc! { "transcript": { "$each": turns } };
            if progress.interrupted_turns.is_empty() {
                // One write for the batch. When the turns are there already (a retry of a
                // write MongoDB applied), the filter misses and the rest goes alone below.
                if self
                    .update_where(unwritten, doc! { "$push": push, "$set": set.clone() })
                    .await?
                {
                    return Ok(());
                }
            } else {
                // Flags on earlier turns and new turns touch one array: MongoDB takes them
                // only in separate updates.
                self.update_where(unwritten, doc! { "$push": push }).await?;
            }
        }
        let found = self
            .update_where(doc! { "_id": id, "user_id": user_id }, doc! { "$set": set })
            .await?;
        if found {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }
}
