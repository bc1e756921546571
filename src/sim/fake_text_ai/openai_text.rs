//! OpenAI Responses (`POST /v1/responses`, docs/protocols.md §4.4) and Chat Completions
//! (`POST /v1/chat/completions`, §4.5): the checks of a request against the real
//! shape (structured outputs' strict-mode rules included), and the answers and error bodies in
//! OpenAI's words.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{
    Answer, Asked, Failure, Format, Problems, Provider, Reply, at, content_text, describe,
    optional, quoting,
};

/// The body fields of a Responses request; anything else is refused ("Unknown parameter").
const RESPONSES_FIELDS: [&str; 20] = [
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "store",
    "text",
    "reasoning",
    "temperature",
    "top_p",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "previous_response_id",
    "truncation",
    "user",
    "service_tier",
];

/// The body fields of a Chat Completions request.
const CHAT_FIELDS: [&str; 22] = [
    "model",
    "messages",
    "max_completion_tokens",
    "max_tokens",
    "response_format",
    "temperature",
    "top_p",
    "n",
    "stop",
    "stream",
    "seed",
    "tools",
    "tool_choice",
    "user",
    "metadata",
    "store",
    "reasoning_effort",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "parallel_tool_calls",
    "service_tier",
];

/// Roles of a Responses input message.
const INPUT_ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];

/// Roles of a Chat message (`function` is deprecated and not accepted here).
const CHAT_ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// The fields a Chat message may have.
const CHAT_MESSAGE_FIELDS: [&str; 8] = [
    "role",
    "content",
    "name",
    "tool_calls",
    "tool_call_id",
    "refusal",
    "audio",
    "function_call",
];

/// The smallest `max_output_tokens` the Responses API takes.
const MIN_OUTPUT_TOKENS: i64 = 16;

/// Most choices a Chat request may ask for (`n`).
const MAX_CHOICES: i64 = 128;

/// Where a request's key was: `Authorization: Bearer <key>`; `None` when missing or malformed.
pub(super) fn api_key(headers: &BTreeMap<String, String>) -> Option<String> {
    let value = headers.get("authorization")?;
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty() && !key.contains(' '))
        .then(|| key.to_owned())
}

/// Records what is wrong with a Responses request's body.
pub(super) fn check_responses(body: &Map<String, Value>, problems: &mut Problems) {
    problems.unknown_fields(Provider::OpenAi, "", body, &RESPONSES_FIELDS);
    if let Some(model) = problems.required(body, "", "model") {
        problems.non_empty_string("model", model);
    }
    if let Some(input) = problems.required(body, "", "input") {
        check_input(input, problems);
    }
    if let Some(instructions) = optional(body, "instructions") {
        problems.string("instructions", instructions);
    }
    if let Some(cap) = optional(body, "max_output_tokens") {
        problems.integer("max_output_tokens", cap, MIN_OUTPUT_TOKENS);
    }
    for field in ["store", "parallel_tool_calls"] {
        if let Some(value) = optional(body, field) {
            problems.boolean(field, value);
        }
    }
    if let Some(text) = optional(body, "text") {
        check_text(text, problems);
    }
    for field in ["reasoning", "metadata"] {
        if let Some(value) = optional(body, field) {
            problems.object(field, value);
        }
    }
    check_sampling(body, problems);
    for field in [
        "safety_identifier",
        "prompt_cache_key",
        "previous_response_id",
        "user",
        "service_tier",
    ] {
        if let Some(value) = optional(body, field) {
            problems.string(field, value);
        }
    }
    problems.no_streaming(body);
    check_tools(body, problems);
    if let Some(truncation) = optional(body, "truncation") {
        problems.one_of("truncation", truncation, &["auto", "disabled"]);
    }
}

/// `temperature` (0 to 2) and `top_p` (0 to 1), the same in both APIs.
fn check_sampling(body: &Map<String, Value>, problems: &mut Problems) {
    if let Some(temperature) = optional(body, "temperature") {
        problems.number("temperature", temperature, 0.0, 2.0);
    }
    if let Some(top_p) = optional(body, "top_p") {
        problems.number("top_p", top_p, 0.0, 1.0);
    }
}

