//! FreJun's status webhooks for one call, sent the way FreJun sends them: the documented
//! envelope (`frejun_payloads::events`), FreJun's timestamps, one event per step of the call.
//!
//! Order. docs/protocols.md §1.7 lists the events but no source states their order, so the order
//! here follows the call's own life (and what FreJun's Devnagri bridge expects: `call.initiated`
//! first, `stream.initiated` after it, `call.completed` last):
//! - inbound: `call.initiated`, the flow fetch, `call.answered`, `stream.initiated`, the
//!   stream, `stream.completed`, `call.completed`. voxbridge creates the call log when it
//!   answers the flow, so it acknowledges the first `call.initiated` as
//!   `{"status":"ignored","reason":"unknown_call"}`: that is expected.
//! - outbound: `call.initiated`, `call.ringing`, `call.answered`, the flow fetch (FreJun fetches
//!   it when the callee picks up), `stream.initiated`, the stream, `stream.completed`,
//!   `call.completed`.
//! - a call voxbridge hangs up in the flow: `call.completed` straight after the flow.
//!
//! [`Lifecycle::before_flow`] and [`Lifecycle::after_flow`] encode the per-direction part.
//!
//! A webhook that fails (no answer, or an error status) is written down, never fatal: FreJun
//! does not stop a call because its webhook receiver is down.

use std::fmt;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use super::Direction;
use crate::domain::error_chain::ErrorChain;
use crate::sim::frejun_payloads::events;
use crate::sim::frejun_requests::{post_webhook, redact_key};

/// What became of one webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookResult {
    /// Answered 2xx; voxbridge's answer (`{"status":"received",…}` or
    /// `{"status":"ignored","reason"}`).
    Delivered { status: u16, answer: Value },
    /// Answered with an error status (a wrong `key` is 401).
    Refused { status: u16, answer: Value },
    /// No answer at all.
    Unreachable(String),
}

/// One webhook sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReport {
    /// FreJun's event name, e.g. `call.answered`.
    pub event: &'static str,
    pub result: WebhookResult,
}

impl WebhookReport {
    /// The webhook was not accepted.
    pub(crate) fn failed(&self) -> bool {
        !matches!(self.result, WebhookResult::Delivered { .. })
    }
}

impl fmt::Display for WebhookReport {
    /// `call.answered: 200 received (in-progress)`, `call.initiated: 200 ignored
    /// (unknown_call)`, `call.completed: HTTP 401 invalid_frejun_key`, `…: unreachable: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |answer: &Value, field: &str| {
            answer.get(field).and_then(Value::as_str).map(str::to_owned)
        };
        match &self.result {
            WebhookResult::Delivered { status, answer } => {
                write!(f, "{}: {status}", self.event)?;
                if let Some(outcome) = text(answer, "status") {
                    write!(f, " {outcome}")?;
                }
                match text(answer, "call_status").or_else(|| text(answer, "reason")) {
                    Some(detail) => write!(f, " ({detail})"),
                    None => Ok(()),
                }
            }
            WebhookResult::Refused { status, answer } => {
                let code = answer
                    .get("error")
                    .and_then(|error| error.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("-");
                write!(f, "{}: HTTP {status} {code}", self.event)
            }
            WebhookResult::Unreachable(reason) => {
                write!(f, "{}: unreachable: {reason}", self.event)
            }
        }
    }
}

/// Sends one call's webhooks to its status-callback URL, or nothing when it has none.
pub struct Lifecycle {
    http: reqwest::Client,
    webhook_url: Option<String>,
    frejun_call_id: String,
    from: String,
    to: String,
    /// FreJun's recording of the call, reported with `call.completed`.
    recording_id: Option<String>,
    reports: Vec<WebhookReport>,
}

