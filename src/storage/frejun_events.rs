//! FreJun webhooks that matched no call, kept for diagnosis (30 days, by a TTL index).
//!
//! A webhook for a call we do not know is not an error to FreJun (it is answered 200, or FreJun
//! would retry it forever), but it usually means a misconfigured FreJun app or a call placed
//! outside voxbridge, so the raw payload is kept under the tenant whose key came with it.

use bson::{DateTime, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::collections::FREJUN_EVENTS;
use super::{Storage, StorageError};
use crate::domain::ids::{CallId, FrejunEventId, TenantId};

/// Longest payload kept, in bytes (the collection's validator allows 64 KiB).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedEvent {
    #[serde(rename = "_id")]
    pub id: FrejunEventId,
    pub user_id: TenantId,
    pub frejun_call_id: Option<String>,
    /// Our call id from the status URL, when it carried one.
    pub call_id: Option<CallId>,
    pub event: Option<String>,
    /// Why it matched nothing: `unknown_call`, `no_call_id`, `unparseable`.
    pub reason: String,
    /// The body as received (lossy UTF-8, truncated to [`MAX_PAYLOAD_BYTES`]).
    pub payload: String,
    pub received_at: DateTime,
}

#[derive(Clone, Debug)]
pub struct FrejunEvents {
    collection: Collection<UnmatchedEvent>,
}

impl Storage {
    pub fn frejun_events(&self) -> FrejunEvents {
        FrejunEvents {
            collection: self.collection(FREJUN_EVENTS),
        }
    }
}

impl FrejunEvents {
    pub(crate) async fn insert(&self, event: &UnmatchedEvent) -> Result<(), StorageError> {
        self.collection.insert_one(event).await?;
        Ok(())
    }

    /// How many unmatched events of the tenant were kept since `since` (served by the
    /// `(user_id, received_at)` index).
    pub(crate) async fn count_since(
        &self,
        user_id: TenantId,
        since: DateTime,
    ) -> Result<u64, StorageError> {
        Ok(self
            .collection
            .count_documents(doc! { "user_id": user_id, "received_at": { "$gte": since } })
            .await?)
    }

    /// The tenant's unmatched events, newest first (at most `limit`).
    pub async fn recent(
        &self,
        user_id: TenantId,
        limit: i64,
    ) -> Result<Vec<UnmatchedEvent>, StorageError> {
        use futures_util::TryStreamExt as _;
        Ok(self
            .collection
            .find(doc! { "user_id": user_id })
            .sort(doc! { "received_at": -1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?)
    }
}

/// `body` as text, cut at a character boundary to fit [`MAX_PAYLOAD_BYTES`].
pub(crate) fn payload_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_PAYLOAD_BYTES {
        return text.into_owned();
    }
    crate::domain::text::prefix_within(&text, MAX_PAYLOAD_BYTES).to_owned()
}
