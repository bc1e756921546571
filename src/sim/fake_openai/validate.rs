//! GA shape checks of client events, written against the raw JSON (never our client's types),
//! so that a bug in the bridge's serialisation shows up as a recorded violation.
//!
//! Each check returns every breach it finds; the connection answers the first with an `error`
//! event and records them all as `"<event type>: <problem>"`. On top of OpenAI's own rules the
//! fake is stricter in one place: a `turn_detection` object must set `create_response` and
//! `interrupt_response` explicitly (their defaults are undocumented, so the bridge must not rely
//! on them).

use serde_json::{Map, Value};

use super::audio_format::AudioFormat;
use crate::audio::pcm;

/// Largest decoded append OpenAI accepts.
pub(crate) const MAX_APPEND_BYTES: usize = 15 * 1024 * 1024;

/// Every client event type of the GA protocol (WebRTC-only ones are listed so that they get a
/// precise message).
pub(crate) const CLIENT_EVENTS: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// Session fields of the retired beta shape, with where GA puts them.
const BETA_SESSION_KEYS: &[(&str, &str)] = &[
    ("modalities", "session.output_modalities"),
    ("voice", "session.audio.output.voice"),
    ("input_audio_format", "session.audio.input.format"),
    ("output_audio_format", "session.audio.output.format"),
    (
        "input_audio_transcription",
        "session.audio.input.transcription",
    ),
    (
        "input_audio_noise_reduction",
        "session.audio.input.noise_reduction",
    ),
    ("turn_detection", "session.audio.input.turn_detection"),
    ("temperature", "nothing (not in GA)"),
    ("max_response_output_tokens", "session.max_output_tokens"),
    ("speed", "session.audio.output.speed"),
];

/// Session fields GA accepts in `session.update`.
const SESSION_KEYS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "tracing",
    "include",
    "prompt",
    "reasoning",
    "parallel_tool_calls",
];

/// One breach of the GA shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// `error.code` of the answer, as OpenAI names these (`invalid_value`, `unknown_parameter`,
    /// `missing_required_parameter`, `invalid_type`).
    pub code: &'static str,
    /// `error.param`: the path of the offending field, e.g. `session.audio.input.format`.
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    fn new(code: &'static str, param: &str, message: impl Into<String>) -> Violation {
        Violation {
            code,
            param: (!param.is_empty()).then(|| param.to_owned()),
            message: message.into(),
        }
    }

    fn missing(param: &str) -> Violation {
        Violation::new(
            "missing_required_parameter",
            param,
            format!("Missing required parameter: '{param}'."),
        )
    }

    fn wrong_type(param: &str, expected: &str) -> Violation {
        Violation::new(
            "invalid_type",
            param,
            format!("Invalid type for '{param}': expected {expected}."),
        )
    }

    fn unknown(param: &str) -> Violation {
        Violation::new(
            "unknown_parameter",
            param,
            format!("Unknown parameter: '{param}'."),
        )
    }
}

