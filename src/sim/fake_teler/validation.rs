//! FreJun's validation rules, as its OpenAPI describes them: an initiate body needs E.164
//! numbers and absolute http(s) URLs, a hangup body only string fields; every problem is
//! reported at once in pydantic's shape inside FreJun's 422 envelope. Also the decoding of the
//! request path's `%XX` escapes.

use actix_web::HttpResponse;
use serde_json::{Value, json};
use url::Url;

use super::FakeCall;

/// FreJun's phone-number pattern for initiate (APIEV), quoted in validation messages.
pub(super) const NUMBER_PATTERN: &str = r"^\+\d{7,15}$";

/// Longest `flow_url` FreJun accepts (APIEV: URI, ≤ 2083 characters).
const MAX_URL_CHARS: usize = 2083;

/// 422 in FreJun's documented envelope.
pub(super) fn validation_error(errors: Vec<Value>) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(json!({
        "success": false,
        "message": "Validation Error",
        "errors": errors,
    }))
}

/// One validation problem in pydantic's shape.
fn problem(field: &str, msg: &str, kind: &str) -> Value {
    let loc = if field.is_empty() {
        json!(["body"])
    } else {
        json!(["body", field])
    };
    json!({"loc": loc, "msg": msg, "type": kind})
}

/// Checks an initiate body the way FreJun's OpenAPI describes it, reporting every problem at
/// once. The returned call has no id or key yet.
pub(super) fn validate_initiate(body: &[u8]) -> Result<FakeCall, Vec<Value>> {
    let root = parse_object(body)?;
    let mut errors = Vec::new();
    let mut number = |field: &str| match root.get(field) {
        None | Some(Value::Null) => {
            errors.push(problem(field, "Field required", "missing"));
            String::new()
        }
        Some(Value::String(text)) if is_e164(text) => text.clone(),
        Some(Value::String(_)) => {
            errors.push(problem(
                field,
                &format!("String should match pattern '{NUMBER_PATTERN}'"),
                "string_pattern_mismatch",
            ));
            String::new()
        }
        Some(_) => {
            errors.push(problem(
                field,
                "Input should be a valid string",
                "string_type",
            ));
            String::new()
        }
    };
    let from_number = number("from_number");
    let to_number = number("to_number");
    let mut url = |field: &str| match root.get(field) {
        None | Some(Value::Null) => {
            errors.push(problem(field, "Field required", "missing"));
            String::new()
        }
        Some(Value::String(text)) => match url_problem(text) {
            None => text.clone(),
            Some((msg, kind)) => {
                errors.push(problem(field, msg, kind));
                String::new()
            }
        },
        Some(_) => {
            errors.push(problem(
                field,
                "Input should be a valid string",
                "string_type",
            ));
            String::new()
        }
    };
    let flow_url = url("flow_url");
    let status_callback_url = url("status_callback_url");
    // FreJun records by default.
    let record = match root.get("record") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(record)) => *record,
        Some(_) => {
            errors.push(problem(
                "record",
                "Input should be a valid boolean",
                "bool_parsing",
            ));
            true
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(FakeCall {
        id: String::new(),
        from_number,
        to_number,
        flow_url,
        status_callback_url,
        record,
        hung_up: false,
        api_key: String::new(),
        direction: "outbound",
        hangup_reason: None,
        hangup_key: None,
        operations: Vec::new(),
    })
}

/// FreJun's pattern for a hang-up `reason`.
pub(super) const HANGUP_REASON_PATTERN: &str = "^[A-Z0-9_]+$";

