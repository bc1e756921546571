//! Anthropic Messages (`POST /v1/messages`, docs/protocols.md §4.3): the checks of a
//! request against the real shape, and the answers and error bodies in Anthropic's words.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{
    Answer, Asked, Failure, Format, Problems, Provider, Reply, at, content_text, describe,
    optional, quoting,
};

/// The `anthropic-version` every SDK sends (and the only one the API has).
pub(super) const VERSION: &str = "2023-06-01";

/// The body fields of a Messages request; anything else is refused, as the API refuses it
/// ("Extra inputs are not permitted").
const FIELDS: [&str; 15] = [
    "model",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "service_tier",
];

/// `output_config.effort`'s values.
const EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

/// The fields of a text block; `cache_control` and `citations` are real options of one.
const TEXT_BLOCK_FIELDS: [&str; 4] = ["type", "text", "cache_control", "citations"];

/// The `x-api-key`, or `None` when it is missing or empty.
pub(super) fn api_key(headers: &BTreeMap<String, String>) -> Option<String> {
    headers
        .get("x-api-key")
        .filter(|key| !key.trim().is_empty())
        .cloned()
}

/// Records what is wrong with a Messages request: its headers, then its body's fields.
pub(super) fn check(
    headers: &BTreeMap<String, String>,
    body: &Map<String, Value>,
    problems: &mut Problems,
) {
    match headers.get("anthropic-version").map(String::as_str) {
        Some(VERSION) => {}
        Some(other) => problems.whole(
            "invalid_value",
            format!("the anthropic-version header must be \"{VERSION}\", got \"{other}\""),
        ),
        None => problems.whole(
            "missing_required_parameter",
            format!("the anthropic-version header is missing (it must be \"{VERSION}\")"),
        ),
    }
    problems.unknown_fields(Provider::Anthropic, "", body, &FIELDS);

    if let Some(model) = problems.required(body, "", "model") {
        problems.non_empty_string("model", model);
    }
    if let Some(max_tokens) = problems.required(body, "", "max_tokens") {
        problems.integer("max_tokens", max_tokens, 1);
    }
    if let Some(messages) = problems.required(body, "", "messages") {
        check_messages(messages, problems);
    }
    if let Some(system) = optional(body, "system") {
        match system {
            Value::String(_) => {}
            Value::Array(blocks) => {
                for (index, block) in blocks.iter().enumerate() {
                    check_text_block(&format!("system[{index}]"), block, problems);
                }
            }
            other => problems.wrong_type("system", "a string or an array of text blocks", other),
        }
    }
    if let Some(temperature) = optional(body, "temperature") {
        problems.number("temperature", temperature, 0.0, 1.0);
    }
    if let Some(top_p) = optional(body, "top_p") {
        problems.number("top_p", top_p, 0.0, 1.0);
    }
    if let Some(top_k) = optional(body, "top_k") {
        problems.integer("top_k", top_k, 0);
    }
    if let Some(stops) = optional(body, "stop_sequences")
        && let Some(stops) = problems.array("stop_sequences", stops)
    {
        for (index, stop) in stops.iter().enumerate() {
            problems.string(&format!("stop_sequences[{index}]"), stop);
        }
    }
    problems.no_streaming(body);
    if let Some(metadata) = optional(body, "metadata")
        && let Some(metadata) = problems.object("metadata", metadata)
    {
        problems.unknown_fields(Provider::Anthropic, "metadata", metadata, &["user_id"]);
        if let Some(user) = optional(metadata, "user_id") {
            problems.string("metadata.user_id", user);
        }
    }
    if let Some(tools) = optional(body, "tools") {
        problems.array("tools", tools);
    }
    for field in ["tool_choice", "thinking"] {
        if let Some(value) = optional(body, field) {
            problems.object(field, value);
        }
    }
    if let Some(tier) = optional(body, "service_tier") {
        problems.one_of("service_tier", tier, &["auto", "standard_only"]);
    }
    if let Some(config) = optional(body, "output_config") {
        check_output_config(config, problems);
    }
}

/// `messages`: a non-empty array of user and assistant turns, the first a user's, each with
/// non-empty text content (the final assistant turn, a prefill, may be empty but may not end
/// in whitespace, as the API insists).
fn check_messages(messages: &Value, problems: &mut Problems) {
    let Some(messages) = problems.array("messages", messages) else {
        return;
    };
    if messages.is_empty() {
        problems.invalid(
            "messages",
            "messages must contain at least one message".to_owned(),
        );
        return;
    }
    for (index, message) in messages.iter().enumerate() {
        let path = format!("messages[{index}]");
        let Some(message) = problems.object(&path, message) else {
            continue;
        };
        problems.unknown_fields(Provider::Anthropic, &path, message, &["role", "content"]);
        let role = problems
            .required(message, &path, "role")
            .and_then(|role| problems.one_of(&at(&path, "role"), role, &["user", "assistant"]));
        if index == 0 && role == Some("assistant") {
            problems.invalid(
                &at(&path, "role"),
                format!("{path}.role must be \"user\": the first message must use the user role"),
            );
        }
        let final_assistant = index + 1 == messages.len() && role == Some("assistant");
        let content_path = at(&path, "content");
        let Some(content) = problems.required(message, &path, "content") else {
            continue;
        };
        match content {
            Value::String(text) => {
                if text.is_empty() && !final_assistant {
                    problems.invalid(
                        &content_path,
                        format!(
                            "{content_path} must not be empty (only a final assistant message may be)"
                        ),
                    );
                }
            }
            Value::Array(blocks) => {
                if blocks.is_empty() && !final_assistant {
                    problems.invalid(
                        &content_path,
                        format!(
                            "{content_path} must not be empty (only a final assistant message may be)"
                        ),
                    );
                }
                for (block_index, block) in blocks.iter().enumerate() {
                    check_text_block(&format!("{content_path}[{block_index}]"), block, problems);
                }
            }
            other => problems.wrong_type(
                &content_path,
                "a string or an array of content blocks",
                other,
            ),
        }
        if final_assistant && content_text(Some(content)).ends_with(char::is_whitespace) {
            problems.invalid(
                &content_path,
                format!(
                    "{content_path}: final assistant content cannot end with trailing whitespace"
                ),
            );
        }
    }
}