/// The shape checks of one client event (not the append payload: see [`decode_append`]).
/// Returns no violations for a valid event.
pub(crate) fn check_event(event: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    let Some(object) = event.as_object() else {
        found.push(Violation::new(
            "invalid_value",
            "",
            "A client event must be a JSON object.",
        ));
        return found;
    };
    if let Some(id) = object.get("event_id") {
        if !id.is_string() {
            found.push(Violation::wrong_type("event_id", "a string"));
        }
    }
    let Some(kind) = object.get("type") else {
        found.push(Violation::missing("type"));
        return found;
    };
    let Some(kind) = kind.as_str() else {
        found.push(Violation::wrong_type("type", "a string"));
        return found;
    };
    match kind {
        "session.update" => match object.get("session") {
            Some(Value::Object(session)) => check_session(session, &mut found),
            Some(_) => found.push(Violation::wrong_type("session", "an object")),
            None => found.push(Violation::missing("session")),
        },
        "input_audio_buffer.append" => match object.get("audio") {
            Some(Value::String(_)) => {}
            Some(_) => found.push(Violation::wrong_type("audio", "a base64 string")),
            None => found.push(Violation::missing("audio")),
        },
        "input_audio_buffer.commit" | "input_audio_buffer.clear" => {}
        "conversation.item.create" => check_item_create(object, &mut found),
        "conversation.item.truncate" => {
            require_string(object, "item_id", &mut found);
            require_non_negative_integer(object, "content_index", &mut found);
            require_non_negative_integer(object, "audio_end_ms", &mut found);
        }
        "conversation.item.delete" | "conversation.item.retrieve" => {
            require_string(object, "item_id", &mut found);
        }
        "response.create" => match object.get("response") {
            None | Some(Value::Null) => {}
            Some(Value::Object(response)) => check_response_params(response, &mut found),
            Some(_) => found.push(Violation::wrong_type("response", "an object")),
        },
        "response.cancel" => {
            if let Some(id) = object.get("response_id") {
                if !id.is_string() {
                    found.push(Violation::wrong_type("response_id", "a string"));
                }
            }
        }
        "output_audio_buffer.clear" => found.push(Violation::new(
            "invalid_value",
            "type",
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections; over a \
             WebSocket the client owns the playback buffer.",
        )),
        unknown => found.push(Violation::new(
            "invalid_value",
            "type",
            format!(
                "Invalid value: '{unknown}'. Supported values are: {}.",
                CLIENT_EVENTS.join(", ")
            ),
        )),
    }
    found
}

/// Decodes an append's `audio` into `out` (cleared first), checking that it is non-empty,
/// standard padded base64, at most [`MAX_APPEND_BYTES`] and whole samples of `format`.
pub(crate) fn decode_append(
    audio: &str,
    format: AudioFormat,
    out: &mut Vec<u8>,
) -> Result<(), Violation> {
    out.clear();
    if audio.is_empty() {
        return Err(Violation::new(
            "invalid_value",
            "audio",
            "The audio must not be empty.",
        ));
    }
    // Checked before decoding so that a huge payload is not decoded for nothing.
    if audio.len() / 4 * 3 > MAX_APPEND_BYTES + 3 {
        return Err(too_large(audio.len() / 4 * 3));
    }
    if pcm::decode_base64(audio, out).is_err() {
        return Err(Violation::new(
            "invalid_value",
            "audio",
            "Invalid 'audio': expected standard base64 with padding.",
        ));
    }
    if out.len() > MAX_APPEND_BYTES {
        return Err(too_large(out.len()));
    }
    if out.len() % format.bytes_per_sample() != 0 {
        return Err(Violation::new(
            "invalid_value",
            "audio",
            format!(
                "Invalid 'audio': {} bytes is not a whole number of 16-bit samples for audio/pcm.",
                out.len()
            ),
        ));
    }
    Ok(())
}

fn too_large(bytes: usize) -> Violation {
    Violation::new(
        "invalid_value",
        "audio",
        format!("Invalid 'audio': {bytes} bytes is over the 15 MiB limit of one append."),
    )
}

fn check_session(session: &Map<String, Value>, found: &mut Vec<Violation>) {
    match session.get("type").map(|kind| kind.as_str()) {
        Some(Some("realtime")) => {}
        Some(_) => found.push(Violation::new(
            "invalid_value",
            "session.type",
            "Invalid value for 'session.type': this fake only serves \"realtime\" sessions.",
        )),
        None => found.push(Violation::missing("session.type")),
    }
    for (key, value) in session {
        if let Some((_, ga)) = BETA_SESSION_KEYS.iter().find(|(beta, _)| beta == key) {
            found.push(Violation::new(
                "unknown_parameter",
                &format!("session.{key}"),
                format!("Unknown parameter: 'session.{key}'. (Beta shape; GA uses {ga}.)"),
            ));
            continue;
        }
        if !SESSION_KEYS.contains(&key.as_str()) {
            found.push(Violation::unknown(&format!("session.{key}")));
            continue;
        }
        match key.as_str() {
            "model" | "instructions" if !value.is_string() => {
                found.push(Violation::wrong_type(&format!("session.{key}"), "a string"));
            }
            "output_modalities" => {
                check_output_modalities(value, "session.output_modalities", found);
            }
            "max_output_tokens" => {
                check_max_output_tokens(value, "session.max_output_tokens", found)
            }
            "tools" if !value.is_array() => {
                found.push(Violation::wrong_type("session.tools", "an array"));
            }
            "audio" => check_audio(value, found),
            _ => {}
        }
    }
}

