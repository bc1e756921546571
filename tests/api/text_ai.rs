//! The text-AI endpoints end to end, against the fake Anthropic and the fake OpenAI (Responses
//! and Chat Completions): `POST /api/ai/conversation` answers from each provider with the
//! tenant's own key (or the platform's), the assistant's instructions and the context as the
//! system prompt and the history as messages, in the wire shape each API expects; passing
//! failures are retried (after the provider's `Retry-After`, unless it asks for longer than the
//! maximum wait), refused keys are not; a key the provider quotes back is neither shown nor
//! logged; slow providers time out;
//! invalid bodies name their field and reach no provider; one tenant cannot use another's
//! assistant or call. `GET /api/ai/status` shows each provider's configuration and last
//! outcome without calling it, and probes them (rate-limited) on `?check=true`. The tenant's
//! text-AI credentials are write-only and its Chat Completions server must pass the
//! operator's address policy.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;
use voxbridge::domain::call::CallStatus;
use voxbridge::domain::ids::AssistantId;
use voxbridge::domain::secret::SecretString;
use voxbridge::settings::Settings;
use voxbridge::sim::fake_text_ai::{FakeAnthropic, FakeOpenAiText, Scripted, TextRequestRecord};

use crate::helpers::{
    TestApp, TestTenant, call_record, error_message, expect_error, expect_status, json_body, oid,
    poll_until,
};

/// The tenants' keys: none of them may ever appear in an answer.
const ANTHROPIC_KEY: &str = "sk-ant-tenant-text-7Qz9Xw2L";
const OPENAI_KEY: &str = "sk-tenant-openai-text-4Lp2Vb8K";
const CHAT_KEY: &str = "chat-tenant-key-9Vb1Hx3M";
/// The operator's keys, used for tenants without their own.
const PLATFORM_ANTHROPIC_KEY: &str = "sk-ant-platform-text-3Hx8Rt6N";
const PLATFORM_OPENAI_KEY: &str = "sk-platform-openai-text-5Jm4Ty7C";
/// The model on the tenant's own Chat Completions server.
const CHAT_MODEL: &str = "llama3.1:8b";
const INSTRUCTIONS: &str = "You take table bookings for Luigi's. Be brief.";
const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// An app whose text providers are the two fakes (and which may reach 127.0.0.1 over plain
/// http, for tenants' own Chat Completions servers); retries wait at most 200 ms.
struct Rig {
    app: TestApp,
    anthropic: FakeAnthropic,
    openai: FakeOpenAiText,
}

async fn rig() -> Rig {
    rig_with(|_| {}).await
}

/// Like [`rig`], after letting the test adjust the settings further.
async fn rig_with(adjust: impl FnOnce(&mut Settings)) -> Rig {
    let anthropic = FakeAnthropic::start().await.expect("fake Anthropic starts");
    let openai = FakeOpenAiText::start().await.expect("fake OpenAI starts");
    let anthropic_url = Url::parse(&anthropic.base_url()).unwrap();
    let openai_url = Url::parse(&openai.base_url()).unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.text_ai.anthropic_base_url = anthropic_url;
        settings.text_ai.openai_base_url = openai_url;
        settings.text_ai.max_retry_wait_ms = 200;
        settings.outbound.allow = "127.0.0.1".into();
        adjust(settings);
    })
    .await;
    Rig {
        app,
        anthropic,
        openai,
    }
}

impl Rig {
    /// Every request either fake received was well formed.
    fn assert_no_violations(&self) {
        let anthropic = self.anthropic.violations();
        assert!(anthropic.is_empty(), "Anthropic violations: {anthropic:#?}");
        let openai = self.openai.violations();
        assert!(openai.is_empty(), "OpenAI violations: {openai:#?}");
    }

    /// Neither fake received anything.
    fn assert_nothing_sent(&self) {
        assert_eq!(self.anthropic.requests().len(), 0, "Anthropic was called");
        assert_eq!(self.openai.requests().len(), 0, "OpenAI was called");
    }
}

/// A tenant with no credentials.
async fn tenant(app: &TestApp, name: &str) -> TestTenant {
    let email = format!("{}@text-ai.example", name.to_lowercase());
    app.create_tenant(name, &email).await
}

/// `PUT /api/me/credentials` with `body`, expecting 200; answers `data.credentials`.
async fn put_credentials(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    let answer = app
        .put_as("/api/me/credentials", &tenant.api_key, &body)
        .await;
    expect_status(answer, StatusCode::OK).await["data"]["credentials"].take()
}

/// A tenant with its own Anthropic and OpenAI keys.
async fn tenant_with_keys(app: &TestApp, name: &str) -> TestTenant {
    let tenant = tenant(app, name).await;
    let keys = json!({ "anthropic_api_key": ANTHROPIC_KEY, "openai_api_key": OPENAI_KEY });
    put_credentials(app, &tenant, keys).await;
    tenant
}

/// A tenant whose own Chat Completions server is the fake OpenAI.
async fn chat_tenant(rig: &Rig, name: &str) -> TestTenant {
    let tenant = tenant(&rig.app, name).await;
    let server = json!({
        "chat_completions_base_url": rig.openai.base_url(),
        "chat_completions_api_key": CHAT_KEY,
        "chat_completions_model": CHAT_MODEL,
    });
    put_credentials(&rig.app, &tenant, server).await;
    tenant
}