/// `tools` (an array) and `tool_choice` (a string or an object), the same in both APIs.
fn check_tools(body: &Map<String, Value>, problems: &mut Problems) {
    if let Some(tools) = optional(body, "tools") {
        problems.array("tools", tools);
    }
    if let Some(choice) = optional(body, "tool_choice")
        && !choice.is_string()
        && !choice.is_object()
    {
        problems.wrong_type("tool_choice", "a string or an object", choice);
    }
}

/// `input`: a string, or a non-empty array of messages `{type?: "message", role, content}`
/// whose content is a string or text parts. A user, system or developer message's parts are
/// `input_text`; an assistant message's (earlier output sent back) are `output_text` or
/// `refusal`, and the API refuses `input_text` there.
fn check_input(input: &Value, problems: &mut Problems) {
    let items = match input {
        Value::String(_) => return,
        Value::Array(items) => items,
        other => {
            problems.wrong_type("input", "a string or an array of input items", other);
            return;
        }
    };
    if items.is_empty() {
        problems.invalid("input", "input must not be an empty array".to_owned());
    }
    for (index, item) in items.iter().enumerate() {
        let path = format!("input[{index}]");
        let Some(item) = problems.object(&path, item) else {
            continue;
        };
        problems.unknown_fields(Provider::OpenAi, &path, item, &["type", "role", "content"]);
        if let Some(kind) = optional(item, "type") {
            problems.one_of(&at(&path, "type"), kind, &["message"]);
        }
        let role = problems
            .required(item, &path, "role")
            .and_then(|role| problems.one_of(&at(&path, "role"), role, &INPUT_ROLES));
        let part_types: &[&str] = if role == Some("assistant") {
            &["output_text", "refusal"]
        } else {
            &["input_text"]
        };
        let content_path = at(&path, "content");
        match problems.required(item, &path, "content") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                if parts.is_empty() {
                    problems.invalid(
                        &content_path,
                        format!("{content_path} must not be an empty array"),
                    );
                }
                for (part_index, part) in parts.iter().enumerate() {
                    check_part(
                        &format!("{content_path}[{part_index}]"),
                        part,
                        part_types,
                        problems,
                    );
                }
            }
            Some(other) => {
                problems.wrong_type(&content_path, "a string or an array of parts", other);
            }
        }
    }
}

/// A content part of one of `types`, with its text (`refusal` for a refusal part).
fn check_part(path: &str, part: &Value, types: &[&str], problems: &mut Problems) {
    let Some(part) = problems.object(path, part) else {
        return;
    };
    let Some(kind) = problems.required(part, path, "type") else {
        return;
    };
    let Some(kind) = problems.one_of(&at(path, "type"), kind, types) else {
        return;
    };
    let text_field = if kind == "refusal" { "refusal" } else { "text" };
    let known: &[&str] = if kind == "output_text" {
        &["type", "text", "annotations"]
    } else {
        &["type", text_field]
    };
    problems.unknown_fields(Provider::OpenAi, path, part, known);
    if let Some(text) = problems.required(part, path, text_field) {
        problems.string(&at(path, text_field), text);
    }
}

/// `text`: `{format?, verbosity?}`, the format `{type: "text"}` or `{type: "json_schema",
/// name, schema, strict?, description?}`.
fn check_text(text: &Value, problems: &mut Problems) {
    let Some(text) = problems.object("text", text) else {
        return;
    };
    problems.unknown_fields(Provider::OpenAi, "text", text, &["format", "verbosity"]);
    if let Some(verbosity) = optional(text, "verbosity") {
        problems.one_of("text.verbosity", verbosity, &["low", "medium", "high"]);
    }
    let Some(format) = optional(text, "format") else {
        return;
    };
    let Some(format) = problems.object("text.format", format) else {
        return;
    };
    let Some(kind) = problems.required(format, "text.format", "type") else {
        return;
    };
    match problems.one_of("text.format.type", kind, &["text", "json_schema"]) {
        Some("text") => {
            problems.unknown_fields(Provider::OpenAi, "text.format", format, &["type"]);
        }
        Some(_) => {
            problems.unknown_fields(
                Provider::OpenAi,
                "text.format",
                format,
                &["type", "name", "schema", "strict", "description"],
            );
            check_json_schema(format, "text.format", problems);
        }
        None => {}
    }
}