fn check_audio(audio: &Value, found: &mut Vec<Violation>) {
    let Some(audio) = audio.as_object() else {
        found.push(Violation::wrong_type("session.audio", "an object"));
        return;
    };
    for (key, value) in audio {
        match key.as_str() {
            "input" => check_audio_input(value, found),
            "output" => check_audio_output(value, "session.audio.output", found),
            _ => found.push(Violation::unknown(&format!("session.audio.{key}"))),
        }
    }
}

fn check_audio_input(input: &Value, found: &mut Vec<Violation>) {
    let Some(input) = input.as_object() else {
        found.push(Violation::wrong_type("session.audio.input", "an object"));
        return;
    };
    for (key, value) in input {
        let param = format!("session.audio.input.{key}");
        match key.as_str() {
            "format" => check_format(value, &param, found),
            "turn_detection" => check_turn_detection(value, &param, found),
            "transcription" => match value {
                Value::Null => {}
                Value::Object(transcription) => {
                    if !transcription.get("model").is_none_or(Value::is_string) {
                        found.push(Violation::wrong_type(&format!("{param}.model"), "a string"));
                    }
                }
                _ => found.push(Violation::wrong_type(&param, "an object or null")),
            },
            "noise_reduction" => match value {
                Value::Null => {}
                Value::Object(noise) => match noise.get("type").and_then(Value::as_str) {
                    Some("near_field" | "far_field") => {}
                    _ => found.push(Violation::new(
                        "invalid_value",
                        &format!("{param}.type"),
                        "noise_reduction.type must be \"near_field\" or \"far_field\".",
                    )),
                },
                _ => found.push(Violation::wrong_type(&param, "an object or null")),
            },
            _ => found.push(Violation::unknown(&param)),
        }
    }
}

fn check_audio_output(output: &Value, path: &str, found: &mut Vec<Violation>) {
    let Some(output) = output.as_object() else {
        found.push(Violation::wrong_type(path, "an object"));
        return;
    };
    for (key, value) in output {
        let param = format!("{path}.{key}");
        match key.as_str() {
            "format" => check_format(value, &param, found),
            "voice" => {
                let valid = match value {
                    Value::String(name) => !name.is_empty(),
                    Value::Object(custom) => {
                        custom.len() == 1 && custom.get("id").is_some_and(Value::is_string)
                    }
                    _ => false,
                };
                if !valid {
                    found.push(Violation::wrong_type(
                        &param,
                        "a voice name or {\"id\": \"voice_…\"}",
                    ));
                }
            }
            "speed" => match value.as_f64() {
                Some(speed) if (0.25..=1.5).contains(&speed) => {}
                _ => found.push(Violation::new(
                    "invalid_value",
                    &param,
                    "speed must be a number from 0.25 to 1.5.",
                )),
            },
            _ => found.push(Violation::unknown(&param)),
        }
    }
}

