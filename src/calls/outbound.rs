//! Outbound calls: a tenant asks us to call someone; we create the call log, take a concurrency
//! slot and ask Teler to dial, with flow and status URLs that lead back to this call. Also the
//! tenant's hang-up of a live call.
//!
//! Teler requests run in a task of their own: if the tenant's HTTP client goes away mid-request,
//! the outcome is still recorded (a dropped future would leave a call Teler is dialling with
//! no FreJun id, or a failed one still holding its slot).

use bson::DateTime;
use tracing::Instrument as _;

use super::{CallService, CredentialProblem};
use crate::domain::call::record::{CallError, NewCall};
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, CallType, EndReason};
use crate::domain::credential::Credential;
use crate::domain::ids::AssistantId;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;
use crate::domain::phone::NumberStatus;
use crate::domain::phone::PhoneNumber;
use crate::domain::secret::SecretString;
use crate::domain::time::after;
use crate::domain::validation::ValidationError;
use crate::providers::teler::{InitiateCall, TelerError};
use crate::storage::StorageError;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::users::UserRecord;
use crate::telemetry::call_span;
use crate::telemetry::record_frejun_call_id;

/// A tenant's request to place a call.
#[derive(Debug, Clone)]
pub(crate) struct OutboundRequest {
    /// The assistant to talk; `None`: the one assigned to the from-number.
    pub assistant_id: Option<String>,
    pub from_number: String,
    pub to_number: String,
}

/// A live call of the tenant, ready to be controlled at FreJun.
pub(super) struct LiveCall {
    pub call: CallLogRecord,
    pub frejun_call_id: String,
    pub frejun_key: SecretString,
}

