//! The `key` query parameter of FreJun's requests: each tenant's own URL secret, which is how a
//! flow or webhook (which FreJun does not sign) is tied to a tenant.

use super::CallService;
use crate::auth::hash_url_secret;
use crate::storage::StorageError;
use crate::storage::users::UserRecord;

/// Why a FreJun request's key was refused. Both answer 401 and write nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("the request has no `key` query parameter")]
    Missing,
    #[error("the `key` query parameter matches no tenant")]
    Unknown,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Longest key looked up; real ones are 43 characters. Longer input is refused unhashed.
const MAX_KEY_CHARS: usize = 256;

impl CallService {
    /// The tenant whose URL secret is `key`: one indexed read of its SHA-256.
    pub(crate) async fn tenant_for_key(&self, key: Option<&str>) -> Result<UserRecord, KeyError> {
        let key = key.filter(|key| !key.is_empty()).ok_or(KeyError::Missing)?;
        if key.len() > MAX_KEY_CHARS {
            return Err(KeyError::Unknown);
        }
        self.shared
            .storage
            .users()
            .find_by_url_secret_hash(&hash_url_secret(key))
            .await?
            .ok_or(KeyError::Unknown)
    }
}