fn check_format(format: &Value, param: &str, found: &mut Vec<Violation>) {
    let Some(object) = format.as_object() else {
        found.push(Violation::wrong_type(
            param,
            "an object such as {\"type\": \"audio/pcmu\"} (beta strings like \"g711_ulaw\" are \
             not GA)",
        ));
        return;
    };
    let kind = object.get("type").and_then(Value::as_str);
    match kind {
        Some("audio/pcm") => match object.get("rate") {
            Some(rate) if rate.as_u64() == Some(24_000) => {}
            Some(_) => found.push(Violation::new(
                "invalid_value",
                &format!("{param}.rate"),
                "audio/pcm supports only rate 24000.",
            )),
            None => found.push(Violation::missing(&format!("{param}.rate"))),
        },
        Some("audio/pcmu" | "audio/pcma") => {
            if object.contains_key("rate") {
                found.push(Violation::unknown(&format!("{param}.rate")));
            }
        }
        _ => found.push(Violation::new(
            "invalid_value",
            &format!("{param}.type"),
            format!(
                "Invalid value: {}. Supported values are: 'audio/pcm', 'audio/pcmu' and \
                 'audio/pcma'.",
                object
                    .get("type")
                    .map_or("none".to_owned(), Value::to_string)
            ),
        )),
    }
    for key in object.keys() {
        if key != "type" && key != "rate" {
            found.push(Violation::unknown(&format!("{param}.{key}")));
        }
    }
}

fn check_turn_detection(value: &Value, param: &str, found: &mut Vec<Violation>) {
    let object = match value {
        Value::Null => return,
        Value::Object(object) => object,
        _ => {
            found.push(Violation::wrong_type(param, "an object or null"));
            return;
        }
    };
    let kind = object.get("type").and_then(Value::as_str);
    let semantic = match kind {
        Some("server_vad") => false,
        Some("semantic_vad") => true,
        _ => {
            found.push(Violation::new(
                "invalid_value",
                &format!("{param}.type"),
                "turn_detection.type must be \"server_vad\" or \"semantic_vad\".",
            ));
            return;
        }
    };
    for flag in ["create_response", "interrupt_response"] {
        match object.get(flag) {
            Some(Value::Bool(_)) => {}
            Some(_) => found.push(Violation::wrong_type(
                &format!("{param}.{flag}"),
                "a boolean",
            )),
            None => found.push(Violation::new(
                "missing_required_parameter",
                &format!("{param}.{flag}"),
                format!(
                    "{param}.{flag} must be set explicitly (voxbridge rule: OpenAI's default is \
                     undocumented)."
                ),
            )),
        }
    }
    for (key, value) in object {
        let field = format!("{param}.{key}");
        match (key.as_str(), semantic) {
            ("type" | "create_response" | "interrupt_response", _) => {}
            ("threshold", false) => match value.as_f64() {
                Some(threshold) if (0.0..=1.0).contains(&threshold) => {}
                _ => found.push(Violation::new(
                    "invalid_value",
                    &field,
                    "threshold must be a number from 0.0 to 1.0.",
                )),
            },
            ("prefix_padding_ms" | "silence_duration_ms", false) => {
                if !value.is_u64() {
                    found.push(Violation::wrong_type(&field, "a non-negative integer"));
                }
            }
            ("idle_timeout_ms", false) => {
                if !value.is_null() && !value.is_u64() {
                    found.push(Violation::wrong_type(
                        &field,
                        "a non-negative integer or null",
                    ));
                }
            }
            ("eagerness", true) => {
                if !matches!(value.as_str(), Some("low" | "medium" | "high" | "auto")) {
                    found.push(Violation::new(
                        "invalid_value",
                        &field,
                        "eagerness must be low, medium, high or auto.",
                    ));
                }
            }
            _ => found.push(Violation::unknown(&field)),
        }
    }
}

fn check_output_modalities(value: &Value, param: &str, found: &mut Vec<Violation>) {
    let Some(modalities) = value.as_array() else {
        found.push(Violation::wrong_type(param, "an array"));
        return;
    };
    if modalities
        .iter()
        .any(|m| !matches!(m.as_str(), Some("audio" | "text")))
    {
        found.push(Violation::new(
            "invalid_value",
            param,
            "output_modalities may contain only \"audio\" or \"text\".",
        ));
    }
    let has = |name: &str| modalities.iter().any(|m| m.as_str() == Some(name));
    if has("audio") && has("text") {
        found.push(Violation::new(
            "invalid_value",
            param,
            "output_modalities cannot request both audio and text; [\"audio\"] includes the \
             transcript.",
        ));
    }
}

