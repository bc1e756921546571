//! Which instance bridges a live call, as its call log records it (`owner`): its lease, renewed
//! beside the call's concurrency slot by the instance's `bridge::lease_renewer`. Live control
//! reads it to find the instance to ask; the API shows a live call's bridge from it, on every
//! instance.
//!
//! The owner is written by the media-stream claim (`CallLogs::claim_media_stream`), in the same
//! update, so a call is never streamed without one.

use bson::{DateTime, Document, doc};

use super::StorageError;
use super::call_logs::CallLogs;
use crate::domain::cluster::InstanceId;
use crate::domain::ids::{CallId, TenantId};

impl CallLogs {
    /// Moves the lease of `owner`'s hold on each of the tenants' calls to `lease_until`, in one
    /// command; a call log that names another owner is left as it is. Answers how many of them
    /// `owner` still holds. (A call log that a terminal webhook ended while the stream goes on
    /// is still renewed: the stream's end, not FreJun's report, ends the bridge's hold.)
    pub(crate) async fn renew_owner_of_calls(
        &self,
        calls: &[(TenantId, CallId)],
        owner: &InstanceId,
        lease_until: DateTime,
    ) -> Result<u64, StorageError> {
        if calls.is_empty() {
            return Ok(0);
        }
        // Each call with its own tenant's id, as every call-log query names both.
        let each_call: Vec<Document> = calls
            .iter()
            .map(|(user_id, call_id)| doc! { "_id": call_id, "user_id": user_id })
            .collect();
        let result = self
            .collection()
            .update_many(
                doc! { "$or": each_call, "owner.instance_id": owner.as_str() },
                doc! { "$set": { "owner.lease_until": lease_until } },
            )
            .await?;
        Ok(result.matched_count)
    }
}
