//! Status webhooks (docs/frejun-setup.md): FreJun tells us a call or its media stream moved on.
//!
//! Two shapes are accepted, because sources disagree and a missed "call ended" leaves a
//! call log stuck in progress forever:
//!
//! - The documented envelope, `{"event":"call.answered","account_id":..,"call_app_id":..,
//!   "data":{"call_id":..,"from":..,"to":..,"answer_time":..}}`. Newer API versions name the
//!   event with a dotted `type` instead of `event`.
//! - CONVIS's flat shape, `{"call_id":..,"status":"in-progress","duration":12}`, with
//!   Twilio-style statuses.
//!
//! Every field is looked up first in `data` (when it is an object) and then at the top level, so
//! flat payloads and envelopes share one code path. Parsing fails only when the body is not a
//! JSON object; everything else (a missing call id, an unknown event) is reported in the
//! [`WebhookEvent`] for the handler to judge, because FreJun retries non-2xx deliveries and a
//! payload we cannot use will not improve on retry.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use super::flow::{bounded_call_id, text_field};
use crate::domain::call::CallStatus;

/// Keys that may carry FreJun's call id. `id` is deliberately absent: in event envelopes it is
/// the event's own id (`evt_…`), and taking it for a call id would match nothing or, worse,
/// something else.
const CALL_ID_KEYS: &[&str] = &["call_id", "callId"];
/// Keys that may carry the caller's number (`from` in webhooks, `from_number` in flows).
const FROM_KEYS: &[&str] = &["from", "from_number", "fromNumber"];
/// Keys that may carry the called number.
const TO_KEYS: &[&str] = &["to", "to_number", "toNumber"];
/// Keys that may carry the media stream's id.
const STREAM_ID_KEYS: &[&str] = &["stream_id", "streamId"];
/// Keys that may carry the recording's URL.
const RECORDING_URL_KEYS: &[&str] = &["recording_url", "recordingUrl"];
/// Keys that may carry FreJun's recording id (`rec_…`).
const RECORDING_ID_KEYS: &[&str] = &["recording_id", "recordingId"];
/// Keys that may carry when the event happened, latest moment first: a `call.completed` that
/// also repeats its start and answer times is stamped with its hangup time. The generic
/// `timestamp`/`time` (delivery metadata in some shapes) come last.
const TIME_KEYS: &[&str] = &[
    "hangup_time",
    "end_time",
    "answer_time",
    "start_time",
    "timestamp",
    "time",
];
/// Epoch numbers above this are milliseconds: as seconds it would be the year 33658.
const EPOCH_MILLIS_THRESHOLD: f64 = 1e12;
/// The last millisecond of 9999-12-31 UTC. Later instants are garbage, not timestamps, and
/// would not survive formatting as RFC 3339 anyway.
const MAX_EPOCH_MILLIS: f64 = 253_402_300_799_999.0;

/// One status-webhook delivery, normalised from either shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WebhookEvent {
    /// The event name as received (`call.answered`), or for the flat shape `status:<status>`
    /// (e.g. `status:in-progress`), with the status as received. Empty when the body names
    /// neither an event nor a status. Kept for logs and diagnosis; decisions use [`Self::kind`].
    pub name: String,
    /// FreJun's call id (`call_id` or `callId`), `None` when absent: the handler decides whether
    /// a token in the webhook URL identifies the call instead.
    pub frejun_call_id: Option<String>,
    /// What the event means for the call.
    pub kind: EventKind,
    /// When FreJun says it happened (`hangup_time`, `end_time`, `answer_time`, `start_time`,
    /// then `timestamp`/`time`; the first that parses). Accepted formats: RFC 3339 (with or
    /// without offset; naive → UTC), `YYYY-MM-DD HH:MM:SS` (optionally with fraction and
    /// offset), or a unix epoch number or numeric string (seconds, or milliseconds if > 10^12).
    /// `None` when absent, unparseable or outside 1970-01-01 to 9999-12-31 UTC; the caller then
    /// uses the time of receipt.
    pub occurred_at: Option<bson::DateTime>,
    /// Seconds (`call.completed`'s `duration` / the flat `duration`), from a number or numeric
    /// string; negative, NaN or infinite values are `None`.
    pub duration_secs: Option<f64>,
    /// The recording's URL (`recording_url` or `recordingUrl`), when FreJun sends one.
    pub recording_url: Option<String>,
    /// FreJun's recording id (`recording_id` or `recordingId`: `rec_` + a ULID, or a UUID),
    /// when FreJun sends one; anything else is dropped.
    pub recording_id: Option<String>,
    /// The caller's number as FreJun sent it (`from`, `from_number` or `fromNumber`).
    pub from: Option<String>,
    /// The called number as FreJun sent it (`to`, `to_number` or `toNumber`).
    pub to: Option<String>,
    /// The media stream's id (`stream_id` or `streamId`), on `stream.*` events.
    pub stream_id: Option<String>,
}

