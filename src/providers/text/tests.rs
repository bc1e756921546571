use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use super::*;
use crate::domain::text_ai::{ChatRole, Finish};
use crate::sim::fake_text_ai::{FakeAnthropic, FakeOpenAiText, Scripted};

fn request(schema: Option<Value>) -> TextRequest {
    TextRequest {
        model: "m-1".to_owned(),
        system: Some("Be brief.".to_owned()),
        messages: vec![
            ChatMessage {
                role: ChatRole::User,
                content: "Hi".to_owned(),
            },
            ChatMessage {
                role: ChatRole::Assistant,
                content: "Hello".to_owned(),
            },
            ChatMessage {
                role: ChatRole::User,
                content: "Hours?".to_owned(),
            },
        ],
        max_tokens: 10,
        json_schema: schema.map(|schema| JsonOutput {
            name: "call_analysis".to_owned(),
            schema,
        }),
    }
}

fn closed_schema() -> Value {
    json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false})
}

#[test]
fn anthropic_bodies_put_the_system_prompt_at_the_top_and_the_schema_in_output_config() {
    let body = anthropic::request_body(&request(Some(closed_schema())));
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 10);
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "system")
    );
    assert_eq!(
        body["output_config"],
        json!({"format": {"type": "json_schema", "schema": closed_schema()}})
    );
    assert!(
        anthropic::request_body(&request(None))
            .get("output_config")
            .is_none()
    );
}

#[test]
fn responses_bodies_do_not_store_and_send_strict_only_when_the_schema_allows() {
    let body = openai_responses::request_body(&request(Some(closed_schema())));
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["store"], false);
    assert_eq!(
        body["max_output_tokens"], 16,
        "raised to Responses' minimum"
    );
    assert_eq!(
        body["input"][2],
        json!({"role": "user", "content": "Hours?"})
    );
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(body["text"]["format"]["name"], "call_analysis");
    assert_eq!(body["text"]["format"]["strict"], true);
    let open = openai_responses::request_body(&request(Some(json!({"type": "object"}))));
    assert_eq!(open["text"]["format"]["strict"], false);
}

#[test]
fn chat_bodies_lead_with_a_system_message() {
    let body = chat_completions::request_body(&request(Some(closed_schema())));
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(body["messages"].as_array().unwrap().len(), 4);
    assert_eq!(body["max_completion_tokens"], 10);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert!(body.get("max_tokens").is_none());
}

#[test]
fn anthropic_replies_are_read_with_cache_tokens_counted() {
    let reply = anthropic::read_reply(&json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": "Nine "}, {"type": "text", "text": "to five."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 800, "output_tokens": 96, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 2}
    }))
    .unwrap();
    assert_eq!(reply.text, "Nine to five.");
    assert_eq!(reply.stop_reason, "end_turn");
    assert_eq!(reply.finish, Finish::Complete);
    assert_eq!(reply.usage.input_tokens, 812);
    assert_eq!(reply.usage.output_tokens, 96);
    for (reason, finish) in [
        ("max_tokens", Finish::Truncated),
        ("refusal", Finish::Refused),
    ] {
        let cut =
            anthropic::read_reply(&json!({"content": [], "stop_reason": reason, "usage": {}}))
                .unwrap();
        assert_eq!(cut.finish, finish);
    }
    assert!(anthropic::read_reply(&json!({"stop_reason": "end_turn"})).is_err());
}

#[test]
fn responses_replies_join_output_text_and_report_refusals_and_truncation() {
    let reply = openai_responses::read_reply(&json!({
        "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-x",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}
        ],
        "usage": {"input_tokens": 812, "output_tokens": 96, "total_tokens": 908}
    }))
    .unwrap();
    assert_eq!(
        (reply.text.as_str(), reply.finish),
        ("Hello", Finish::Complete)
    );
    assert_eq!(reply.stop_reason, "completed");
    assert_eq!(reply.usage.input_tokens, 812);
    let refused = openai_responses::read_reply(&json!({
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "I can't."}]}]
    }))
    .unwrap();
    assert_eq!(
        (refused.text.as_str(), refused.finish),
        ("I can't.", Finish::Refused)
    );
    let cut = openai_responses::read_reply(&json!({
        "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hel"}]}]
    }))
    .unwrap();
    assert_eq!(
        (cut.finish, cut.stop_reason.as_str()),
        (Finish::Truncated, "max_output_tokens")
    );
    let filtered = openai_responses::read_reply(&json!({
        "status": "incomplete", "incomplete_details": {"reason": "content_filter"}, "output": []
    }))
    .unwrap();
    assert_eq!(filtered.finish, Finish::Refused);
    let failed = openai_responses::read_reply(&json!({
        "status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []
    }))
    .unwrap_err();
    assert!(failed.contains("server_error"), "{failed}");
}

