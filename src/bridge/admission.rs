//! Deciding, before the WebSocket upgrade, whether a media stream may start: the signed token,
//! the call, the tenant, the assistant, the OpenAI key, the concurrency slot. Every refusal is
//! an HTTP answer (nothing is upgraded), and a refusal that ends the call is recorded.

use std::time::{Duration, SystemTime};

use bson::DateTime;

use super::Bridge;
use crate::domain::call::record::CallError;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::cluster::CallOwner;
use crate::domain::credential::Credential;
use crate::domain::ids::AssistantId;
use crate::domain::ids::CallId;
use crate::domain::secret::SecretString;
use crate::domain::tenant::TenantStatus;
use crate::domain::time::after;
use crate::frejun::media_token::MediaTokenError;
use crate::storage::StorageError;
use crate::storage::assistants::AssistantRecord;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::users::UserRecord;
use crate::telemetry::metrics;

/// Everything a session needs, loaded and checked.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub call: CallLogRecord,
    pub user: UserRecord,
    pub assistant: AssistantRecord,
    /// The key the assistant's voice AI needs (`None`: a public ElevenLabs agent).
    pub ai_key: Option<SecretString>,
    pub max_call: Duration,
}

/// Why a media stream is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum Refusal {
    /// Token missing, malformed, forged, expired, or for another call or assistant.
    #[error("media token refused: {0}")]
    Token(&'static str),
    #[error("no such call")]
    UnknownCall,
    /// This instance is draining; the stream is left for another (nothing was claimed).
    #[error("this instance is draining")]
    Draining,
    /// The call is over (or was already bridged).
    #[error("the call is not live: {0}")]
    NotLive(&'static str),
    /// The tenant, assistant or credentials no longer allow the call; it was ended.
    #[error("the call cannot be bridged: {0}")]
    Ended(EndReason),
    #[error("storage unavailable: {0}")]
    Storage(String),
}

impl Refusal {
    /// The `reason` label of `voxbridge_admission_refusals_total` (stage `media_stream`).
    fn metric_label(&self) -> &'static str {
        match self {
            Refusal::Token(_) => "token",
            Refusal::UnknownCall => "unknown_call",
            Refusal::Draining => "draining",
            Refusal::NotLive(_) => "not_live",
            Refusal::Ended(reason) => reason.as_str(),
            Refusal::Storage(_) => "storage_unavailable",
        }
    }
}

impl From<StorageError> for Refusal {
    fn from(err: StorageError) -> Self {
        Refusal::Storage(err.to_string())
    }
}