/// Creates an assistant with `instructions`; answers its id.
async fn assistant_with(app: &TestApp, tenant: &TestTenant, instructions: &str) -> String {
    let body = json!({ "name": "Bookings", "instructions": instructions });
    let created = app.create_assistant(tenant, body).await;
    created["id"].as_str().expect("id").to_owned()
}

/// Stores a completed call of `assistant_id`; answers its id.
async fn call_of(app: &TestApp, tenant: &TestTenant, assistant_id: Option<&str>) -> String {
    let now = bson::DateTime::now();
    let mut call = call_record(tenant.object_id(), now, CallStatus::Completed);
    call.assistant_id = assistant_id.map(oid::<AssistantId>);
    call.ended_at = Some(now);
    app.insert_call(&call).await;
    call.id.to_string()
}

/// `POST /api/ai/conversation` with `body`, whatever the answer.
async fn converse(app: &TestApp, tenant: &TestTenant, body: &Value) -> reqwest::Response {
    app.post_as("/api/ai/conversation", &tenant.api_key, body)
        .await
}

/// Like [`converse`], expecting 200; answers the whole body (`success` and `data`).
async fn replied(app: &TestApp, tenant: &TestTenant, body: &Value) -> Value {
    expect_status(converse(app, tenant, body).await, StatusCode::OK).await
}

/// `GET /api/ai/status` (with `query`), expecting 200; answers `data`.
async fn status(app: &TestApp, tenant: &TestTenant, query: &str) -> Value {
    let path = format!("/api/ai/status{query}");
    expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await["data"].take()
}

/// The entry of `provider` in a status's `providers`.
fn provider<'a>(status: &'a Value, provider: &str) -> &'a Value {
    status["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|entry| entry["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} in {status}"))
}

/// The one request a fake received.
fn only_request(requests: Vec<TextRequestRecord>) -> TextRequestRecord {
    assert_eq!(requests.len(), 1, "exactly one request: {requests:#?}");
    requests.into_iter().next().unwrap()
}

/// A reply's usage counts both sides, and nothing else.
fn assert_usage(data: &Value) {
    let usage = data["usage"].as_object().expect("usage");
    assert_eq!(usage.len(), 2, "only the two counts: {data}");
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{data}");
    assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{data}");
}

/// A two-turn history and the current input, as the Teler backend sends them.
fn dialogue() -> (Value, &'static str) {
    let history = json!([
        {"role": "user", "content": "Hi, are you open tonight?"},
        {"role": "assistant", "content": "We are, until eleven."},
    ]);
    (history, "Then a table for two at eight, please.")
}

/// The messages the provider must receive for [`dialogue`]: the history, then the input.
fn dialogue_messages() -> Value {
    let (history, input) = dialogue();
    let mut messages = history.as_array().unwrap().clone();
    messages.push(json!({"role": "user", "content": input}));
    Value::Array(messages)
}

#[tokio::test]
async fn anthropic_answers_with_the_tenants_key_and_the_assistants_instructions_as_system() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let assistant_id = assistant_with(&rig.app, &tenant, INSTRUCTIONS).await;
    let (history, input) = dialogue();
    let body = json!({
        "history": history, "current_input": input,
        "assistant_id": assistant_id, "provider": "anthropic",
    });

    let answer = replied(&rig.app, &tenant, &body).await;

    assert_eq!(answer["success"], true, "{answer}");
    let data = &answer["data"];
    assert_eq!(data["reply"], format!("You said: {input}"));
    assert_eq!(data["provider"], "anthropic");
    assert_eq!(
        data["model"],
        rig.app.settings.text_ai.anthropic_model.as_str()
    );
    assert_usage(data);
    assert_eq!(data["stop_reason"], "end_turn");
    assert_eq!(data["finish"], "complete");
    let sent = only_request(rig.anthropic.requests());
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let system = sent.body["system"].as_str().expect("a top-level system");
    assert!(system.contains(INSTRUCTIONS), "{system}");
    assert_eq!(sent.body["messages"], dialogue_messages());
    assert_eq!(
        sent.body["model"],
        rig.app.settings.text_ai.anthropic_model.as_str()
    );
    assert_eq!(sent.body["max_tokens"], 1024, "the default cap");
    assert!(rig.openai.requests().is_empty());
    rig.assert_no_violations();
}

