//! GA shape checks of client events, written against the raw JSON (never our client's types),
//! so that a bug in the bridge's serialisation shows up as a recorded violation.
//!
//! Each check returns every breach it finds; the connection answers the first with an `error`
//! event and records them all as `"<event type>: <problem>"`. Checked: the event envelope, the
//! GA session (beta keys named with their GA place, formats, turn detection, modalities,
//! `tools` and `tool_choice`), appends, conversation items (messages, `function_call`,
//! `function_call_output`, `mcp_approval_response`), truncates and `response.create`'s
//! parameters (`conversation`, `input` with `item_reference`s, `metadata`, `tools`, …).
//!
//! On top of OpenAI's own rules the fake is stricter in two places, where the bridge must not
//! rely on a default: a `turn_detection` object must set `create_response` and
//! `interrupt_response` explicitly (their defaults are undocumented), and a function tool must
//! carry `description` and `parameters`.

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
            "tools" => check_tools(value, "session.tools", found),
            "tool_choice" => check_tool_choice(value, "session.tool_choice", found),
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
            "tools" => check_tools(value, &param, found),
            "tool_choice" => check_tool_choice(value, &param, found),
            "metadata" => check_metadata(value, &param, found),
            "input" => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let path = format!("{param}[{index}]");
                        match item.as_object() {
                            Some(item) => check_item(item, &path, true, found),
                            None => found.push(Violation::wrong_type(&path, "an object")),
                        }
                    }
                }
                None => found.push(Violation::wrong_type(&param, "an array")),
            },
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
            "instructions" | "prompt" | "reasoning" | "parallel_tool_calls" => {}
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
    match object.get("item") {
        Some(Value::Object(item)) => check_item(item, "item", false, found),
        Some(_) => found.push(Violation::wrong_type("item", "an object")),
        None => found.push(Violation::missing("item")),
    }
}

/// One conversation item at `path` (`item`, or `response.input[i]`, where `item_reference`s
/// are allowed too).
fn check_item(item: &Map<String, Value>, path: &str, references: bool, found: &mut Vec<Violation>) {
    let string_field = |key: &str, found: &mut Vec<Violation>| match item.get(key) {
        Some(Value::String(_)) => {}
        Some(_) => found.push(Violation::wrong_type(&format!("{path}.{key}"), "a string")),
        None => found.push(Violation::missing(&format!("{path}.{key}"))),
    };
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let role = item.get("role").and_then(Value::as_str);
            if !matches!(role, Some("user" | "assistant" | "system")) {
                found.push(Violation::new(
                    "invalid_value",
                    &format!("{path}.role"),
                    format!("{path}.role must be user, assistant or system."),
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
                                &format!("{path}.content[{index}].type"),
                                format!(
                                    "Content type {kind:?} is not allowed in a {} message (the \
                                     API cannot create assistant audio).",
                                    role.unwrap_or("?")
                                ),
                            ));
                        }
                    }
                }
                None => found.push(Violation::missing(&format!("{path}.content"))),
            }
        }
        Some("function_call") => {
            for key in ["name", "call_id", "arguments"] {
                string_field(key, found);
            }
        }
        Some("function_call_output") => {
            for key in ["call_id", "output"] {
                string_field(key, found);
            }
        }
        Some("mcp_approval_response") => {
            string_field("approval_request_id", found);
            if !item.get("approve").is_some_and(Value::is_boolean) {
                found.push(Violation::wrong_type(
                    &format!("{path}.approve"),
                    "a boolean",
                ));
            }
            if item
                .get("reason")
                .is_some_and(|reason| !reason.is_string() && !reason.is_null())
            {
                found.push(Violation::wrong_type(&format!("{path}.reason"), "a string"));
            }
        }
        Some("item_reference") if references => string_field("id", found),
        Some(_) => found.push(Violation::new(
            "invalid_value",
            &format!("{path}.type"),
            if references {
                format!(
                    "{path}.type must be message, function_call, function_call_output, \
                     mcp_approval_response or item_reference."
                )
            } else {
                format!(
                    "{path}.type must be message, function_call, function_call_output or \
                     mcp_approval_response (item_reference is allowed only in \
                     response.input)."
                )
            },
        )),
        None => found.push(Violation::missing(&format!("{path}.type"))),
    }
}