/// The longest `Idempotency-Key` FreJun's SDK accepts.
pub(super) const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A hangup body is empty, `{}`, or has string `reason` / `leg_id` fields, the reason matching
/// [`HANGUP_REASON_PATTERN`]. Answers the reason, if any.
pub(super) fn validate_hangup(body: &[u8]) -> Result<Option<String>, Vec<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = parse_object(body)?;
    let mut errors: Vec<Value> = ["reason", "leg_id"]
        .into_iter()
        .filter(|field| root.get(*field).is_some_and(|value| !value.is_string()))
        .map(|field| problem(field, "Input should be a valid string", "string_type"))
        .collect();
    let reason = root.get("reason").and_then(Value::as_str);
    if let Some(reason) = reason {
        let fits = !reason.is_empty()
            && reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !fits {
            errors.push(problem(
                "reason",
                &format!("String should match pattern '{HANGUP_REASON_PATTERN}'"),
                "string_pattern_mismatch",
            ));
        }
    }
    if errors.is_empty() {
        Ok(reason.map(str::to_owned))
    } else {
        Err(errors)
    }
}

/// The `Idempotency-Key` of a mutation: FreJun's SDKs always send one, 1 to
/// [`MAX_IDEMPOTENCY_KEY_CHARS`] characters, and so the fake requires it.
pub(super) fn validate_idempotency_key(key: Option<&str>) -> Result<String, Vec<Value>> {
    match key {
        Some(key) if !key.is_empty() && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS => {
            Ok(key.to_owned())
        }
        Some(_) => Err(vec![problem(
            "Idempotency-Key",
            &format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
            "string_too_long",
        )]),
        None => Err(vec![problem(
            "Idempotency-Key",
            "Field required (the header FreJun's SDKs send with every mutation)",
            "missing",
        )]),
    }
}

/// The body as a JSON object, or pydantic's error for it.
fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Vec<Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(vec![problem(
            "",
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )]),
        Err(_) => Err(vec![problem("", "JSON decode error", "json_invalid")]),
    }
}

/// `^\+\d{7,15}$`.
pub(super) fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Why `text` is not an absolute http(s) URL of at most [`MAX_URL_CHARS`], as (msg, type).
fn url_problem(text: &str) -> Option<(&'static str, &'static str)> {
    if text.chars().count() > MAX_URL_CHARS {
        return Some(("URL should have at most 2083 characters", "url_too_long"));
    }
    match Url::parse(text) {
        Err(_) => Some((
            "Input should be a valid URL, relative URL without a base",
            "url_parsing",
        )),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(("URL scheme should be 'http' or 'https'", "url_scheme"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(("Input should be a valid URL, empty host", "url_parsing"))
        }
        Ok(_) => None,
    }
}

/// Decodes `%XX` escapes of one path segment; malformed escapes are kept as they are.
pub(super) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// What a valid in-call operation asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operation {
    /// A cold transfer to `target` (`{kind, number | uri}`).
    Transfer {
        target: Value,
    },
    Dtmf {
        digits: String,
    },
    Play {
        media_url: String,
    },
}

/// A refused operation: 422 (schema) or 400 (valid but unsupported, as FreJun answers today).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OperationRefusal {
    Invalid(Vec<Value>),
    Unsupported { code: &'static str, message: String },
}

