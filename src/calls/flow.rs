//! FreJun's flow request: what to do with a call that is connecting.
//!
//! Inbound (no `call` parameter): the dialled number leads to its tenant and assistant; the call
//! log is created and, if the call may go ahead, a concurrency slot is taken and the answer is a
//! stream flow whose `ws_url` carries a signed token. Outbound (`call` = our call id, put in the
//! `flow_url` we gave Teler): the existing call log is found, because FreJun may fetch the flow
//! before Teler's answer to the initiate request (with FreJun's call id) reached us.
//!
//! Every refusal is a hang-up flow and, where the tenant is known, a call log with the reason;
//! only a missing or foreign `key` is refused outright (401, nothing written).

use std::time::SystemTime;

use bson::DateTime;

use super::CallService;
use super::tenant_key::KeyError;
use crate::domain::assistant::backend::BackendKind;
use crate::domain::call::record::NewCall;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, CallType, EndReason};
use crate::domain::credential::Credential;
use crate::domain::ids::CallId;
use crate::domain::phone::NumberStatus;
use crate::domain::phone::PhoneNumber;
use crate::domain::tenant::TenantStatus;
use crate::domain::time::after;
use crate::frejun::flow::{FlowRequest, FlowResponse};
use crate::storage::StorageError;
use crate::storage::assistants::AssistantRecord;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::users::UserRecord;
use crate::telemetry::metrics;

/// What we told FreJun, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FlowOutcome {
    /// Stream the call to us.
    Stream {
        call_id: CallId,
        response: FlowResponse,
    },
    /// Hang up; the call log (if there is one) says why.
    Refused {
        call_id: Option<CallId>,
        reason: EndReason,
    },
    /// Hang up: the `call` parameter names no call of this tenant.
    UnknownCall,
}