/// Whether `name` is a valid function name: `^[a-zA-Z0-9_-]{1,64}$`.
fn valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// `tools` (of the session or one response): function and MCP tools (protocol 2.6). The fake
/// is stricter than OpenAI in one respect: a function tool must carry `description` and
/// `parameters` (the model needs both to call it well).
fn check_tools(value: &Value, path: &str, found: &mut Vec<Violation>) {
    let Some(tools) = value.as_array() else {
        found.push(Violation::wrong_type(path, "an array"));
        return;
    };
    let mut names: Vec<&str> = Vec::new();
    for (index, tool) in tools.iter().enumerate() {
        let tool_path = format!("{path}[{index}]");
        let Some(tool) = tool.as_object() else {
            found.push(Violation::wrong_type(&tool_path, "an object"));
            continue;
        };
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                if let Some(name) = check_function_tool(tool, &tool_path, found) {
                    if names.contains(&name) {
                        found.push(Violation::new(
                            "invalid_value",
                            &format!("{tool_path}.name"),
                            format!("Duplicate tool name '{name}' in {path}."),
                        ));
                    }
                    names.push(name);
                }
            }
            Some("mcp") => check_mcp_tool(tool, &tool_path, found),
            _ => found.push(Violation::new(
                "invalid_value",
                &format!("{tool_path}.type"),
                format!(
                    "Invalid value: {}. Supported values are: 'function' and 'mcp'.",
                    tool.get("type").map_or("none".to_owned(), Value::to_string)
                ),
            )),
        }
    }
}

/// A function tool; returns its name when valid.
fn check_function_tool<'a>(
    tool: &'a Map<String, Value>,
    path: &str,
    found: &mut Vec<Violation>,
) -> Option<&'a str> {
    let mut valid_name = None;
    match tool.get("name") {
        Some(Value::String(name)) if valid_function_name(name) => valid_name = Some(name.as_str()),
        Some(Value::String(name)) => found.push(Violation::new(
            "invalid_value",
            &format!("{path}.name"),
            format!(
                "Invalid '{path}.name': string does not match pattern. Expected a string that \
                 matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$', got '{name}'."
            ),
        )),
        Some(_) => found.push(Violation::wrong_type(&format!("{path}.name"), "a string")),
        None => found.push(Violation::missing(&format!("{path}.name"))),
    }
    match tool.get("description") {
        Some(Value::String(_)) => {}
        Some(_) => found.push(Violation::wrong_type(
            &format!("{path}.description"),
            "a string",
        )),
        None => found.push(Violation::new(
            "missing_required_parameter",
            &format!("{path}.description"),
            format!(
                "{path}.description must be set (voxbridge rule: the model needs it to know \
                 when to call the function)."
            ),
        )),
    }
    match tool.get("parameters") {
        Some(Value::Object(_)) => {}
        Some(_) => found.push(Violation::wrong_type(
            &format!("{path}.parameters"),
            "an object (a JSON Schema)",
        )),
        None => found.push(Violation::new(
            "missing_required_parameter",
            &format!("{path}.parameters"),
            format!("{path}.parameters must be set (voxbridge rule: a JSON Schema object)."),
        )),
    }
    for key in tool.keys() {
        if !matches!(key.as_str(), "type" | "name" | "description" | "parameters") {
            found.push(Violation::unknown(&format!("{path}.{key}")));
        }
    }
    valid_name
}