/// The `{name, schema, strict?, description?}` of a JSON-schema format (Responses'
/// `text.format`, Chat's `response_format.json_schema`), at `path`; with `strict: true`, the
/// schema must follow structured outputs' strict-mode rules.
fn check_json_schema(format: &Map<String, Value>, path: &str, problems: &mut Problems) {
    let name = problems
        .required(format, path, "name")
        .and_then(|name| problems.string(&at(path, "name"), name));
    if let Some(name) = name
        && !valid_name(name)
    {
        problems.invalid(
            &at(path, "name"),
            format!(
                "{path}.name must match ^[a-zA-Z0-9_-]{{1,64}}$, got {}",
                describe(&Value::String(name.to_owned()))
            ),
        );
    }
    if let Some(description) = optional(format, "description") {
        problems.string(&at(path, "description"), description);
    }
    let strict = optional(format, "strict");
    if let Some(strict) = strict {
        problems.boolean(&at(path, "strict"), strict);
    }
    let schema_path = at(path, "schema");
    let Some(schema) = problems.required(format, path, "schema") else {
        return;
    };
    if problems.object(&schema_path, schema).is_none() {
        return;
    }
    if strict == Some(&Value::Bool(true)) {
        let mut broken = Vec::new();
        strict_problems(schema, &mut Vec::new(), true, &mut broken);
        for rule in broken {
            problems.invalid(
                &schema_path,
                format!(
                    "{schema_path}: Invalid schema for response_format '{}': {rule}",
                    name.unwrap_or_default()
                ),
            );
        }
    }
}

/// A schema name OpenAI accepts: 1 to 64 of `[a-zA-Z0-9_-]`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// The strict-mode rules `schema` breaks, in OpenAI's words: the root is an object; every
/// object schema sets `additionalProperties: false` and lists every property in `required`.
/// `context` is the path from the root (OpenAI shows it as a Python tuple); nested schemas are
/// those of `properties`, `items`, `anyOf`, `$defs` and `definitions`.
fn strict_problems(
    schema: &Value,
    context: &mut Vec<String>,
    root: bool,
    broken: &mut Vec<String>,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    let is_object = match schema.get("type") {
        Some(Value::String(kind)) => kind == "object",
        Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
        _ => schema.contains_key("properties"),
    };
    if root && !is_object {
        let kind = schema
            .get("type")
            .map_or("none".to_owned(), Value::to_string);
        broken.push(format!(
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: {kind}'."
        ));
    }
    if is_object {
        let where_ = tuple(context);
        if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            broken.push(format!(
                "In context={where_}, 'additionalProperties' is required to be supplied and to be false."
            ));
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(missing) = properties
            .into_iter()
            .flat_map(Map::keys)
            .find(|key| !required.contains(&key.as_str()))
        {
            broken.push(format!(
                "In context={where_}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing}'."
            ));
        }
    }
    let mut nested = |keyword: &str, name: Option<&str>, sub: &Value| {
        context.push(keyword.to_owned());
        if let Some(name) = name {
            context.push(name.to_owned());
        }
        strict_problems(sub, context, false, broken);
        context.truncate(context.len() - 1 - usize::from(name.is_some()));
    };
    for keyword in ["properties", "$defs", "definitions"] {
        if let Some(children) = schema.get(keyword).and_then(Value::as_object) {
            for (name, sub) in children {
                nested(keyword, Some(name), sub);
            }
        }
    }
    if let Some(items) = schema.get("items") {
        nested("items", None, items);
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        for (index, branch) in branches.iter().enumerate() {
            nested("anyOf", Some(&index.to_string()), branch);
        }
    }
}

/// A context path as OpenAI prints it, a Python tuple: `()`, `('items',)`, `('properties',
/// 'address')`.
fn tuple(context: &[String]) -> String {
    let parts: Vec<String> = context.iter().map(|part| format!("'{part}'")).collect();
    match parts.as_slice() {
        [] => "()".to_owned(),
        [one] => format!("({one},)"),
        _ => format!("({})", parts.join(", ")),
    }
}