/// What an event means for the call's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A lifecycle status: initiated, ringing, answered (→ InProgress), stream started
    /// (→ InProgress).
    Progress(CallStatus),
    /// FreJun says the call is over. `explicit` is Some for the flat shape's
    /// busy/failed/no-answer/completed, None for `call.completed` (whether it becomes completed
    /// or no-answer depends on whether the call was ever answered — decided elsewhere).
    Ended {
        /// The terminal status the sender named, if it named one.
        explicit: Option<CallStatus>,
    },
    /// `stream.completed`: the media stream ended; no status change by itself.
    StreamEnded,
    /// Anything else (unknown event name/status): kept for diagnosis, no status change.
    Other,
}

/// A webhook body that is not a JSON object. The message is short and fixed (it never echoes
/// the body), so it is safe to log and to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WebhookParseError(&'static str);

impl WebhookEvent {
    /// Parses a webhook body. `Err` only for non-JSON or non-object bodies; a missing call id is
    /// `Ok` with `frejun_call_id: None`, and an unknown event is `Ok` with [`EventKind::Other`].
    ///
    /// The event is named by a top-level `event`, else by a top-level dotted `type` (a `type`
    /// without a dot, e.g. `"outbound"`, is some other attribute), else by a `status` (flat
    /// shape). When an event name is present a `status` is ignored: an unknown event such as a
    /// recording's `*.completed` must not be misread as the call's status.
    pub(crate) fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookParseError> {
        let top = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(top)) => top,
            Ok(_) => return Err(WebhookParseError("webhook body is JSON but not an object")),
            Err(_) => return Err(WebhookParseError("webhook body is not JSON")),
        };
        let fields = Fields {
            data: top.get("data").and_then(Value::as_object),
            top: &top,
        };

        let event = text_field(&top, &["event"])
            .or_else(|| text_field(&top, &["type"]).filter(|kind| kind.contains('.')));
        // Names are stored in the call's status history, keyed for de-duplication: a known
        // event gets its canonical spelling (case variants of one event are one entry), an
        // unknown one is kept short (it changes no status and is never stored in the history).
        let (name, kind) = match event {
            Some(event) => {
                let mut kind = kind_of_event(&event);
                if kind == EventKind::Other && is_call_event(&event) {
                    // A call event this version does not name (FreJun's 2026-06-01 webhook
                    // catalogue is unpublished): the call's state, if the body says it, still
                    // counts. Only for `call.*`: a recording's `*.completed` says nothing
                    // about the call.
                    if let Some(state) = fields.text(&["state", "status", "call_status"]) {
                        kind = kind_of_status(&state);
                    }
                }
                let name = match kind {
                    EventKind::Other => bounded(&event),
                    _ => bounded(&event.trim().to_ascii_lowercase()),
                };
                (name, kind)
            }
            None => match fields.text(&["status"]) {
                Some(status) => {
                    let kind = kind_of_status(&status);
                    let name = match kind {
                        EventKind::Progress(status)
                        | EventKind::Ended {
                            explicit: Some(status),
                        } => format!("status:{status}"),
                        _ => format!("status:{}", bounded(&status)),
                    };
                    (name, kind)
                }
                None => (String::new(), EventKind::Other),
            },
        };

        Ok(WebhookEvent {
            name,
            frejun_call_id: bounded_call_id(fields.text(CALL_ID_KEYS)),
            kind,
            occurred_at: fields.values(TIME_KEYS).find_map(parse_time),
            duration_secs: fields.values(&["duration"]).find_map(parse_duration),
            recording_url: fields.text(RECORDING_URL_KEYS),
            recording_id: fields
                .text(RECORDING_ID_KEYS)
                .filter(|id| is_recording_id(id)),
            from: fields.text(FROM_KEYS),
            to: fields.text(TO_KEYS),
            stream_id: fields.text(STREAM_ID_KEYS),
        })
    }

    /// The status this event implies on its own: `Progress(s)` → `Some(s)`;
    /// `Ended { explicit: Some(s) }` → `Some(s)`; `Ended { explicit: None }` → `Some(Completed)`
    /// (the caller downgrades it to no-answer when the call was never answered); others `None`.
    pub(crate) fn implied_status(&self) -> Option<CallStatus> {
        match self.kind {
            EventKind::Progress(status) => Some(status),
            EventKind::Ended { explicit } => Some(explicit.unwrap_or(CallStatus::Completed)),
            EventKind::StreamEnded | EventKind::Other => None,
        }
    }

    /// Whether this event proves the call was answered: `call.answered`, `stream.initiated`
    /// (FreJun only streams connected calls), flat `in-progress`/`answered`, or a flat
    /// `completed` with duration > 0.
    ///
    /// `call.completed`'s duration proves nothing: the docs do not say whether it counts ringing
    /// time, so an unanswered call may report a positive duration.
    pub(crate) fn proves_answered(&self) -> bool {
        match self.kind {
            EventKind::Progress(CallStatus::InProgress) => true,
            EventKind::Ended {
                explicit: Some(CallStatus::Completed),
            } => self.duration_secs.is_some_and(|secs| secs > 0.0),
            _ => false,
        }
    }
}

