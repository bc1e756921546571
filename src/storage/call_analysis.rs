//! Post-call analysis jobs, kept on the call log they analyse (`call_logs.analysis`): queued
//! once, claimed with a lease by one worker on any instance, finished only by the run that
//! holds the lease (a run that outlived its lease stores nothing once another run has taken
//! the job over), or postponed after a provider's passing failure.
//!
//! Pending jobs are found through the partial index `call_logs_analysis_due` (migration 0007).

use bson::{DateTime, Document, doc};
use mongodb::options::ReturnDocument;

use super::StorageError;
use super::call_logs::{CallLogRecord, CallLogs};
use super::error::to_bson;
use crate::domain::analysis::{AnalysisError, AnalysisStatus, CallAnalysis};
use crate::domain::ids::{CallId, TenantId};
use crate::domain::webhook::OutboxEvent;

/// The call's pending analysis, as long as the run `lease_id` holds it.
fn held_by(user_id: TenantId, id: CallId, lease_id: &str) -> Document {
    doc! {
        "_id": id,
        "user_id": user_id,
        "analysis.status": AnalysisStatus::Pending.as_str(),
        "analysis.lease_id": lease_id,
    }
}

impl CallLogs {
    /// Queues the call's first analysis; a call that already has one (pending or finished)
    /// keeps it, so handing the same `call.ended` over twice queues once. Answers whether
    /// this queued it.
    pub(crate) async fn queue_analysis(
        &self,
        user_id: TenantId,
        id: CallId,
        now: DateTime,
    ) -> Result<bool, StorageError> {
        let result = self
            .collection()
            .update_one(
                doc! { "_id": id, "user_id": user_id, "analysis": { "$exists": false } },
                doc! { "$set": { "analysis": to_bson(&CallAnalysis::pending(now))? } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Queues the call's analysis again (`POST /api/calls/{id}/analyze`), replacing a finished
    /// one; a pending one is left to finish. Answers the call as it now is.
    pub(crate) async fn requeue_analysis(
        &self,
        user_id: TenantId,
        id: CallId,
        now: DateTime,
    ) -> Result<CallLogRecord, StorageError> {
        let pending = AnalysisStatus::Pending.as_str();
        let updated = self
            .collection()
            .find_one_and_update(
                doc! {
                    "_id": id,
                    "user_id": user_id,
                    "analysis.status": { "$ne": pending },
                },
                doc! { "$set": { "analysis": to_bson(&CallAnalysis::pending(now))? } },
            )
            .return_document(ReturnDocument::After)
            .await?;
        match updated {
            Some(call) => Ok(call),
            // Already pending, or no such call: the read tells which.
            None => self.get(user_id, id).await,
        }
    }

    /// Claims the pending analysis due first whose lease is free, for `lease_id` until
    /// `lease_until`, counting the run.
    pub(crate) async fn claim_analysis(
        &self,
        now: DateTime,
        lease_until: DateTime,
        lease_id: &str,
    ) -> Result<Option<CallLogRecord>, StorageError> {
        Ok(self
            .collection()
            .find_one_and_update(
                doc! {
                    "analysis.status": AnalysisStatus::Pending.as_str(),
                    "analysis.due_at": { "$lte": now },
                    "$or": [
                        { "analysis.lease_until": null },
                        { "analysis.lease_until": { "$lt": now } },
                    ],
                },
                doc! {
                    "$set": {
                        "analysis.lease_until": lease_until,
                        "analysis.lease_id": lease_id,
                    },
                    "$inc": { "analysis.attempts": 1 },
                },
            )
            .sort(doc! { "analysis.due_at": 1 })
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Stores a finished analysis (`done`, `failed` or `skipped`) and, in the same update, its
    /// `call.analyzed` event, if the run `lease_id` still holds the job. Answers whether it
    /// did: `false` means another run took the job over and this one's result is dropped.
    pub(crate) async fn finish_analysis(
        &self,
        user_id: TenantId,
        id: CallId,
        lease_id: &str,
        analysis: &CallAnalysis,
        event: &OutboxEvent,
    ) -> Result<bool, StorageError> {
        let mut finished = analysis.clone();
        finished.lease_id = None;
        finished.lease_until = None;
        let result = self
            .collection()
            .update_one(
                held_by(user_id, id, lease_id),
                doc! {
                    "$set": { "analysis": to_bson(&finished)?, "updated_at": DateTime::now() },
                    "$push": { "outbox": to_bson(event)? },
                },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Puts the job back until `due_at` (a provider's passing failure), keeping why, if the
    /// run `lease_id` still holds it.
    pub(crate) async fn postpone_analysis(
        &self,
        user_id: TenantId,
        id: CallId,
        lease_id: &str,
        due_at: DateTime,
        error: &AnalysisError,
    ) -> Result<bool, StorageError> {
        let result = self
            .collection()
            .update_one(
                held_by(user_id, id, lease_id),
                doc! { "$set": {
                    "analysis.due_at": due_at,
                    "analysis.lease_until": null,
                    "analysis.lease_id": null,
                    "analysis.error": to_bson(error)?,
                } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Hands the job back at once (its worker is shutting down), if the run `lease_id` still
    /// holds it.
    pub(crate) async fn release_analysis(
        &self,
        user_id: TenantId,
        id: CallId,
        lease_id: &str,
    ) -> Result<(), StorageError> {
        self.collection()
            .update_one(
                held_by(user_id, id, lease_id),
                // A run stopped by a shutdown is not one of the job's `max_runs`.
                doc! {
                    "$set": { "analysis.lease_until": null, "analysis.lease_id": null },
                    "$inc": { "analysis.attempts": -1 },
                },
            )
            .await?;
        Ok(())
    }
}