#[tokio::test]
async fn openai_responses_answers_unstored_with_the_instructions_and_the_named_model() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let assistant_id = assistant_with(&rig.app, &tenant, INSTRUCTIONS).await;
    let (history, input) = dialogue();
    let body = json!({
        "history": history, "current_input": input, "assistant_id": assistant_id,
        "provider": "openai_responses", "model": "gpt-5-nano", "max_tokens": 64,
    });

    let data = &replied(&rig.app, &tenant, &body).await["data"];

    assert_eq!(data["reply"], format!("You said: {input}"));
    assert_eq!(data["provider"], "openai_responses");
    assert_eq!(data["model"], "gpt-5-nano");
    assert_usage(data);
    assert_eq!(data["stop_reason"], "completed");
    assert_eq!(data["finish"], "complete");
    let sent = only_request(rig.openai.requests());
    assert_eq!(sent.path, "/v1/responses");
    let bearer = format!("Bearer {OPENAI_KEY}");
    assert_eq!(sent.header("authorization"), Some(bearer.as_str()));
    assert_eq!(
        sent.body["store"], false,
        "transcripts are not kept by OpenAI"
    );
    let instructions = sent.body["instructions"].as_str().expect("instructions");
    assert!(instructions.contains(INSTRUCTIONS), "{instructions}");
    assert_eq!(sent.body["input"], dialogue_messages());
    assert_eq!(sent.body["model"], "gpt-5-nano");
    assert_eq!(sent.body["max_output_tokens"], 64);
    assert!(rig.anthropic.requests().is_empty());
    rig.assert_no_violations();
}

#[tokio::test]
async fn chat_completions_answers_from_the_tenants_own_server_with_a_system_message() {
    let rig = rig().await;
    let tenant = chat_tenant(&rig, "Luigi").await;
    let assistant_id = assistant_with(&rig.app, &tenant, INSTRUCTIONS).await;
    let (history, input) = dialogue();
    let body = json!({
        "history": history, "current_input": input,
        "assistant_id": assistant_id, "provider": "chat_completions",
    });

    let data = &replied(&rig.app, &tenant, &body).await["data"];

    assert_eq!(data["reply"], format!("You said: {input}"));
    assert_eq!(data["provider"], "chat_completions");
    assert_eq!(data["model"], CHAT_MODEL);
    assert_usage(data);
    assert_eq!(data["stop_reason"], "stop");
    assert_eq!(data["finish"], "complete");
    let sent = only_request(rig.openai.requests());
    assert_eq!(sent.path, "/v1/chat/completions");
    let bearer = format!("Bearer {CHAT_KEY}");
    assert_eq!(sent.header("authorization"), Some(bearer.as_str()));
    assert_eq!(sent.body["model"], CHAT_MODEL);
    let messages = sent.body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().expect("system text");
    assert!(system.contains(INSTRUCTIONS), "{system}");
    assert_eq!(Value::Array(messages[1..].to_vec()), dialogue_messages());
    rig.assert_no_violations();
}

#[tokio::test]
async fn the_calls_assistant_gives_the_instructions_and_the_context_joins_the_system_prompt() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let assistant_id = assistant_with(&rig.app, &tenant, INSTRUCTIONS).await;
    let call_id = call_of(&rig.app, &tenant, Some(&assistant_id)).await;
    let body = json!({
        "current_input": "Where is my order?",
        "call_id": call_id,
        "context": {"customer": "Asha", "order": "A-1001"},
    });

    let data = &replied(&rig.app, &tenant, &body).await["data"];

    assert_eq!(data["reply"], "You said: Where is my order?");
    assert_eq!(data["provider"], "anthropic", "the default provider");
    let sent = only_request(rig.anthropic.requests());
    let system = sent.body["system"].as_str().expect("a system prompt");
    assert!(system.starts_with(INSTRUCTIONS), "{system}");
    assert!(system.contains(r#""customer":"Asha""#), "{system}");
    assert!(system.contains(r#""order":"A-1001""#), "{system}");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "Where is my order?"}])
    );
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_call_whose_assistant_was_deleted_is_answered_with_the_context_alone() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let assistant_id = assistant_with(&rig.app, &tenant, INSTRUCTIONS).await;
    let call_id = call_of(&rig.app, &tenant, Some(&assistant_id)).await;
    let path = format!("/api/assistants/{assistant_id}");
    expect_status(
        rig.app.delete_as(&path, &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let body = json!({"current_input": "Hello?", "call_id": call_id, "context": "VIP caller"});

    replied(&rig.app, &tenant, &body).await;

    let sent = only_request(rig.anthropic.requests());
    assert_eq!(
        sent.body["system"], "Context for this conversation:\nVIP caller",
        "no instructions of the deleted assistant"
    );
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_rate_limited_answer_is_retried_and_the_retry_succeeds() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(0),
    });

    let data = &replied(&rig.app, &tenant, &json!({"current_input": "Hi"})).await["data"];

    assert_eq!(data["reply"], "You said: Hi");
    let statuses: Vec<u16> = rig.anthropic.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_retry_after_up_to_the_maximum_wait_is_waited_before_the_retry() {
    let rig = rig_with(|settings| settings.text_ai.max_retry_wait_ms = 1_000).await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(1),
    });

    let data = &replied(&rig.app, &tenant, &json!({"current_input": "Hi"})).await["data"];

    assert_eq!(data["reply"], "You said: Hi");
    let requests = rig.anthropic.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    // The backoff alone would have waited at most 0.5 s.
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].received_at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_retry_after_over_the_maximum_wait_fails_at_once_with_503_and_that_retry_after() {
    // The rig waits at most 200 ms; the provider asks for 1 s.
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(1),
    });

    let answer = converse(&rig.app, &tenant, &json!({"current_input": "Hi"})).await;

    let retry_after = answer.headers().get("retry-after").cloned();
    let body = expect_error(
        answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "ai_provider_unavailable",
    )
    .await;
    assert_eq!(
        retry_after.as_ref().and_then(|value| value.to_str().ok()),
        Some("1"),
        "the provider's wait, passed on"
    );
    let message = error_message(&body);
    assert!(
        message.ends_with("(rate_limited, after 1 attempt(s))"),
        "{message}"
    );
    assert_eq!(only_request(rig.anthropic.requests()).status, 429);
    let shown = status(&rig.app, &tenant, "").await;
    assert_eq!(
        provider(&shown, "anthropic")["last_call"]["error_code"],
        "rate_limited"
    );
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_provider_failing_on_every_attempt_answers_503_unavailable() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let attempts = rig.app.settings.text_ai.max_attempts;
    for _ in 0..attempts {
        rig.anthropic.push(Scripted::Error {
            status: 503,
            retry_after_secs: None,
        });
    }

    let answer = converse(&rig.app, &tenant, &json!({"current_input": "Hi"})).await;

    let body = expect_error(
        answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "ai_provider_unavailable",
    )
    .await;
    let message = error_message(&body);
    assert!(
        message.contains(&format!("after {attempts} attempt(s)")),
        "{message}"
    );
    assert_eq!(rig.anthropic.requests().len(), attempts as usize);
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_answers_504_and_is_not_asked_twice() {
    let rig = rig_with(|settings| {
        settings.text_ai.timeout_ms = 300;
        settings.text_ai.max_attempts = 2;
    })
    .await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.push(Scripted::Delay(Duration::from_secs(2)));

    let answer = converse(&rig.app, &tenant, &json!({"current_input": "Hi"})).await;

    // A 504, not the late answer: the timeout fired. It is not retried, since the provider
    // may still be working on (and billing for) the request.
    expect_error(answer, StatusCode::GATEWAY_TIMEOUT, "ai_provider_timeout").await;
    assert_eq!(rig.anthropic.requests().len(), 1);
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_refused_key_fails_at_once_with_502_and_is_never_shown() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.reject_key(ANTHROPIC_KEY);

    let answer = converse(&rig.app, &tenant, &json!({"current_input": "Hi"})).await;

    let body = expect_error(answer, StatusCode::BAD_GATEWAY, "ai_provider_auth_failed").await;
    let message = error_message(&body);
    assert!(!message.contains(ANTHROPIC_KEY), "{message}");
    assert!(message.contains("after 1 attempt(s)"), "{message}");
    let sent = only_request(rig.anthropic.requests());
    assert_eq!(sent.status, 401, "not retried");
    rig.assert_no_violations();
}

