//! Anthropic's Messages API (`POST /v1/messages`): the request body, the reply and the error
//! body, as docs/protocols.md §4.2 and §4.3 describe them.
//!
//! The system prompt is the top-level `system` (Anthropic has no system role), `max_tokens` is
//! required, and structured output is `output_config.format` (GA; the beta `output_format`
//! is deprecated).

use serde_json::{Value, json};

use super::TextRequest;
use crate::domain::text_ai::{ChatRole, Finish, TextReply, TextUsage};

/// The `anthropic-version` header every request carries.
pub const VERSION: &str = "2023-06-01";

/// Stands in for the caller before a conversation the assistant opened (a voice assistant
/// usually greets first): Messages wants the first message to be the user's.
pub const OPENING_PLACEHOLDER: &str = "(The conversation begins.)";

/// The body of a Messages request.
pub fn request_body(request: &TextRequest) -> Value {
    let opened_by_assistant = request
        .messages
        .first()
        .is_some_and(|message| message.role == ChatRole::Assistant);
    let placeholder =
        opened_by_assistant.then(|| json!({"role": "user", "content": OPENING_PLACEHOLDER}));
    let messages: Vec<Value> = placeholder
        .into_iter()
        .chain(
            request
                .messages
                .iter()
                .map(|message| json!({"role": message.role.as_str(), "content": message.content})),
        )
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if let Some(system) = &request.system {
        body["system"] = Value::String(system.clone());
    }
    if let Some(output) = &request.json_schema {
        body["output_config"] = json!({
            "format": {"type": "json_schema", "schema": output.schema}
        });
    }
    body
}

/// The text (every `text` block, joined), the stop reason and the usage of a reply.
pub fn read_reply(value: &Value) -> Result<TextReply, String> {
    let blocks = value["content"]
        .as_array()
        .ok_or("the answer has no content array")?;
    let text: String = blocks
        .iter()
        .filter(|block| block["type"] == "text")
        .filter_map(|block| block["text"].as_str())
        .collect();
    let stop_reason = value["stop_reason"]
        .as_str()
        .ok_or("the answer has no stop_reason")?
        .to_owned();
    let finish = match stop_reason.as_str() {
        "max_tokens" | "model_context_window_exceeded" => Finish::Truncated,
        "refusal" => Finish::Refused,
        _ => Finish::Complete,
    };
    let usage = &value["usage"];
    let count = |name: &str| usage[name].as_u64().unwrap_or(0);
    Ok(TextReply {
        text,
        model: value["model"].as_str().unwrap_or_default().to_owned(),
        stop_reason,
        finish,
        usage: TextUsage {
            // Anthropic counts cache reads and writes apart from `input_tokens`.
            input_tokens: count("input_tokens")
                + count("cache_creation_input_tokens")
                + count("cache_read_input_tokens"),
            output_tokens: count("output_tokens"),
        },
    })
}

/// `"<error.type>: <error.message>"` of an error body
/// (`{"type":"error","error":{"type","message"}}`).
pub fn error_detail(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    let kind = error["type"].as_str().unwrap_or("error");
    let message = error["message"].as_str().unwrap_or_default();
    Some(format!("{kind}: {message}"))
}
