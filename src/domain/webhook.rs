//! Tenants' webhook endpoints and the events voxbridge sends them: the event types, an
//! endpoint's configuration with its create and update bodies and their rules, and the body
//! every delivery carries (Standard Webhooks' recommended `{type, timestamp, data}`, plus the
//! event's `id`, which is also the `webhook-id` of every attempt).
//!
//! Where an endpoint may point (https, or an allow-listed host) depends on the operator's
//! allow-list and is checked above the domain, like HTTP tools' URLs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::call::EndReason;
use super::call::status::{MEDIA_STARTED, StatusFields, bridge_reported};
use super::validation::{ValidationError, check_chars, check_name};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// `POST /api/webhook-endpoints/{id}/test`: nothing happened, the endpoint is being tried.
    #[serde(rename = "ping")]
    Ping,
    /// The call's media stream opened: the assistant is on the line.
    #[serde(rename = "call.started")]
    CallStarted,
    /// FreJun reported a change of the call's status (ringing, answered …).
    #[serde(rename = "call.status")]
    CallStatus,
    /// The call is over, whatever the outcome, with its whole record.
    #[serde(rename = "call.ended")]
    CallEnded,
    /// The call's post-call analysis finished (done, failed or skipped), with its result.
    #[serde(rename = "call.analyzed")]
    CallAnalyzed,
    /// A transfer of the call was asked of FreJun.
    #[serde(rename = "call.transfer.started")]
    CallTransferStarted,
    /// FreJun took the call elsewhere.
    #[serde(rename = "call.transfer.succeeded")]
    CallTransferSucceeded,
    /// FreJun refused the transfer; the call went on.
    #[serde(rename = "call.transfer.failed")]
    CallTransferFailed,
}

impl EventType {
    /// The types an endpoint may subscribe to (`ping` always reaches it, when tested).
    pub const SUBSCRIBABLE: [EventType; 7] = [
        EventType::CallStarted,
        EventType::CallStatus,
        EventType::CallEnded,
        EventType::CallAnalyzed,
        EventType::CallTransferStarted,
        EventType::CallTransferSucceeded,
        EventType::CallTransferFailed,
    ];

    /// The serialized name, e.g. `call.ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Ping => "ping",
            EventType::CallStarted => "call.started",
            EventType::CallStatus => "call.status",
            EventType::CallEnded => "call.ended",
            EventType::CallAnalyzed => "call.analyzed",
            EventType::CallTransferStarted => "call.transfer.started",
            EventType::CallTransferSucceeded => "call.transfer.succeeded",
            EventType::CallTransferFailed => "call.transfer.failed",
        }
    }
}

/// The body of every delivery of an event: `{id, type, timestamp, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    /// `evt_…`; also the `webhook-id` header of every attempt, for receivers' deduplication.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When the event happened (RFC 3339, UTC), not when this attempt was made.
    pub timestamp: String,
    pub data: Value,
}

/// A new event id: `evt_` and 32 hexadecimal digits.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// An event about a call, kept in the call log's outbox from the moment its cause is written
/// (in the same update) until it has been handed to every endpoint that wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened.
    pub at: bson::DateTime,
    /// What the event says besides the call itself; `call.ended` gets the whole call record
    /// when it is handed over.
    pub data: Value,
}

/// The events a change of a call's status fields causes, in the order they happened:
/// `call.started` when the media stream's opening is first reported, `call.status` for every
/// change of the status, `call.transfer.succeeded` when the call leaves by a transfer, and
/// `call.ended` once it reaches a terminal status, whatever the outcome.
pub(crate) fn events_for_change(
    before: &StatusFields,
    after: &StatusFields,
    now: bson::DateTime,
) -> Vec<OutboxEvent> {
    let event = |kind: EventType, data: Value| OutboxEvent {
        id: new_event_id(),
        kind,
        at: now,
        data,
    };
    let media_started =
        |fields: &StatusFields| bridge_reported(&fields.status_history, MEDIA_STARTED);
    let mut events = Vec::new();
    if media_started(after) && !media_started(before) {
        events.push(event(EventType::CallStarted, serde_json::json!({})));
    }
    if after.call_status != before.call_status {
        events.push(event(
            EventType::CallStatus,
            serde_json::json!({
                "status": after.call_status.as_str(),
                "previous_status": before.call_status.as_str(),
            }),
        ));
    }
    let transferred = |fields: &StatusFields| fields.end_reason == Some(EndReason::Transferred);
    if transferred(after) && !transferred(before) {
        events.push(event(
            EventType::CallTransferSucceeded,
            serde_json::json!({}),
        ));
    }
    if after.call_status.is_terminal() && !before.call_status.is_terminal() {
        events.push(event(EventType::CallEnded, serde_json::json!({})));
    }
    events
}