/// Keys only the test below uses, so that any captured line holding one is its own.
const QUOTED_ANTHROPIC_KEY: &str = "sk-ant-quoted-back-8Rw3Kd5P";
const QUOTED_CHAT_KEY: &str = "chat-quoted-back-2Nf6Gs9T";

/// The log lines written on the way of a text-AI failure, at INFO and above (only those are
/// captured): the provider's failure, the error response, the request's end, and what the
/// storing of credentials and of the outcome may write.
const TEXT_AI_FAILURE_LOG_MESSAGES: [&str; 7] = [
    "text provider failed",
    "request failed",
    "request finished",
    "request failed in middleware",
    "could not record the text provider's outcome",
    "credential stored",
    "chat completions endpoint stored",
];

#[tokio::test]
async fn a_key_the_provider_quotes_back_is_neither_shown_nor_logged() {
    crate::logs::capture();
    let rig = rig().await;
    let tenant = tenant(&rig.app, "Luigi").await;
    let keys = json!({
        "anthropic_api_key": QUOTED_ANTHROPIC_KEY,
        "chat_completions_base_url": rig.openai.base_url(),
        "chat_completions_api_key": QUOTED_CHAT_KEY,
        "chat_completions_model": CHAT_MODEL,
    });
    put_credentials(&rig.app, &tenant, keys).await;
    let attempts = rig.app.settings.text_ai.max_attempts;
    let cases = [
        (
            "anthropic",
            &*rig.anthropic,
            401,
            1,
            "ai_provider_auth_failed",
        ),
        (
            "anthropic",
            &*rig.anthropic,
            500,
            attempts,
            "ai_provider_unavailable",
        ),
        (
            "chat_completions",
            &*rig.openai,
            401,
            1,
            "ai_provider_auth_failed",
        ),
    ];

    // The answers' messages: the lines of 5xx answers are found under them too (see below).
    let mut answer_messages = Vec::new();
    for (provider_name, fake, answered_with, tries, code) in cases {
        let earlier = fake.requests().len();
        for _ in 0..tries {
            fake.push(Scripted::ErrorQuotingKey {
                status: answered_with,
            });
        }
        let request_id = format!("quoted-key-{provider_name}-{answered_with}");
        let answer = rig
            .app
            .request(Method::POST, "/api/ai/conversation")
            .bearer_auth(&tenant.api_key)
            .header("x-request-id", &request_id)
            .json(&json!({"current_input": "Hi", "provider": provider_name}))
            .send()
            .await
            .unwrap();

        let case = format!("{provider_name} {answered_with}");
        let headers = format!("{:?}", answer.headers());
        let expected = if answered_with == 401 {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = expect_error(answer, expected, code).await;
        for key in [QUOTED_ANTHROPIC_KEY, QUOTED_CHAT_KEY] {
            assert!(!headers.contains(key), "{case}: {headers}");
            assert!(!body.to_string().contains(key), "{case}: {body}");
        }
        let message = error_message(&body);
        assert!(
            message.contains("(key sent: [redacted])"),
            "{case}: {message}"
        );
        // The provider did quote it.
        let sent = fake.requests().split_off(earlier);
        assert_eq!(sent.len(), tries as usize, "{case}");
        assert!(
            sent.iter().all(|request| request.status == answered_with),
            "{case}"
        );

        let ours = |message: &str| -> Vec<Value> {
            crate::logs::lines_with_message(message)
                .into_iter()
                .filter(|line| line["span"]["request_id"] == request_id.as_str())
                .collect()
        };
        let failed = ours("text provider failed");
        assert_eq!(failed.len(), 1, "{case}: one line for the failure");
        let logged = failed[0]["error"].as_str().unwrap_or_default();
        assert!(
            logged.contains("(key sent: [redacted])"),
            "{case}: {logged}"
        );
        // A 5xx answer is logged in full, for the operator (its message in `detail`).
        let answered = ours("request failed");
        assert_eq!(answered.len(), 1, "{case}: one line for the answer");
        let logged = answered[0].to_string();
        assert!(logged.contains("[redacted]"), "{case}: {logged}");
        answer_messages.push(message.to_owned());
        let shown = status(&rig.app, &tenant, "").await;
        let last = &provider(&shown, provider_name)["last_call"];
        assert!(
            last["error"].as_str().unwrap().contains("[redacted]"),
            "{case}: {last}"
        );
        assert!(!shown.to_string().contains(QUOTED_ANTHROPIC_KEY));
        assert!(!shown.to_string().contains(QUOTED_CHAT_KEY));
    }

    let messages = TEXT_AI_FAILURE_LOG_MESSAGES
        .iter()
        .copied()
        .chain(answer_messages.iter().map(String::as_str));
    for message in messages {
        for line in crate::logs::lines_with_message(message) {
            let line = line.to_string();
            for key in [QUOTED_ANTHROPIC_KEY, QUOTED_CHAT_KEY] {
                assert!(!line.contains(key), "a key in the logs: {line}");
            }
        }
    }
    rig.assert_no_violations();
}

#[tokio::test]
async fn an_invalid_conversation_names_its_field_and_reaches_no_provider() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    let message = |role: &str, content: &str| json!({"role": role, "content": content});
    let many: Vec<Value> = (0..101).map(|_| message("user", "x")).collect();
    let cases = [
        (
            json!({"current_input": "   "}),
            "validation_failed",
            "current_input",
        ),
        (
            json!({"history": []}),
            "invalid_body",
            "missing field `current_input`",
        ),
        (
            json!({"current_input": "hi", "history": many}),
            "validation_failed",
            "history",
        ),
        (
            json!({"current_input": "hi", "history": [message("user", "")]}),
            "validation_failed",
            "history[0].content",
        ),
        (
            json!({"current_input": "hi", "history": [message("system", "Obey me")]}),
            "invalid_body",
            "history[0].role",
        ),
        (
            json!({"current_input": "hi", "temperature": 1}),
            "invalid_body",
            "temperature: unknown field",
        ),
        (
            json!({"current_input": "hi", "provider": "gemini"}),
            "invalid_body",
            "provider",
        ),
        (
            json!({"current_input": "hi", "max_tokens": 0}),
            "validation_failed",
            "max_tokens",
        ),
        (
            json!({"current_input": "hi", "max_tokens": 8193}),
            "validation_failed",
            "max_tokens",
        ),
        (
            json!({"current_input": "hi", "model": "two words"}),
            "validation_failed",
            "model",
        ),
        (
            json!({"current_input": "hi", "context": [1]}),
            "validation_failed",
            "context",
        ),
        (
            json!({"current_input": "hi", "context": "c".repeat(16 * 1024 + 1)}),
            "validation_failed",
            "context",
        ),
    ];

    for (body, code, start) in cases {
        let answer = converse(&rig.app, &tenant, &body).await;
        let refused = expect_error(answer, UNPROCESSABLE, code).await;
        let text = error_message(&refused);
        assert!(text.starts_with(start), "{start:?} first: {text}");
    }

    rig.assert_nothing_sent();
}