impl Lifecycle {
    /// `from` and `to` as FreJun reports them: the caller and the dialled number (for outbound
    /// calls the tenant's number and the callee).
    pub(crate) fn new(
        http: reqwest::Client,
        webhook_url: Option<String>,
        frejun_call_id: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> Self {
        Lifecycle {
            http,
            webhook_url,
            frejun_call_id: frejun_call_id.into(),
            from: from.into(),
            to: to.into(),
            recording_id: None,
            reports: Vec::new(),
        }
    }

    /// FreJun recorded the call (`rec_…`): `call.completed` carries the recording's id.
    pub(crate) fn recorded_as(&mut self, recording_id: String) {
        self.recording_id = Some(recording_id);
    }

    /// Where the webhooks go, with the secret `key` hidden.
    pub(crate) fn redacted_url(&self) -> Option<String> {
        self.webhook_url.as_deref().map(redact_key)
    }

    #[cfg(test)]
    /// Every webhook sent so far, in order.
    pub(crate) fn reports(&self) -> &[WebhookReport] {
        &self.reports
    }

    /// The webhooks that were not accepted, as lines for a person.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter(|report| report.failed())
            .map(ToString::to_string)
            .collect()
    }

    /// The events FreJun sends before it fetches the flow: inbound `call.initiated`; outbound
    /// `call.initiated`, `call.ringing`, `call.answered`. The reports of those sent.
    pub(crate) async fn before_flow(&mut self, direction: Direction) -> Vec<WebhookReport> {
        let first = self.reports.len();
        self.initiated().await;
        if direction == Direction::Outbound {
            self.ringing().await;
            self.answered().await;
        }
        self.reports.get(first..).unwrap_or_default().to_vec()
    }

    /// The events FreJun sends once a stream flow is answered, before the stream opens:
    /// inbound `call.answered`; nothing more for outbound (answered before the flow).
    pub(crate) async fn after_flow(&mut self, direction: Direction) -> Option<WebhookReport> {
        match direction {
            Direction::Inbound => self.answered().await,
            Direction::Outbound => None,
        }
    }

    /// `call.initiated`.
    pub(crate) async fn initiated(&mut self) -> Option<WebhookReport> {
        let payload = events::call_initiated(&self.frejun_call_id, &self.from, &self.to, &now());
        self.send("call.initiated", payload).await
    }

    /// `call.ringing`.
    pub(crate) async fn ringing(&mut self) -> Option<WebhookReport> {
        let payload = events::call_ringing(&self.frejun_call_id, &self.from, &self.to);
        self.send("call.ringing", payload).await
    }

    /// `call.answered`.
    pub(crate) async fn answered(&mut self) -> Option<WebhookReport> {
        let payload = events::call_answered(&self.frejun_call_id, &self.from, &self.to, &now());
        self.send("call.answered", payload).await
    }

    /// `stream.initiated` for the media stream `stream_id`.
    pub(crate) async fn stream_initiated(&mut self, stream_id: &str) -> Option<WebhookReport> {
        let payload = events::stream_initiated(&self.frejun_call_id, stream_id, &now());
        self.send("stream.initiated", payload).await
    }

    /// `stream.completed` for the media stream `stream_id`.
    pub(crate) async fn stream_completed(&mut self, stream_id: &str) -> Option<WebhookReport> {
        let payload = events::stream_completed(&self.frejun_call_id, stream_id, &now());
        self.send("stream.completed", payload).await
    }

    /// `call.completed`; `duration` is sent in whole seconds, as FreJun does.
    pub(crate) async fn completed(&mut self, duration: Duration) -> Option<WebhookReport> {
        let seconds = duration.as_secs() + u64::from(duration.subsec_millis() >= 500);
        let mut payload =
            events::call_completed(&self.frejun_call_id, &self.from, &self.to, seconds, &now());
        if let Some(recording_id) = &self.recording_id {
            payload["data"]["recording_id"] = Value::String(recording_id.clone());
        }
        self.send("call.completed", payload).await
    }

    async fn send(&mut self, event: &'static str, payload: Value) -> Option<WebhookReport> {
        let url = self.webhook_url.as_deref()?;
        let result = match post_webhook(&self.http, url, &payload).await {
            Ok((status, answer)) if (200..300).contains(&status) => {
                WebhookResult::Delivered { status, answer }
            }
            Ok((status, answer)) => WebhookResult::Refused { status, answer },
            // reqwest's message repeats the URL, whose `key` is the tenant's secret.
            Err(error) => WebhookResult::Unreachable(ErrorChain(&error.without_url()).to_string()),
        };
        let report = WebhookReport { event, result };
        self.reports.push(report.clone());
        Some(report)
    }
}

/// Now, as FreJun writes its timestamps (RFC 3339, UTC, seconds).
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}