/// A call Teler accepted.
#[derive(Debug, Clone)]
pub(crate) struct PlacedCall {
    pub call: CallLogRecord,
    pub frejun_call_id: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboundError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no such assistant")]
    AssistantNotFound,
    /// The tenant has not stored (or we cannot read) a key the call needs.
    #[error("{credential} is {problem:?}")]
    Credential {
        credential: &'static str,
        problem: CredentialProblem,
    },
    /// The tenant already has `max_concurrent_calls` live calls. The call log records it.
    #[error("the tenant is at its concurrent-call limit")]
    ConcurrencyLimit { call_id: CallId, limit: u32 },
    /// Teler refused or failed. The call log is marked failed with this error.
    #[error("Teler: {source}")]
    Teler {
        call_id: CallId,
        #[source]
        source: TelerError,
    },
    /// The call is over (or was never placed), so there is nothing to hang up.
    #[error("the call is not live")]
    NotLive { status: CallStatus },
    /// FreJun has not told us its id for the call yet.
    #[error("FreJun has not named this call yet")]
    NotPlacedYet,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CallService {
    /// Places an outbound call for `tenant` (see the module docs).
    pub(crate) async fn initiate(
        &self,
        tenant: &UserRecord,
        request: &OutboundRequest,
    ) -> Result<PlacedCall, OutboundError> {
        let from = PhoneNumber::parse_field("from_number", &request.from_number)?;
        let to = PhoneNumber::parse_field("to_number", &request.to_number)?;
        let number = self
            .shared
            .storage
            .phone_numbers()
            .find_by_number(tenant.id, from.as_str())
            .await?
            .ok_or_else(|| {
                ValidationError::new("from_number", "is not one of your phone numbers")
            })?;
        if number.status == NumberStatus::Inactive {
            return Err(ValidationError::new("from_number", "is inactive").into());
        }
        let assistant_id = match &request.assistant_id {
            Some(id) => id
                .parse::<AssistantId>()
                .map_err(|_| OutboundError::AssistantNotFound)?,
            None => number.assigned_assistant_id.ok_or_else(|| {
                ValidationError::new(
                    "assistant_id",
                    "is required: the from_number has no assistant assigned",
                )
            })?,
        };
        let assistant = self
            .shared
            .storage
            .assistants()
            .find(tenant.id, assistant_id)
            .await?
            .ok_or(OutboundError::AssistantNotFound)?;
        let frejun_key = self.credential(tenant, Credential::FrejunApiKey)?;
        if let Some(voice_ai) = Credential::for_backend(&assistant.spec.backend) {
            self.credential(tenant, voice_ai)?;
        }
        let url_secret = self
            .url_secret(tenant)
            .map_err(|problem| OutboundError::Credential {
                credential: "frejun_url_secret",
                problem,
            })?;

        let now = DateTime::now();
        let call = CallLogRecord::new(
            NewCall {
                user_id: tenant.id,
                assistant_id: Some(assistant.id),
                frejun_call_id: None,
                from_number: Some(from.as_str().to_owned()),
                to_number: Some(to.as_str().to_owned()),
                call_type: CallType::Outbound,
            },
            &[StatusReport::new(
                CallStatus::Initiated,
                now,
                ReportSource::Api,
                "api.initiate",
            )],
            now,
        );
        self.shared.storage.call_logs().insert(&call).await?;

        let limit = tenant.limits.max_concurrent_calls;
        let lease_until = after(now, self.shared.settings.frejun.outbound_ring_timeout());
        let admitted = self
            .shared
            .storage
            .call_slots()
            .take(tenant.id, call.id, limit, now, lease_until)
            .await?;
        if !admitted {
            let refused =
                StatusReport::new(CallStatus::Failed, now, ReportSource::Api, "api.refused")
                    .ending(EndReason::ConcurrencyLimit, None);
            self.shared
                .storage
                .call_logs()
                .apply_status(tenant.id, call.id, &[refused], now)
                .await?;
            return Err(OutboundError::ConcurrencyLimit {
                call_id: call.id,
                limit,
            });
        }

        let dial = InitiateCall {
            from_number: from.as_str().to_owned(),
            to_number: to.as_str().to_owned(),
            flow_url: self
                .frejun_url("api/frejun/flow", &url_secret, Some(call.id))
                .to_string(),
            status_callback_url: self
                .frejun_url("api/frejun/webhook", &url_secret, Some(call.id))
                .to_string(),
            record: assistant.spec.record,
        };
        let service = self.clone();
        let tenant_id = tenant.id;
        let span = call_span(call.id, tenant_id, call.assistant_id, None);
        tokio::spawn(
            async move { service.dial(tenant_id, call, frejun_key, dial).await }.instrument(span),
        )
        .await
        .map_err(|err| StorageError::Unavailable(format!("dial task failed: {err}")))?
    }

    /// Asks Teler to dial and records the outcome on the call log.
    async fn dial(
        &self,
        tenant_id: TenantId,
        call: CallLogRecord,
        frejun_key: SecretString,
        dial: InitiateCall,
    ) -> Result<PlacedCall, OutboundError> {
        match self.teler.initiate_call(&frejun_key, &dial).await {
            Ok(placed) => {
                let now = DateTime::now();
                let calls = self.shared.storage.call_logs();
                // The call is being dialled whatever happens next, so a failure to record
                // FreJun's id must not turn into an error (the tenant would place it again).
                // FreJun's flow fetch and webhooks carry our id and record it later.
                match calls
                    .set_frejun_call_id(tenant_id, call.id, &placed.id, now)
                    .await
                {
                    // A status webhook may have recorded the same id first.
                    Ok(()) | Err(StorageError::Conflict) => {}
                    Err(err) => {
                        tracing::warn!(call_id = %call.id, error = %err, "could not record FreJun's call id; its webhooks will");
                    }
                }
                let call = match calls.get(tenant_id, call.id).await {
                    Ok(stored) => stored,
                    Err(_) => CallLogRecord {
                        frejun_call_id: Some(placed.id.clone()),
                        ..call
                    },
                };
                record_frejun_call_id(&tracing::Span::current(), &placed.id);
                tracing::info!(call_id = %call.id, frejun_call_id = %placed.id, "outbound call placed");
                Ok(PlacedCall {
                    call,
                    frejun_call_id: placed.id,
                    message: placed
                        .message
                        .unwrap_or_else(|| "Call initiated successfully".to_owned()),
                })
            }
            Err(err) => {
                let now = DateTime::now();
                let (reason, code) = teler_failure(&err);
                let failed = StatusReport::new(
                    CallStatus::Failed,
                    now,
                    ReportSource::Api,
                    "api.teler_failed",
                )
                .ending(
                    reason,
                    Some(CallError {
                        code: code.to_owned(),
                        message: err.to_string(),
                    }),
                );
                self.shared
                    .storage
                    .call_logs()
                    .apply_status(tenant_id, call.id, &[failed], now)
                    .await?;
                self.shared
                    .storage
                    .call_slots()
                    .release(tenant_id, call.id)
                    .await?;
                tracing::warn!(call_id = %call.id, error = %err, "Teler refused an outbound call");
                Err(OutboundError::Teler {
                    call_id: call.id,
                    source: err,
                })
            }
        }
    }

    /// Ends the tenant's live call through Teler's hang-up endpoint. FreJun's status webhook
    /// then closes the call log; the log records at once that the tenant asked.
    pub(crate) async fn hang_up(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
    ) -> Result<CallLogRecord, OutboundError> {
        let LiveCall {
            call,
            frejun_call_id,
            frejun_key,
        } = self.live_call(tenant, call_id).await?;
        let service = self.clone();
        let tenant_id = tenant.id;
        let span = call_span(
            call_id,
            tenant_id,
            call.assistant_id,
            Some(frejun_call_id.as_str()),
        );
        tokio::spawn(
            async move {
                service
                    .teler
                    .hangup(
                        &frejun_key,
                        &frejun_call_id,
                        Some(&EndReason::HungUpByApi.frejun_hangup_reason()),
                        &uuid::Uuid::new_v4().to_string(),
                    )
                    .await
                    .map_err(|source| OutboundError::Teler { call_id, source })?;
                let now = DateTime::now();
                let asked =
                    StatusReport::new(call.call_status, now, ReportSource::Api, "api.hangup")
                        .ending(EndReason::HungUpByApi, None);
                Ok(service
                    .shared
                    .storage
                    .call_logs()
                    .apply_status(tenant_id, call_id, &[asked], now)
                    .await?)
            }
            .instrument(span),
        )
        .await
        .map_err(|err| StorageError::Unavailable(format!("hang-up task failed: {err}")))?
    }

    /// The tenant's live call with what controlling it at FreJun takes: FreJun's id for it and
    /// the tenant's FreJun key. A call that is over, or that FreJun has not named yet, is refused.
    pub(super) async fn live_call(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
    ) -> Result<LiveCall, OutboundError> {
        let call = self
            .shared
            .storage
            .call_logs()
            .get(tenant.id, call_id)
            .await?;
        if call.call_status.is_terminal() {
            return Err(OutboundError::NotLive {
                status: call.call_status,
            });
        }
        let frejun_call_id = call
            .frejun_call_id
            .clone()
            .ok_or(OutboundError::NotPlacedYet)?;
        let frejun_key = self.credential(tenant, Credential::FrejunApiKey)?;
        Ok(LiveCall {
            call,
            frejun_call_id,
            frejun_key,
        })
    }

    /// A provider key of the tenant, decrypted.
    pub(super) fn credential(
        &self,
        tenant: &UserRecord,
        credential: Credential,
    ) -> Result<SecretString, OutboundError> {
        self.decrypt_credential(tenant, credential)
            .map_err(|problem| OutboundError::Credential {
                credential: credential.name(),
                problem,
            })
    }

    /// A provider key of the tenant, decrypted, or why it cannot be (see
    /// [`super::decrypt_credential`]).
    pub(crate) fn decrypt_credential(
        &self,
        tenant: &UserRecord,
        credential: Credential,
    ) -> Result<SecretString, CredentialProblem> {
        super::decrypt_credential(&self.shared.keyring, tenant, credential)
    }
}

/// The end reason and error code recorded when Teler does not place a call.
pub(crate) fn teler_failure(err: &TelerError) -> (EndReason, &'static str) {
    match err {
        TelerError::Unauthorized { .. } => (EndReason::TelerRejected, "frejun_key_invalid"),
        TelerError::NumberNotProvisioned { .. } => {
            (EndReason::TelerRejected, "from_number_not_provisioned")
        }
        TelerError::Validation { .. } => (EndReason::TelerRejected, "telephony_validation_failed"),
        TelerError::RateLimited { .. } => (EndReason::TelerRejected, "telephony_rate_limited"),
        TelerError::NotFound { .. } | TelerError::Conflict { .. } => {
            (EndReason::TelerRejected, "telephony_rejected")
        }
        TelerError::Unavailable { .. } | TelerError::InvalidResponse { .. } => {
            (EndReason::TelephonyError, "telephony_unavailable")
        }
        TelerError::Timeout => (EndReason::TelephonyError, "telephony_timeout"),
    }
}
