//! The fakes over real HTTP (reqwest): the documented answers, the shape checks and their
//! error bodies, keys, the script (errors, delays, refusals, truncation) and the automatic
//! structured answer checked against its schema by a small validator written here.

use std::time::Duration;

use serde_json::json;

use super::*;

const ANTHROPIC_KEY: &str = "sk-ant-test-key-0001";
const OPENAI_KEY: &str = "sk-test-openai-key-0001";
const MODEL: &str = "claude-haiku-4-5";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A valid Messages request body with one user message.
fn messages_body(text: &str) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 800,
        "system": "You summarise phone calls.",
        "messages": [{"role": "user", "content": text}],
    })
}

/// POSTs `body` to the Anthropic fake as the SDK does (key, version, JSON).
async fn post_anthropic(fake: &FakeAnthropic, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POSTs `body` to `{base}/{operation}` of the OpenAI fake with a bearer key.
async fn post_openai(fake: &FakeOpenAiText, operation: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/{operation}", fake.base_url()))
        .bearer_auth(OPENAI_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The schema of an analysis answer: nested object, enum, integer minimum, array.
fn analysis_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 10},
            "success": {"type": "boolean"},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "details": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 3, "maximum": 10},
                    "priority": {"type": "string", "enum": ["high", "low"]},
                    "topics": {
                        "type": "array",
                        "minItems": 2,
                        "items": {"type": "string", "maxLength": 40},
                    },
                    "follow_up": {"type": ["string", "null"]},
                },
                "required": ["score", "priority", "topics", "follow_up"],
                "additionalProperties": false,
            },
        },
        "required": ["summary", "success", "sentiment", "details"],
        "additionalProperties": false,
    })
}

/// Where `value` breaks `schema` (the subset of JSON Schema our schemas use), one line each.
fn schema_errors(schema: &Value, value: &Value, path: &str, root: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(schema) = schema.as_object() else {
        return errors;
    };
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let resolved = root.pointer(target.trim_start_matches('#')).unwrap();
        return schema_errors(resolved, value, path, root);
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array)
        && !branches
            .iter()
            .any(|branch| schema_errors(branch, value, path, root).is_empty())
    {
        errors.push(format!("{path}: matches no anyOf branch"));
    }
    if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
        for branch in branches {
            errors.extend(schema_errors(branch, value, path, root));
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        errors.push(format!("{path}: not the const"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        errors.push(format!("{path}: {value} not in the enum"));
    }
    if let Some(kinds) = schema.get("type") {
        let kinds: Vec<&str> = match kinds {
            Value::String(kind) => vec![kind.as_str()],
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let matches = kinds.iter().any(|kind| match *kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        });
        if !matches {
            errors.push(format!("{path}: {value} is not of type {kinds:?}"));
        }
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    errors.push(format!("{path}.{name}: missing"));
                }
            }
            for (name, field) in object {
                match properties.and_then(|properties| properties.get(name)) {
                    Some(property) => {
                        errors.extend(schema_errors(
                            property,
                            field,
                            &format!("{path}.{name}"),
                            root,
                        ));
                    }
                    None if schema.get("additionalProperties") == Some(&json!(false)) => {
                        errors.push(format!("{path}.{name}: not allowed"));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let count = |key: &str| schema.get(key).and_then(Value::as_u64);
            let length = items.len() as u64;
            if count("minItems").is_some_and(|min| length < min) {
                errors.push(format!("{path}: too few items"));
            }
            if count("maxItems").is_some_and(|max| length > max) {
                errors.push(format!("{path}: too many items"));
            }
            if schema.get("uniqueItems") == Some(&json!(true)) {
                for (index, item) in items.iter().enumerate() {
                    if items[..index].contains(item) {
                        errors.push(format!("{path}[{index}]: duplicate"));
                    }
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    errors.extend(schema_errors(
                        item_schema,
                        item,
                        &format!("{path}[{index}]"),
                        root,
                    ));
                }
            }
        }
        Value::String(text) => {
            let length = text.chars().count() as u64;
            let count = |key: &str| schema.get(key).and_then(Value::as_u64);
            if count("minLength").is_some_and(|min| length < min) {
                errors.push(format!("{path}: too short"));
            }
            if count("maxLength").is_some_and(|max| length > max) {
                errors.push(format!("{path}: too long"));
            }
        }
        Value::Number(number) => {
            let number = number.as_f64().unwrap();
            let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|min| number < min)
                || bound("exclusiveMinimum").is_some_and(|min| number <= min)
            {
                errors.push(format!("{path}: below the minimum"));
            }
            if bound("maximum").is_some_and(|max| number > max)
                || bound("exclusiveMaximum").is_some_and(|max| number >= max)
            {
                errors.push(format!("{path}: above the maximum"));
            }
            if let Some(step) = bound("multipleOf")
                && (number / step).fract() != 0.0
            {
                errors.push(format!("{path}: not a multiple of {step}"));
            }
        }
        _ => {}
    }
    errors
}