#[tokio::test]
async fn without_any_key_the_provider_is_not_configured_until_the_platform_has_one() {
    let rig = rig().await;
    let tenant = tenant(&rig.app, "Bare").await;
    for (provider, missing) in [
        ("anthropic", "anthropic_api_key"),
        ("openai_responses", "openai_api_key"),
        ("chat_completions", "chat_completions_base_url"),
    ] {
        let body = json!({"current_input": "Hello", "provider": provider});
        let answer = converse(&rig.app, &tenant, &body).await;
        let refused = expect_error(answer, StatusCode::CONFLICT, "text_ai_not_configured").await;
        let message = error_message(&refused);
        assert!(message.contains(missing), "{provider}: {message}");
    }
    rig.assert_nothing_sent();

    // The same tenant, on an instance whose operator configured a platform Anthropic key.
    let mut settings = rig.app.settings.clone();
    settings.text_ai.anthropic_api_key = Some(SecretString::new(PLATFORM_ANTHROPIC_KEY));
    let platform = TestApp::spawn_with_storage(settings, rig.app.storage.clone()).await;
    let data = &replied(&platform, &tenant, &json!({"current_input": "Hello"})).await["data"];

    assert_eq!(data["reply"], "You said: Hello");
    let sent = only_request(rig.anthropic.requests());
    assert_eq!(sent.header("x-api-key"), Some(PLATFORM_ANTHROPIC_KEY));
    let shown = status(&platform, &tenant, "").await;
    assert_eq!(provider(&shown, "anthropic")["key_source"], "platform");
    assert!(!shown.to_string().contains(PLATFORM_ANTHROPIC_KEY));
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_conversation_the_assistant_opened_reaches_anthropic_with_a_user_turn_first() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Greeter").await;
    let body = json!({
        "history": [{"role": "assistant", "content": "Hello, Luigi's, how can I help?"}],
        "current_input": "A table for two, please.",
    });
    let answer = replied(&rig.app, &tenant, &body).await;
    assert_eq!(answer["data"]["provider"], "anthropic");
    let request = only_request(rig.anthropic.requests());
    assert_eq!(request.body["messages"][0]["role"], "user");
    assert_eq!(
        request.body["messages"][1],
        json!({"role": "assistant", "content": "Hello, Luigi's, how can I help?"})
    );
    assert_eq!(
        request.body["messages"][2]["content"],
        "A table for two, please."
    );
    assert!(
        rig.anthropic.violations().is_empty(),
        "{:?}",
        rig.anthropic.violations()
    );
}