impl FlowOutcome {
    /// The JSON FreJun receives.
    pub(crate) fn response(&self) -> FlowResponse {
        match self {
            FlowOutcome::Stream { response, .. } => response.clone(),
            FlowOutcome::Refused { .. } | FlowOutcome::UnknownCall => FlowResponse::Hangup,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The dialled number belongs to another tenant than the key's.
    #[error("the number belongs to another tenant than the key's")]
    ForeignNumber,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CallService {
    /// Answers a flow request. `our_call` is the `call` query parameter (outbound calls).
    pub(crate) async fn answer_flow(
        &self,
        tenant: &UserRecord,
        our_call: Option<&str>,
        request: &FlowRequest,
    ) -> Result<FlowOutcome, FlowError> {
        let outcome = match our_call {
            Some(call) => Ok(self.answer_outbound_flow(tenant, call, request).await?),
            None => self.answer_inbound_flow(tenant, request).await,
        };
        match &outcome {
            Ok(FlowOutcome::Refused { reason, .. }) => {
                metrics::admission_refused("flow", reason.as_str());
            }
            Ok(FlowOutcome::UnknownCall) => metrics::admission_refused("flow", "unknown_call"),
            _ => {}
        }
        outcome
    }

    async fn answer_inbound_flow(
        &self,
        tenant: &UserRecord,
        request: &FlowRequest,
    ) -> Result<FlowOutcome, FlowError> {
        let now = DateTime::now();
        let to = request
            .to_number
            .as_deref()
            .and_then(|number| PhoneNumber::parse(number).ok());
        let number = match &to {
            Some(to) => {
                self.shared
                    .storage
                    .phone_numbers()
                    .route(to.as_str())
                    .await?
            }
            None => None,
        };
        if number.as_ref().is_some_and(|n| n.user_id != tenant.id) {
            return Err(FlowError::ForeignNumber);
        }

        let mut assistant = None;
        let refusal = match &number {
            None => Some(EndReason::UnknownNumber),
            Some(_) if tenant.status == TenantStatus::Suspended => Some(EndReason::TenantSuspended),
            Some(number) if number.status == NumberStatus::Inactive => {
                Some(EndReason::NumberInactive)
            }
            Some(number) => match number.assigned_assistant_id {
                None => Some(EndReason::NumberUnassigned),
                Some(id) => match self.shared.storage.assistants().get(tenant.id, id).await {
                    Ok(found) => {
                        let missing = self.missing_voice_ai_key(tenant, &found);
                        assistant = Some(found);
                        missing
                    }
                    Err(StorageError::NotFound) => Some(EndReason::NumberUnassigned),
                    Err(err) => return Err(err.into()),
                },
            },
        };

        let received = StatusReport::new(
            CallStatus::Initiated,
            now,
            ReportSource::Flow,
            "flow.received",
        );
        let mut reports = vec![received];
        if let Some(reason) = refusal {
            reports.push(refused(reason, now));
        }
        let call = CallLogRecord::new(
            NewCall {
                user_id: tenant.id,
                assistant_id: assistant.as_ref().map(|a| a.id),
                frejun_call_id: request.call_id.clone(),
                from_number: normalised(request.from_number.as_deref()),
                to_number: to
                    .map(|to| to.as_str().to_owned())
                    .or_else(|| request.to_number.as_deref().map(bounded_number)),
                call_type: CallType::Inbound,
            },
            &reports,
            now,
        );
        let calls = self.shared.storage.call_logs();
        let (Some(assistant), None) = (assistant, refusal) else {
            let reason = refusal.unwrap_or(EndReason::NumberUnassigned);
            // Flows for junk numbers cost anyone holding the URL secret nothing: the call logs
            // they leave are capped per tenant per hour (the caller hears the same hang-up).
            let cap = self.shared.settings.frejun.max_refused_flow_logs_per_hour;
            let hour_ago = DateTime::from_millis(now.timestamp_millis() - 3_600_000);
            if calls.count_refused_flows_since(tenant.id, hour_ago).await? >= cap {
                tracing::debug!(%reason, "refused flow not logged: the tenant's hourly cap is reached");
                metrics::call_ended(reason.as_str());
                return Ok(FlowOutcome::Refused {
                    call_id: None,
                    reason,
                });
            }
            return match calls.insert(&call).await {
                Ok(()) => {
                    metrics::call_ended(reason.as_str());
                    tracing::info!(call_id = %call.id, user_id = %tenant.id, %reason, "inbound call refused");
                    Ok(FlowOutcome::Refused {
                        call_id: Some(call.id),
                        reason,
                    })
                }
                Err(StorageError::Conflict) => Ok(self.answer_retry(tenant, &call, now).await?),
                Err(err) => Err(err.into()),
            };
        };

        // The call log and the slot are written together: the flow's latency is one write, not
        // two. A refused slot then marks the log failed; a log that cannot be written gives
        // its slot back.
        let lease_until = after(now, self.shared.settings.frejun.media_arrival_timeout());
        let slots = self.shared.storage.call_slots();
        let limit = tenant.limits.max_concurrent_calls;
        let (inserted, admitted) = tokio::join!(
            calls.insert(&call),
            slots.take(tenant.id, call.id, limit, now, lease_until)
        );
        if let Err(err) = inserted {
            if matches!(admitted, Ok(true)) {
                slots.release(tenant.id, call.id).await?;
            }
            return match err {
                // FreJun repeated a flow request it got no answer to: answer the call we have.
                StorageError::Conflict => Ok(self.answer_retry(tenant, &call, now).await?),
                err => Err(err.into()),
            };
        }
        if !admitted? {
            return Ok(self.refuse_for_limit(tenant, call.id, now).await?);
        }
        Ok(FlowOutcome::Stream {
            call_id: call.id,
            response: self.stream_flow(call.id, &assistant),
        })
    }

    /// The answer to a repeated flow request: the call FreJun already asked about (found by its
    /// FreJun call id, which is unique per tenant) answered again. Another tenant's call with the
    /// same id is no obstacle: uniqueness is per tenant, so no tenant can squat on an id. Should
    /// the call be gone by the time it is looked up, hang up.
    async fn answer_retry(
        &self,
        tenant: &UserRecord,
        call: &CallLogRecord,
        now: DateTime,
    ) -> Result<FlowOutcome, StorageError> {
        let frejun_call_id = call.frejun_call_id.as_deref().unwrap_or_default();
        match self
            .shared
            .storage
            .call_logs()
            .find_by_frejun_call_id(tenant.id, frejun_call_id)
            .await?
        {
            Some(existing) => self.answer_again(tenant, &existing, now).await,
            None => Ok(FlowOutcome::UnknownCall),
        }
    }

    async fn answer_outbound_flow(
        &self,
        tenant: &UserRecord,
        our_call: &str,
        request: &FlowRequest,
    ) -> Result<FlowOutcome, StorageError> {
        let now = DateTime::now();
        let Ok(call_id) = our_call.parse::<CallId>() else {
            return Ok(FlowOutcome::UnknownCall);
        };
        let call = match self
            .shared
            .storage
            .call_logs()
            .get(tenant.id, call_id)
            .await
        {
            Ok(call) => call,
            Err(StorageError::NotFound) => return Ok(FlowOutcome::UnknownCall),
            Err(err) => return Err(err),
        };
        if let (None, Some(frejun_call_id)) = (&call.frejun_call_id, &request.call_id) {
            match self
                .shared
                .storage
                .call_logs()
                .set_frejun_call_id(tenant.id, call.id, frejun_call_id, now)
                .await
            {
                Ok(()) => {}
                Err(StorageError::Conflict) => {
                    tracing::warn!(call_id = %call.id, "FreJun call id already belongs to another call");
                }
                Err(err) => return Err(err),
            }
        }
        if call.call_status.is_terminal() {
            return Ok(FlowOutcome::Refused {
                call_id: Some(call.id),
                reason: call.end_reason.unwrap_or(EndReason::Completed),
            });
        }
        // The flow is fetched when the callee answers.
        let answered = StatusReport::new(
            CallStatus::InProgress,
            now,
            ReportSource::Flow,
            "flow.answered",
        );
        self.shared
            .storage
            .call_logs()
            .apply_status(tenant.id, call.id, &[answered], now)
            .await?;
        self.answer_again(tenant, &call, now).await
    }

    /// The answer for a call log that already exists (an outbound call, or a retried inbound
    /// flow): re-check what may have changed since, then admit or refuse.
    async fn answer_again(
        &self,
        tenant: &UserRecord,
        call: &CallLogRecord,
        now: DateTime,
    ) -> Result<FlowOutcome, StorageError> {
        if call.call_status.is_terminal() {
            return Ok(FlowOutcome::Refused {
                call_id: Some(call.id),
                reason: call.end_reason.unwrap_or(EndReason::Completed),
            });
        }
        let assistant = match call.assistant_id {
            Some(id) => match self.shared.storage.assistants().get(tenant.id, id).await {
                Ok(assistant) => Some(assistant),
                Err(StorageError::NotFound) => None,
                Err(err) => return Err(err),
            },
            None => None,
        };
        let refusal = if tenant.status == TenantStatus::Suspended {
            Some(EndReason::TenantSuspended)
        } else if let Some(assistant) = &assistant {
            self.missing_voice_ai_key(tenant, assistant)
        } else {
            Some(EndReason::AssistantDeleted)
        };
        match (refusal, assistant) {
            (None, Some(assistant)) => self.admit(tenant, call, &assistant, now).await,
            (reason, _) => {
                let reason = reason.unwrap_or(EndReason::AssistantDeleted);
                self.refuse(tenant, call.id, reason, now).await?;
                Ok(FlowOutcome::Refused {
                    call_id: Some(call.id),
                    reason,
                })
            }
        }
    }

    /// Takes (or extends) the call's concurrency slot for the media stream to arrive, and
    /// answers the stream flow; refuses with `concurrency_limit` when the tenant is full.
    async fn admit(
        &self,
        tenant: &UserRecord,
        call: &CallLogRecord,
        assistant: &AssistantRecord,
        now: DateTime,
    ) -> Result<FlowOutcome, StorageError> {
        let lease_until = after(now, self.shared.settings.frejun.media_arrival_timeout());
        let admitted = self
            .shared
            .storage
            .call_slots()
            .take(
                tenant.id,
                call.id,
                tenant.limits.max_concurrent_calls,
                now,
                lease_until,
            )
            .await?;
        if !admitted {
            return self.refuse_for_limit(tenant, call.id, now).await;
        }
        Ok(FlowOutcome::Stream {
            call_id: call.id,
            response: self.stream_flow(call.id, assistant),
        })
    }

    async fn refuse_for_limit(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
        now: DateTime,
    ) -> Result<FlowOutcome, StorageError> {
        self.refuse(tenant, call_id, EndReason::ConcurrencyLimit, now)
            .await?;
        tracing::info!(%call_id, user_id = %tenant.id, "call refused: concurrency limit");
        Ok(FlowOutcome::Refused {
            call_id: Some(call_id),
            reason: EndReason::ConcurrencyLimit,
        })
    }

    /// Marks the call failed for `reason` and frees its slot, if it held one.
    async fn refuse(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
        reason: EndReason,
        now: DateTime,
    ) -> Result<(), StorageError> {
        metrics::call_ended(reason.as_str());
        self.shared
            .storage
            .call_logs()
            .apply_status(tenant.id, call_id, &[refused(reason, now)], now)
            .await?;
        self.shared
            .storage
            .call_slots()
            .release(tenant.id, call_id)
            .await
    }

    /// `missing_credentials` when the tenant lacks the key the assistant's voice AI needs.
    fn missing_voice_ai_key(
        &self,
        tenant: &UserRecord,
        assistant: &AssistantRecord,
    ) -> Option<EndReason> {
        let backend = &assistant.spec.backend;
        let no_key = Credential::for_backend(backend)
            .is_some_and(|credential| tenant.secrets.credential(credential).is_none());
        let no_endpoint = backend.kind == BackendKind::OpenaiCompatibleRealtime
            && tenant.realtime_base_url.is_none();
        (no_key || no_endpoint).then_some(EndReason::MissingCredentials)
    }

    /// `{"action":"stream", ...}` with a `ws_url` to our media endpoint carrying a token bound
    /// to this call and assistant.
    pub(crate) fn stream_flow(&self, call_id: CallId, assistant: &AssistantRecord) -> FlowResponse {
        let call_id = call_id.to_hex();
        let assistant_id = assistant.id.to_hex();
        let mut url = self
            .shared
            .settings
            .public_url(&format!("api/frejun/media-stream/{assistant_id}"));
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // http(s) → ws(s) is always allowed: all four are "special" schemes.
        let _ = url.set_scheme(scheme);
        let token = self.shared.media_tokens.sign(
            &call_id,
            &assistant_id,
            SystemTime::now(),
            self.shared.settings.frejun.media_token_ttl(),
        );
        url.query_pairs_mut()
            .append_pair("call_id", &call_id)
            .append_pair("token", &token);
        let audio = &assistant.spec.audio;
        FlowResponse::Stream {
            ws_url: url.to_string(),
            chunk_size: audio.inbound_chunk_ms,
            sample_rate: audio.inbound_rate.as_str().to_owned(),
            record: true,
        }
    }
}

/// The report of a call refused at flow time.
fn refused(reason: EndReason, now: DateTime) -> StatusReport {
    StatusReport::new(CallStatus::Failed, now, ReportSource::Flow, "flow.refused")
        .ending(reason, None)
}

/// A caller's number in E.164 when it parses, else as FreJun sent it (caller ids can be
/// anything, e.g. "anonymous").
fn normalised(number: Option<&str>) -> Option<String> {
    number.map(|number| {
        PhoneNumber::parse(number)
            .map_or_else(|_| bounded_number(number), |n| n.as_str().to_owned())
    })
}

/// The longest unparsed number kept, in characters: caller ids are short, and a flow is not
/// a way to store kilobytes in a call log.
const MAX_RAW_NUMBER_CHARS: usize = 32;

/// A number that did not parse, as sent but cut to [`MAX_RAW_NUMBER_CHARS`].
fn bounded_number(number: &str) -> String {
    number.trim().chars().take(MAX_RAW_NUMBER_CHARS).collect()
}