/// Asserts `text` parses as JSON satisfying `schema`, and returns the value.
fn assert_satisfies(schema: &Value, text: &str) -> Value {
    let value: Value = serde_json::from_str(text).unwrap_or_else(|error| {
        panic!("not JSON ({error}): {text}");
    });
    let errors = schema_errors(schema, &value, "$", schema);
    assert!(errors.is_empty(), "{errors:?} in {value}");
    value
}

#[tokio::test]
async fn anthropic_answers_a_valid_request_with_the_documented_message() {
    let fake = FakeAnthropic::start().await.unwrap();
    // "Hello there, how are you?" is 25 characters, the system prompt 26: 51 → 13 tokens.
    let body = messages_body("Hello there, how are you?");

    let response = post_anthropic(&fake, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["request-id"], "req_fake_1");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let text = "You said: Hello there, how are you?";
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({
            "id": "msg_fake_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 13,
                "output_tokens": text.len().div_ceil(4),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        })
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let record = &requests[0];
    assert_eq!(record.problems, Vec::<String>::new());
    assert_eq!(record.status, 200);
    assert_eq!(record.method, "POST");
    assert_eq!(record.path, "/v1/messages");
    assert_eq!(record.body, body);
    assert_eq!(record.header("X-Api-Key"), Some(ANTHROPIC_KEY));
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
}

#[tokio::test]
async fn anthropic_refuses_a_system_message_and_a_missing_max_tokens_naming_the_fields() {
    let fake = FakeAnthropic::start().await.unwrap();
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "system", "content": "Be brief."},
        ],
    });

    let response = post_anthropic(&fake, &body).await;

    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["request-id"], "req_fake_1");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["request_id"], "req_fake_1");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_tokens is required"), "{message}");
    assert!(message.contains("messages[2].role"), "{message}");
    let record = &fake.requests()[0];
    assert_eq!(record.status, 400);
    assert_eq!(
        record.problems,
        [
            "max_tokens is required",
            r#"messages[2].role must be "user" or "assistant", got "system""#,
        ]
    );
    assert_eq!(
        fake.violations(),
        [
            "POST /v1/messages: max_tokens is required",
            r#"POST /v1/messages: messages[2].role must be "user" or "assistant", got "system""#,
        ]
    );
    fake.stop().await;
}