/// Records what is wrong with a Chat Completions request's body.
pub(super) fn check_chat(body: &Map<String, Value>, problems: &mut Problems) {
    problems.unknown_fields(Provider::OpenAi, "", body, &CHAT_FIELDS);
    if let Some(model) = problems.required(body, "", "model") {
        problems.non_empty_string("model", model);
    }
    if let Some(messages) = problems.required(body, "", "messages") {
        check_chat_messages(messages, problems);
    }
    let caps = ["max_completion_tokens", "max_tokens"].map(|field| optional(body, field));
    for (field, cap) in ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .zip(caps)
    {
        if let Some(cap) = cap {
            problems.integer(field, cap, 1);
        }
    }
    if caps.iter().all(Option::is_some) {
        problems.invalid(
            "max_tokens",
            "max_tokens and max_completion_tokens cannot both be set (max_tokens is the deprecated name)"
                .to_owned(),
        );
    }
    if let Some(format) = optional(body, "response_format") {
        check_response_format(format, body, problems);
    }
    check_sampling(body, problems);
    if let Some(n) = optional(body, "n")
        && let Some(n) = problems.integer("n", n, 1)
        && n > MAX_CHOICES
    {
        problems.invalid("n", format!("n must be at most {MAX_CHOICES}, got {n}"));
    }
    if let Some(stop) = optional(body, "stop") {
        match stop {
            Value::String(_) => {}
            Value::Array(stops) if stops.len() <= 4 && stops.iter().all(Value::is_string) => {}
            other => problems.wrong_type("stop", "a string or up to 4 strings", other),
        }
    }
    problems.no_streaming(body);
    if let Some(seed) = optional(body, "seed")
        && !seed.is_i64()
        && !seed.is_u64()
    {
        problems.wrong_type("seed", "an integer", seed);
    }
    check_tools(body, problems);
    for field in ["user", "service_tier", "reasoning_effort"] {
        if let Some(value) = optional(body, field) {
            problems.string(field, value);
        }
    }
    if let Some(metadata) = optional(body, "metadata") {
        problems.object("metadata", metadata);
    }
    for field in ["store", "logprobs", "parallel_tool_calls"] {
        if let Some(value) = optional(body, field) {
            problems.boolean(field, value);
        }
    }
    for field in ["frequency_penalty", "presence_penalty"] {
        if let Some(value) = optional(body, field) {
            problems.number(field, value, -2.0, 2.0);
        }
    }
}

/// `messages`: a non-empty array of `{role, content}`; content a string or an array of parts
/// (each `{type, …}`, a `text` part with its text). An assistant message may leave content
/// out (or null) when it carries tool calls or a refusal; a tool message names its call.
fn check_chat_messages(messages: &Value, problems: &mut Problems) {
    let Some(messages) = problems.array("messages", messages) else {
        return;
    };
    if messages.is_empty() {
        problems.invalid(
            "messages",
            "messages must contain at least one message".to_owned(),
        );
    }
    for (index, message) in messages.iter().enumerate() {
        let path = format!("messages[{index}]");
        let Some(message) = problems.object(&path, message) else {
            continue;
        };
        problems.unknown_fields(Provider::OpenAi, &path, message, &CHAT_MESSAGE_FIELDS);
        let role = problems
            .required(message, &path, "role")
            .and_then(|role| problems.one_of(&at(&path, "role"), role, &CHAT_ROLES));
        let content_path = at(&path, "content");
        let content_optional = role == Some("assistant")
            && ["tool_calls", "refusal", "function_call"]
                .iter()
                .any(|field| optional(message, field).is_some());
        let content = if content_optional {
            optional(message, "content")
        } else {
            problems.required(message, &path, "content")
        };
        match content {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                if parts.is_empty() {
                    problems.invalid(
                        &content_path,
                        format!("{content_path} must not be an empty array"),
                    );
                }
                for (part_index, part) in parts.iter().enumerate() {
                    let part_path = format!("{content_path}[{part_index}]");
                    let Some(part) = problems.object(&part_path, part) else {
                        continue;
                    };
                    let kind = problems
                        .required(part, &part_path, "type")
                        .and_then(|kind| problems.string(&at(&part_path, "type"), kind));
                    if kind == Some("text")
                        && let Some(text) = problems.required(part, &part_path, "text")
                    {
                        problems.string(&at(&part_path, "text"), text);
                    }
                }
            }
            Some(other) => {
                problems.wrong_type(&content_path, "a string or an array of parts", other);
            }
        }
        if role == Some("tool")
            && let Some(id) = problems.required(message, &path, "tool_call_id")
        {
            problems.string(&at(&path, "tool_call_id"), id);
        }
    }
}