/// Where a payload's fields may live: `data` first (the documented envelope), then the top
/// level (the flat shape, and envelopes that hoist fields).
struct Fields<'a> {
    data: Option<&'a Map<String, Value>>,
    top: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The scopes in lookup order.
    fn scopes(&self) -> impl Iterator<Item = &'a Map<String, Value>> {
        self.data.into_iter().chain(std::iter::once(self.top))
    }

    /// The first non-empty text value among `keys`, in `data` and then at the top level.
    fn text(&self, keys: &[&str]) -> Option<String> {
        self.scopes().find_map(|scope| text_field(scope, keys))
    }

    /// Every present value among `keys`, in lookup order, so the caller can take the first one
    /// that parses rather than give up on the first one present.
    fn values<'k>(&self, keys: &'k [&'k str]) -> impl Iterator<Item = &'a Value> {
        self.scopes()
            .flat_map(move |scope| keys.iter().filter_map(move |key| scope.get(*key)))
    }
}

/// The meaning of a documented (or newer, dotted `type`) event name. Matching ignores case and
/// surrounding whitespace; nothing in the docs depends on either.
fn kind_of_event(event: &str) -> EventKind {
    match event.trim().to_ascii_lowercase().as_str() {
        "call.initiated" => EventKind::Progress(CallStatus::Initiated),
        "call.ringing" => EventKind::Progress(CallStatus::Ringing),
        "call.answered" => EventKind::Progress(CallStatus::InProgress),
        // Only undecided here: FreJun documents no busy/no-answer/failed events, so an
        // unanswered call is a `call.completed` without a prior answer.
        "call.completed" => EventKind::Ended { explicit: None },
        // FreJun opens the media stream only once the call is connected.
        "stream.initiated" => EventKind::Progress(CallStatus::InProgress),
        "stream.completed" => EventKind::StreamEnded,
        // Names a newer webhook version may use for the same moments (not in the 2025
        // catalogue; see docs/frejun-setup.md): matched so the status is not lost.
        "call.created" | "call.queued" => EventKind::Progress(CallStatus::Initiated),
        "call.connected" | "call.in_progress" | "call.bridged" => {
            EventKind::Progress(CallStatus::InProgress)
        }
        "call.ended" | "call.hangup" | "call.hung_up" | "call.disconnected" | "call.terminated"
        | "call.finished" => EventKind::Ended { explicit: None },
        _ => EventKind::Other,
    }
}