#[tokio::test]
async fn anthropic_checks_headers_fields_content_and_output_config() {
    let fake = FakeAnthropic::start().await.unwrap();
    let url = format!("{}/v1/messages", fake.base_url());
    let no_version = client()
        .post(&url)
        .header("x-api-key", ANTHROPIC_KEY)
        .json(&messages_body("Hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);

    let body = json!({
        "model": "",
        "max_tokens": 0,
        "messages": [
            {"role": "assistant", "content": "I start"},
            {"role": "user", "content": [{"type": "image", "source": {}}, {"type": "text", "text": ""}]},
            {"role": "user", "content": ""},
        ],
        "system": 7,
        "temperature": 1.5,
        "stream": true,
        "response_format": {"type": "json_object"},
        "output_config": {"format": {"type": "json", "schema": "none"}, "effort": "huge"},
    });
    let response = post_anthropic(&fake, &body).await;
    assert_eq!(response.status(), 400);

    let problems = &fake.requests()[1].problems;
    assert_eq!(
        problems,
        &[
            "response_format: Extra inputs are not permitted",
            "model must not be empty",
            "max_tokens must be at least 1, got 0",
            r#"messages[0].role must be "user": the first message must use the user role"#,
            r#"messages[1].content[0].type must be "text" (the only block type this fake accepts), got "image""#,
            "messages[1].content[1].text must not be empty (text content blocks must be non-empty)",
            "messages[2].content must not be empty (only a final assistant message may be)",
            "system must be a string or an array of text blocks, got 7",
            "temperature must be from 0 to 1, got 1.5",
            "stream must be false or absent: this fake does not stream",
            r#"output_config.effort must be one of "low", "medium", "high", "xhigh", "max", got "huge""#,
            r#"output_config.format.type must be "json_schema", got "json""#,
            r#"output_config.format.schema must be an object, got "none""#,
        ]
    );
    assert_eq!(
        fake.requests()[0].problems,
        [r#"the anthropic-version header is missing (it must be "2023-06-01")"#]
    );

    // A final assistant message is a prefill: it may be empty, but not end in whitespace.
    let prefill = json!({
        "model": MODEL,
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
            {"role": "assistant", "content": "The colour is "},
        ],
    });
    assert_eq!(post_anthropic(&fake, &prefill).await.status(), 400);
    assert_eq!(
        fake.requests()[2].problems,
        ["messages[1].content: final assistant content cannot end with trailing whitespace"]
    );
    let empty_prefill = json!({
        "model": MODEL,
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": ""},
        ],
    });
    assert_eq!(post_anthropic(&fake, &empty_prefill).await.status(), 200);
    fake.stop().await;
}

#[tokio::test]
async fn anthropic_refuses_a_missing_or_rejected_key_with_the_real_body() {
    let fake = FakeAnthropic::start().await.unwrap();
    let url = format!("{}/v1/messages", fake.base_url());
    let missing = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("Hi"))
        .send()
        .await
        .unwrap();
    fake.reject_key(ANTHROPIC_KEY);
    let rejected = post_anthropic(&fake, &messages_body("Hi")).await;

    for (response, id) in [(missing, "req_fake_1"), (rejected, "req_fake_2")] {
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["request-id"], id);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                "request_id": id,
            })
        );
    }
    let statuses: Vec<u16> = fake.requests().iter().map(|record| record.status).collect();
    assert_eq!(statuses, [401, 401]);
    // A key problem is not a shape problem.
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
}

#[tokio::test]
async fn anthropic_answers_a_json_schema_request_with_json_that_satisfies_it() {
    let fake = FakeAnthropic::start().await.unwrap();
    let transcript = "Caller: my parcel A-1001 has not arrived and I would like to know when it will be delivered please, thanks";
    let mut body = messages_body(transcript);
    body["output_config"] = json!({
        "format": {"type": "json_schema", "schema": analysis_schema()},
        "effort": "low",
    });

    let response = post_anthropic(&fake, &body).await;

    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    let text = message["content"][0]["text"].as_str().unwrap();
    let value = assert_satisfies(&analysis_schema(), text);
    let said: String = transcript.chars().take(80).collect();
    assert_eq!(value["summary"], format!("Summary: {said}"));
    assert_eq!(value["success"], true);
    assert_eq!(value["sentiment"], "positive");
    assert_eq!(value["details"]["score"], 3);
    assert_eq!(value["details"]["priority"], "high");
    assert_eq!(value["details"]["topics"].as_array().unwrap().len(), 2);
    fake.stop().await;
}

#[tokio::test]
async fn a_scripted_429_with_retry_after_comes_once_then_the_automatic_answer() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(2),
    });
    fake.push(Scripted::Error {
        status: 529,
        retry_after_secs: None,
    });

    let limited = post_anthropic(&fake, &messages_body("Hi")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["request_id"], "req_fake_1");

    let overloaded = post_anthropic(&fake, &messages_body("Hi")).await;
    assert_eq!(overloaded.status(), 529);
    assert!(overloaded.headers().get("retry-after").is_none());
    assert_eq!(
        overloaded.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );

    let answered = post_anthropic(&fake, &messages_body("Hi")).await;
    assert_eq!(answered.status(), 200);
    let statuses: Vec<u16> = fake.requests().iter().map(|record| record.status).collect();
    assert_eq!(statuses, [429, 529, 200]);

    let openai = FakeOpenAiText::start().await.unwrap();
    openai.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(2),
    });
    openai.push(Scripted::Error {
        status: 500,
        retry_after_secs: None,
    });
    let limited = post_openai(&openai, "chat/completions", &chat_body("Hi")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(limited.headers()["x-request-id"], "req_fake_1");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["param"], Value::Null);
    let failed = post_openai(&openai, "responses", &responses_body("Hi")).await;
    assert_eq!(failed.status(), 500);
    let error: Value = failed.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    let answered = post_openai(&openai, "chat/completions", &chat_body("Hi")).await;
    assert_eq!(answered.status(), 200);
    fake.stop().await;
    openai.stop().await;
}

