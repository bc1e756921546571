//! What a live call adds to its call log while it runs: transcript turns, usage, cost and
//! metrics, written in batches by the bridge's call-log keeper.
//!
//! Every write is idempotent, because the keeper retries a write whose outcome it did not learn
//! (a timeout after MongoDB applied it): turns are pushed only if the transcript does not yet
//! hold an entry at the batch's first index, and everything else is `$set` to the call's running
//! totals.
//!
//! The batches of many calls can also go in one `update` command
//! ([`CallLogs::record_progress_of_calls`]): the bridge's progress writer gathers them, so an
//! instance makes a few writes a second however many calls it bridges, instead of one per call
//! per flush.

use bson::{DateTime, Document, doc};

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
        let set = progress_totals(progress, now)?;
        if !progress.new_turns.is_empty() {
            let (unwritten, push) = turns_push(user_id, id, progress)?;
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

    /// Writes the batches of several calls in one `update` command, each as the single update
    /// [`Self::record_progress`] would try first. Answers `true` when every one of them found
    /// its call log and was acknowledged (the common case: all written). `false` means that
    /// cannot be said of every batch, and MongoDB does not say which: a call log gone, turns
    /// written already by an earlier attempt, a statement's or the write concern's error, or a
    /// batch that needs two updates ([`needs_two_updates`]; then nothing is sent). The caller
    /// then writes each batch with [`Self::record_progress`], which is idempotent and tells
    /// each call its own outcome.
    pub async fn record_progress_of_calls(
        &self,
        batches: &[(TenantId, CallId, &CallProgress)],
        now: DateTime,
    ) -> Result<bool, StorageError> {
        if batches.is_empty() {
            return Ok(true);
        }
        if batches
            .iter()
            .any(|&(_, _, progress)| needs_two_updates(progress))
        {
            return Ok(false);
        }
        let mut updates = Vec::with_capacity(batches.len());
        for &(user_id, id, progress) in batches {
            let set = progress_totals(progress, now)?;
            let (filter, update) = if progress.new_turns.is_empty() {
                (doc! { "_id": id, "user_id": user_id }, doc! { "$set": set })
            } else {
                let (unwritten, push) = turns_push(user_id, id, progress)?;
                (unwritten, doc! { "$push": push, "$set": set })
            };
            updates.push(doc! { "q": filter, "u": update, "multi": false, "upsert": false });
        }
        let command = doc! {
            "update": self.collection().name(),
            "updates": updates,
            "ordered": false,
        };
        let reply = self
            .collection()
            .client()
            .database(&self.collection().namespace().db)
            .run_command(command)
            .await?;
        // A statement's failure (`writeErrors`) or the write concern's leaves `ok: 1`; any of
        // them sends every batch the slow way, where each meets its own error.
        let matched = reply
            .get_i32("n")
            .map(i64::from)
            .or_else(|_| reply.get_i64("n"));
        let failed = reply.contains_key("writeErrors") || reply.contains_key("writeConcernError");
        Ok(!failed && matched == Ok(batches.len() as i64))
    }
}

/// Whether a batch needs two updates (flags on earlier turns and new turns touch one array), so
/// it cannot be one statement of [`CallLogs::record_progress_of_calls`].
pub(crate) fn needs_two_updates(progress: &CallProgress) -> bool {
    !progress.new_turns.is_empty() && !progress.interrupted_turns.is_empty()
}

/// The `$set` of a batch: interruption flags on earlier turns and the running totals.
fn progress_totals(progress: &CallProgress, now: DateTime) -> Result<Document, StorageError> {
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
    Ok(set)
}

/// The filter that finds the call log only while its transcript has no turn at the batch's
/// first index, and the `$push` of the batch's turns.
fn turns_push(
    user_id: TenantId,
    id: CallId,
    progress: &CallProgress,
) -> Result<(Document, Document), StorageError> {
    let turns = to_bson(&progress.new_turns)?;
    let next_slot = format!("transcript.{}", progress.first_turn_index);
    let unwritten = doc! { "_id": id, "user_id": user_id, next_slot: { "$exists": false } };
    Ok((unwritten, doc! { "transcript": { "$each": turns } }))
}