#[test]
fn chat_replies_read_the_first_choice() {
    let reply = chat_completions::read_reply(&json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "llama",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": null}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    }))
    .unwrap();
    assert_eq!(
        (reply.text.as_str(), reply.finish),
        ("Hi", Finish::Truncated)
    );
    assert_eq!(
        (reply.usage.input_tokens, reply.usage.output_tokens),
        (5, 1)
    );
    let refused = chat_completions::read_reply(&json!({
        "choices": [{"message": {"content": null, "refusal": "No."}, "finish_reason": "stop"}]
    }))
    .unwrap();
    assert_eq!(
        (refused.text.as_str(), refused.finish),
        ("No.", Finish::Refused)
    );
    assert!(chat_completions::read_reply(&json!({"choices": []})).is_err());
}

#[test]
fn error_bodies_and_statuses_map_to_stable_codes() {
    assert_eq!(
        anthropic::error_detail(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        ),
        Some("overloaded_error: Overloaded".to_owned())
    );
    assert_eq!(
        openai_responses::error_detail(
            &json!({"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}})
        ),
        Some("rate_limit_exceeded: Rate limit".to_owned())
    );
    assert_eq!(
        openai_responses::error_detail(&json!({"error": "model not found"})),
        Some("model not found".to_owned())
    );
    for (status, code) in [
        (401, TextErrorCode::AuthFailed),
        (403, TextErrorCode::AuthFailed),
        (429, TextErrorCode::RateLimited),
        (529, TextErrorCode::Unavailable),
        (500, TextErrorCode::Unavailable),
        (408, TextErrorCode::Rejected),
        (400, TextErrorCode::Rejected),
        (404, TextErrorCode::Rejected),
    ] {
        assert_eq!(code_for_status(status), code, "{status}");
    }
    assert!(TextErrorCode::Timeout.is_transient());
    assert!(
        !TextErrorCode::Timeout.is_retried(),
        "the provider may still bill it"
    );
    assert!(TextErrorCode::ConnectFailed.is_retried());
    assert!(!TextErrorCode::AuthFailed.is_transient());
}

#[test]
fn urls_join_without_doubling_slashes() {
    let endpoint = |provider, base: &str| Endpoint {
        provider,
        base_url: Url::parse(base).unwrap(),
        api_key: SecretString::new("k".to_owned()),
    };
    assert_eq!(
        endpoint(TextProvider::Anthropic, "https://api.anthropic.com").url(),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(
        endpoint(TextProvider::OpenaiResponses, "https://api.openai.com/v1/").url(),
        "https://api.openai.com/v1/responses"
    );
    assert_eq!(
        endpoint(TextProvider::ChatCompletions, "http://localhost:11434/v1").url(),
        "http://localhost:11434/v1/chat/completions"
    );
    let debug = format!(
        "{:?}",
        endpoint(TextProvider::Anthropic, "https://a.example")
    );
    assert!(!debug.contains("\"k\""), "{debug}");
}

#[test]
fn strictness_follows_openais_rules_all_the_way_down() {
    assert!(is_strict_compatible(&closed_schema()));
    assert!(!is_strict_compatible(
        &json!({"type": "object", "properties": {"a": {}}})
    ));
    let nested_open = json!({
        "type": "object", "additionalProperties": false, "required": ["inner"],
        "properties": {"inner": {"type": "object", "properties": {"b": {"type": "string"}}, "required": [], "additionalProperties": false}}
    });
    assert!(!is_strict_compatible(&nested_open));
    assert!(is_strict_compatible(
        &json!({"type": "string", "enum": ["a", "b"]})
    ));
}

#[test]
fn waits_grow_and_retry_after_is_read_as_seconds() {
    for attempt in 1..=10 {
        let wait = backoff(attempt);
        assert!(wait <= MAX_BACKOFF, "{wait:?}");
        assert!(wait >= FIRST_BACKOFF.mul_f64(0.75), "{wait:?}");
    }
    assert!(backoff(3) > backoff(1));
    assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    assert_eq!(parse_retry_after("-1"), None);
}

/// What the scripted server answers, in turn, and how many requests it has had.
type Script = (Vec<(u16, Value)>, Arc<AtomicUsize>);

/// A local Chat Completions server that answers `script` in turn (status, body), then 200.
async fn scripted_server(script: Vec<(u16, Value)>) -> (Url, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = web::Data::new((script, Arc::clone(&hits)));
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).default_service(web::to(
            |state: web::Data<Script>| async move {
                let hit = state.1.fetch_add(1, Ordering::SeqCst);
                match state.0.get(hit) {
                    Some((status, body)) => {
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(*status).unwrap())
                            .insert_header(("retry-after", "0"))
                            .json(body)
                    }
                    None => HttpResponse::Ok().json(json!({
                        "model": "m-1",
                        "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
                    })),
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (
        Url::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap(),
        hits,
    )
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        attempt_timeout: Duration::from_secs(5),
        max_wait: Duration::from_secs(1),
    }
}

fn chat_endpoint(base_url: Url, key: &str) -> Endpoint {
    Endpoint {
        provider: TextProvider::ChatCompletions,
        base_url,
        api_key: SecretString::new(key.to_owned()),
    }
}

#[tokio::test]
async fn passing_failures_are_retried_and_final_ones_are_not() {
    let busy = json!({"error": {"message": "slow down", "code": "rate_limit_exceeded"}});
    let (base, hits) = scripted_server(vec![(429, busy.clone()), (503, busy.clone())]).await;
    let client = reqwest::Client::new();
    let reply = complete(
        &client,
        &chat_endpoint(base, "sk-1"),
        &request(None),
        policy(3),
    )
    .await
    .unwrap();
    assert_eq!(reply.text, "ok");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let (base, hits) = scripted_server(vec![(429, busy.clone()), (429, busy)]).await;
    let error = complete(
        &client,
        &chat_endpoint(base, "sk-1"),
        &request(None),
        policy(2),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code, error.attempts, error.status),
        (TextErrorCode::RateLimited, 2, Some(429))
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let quoted = json!({"error": {"message": "Incorrect API key provided: sk-secret-123", "code": "invalid_api_key"}});
    let (base, hits) = scripted_server(vec![(401, quoted)]).await;
    let error = complete(
        &client,
        &chat_endpoint(base, "sk-secret-123"),
        &request(None),
        policy(3),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, TextErrorCode::AuthFailed);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a refused key is not retried"
    );
    assert!(
        !error.message.contains("sk-secret-123"),
        "{}",
        error.message
    );
    assert!(error.message.contains("[redacted]"), "{}", error.message);
}

#[tokio::test]
async fn a_refused_connection_is_connect_failed() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = Url::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap();
    let error = complete(
        &reqwest::Client::new(),
        &chat_endpoint(base, "k"),
        &request(None),
        policy(1),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, TextErrorCode::ConnectFailed);
}

#[tokio::test]
async fn a_key_quoted_where_the_message_is_cut_is_redacted_whole() {
    // The key starts 20 characters before the 500-character cut: were the message cut before
    // the key is replaced, its first 20 characters would be left for the tenant and the logs.
    let key = "sk-straddle-0123456789abcdefghij";
    let padding = "x".repeat(500 - 20 - "invalid_api_key: ".len());
    let quoted =
        json!({"error": {"message": format!("{padding}{key}"), "code": "invalid_api_key"}});
    let (base, _) = scripted_server(vec![(401, quoted)]).await;
    let error = complete(
        &reqwest::Client::new(),
        &chat_endpoint(base, key),
        &request(None),
        policy(1),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, TextErrorCode::AuthFailed);
    assert!(!error.message.contains(&key[..8]), "{}", error.message);
    assert!(error.message.ends_with("[redacted]"), "{}", error.message);
    assert!(error.message.chars().count() <= 500);
}

#[tokio::test]
async fn a_retry_after_up_to_the_maximum_wait_is_waited_before_the_retry() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(1),
    });
    let endpoint = Endpoint {
        provider: TextProvider::Anthropic,
        base_url: Url::parse(&fake.base_url()).unwrap(),
        api_key: SecretString::new("sk-ant-1".to_owned()),
    };

    // The maximum wait is 1 s: a provider asking for exactly that is waited.
    let reply = complete(
        &reqwest::Client::new(),
        &endpoint,
        &request(None),
        policy(2),
    )
    .await
    .unwrap();

    assert_eq!(reply.text, "You said: Hours?");
    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|record| record.status).collect();
    assert_eq!(statuses, [429, 200]);
    // Without the header the first retry waits at most 0.5 s (the backoff).
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].received_at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(fake.violations(), Vec::<String>::new());
    fake.stop().await;
}