#[tokio::test]
async fn a_scripted_error_quoting_the_key_ends_its_message_with_the_key_sent() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::ErrorQuotingKey { status: 401 });
    let refused = post_anthropic(&fake, &messages_body("Hi")).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("retry-after").is_none());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(
        body["error"]["message"],
        format!("invalid x-api-key (key sent: {ANTHROPIC_KEY})")
    );
    assert_eq!(
        post_anthropic(&fake, &messages_body("Hi")).await.status(),
        200
    );

    let openai = FakeOpenAiText::start().await.unwrap();
    openai.push(Scripted::ErrorQuotingKey { status: 500 });
    let failed = post_openai(&openai, "chat/completions", &chat_body("Hi")).await;
    assert_eq!(failed.status(), 500);
    let error: Value = failed.json().await.unwrap();
    assert_eq!(error["error"]["code"], "server_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!("(key sent: {OPENAI_KEY})")),
        "{message}"
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|record| record.status).collect();
    assert_eq!(statuses, [401, 200]);
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
    openai.stop().await;
}

#[tokio::test]
async fn anthropic_refusal_and_truncation_have_their_stop_reasons() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Refusal("I can't help with that.".to_owned()));
    fake.push(Scripted::Truncated("The caller wanted".to_owned()));

    let refused: Value = post_anthropic(&fake, &messages_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refused["stop_reason"], "refusal");
    assert_eq!(
        refused["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    assert_eq!(refused["stop_details"]["type"], "refusal");

    let truncated: Value = post_anthropic(&fake, &messages_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(truncated["stop_reason"], "max_tokens");
    assert_eq!(truncated["content"][0]["text"], "The caller wanted");
    // A truncated answer used the whole cap.
    assert_eq!(truncated["usage"]["output_tokens"], 800);
    assert!(truncated.get("stop_details").is_none());
    fake.stop().await;
}

#[tokio::test]
async fn a_refused_request_does_not_use_up_the_script() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Text("scripted".to_owned()));
    fake.reject_key("sk-ant-rejected");

    let invalid = post_anthropic(&fake, &json!({"model": MODEL})).await;
    assert_eq!(invalid.status(), 400);
    let unauthorised = client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", "sk-ant-rejected")
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("Hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let wrong_path = client()
        .post(format!("{}/v1/message", fake.base_url()))
        .header("x-api-key", ANTHROPIC_KEY)
        .json(&messages_body("Hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_path.status(), 404);
    assert_eq!(
        wrong_path.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    let wrong_method = client()
        .get(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", ANTHROPIC_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");

    let answered: Value = post_anthropic(&fake, &messages_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answered["content"][0]["text"], "scripted");
    assert_eq!(answered["id"], "msg_fake_1");
    let automatic: Value = post_anthropic(&fake, &messages_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(automatic["content"][0]["text"], "You said: Hi");
    let violations = fake.violations();
    assert!(
        violations.contains(&"POST /v1/message: POST /v1/message is not a route of this API (it has POST /v1/messages)".to_owned()),
        "{violations:?}"
    );
    assert!(
        violations.contains(&"GET /v1/messages: /v1/messages takes POST, not GET".to_owned()),
        "{violations:?}"
    );
    fake.stop().await;
}

#[tokio::test]
async fn anthropic_refuses_unknown_fields_and_bodies_that_are_not_json_objects() {
    let fake = FakeAnthropic::start().await.unwrap();
    let mut body = messages_body("Hi");
    body["output_format"] = json!({"type": "json_schema", "schema": {}});
    assert_eq!(post_anthropic(&fake, &body).await.status(), 400);
    assert_eq!(
        fake.requests()[0].problems,
        ["output_format: Extra inputs are not permitted"]
    );

    let url = format!("{}/v1/messages", fake.base_url());
    let text = client()
        .post(&url)
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 400);
    let record = &fake.requests()[1];
    assert_eq!(record.body, json!("hello"));
    assert_eq!(record.problems.len(), 2, "{:?}", record.problems);
    assert!(record.problems[0].starts_with("the content-type header must be application/json"));
    assert!(record.problems[1].starts_with("the body is not valid JSON"));

    let too_large = client()
        .post(&url)
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body(&"x".repeat(BODY_LIMIT)))
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        too_large.json::<Value>().await.unwrap()["error"]["type"],
        "request_too_large"
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_delay_holds_the_answer_back() {
    let fake = FakeAnthropic::start().await.unwrap();
    let delay = Duration::from_millis(50);
    fake.push(Scripted::Delay(delay));
    fake.push(Scripted::Delay(delay));

    let started = Instant::now();
    let response = post_anthropic(&fake, &messages_body("Hi")).await;
    assert!(started.elapsed() >= delay);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["content"][0]["text"],
        "You said: Hi"
    );

    let timed_out = client()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .timeout(Duration::from_millis(10))
        .json(&messages_body("Hi"))
        .send()
        .await;
    assert!(timed_out.is_err_and(|error| error.is_timeout()));
    fake.stop().await;
}

/// A valid Responses request body with one user message.
fn responses_body(text: &str) -> Value {
    json!({
        "model": "gpt-5-mini",
        "instructions": "You summarise phone calls.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
        "max_output_tokens": 800,
        "store": false,
    })
}

/// A valid Chat Completions request body with one user message.
fn chat_body(text: &str) -> Value {
    json!({
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "developer", "content": "You summarise phone calls."},
            {"role": "user", "content": text},
        ],
        "max_completion_tokens": 800,
    })
}

#[tokio::test]
async fn responses_answers_with_the_documented_shape() {
    let fake = FakeOpenAiText::start().await.unwrap();
    assert!(fake.base_url().ends_with("/v1"));

    let response = post_openai(&fake, "responses", &responses_body("Hello there")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req_fake_1");
    let body: Value = response.json().await.unwrap();
    assert!(body["created_at"].as_u64().unwrap() > 1_700_000_000);
    let text = "You said: Hello there";
    assert_eq!(
        body,
        json!({
            "id": "resp_fake_1",
            "object": "response",
            "created_at": body["created_at"],
            "status": "completed",
            "model": "gpt-5-mini",
            "output": [
                {"type": "reasoning", "id": "rs_fake_1", "summary": []},
                {
                    "type": "message",
                    "id": "msg_fake_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                },
            ],
            "incomplete_details": null,
            "error": null,
            "usage": {
                // 26 + 11 characters.
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 6,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 16,
            },
        })
    );

    // A plain string input is valid too.
    let string_input = json!({"model": "gpt-5-mini", "input": "Hi"});
    let answered: Value = post_openai(&fake, "responses", &string_input)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answered["output"][1]["content"][0]["text"], "You said: Hi");
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
}

#[tokio::test]
async fn responses_checks_input_text_format_and_fields() {
    let fake = FakeOpenAiText::start().await.unwrap();
    let body = json!({
        "model": "gpt-5-mini",
        "input": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "input_text", "text": "Hello"}]},
            {"role": "tool", "content": "x"},
        ],
        "max_output_tokens": 8,
        "text": {"format": {"type": "json_schema", "name": "call summary", "schema": {"type": "object"}}},
        "max_tokens": 100,
    });

    let response = post_openai(&fake, "responses", &body).await;

    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "max_tokens");
    assert_eq!(error["error"]["code"], "unknown_parameter");
    assert_eq!(
        fake.requests()[0].problems,
        [
            "Unknown parameter: 'max_tokens'.",
            r#"input[0].content[0].type must be "input_text", got "text""#,
            r#"input[1].content[0].type must be "output_text" or "refusal", got "input_text""#,
            r#"input[2].role must be one of "user", "assistant", "system", "developer", got "tool""#,
            "max_output_tokens must be at least 16, got 8",
            r#"text.format.name must match ^[a-zA-Z0-9_-]{1,64}$, got "call summary""#,
        ]
    );
    fake.stop().await;
}