/// The validated configuration of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub url: String,
    /// The types it receives; empty: all of them.
    pub event_types: Vec<EventType>,
    pub description: String,
    pub enabled: bool,
}

/// The body of `POST /api/webhook-endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https://…` (plain `http` only to an allow-listed host), at most 2048 characters.
    #[schema(max_length = 2_048)]
    pub url: String,
    /// The event types to receive; absent or `[]`: all.
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    /// Shown to the tenant only; default empty.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// The body of `PATCH /api/webhook-endpoints/{id}`: absent fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[schema(max_length = 2_048)]
    pub url: Option<String>,
    /// `[]`: all types.
    pub event_types: Option<Vec<EventType>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `true` also clears why the endpoint was disabled.
    pub enabled: Option<bool>,
}

impl EndpointPatch {
    pub fn is_empty(&self) -> bool {
        *self == EndpointPatch::default()
    }
}

impl EndpointSpec {
    pub const URL_MAX_CHARS: usize = 2_048;
    pub const DESCRIPTION_MAX_CHARS: usize = 500;

    pub fn from_new(new: NewEndpoint) -> Result<EndpointSpec, ValidationError> {
        let NewEndpoint {
            url,
            event_types,
            description,
            enabled,
        } = new;
        let spec = EndpointSpec {
            url: url.trim().to_owned(),
            event_types: event_types.unwrap_or_default(),
            description: description.unwrap_or_default(),
            enabled: enabled.unwrap_or(true),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// A copy with the patch's fields replaced, validated.
    pub fn apply(&self, patch: EndpointPatch) -> Result<EndpointSpec, ValidationError> {
        let EndpointPatch {
            url,
            event_types,
            description,
            enabled,
        } = patch;
        let mut spec = self.clone();
        if let Some(url) = url {
            spec.url = url.trim().to_owned();
        }
        if let Some(event_types) = event_types {
            spec.event_types = event_types;
        }
        if let Some(description) = description {
            spec.description = description;
        }
        if let Some(enabled) = enabled {
            spec.enabled = enabled;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every rule; the URL's reachability is checked above the domain.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_chars("url", &self.url, 1, Self::URL_MAX_CHARS)?;
        let url = url::Url::parse(&self.url)
            .map_err(|_| ValidationError::new("url", "must be an absolute https URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(ValidationError::new("url", "must be an absolute https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValidationError::new(
                "url",
                "must not carry a user name or password",
            ));
        }
        for (index, kind) in self.event_types.iter().enumerate() {
            if *kind == EventType::Ping {
                return Err(ValidationError::new(
                    format!("event_types[{index}]"),
                    "ping is sent only by a test, to every endpoint; do not subscribe to it",
                ));
            }
            if self.event_types[..index].contains(kind) {
                return Err(ValidationError::new(
                    format!("event_types[{index}]"),
                    "is listed twice",
                ));
            }
        }
        check_name(
            "description",
            &self.description,
            0,
            Self::DESCRIPTION_MAX_CHARS,
        )
    }

    /// Whether the endpoint receives events of `kind` (when enabled).
    pub fn wants(&self, kind: EventType) -> bool {
        kind == EventType::Ping || self.event_types.is_empty() || self.event_types.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(value: Value) -> Result<EndpointSpec, String> {
        let new: NewEndpoint = serde_json::from_value(value).map_err(|err| err.to_string())?;
        EndpointSpec::from_new(new).map_err(|err| err.to_string())
    }

    #[test]
    fn defaults_and_subscriptions() {
        let spec = new(serde_json::json!({"url": " https://crm.example.com/hooks "})).unwrap();
        assert_eq!(spec.url, "https://crm.example.com/hooks");
        assert!(spec.enabled && spec.event_types.is_empty() && spec.description.is_empty());
        assert!(spec.wants(EventType::CallEnded) && spec.wants(EventType::CallStatus));
        let only =
            new(serde_json::json!({"url": "https://x.example/", "event_types": ["call.ended"]}))
                .unwrap();
        assert!(only.wants(EventType::CallEnded) && only.wants(EventType::Ping));
        assert!(!only.wants(EventType::CallStatus));
        let patched = only
            .apply(EndpointPatch {
                event_types: Some(Vec::new()),
                enabled: Some(false),
                ..EndpointPatch::default()
            })
            .unwrap();
        assert!(patched.wants(EventType::CallStatus) && !patched.enabled);
    }

    #[test]
    fn broken_rules_name_the_field() {
        for (value, expected) in [
            (serde_json::json!({"url": "ftp://x.example/"}), "url:"),
            (
                serde_json::json!({"url": "https://u:p@x.example/"}),
                "url: must not carry",
            ),
            (
                serde_json::json!({"url": "https://x.example/", "event_types": ["ping"]}),
                "event_types[0]",
            ),
            (
                serde_json::json!({"url": "https://x.example/", "event_types": ["call.ended", "call.ended"]}),
                "event_types[1]: is listed twice",
            ),
            (
                serde_json::json!({"url": "https://x.example/", "description": "a\u{202E}b"}),
                "description",
            ),
        ] {
            let error = new(value.clone()).unwrap_err();
            assert!(error.starts_with(expected), "{value}: {error}");
        }
        assert!(
            new(serde_json::json!({"url": "https://x.example/", "event_types": ["call.exploded"]}))
                .is_err()
        );
        assert!(new(serde_json::json!({"url": "https://x.example/", "secret": "x"})).is_err());
    }

    #[test]
    fn status_changes_cause_events_in_order() {
        use crate::domain::call::CallStatus;
        use crate::domain::call::status::{ReportSource, StatusReport};
        let at = bson::DateTime::from_millis(1_000);
        let report = |status, source, event: &str| StatusReport::new(status, at, source, event);
        let initial = StatusFields::from_reports(&[]);
        let ringing = StatusFields::from_reports(&[report(
            CallStatus::Ringing,
            ReportSource::Webhook,
            "status:ringing",
        )]);
        let kinds = |events: Vec<OutboxEvent>| events.iter().map(|e| e.kind).collect::<Vec<_>>();
        assert_eq!(
            kinds(events_for_change(&initial, &ringing, at)),
            [EventType::CallStatus]
        );
        let mut streaming = ringing.clone();
        streaming.merge(&report(
            CallStatus::InProgress,
            ReportSource::Bridge,
            MEDIA_STARTED,
        ));
        assert_eq!(
            kinds(events_for_change(&ringing, &streaming, at)),
            [EventType::CallStarted, EventType::CallStatus]
        );
        let mut ended = streaming.clone();
        ended.merge(
            &report(CallStatus::Completed, ReportSource::Api, "api.transfer")
                .ending(EndReason::Transferred, None),
        );
        let events = events_for_change(&streaming, &ended, at);
        assert_eq!(
            kinds(events.clone()),
            [
                EventType::CallStatus,
                EventType::CallTransferSucceeded,
                EventType::CallEnded
            ]
        );
        assert_eq!(events[0].data["status"], "completed");
        assert_eq!(events[0].data["previous_status"], "in-progress");
        assert!(events.iter().all(|e| e.id.starts_with("evt_")));
        assert!(
            events_for_change(&ended, &ended, at).is_empty(),
            "no change, no event"
        );
        // A call refused at its flow is created terminal: it ends at once.
        let refused = StatusFields::from_reports(&[report(
            CallStatus::Failed,
            ReportSource::Flow,
            "flow.refused",
        )]);
        assert_eq!(
            kinds(events_for_change(&initial, &refused, at)),
            [EventType::CallStatus, EventType::CallEnded]
        );
    }

    #[test]
    fn event_names_are_the_public_contract() {
        for (kind, name) in [
            (EventType::Ping, "ping"),
            (EventType::CallStarted, "call.started"),
            (EventType::CallStatus, "call.status"),
            (EventType::CallEnded, "call.ended"),
            (EventType::CallAnalyzed, "call.analyzed"),
            (EventType::CallTransferStarted, "call.transfer.started"),
            (EventType::CallTransferSucceeded, "call.transfer.succeeded"),
            (EventType::CallTransferFailed, "call.transfer.failed"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(kind.as_str(), name);
        }
    }
}
