//! The flow exchange (docs/frejun-setup.md): FreJun POSTs the call's details to the flow URL
//! and we answer with what to do with the call: stream its audio to us, or hang up.
//!
//! The request is documented as a JSON object with `call_id, account_id, from_number,
//! to_number, direction`, but integrations in the wild also see camelCase and short keys, empty
//! bodies and form-encoded bodies, so [`FlowRequest::parse`] accepts all of them and leaves
//! every field optional. Refusing a call because of a key spelling would drop a real caller.

use serde::Serialize;
use serde_json::{Map, Value};

/// Keys that may carry the call id, most authoritative first. `id` is CONVIS's fallback.
const CALL_ID_KEYS: &[&str] = &["call_id", "callId", "id"];
/// Keys that may carry the FreJun account id.
const ACCOUNT_ID_KEYS: &[&str] = &["account_id", "accountId"];
/// Keys that may carry the caller's number (`from` is the webhook spelling).
const FROM_KEYS: &[&str] = &["from_number", "from", "fromNumber"];
/// Keys that may carry the called number (`to` is the webhook spelling).
const TO_KEYS: &[&str] = &["to_number", "to", "toNumber"];
/// Keys that may carry the call direction.
const DIRECTION_KEYS: &[&str] = &["direction"];

/// What FreJun POSTs to the flow URL. Every field optional; unknown keys ignored; the body may
/// be empty or `{}`.
///
/// Values are kept as FreJun sent them (trimmed): the numbers are not yet E.164-validated and
/// the direction is not yet a [`crate::domain::call::CallType`], because the handler decides
/// what to do when they are malformed (usually: look the call up by its id instead).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FlowRequest {
    /// FreJun's call id (`call_id`, `callId` or `id`).
    pub call_id: Option<String>,
    /// FreJun's account id (`account_id` or `accountId`).
    pub account_id: Option<String>,
    /// The caller's number (`from_number`, `from` or `fromNumber`).
    pub from_number: Option<String>,
    /// The called number (`to_number`, `to` or `toNumber`).
    pub to_number: Option<String>,
    /// `inbound` or `outbound` as FreJun spells it; no official bridge reads it, so it is a hint.
    pub direction: Option<String>,
}

/// A flow request body that is neither a JSON object nor form-encoded. The message is short and
/// fixed (it never echoes the body), so it is safe to log and to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FlowParseError(&'static str);

impl FlowRequest {
    /// Tolerant parse from raw bytes.
    ///
    /// - An empty or whitespace-only body gives [`FlowRequest::default`] (CONVIS saw FreJun
    ///   send no body at all).
    /// - A JSON object gives its fields, accepting the aliases listed on each field. Numbers are
    ///   stringified (a call id or phone number sent as a JSON number is still an id); empty or
    ///   whitespace-only strings, `null`, booleans, arrays and objects count as absent.
    /// - A `key=value&...` form-encoded body is read with the same keys and rules.
    /// - A JSON value that is not an object, or a body that is neither JSON nor form-encoded,
    ///   is an error.
    pub(crate) fn parse(body: &[u8]) -> Result<FlowRequest, FlowParseError> {
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() {
            return Ok(FlowRequest::default());
        }
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Object(object)) => {
                Ok(FlowRequest::from_lookup(|keys| text_field(&object, keys)))
            }
            Ok(_) => Err(FlowParseError(
                "flow request body is JSON but not an object",
            )),
            Err(_) if looks_form_encoded(trimmed) => {
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(trimmed)
                    .map(|(key, value)| (key.into_owned(), value.into_owned()))
                    .collect();
                Ok(FlowRequest::from_lookup(|keys| {
                    keys.iter().find_map(|key| {
                        pairs
                            .iter()
                            .filter(|(name, _)| name == key)
                            .find_map(|(_, value)| non_empty(value))
                    })
                }))
            }
            Err(_) => Err(FlowParseError(
                "flow request body is neither JSON nor form-encoded",
            )),
        }
    }

    /// Builds the request from a lookup that returns the first non-empty value among the given
    /// alias keys, so JSON and form bodies share one list of aliases.
    fn from_lookup(lookup: impl Fn(&[&str]) -> Option<String>) -> FlowRequest {
        FlowRequest {
            call_id: bounded_call_id(lookup(CALL_ID_KEYS)),
            account_id: lookup(ACCOUNT_ID_KEYS),
            from_number: lookup(FROM_KEYS),
            to_number: lookup(TO_KEYS),
            direction: lookup(DIRECTION_KEYS),
        }
    }
}