impl Bridge {
    /// Checks a media-stream request (`assistant_id` from the path, `call_id` and `token` from
    /// the query). The token is verified before anything is read from the database.
    pub(crate) async fn admit(
        &self,
        assistant_id: &str,
        call_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<Admitted, Refusal> {
        let (call_id, assistant_id) = self.verify_token(assistant_id, call_id, token)?;
        let admitted = if self.shared.drain.is_draining() {
            Err(Refusal::Draining)
        } else {
            self.admit_verified(call_id, assistant_id).await
        };
        if let Err(refusal) = &admitted {
            metrics::admission_refused("media_stream", refusal.metric_label());
        }
        admitted
    }

    /// Checks the media token alone (no I/O): the ids it was signed for. A refusal is counted
    /// in the admission metrics.
    pub(crate) fn verify_token(
        &self,
        assistant_id: &str,
        call_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<(CallId, AssistantId), Refusal> {
        let verified = self.verify_token_unrecorded(assistant_id, call_id, token);
        if let Err(refusal) = &verified {
            metrics::admission_refused("media_stream", refusal.metric_label());
        }
        verified
    }

    fn verify_token_unrecorded(
        &self,
        assistant_id: &str,
        call_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<(CallId, AssistantId), Refusal> {
        let (Some(call_hex), Some(token)) = (call_id, token) else {
            return Err(Refusal::Token("missing"));
        };
        self.shared
            .media_tokens
            .verify(token, call_hex, assistant_id, SystemTime::now())
            .map_err(|err| {
                Refusal::Token(match err {
                    MediaTokenError::Malformed => "malformed",
                    MediaTokenError::Expired => "expired",
                    MediaTokenError::Invalid => "invalid",
                })
            })?;
        // A valid token was signed over ids we minted, so these parse; anything else is forged.
        let call_id = call_hex
            .parse::<CallId>()
            .map_err(|_| Refusal::Token("invalid"))?;
        let assistant_id = assistant_id
            .parse::<AssistantId>()
            .map_err(|_| Refusal::Token("invalid"))?;
        Ok((call_id, assistant_id))
    }

    async fn admit_verified(
        &self,
        call_id: CallId,
        assistant_id: AssistantId,
    ) -> Result<Admitted, Refusal> {
        let calls = self.shared.storage.call_logs();
        let call = match calls.get_for_media_stream(call_id).await {
            Err(StorageError::NotFound) => return Err(Refusal::UnknownCall),
            other => other?,
        };
        if call.assistant_id != Some(assistant_id) {
            return Err(Refusal::Token("invalid"));
        }
        if call.call_status.is_terminal() {
            return Err(Refusal::NotLive("the call has ended"));
        }
        if self.live.get(call.user_id, call.id).is_some() {
            return Err(Refusal::NotLive("the call's media stream is already open"));
        }
        // The check above is this instance's; the claim is everyone's: a `ws_url` upgraded on
        // two instances must not bridge twice.
        if !calls
            .claim_media_stream(call.user_id, call.id, &self.owner(DateTime::now()))
            .await?
        {
            return Err(Refusal::NotLive("the call's media stream is already open"));
        }
        let user = self.shared.storage.users().get(call.user_id).await?;
        if user.status == TenantStatus::Suspended {
            return Err(self.end(&call, EndReason::TenantSuspended, None).await);
        }
        let assistant = match self
            .shared
            .storage
            .assistants()
            .get(user.id, assistant_id)
            .await
        {
            Err(StorageError::NotFound) => {
                return Err(self.end(&call, EndReason::AssistantDeleted, None).await);
            }
            other => other?,
        };
        let ai_key = match Credential::for_backend(&assistant.spec.backend) {
            None => None,
            Some(credential) => match self.tenant_key(&user, credential) {
                Some(key) => Some(key),
                None => {
                    let (code, name) = match credential {
                        Credential::ElevenLabsApiKey => ("elevenlabs_key_unusable", "ElevenLabs"),
                        _ => ("openai_key_unusable", "OpenAI"),
                    };
                    let error = CallError {
                        code: code.into(),
                        message: format!(
                            "the tenant's {name} API key is missing or cannot be decrypted"
                        ),
                    };
                    return Err(self
                        .end(&call, EndReason::MissingCredentials, Some(error))
                        .await);
                }
            },
        };
        let now = DateTime::now();
        let lease_until = after(now, self.shared.settings.bridge.slot_lease());
        let admitted = self
            .shared
            .storage
            .call_slots()
            .take(
                user.id,
                call.id,
                user.limits.max_concurrent_calls,
                now,
                lease_until,
            )
            .await?;
        if !admitted {
            return Err(self.end(&call, EndReason::ConcurrencyLimit, None).await);
        }
        let max_call_seconds = [
            assistant.spec.max_call_seconds.map(u64::from),
            Some(u64::from(user.limits.max_call_seconds)),
            Some(self.shared.settings.bridge.default_max_call_seconds),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.shared.settings.bridge.default_max_call_seconds);
        Ok(Admitted {
            call,
            user,
            assistant,
            ai_key,
            max_call: Duration::from_secs(max_call_seconds),
        })
    }

    /// This instance as the owner of a call whose stream starts at `now`, leased like its slot.
    fn owner(&self, now: DateTime) -> CallOwner {
        CallOwner {
            instance_id: self.shared.instance_id.clone(),
            started_at: now,
            lease_until: after(now, self.shared.settings.bridge.slot_lease()),
        }
    }

    fn tenant_key(&self, user: &UserRecord, credential: Credential) -> Option<SecretString> {
        self.calls.decrypt_credential(user, credential).ok()
    }

    /// Records that the call ended before its stream could start.
    async fn end(
        &self,
        call: &CallLogRecord,
        reason: EndReason,
        error: Option<CallError>,
    ) -> Refusal {
        let now = DateTime::now();
        let report = StatusReport::new(
            CallStatus::Failed,
            now,
            ReportSource::Bridge,
            "media.refused",
        )
        .ending(reason, error);
        if let Err(err) = self
            .shared
            .storage
            .call_logs()
            .apply_status(call.user_id, call.id, &[report], now)
            .await
        {
            tracing::error!(call_id = %call.id, error = %err, "cannot record a refused media stream");
        }
        if let Err(err) = self
            .shared
            .storage
            .call_slots()
            .release(call.user_id, call.id)
            .await
        {
            tracing::warn!(call_id = %call.id, error = %err, "cannot free a refused call's slot");
        }
        // FreJun was told to stream this call; refusing the stream does not end the phone call.
        self.hang_up_at_frejun(call.user_id, call.id, call.frejun_call_id.clone(), reason);
        metrics::call_ended(reason.as_str());
        Refusal::Ended(reason)
    }
}
