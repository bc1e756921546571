//! OpenAI's Responses API (`POST {base}/responses`): the request body, the reply and the error
//! body, as docs/protocols.md §4.2 and §4.4 describe them.
//!
//! Requests are sent with `store: false`: call transcripts are not to be kept by OpenAI for
//! 30 days by default. The system prompt is `instructions`; structured output is
//! `text.format` of type `json_schema`, strict when the schema allows it.

use serde_json::{Value, json};

use super::{TextRequest, is_strict_compatible};
use crate::domain::text_ai::{Finish, TextReply, TextUsage};

/// Responses refuses a `max_output_tokens` below this.
const MIN_OUTPUT_TOKENS: u32 = 16;

/// The body of a Responses request.
pub fn request_body(request: &TextRequest) -> Value {
    let input: Vec<Value> = request
        .messages
        .iter()
        .map(|message| json!({"role": message.role.as_str(), "content": message.content}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "input": input,
        "max_output_tokens": request.max_tokens.max(MIN_OUTPUT_TOKENS),
        "store": false,
    });
    if let Some(system) = &request.system {
        body["instructions"] = Value::String(system.clone());
    }
    if let Some(output) = &request.json_schema {
        body["text"] = json!({
            "format": {
                "type": "json_schema",
                "name": output.name,
                "schema": output.schema,
                "strict": is_strict_compatible(&output.schema),
            }
        });
    }
    body
}

/// The text (`output_text` parts of `message` items, joined), the status as stop reason and
/// the usage of a reply. A `failed` response is an error.
pub fn read_reply(value: &Value) -> Result<TextReply, String> {
    let status = value["status"]
        .as_str()
        .ok_or("the answer has no status")?
        .to_owned();
    if status == "failed" {
        let error = &value["error"];
        return Err(format!(
            "the response failed: {}: {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or_default()
        ));
    }
    let output = value["output"]
        .as_array()
        .ok_or("the answer has no output array")?;
    let mut text = String::new();
    let mut refusal = None;
    for part in output
        .iter()
        .filter(|item| item["type"] == "message")
        .filter_map(|item| item["content"].as_array())
        .flatten()
    {
        match part["type"].as_str() {
            Some("output_text") => text.push_str(part["text"].as_str().unwrap_or_default()),
            Some("refusal") => refusal = part["refusal"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    let incomplete_reason = value["incomplete_details"]["reason"].as_str();
    let (finish, stop_reason) = match (&refusal, status.as_str()) {
        (Some(_), _) => (Finish::Refused, "refusal".to_owned()),
        // A content filter stops the answer early; it is not a token cap.
        (None, "incomplete") if incomplete_reason == Some("content_filter") => {
            (Finish::Refused, "content_filter".to_owned())
        }
        (None, "incomplete") => (
            Finish::Truncated,
            incomplete_reason.unwrap_or("incomplete").to_owned(),
        ),
        (None, _) => (Finish::Complete, status.clone()),
    };
    if let Some(refusal) = refusal {
        text = refusal;
    }
    let usage = &value["usage"];
    Ok(TextReply {
        text,
        model: value["model"].as_str().unwrap_or_default().to_owned(),
        stop_reason,
        finish,
        usage: TextUsage {
            input_tokens: usage["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// `"<code or type>: <message>"` of an OpenAI error body (`{"error":{"message","type","code"}}`),
/// shared by every OpenAI-style server.
pub fn error_detail(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    if let Some(message) = error.as_str() {
        // Some compatible servers answer `{"error": "…"}`.
        return Some(message.to_owned());
    }
    let kind = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or("error");
    let message = error["message"].as_str().unwrap_or_default();
    Some(format!("{kind}: {message}"))
}