/// Our answer to the flow request (docs/frejun-setup.md).
///
/// Serializes exactly to
/// `{"action":"stream","ws_url":"...","chunk_size":500,"sample_rate":"8k","record":true}`
/// (field order as declared) or `{"action":"hangup"}`. The discriminator is `action` with a
/// lowercase value because that is what FreJun's docs, both SDKs and all seven official bridges
/// send; CONVIS's `type` and the old docs' `"Stream"` are not used.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub(crate) enum FlowResponse {
    /// Open a media-stream WebSocket to `ws_url` and bridge the call's audio over it.
    Stream {
        /// The `wss://` URL FreJun dials; it carries the call's media token in its query.
        ws_url: String,
        /// Milliseconds of caller audio per inbound message: 20–2000, a multiple of 20. Smaller
        /// values make barge-in more responsive at the cost of more messages.
        chunk_size: u32,
        /// `"8k"` or `"16k"`. Sent explicitly because the default differs between sources.
        sample_rate: String,
        /// Whether FreJun records the call.
        record: bool,
    },
    /// Refuse the call: FreJun hangs up.
    Hangup,
}

/// A JSON value as text, if it is a non-empty string or a number. Numbers are accepted because
/// some senders emit ids and phone numbers as JSON numbers; other types are never ids.
fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => non_empty(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The first non-empty value among `keys` in `object`, as text (see [`text_value`]).
pub(super) fn text_field(object: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| object.get(*key).and_then(text_value))
}

/// Longest text value kept from FreJun's payloads, in bytes: room for any URL (browsers stop at
/// about 2,000 characters); anything longer is garbage that must not reach the database.
pub(crate) const MAX_FIELD_BYTES: usize = 2_048;

/// Longest FreJun call id kept, in bytes. Real ones are 29 (`cs_` + ULID) or 36 (UUID); the
/// call log's schema allows 200, so a longer one is treated as absent rather than failing the
/// write.
pub(crate) const MAX_CALL_ID_BYTES: usize = 200;

/// A call id within [`MAX_CALL_ID_BYTES`].
pub(super) fn bounded_call_id(id: Option<String>) -> Option<String> {
    id.filter(|id| id.len() <= MAX_CALL_ID_BYTES)
}

/// `text` trimmed, or `None` when nothing is left (a blank id is no id) or it is longer than
/// [`MAX_FIELD_BYTES`].
fn non_empty(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty() && trimmed.len() <= MAX_FIELD_BYTES).then(|| trimmed.to_owned())
}