fn check_max_output_tokens(value: &Value, param: &str, found: &mut Vec<Violation>) {
    let valid = match value {
        Value::String(text) => text == "inf",
        other => other.as_u64().is_some_and(|n| (1..=4_096).contains(&n)),
    };
    if !valid {
        found.push(Violation::new(
            "invalid_value",
            param,
            "max_output_tokens must be an integer from 1 to 4096 or \"inf\".",
        ));
    }
}

fn check_response_params(response: &Map<String, Value>, found: &mut Vec<Violation>) {
    for (key, value) in response {
        let param = format!("response.{key}");
        match key.as_str() {
            "instructions" if !value.is_string() => {
                found.push(Violation::wrong_type(&param, "a string"));
            }
            "output_modalities" => check_output_modalities(value, &param, found),
            "max_output_tokens" => check_max_output_tokens(value, &param, found),
            "conversation" => {
                if !matches!(value.as_str(), Some("auto" | "none")) {
                    found.push(Violation::new(
                        "invalid_value",
                        &param,
                        "conversation must be \"auto\" or \"none\".",
                    ));
                }
            }
            "audio" => match value.as_object() {
                Some(audio) => {
                    for (part, inner) in audio {
                        if part == "output" {
                            check_audio_output(inner, "response.audio.output", found);
                        } else {
                            found.push(Violation::unknown(&format!("response.audio.{part}")));
                        }
                    }
                }
                None => found.push(Violation::wrong_type(&param, "an object")),
            },
            "modalities"
            | "voice"
            | "output_audio_format"
            | "temperature"
            | "max_response_output_tokens" => found.push(Violation::new(
                "unknown_parameter",
                &param,
                format!("Unknown parameter: '{param}'. (Beta shape.)"),
            )),
            "instructions"
            | "tools"
            | "tool_choice"
            | "metadata"
            | "input"
            | "prompt"
            | "reasoning"
            | "parallel_tool_calls" => {}
            _ => found.push(Violation::unknown(&param)),
        }
    }
}

fn check_item_create(object: &Map<String, Value>, found: &mut Vec<Violation>) {
    if let Some(previous) = object.get("previous_item_id") {
        if !previous.is_string() && !previous.is_null() {
            found.push(Violation::wrong_type("previous_item_id", "a string"));
        }
    }
    let item = match object.get("item") {
        Some(Value::Object(item)) => item,
        Some(_) => {
            found.push(Violation::wrong_type("item", "an object"));
            return;
        }
        None => {
            found.push(Violation::missing("item"));
            return;
        }
    };
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let role = item.get("role").and_then(Value::as_str);
            if !matches!(role, Some("user" | "assistant" | "system")) {
                found.push(Violation::new(
                    "invalid_value",
                    "item.role",
                    "item.role must be user, assistant or system.",
                ));
            }
            match item.get("content").and_then(Value::as_array) {
                Some(content) => {
                    for (index, part) in content.iter().enumerate() {
                        let kind = part.get("type").and_then(Value::as_str);
                        let allowed = match role {
                            Some("assistant") => matches!(kind, Some("output_text" | "text")),
                            _ => matches!(kind, Some("input_text" | "input_audio" | "input_image")),
                        };
                        if !allowed {
                            found.push(Violation::new(
                                "invalid_value",
                                &format!("item.content[{index}].type"),
                                format!(
                                    "Content type {kind:?} is not allowed in a {} message (the \
                                     API cannot create assistant audio).",
                                    role.unwrap_or("?")
                                ),
                            ));
                        }
                    }
                }
                None => found.push(Violation::missing("item.content")),
            }
        }
        Some("function_call") => {
            for key in ["name", "call_id", "arguments"] {
                require_string(item, key, found);
            }
        }
        Some("function_call_output") => {
            for key in ["call_id", "output"] {
                require_string(item, key, found);
            }
        }
        Some(_) => found.push(Violation::new(
            "invalid_value",
            "item.type",
            "item.type must be message, function_call or function_call_output.",
        )),
        None => found.push(Violation::missing("item.type")),
    }
}