#[tokio::test]
async fn responses_refuses_a_strict_schema_that_breaks_the_strict_rules() {
    let fake = FakeOpenAiText::start().await.unwrap();
    let loose = json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "details": {
                "type": "object",
                "properties": {"score": {"type": "integer"}},
                "required": [],
                "additionalProperties": false,
            },
        },
        "required": ["summary"],
    });
    let mut body = responses_body("Hi");
    body["text"] = json!({"format": {
        "type": "json_schema", "name": "call_summary", "strict": true, "schema": loose,
    }});

    let response = post_openai(&fake, "responses", &body).await;

    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "text.format.schema");
    assert_eq!(
        fake.requests()[0].problems,
        [
            "text.format.schema: Invalid schema for response_format 'call_summary': In context=(), 'additionalProperties' is required to be supplied and to be false.",
            "text.format.schema: Invalid schema for response_format 'call_summary': In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'details'.",
            "text.format.schema: Invalid schema for response_format 'call_summary': In context=('properties', 'details'), 'required' is required to be supplied and to be an array including every key in properties. Missing 'score'.",
        ]
    );

    // The same schema is fine without strict, and a strict-valid schema is answered with
    // JSON that satisfies it.
    body["text"]["format"]["strict"] = json!(false);
    assert_eq!(post_openai(&fake, "responses", &body).await.status(), 200);
    body["text"]["format"]["strict"] = json!(true);
    body["text"]["format"]["schema"] = analysis_schema();
    let answered: Value = post_openai(&fake, "responses", &body)
        .await
        .json()
        .await
        .unwrap();
    let text = answered["output"][1]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_satisfies(&analysis_schema(), text);
    fake.stop().await;
}