/// Checks a transfer, dtmf or play body by FreJun's rules (docs/protocols.md §1.8): unknown
/// keys are refused, `digits` match `^[0-9*#A-D]{1,64}$`, `media_url` is https and at most 2083
/// characters, a transfer's target is `pstn` with an E.164 `number` or `sip` with a `sip:` URI
/// (`leg` targets and `warm`/`monitor` modes answer 400, as the live API does).
pub(super) fn validate_operation(kind: &str, body: &[u8]) -> Result<Operation, OperationRefusal> {
    let root = parse_object(body).map_err(OperationRefusal::Invalid)?;
    let allowed: &[&str] = match kind {
        "transfer" => &[
            "target",
            "mode",
            "timeout",
            "record",
            "ringback",
            "dial_music",
            "confirm_sound",
            "on_failure",
        ],
        "dtmf" => &["digits", "leg_id", "duration_ms"],
        _ => &["media_url", "leg_id", "loop", "on_dtmf"],
    };
    let mut errors: Vec<Value> = root
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .map(|key| problem(key, "Extra inputs are not permitted", "extra_forbidden"))
        .collect();
    let text = |field: &str| root.get(field).and_then(Value::as_str);
    let operation = match kind {
        "dtmf" => {
            let digits = text("digits").unwrap_or_default();
            let fits = (1..=64).contains(&digits.len())
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"*#ABCD".contains(&b));
            if !fits {
                errors.push(problem(
                    "digits",
                    "String should match pattern '^[0-9*#A-D]+$' (1 to 64 characters)",
                    "string_pattern_mismatch",
                ));
            }
            if let Some(ms) = root.get("duration_ms") {
                if !ms.as_u64().is_some_and(|ms| (40..=1000).contains(&ms)) {
                    errors.push(problem(
                        "duration_ms",
                        "Input should be 40 to 1000",
                        "value_error",
                    ));
                }
            }
            Operation::Dtmf {
                digits: digits.to_owned(),
            }
        }
        "play" => {
            let media_url = text("media_url").unwrap_or_default();
            let https = Url::parse(media_url).is_ok_and(|url| url.scheme() == "https");
            if !https || media_url.chars().count() > MAX_URL_CHARS {
                errors.push(problem(
                    "media_url",
                    "Input should be an https URL of at most 2083 characters",
                    "url_parsing",
                ));
            }
            if let Some(times) = root.get("loop") {
                if !times
                    .as_u64()
                    .is_some_and(|times| (1..=10).contains(&times))
                {
                    errors.push(problem("loop", "Input should be 1 to 10", "value_error"));
                }
            }
            if let Some(on_dtmf) = root.get("on_dtmf") {
                if !matches!(on_dtmf.as_str(), Some("stop" | "ignore")) {
                    errors.push(problem(
                        "on_dtmf",
                        "Input should be 'stop' or 'ignore'",
                        "enum",
                    ));
                }
            }
            Operation::Play {
                media_url: media_url.to_owned(),
            }
        }
        _ => {
            let target = root.get("target").cloned().unwrap_or(Value::Null);
            let mode = text("mode").unwrap_or("cold");
            if !matches!(mode, "cold" | "warm" | "monitor") {
                errors.push(problem(
                    "mode",
                    "Input should be 'cold', 'warm' or 'monitor'",
                    "enum",
                ));
            }
            if let Some(timeout) = root.get("timeout") {
                if !timeout
                    .as_u64()
                    .is_some_and(|secs| (1..=600).contains(&secs))
                {
                    errors.push(problem(
                        "timeout",
                        "Input should be 1 to 600",
                        "value_error",
                    ));
                }
            }
            let kind = target.get("kind").and_then(Value::as_str);
            if !matches!(kind, Some("pstn" | "sip" | "leg")) {
                errors.push(problem(
                    "target.kind",
                    "Input should be 'pstn', 'sip' or 'leg'",
                    "enum",
                ));
            }
            if !errors.is_empty() {
                return Err(OperationRefusal::Invalid(errors));
            }
            if mode != "cold" {
                return Err(OperationRefusal::Unsupported {
                    code: "mode_not_supported",
                    message: format!("Transfer mode '{mode}' is not supported yet; use 'cold'"),
                });
            }
            let target_ok = match kind {
                Some("pstn") => target
                    .get("number")
                    .and_then(Value::as_str)
                    .is_some_and(is_e164),
                Some("sip") => target
                    .get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|uri| uri.starts_with("sip:") && uri.len() > 4),
                _ => {
                    return Err(OperationRefusal::Unsupported {
                        code: "invalid_target",
                        message: "Leg targets are not yet supported".to_owned(),
                    });
                }
            };
            if !target_ok {
                return Err(OperationRefusal::Unsupported {
                    code: "invalid_target",
                    message: "The target needs an E.164 number (pstn) or a sip: URI (sip)"
                        .to_owned(),
                });
            }
            Operation::Transfer { target }
        }
    };
    if errors.is_empty() {
        Ok(operation)
    } else {
        Err(OperationRefusal::Invalid(errors))
    }
}