/// `response_format`: `{type: "text"}`, `{type: "json_object"}` (whose messages must mention
/// JSON, as the API insists) or `{type: "json_schema", json_schema: {name, schema, strict?,
/// description?}}`.
fn check_response_format(format: &Value, body: &Map<String, Value>, problems: &mut Problems) {
    let Some(format) = problems.object("response_format", format) else {
        return;
    };
    let Some(kind) = problems.required(format, "response_format", "type") else {
        return;
    };
    match problems.one_of(
        "response_format.type",
        kind,
        &["text", "json_object", "json_schema"],
    ) {
        Some("json_schema") => {
            problems.unknown_fields(
                Provider::OpenAi,
                "response_format",
                format,
                &["type", "json_schema"],
            );
            let Some(inner) = problems.required(format, "response_format", "json_schema") else {
                return;
            };
            let Some(inner) = problems.object("response_format.json_schema", inner) else {
                return;
            };
            problems.unknown_fields(
                Provider::OpenAi,
                "response_format.json_schema",
                inner,
                &["name", "schema", "strict", "description"],
            );
            check_json_schema(inner, "response_format.json_schema", problems);
        }
        Some("json_object") => {
            problems.unknown_fields(Provider::OpenAi, "response_format", format, &["type"]);
            let mentions_json = body
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|message| {
                    content_text(message.get("content"))
                        .to_lowercase()
                        .contains("json")
                });
            if !mentions_json {
                problems.invalid(
                    "messages",
                    "messages must contain the word 'json' in some form, to use 'response_format' of type 'json_object'"
                        .to_owned(),
                );
            }
        }
        Some(_) => {
            problems.unknown_fields(Provider::OpenAi, "response_format", format, &["type"]);
        }
        None => {}
    }
}

/// What the answer needs from a valid Responses request.
pub(super) fn asked_responses(body: &Map<String, Value>) -> Asked {
    let instructions_chars = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, |text| text.chars().count());
    let (input_chars, last_user_text) = match body.get("input") {
        Some(Value::String(text)) => (text.chars().count(), text.clone()),
        Some(Value::Array(items)) => conversation(items),
        _ => (0, String::new()),
    };
    let format = body
        .get("text")
        .and_then(|text| text.get("format"))
        .filter(|format| format.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|format| format.get("schema"))
        .map_or(Format::Text, |schema| Format::JsonSchema(schema.clone()));
    Asked {
        model: model(body),
        prompt_chars: instructions_chars + input_chars,
        last_user_text,
        format,
        cap: body.get("max_output_tokens").and_then(Value::as_u64),
        choices: 1,
    }
}

/// What the answer needs from a valid Chat Completions request.
pub(super) fn asked_chat(body: &Map<String, Value>) -> Asked {
    let (prompt_chars, last_user_text) = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or((0, String::new()), |messages| conversation(messages));
    let response_format = body.get("response_format");
    let format = match response_format
        .and_then(|format| format.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => response_format
            .and_then(|format| format.pointer("/json_schema/schema"))
            .map_or(Format::Text, |schema| Format::JsonSchema(schema.clone())),
        _ => Format::Text,
    };
    let choices = body
        .get("n")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1);
    Asked {
        model: model(body),
        prompt_chars,
        last_user_text,
        format,
        cap: body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64),
        choices,
    }
}

fn model(body: &Map<String, Value>) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The characters of every message's text, and the last user message's text.
fn conversation(messages: &[Value]) -> (usize, String) {
    let chars = messages
        .iter()
        .map(|message| content_text(message.get("content")).chars().count())
        .sum();
    let last_user_text = messages
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(|message| content_text(message.get("content")))
        .unwrap_or_default();
    (chars, last_user_text)
}

