//! Which instance bridges a live call, as its call log records it (`owner`): its lease, renewed
//! beside the call's concurrency slot. Live control reads it to find the instance to ask; the
//! API shows a live call's bridge from it, on every instance.
//!
//! The owner is written by the media-stream claim (`CallLogs::claim_media_stream`), in the same
//! update, so a call is never streamed without one.

use bson::{DateTime, doc};

use super::StorageError;
use super::call_logs::CallLogs;
use crate::domain::cluster::InstanceId;
use crate::domain::ids::{CallId, TenantId};

impl CallLogs {
    /// Moves the lease of `owner`'s hold on the tenant's call `id` to `lease_until`. Answers
    /// whether `owner` still holds the call.
    pub(crate) async fn renew_owner(
        &self,
        user_id: TenantId,
        id: CallId,
        owner: &InstanceId,
        lease_until: DateTime,
    ) -> Result<bool, StorageError> {
        let result = self
            .collection()
            .update_one(
                doc! { "_id": id, "user_id": user_id, "owner.instance_id": owner.as_str() },
                doc! { "$set": { "owner.lease_until": lease_until } },
            )
            .await?;
        Ok(result.matched_count == 1)
    }
}