#[tokio::test]
async fn responses_refusal_and_truncation_have_their_shapes() {
    let fake = FakeOpenAiText::start().await.unwrap();
    fake.push(Scripted::Refusal("I can't help with that.".to_owned()));
    fake.push(Scripted::Truncated("The caller".to_owned()));

    let refused: Value = post_openai(&fake, "responses", &responses_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refused["status"], "completed");
    assert_eq!(
        refused["output"][1]["content"],
        json!([{"type": "refusal", "refusal": "I can't help with that."}])
    );

    let truncated: Value = post_openai(&fake, "responses", &responses_body("Hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(truncated["status"], "incomplete");
    assert_eq!(
        truncated["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(truncated["output"][1]["status"], "incomplete");
    assert_eq!(truncated["output"][1]["content"][0]["text"], "The caller");
    assert_eq!(truncated["usage"]["output_tokens"], 800);
    fake.stop().await;
}

#[tokio::test]
async fn openai_refuses_a_missing_malformed_or_rejected_key() {
    let fake = FakeOpenAiText::start().await.unwrap();
    let url = format!("{}/chat/completions", fake.base_url());
    let missing = client()
        .post(&url)
        .json(&chat_body("Hi"))
        .send()
        .await
        .unwrap();
    let malformed = client()
        .post(&url)
        .header("authorization", OPENAI_KEY)
        .json(&chat_body("Hi"))
        .send()
        .await
        .unwrap();
    fake.reject_key(OPENAI_KEY);
    let rejected = post_openai(&fake, "responses", &responses_body("Hi")).await;

    for response in [missing, malformed, rejected] {
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("x-request-id"));
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Incorrect API key provided"),
            "{message}"
        );
        assert!(
            !message.contains(OPENAI_KEY),
            "the key is masked: {message}"
        );
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"], Value::Null);
        assert_eq!(error["error"]["code"], "invalid_api_key");
    }
    fake.stop().await;
}

#[tokio::test]
async fn chat_completions_answers_with_the_documented_shape() {
    let fake = FakeOpenAiText::start().await.unwrap();

    let response = post_openai(&fake, "chat/completions", &chat_body("Hello there")).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "id": "chatcmpl-fake1",
            "object": "chat.completion",
            "created": body["created"],
            "model": "gpt-4.1-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "You said: Hello there", "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 6,
                "total_tokens": 16,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        })
    );
    assert_eq!(fake.requests()[0].path, "/v1/chat/completions");
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
}

