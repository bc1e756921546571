//! A call's recording: a fresh signed URL from FreJun's recordings API, asked with the tenant's
//! own FreJun key. voxbridge stores only the recording's id (from FreJun's webhooks), never the
//! audio, and never a URL that would expire.

use std::time::Duration;

use url::Url;

use super::CallService;
use super::CredentialProblem;
use crate::domain::credential::Credential;
use crate::providers::teler::TelerError;
use crate::storage::users::UserRecord;

/// How long the signed URLs we hand out stay valid (FreJun's default).
pub(crate) const SIGNED_URL_LIFETIME: Duration = Duration::from_secs(900);

/// Why no recording URL could be had.
#[derive(Debug)]
pub(crate) enum RecordingError {
    /// The tenant's FreJun key is not stored, or does not decrypt.
    Credential(CredentialProblem),
    Teler(TelerError),
}

impl CallService {
    /// A signed URL of FreJun's recording `recording_id`, valid for [`SIGNED_URL_LIFETIME`].
    pub(crate) async fn recording_url(
        &self,
        tenant: &UserRecord,
        recording_id: &str,
    ) -> Result<Url, RecordingError> {
        let key = self
            .decrypt_credential(tenant, Credential::FrejunApiKey)
            .map_err(RecordingError::Credential)?;
        self.teler
            .recording_url(&key, recording_id, SIGNED_URL_LIFETIME)
            .await
            .map_err(RecordingError::Teler)
    }
}