/// An MCP tool: `server_label` and a server (`server_url`, `connector_id` or `tunnel_id`).
fn check_mcp_tool(tool: &Map<String, Value>, path: &str, found: &mut Vec<Violation>) {
    match tool.get("server_label") {
        Some(Value::String(label)) if !label.is_empty() => {}
        Some(Value::String(_)) => found.push(Violation::new(
            "invalid_value",
            &format!("{path}.server_label"),
            "server_label must not be empty.",
        )),
        Some(_) => found.push(Violation::wrong_type(
            &format!("{path}.server_label"),
            "a string",
        )),
        None => found.push(Violation::missing(&format!("{path}.server_label"))),
    }
    let servers = ["server_url", "connector_id", "tunnel_id"];
    if !servers.iter().any(|key| tool.contains_key(*key)) {
        found.push(Violation::new(
            "missing_required_parameter",
            &format!("{path}.server_url"),
            format!("An MCP tool needs one of {path}.server_url, connector_id or tunnel_id."),
        ));
    }
    for (key, value) in tool {
        let param = format!("{path}.{key}");
        match key.as_str() {
            "type" | "server_label" => {}
            "server_url" | "connector_id" | "tunnel_id" | "authorization"
            | "server_description" => {
                if !value.is_string() {
                    found.push(Violation::wrong_type(&param, "a string"));
                }
            }
            "headers" => {
                let valid = value.is_null()
                    || value
                        .as_object()
                        .is_some_and(|headers| headers.values().all(Value::is_string));
                if !valid {
                    found.push(Violation::wrong_type(
                        &param,
                        "an object of strings or null",
                    ));
                }
            }
            "allowed_tools" => {
                let valid = match value {
                    Value::Null => true,
                    Value::Array(names) => names.iter().all(Value::is_string),
                    Value::Object(filter) => filter.iter().all(|(key, value)| match key.as_str() {
                        "tool_names" => value
                            .as_array()
                            .is_some_and(|names| names.iter().all(Value::is_string)),
                        "read_only" => value.is_boolean(),
                        _ => false,
                    }),
                    _ => false,
                };
                if !valid {
                    found.push(Violation::wrong_type(
                        &param,
                        "a list of tool names or {\"tool_names\": [...], \"read_only\": bool}",
                    ));
                }
            }
            "require_approval" => {
                let valid = match value {
                    Value::Null => true,
                    Value::String(mode) => mode == "always" || mode == "never",
                    Value::Object(filters) => filters.iter().all(|(key, value)| {
                        matches!(key.as_str(), "always" | "never") && value.is_object()
                    }),
                    _ => false,
                };
                if !valid {
                    found.push(Violation::new(
                        "invalid_value",
                        &param,
                        "require_approval must be \"always\", \"never\" or {\"always\": {…}, \
                         \"never\": {…}}.",
                    ));
                }
            }
            "defer_loading" => {
                if !value.is_boolean() {
                    found.push(Violation::wrong_type(&param, "a boolean"));
                }
            }
            "allowed_callers" => {}
            _ => found.push(Violation::unknown(&param)),
        }
    }
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"`, `{type: "function", name}` or
/// `{type: "mcp", server_label, name?}`.
fn check_tool_choice(value: &Value, path: &str, found: &mut Vec<Violation>) {
    let invalid = |found: &mut Vec<Violation>| {
        found.push(Violation::new(
            "invalid_value",
            path,
            format!(
                "{path} must be \"auto\", \"none\", \"required\", {{\"type\": \"function\", \
                 \"name\"}} or {{\"type\": \"mcp\", \"server_label\", \"name\"?}}."
            ),
        ));
    };
    match value {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {}
        Value::Object(choice) => {
            let (required, optional): (&[&str], &[&str]) =
                match choice.get("type").and_then(Value::as_str) {
                    Some("function") => (&["name"], &[]),
                    Some("mcp") => (&["server_label"], &["name"]),
                    _ => return invalid(found),
                };
            for key in required {
                match choice.get(*key) {
                    Some(Value::String(_)) => {}
                    Some(_) => {
                        found.push(Violation::wrong_type(&format!("{path}.{key}"), "a string"))
                    }
                    None => found.push(Violation::missing(&format!("{path}.{key}"))),
                }
            }
            for (key, value) in choice {
                let param = format!("{path}.{key}");
                if key == "type" || required.contains(&key.as_str()) {
                    continue;
                }
                if optional.contains(&key.as_str()) {
                    if !value.is_string() && !value.is_null() {
                        found.push(Violation::wrong_type(&param, "a string"));
                    }
                } else {
                    found.push(Violation::unknown(&param));
                }
            }
        }
        _ => invalid(found),
    }
}

/// `response.metadata`: at most 16 pairs, keys up to 64 characters, string values up to 512.
fn check_metadata(value: &Value, path: &str, found: &mut Vec<Violation>) {
    let metadata = match value {
        Value::Null => return,
        Value::Object(metadata) => metadata,
        _ => {
            found.push(Violation::wrong_type(path, "an object of strings"));
            return;
        }
    };
    if metadata.len() > 16 {
        found.push(Violation::new(
            "invalid_value",
            path,
            format!("{path} may hold at most 16 pairs, not {}.", metadata.len()),
        ));
    }
    for (key, value) in metadata {
        let param = format!("{path}.{key}");
        if key.chars().count() > 64 {
            found.push(Violation::new(
                "invalid_value",
                &param,
                "metadata keys may be at most 64 characters long.",
            ));
        }
        match value.as_str() {
            Some(text) if text.chars().count() <= 512 => {}
            Some(_) => found.push(Violation::new(
                "invalid_value",
                &param,
                "metadata values may be at most 512 characters long.",
            )),
            None => found.push(Violation::wrong_type(&param, "a string")),
        }
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
    fn tools_and_tool_choice_follow_the_ga_shapes() {
        let update = |tools: Value, choice: Value| {
            check_event(&json!({"type": "session.update", "session": {
                "type": "realtime", "tools": tools, "tool_choice": choice}}))
        };
        let function = json!({"type": "function", "name": "lookup-order_2",
            "description": "Look up an order.", "parameters": {"type": "object"}});
        let mcp = json!({"type": "mcp", "server_label": "crm", "connector_id": "connector_x",
            "allowed_tools": {"tool_names": ["a"], "read_only": true},
            "require_approval": {"never": {"tool_names": ["a"]}}, "authorization": "token",
            "server_description": "CRM", "defer_loading": false});
        for choice in [
            json!("auto"),
            json!("none"),
            json!("required"),
            json!({"type": "function", "name": "lookup-order_2"}),
            json!({"type": "mcp", "server_label": "crm"}),
            json!({"type": "mcp", "server_label": "crm", "name": "a"}),
        ] {
            assert_eq!(
                update(json!([function, mcp]), choice.clone()),
                [],
                "{choice}"
            );
        }
        // Sorted: serde_json maps iterate in key order, not as written.
        let params = |found: Vec<Violation>| -> Vec<String> {
            let mut params: Vec<String> = found.into_iter().filter_map(|v| v.param).collect();
            params.sort();
            params
        };
        let long = "x".repeat(65);
        assert_eq!(
            params(update(
                json!([{"type": "function", "name": long, "description": "d", "parameters": {},
                        "strict": true}]),
                json!("auto")
            )),
            ["session.tools[0].name", "session.tools[0].strict"]
        );
        assert_eq!(
            params(update(json!([function, function]), json!("auto"))),
            ["session.tools[1].name"],
            "duplicate names"
        );
        assert_eq!(
            params(update(
                json!([{"type": "mcp", "server_label": "crm", "server_url": "https://x",
                        "require_approval": "sometimes", "headers": {"a": 1}}]),
                json!({"type": "mcp", "server_label": "crm", "extra": 1})
            )),
            [
                "session.tool_choice.extra",
                "session.tools[0].headers",
                "session.tools[0].require_approval",
            ]
        );
        assert_eq!(
            params(update(json!({}), json!({"type": "web_search"}))),
            ["session.tool_choice", "session.tools"]
        );
    }

    #[test]
    fn response_create_checks_out_of_band_parameters() {
        let create = |response: Value| {
            check_event(&json!({"type": "response.create",
                                                           "response": response}))
        };
        let ok = create(
            json!({"conversation": "none", "metadata": {"purpose": "classify"},
            "output_modalities": ["text"], "instructions": "Classify.",
            "input": [{"type": "item_reference", "id": "item_1"},
                      {"type": "function_call_output", "call_id": "call_1", "output": ""}],
            "tools": [], "tool_choice": "none"}),
        );
        assert_eq!(ok, []);
        let too_many: serde_json::Map<String, Value> =
            (0..17).map(|n| (format!("k{n}"), json!("v"))).collect();
        assert_eq!(create(json!({"metadata": too_many})).len(), 1);
        let found = create(json!({"conversation": "default", "metadata": {"n": 1},
            "input": [{"type": "item_reference"}, "text"]}));
        let mut params: Vec<_> = found.iter().filter_map(|v| v.param.as_deref()).collect();
        params.sort();
        assert_eq!(
            params,
            [
                "response.conversation",
                "response.input[0].id",
                "response.input[1]",
                "response.metadata.n",
            ]
        );
        // References exist only in response.input.
        let reference = json!({"type": "conversation.item.create",
            "item": {"type": "item_reference", "id": "item_1"}});
        assert_eq!(
            check_event(&reference)[0].param.as_deref(),
            Some("item.type")
        );
        let approval = json!({"type": "conversation.item.create", "item": {
            "type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": true}});
        assert_eq!(check_event(&approval), []);
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