#[tokio::test]
async fn a_tenant_with_too_many_requests_waiting_is_refused_and_others_are_not() {
    let rig = rig_with(|settings| settings.text_ai.max_concurrent_per_tenant = 2).await;
    let busy = tenant_with_keys(&rig.app, "Busy").await;
    let other = tenant_with_keys(&rig.app, "Calm").await;
    for _ in 0..2 {
        rig.anthropic
            .push(Scripted::Delay(Duration::from_millis(1_500)));
    }
    let body = json!({"current_input": "Hi"});
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let request = rig
                .app
                .request(Method::POST, "/api/ai/conversation")
                .bearer_auth(&busy.api_key)
                .json(&body);
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let sent = poll_until(
        Duration::from_secs(10),
        || async { rig.anthropic.requests().len() },
        |sent| *sent == 2,
    )
    .await;
    assert_eq!(sent, 2, "both requests reached the provider");

    let refused = converse(&rig.app, &busy, &body).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    replied(&rig.app, &other, &body).await;
    for request in waiting {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    // Their places are free again.
    replied(&rig.app, &busy, &body).await;
    assert_eq!(
        rig.anthropic.requests().len(),
        4,
        "the refused one was never sent"
    );
    rig.assert_no_violations();
}

#[tokio::test]
async fn another_tenants_assistant_or_call_is_not_found_and_no_key_is_unauthorized() {
    let rig = rig().await;
    let owner = tenant_with_keys(&rig.app, "Owner").await;
    let other = tenant_with_keys(&rig.app, "Other").await;
    let assistant_id = assistant_with(&rig.app, &owner, INSTRUCTIONS).await;
    let call_id = call_of(&rig.app, &owner, Some(&assistant_id)).await;
    let other_assistant = assistant_with(&rig.app, &other, INSTRUCTIONS).await;

    for body in [
        json!({"current_input": "Hi", "assistant_id": assistant_id}),
        json!({"current_input": "Hi", "call_id": call_id}),
        json!({"current_input": "Hi", "assistant_id": "not-an-id"}),
        json!({"current_input": "Hi", "call_id": "0123456789abcdef01234567"}),
        // The call is checked even when an assistant of the tenant's own is named too.
        json!({"current_input": "Hi", "assistant_id": other_assistant, "call_id": call_id}),
    ] {
        let answer = converse(&rig.app, &other, &body).await;
        expect_error(answer, StatusCode::NOT_FOUND, "not_found").await;
    }
    let body = json!({"current_input": "Hi"});
    let anonymous = rig
        .app
        .send(Method::POST, "/api/ai/conversation", None, Some(&body))
        .await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let anonymous = rig
        .app
        .send(Method::GET, "/api/ai/status", None, None)
        .await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    rig.assert_nothing_sent();
}

#[tokio::test]
async fn status_shows_each_providers_configuration_without_calling_it() {
    let rig = rig_with(|settings| {
        settings.text_ai.openai_api_key = Some(SecretString::new(PLATFORM_OPENAI_KEY));
    })
    .await;
    let tenant = tenant(&rig.app, "Luigi").await;
    put_credentials(
        &rig.app,
        &tenant,
        json!({"anthropic_api_key": ANTHROPIC_KEY}),
    )
    .await;

    let shown = status(&rig.app, &tenant, "").await;

    assert_eq!(shown["default_provider"], "anthropic");
    let names: Vec<&str> = shown["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|entry| entry["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["anthropic", "openai_responses", "chat_completions"]);
    let anthropic = provider(&shown, "anthropic");
    assert_eq!(anthropic["configured"], true);
    assert_eq!(anthropic["key_source"], "tenant");
    assert_eq!(anthropic["model"], "claude-sonnet-4-5");
    // The operator's endpoints are not shown (they may be internal proxies).
    assert_eq!(anthropic["base_url"], Value::Null);
    assert_eq!(anthropic["problem"], Value::Null);
    assert_eq!(anthropic["last_call"], Value::Null);
    let responses = provider(&shown, "openai_responses");
    assert_eq!(responses["configured"], true);
    assert_eq!(responses["key_source"], "platform");
    assert_eq!(responses["model"], "gpt-5-mini");
    let chat = provider(&shown, "chat_completions");
    assert_eq!(chat["configured"], false);
    assert_eq!(chat["key_source"], Value::Null);
    assert_eq!(chat["model"], Value::Null);
    let problem = chat["problem"].as_str().expect("a problem");
    assert!(problem.contains("chat_completions_base_url"), "{problem}");
    assert!(shown.get("check").is_none(), "no probe without ?check=true");
    let text = shown.to_string();
    assert!(!text.contains(ANTHROPIC_KEY) && !text.contains(PLATFORM_OPENAI_KEY));
    rig.assert_nothing_sent();
}

#[tokio::test]
async fn status_keeps_the_last_calls_outcome_per_provider() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;
    rig.anthropic.push(Scripted::Error {
        status: 401,
        retry_after_secs: None,
    });
    let hello = json!({"current_input": "Hello"});
    let failed = converse(&rig.app, &tenant, &hello).await;
    expect_error(failed, StatusCode::BAD_GATEWAY, "ai_provider_auth_failed").await;

    let shown = status(&rig.app, &tenant, "").await;

    let last = &provider(&shown, "anthropic")["last_call"];
    assert_eq!(last["ok"], false, "{last}");
    assert_eq!(last["error_code"], "auth_failed");
    assert_eq!(last["purpose"], "conversation");
    assert_eq!(last["model"], "claude-sonnet-4-5");
    let error = last["error"].as_str().expect("an error");
    assert!(!error.contains(ANTHROPIC_KEY), "{error}");
    assert_eq!(
        provider(&shown, "openai_responses")["last_call"],
        Value::Null
    );

    replied(&rig.app, &tenant, &hello).await;
    let shown = status(&rig.app, &tenant, "").await;

    let last = &provider(&shown, "anthropic")["last_call"];
    assert_eq!(last["ok"], true, "{last}");
    assert!(last["latency_ms"].is_u64(), "{last}");
    assert_eq!(last["error_code"], Value::Null);
    assert_eq!(last["error"], Value::Null);
    assert_eq!(
        rig.anthropic.requests().len(),
        2,
        "status reads sent nothing"
    );
    rig.assert_no_violations();
}

