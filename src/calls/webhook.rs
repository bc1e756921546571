//! FreJun's status webhooks, merged into the call log they are about.
//!
//! The call is found by our own id (the `call` parameter of the status URL we gave Teler for an
//! outbound call) or by FreJun's call id, always within the tenant whose key came with the
//! request. Events that match no call are kept in `frejun_events` and acknowledged, because
//! FreJun retries what it sees refused.

use bson::DateTime;

use super::CallService;
use super::tenant_key::KeyError;
use crate::domain::call::record::OtherEvent;
use crate::domain::call::status::media_session_open;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::ids::{CallId, FrejunEventId};
use crate::domain::tenant::TenantStatus;
use crate::frejun::webhook::recording_url_allowed;
use crate::frejun::webhook::{EventKind, WebhookEvent, WebhookParseError};
use crate::storage::StorageError;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::frejun_events::{UnmatchedEvent, payload_text};
use crate::storage::users::UserRecord;
use crate::telemetry::metrics;

/// What became of a webhook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WebhookOutcome {
    /// Merged into the call; its status afterwards.
    Applied { call_id: CallId, status: CallStatus },
    /// Matched no call of the tenant; kept for diagnosis.
    Unmatched { reason: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Not a JSON object. Kept for diagnosis all the same.
    #[error(transparent)]
    Invalid(#[from] WebhookParseError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CallService {
    /// Applies one webhook body. `our_call` is the `call` query parameter, when present.
    pub(crate) async fn apply_webhook(
        &self,
        tenant: &UserRecord,
        our_call: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        // A suspended tenant's webhooks are acknowledged (FreJun must not retry them) but
        // change nothing: its calls are being ended by us, not by whoever holds its URLs.
        if tenant.status == TenantStatus::Suspended {
            return Ok(WebhookOutcome::Unmatched {
                reason: "tenant_suspended",
            });
        }
        let now = DateTime::now();
        let our_call_id = our_call.and_then(|id| id.parse::<CallId>().ok());
        let event = match WebhookEvent::parse(body) {
            Ok(event) => event,
            Err(err) => {
                self.keep_unmatched(tenant, None, our_call_id, None, "unparseable", body, now)
                    .await?;
                return Err(err.into());
            }
        };
        let Some(call) = self.find_call(tenant, our_call_id, &event).await? else {
            let reason = if our_call_id.is_none() && event.frejun_call_id.is_none() {
                "no_call_id"
            } else {
                "unknown_call"
            };
            self.keep_unmatched(
                tenant,
                event.frejun_call_id.clone(),
                our_call_id,
                Some(event.name.clone()),
                reason,
                body,
                now,
            )
            .await?;
            tracing::info!(user_id = %tenant.id, event = %event.name, reason, "webhook matched no call");
            return Ok(WebhookOutcome::Unmatched { reason });
        };

        if let (None, Some(frejun_call_id)) = (&call.frejun_call_id, &event.frejun_call_id) {
            match self
                .shared
                .storage
                .call_logs()
                .set_frejun_call_id(tenant.id, call.id, frejun_call_id, now)
                .await
            {
                Ok(()) | Err(StorageError::Conflict) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let hosts = self.shared.settings.frejun.recording_hosts();
        let Some(report) = report_of(&event, now, &hosts) else {
            // stream.completed and unknown events change nothing by themselves; an unknown
            // one is still kept on the call, so nothing FreJun said is lost.
            if let Some(recording_id) = &event.recording_id {
                // A recording event (`recording.completed`) names no call status but says
                // where the recording is.
                self.shared
                    .storage
                    .call_logs()
                    .record_recording_id(
                        tenant.id,
                        call.id,
                        recording_id,
                        event.occurred_at.unwrap_or(now),
                    )
                    .await?;
            }
            if event.kind == EventKind::Other && !event.name.is_empty() {
                let other = OtherEvent {
                    event: event.name.clone(),
                    at: event.occurred_at.unwrap_or(now),
                };
                self.shared
                    .storage
                    .call_logs()
                    .record_other_event(tenant.id, call.id, &other)
                    .await?;
            }
            return Ok(WebhookOutcome::Applied {
                call_id: call.id,
                status: call.call_status,
            });
        };
        let was_over = call.call_status.is_terminal();
        let call = self
            .shared
            .storage
            .call_logs()
            .apply_status(tenant.id, call.id, &[report], now)
            .await?;
        // A call that never streamed ends here, by FreJun's word (busy, unanswered, failed);
        // one that streamed is counted by its bridge when the stream ends.
        if !was_over && call.call_status.is_terminal() && call.media_stream_claimed_at.is_none() {
            metrics::call_ended(
                call.end_reason
                    .map_or(call.call_status.metric_label(), EndReason::as_str),
            );
        }
        // A call whose media stream is open keeps its slot until the stream ends (its keeper
        // frees it then): a terminal webhook for it may be spoofed by anyone holding the URL
        // secret, and freeing the slot would let the tenant exceed its concurrency limit.
        if call.call_status.is_terminal() && !media_session_open(&call.status_history) {
            self.shared
                .storage
                .call_slots()
                .release(tenant.id, call.id)
                .await?;
        }
        Ok(WebhookOutcome::Applied {
            call_id: call.id,
            status: call.call_status,
        })
    }

    async fn find_call(
        &self,
        tenant: &UserRecord,
        our_call_id: Option<CallId>,
        event: &WebhookEvent,
    ) -> Result<Option<CallLogRecord>, StorageError> {
        let calls = self.shared.storage.call_logs();
        if let Some(id) = our_call_id {
            match calls.get(tenant.id, id).await {
                Ok(call) => return Ok(Some(call)),
                Err(StorageError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        match &event.frejun_call_id {
            Some(frejun_call_id) => {
                calls
                    .find_by_frejun_call_id(tenant.id, frejun_call_id)
                    .await
            }
            None => Ok(None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn keep_unmatched(
        &self,
        tenant: &UserRecord,
        frejun_call_id: Option<String>,
        call_id: Option<CallId>,
        event: Option<String>,
        reason: &str,
        body: &[u8],
        now: DateTime,
    ) -> Result<(), StorageError> {
        // Anyone holding the URL secret can send events for calls that do not exist: what is
        // kept for diagnosis is capped per tenant per hour, so they cannot fill the database.
        let events = self.shared.storage.frejun_events();
        let cap = self.shared.settings.frejun.max_unmatched_events_per_hour;
        let hour_ago = DateTime::from_millis(now.timestamp_millis() - 3_600_000);
        if events.count_since(tenant.id, hour_ago).await? >= cap {
            tracing::debug!(
                reason,
                "unmatched webhook not kept: the tenant's hourly cap is reached"
            );
            return Ok(());
        }
        events
            .insert(&UnmatchedEvent {
                id: FrejunEventId::new(),
                user_id: tenant.id,
                frejun_call_id,
                call_id,
                event,
                reason: reason.to_owned(),
                payload: payload_text(body),
                received_at: now,
            })
            .await
    }
}

/// The status report a webhook amounts to, if any. Its time is FreJun's when it sent one, so a
/// redelivered event carries the same time as the original.
fn report_of(
    event: &WebhookEvent,
    now: DateTime,
    recording_hosts: &[String],
) -> Option<StatusReport> {
    let status = event.implied_status()?;
    let mut report = StatusReport::new(
        status,
        event.occurred_at.unwrap_or(now),
        ReportSource::Webhook,
        event.name.clone(),
    );
    report.proves_answered = event.proves_answered();
    report.duration = event.duration_secs;
    report.recording_url = event
        .recording_url
        .clone()
        .filter(|url| recording_url_allowed(url, recording_hosts));
    report.recording_id = event.recording_id.clone();
    if status == CallStatus::Failed {
        report.end_reason = Some(EndReason::TelephonyError);
    }
    Some(report)
}