/// A text block: `{type: "text", text}`, the text not empty. Other block types (images,
/// documents, tool results) are real but not something our clients send, so they are refused.
fn check_text_block(path: &str, block: &Value, problems: &mut Problems) {
    let Some(block) = problems.object(path, block) else {
        return;
    };
    if let Some(kind) = problems.required(block, path, "type") {
        if kind.as_str() != Some("text") {
            problems.invalid(
                &at(path, "type"),
                format!(
                    "{path}.type must be \"text\" (the only block type this fake accepts), got {}",
                    describe(kind)
                ),
            );
            return;
        }
    }
    problems.unknown_fields(Provider::Anthropic, path, block, &TEXT_BLOCK_FIELDS);
    if let Some(text) = problems.required(block, path, "text")
        && let Some(text) = problems.string(&at(path, "text"), text)
        && text.is_empty()
    {
        problems.invalid(
            &at(path, "text"),
            format!("{path}.text must not be empty (text content blocks must be non-empty)"),
        );
    }
}

/// `output_config`: `{format: {type: "json_schema", schema: {…}}, effort?}`.
fn check_output_config(config: &Value, problems: &mut Problems) {
    let Some(config) = problems.object("output_config", config) else {
        return;
    };
    problems.unknown_fields(
        Provider::Anthropic,
        "output_config",
        config,
        &["format", "effort"],
    );
    if let Some(effort) = optional(config, "effort") {
        problems.one_of("output_config.effort", effort, &EFFORTS);
    }
    let Some(format) = problems.required(config, "output_config", "format") else {
        return;
    };
    let Some(format) = problems.object("output_config.format", format) else {
        return;
    };
    problems.unknown_fields(
        Provider::Anthropic,
        "output_config.format",
        format,
        &["type", "schema"],
    );
    if let Some(kind) = problems.required(format, "output_config.format", "type") {
        problems.one_of("output_config.format.type", kind, &["json_schema"]);
    }
    if let Some(schema) = problems.required(format, "output_config.format", "schema") {
        problems.object("output_config.format.schema", schema);
    }
}

/// What the answer needs from a valid Messages request.
pub(super) fn asked(body: &Map<String, Value>) -> Asked {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let system_chars = content_text(body.get("system")).chars().count();
    let message_chars: usize = messages
        .iter()
        .map(|message| content_text(message.get("content")).chars().count())
        .sum();
    let last_user_text = messages
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(|message| content_text(message.get("content")))
        .unwrap_or_default();
    let format = body
        .get("output_config")
        .and_then(|config| config.pointer("/format/schema"))
        .map_or(Format::Text, |schema| Format::JsonSchema(schema.clone()));
    Asked {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        prompt_chars: system_chars + message_chars,
        last_user_text,
        format,
        cap: body.get("max_tokens").and_then(Value::as_u64),
        choices: 1,
    }
}

/// The `message` for `answer`.
pub(super) fn answer(asked: &Asked, answer: &Answer) -> Value {
    let stop_reason = match answer.reply {
        Reply::Text(_) => "end_turn",
        Reply::Truncated(_) => "max_tokens",
        Reply::Refusal(_) => "refusal",
    };
    let mut message = json!({
        "id": format!("msg_fake_{}", answer.serial),
        "type": "message",
        "role": "assistant",
        "model": asked.model,
        "content": [{"type": "text", "text": answer.reply.text()}],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    });
    if let Reply::Refusal(_) = answer.reply {
        // The SDK's `RefusalStopDetails`: no named policy category for a scripted refusal.
        message["stop_details"] = json!({"type": "refusal", "category": null, "explanation": null});
    }
    message
}

/// The status and `{"type":"error","error":{"type","message"},"request_id"}` for `failure`.
pub(super) fn error(failure: &Failure, request_id: &str) -> (StatusCode, Value) {
    let (status, message) = match failure {
        Failure::NotFound { .. } => (StatusCode::NOT_FOUND, "Not Found".to_owned()),
        Failure::MethodNotAllowed { .. } => (
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed".to_owned(),
        ),
        Failure::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request exceeds the maximum allowed number of bytes.".to_owned(),
        ),
        Failure::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "invalid x-api-key".to_owned()),
        Failure::Invalid(problems) => (
            StatusCode::BAD_REQUEST,
            problems
                .iter()
                .map(|problem| problem.sentence.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Failure::Scripted { status, quoted_key } => (
            *status,
            quoting(scripted_message(*status), quoted_key.as_deref()),
        ),
    };
    let body = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    });
    (status, body)
}

/// `error.type` for a status, as in the API's error table.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// A message like the API's for a scripted error status.
fn scripted_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Invalid request.",
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "The requested resource could not be found.",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "This request would exceed your organization's rate limit. Please try again later.",
        504 => "Request timed out.",
        529 => "Overloaded",
        500..=599 => "Internal server error",
        _ => "Request failed.",
    }
}