#[tokio::test]
async fn a_retry_after_over_the_maximum_wait_fails_at_once_without_a_retry() {
    let anthropic = FakeAnthropic::start().await.unwrap();
    let openai = FakeOpenAiText::start().await.unwrap();
    let endpoints = [
        (TextProvider::Anthropic, anthropic.base_url(), &*anthropic),
        (TextProvider::ChatCompletions, openai.base_url(), &*openai),
    ];
    for (provider, base, fake) in endpoints {
        fake.push(Scripted::Error {
            status: 429,
            retry_after_secs: Some(2),
        });
        let endpoint = Endpoint {
            provider,
            base_url: Url::parse(&base).unwrap(),
            api_key: SecretString::new("sk-1".to_owned()),
        };

        // Three tries allowed, at most 1 s apart: the provider asks for 2 s.
        let error = complete(
            &reqwest::Client::new(),
            &endpoint,
            &request(None),
            policy(3),
        )
        .await
        .unwrap_err();

        assert_eq!(error.code, TextErrorCode::RateLimited, "{provider:?}");
        assert_eq!(error.code.as_str(), "rate_limited");
        assert_eq!(error.attempts, 1, "{provider:?}");
        assert_eq!(error.status, Some(429));
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(2)),
            "kept for the caller's own Retry-After"
        );
        assert_eq!(fake.requests().len(), 1, "{provider:?}: no second request");
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
    anthropic.stop().await;
    openai.stop().await;
}