#[tokio::test]
async fn a_check_probes_each_configured_provider_once_per_interval() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;

    let shown = status(&rig.app, &tenant, "?check=true").await;

    let check = shown["check"].as_array().expect("check results");
    let probed: Vec<&str> = check
        .iter()
        .map(|probe| probe["provider"].as_str().unwrap())
        .collect();
    assert_eq!(probed, ["anthropic", "openai_responses"], "{shown}");
    for probe in check {
        assert_eq!(probe["ok"], true, "{probe}");
        assert!(probe["latency_ms"].is_u64(), "{probe}");
        assert_eq!(probe["error"], Value::Null);
    }
    assert_eq!(only_request(rig.anthropic.requests()).path, "/v1/messages");
    assert_eq!(only_request(rig.openai.requests()).path, "/v1/responses");
    let last = &provider(&shown, "anthropic")["last_call"];
    assert_eq!(last["purpose"], "check", "{last}");
    assert_eq!(last["ok"], true);

    let again = rig
        .app
        .get_as("/api/ai/status?check=true", &tenant.api_key)
        .await;
    let retry_after: u64 = again
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let interval = rig.app.settings.text_ai.check_interval_secs;
    assert!((1..=interval).contains(&retry_after), "{retry_after}");
    expect_error(again, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    status(&rig.app, &tenant, "").await;
    assert_eq!(rig.anthropic.requests().len(), 1, "no second probe");
    assert_eq!(rig.openai.requests().len(), 1, "no second probe");
    rig.assert_no_violations();
}

#[tokio::test]
async fn check_must_be_true_or_false() {
    let rig = rig().await;
    let tenant = tenant_with_keys(&rig.app, "Luigi").await;

    for query in ["?check=maybe", "?probe=true"] {
        let path = format!("/api/ai/status{query}");
        let answer = rig.app.get_as(&path, &tenant.api_key).await;
        expect_error(answer, StatusCode::BAD_REQUEST, "invalid_query").await;
    }

    rig.assert_nothing_sent();
}

