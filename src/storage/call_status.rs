//! Writing the status merge (`domain::call::status`) into stored call logs. The write is
//! optimistic: read, merge in memory, write back only if `status_revision` is unchanged, else
//! retry. Concurrent reporters therefore never lose each other's events.

use bson::{DateTime, doc};

use super::StorageError;
use super::call_logs::{CallLogRecord, CallLogs};
use super::error::to_bson;
use crate::domain::call::status::StatusFields;
use crate::domain::call::status::StatusReport;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;
use crate::domain::webhook::events_for_change;

/// The fields of a stored call log that status reports decide.
pub(crate) fn status_fields(call: &CallLogRecord) -> StatusFields {
    StatusFields {
        status_history: call.status_history.clone(),
        call_status: call.call_status,
        answered_at: call.answered_at,
        ended_at: call.ended_at,
        duration: call.duration,
        recording_url: call.recording_url.clone(),
        recording_url_at: call.recording_url_at,
        recording_id: call.recording_id.clone(),
        recording_id_at: call.recording_id_at,
        end_reason: call.end_reason,
        error: call.error.clone(),
    }
}

/// How many times a report is re-applied when another writer changed the call in between.
const MAX_ATTEMPTS: usize = 20;

impl CallLogs {
    /// Merges `reports` into the tenant's call `id` and returns the call as stored afterwards.
    /// A report that changes nothing writes nothing.
    pub(crate) async fn apply_status(
        &self,
        user_id: TenantId,
        id: CallId,
        reports: &[StatusReport],
        now: DateTime,
    ) -> Result<CallLogRecord, StorageError> {
        for _ in 0..MAX_ATTEMPTS {
            let call = self.get(user_id, id).await?;
            let before = status_fields(&call);
            let mut after = before.clone();
            for report in reports {
                after.merge(report);
            }
            if after == before {
                return Ok(call);
            }
            let revision = call.status_revision;
            let current_revision = if revision == 0 {
                // Documents written before the revision existed have no field at all.
                doc! { "$in": [0_i64, null] }
            } else {
                doc! { "$eq": revision }
            };
            let set = doc! {
                "status_history": to_bson(&after.status_history)?,
                "call_status": after.call_status.as_str(),
                "answered_at": after.answered_at,
                "ended_at": after.ended_at,
                "duration": after.duration,
                "recording_url": after.recording_url.clone(),
                "recording_url_at": after.recording_url_at,
                "recording_id": after.recording_id.clone(),
                "recording_id_at": after.recording_id_at,
                "end_reason": after.end_reason.map(|reason| reason.as_str()),
                "error": to_bson(&after.error)?,
                "status_revision": revision + 1,
                "updated_at": now,
            };
            // The events the change causes go into the outbox in this same update: if the
            // change is written, so are they.
            let events = events_for_change(&before, &after, now);
            let mut update = doc! { "$set": set };
            if !events.is_empty() {
                update.insert("$push", doc! { "outbox": { "$each": to_bson(&events)? } });
            }
            let written = self
                .update_where(
                    doc! { "_id": id, "user_id": user_id, "status_revision": current_revision },
                    update,
                )
                .await?;
            if written {
                return self.get(user_id, id).await;
            }
        }
        Err(StorageError::Unavailable(format!(
            "call {id} kept changing; status not applied after {MAX_ATTEMPTS} attempts"
        )))
    }
}
