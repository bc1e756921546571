//! OpenAI-compatible Chat Completions (`POST {base}/chat/completions`): the request body and
//! the reply, as docs/protocols.md §4.2 and §4.5 describe them. Errors share
//! OpenAI's body ([`super::openai_responses::error_detail`]).
//!
//! Compatible servers (Azure OpenAI, OpenRouter, vLLM, Ollama) differ at the edges, so the
//! request keeps to what they all take: the system prompt as a `system` message (not
//! `developer`), `max_completion_tokens`, and `response_format` of type `json_schema`.

use serde_json::{Value, json};

use super::{TextRequest, is_strict_compatible};
use crate::domain::text_ai::{Finish, TextReply, TextUsage};

/// The body of a Chat Completions request.
pub fn request_body(request: &TextRequest) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(
        request
            .messages
            .iter()
            .map(|message| json!({"role": message.role.as_str(), "content": message.content})),
    );
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
    });
    if let Some(output) = &request.json_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {
                "name": output.name,
                "schema": output.schema,
                "strict": is_strict_compatible(&output.schema),
            }
        });
    }
    body
}

/// The first choice's text (or refusal), its `finish_reason` and the usage of a reply.
pub fn read_reply(value: &Value) -> Result<TextReply, String> {
    let choice = value["choices"]
        .as_array()
        .and_then(|choices| choices.first())
        .ok_or("the answer has no choices")?;
    let message = &choice["message"];
    let refusal = message["refusal"].as_str().filter(|text| !text.is_empty());
    let finish_reason = choice["finish_reason"]
        .as_str()
        .unwrap_or("stop")
        .to_owned();
    let (text, finish) = match refusal {
        Some(refusal) => (refusal.to_owned(), Finish::Refused),
        None => {
            let text = message["content"].as_str().unwrap_or_default().to_owned();
            let finish = match finish_reason.as_str() {
                "length" => Finish::Truncated,
                "content_filter" => Finish::Refused,
                _ => Finish::Complete,
            };
            (text, finish)
        }
    };
    let usage = &value["usage"];
    Ok(TextReply {
        text,
        model: value["model"].as_str().unwrap_or_default().to_owned(),
        stop_reason: if refusal.is_some() {
            "refusal".to_owned()
        } else {
            finish_reason
        },
        finish,
        usage: TextUsage {
            input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
}