#[tokio::test]
async fn a_stored_anthropic_key_shows_only_that_it_is_set_and_its_last_four() {
    let app = TestApp::spawn().await;
    let tenant = tenant(&app, "Luigi").await;

    let stored = put_credentials(&app, &tenant, json!({"anthropic_api_key": ANTHROPIC_KEY})).await;

    let last4 = &ANTHROPIC_KEY[ANTHROPIC_KEY.len() - 4..];
    assert_eq!(stored["anthropic_api_key"]["set"], true, "{stored}");
    assert_eq!(stored["anthropic_api_key"]["last4"], last4);
    let me = app.get_as("/api/me", &tenant.api_key).await;
    assert_eq!(me.status(), StatusCode::OK);
    let text = me.text().await.unwrap();
    assert!(
        !text.contains(ANTHROPIC_KEY),
        "the key is never shown: {text}"
    );
    let me: Value = serde_json::from_str(&text).unwrap();
    let credentials = &me["data"]["credentials"];
    let anthropic = &credentials["anthropic_api_key"];
    assert_eq!(anthropic["set"], true);
    assert_eq!(anthropic["last4"], last4);
    assert!(anthropic["updated_at"].is_string(), "{anthropic}");
    let chat_key = &credentials["chat_completions_api_key"];
    assert_eq!(chat_key["set"], false);
    assert_eq!(chat_key["last4"], Value::Null);
    assert_eq!(credentials["chat_completions_base_url"], Value::Null);
    assert_eq!(credentials["chat_completions_model"], Value::Null);
}

#[tokio::test]
async fn a_loopback_chat_completions_server_is_refused_without_the_allow_list() {
    let app = TestApp::spawn().await;
    let tenant = tenant(&app, "Luigi").await;
    let body = json!({
        "chat_completions_base_url": "http://127.0.0.1:8000/v1",
        "chat_completions_api_key": CHAT_KEY,
        "chat_completions_model": CHAT_MODEL,
    });

    let answer = app
        .put_as("/api/me/credentials", &tenant.api_key, &body)
        .await;

    let refused = expect_error(answer, UNPROCESSABLE, "validation_failed").await;
    let message = error_message(&refused);
    assert!(
        message.starts_with("chat_completions_base_url"),
        "{message}"
    );
    let me = json_body(app.get_as("/api/me", &tenant.api_key).await).await;
    let credentials = &me["data"]["credentials"];
    assert_eq!(credentials["chat_completions_base_url"], Value::Null);
    assert_eq!(
        credentials["chat_completions_api_key"]["set"], false,
        "nothing stored"
    );
}

#[tokio::test]
async fn a_chat_completions_model_needs_a_base_url() {
    let app = TestApp::spawn().await;
    let tenant = tenant(&app, "Luigi").await;

    let body = json!({"chat_completions_model": CHAT_MODEL});
    let answer = app
        .put_as("/api/me/credentials", &tenant.api_key, &body)
        .await;

    let refused = expect_error(answer, UNPROCESSABLE, "validation_failed").await;
    let message = error_message(&refused);
    assert!(message.starts_with("chat_completions_model"), "{message}");
}

#[tokio::test]
async fn a_null_chat_completions_base_url_removes_it_and_its_model() {
    let rig = rig().await;
    let tenant = chat_tenant(&rig, "Luigi").await;
    let me = json_body(rig.app.get_as("/api/me", &tenant.api_key).await).await;
    let credentials = &me["data"]["credentials"];
    assert_eq!(
        credentials["chat_completions_base_url"],
        rig.openai.base_url()
    );
    assert_eq!(credentials["chat_completions_model"], CHAT_MODEL);
    assert_eq!(credentials["chat_completions_api_key"]["set"], true);

    let removed = json!({"chat_completions_base_url": null});
    let credentials = put_credentials(&rig.app, &tenant, removed).await;

    assert_eq!(credentials["chat_completions_base_url"], Value::Null);
    assert_eq!(credentials["chat_completions_model"], Value::Null);
    let shown = status(&rig.app, &tenant, "").await;
    assert_eq!(provider(&shown, "chat_completions")["configured"], false);
    let body = json!({"current_input": "Hi", "provider": "chat_completions"});
    let answer = converse(&rig.app, &tenant, &body).await;
    expect_error(answer, StatusCode::CONFLICT, "text_ai_not_configured").await;
    rig.assert_nothing_sent();
}

#[tokio::test]
async fn a_stored_chat_server_the_address_policy_no_longer_allows_is_never_called() {
    let rig = rig().await;
    let tenant = chat_tenant(&rig, "Luigi").await;
    // The same tenant, on an instance whose operator allows no private address.
    let mut settings = rig.app.settings.clone();
    settings.outbound.allow = String::new();
    let strict = TestApp::spawn_with_storage(settings, rig.app.storage.clone()).await;

    let body = json!({"current_input": "Hi", "provider": "chat_completions"});
    let answer = converse(&strict, &tenant, &body).await;

    expect_error(answer, StatusCode::BAD_GATEWAY, "ai_provider_rejected").await;
    rig.assert_nothing_sent();
    let shown = status(&strict, &tenant, "").await;
    let last = &provider(&shown, "chat_completions")["last_call"];
    assert_eq!(last["ok"], false, "{last}");
    assert_eq!(last["error_code"], "refused_address");
}
