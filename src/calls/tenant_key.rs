//! The `key` query parameter of FreJun's requests: each tenant's own URL secret, which is how a
//! flow or webhook (which FreJun does not sign) is tied to a tenant.

use super::CallService;
use bson::DateTime;

use crate::auth::{hash_url_secret, random_url_secret};
use crate::crypto::TenantSecret;
use crate::domain::secret::SecretString;
use crate::domain::time::after;
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
    /// The tenant whose URL secret is `key`: one indexed read of its SHA-256, and a second
    /// only for a key that is not current (a previous secret still inside its overlap window).
    pub(crate) async fn tenant_for_key(&self, key: Option<&str>) -> Result<UserRecord, KeyError> {
        let key = key.filter(|key| !key.is_empty()).ok_or(KeyError::Missing)?;
        if key.len() > MAX_KEY_CHARS {
            return Err(KeyError::Unknown);
        }
        let hash = hash_url_secret(key);
        let users = self.shared.storage.users();
        if let Some(user) = users.find_by_url_secret_hash(&hash).await? {
            return Ok(user);
        }
        users
            .find_by_previous_url_secret_hash(&hash, DateTime::now())
            .await?
            .ok_or(KeyError::Unknown)
    }

    /// Gives the tenant a new FreJun URL secret. The old one keeps working for
    /// `frejun.url_secret_overlap_secs`, so FreJun's URLs can be updated without refusing
    /// calls; a rotation replaces any earlier previous secret. Answers the new secret and when
    /// the old one stops working.
    pub(crate) async fn rotate_url_secret(
        &self,
        tenant: &UserRecord,
    ) -> Result<(SecretString, DateTime), StorageError> {
        let secret = random_url_secret();
        let encrypted = self.shared.keyring.encrypt_tenant_secret(
            tenant.id,
            TenantSecret::FrejunUrlSecret,
            secret.expose(),
        );
        let now = DateTime::now();
        let previous_until = after(now, self.shared.settings.frejun.url_secret_overlap());
        self.shared
            .storage
            .users()
            .rotate_url_secret(
                tenant,
                &encrypted,
                &hash_url_secret(secret.expose()),
                previous_until,
                now,
            )
            .await?;
        Ok((secret, previous_until))
    }
}