/// Whether a (trimmed, non-JSON) body is plausibly `application/x-www-form-urlencoded`.
///
/// `form_urlencoded::parse` accepts any bytes, so without this check any garbage would become
/// an empty request and hide a broken sender. A form body has no raw whitespace or control
/// characters (spaces are encoded as `+`), and every `&`-separated pair is `key=value` with a
/// non-empty key.
fn looks_form_encoded(body: &[u8]) -> bool {
    if body
        .iter()
        .any(|byte| byte.is_ascii_whitespace() || byte.is_ascii_control())
    {
        return false;
    }
    let mut pairs = body
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
        .peekable();
    pairs.peek().is_some()
        && pairs.all(|pair| matches!(pair.iter().position(|byte| *byte == b'='), Some(i) if i > 0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlong_values_are_dropped() {
        let long = "x".repeat(MAX_CALL_ID_BYTES + 1);
        let body = serde_json::json!({ "call_id": long, "to_number": "+14155550100" }).to_string();
        let request = FlowRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(request.call_id, None);
        assert_eq!(request.to_number.as_deref(), Some("+14155550100"));
    }

    use super::*;

    fn parse(body: &str) -> Result<FlowRequest, FlowParseError> {
        FlowRequest::parse(body.as_bytes())
    }

    #[test]
    fn documented_body_fills_every_field() {
        let request = parse(
            r#"{"call_id":"cs_01","account_id":"acc_1","from_number":"+919876543210",
                "to_number":"+918000000000","direction":"inbound","extra":{"ignored":true}}"#,
        )
        .unwrap();
        assert_eq!(
            request,
            FlowRequest {
                call_id: Some("cs_01".into()),
                account_id: Some("acc_1".into()),
                from_number: Some("+919876543210".into()),
                to_number: Some("+918000000000".into()),
                direction: Some("inbound".into()),
            }
        );
    }

    #[test]
    fn camel_case_aliases_are_accepted() {
        let request =
            parse(r#"{"callId":"c1","accountId":"a1","fromNumber":"+1555","toNumber":"+1666"}"#)
                .unwrap();
        assert_eq!(request.call_id.as_deref(), Some("c1"));
        assert_eq!(request.account_id.as_deref(), Some("a1"));
        assert_eq!(request.from_number.as_deref(), Some("+1555"));
        assert_eq!(request.to_number.as_deref(), Some("+1666"));
        assert_eq!(request.direction, None);
    }

    #[test]
    fn short_aliases_are_accepted() {
        let request = parse(r#"{"id":"c2","from":"+1555","to":"+1666"}"#).unwrap();
        assert_eq!(request.call_id.as_deref(), Some("c2"));
        assert_eq!(request.from_number.as_deref(), Some("+1555"));
        assert_eq!(request.to_number.as_deref(), Some("+1666"));
    }

    #[test]
    fn documented_key_wins_over_aliases_and_blank_values_fall_through() {
        let request = parse(r#"{"id":"evt","callId":"camel","call_id":"snake"}"#).unwrap();
        assert_eq!(request.call_id.as_deref(), Some("snake"));
        let request = parse(r#"{"call_id":"  ","callId":"camel","from_number":""}"#).unwrap();
        assert_eq!(request.call_id.as_deref(), Some("camel"));
        assert_eq!(request.from_number, None);
    }

    #[test]
    fn empty_bodies_give_the_default() {
        for body in ["", "   \r\n", "{}"] {
            assert_eq!(parse(body).unwrap(), FlowRequest::default(), "{body:?}");
        }
    }

    #[test]
    fn null_and_non_text_values_count_as_absent() {
        let request = parse(r#"{"call_id":null,"from_number":true,"to_number":["+1"]}"#).unwrap();
        assert_eq!(request, FlowRequest::default());
    }

    #[test]
    fn numbers_are_stringified() {
        let request = parse(r#"{"call_id":12345,"from_number":919876543210}"#).unwrap();
        assert_eq!(request.call_id.as_deref(), Some("12345"));
        assert_eq!(request.from_number.as_deref(), Some("919876543210"));
    }

    #[test]
    fn form_body_is_accepted_with_the_same_keys() {
        let request = parse(
            "call_id=cs_9&from_number=%2B919876543210&to=%2B918000000000&direction=outbound&x=",
        )
        .unwrap();
        assert_eq!(
            request,
            FlowRequest {
                call_id: Some("cs_9".into()),
                account_id: None,
                from_number: Some("+919876543210".into()),
                to_number: Some("+918000000000".into()),
                direction: Some("outbound".into()),
            }
        );
        let request = parse("callId=&id=c3&accountId=a+b").unwrap();
        assert_eq!(request.call_id.as_deref(), Some("c3"));
        assert_eq!(request.account_id.as_deref(), Some("a b"));
    }

    #[test]
    fn garbage_is_rejected() {
        for body in [
            "not json",
            "{\"call_id\":",
            "hello",
            "=value",
            "a=1&b",
            "[1,2]",
            "\"cs_1\"",
            "42",
            "null",
        ] {
            assert!(parse(body).is_err(), "{body:?}");
        }
        assert!(FlowRequest::parse(&[0xff, 0xfe, 0x00]).is_err());
        assert_eq!(
            parse("[]").unwrap_err().to_string(),
            "flow request body is JSON but not an object"
        );
        assert_eq!(
            parse("garbage here").unwrap_err().to_string(),
            "flow request body is neither JSON nor form-encoded"
        );
    }

    #[test]
    fn stream_response_serializes_exactly() {
        let response = FlowResponse::Stream {
            ws_url: "wss://example.com/teler/ws?t=abc".into(),
            chunk_size: 500,
            sample_rate: "8k".into(),
            record: true,
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"action":"stream","ws_url":"wss://example.com/teler/ws?t=abc","chunk_size":500,"sample_rate":"8k","record":true}"#
        );
    }

    #[test]
    fn hangup_response_serializes_exactly() {
        assert_eq!(
            serde_json::to_string(&FlowResponse::Hangup).unwrap(),
            r#"{"action":"hangup"}"#
        );
    }
}