/// The `response` for `answer`: a reasoning item, then the message.
pub(super) fn answer_responses(asked: &Asked, answer: &Answer) -> Value {
    let part = match &answer.reply {
        Reply::Refusal(text) => json!({"type": "refusal", "refusal": text}),
        Reply::Text(text) | Reply::Truncated(text) => {
            json!({"type": "output_text", "text": text, "annotations": []})
        }
    };
    let truncated = matches!(answer.reply, Reply::Truncated(_));
    let (status, incomplete_details) = if truncated {
        ("incomplete", json!({"reason": "max_output_tokens"}))
    } else {
        ("completed", Value::Null)
    };
    json!({
        "id": format!("resp_fake_{}", answer.serial),
        "object": "response",
        "created_at": answer.created,
        "status": status,
        "model": asked.model,
        "output": [
            {"type": "reasoning", "id": format!("rs_fake_{}", answer.serial), "summary": []},
            {
                "type": "message",
                "id": format!("msg_fake_{}", answer.serial),
                "role": "assistant",
                "status": status,
                "content": [part],
            },
        ],
        "incomplete_details": incomplete_details,
        "error": null,
        "usage": {
            "input_tokens": answer.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.input_tokens + answer.output_tokens,
        },
    })
}

/// The `chat.completion` for `answer`, with `asked.choices` identical choices.
pub(super) fn answer_chat(asked: &Asked, answer: &Answer) -> Value {
    let (message, finish_reason) = match &answer.reply {
        Reply::Text(text) => (
            json!({"role": "assistant", "content": text, "refusal": null}),
            "stop",
        ),
        Reply::Truncated(text) => (
            json!({"role": "assistant", "content": text, "refusal": null}),
            "length",
        ),
        Reply::Refusal(text) => (
            json!({"role": "assistant", "content": null, "refusal": text}),
            "stop",
        ),
    };
    let choices: Vec<Value> = (0..asked.choices.max(1))
        .map(|index| {
            json!({
                "index": index,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            })
        })
        .collect();
    let choices_count = u64::try_from(choices.len()).unwrap_or(1);
    let completion_tokens = answer.output_tokens * choices_count;
    json!({
        "id": format!("chatcmpl-fake{}", answer.serial),
        "object": "chat.completion",
        "created": answer.created,
        "model": asked.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": answer.input_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    })
}

/// The status and `{"error":{"message","type","param","code"}}` for `failure`.
pub(super) fn error(failure: &Failure) -> (StatusCode, Value) {
    let (status, message, kind, param, code) = match failure {
        Failure::NotFound { method, path } => (
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({method} {path})"),
            "invalid_request_error",
            None,
            None,
        ),
        Failure::MethodNotAllowed { method, path } => (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Invalid method for URL ({method} {path})"),
            "invalid_request_error",
            None,
            None,
        ),
        Failure::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large.".to_owned(),
            "invalid_request_error",
            None,
            None,
        ),
        Failure::Unauthorized { key } => {
            let shown = key.as_deref().map_or_else(
                || "none (send the header Authorization: Bearer <key>)".to_owned(),
                mask,
            );
            (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )
        }
        Failure::Invalid(problems) => {
            let first = problems.first();
            (
                StatusCode::BAD_REQUEST,
                problems
                    .iter()
                    .map(|problem| problem.sentence.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                "invalid_request_error",
                first.and_then(|problem| problem.param.clone()),
                first.map(|problem| problem.code),
            )
        }
        Failure::Scripted { status, quoted_key } => {
            let (message, kind, code) = scripted(*status);
            let message = quoting(message, quoted_key.as_deref());
            (*status, message, kind, None, code)
        }
    };
    let body = json!({
        "error": {"message": message, "type": kind, "param": param, "code": code},
    });
    (status, body)
}

/// A key as OpenAI shows it in an error: its first 3 and last 4 characters.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let start: String = chars[..3].iter().collect();
    let end: String = chars[chars.len() - 4..].iter().collect();
    format!("{start}{}{end}", "*".repeat(chars.len() - 7))
}

/// Message, type and code like the API's for a scripted error status.
fn scripted(status: StatusCode) -> (&'static str, &'static str, Option<&'static str>) {
    match status.as_u16() {
        400 => ("Invalid request.", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to sample from this model.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            Some("server_error"),
        ),
        500..=599 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            Some("server_error"),
        ),
        _ => ("Request failed.", "invalid_request_error", None),
    }
}