fn require_string(object: &Map<String, Value>, key: &str, found: &mut Vec<Violation>) {
    match object.get(key) {
        Some(Value::String(_)) => {}
        Some(_) => found.push(Violation::wrong_type(key, "a string")),
        None => found.push(Violation::missing(key)),
    }
}

fn require_non_negative_integer(
    object: &Map<String, Value>,
    key: &str,
    found: &mut Vec<Violation>,
) {
    match object.get(key) {
        Some(value) if value.is_u64() => {}
        Some(value) => found.push(Violation::new(
            "invalid_type",
            key,
            format!("Invalid type for '{key}': expected a non-negative integer, got {value}."),
        )),
        None => found.push(Violation::missing(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(event: Value) -> Vec<String> {
        check_event(&event).into_iter().map(|v| v.message).collect()
    }

    fn ga_update() -> Value {
        json!({"type": "session.update", "session": {
            "type": "realtime", "model": "gpt-realtime", "instructions": "Be brief.",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcmu"},
                          "transcription": {"model": "gpt-live-transcribe"},
                          "noise_reduction": {"type": "near_field"},
                          "turn_detection": {"type": "server_vad", "threshold": 0.5,
                              "prefix_padding_ms": 300, "silence_duration_ms": 500,
                              "create_response": true, "interrupt_response": true,
                              "idle_timeout_ms": null}},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin",
                           "speed": 1.0}},
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf"}})
    }

    #[test]
    fn a_full_ga_session_update_is_clean() {
        assert_eq!(problems(ga_update()), Vec::<String>::new());
    }

    #[test]
    fn beta_keys_are_named_with_their_ga_place() {
        let found = check_event(&json!({"type": "session.update", "session": {
            "type": "realtime", "modalities": ["audio", "text"], "voice": "alloy",
            "input_audio_format": "g711_ulaw", "temperature": 0.8}}));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.iter().all(|v| v.code == "unknown_parameter"));
        assert!(
            found
                .iter()
                .any(|v| v.message.contains("session.audio.output.voice"))
        );
    }

    #[test]
    fn session_type_formats_and_flags_are_enforced() {
        let mut update = ga_update();
        update["session"]["type"] = json!("transcription");
        update["session"]["audio"]["input"]["format"] = json!({"type": "audio/pcm", "rate": 16000});
        update["session"]["audio"]["output"]["format"] =
            json!({"type": "audio/pcmu", "rate": 8000});
        update["session"]["audio"]["input"]["turn_detection"] = json!({"type": "server_vad"});
        update["session"]["output_modalities"] = json!(["audio", "text"]);
        update["session"]["audio"]["output"]["voice"] = json!({"name": "x"});
        let found = check_event(&update);
        let params: Vec<_> = found.iter().filter_map(|v| v.param.clone()).collect();
        for expected in [
            "session.type",
            "session.audio.input.format.rate",
            "session.audio.output.format.rate",
            "session.audio.input.turn_detection.create_response",
            "session.audio.input.turn_detection.interrupt_response",
            "session.output_modalities",
            "session.audio.output.voice",
        ] {
            assert!(
                params.iter().any(|p| p == expected),
                "{expected} in {params:?}"
            );
        }
        let missing_type = check_event(&json!({"type": "session.update", "session": {}}));
        assert_eq!(missing_type[0].code, "missing_required_parameter");
        let beta_format = check_event(&json!({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"format": {"type": "g711_ulaw"}}}}}));
        assert_eq!(beta_format.len(), 1);
        let null_vad = check_event(&json!({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": null}}}}));
        assert!(null_vad.is_empty());
    }

    #[test]
    fn truncate_wants_integers() {
        let ok = json!({"type": "conversation.item.truncate", "item_id": "item_1",
                        "content_index": 0, "audio_end_ms": 1500});
        assert!(check_event(&ok).is_empty());
        let fractional = json!({"type": "conversation.item.truncate", "item_id": "item_1",
                                "content_index": 0, "audio_end_ms": 1.5});
        let found = check_event(&fractional);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].param.as_deref(), Some("audio_end_ms"));
        let negative = json!({"type": "conversation.item.truncate", "item_id": 7,
                              "content_index": -1, "audio_end_ms": 10});
        assert_eq!(check_event(&negative).len(), 2);
    }

    #[test]
    fn event_envelopes_are_checked() {
        assert_eq!(check_event(&json!([1, 2])).len(), 1);
        assert_eq!(
            check_event(&json!({"audio": "AA=="}))[0].code,
            "missing_required_parameter"
        );
        assert_eq!(
            check_event(&json!({"type": "response.audio.delta"}))[0].code,
            "invalid_value"
        );
        assert_eq!(
            check_event(&json!({"type": "response.cancel", "response_id": 3})).len(),
            1
        );
        assert!(check_event(&json!({"type": "response.cancel"})).is_empty());
        assert!(
            check_event(&json!({"type": "response.create", "response": {"instructions": "Hi"}}))
                .is_empty()
        );
        assert_eq!(
            check_event(&json!({"type": "response.create", "response": {"voice": "alloy"}})).len(),
            1
        );
        assert_eq!(
            check_event(&json!({"type": "output_audio_buffer.clear"})).len(),
            1
        );
        assert_eq!(
            check_event(
                &json!({"type": "session.update", "session": {"type": "realtime"}, "event_id": 5})
            )
            .len(),
            1
        );
    }

    #[test]
    fn item_create_needs_a_typed_item_and_no_assistant_audio() {
        let greet = json!({"type": "conversation.item.create", "item": {"type": "message",
            "role": "user", "content": [{"type": "input_text", "text": "Greet the caller."}]}});
        assert!(check_event(&greet).is_empty());
        let output = json!({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_1", "output": "{}"}});
        assert!(check_event(&output).is_empty());
        assert_eq!(
            check_event(&json!({"type": "conversation.item.create", "item": {}})).len(),
            1
        );
        let audio = json!({"type": "conversation.item.create", "item": {"type": "message",
            "role": "assistant", "content": [{"type": "output_audio", "audio": "AA=="}]}});
        assert_eq!(check_event(&audio).len(), 1);
    }

    #[test]
    fn appends_must_be_padded_base64_of_whole_samples() {
        let mut out = Vec::new();
        assert!(decode_append("AAAAAA==", AudioFormat::Pcm24k, &mut out).is_ok());
        assert_eq!(out, [0, 0, 0, 0]);
        assert!(decode_append("AAAA", AudioFormat::Pcmu, &mut out).is_ok());
        assert_eq!(out, [0, 0, 0], "cleared before decoding");
        let odd = decode_append("AAAA", AudioFormat::Pcm24k, &mut out).unwrap_err();
        assert!(odd.message.contains("16-bit"), "{odd:?}");
        assert!(
            decode_append("AAA", AudioFormat::Pcmu, &mut out).is_err(),
            "unpadded"
        );
        assert!(decode_append("not base64!", AudioFormat::Pcmu, &mut out).is_err());
        assert!(decode_append("", AudioFormat::Pcmu, &mut out).is_err());
        let huge = "A".repeat((MAX_APPEND_BYTES + 8) / 3 * 4);
        assert!(
            decode_append(&huge, AudioFormat::Pcmu, &mut out)
                .unwrap_err()
                .message
                .contains("15 MiB")
        );
    }
}