/// FreJun's recording ids: `rec_` and 26 base32 characters, or a canonical UUID.
pub(crate) fn is_recording_id(id: &str) -> bool {
    let ulid = id
        .strip_prefix("rec_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    let uuid = id.len() == 36
        && id.bytes().enumerate().all(|(index, b)| match index {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    ulid || uuid
}

/// Whether an event name is about the call itself (`call.…`).
fn is_call_event(event: &str) -> bool {
    event.trim().to_ascii_lowercase().starts_with("call.")
}

/// The meaning of a flat-shape, Twilio-style status. Case, `_` and spaces are normalised
/// (`no_answer`, `In Progress`), and `noanswer`/`inprogress` are accepted too.
///
/// Decisions beyond the documented list: `answered` is in-progress; Twilio's `queued` is
/// initiated; `canceled`/`cancelled` is no-answer, because Twilio uses it for a call hung up
/// while still queued or ringing: it was never answered, and it is no carrier fault (`failed`).
fn kind_of_status(status: &str) -> EventKind {
    let normalised = status.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    let ended = |status| EventKind::Ended {
        explicit: Some(status),
    };
    match normalised.as_str() {
        "initiated" | "queued" => EventKind::Progress(CallStatus::Initiated),
        "ringing" => EventKind::Progress(CallStatus::Ringing),
        "in-progress" | "inprogress" | "answered" => EventKind::Progress(CallStatus::InProgress),
        "completed" => ended(CallStatus::Completed),
        "busy" => ended(CallStatus::Busy),
        "failed" => ended(CallStatus::Failed),
        "no-answer" | "noanswer" | "canceled" | "cancelled" => ended(CallStatus::NoAnswer),
        _ => EventKind::Other,
    }
}

/// A duration in seconds from a number or numeric string; negative, NaN or infinite → `None`.
/// The longest call duration believed, in seconds (a week): anything larger is garbage that
/// would overflow the statistics' totals.
const MAX_DURATION_SECS: f64 = 7.0 * 24.0 * 3_600.0;

/// The longest event name or unknown status kept, in characters.
const MAX_NAME_CHARS: usize = 64;

fn parse_duration(value: &Value) -> Option<f64> {
    let secs = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (secs.is_finite() && (0.0..=MAX_DURATION_SECS).contains(&secs)).then_some(secs)
}

/// `text` trimmed and cut to [`MAX_NAME_CHARS`] characters.
fn bounded(text: &str) -> String {
    text.trim().chars().take(MAX_NAME_CHARS).collect()
}

/// Whether a recording URL from a webhook may be stored and shown to the tenant: `https` only,
/// on one of `hosts` (exact names, or `*.domain` for its subdomains). Anything else, such as
/// `javascript:` or a host an attacker controls, is dropped.
pub(crate) fn recording_url_allowed(url: &str, hosts: &[String]) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    url.scheme() == "https"
        && hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            match allowed.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == allowed,
            }
        })
}

/// A timestamp in any accepted format (see [`WebhookEvent::occurred_at`]).
fn parse_time(value: &Value) -> Option<bson::DateTime> {
    match value {
        Value::Number(number) => from_epoch(number.as_f64()?),
        Value::String(text) => {
            let text = text.trim();
            if let Ok(epoch) = text.parse::<f64>() {
                return from_epoch(epoch);
            }
            parse_time_text(text).filter(|moment| in_range(*moment))
        }
        _ => None,
    }
}

/// Whether a textual time lies in the range [`from_epoch`] accepts, from the epoch to
/// [`MAX_EPOCH_MILLIS`]: year 0 or 1900 is no more a webhook's time than a negative epoch is.
fn in_range(moment: bson::DateTime) -> bool {
    // Exact: chrono's years (±262,143) stay within ±2^53 milliseconds.
    (0.0..=MAX_EPOCH_MILLIS).contains(&(moment.timestamp_millis() as f64))
}

/// A textual date-time with or without an offset; a naive one is taken as UTC because that is
/// what servers emit when they leave the zone out.
fn parse_time_text(text: &str) -> Option<bson::DateTime> {
    const WITH_OFFSET: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.fZ",
    ];
    const NAIVE: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];

    let with_offset = DateTime::parse_from_rfc3339(text).ok().or_else(|| {
        WITH_OFFSET
            .iter()
            .find_map(|format| DateTime::parse_from_str(text, format).ok())
    });
    if let Some(moment) = with_offset {
        return Some(bson::DateTime::from_chrono(moment));
    }
    NAIVE
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| bson::DateTime::from_chrono(naive.and_utc()))
}