#[tokio::test]
async fn chat_completions_structured_output_refusal_and_truncation() {
    let fake = FakeOpenAiText::start().await.unwrap();
    let mut body = chat_body("Caller: my order is late.");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {
        "name": "call_summary", "strict": true, "schema": analysis_schema(),
    }});
    let answered: Value = post_openai(&fake, "chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    let value = assert_satisfies(
        &analysis_schema(),
        answered["choices"][0]["message"]["content"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(value["summary"], "Summary: Caller: my order is late.");

    // Scripted text is sent as is, even when it does not satisfy the schema.
    fake.push(Scripted::Text("not json".to_owned()));
    fake.push(Scripted::Refusal("I can't help with that.".to_owned()));
    fake.push(Scripted::Truncated("{\"summary\": \"Cal".to_owned()));
    let scripted: Value = post_openai(&fake, "chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(scripted["choices"][0]["message"]["content"], "not json");
    let refused: Value = post_openai(&fake, "chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        refused["choices"][0]["message"],
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."})
    );
    assert_eq!(refused["choices"][0]["finish_reason"], "stop");
    let truncated: Value = post_openai(&fake, "chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(truncated["choices"][0]["finish_reason"], "length");
    assert_eq!(
        truncated["choices"][0]["message"]["content"],
        "{\"summary\": \"Cal"
    );

    // JSON mode answers a JSON object, if the messages mention JSON (the API insists).
    let mut json_mode = chat_body("Reply in JSON please.");
    json_mode["response_format"] = json!({"type": "json_object"});
    let answered: Value = post_openai(&fake, "chat/completions", &json_mode)
        .await
        .json()
        .await
        .unwrap();
    let content = answered["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(serde_json::from_str::<Value>(content).unwrap().is_object());
    json_mode["messages"][1]["content"] = json!("Reply please.");
    assert_eq!(
        post_openai(&fake, "chat/completions", &json_mode)
            .await
            .status(),
        400
    );
    fake.stop().await;
}

#[tokio::test]
async fn chat_completions_refuses_unknown_fields_and_bad_messages() {
    let fake = FakeOpenAiText::start().await.unwrap();
    let body = json!({
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "function", "content": "x"},
            {"role": "user"},
            {"role": "tool", "content": "42"},
        ],
        "max_tokens": 100,
        "max_completion_tokens": 100,
        "max_output_tokens": 100,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
    });

    let response = post_openai(&fake, "chat/completions", &body).await;

    assert_eq!(response.status(), 400);
    assert_eq!(
        fake.requests()[0].problems,
        [
            "Unknown parameter: 'max_output_tokens'.",
            r#"messages[0].role must be one of "system", "developer", "user", "assistant", "tool", got "function""#,
            "messages[1].content is required",
            "messages[2].tool_call_id is required",
            "max_tokens and max_completion_tokens cannot both be set (max_tokens is the deprecated name)",
            "response_format.json_schema.schema is required",
        ]
    );
    // An assistant message that made tool calls may have no content.
    let tool_turn = json!({
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
        ],
        "max_tokens": 100,
    });
    assert_eq!(
        post_openai(&fake, "chat/completions", &tool_turn)
            .await
            .status(),
        200
    );
    let wrong_path = post_openai(&fake, "completions", &chat_body("Hi")).await;
    assert_eq!(wrong_path.status(), 404);
    assert_eq!(
        wrong_path.json::<Value>().await.unwrap()["error"]["message"],
        "Invalid URL (POST /v1/completions)"
    );
    fake.stop().await;
}

#[test]
fn schema_instances_satisfy_common_schemas() {
    let conversation = schema_instance::Conversation {
        last_user_text: "Hello",
    };
    let schemas = [
        analysis_schema(),
        json!({
            "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"], "additionalProperties": false}},
            "type": "object",
            "properties": {
                "home": {"$ref": "#/$defs/address"},
                "when": {"type": "string", "format": "date-time"},
                "email": {"type": "string", "format": "email"},
                "nullable": {"anyOf": [{"type": "integer", "exclusiveMinimum": 5}, {"type": "null"}]},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "step": {"type": "integer", "minimum": 1, "multipleOf": 5},
                "negative": {"type": "integer", "maximum": -3},
                "code": {"type": "string", "minLength": 30, "maxLength": 30},
                "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": true},
                "names": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": true},
                "kind": {"const": "call"},
                "empty": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
                "merged": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "null"}}, "required": ["b"]},
                ]},
            },
            "required": ["home", "when", "email", "nullable", "ratio", "step", "negative", "code",
                         "tags", "names", "kind", "empty", "merged"],
        }),
    ];
    for schema in schemas {
        let value = schema_instance::instance(&schema, &conversation);
        let errors = schema_errors(&schema, &value, "$", &schema);
        assert!(errors.is_empty(), "{errors:?} in {value}");
    }
    let value = schema_instance::instance(&json!({"type": "string"}), &conversation);
    assert_eq!(value, json!("A sample value."));
    // Deterministic: the same schema gives the same value.
    assert_eq!(
        schema_instance::instance(&analysis_schema(), &conversation),
        schema_instance::instance(&analysis_schema(), &conversation)
    );
    // A recursive schema ends.
    let tree = json!({"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}});
    assert!(schema_instance::instance(&tree, &conversation).is_object());
}
