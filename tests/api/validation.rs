//! Request validation on the management API: every refused request answers the documented status
//! and code, names the offending field, and writes nothing.
//!
//! - 422 `validation_failed`: a rule is broken; the message starts with the field's path
//!   ("audio.inbound_chunk_ms: …").
//! - 422 `invalid_body`: the body does not have the expected shape (unknown field, wrong type,
//!   unknown enum value, missing field); the message names the field.
//! - 400 `invalid_json`, 413 `payload_too_large`.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestTenant, json_body};

const DATA_COLLECTIONS: [&str; 5] = [
    "users",
    "api_keys",
    "assistants",
    "phone_numbers",
    "call_logs",
];

/// Every document of every data collection: equal snapshots mean nothing was written.
async fn snapshot(app: &TestApp) -> Vec<(String, Vec<Document>)> {
    let mut all = Vec::new();
    for name in DATA_COLLECTIONS {
        let documents: Vec<Document> = app
            .storage
            .collection::<Document>(name)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        all.push((name.to_owned(), documents));
    }
    all
}

#[derive(Clone, Copy)]
enum Caller {
    Tenant,
    Admin,
}

enum Body {
    Json(Value),
    Raw(String),
    None,
}

/// What the message must say about the field.
#[derive(Clone, Copy)]
enum Field {
    /// `validation_failed`: the message starts with `"<path>:"`.
    Path(&'static str),
    /// `invalid_body`: the message contains the field's name.
    Named(&'static str),
    /// No field to name (malformed JSON, oversized body).
    None,
}

struct Case {
    label: String,
    method: Method,
    path: String,
    body: Body,
    caller: Caller,
    status: StatusCode,
    code: &'static str,
    field: Field,
}

struct Setup {
    app: TestApp,
    tenant: TestTenant,
    assistant: String,
    number: String,
}

async fn setup() -> Setup {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let assistant = app
        .create_assistant(&tenant, json!({ "name": "Front desk" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let number = app
        .create_phone_number(&tenant, json!({ "phone_number": "+14155550100" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup {
        app,
        tenant,
        assistant,
        number,
    }
}

fn audio(codec: &str, rate: &str, inbound_ms: i64, outbound_ms: i64) -> Value {
    json!({ "codec": codec, "inbound_rate": rate, "inbound_chunk_ms": inbound_ms, "outbound_chunk_ms": outbound_ms })
}

fn turn_detection(kind: &str, threshold: f64, silence_ms: i64) -> Value {
    json!({ "type": kind, "threshold": threshold, "prefix_padding_ms": 300, "silence_duration_ms": silence_ms })
}

/// Runs every case; reports all failures at once.
async fn run(setup: &Setup, cases: Vec<Case>) {
    let app = &setup.app;
    let mut failures = Vec::new();
    for case in cases {
        let before = snapshot(app).await;
        let token = match case.caller {
            Caller::Tenant => setup.tenant.api_key.clone(),
            Caller::Admin => app.admin_token(),
        };
        let mut request = app
            .request(case.method.clone(), &case.path)
            .bearer_auth(&token);
        request = match &case.body {
            Body::Json(value) => request.json(value),
            Body::Raw(text) => request
                .header("content-type", "application/json")
                .body(text.clone()),
            Body::None => request,
        };
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let body = json_body(response).await;
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let mut problems = Vec::new();
        if status != case.status {
            problems.push(format!("status {status}, expected {}", case.status));
        }
        if code != case.code || body["success"] != false {
            problems.push(format!("code {code:?}, expected {:?}", case.code));
        }
        match case.field {
            Field::Path(path) if !message.starts_with(&format!("{path}:")) => {
                problems.push(format!("message does not start with \"{path}:\""));
            }
            Field::Named(name) if !message.contains(name) => {
                problems.push(format!("message does not name `{name}`"));
            }
            _ => {}
        }
        if message.is_empty() {
            problems.push("no message".to_owned());
        }
        if snapshot(app).await != before {
            problems.push("the database changed".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({} {}): {}\n    answer: {body}",
                case.label,
                case.method,
                case.path,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[allow(clippy::too_many_arguments)]
fn case(
    label: impl Into<String>,
    method: Method,
    path: impl Into<String>,
    body: Body,
    caller: Caller,
    status: StatusCode,
    code: &'static str,
    field: Field,
) -> Case {
    Case {
        label: label.into(),
        method,
        path: path.into(),
        body,
        caller,
        status,
        code,
        field,
    }
}

/// A rule broken: 422 `validation_failed`, the message starting with the field path.
fn rule(
    label: &str,
    method: Method,
    path: impl Into<String>,
    body: Value,
    caller: Caller,
    field: &'static str,
) -> Case {
    case(
        label,
        method,
        path,
        Body::Json(body),
        caller,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Field::Path(field),
    )
}

/// A body of the wrong shape: 422 `invalid_body`, the message naming the field.
fn shape(
    label: &str,
    method: Method,
    path: impl Into<String>,
    body: Value,
    caller: Caller,
    field: &'static str,
) -> Case {
    case(
        label,
        method,
        path,
        Body::Json(body),
        caller,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Field::Named(field),
    )
}

#[tokio::test]
async fn bad_phone_numbers_are_refused() {
    let s = setup().await;
    let post = |label: &str, number: &str| {
        rule(
            label,
            Method::POST,
            "/api/phone-numbers",
            json!({ "phone_number": number }),
            Caller::Tenant,
            "phone_number",
        )
    };
    let cases = vec![
        post("national spelling", "0415 555"),
        post("leading +0", "+0123"),
        post("letters", "+1415555CALL"),
        post("words", "call me"),
        post("too short", "+123456"),
        post("too long", "+1234567890123456"),
        post("empty", ""),
        post("two pluses", "++14155550100"),
    ];
    run(&s, cases).await;
}

#[tokio::test]
async fn bad_enum_values_are_refused_naming_the_field() {
    let s = setup().await;
    let assistant = format!("/api/assistants/{}", s.assistant);
    let number = format!("/api/phone-numbers/{}", s.number);
    let cases = vec![
        shape(
            "voice robot",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "voice": "robot" }),
            Caller::Tenant,
            "voice",
        ),
        shape(
            "voice robot (patch)",
            Method::PATCH,
            assistant.clone(),
            json!({ "voice": "robot" }),
            Caller::Tenant,
            "voice",
        ),
        shape(
            "audio.codec opus",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": audio("opus", "8k", 100, 100) }),
            Caller::Tenant,
            "codec",
        ),
        shape(
            "audio.inbound_rate 11k",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": audio("pcm24k", "11k", 100, 100) }),
            Caller::Tenant,
            "inbound_rate",
        ),
        shape(
            "turn_detection.type loud",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "turn_detection": turn_detection("loud", 0.5, 500) }),
            Caller::Tenant,
            "turn_detection",
        ),
        shape(
            "phone status paused",
            Method::PATCH,
            number.clone(),
            json!({ "status": "paused" }),
            Caller::Tenant,
            "status",
        ),
        case(
            "calls ?status=bogus",
            Method::GET,
            "/api/calls?status=bogus",
            Body::None,
            Caller::Tenant,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Field::Path("status"),
        ),
        case(
            "admin calls ?status=bogus",
            Method::GET,
            "/api/admin/calls?status=bogus",
            Body::None,
            Caller::Admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Field::Path("status"),
        ),
    ];
    run(&s, cases).await;
}

#[tokio::test]
async fn out_of_range_values_are_refused_naming_the_field() {
    let s = setup().await;
    let assistant = format!("/api/assistants/{}", s.assistant);
    let user = format!("/api/admin/users/{}", s.tenant.id);
    let mut cases = Vec::new();
    for ms in [10, 30, 2020, 0] {
        cases.push(rule(
            &format!("inbound_chunk_ms {ms}"),
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": audio("pcm24k", "8k", ms, 100) }),
            Caller::Tenant,
            "audio.inbound_chunk_ms",
        ));
        cases.push(rule(
            &format!("inbound_chunk_ms {ms} (patch)"),
            Method::PATCH,
            assistant.clone(),
            json!({ "audio": audio("pcm24k", "8k", ms, 100) }),
            Caller::Tenant,
            "audio.inbound_chunk_ms",
        ));
    }
    cases.extend([
        rule(
            "outbound_chunk_ms 2040",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": audio("pcm24k", "8k", 100, 2040) }),
            Caller::Tenant,
            "audio.outbound_chunk_ms",
        ),
        rule(
            "pcmu at 16k",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": audio("pcmu", "16k", 100, 100) }),
            Caller::Tenant,
            "audio.inbound_rate",
        ),
        rule(
            "pcmu at 16k (patch)",
            Method::PATCH,
            assistant.clone(),
            json!({ "audio": audio("pcmu", "16k", 100, 100) }),
            Caller::Tenant,
            "audio.inbound_rate",
        ),
        rule(
            "threshold 1.5",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "turn_detection": turn_detection("server_vad", 1.5, 500) }),
            Caller::Tenant,
            "turn_detection.threshold",
        ),
        rule(
            "threshold -0.1 (patch)",
            Method::PATCH,
            assistant.clone(),
            json!({ "turn_detection": turn_detection("server_vad", -0.1, 500) }),
            Caller::Tenant,
            "turn_detection.threshold",
        ),
        rule(
            "silence_duration_ms 10001",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "turn_detection": turn_detection("server_vad", 0.5, 10_001) }),
            Caller::Tenant,
            "turn_detection.silence_duration_ms",
        ),
        rule(
            "assistant max_call_seconds 100000",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "max_call_seconds": 100_000 }),
            Caller::Tenant,
            "max_call_seconds",
        ),
        rule(
            "assistant max_call_seconds 0 (patch)",
            Method::PATCH,
            assistant.clone(),
            json!({ "max_call_seconds": 0 }),
            Caller::Tenant,
            "max_call_seconds",
        ),
        rule(
            "assistant blank name",
            Method::POST,
            "/api/assistants",
            json!({ "name": "   " }),
            Caller::Tenant,
            "name",
        ),
        rule(
            "assistant model with spaces",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "model": "gpt realtime" }),
            Caller::Tenant,
            "model",
        ),
        rule(
            "transcription language x",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "transcription": { "model": "gpt-4o-transcribe", "language": "x" } }),
            Caller::Tenant,
            "transcription.language",
        ),
        rule(
            "greeting too long",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "greeting": "a".repeat(2_001) }),
            Caller::Tenant,
            "greeting",
        ),
        rule(
            "tenant max_concurrent_calls 0",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New", "email": "new@example.com", "max_concurrent_calls": 0 }),
            Caller::Admin,
            "max_concurrent_calls",
        ),
        rule(
            "tenant max_call_seconds 100000",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New", "email": "new@example.com", "max_call_seconds": 100_000 }),
            Caller::Admin,
            "max_call_seconds",
        ),
        rule(
            "tenant max_concurrent_calls 0 (patch)",
            Method::PATCH,
            user.clone(),
            json!({ "max_concurrent_calls": 0 }),
            Caller::Admin,
            "max_concurrent_calls",
        ),
        rule(
            "tenant max_concurrent_calls 10001 (patch)",
            Method::PATCH,
            user.clone(),
            json!({ "name": "Changed", "max_concurrent_calls": 10_001 }),
            Caller::Admin,
            "max_concurrent_calls",
        ),
        rule(
            "tenant max_call_seconds 100000 (patch)",
            Method::PATCH,
            user.clone(),
            json!({ "max_call_seconds": 100_000 }),
            Caller::Admin,
            "max_call_seconds",
        ),
        rule(
            "tenant email",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New", "email": "not-an-email" }),
            Caller::Admin,
            "email",
        ),
        rule(
            "tenant email (patch)",
            Method::PATCH,
            user.clone(),
            json!({ "email": "ops@" }),
            Caller::Admin,
            "email",
        ),
        rule(
            "tenant blank name",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "  ", "email": "new@example.com" }),
            Caller::Admin,
            "name",
        ),
    ]);
    run(&s, cases).await;
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_them() {
    let s = setup().await;
    let assistant = format!("/api/assistants/{}", s.assistant);
    let number = format!("/api/phone-numbers/{}", s.number);
    let user = format!("/api/admin/users/{}", s.tenant.id);
    let mut nested_audio = audio("pcm24k", "8k", 100, 100);
    nested_audio["bitrate"] = json!(64);
    let mut nested_turns = turn_detection("server_vad", 0.5, 500);
    nested_turns["eagerness"] = json!("high");
    let cases = vec![
        shape(
            "assistant top level",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "colour": "blue" }),
            Caller::Tenant,
            "colour",
        ),
        shape(
            "assistant audio",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": nested_audio }),
            Caller::Tenant,
            "bitrate",
        ),
        shape(
            "assistant turn_detection",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "turn_detection": nested_turns.clone() }),
            Caller::Tenant,
            "eagerness",
        ),
        shape(
            "assistant transcription",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "transcription": { "model": "gpt-4o-transcribe", "prompt": "x" } }),
            Caller::Tenant,
            "prompt",
        ),
        shape(
            "assistant patch top level",
            Method::PATCH,
            assistant.clone(),
            json!({ "name": "B", "colour": "blue" }),
            Caller::Tenant,
            "colour",
        ),
        shape(
            "assistant patch nested",
            Method::PATCH,
            assistant.clone(),
            json!({ "turn_detection": nested_turns }),
            Caller::Tenant,
            "eagerness",
        ),
        shape(
            "phone number",
            Method::POST,
            "/api/phone-numbers",
            json!({ "phone_number": "+14155550101", "label": "office" }),
            Caller::Tenant,
            "label",
        ),
        shape(
            "phone number patch",
            Method::PATCH,
            number.clone(),
            json!({ "status": "inactive", "label": "office" }),
            Caller::Tenant,
            "label",
        ),
        shape(
            "assign",
            Method::POST,
            format!("{number}/assign"),
            json!({ "assistant_id": s.assistant, "force": true }),
            Caller::Tenant,
            "force",
        ),
        shape(
            "credentials",
            Method::PUT,
            "/api/me/credentials",
            json!({ "openai_key": "sk-0123456789abcdef" }),
            Caller::Tenant,
            "openai_key",
        ),
        shape(
            "tenant",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New", "email": "new@example.com", "plan": "gold" }),
            Caller::Admin,
            "plan",
        ),
        shape(
            "tenant patch",
            Method::PATCH,
            user.clone(),
            json!({ "nmae": "Typo" }),
            Caller::Admin,
            "nmae",
        ),
        shape(
            "api key",
            Method::POST,
            format!("{user}/api-keys"),
            json!({ "nmae": "ci" }),
            Caller::Admin,
            "nmae",
        ),
    ];
    run(&s, cases).await;
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_refused_naming_the_field() {
    let s = setup().await;
    let assistant = format!("/api/assistants/{}", s.assistant);
    let number = format!("/api/phone-numbers/{}", s.number);
    let user = format!("/api/admin/users/{}", s.tenant.id);
    let cases = vec![
        shape(
            "assistant without a name",
            Method::POST,
            "/api/assistants",
            json!({ "voice": "marin" }),
            Caller::Tenant,
            "name",
        ),
        shape(
            "assistant name a number",
            Method::POST,
            "/api/assistants",
            json!({ "name": 5 }),
            Caller::Tenant,
            "name",
        ),
        shape(
            "a partial audio object",
            Method::PATCH,
            assistant.clone(),
            json!({ "audio": { "codec": "pcmu" } }),
            Caller::Tenant,
            "inbound_rate",
        ),
        shape(
            "inbound_chunk_ms a string",
            Method::POST,
            "/api/assistants",
            json!({ "name": "A", "audio": { "codec": "pcm24k", "inbound_rate": "8k", "inbound_chunk_ms": "100", "outbound_chunk_ms": 100 } }),
            Caller::Tenant,
            "inbound_chunk_ms",
        ),
        shape(
            "phone number missing",
            Method::POST,
            "/api/phone-numbers",
            json!({}),
            Caller::Tenant,
            "phone_number",
        ),
        shape(
            "phone number a number",
            Method::POST,
            "/api/phone-numbers",
            json!({ "phone_number": 14155550101_i64 }),
            Caller::Tenant,
            "phone_number",
        ),
        shape(
            "assign without an assistant",
            Method::POST,
            format!("{number}/assign"),
            json!({}),
            Caller::Tenant,
            "assistant_id",
        ),
        shape(
            "tenant limit a string",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New", "email": "new@example.com", "max_concurrent_calls": "ten" }),
            Caller::Admin,
            "max_concurrent_calls",
        ),
        shape(
            "tenant limit negative",
            Method::PATCH,
            user.clone(),
            json!({ "max_call_seconds": -5 }),
            Caller::Admin,
            "max_call_seconds",
        ),
        shape(
            "tenant without an email",
            Method::POST,
            "/api/admin/users",
            json!({ "name": "New" }),
            Caller::Admin,
            "email",
        ),
    ];
    run(&s, cases).await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let s = setup().await;
    let user = format!("/api/admin/users/{}", s.tenant.id);
    let over_limit = format!(
        r#"{{"name":"Big","instructions":"{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let malformed = |label: &str, method: Method, path: String, caller: Caller, text: &str| {
        case(
            label,
            method,
            path,
            Body::Raw(text.to_owned()),
            caller,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            Field::None,
        )
    };
    let cases = vec![
        case(
            "over 1 MiB",
            Method::POST,
            "/api/assistants",
            Body::Raw(over_limit),
            Caller::Tenant,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Field::None,
        ),
        malformed(
            "assistant",
            Method::POST,
            "/api/assistants".to_owned(),
            Caller::Tenant,
            r#"{"name": "x","#,
        ),
        malformed(
            "assistant patch",
            Method::PATCH,
            format!("/api/assistants/{}", s.assistant),
            Caller::Tenant,
            "{name: x}",
        ),
        malformed(
            "phone number",
            Method::POST,
            "/api/phone-numbers".to_owned(),
            Caller::Tenant,
            "not json",
        ),
        malformed(
            "credentials",
            Method::PUT,
            "/api/me/credentials".to_owned(),
            Caller::Tenant,
            r#"{"openai_api_key": "sk-1234567890"#,
        ),
        malformed(
            "tenant",
            Method::POST,
            "/api/admin/users".to_owned(),
            Caller::Admin,
            "{",
        ),
        malformed(
            "tenant patch",
            Method::PATCH,
            user.clone(),
            Caller::Admin,
            r#"{"name": }"#,
        ),
        malformed(
            "api key",
            Method::POST,
            format!("{user}/api-keys"),
            Caller::Admin,
            r#"{"name": "ci""#,
        ),
    ];
    run(&s, cases).await;

    // Just under the limit is read (and then judged on its merits).
    let under = format!(
        r#"{{"name":"Big","instructions":"{}"}}"#,
        "a".repeat(1024 * 1024 - 40)
    );
    let response = s
        .app
        .request(Method::POST, "/api/assistants")
        .bearer_auth(&s.tenant.api_key)
        .header("content-type", "application/json")
        .body(under)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = json_body(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("instructions:"),
        "{body}"
    );
}