/// A unix epoch in seconds, or in milliseconds when above [`EPOCH_MILLIS_THRESHOLD`]. Negative,
/// non-finite and far-future values are not timestamps.
fn from_epoch(epoch: f64) -> Option<bson::DateTime> {
    if !epoch.is_finite() || epoch < 0.0 {
        return None;
    }
    let millis = if epoch > EPOCH_MILLIS_THRESHOLD {
        epoch
    } else {
        epoch * 1000.0
    }
    .round();
    // In range, so the cast is exact: 0 ≤ millis ≤ MAX_EPOCH_MILLIS < 2^53.
    (millis <= MAX_EPOCH_MILLIS).then(|| bson::DateTime::from_millis(millis as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_and_bounded() {
        for (body, name) in [
            (
                json!({"event": "CALL.Answered", "data": {"call_id": "c"}}),
                "call.answered",
            ),
            (
                json!({"event": " call.answered ", "data": {"call_id": "c"}}),
                "call.answered",
            ),
            (
                json!({"call_id": "c", "status": "NoAnswer"}),
                "status:no-answer",
            ),
            (
                json!({"call_id": "c", "status": "In Progress"}),
                "status:in-progress",
            ),
        ] {
            assert_eq!(parse(body).name, name);
        }
        let long = "x".repeat(5_000);
        assert!(parse(json!({"event": long, "data": {}})).name.len() <= 64);
        assert!(parse(json!({"status": long, "call_id": "c"})).name.len() <= "status:".len() + 64);
    }

    #[test]
    fn newer_call_event_names_keep_the_calls_status() {
        let kind = |body: Value| parse(body).kind;
        assert_eq!(
            kind(json!({"type": "call.hangup", "data": {"call_id": "c"}})),
            EventKind::Ended { explicit: None }
        );
        assert_eq!(
            kind(json!({"type": "call.connected", "data": {"call_id": "c"}})),
            EventKind::Progress(CallStatus::InProgress)
        );
        // An unknown call event that says the call's state.
        assert_eq!(
            kind(
                json!({"type": "call.state_changed", "data": {"call_id": "c", "state": "in_progress"}})
            ),
            EventKind::Progress(CallStatus::InProgress)
        );
        assert_eq!(
            kind(json!({"event": "call.status", "data": {"call_id": "c", "status": "busy"}})),
            EventKind::Ended {
                explicit: Some(CallStatus::Busy)
            }
        );
        // Not about the call, or saying nothing: no status, the name kept.
        let recording = parse(
            json!({"type": "recording.completed", "data": {"call_id": "c", "status": "completed"}}),
        );
        assert_eq!(recording.kind, EventKind::Other);
        assert_eq!(recording.name, "recording.completed");
        assert_eq!(
            kind(json!({"type": "call.transferred", "data": {"call_id": "c"}})),
            EventKind::Other
        );
    }

    #[test]
    fn recording_ids_are_taken_only_in_frejuns_shapes() {
        let id = |value: Value| {
            parse(
                json!({"event": "call.completed", "data": {"call_id": "c", "recording_id": value}}),
            )
            .recording_id
        };
        assert_eq!(
            id(json!("rec_01JQ8Z6YH0A2B3C4D5E6F7G8H9")).as_deref(),
            Some("rec_01JQ8Z6YH0A2B3C4D5E6F7G8H9")
        );
        assert!(id(json!("0b7c3f0e-8d3e-4c55-9a39-6f1f5a0c1d2e")).is_some());
        for bad in [
            json!("rec_x"),
            json!("../../etc"),
            json!("rec_01JQ8Z6YH0A2B3C4D5E6F7G8H9?x=1"),
            json!(7),
        ] {
            assert_eq!(id(bad), None);
        }
    }

    #[test]
    fn absurd_durations_are_dropped() {
        for duration in [json!(1e308), json!("1e308"), json!(-1), json!(700_000)] {
            let event = parse(json!({"call_id": "c", "status": "completed", "duration": duration}));
            assert_eq!(event.duration_secs, None);
        }
        let event = parse(json!({"call_id": "c", "status": "completed", "duration": 600}));
        assert_eq!(event.duration_secs, Some(600.0));
    }

    #[test]
    fn only_https_recordings_on_allowed_hosts_are_kept() {
        let hosts = vec!["frejun.ai".to_owned(), "*.frejun.com".to_owned()];
        for url in [
            "https://frejun.ai/rec/1.wav",
            "https://media.frejun.com/rec/1.wav",
            "https://A.B.FREJUN.COM/x",
        ] {
            assert!(recording_url_allowed(url, &hosts), "{url}");
        }
        for url in [
            "http://frejun.ai/rec/1.wav",
            "zzzz:javascript:alert(1)",
            "javascript:alert(1)",
            "https://frejun.ai.evil.example/x",
            "https://evilfrejun.com/x",
            "https://frejun.com/x",
            "not a url",
        ] {
            assert!(!recording_url_allowed(url, &hosts), "{url}");
        }
    }
    use serde_json::json;

    fn parse(body: Value) -> WebhookEvent {
        WebhookEvent::parse(body.to_string().as_bytes()).unwrap()
    }

    fn envelope(event: &str, data: Value) -> Value {
        json!({"event": event, "account_id": "acc_1", "call_app_id": "va_1", "data": data})
    }

    fn at(rfc3339: &str) -> Option<bson::DateTime> {
        Some(bson::DateTime::from_chrono(
            DateTime::parse_from_rfc3339(rfc3339).unwrap(),
        ))
    }

    fn time_of(value: Value) -> Option<bson::DateTime> {
        parse(json!({"event": "call.ringing", "data": {"call_id": "c", "timestamp": value}}))
            .occurred_at
    }

    #[test]
    fn call_initiated() {
        let event = parse(envelope(
            "call.initiated",
            json!({"call_id": "cs_1", "from": "+919876543210", "to": "+918000000000",
                   "start_time": "2025-10-22T10:00:00Z"}),
        ));
        assert_eq!(
            event,
            WebhookEvent {
                name: "call.initiated".into(),
                frejun_call_id: Some("cs_1".into()),
                kind: EventKind::Progress(CallStatus::Initiated),
                occurred_at: at("2025-10-22T10:00:00Z"),
                duration_secs: None,
                recording_url: None,
                recording_id: None,
                from: Some("+919876543210".into()),
                to: Some("+918000000000".into()),
                stream_id: None,
            }
        );
        assert_eq!(event.implied_status(), Some(CallStatus::Initiated));
        assert!(!event.proves_answered());
    }

    #[test]
    fn call_ringing() {
        let event = parse(envelope(
            "call.ringing",
            json!({"call_id": "cs_1", "from": "+1", "to": "+2"}),
        ));
        assert_eq!(event.kind, EventKind::Progress(CallStatus::Ringing));
        assert_eq!(event.frejun_call_id.as_deref(), Some("cs_1"));
        assert_eq!(event.occurred_at, None);
        assert_eq!(event.implied_status(), Some(CallStatus::Ringing));
        assert!(!event.proves_answered());
    }

    #[test]
    fn call_answered() {
        let event = parse(envelope(
            "call.answered",
            json!({"call_id": "cs_1", "from": "+1", "to": "+2",
                   "start_time": "2025-10-22T10:00:00Z", "answer_time": "2025-10-22T10:00:07Z"}),
        ));
        assert_eq!(event.kind, EventKind::Progress(CallStatus::InProgress));
        assert_eq!(event.occurred_at, at("2025-10-22T10:00:07Z"));
        assert_eq!(event.implied_status(), Some(CallStatus::InProgress));
        assert!(event.proves_answered());
    }

    #[test]
    fn call_completed() {
        let event = parse(envelope(
            "call.completed",
            json!({"call_id": "cs_1", "from": "+1", "to": "+2", "duration": 42,
                   "hangup_time": "2025-10-22T10:01:00+05:30"}),
        ));
        assert_eq!(event.kind, EventKind::Ended { explicit: None });
        assert_eq!(event.duration_secs, Some(42.0));
        assert_eq!(event.occurred_at, at("2025-10-22T04:31:00Z"));
        assert_eq!(event.implied_status(), Some(CallStatus::Completed));
        // The envelope's duration may include ringing time, so it proves nothing.
        assert!(!event.proves_answered());
    }

    #[test]
    fn stream_initiated() {
        let event = parse(envelope(
            "stream.initiated",
            json!({"call_id": "cs_1", "stream_id": "st_1", "start_time": "2025-10-22T10:00:08Z"}),
        ));
        assert_eq!(event.kind, EventKind::Progress(CallStatus::InProgress));
        assert_eq!(event.stream_id.as_deref(), Some("st_1"));
        assert_eq!(event.occurred_at, at("2025-10-22T10:00:08Z"));
        assert!(event.proves_answered());
    }

    #[test]
    fn stream_completed() {
        let event = parse(envelope(
            "stream.completed",
            json!({"call_id": "cs_1", "stream_id": "st_1", "end_time": "2025-10-22T10:01:00Z"}),
        ));
        assert_eq!(event.kind, EventKind::StreamEnded);
        assert_eq!(event.stream_id.as_deref(), Some("st_1"));
        assert_eq!(event.occurred_at, at("2025-10-22T10:01:00Z"));
        assert_eq!(event.implied_status(), None);
        assert!(!event.proves_answered());
    }

    #[test]
    fn flat_shape_with_every_status() {
        use CallStatus::*;
        let progress = EventKind::Progress;
        let ended = |status| EventKind::Ended {
            explicit: Some(status),
        };
        let cases = [
            ("initiated", progress(Initiated)),
            ("queued", progress(Initiated)),
            ("ringing", progress(Ringing)),
            ("in-progress", progress(InProgress)),
            ("in_progress", progress(InProgress)),
            ("inprogress", progress(InProgress)),
            ("In Progress", progress(InProgress)),
            ("answered", progress(InProgress)),
            ("completed", ended(Completed)),
            ("busy", ended(Busy)),
            ("failed", ended(Failed)),
            ("no-answer", ended(NoAnswer)),
            ("no_answer", ended(NoAnswer)),
            ("noanswer", ended(NoAnswer)),
            ("NO-ANSWER", ended(NoAnswer)),
            ("canceled", ended(NoAnswer)),
            ("cancelled", ended(NoAnswer)),
            ("on-hold", EventKind::Other),
        ];
        for (status, kind) in cases {
            let event = parse(json!({"call_id": "c1", "status": status}));
            assert_eq!(event.kind, kind, "{status}");
            // Stored by meaning, so the spellings of one status are one history entry.
            let expected = match kind {
                EventKind::Progress(status)
                | EventKind::Ended {
                    explicit: Some(status),
                } => format!("status:{status}"),
                _ => format!("status:{status}"),
            };
            assert_eq!(event.name, expected);
            assert_eq!(event.frejun_call_id.as_deref(), Some("c1"));
        }
    }

    #[test]
    fn flat_implied_status_and_answer_proof() {
        let event = parse(json!({"call_id": "c1", "status": "busy"}));
        assert_eq!(event.implied_status(), Some(CallStatus::Busy));
        assert!(!event.proves_answered());

        let event = parse(json!({"call_id": "c1", "status": "answered"}));
        assert_eq!(event.implied_status(), Some(CallStatus::InProgress));
        assert!(event.proves_answered());

        let event = parse(json!({"call_id": "c1", "status": "completed", "duration": 12}));
        assert_eq!(event.implied_status(), Some(CallStatus::Completed));
        assert!(event.proves_answered());

        for duration in [json!(0), json!(null), json!("x")] {
            let event =
                parse(json!({"call_id": "c1", "status": "completed", "duration": duration}));
            assert!(!event.proves_answered(), "{duration}");
        }

        let event = parse(json!({"call_id": "c1", "status": "on-hold"}));
        assert_eq!(event.implied_status(), None);
        assert!(!event.proves_answered());
    }

    #[test]
    fn flat_fields_at_top_level_and_in_data() {
        let event = parse(json!({
            "call_id": "c1", "status": "completed", "duration": "12.5",
            "from": "+1", "to_number": "+2", "recordingUrl": "https://r/1.mp3",
            "timestamp": 1_761_127_200
        }));
        assert_eq!(event.duration_secs, Some(12.5));
        assert_eq!(event.from.as_deref(), Some("+1"));
        assert_eq!(event.to.as_deref(), Some("+2"));
        assert_eq!(event.recording_url.as_deref(), Some("https://r/1.mp3"));
        assert_eq!(event.occurred_at, at("2025-10-22T10:00:00Z"));

        let event = parse(json!({"data": {"callId": "c2", "status": "busy"}}));
        assert_eq!(event.frejun_call_id.as_deref(), Some("c2"));
        assert_eq!(event.name, "status:busy");
        assert_eq!(
            event.kind,
            EventKind::Ended {
                explicit: Some(CallStatus::Busy)
            }
        );
    }

    #[test]
    fn dotted_type_replaces_event() {
        let event = parse(json!({
            "type": "call.completed", "api_version": "2026-06-01",
            "data": {"callId": "cs_2", "fromNumber": "+1", "toNumber": "+2", "streamId": "st_2",
                     "recording_url": "https://r/2.mp3", "duration": "30"}
        }));
        assert_eq!(event.name, "call.completed");
        assert_eq!(event.kind, EventKind::Ended { explicit: None });
        assert_eq!(event.frejun_call_id.as_deref(), Some("cs_2"));
        assert_eq!(event.from.as_deref(), Some("+1"));
        assert_eq!(event.to.as_deref(), Some("+2"));
        assert_eq!(event.stream_id.as_deref(), Some("st_2"));
        assert_eq!(event.recording_url.as_deref(), Some("https://r/2.mp3"));
        assert_eq!(event.duration_secs, Some(30.0));
    }

    #[test]
    fn undotted_type_does_not_hide_the_status() {
        let event = parse(json!({"call_id": "c1", "type": "outbound", "status": "failed"}));
        assert_eq!(event.name, "status:failed");
        assert_eq!(
            event.kind,
            EventKind::Ended {
                explicit: Some(CallStatus::Failed)
            }
        );
    }

    #[test]
    fn event_name_wins_over_status_and_matches_case_insensitively() {
        let event = parse(json!({"event": "recording.completed",
                                 "data": {"call_id": "c1", "status": "completed"}}));
        assert_eq!(event.kind, EventKind::Other);
        let event = parse(json!({"event": "Call.Answered", "data": {"call_id": "c1"}}));
        assert_eq!(
            event.name, "call.answered",
            "stored in its canonical spelling"
        );
        assert_eq!(event.kind, EventKind::Progress(CallStatus::InProgress));
    }

    #[test]
    fn data_takes_precedence_over_top_level() {
        let event = parse(json!({"event": "call.answered", "call_id": "top",
                                 "data": {"call_id": "inner"}}));
        assert_eq!(event.frejun_call_id.as_deref(), Some("inner"));
        let event = parse(json!({"event": "call.answered", "call_id": "top",
                                 "data": {"call_id": ""}}));
        assert_eq!(event.frejun_call_id.as_deref(), Some("top"));
    }

    #[test]
    fn event_id_is_not_a_call_id() {
        let event = parse(json!({"id": "evt_1", "type": "call.ringing", "data": {}}));
        assert_eq!(event.frejun_call_id, None);
    }

    #[test]
    fn numeric_call_id_is_stringified() {
        let event = parse(json!({"call_id": 987, "status": "ringing"}));
        assert_eq!(event.frejun_call_id.as_deref(), Some("987"));
    }

    #[test]
    fn missing_call_id_and_unknown_event_are_ok() {
        let event = parse(json!({"event": "call.transferred", "data": {"from": "+1"}}));
        assert_eq!(event.name, "call.transferred");
        assert_eq!(event.kind, EventKind::Other);
        assert_eq!(event.frejun_call_id, None);
        assert_eq!(event.implied_status(), None);

        let event = parse(json!({}));
        assert_eq!(event.name, "");
        assert_eq!(event.kind, EventKind::Other);
    }

    #[test]
    fn timestamps_in_every_accepted_format() {
        let expected = at("2025-10-22T10:00:00Z");
        let with_millis = at("2025-10-22T10:00:00.250Z");
        let cases = [
            (json!("2025-10-22T10:00:00Z"), expected),
            (json!("2025-10-22t10:00:00z"), expected),
            (json!("2025-10-22T15:30:00+05:30"), expected),
            (json!("2025-10-22T15:30:00+0530"), expected),
            (json!("2025-10-22T10:00:00.250Z"), with_millis),
            (json!("2025-10-22T10:00:00"), expected),
            (json!("2025-10-22T10:00:00.25"), with_millis),
            (json!("2025-10-22 10:00:00"), expected),
            (json!(" 2025-10-22 10:00:00.250 "), with_millis),
            (json!("2025-10-22 10:00:00Z"), expected),
            (json!("2025-10-22 15:30:00+05:30"), expected),
            (json!("2025-10-22 10:00:00.250+00:00"), with_millis),
            (json!(1_761_127_200), expected),
            (json!(1_761_127_200.25), with_millis),
            (json!(1_761_127_200_000_i64), expected),
            (json!(1_761_127_200_250_i64), with_millis),
            (json!("1761127200"), expected),
            (json!("1761127200250"), with_millis),
        ];
        for (value, expected) in cases {
            assert_eq!(time_of(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn unparseable_timestamps_are_none() {
        for value in [
            json!("yesterday"),
            json!("2025-13-01T00:00:00Z"),
            json!("22/10/2025 10:00"),
            json!(""),
            json!(-5),
            json!("NaN"),
            json!("inf"),
            json!(1e20),
            json!(true),
            json!(null),
            json!({"seconds": 1}),
        ] {
            assert_eq!(time_of(value.clone()), None, "{value}");
        }
    }

    #[test]
    fn first_parseable_time_wins_and_specific_keys_beat_generic_ones() {
        let event = parse(envelope(
            "call.completed",
            json!({"call_id": "c", "hangup_time": "garbage", "start_time": "2025-10-22T10:00:00Z",
                   "timestamp": "2025-10-22T11:00:00Z"}),
        ));
        assert_eq!(event.occurred_at, at("2025-10-22T10:00:00Z"));
        let event = parse(json!({"event": "call.ringing", "time": 1_761_127_200,
                                 "data": {"call_id": "c"}}));
        assert_eq!(event.occurred_at, at("2025-10-22T10:00:00Z"));
    }

    #[test]
    fn durations_from_numbers_and_numeric_strings() {
        let duration = |value: Value| {
            parse(envelope(
                "call.completed",
                json!({"call_id": "c", "duration": value}),
            ))
            .duration_secs
        };
        assert_eq!(duration(json!(12)), Some(12.0));
        assert_eq!(duration(json!(12.5)), Some(12.5));
        assert_eq!(duration(json!("12")), Some(12.0));
        assert_eq!(duration(json!(" 7.25 ")), Some(7.25));
        assert_eq!(duration(json!(0)), Some(0.0));
        for bad in [
            json!(-1),
            json!("-3"),
            json!("NaN"),
            json!("inf"),
            json!("12s"),
            json!(null),
        ] {
            assert_eq!(duration(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn garbage_bodies_are_errors() {
        for body in [
            &b""[..],
            b"not json",
            b"{\"event\":",
            b"[]",
            b"\"call.answered\"",
            b"42",
        ] {
            assert!(WebhookEvent::parse(body).is_err(), "{body:?}");
        }
        assert_eq!(
            WebhookEvent::parse(b"[1]").unwrap_err().to_string(),
            "webhook body is JSON but not an object"
        );
        assert_eq!(
            WebhookEvent::parse(b"nope").unwrap_err().to_string(),
            "webhook body is not JSON"
        );
    }
}
