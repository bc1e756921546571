//! Post-call analysis end to end, against the fake Anthropic (and, for the same five outcomes
//! per provider, the fake OpenAI Responses and Chat Completions): a call that ends is analysed once
//! (summary, data valid against the assistant's schema, verdict, sentiment) and the result
//! lands on its call log with a `call.analyzed` event; answers that break the schema, refused
//! keys, timeouts and passing failures are stored as what they are, never as defaults; a
//! server killed in the middle of an analysis leaves it to the next one, which stores it once.

use std::time::Duration;

use bson::doc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::domain::call::CallStatus;
use voxbridge::domain::call::record::{TranscriptRole, TranscriptTurn};
use voxbridge::domain::ids::AssistantId;
use voxbridge::domain::webhook::{EventType, OutboxEvent, new_event_id};
use voxbridge::settings::Settings;
use voxbridge::sim::fake_text_ai::{FakeAnthropic, FakeOpenAiText, Scripted, TextFake};
use voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver;

use crate::helpers::{
    TestApp, TestDatabase, TestTenant, call_record, expect_error, expect_status, oid, poll_until,
    register_webhook_receiver,
};

const ANTHROPIC_KEY: &str = "sk-ant-test-analysis-0001";

/// What the demo's order-status assistant extracts.
fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "wants_callback": {"type": "boolean"},
            "topic": {"type": "string", "enum": ["order_status", "refund", "other"]}
        },
        "required": ["order_id", "wants_callback", "topic"],
        "additionalProperties": false
    })
}

/// Settings that analyse quickly against `fake`.
fn quick(settings: &mut Settings, fake: &FakeAnthropic) {
    settings.text_ai.anthropic_base_url = fake.base_url().parse().unwrap();
    settings.text_ai.max_retry_wait_ms = 1_000;
    settings.webhooks.poll_interval_ms = 50;
    settings.webhooks.ended_settle_ms = 0;
    settings.analysis.poll_interval_ms = 50;
    settings.analysis.retry_delay_secs = 0;
    settings.outbound.allow = "127.0.0.1".into();
}

/// A tenant with an Anthropic key and an assistant analysing with `analysis`.
async fn tenant_with_assistant(app: &TestApp, analysis: Value) -> (TestTenant, String) {
    let email = format!("{}@analysis.example", uuid::Uuid::new_v4().simple());
    let tenant = app.create_tenant("Analysed", &email).await;
    expect_status(
        app.put_as(
            "/api/me/credentials",
            &tenant.api_key,
            &json!({"anthropic_api_key": ANTHROPIC_KEY}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let assistant = app
        .create_assistant(
            &tenant,
            json!({"name": "Orders", "instructions": "Help with orders.", "analysis": analysis}),
        )
        .await;
    (tenant, assistant["id"].as_str().unwrap().to_owned())
}

/// Registers `receiver` as the tenant's endpoint for `call.analyzed`.
async fn subscribe_to_analyses(app: &TestApp, tenant: &TestTenant, receiver: &FakeWebhookReceiver) {
    let endpoint = json!({"url": receiver.url("/events"), "event_types": ["call.analyzed"]});
    register_webhook_receiver(app, &tenant.api_key, receiver, endpoint).await;
}

fn turn(role: TranscriptRole, text: &str) -> TranscriptTurn {
    TranscriptTurn {
        role,
        text: text.to_owned(),
        at: bson::DateTime::now(),
        item_id: None,
        interrupted: false,
        tool: None,
    }
}

/// A completed call of `assistant_id` with `caller_lines`, whose `call.ended` is in its outbox
/// as the status merge leaves it; answers its id.
async fn ended_call(
    app: &TestApp,
    tenant: &TestTenant,
    assistant_id: &str,
    caller_lines: &[&str],
) -> String {
    let mut call = call_record(
        tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::Completed,
    );
    call.assistant_id = Some(oid::<AssistantId>(assistant_id));
    call.ended_at = Some(bson::DateTime::now());
    call.transcript.push(turn(
        TranscriptRole::Assistant,
        "Hello, this is the order desk.",
    ));
    for line in caller_lines {
        call.transcript.push(turn(TranscriptRole::User, line));
        call.transcript.push(turn(
            TranscriptRole::Assistant,
            "Let me check that for you.",
        ));
    }
    call.outbox.push(OutboxEvent {
        id: new_event_id(),
        kind: EventType::CallEnded,
        at: bson::DateTime::now(),
        data: json!({}),
    });
    app.insert_call(&call).await;
    call.id.to_string()
}

/// Waits until the relay has handed the call's events over (its outbox is empty).
async fn handed_over(app: &TestApp, call_id: &str) {
    let left = poll_until(
        Duration::from_secs(10),
        || async {
            app.raw_document("call_logs", call_id)
                .await
                .get_array("outbox")
                .map(|outbox| outbox.len())
                .unwrap_or(0)
        },
        |left| *left == 0,
    )
    .await;
    assert_eq!(left, 0, "the relay handed call {call_id}'s events over");
}

async fn call_json(app: &TestApp, tenant: &TestTenant, call_id: &str) -> Value {
    expect_status(
        app.get_as(&format!("/api/calls/{call_id}"), &tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await["data"]
        .take()
}

/// The call once its analysis has left `pending` (or after 15 s).
async fn finished_analysis(app: &TestApp, tenant: &TestTenant, call_id: &str) -> Value {
    let call = poll_until(
        Duration::from_secs(15),
        || call_json(app, tenant, call_id),
        |call| {
            call["analysis"]["status"]
                .as_str()
                .is_some_and(|status| status != "pending")
        },
    )
    .await;
    call["analysis"].clone()
}

#[tokio::test]
async fn a_finished_call_is_analysed_and_the_result_stored_on_its_log_and_sent() {
    let fake = FakeAnthropic::start().await.unwrap();
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) = tenant_with_assistant(
        &app,
        json!({
            "enabled": true,
            "structured_data_schema": order_schema(),
            "success_criteria": "The caller learned where the order is."
        }),
    )
    .await;
    subscribe_to_analyses(&app, &tenant, &receiver).await;
    let call_id = ended_call(&app, &tenant, &assistant_id, &["Where is my order A-1001?"]).await;

    let analysis = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "done", "{analysis}");
    assert!(
        analysis["summary"]
            .as_str()
            .is_some_and(|summary| !summary.is_empty())
    );
    let data = &analysis["data"];
    assert!(data["order_id"].is_string(), "{data}");
    assert!(data["wants_callback"].is_boolean(), "{data}");
    assert!(
        ["order_status", "refund", "other"].contains(&data["topic"].as_str().unwrap()),
        "{data}"
    );
    assert!(analysis["success"].is_boolean());
    assert!(analysis["success_reason"].is_string());
    assert!(
        ["positive", "neutral", "negative", "mixed"]
            .contains(&analysis["sentiment"].as_str().unwrap())
    );
    assert_eq!(analysis["provider"], "anthropic");
    assert_eq!(analysis["model"], "claude-sonnet-4-5");
    assert_eq!(analysis["attempts"], 1);
    assert!(analysis["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(analysis["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(analysis["error"].is_null());

    // What the provider was asked: the transcript, the criteria, the composed schema.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let body = &requests[0].body;
    assert_eq!(requests[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(
        body["system"]
            .as_str()
            .unwrap()
            .contains("The caller learned where the order is.")
    );
    let transcript = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Caller: Where is my order A-1001?"),
        "{transcript}"
    );
    let schema = &body["output_config"]["format"]["schema"];
    assert_eq!(schema["properties"]["data"], order_schema());
    assert_eq!(
        schema["required"],
        json!(["summary", "success", "success_reason", "sentiment", "data"])
    );

    // The list shows the verdict, and the tenant's endpoint got call.analyzed once.
    let list = expect_status(
        app.get_as("/api/calls", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["data"][0]["analysis_status"], "done");
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |received| !received.is_empty())
            .await
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let event = &received[0];
    assert!(event.signature_valid, "{:?}", event.signature_error);
    assert_eq!(event.body["type"], "call.analyzed");
    assert_eq!(event.body["data"]["call"]["id"], call_id.as_str());
    assert_eq!(
        event.body["data"]["analysis"]["summary"],
        analysis["summary"]
    );
    assert_eq!(event.body["data"]["analysis"]["data"], analysis["data"]);
}

#[tokio::test]
async fn an_answer_that_breaks_the_schema_is_stored_as_failed_with_the_reason() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Text(
        json!({
            "summary": "Asked about an order.",
            "success": "yes",
            "success_reason": "r",
            "sentiment": "neutral",
            "data": {"order_id": 1001, "wants_callback": false, "topic": "order_status"}
        })
        .to_string(),
    ));
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) = tenant_with_assistant(
        &app,
        json!({"enabled": true, "structured_data_schema": order_schema()}),
    )
    .await;
    let call_id = ended_call(&app, &tenant, &assistant_id, &["Where is A-1001?"]).await;

    let analysis = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "failed", "{analysis}");
    assert_eq!(analysis["error"]["code"], "schema_mismatch");
    let message = analysis["error"]["message"].as_str().unwrap();
    assert!(message.contains("/success"), "{message}");
    assert!(message.contains("/data/order_id"), "{message}");
    // Nothing of the answer is kept as if it were valid; what it cost is.
    assert!(analysis["summary"].is_null());
    assert!(analysis["data"].is_null());
    assert!(analysis["success"].is_null());
    assert!(analysis["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let stats = expect_status(
        app.get_as("/api/calls/stats", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stats["data"]["analysis"]["failed_analyses"], 1);
}

#[tokio::test]
async fn a_rate_limit_is_retried_and_the_analysis_still_finishes() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(0),
    });
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) = tenant_with_assistant(&app, json!({"enabled": true})).await;
    let call_id = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;

    let analysis = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "done", "{analysis}");
    assert_eq!(analysis["attempts"], 1, "retried within the run");
    assert!(analysis["data"].is_null(), "no schema, no data");
    assert_eq!(fake.requests().len(), 2);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_provider_that_keeps_failing_is_tried_again_later_then_failed() {
    let fake = FakeAnthropic::start().await.unwrap();
    for _ in 0..2 {
        fake.push(Scripted::Error {
            status: 529,
            retry_after_secs: None,
        });
    }
    let app = TestApp::spawn_with(|settings| {
        quick(settings, &fake);
        settings.text_ai.max_attempts = 1;
        settings.analysis.max_runs = 2;
    })
    .await;
    let (tenant, assistant_id) = tenant_with_assistant(&app, json!({"enabled": true})).await;
    let call_id = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;

    let analysis = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "failed", "{analysis}");
    assert_eq!(analysis["error"]["code"], "unavailable");
    assert!(
        analysis["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded_error")
    );
    assert_eq!(analysis["attempts"], 2, "postponed once, then given up");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_timeout_and_a_refused_key_fail_the_analysis_saying_so() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Delay(Duration::from_secs(5)));
    let app = TestApp::spawn_with(|settings| {
        quick(settings, &fake);
        settings.text_ai.timeout_ms = 300;
        settings.text_ai.max_attempts = 1;
        settings.analysis.max_runs = 1;
    })
    .await;
    let (tenant, assistant_id) = tenant_with_assistant(&app, json!({"enabled": true})).await;
    let slow = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;
    let analysis = finished_analysis(&app, &tenant, &slow).await;
    assert_eq!(analysis["status"], "failed", "{analysis}");
    assert_eq!(analysis["error"]["code"], "timeout");

    fake.reject_key(ANTHROPIC_KEY);
    let refused = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;
    let analysis = finished_analysis(&app, &tenant, &refused).await;
    assert_eq!(analysis["status"], "failed", "{analysis}");
    assert_eq!(analysis["error"]["code"], "auth_failed");
    assert!(
        !analysis["error"]["message"]
            .as_str()
            .unwrap()
            .contains(ANTHROPIC_KEY)
    );
    assert_eq!(fake.requests().len(), 2, "a refused key is not retried");
    // The status endpoint shows the provider failing.
    let status = expect_status(
        app.get_as("/api/ai/status", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let anthropic = status["data"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|provider| provider["provider"] == "anthropic")
        .unwrap()
        .clone();
    assert_eq!(anthropic["last_call"]["ok"], false);
    assert_eq!(anthropic["last_call"]["purpose"], "analysis");
    assert_eq!(anthropic["last_call"]["error_code"], "auth_failed");
}

#[tokio::test]
async fn calls_with_too_few_caller_turns_are_skipped_and_calls_without_analysis_or_an_answer_queue_nothing()
 {
    let fake = FakeAnthropic::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) =
        tenant_with_assistant(&app, json!({"enabled": true, "min_user_turns": 2})).await;
    let short = ended_call(&app, &tenant, &assistant_id, &["Hi"]).await;
    let analysis = finished_analysis(&app, &tenant, &short).await;
    assert_eq!(analysis["status"], "skipped", "{analysis}");
    assert_eq!(analysis["error"]["code"], "too_few_user_turns");

    let plain = app
        .create_assistant(&tenant, json!({"name": "No analysis"}))
        .await;
    let unanalysed = ended_call(&app, &tenant, plain["id"].as_str().unwrap(), &["Hi", "Bye"]).await;
    // Once the relay has handed call.ended over, the outbox is empty and nothing was queued.
    handed_over(&app, &unanalysed).await;
    assert!(call_json(&app, &tenant, &unanalysed).await["analysis"].is_null());

    // A call that never reached the assistant (no answer: no stream, no transcript) is not
    // analysed either, even with analysis enabled.
    let mut unanswered = call_record(
        tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::NoAnswer,
    );
    unanswered.assistant_id = Some(oid(&assistant_id));
    unanswered.outbox.push(OutboxEvent {
        id: new_event_id(),
        kind: EventType::CallEnded,
        at: bson::DateTime::now(),
        data: json!({}),
    });
    app.insert_call(&unanswered).await;
    let unanswered_id = unanswered.id.to_string();
    handed_over(&app, &unanswered_id).await;
    assert!(call_json(&app, &tenant, &unanswered_id).await["analysis"].is_null());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn analyze_runs_it_again_and_refuses_what_it_cannot() {
    let fake = FakeAnthropic::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) = tenant_with_assistant(&app, json!({"enabled": true})).await;
    let call_id = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;
    let first = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(first["status"], "done");

    let queued = expect_status(analyze(&app, &tenant, &call_id).await, StatusCode::ACCEPTED).await;
    assert_eq!(queued["data"]["analysis"]["status"], "pending");
    let again = finished_analysis(&app, &tenant, &call_id).await;
    assert_eq!(again["status"], "done");
    assert_ne!(again["requested_at"], first["requested_at"]);
    assert_eq!(fake.requests().len(), 2);

    // A live call, an assistant without analysis, another tenant's call, a bad id.
    let mut live = call_record(
        tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::InProgress,
    );
    live.assistant_id = Some(oid(&assistant_id));
    app.insert_call(&live).await;
    let plain = app
        .create_assistant(&tenant, json!({"name": "No analysis"}))
        .await;
    let mut unanalysed = call_record(
        tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::Completed,
    );
    unanalysed.assistant_id = Some(oid(plain["id"].as_str().unwrap()));
    app.insert_call(&unanalysed).await;
    let other = app.create_tenant("Other", "other@analysis.example").await;
    for (who, id, status, code) in [
        (
            &tenant,
            live.id.to_string(),
            StatusCode::CONFLICT,
            "call_still_live",
        ),
        (
            &tenant,
            unanalysed.id.to_string(),
            StatusCode::CONFLICT,
            "analysis_not_enabled",
        ),
        (&other, call_id.clone(), StatusCode::NOT_FOUND, "not_found"),
        (
            &tenant,
            "not-an-id".to_owned(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        expect_error(analyze(&app, who, &id).await, status, code).await;
    }
}

/// `POST /api/calls/{id}/analyze` as `tenant`.
async fn analyze(app: &TestApp, tenant: &TestTenant, call_id: &str) -> reqwest::Response {
    app.post_as(
        &format!("/api/calls/{call_id}/analyze"),
        &tenant.api_key,
        &json!({}),
    )
    .await
}

#[tokio::test]
async fn lists_filter_on_the_verdict_and_stats_count_the_success_rate() {
    let fake = FakeAnthropic::start().await.unwrap();
    // Two answers with opposite verdicts, then a failure.
    for success in [true, false] {
        fake.push(Scripted::Text(
            json!({"summary": "s", "success": success, "success_reason": "r", "sentiment": "neutral"})
                .to_string(),
        ));
    }
    fake.push(Scripted::Text("not json".to_owned()));
    let app = TestApp::spawn_with(|settings| quick(settings, &fake)).await;
    let (tenant, assistant_id) = tenant_with_assistant(&app, json!({"enabled": true})).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        // One at a time, so the script's answers go to the calls in order.
        let id = ended_call(&app, &tenant, &assistant_id, &["Hello?"]).await;
        finished_analysis(&app, &tenant, &id).await;
        ids.push(id);
    }
    let listed = |query: &'static str| {
        let app = &app;
        let key = tenant.api_key.clone();
        async move {
            expect_status(
                app.get_as(&format!("/api/calls?{query}"), &key).await,
                StatusCode::OK,
            )
            .await["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|call| call["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("analysis_success=true").await, vec![ids[0].clone()]);
    assert_eq!(listed("analysis_success=false").await, vec![ids[1].clone()]);
    expect_error(
        app.get_as("/api/calls?analysis_success=maybe", &tenant.api_key)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let stats = expect_status(
        app.get_as("/api/calls/stats", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let analysis = &stats["data"]["analysis"];
    assert_eq!(analysis["analyzed_calls"], 2);
    assert_eq!(analysis["successful_calls"], 1);
    assert_eq!(analysis["success_rate"], 0.5);
    assert_eq!(analysis["failed_analyses"], 1);
    // The analyses' own cost (the not-JSON answer was paid for too), apart from the calls'.
    let mut paid = 0.0;
    for id in &ids {
        paid += call_json(&app, &tenant, id).await["analysis"]["cost_usd"]
            .as_f64()
            .unwrap();
    }
    let total = analysis["total_cost_usd"].as_f64().unwrap();
    assert!(
        paid > 0.0 && (total - paid).abs() < 1e-9,
        "{total} vs {paid}"
    );
    assert_eq!(stats["data"]["total_cost_usd"], 0.0);
}

/// One text provider under test, through its fake.
struct ProviderUnderTest<'a> {
    name: &'static str,
    key: &'static str,
    fake: &'a TextFake,
}

/// The same five analyses with `provider`: a structured answer stored whole; one that breaks
/// the schema, stored as failed with the reason; a 429 then success; a timeout; a refused key.
async fn five_analyses(app: &TestApp, provider: ProviderUnderTest<'_>, credentials: Value) {
    let email = format!(
        "{}@{}.example",
        uuid::Uuid::new_v4().simple(),
        provider.name
    );
    let tenant = app.create_tenant("Per provider", &email).await;
    expect_status(
        app.put_as("/api/me/credentials", &tenant.api_key, &credentials)
            .await,
        StatusCode::OK,
    )
    .await;
    let assistant = app
        .create_assistant(
            &tenant,
            json!({"name": "Orders", "analysis": {
                "enabled": true, "provider": provider.name, "structured_data_schema": order_schema()
            }}),
        )
        .await;
    let assistant_id = assistant["id"].as_str().unwrap().to_owned();
    let analyse = || async {
        let call_id = ended_call(app, &tenant, &assistant_id, &["Where is A-1001?"]).await;
        finished_analysis(app, &tenant, &call_id).await
    };

    let done = analyse().await;
    assert_eq!(done["status"], "done", "{}: {done}", provider.name);
    assert_eq!(done["provider"], provider.name);
    assert!(done["data"]["order_id"].is_string(), "{done}");
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);

    provider.fake.push(Scripted::Text(
        json!({"summary": "s", "success": true, "success_reason": "r", "sentiment": "calm",
               "data": {"order_id": "A-1001", "wants_callback": false, "topic": "order_status"}})
        .to_string(),
    ));
    let mismatch = analyse().await;
    assert_eq!(
        mismatch["status"], "failed",
        "{}: {mismatch}",
        provider.name
    );
    assert_eq!(mismatch["error"]["code"], "schema_mismatch");
    assert!(
        mismatch["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/sentiment")
    );

    provider.fake.push(Scripted::Error {
        status: 429,
        retry_after_secs: Some(0),
    });
    let retried = analyse().await;
    assert_eq!(retried["status"], "done", "{}: {retried}", provider.name);

    provider.fake.push(Scripted::Delay(Duration::from_secs(5)));
    let slow = analyse().await;
    assert_eq!(slow["status"], "failed", "{}: {slow}", provider.name);
    assert_eq!(slow["error"]["code"], "timeout");

    provider.fake.reject_key(provider.key);
    let refused = analyse().await;
    assert_eq!(refused["status"], "failed", "{}: {refused}", provider.name);
    assert_eq!(refused["error"]["code"], "auth_failed");

    // One request each, two for the 429.
    assert_eq!(provider.fake.requests().len(), 6, "{}", provider.name);
    assert!(
        provider.fake.violations().is_empty(),
        "{}: {:?}",
        provider.name,
        provider.fake.violations()
    );
}

/// An app whose analyses time out after a second and are not run again.
async fn strict_app(anthropic: &FakeAnthropic, responses: &FakeOpenAiText) -> TestApp {
    TestApp::spawn_with(|settings| {
        quick(settings, anthropic);
        settings.text_ai.openai_base_url = responses.base_url().parse().unwrap();
        settings.text_ai.timeout_ms = 1_000;
        settings.analysis.max_runs = 1;
    })
    .await
}

#[tokio::test]
async fn anthropic_answers_fail_and_recover_as_the_other_providers_do() {
    let anthropic = FakeAnthropic::start().await.unwrap();
    let responses = FakeOpenAiText::start().await.unwrap();
    let app = strict_app(&anthropic, &responses).await;
    let provider = ProviderUnderTest {
        name: "anthropic",
        key: ANTHROPIC_KEY,
        fake: &anthropic,
    };
    five_analyses(&app, provider, json!({"anthropic_api_key": ANTHROPIC_KEY})).await;
}

#[tokio::test]
async fn openai_responses_answers_fail_and_recover_as_the_other_providers_do() {
    let anthropic = FakeAnthropic::start().await.unwrap();
    let responses = FakeOpenAiText::start().await.unwrap();
    let app = strict_app(&anthropic, &responses).await;
    const KEY: &str = "sk-openai-analysis-0002";
    let provider = ProviderUnderTest {
        name: "openai_responses",
        key: KEY,
        fake: &responses,
    };
    five_analyses(&app, provider, json!({"openai_api_key": KEY})).await;
    // Call transcripts are not kept by OpenAI, and the closed schema is sent strict.
    let first = &responses.requests()[0].body;
    assert_eq!(first["store"], false);
    assert_eq!(first["text"]["format"]["strict"], true);
}

#[tokio::test]
async fn chat_completions_answers_fail_and_recover_as_the_other_providers_do() {
    let anthropic = FakeAnthropic::start().await.unwrap();
    let responses = FakeOpenAiText::start().await.unwrap();
    let chat = FakeOpenAiText::start().await.unwrap();
    let app = strict_app(&anthropic, &responses).await;
    const KEY: &str = "chat-analysis-key-0003";
    let provider = ProviderUnderTest {
        name: "chat_completions",
        key: KEY,
        fake: &chat,
    };
    let credentials = json!({
        "chat_completions_base_url": chat.base_url(),
        "chat_completions_api_key": KEY,
        "chat_completions_model": "llama3.1:8b",
    });
    five_analyses(&app, provider, credentials).await;
    let first = &chat.requests()[0].body;
    assert_eq!(first["model"], "llama3.1:8b");
    assert_eq!(first["response_format"]["type"], "json_schema");
    assert!(
        responses.requests().is_empty(),
        "the tenant's own server only"
    );
}

#[tokio::test]
async fn a_server_shutting_down_hands_its_running_analysis_back_at_once() {
    let fake = FakeAnthropic::start().await.unwrap();
    fake.push(Scripted::Delay(Duration::from_secs(120)));
    let first = TestApp::spawn_with(|settings| {
        quick(settings, &fake);
        // Far longer than the test: only the hand-back lets the next server run it soon.
        settings.analysis.lease_secs = 600;
    })
    .await;
    let (tenant, assistant_id) = tenant_with_assistant(&first, json!({"enabled": true})).await;
    let call_id = ended_call(&first, &tenant, &assistant_id, &["Hello?"]).await;
    poll_until(
        Duration::from_secs(15),
        || async { fake.requests().len() },
        |sent| *sent == 1,
    )
    .await;
    let settings = first.settings.clone();
    let storage = first.storage.clone();
    // Keeps the database (owned by `first`) while the second server runs.
    let handed_back = poll_until(
        Duration::from_secs(10),
        || async {
            first.shutdown_now();
            let document = first.raw_document("call_logs", &call_id).await;
            document
                .get_document("analysis")
                .ok()
                .and_then(|analysis| analysis.get("lease_id").cloned())
        },
        |lease| matches!(lease, Some(bson::Bson::Null) | None),
    )
    .await;
    assert!(
        matches!(handed_back, Some(bson::Bson::Null) | None),
        "the lease was given up: {handed_back:?}"
    );
    let second = TestApp::spawn_with_storage(settings, storage).await;
    let analysis = finished_analysis(&second, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "done", "{analysis}");
    assert_eq!(
        analysis["attempts"], 1,
        "the run a shutdown stopped does not count"
    );
}

#[tokio::test]
async fn a_server_killed_mid_analysis_leaves_it_to_the_next_which_stores_it_once() {
    let fake = FakeAnthropic::start().await.unwrap();
    // The first run hangs until its server is killed.
    fake.push(Scripted::Delay(Duration::from_secs(120)));
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let database = TestDatabase::migrated().await;
    let base_url = fake.base_url();
    let (mut server, first, _state_dir) = crate::helpers::serve_binary(
        database,
        &[
            ("VOXBRIDGE__OUTBOUND__ALLOW", "127.0.0.1"),
            ("VOXBRIDGE__TEXT_AI__ANTHROPIC_BASE_URL", base_url.as_str()),
            // One try of at most a second, so that a two-second lease is allowed.
            ("VOXBRIDGE__TEXT_AI__TIMEOUT_MS", "1000"),
            ("VOXBRIDGE__TEXT_AI__MAX_ATTEMPTS", "1"),
            ("VOXBRIDGE__ANALYSIS__LEASE_SECS", "2"),
            ("VOXBRIDGE__ANALYSIS__POLL_INTERVAL_MS", "100"),
            ("VOXBRIDGE__WEBHOOKS__ENDED_SETTLE_MS", "0"),
            ("VOXBRIDGE__WEBHOOKS__POLL_INTERVAL_MS", "100"),
        ],
    )
    .await;
    let (tenant, assistant_id) = tenant_with_assistant(&first, json!({"enabled": true})).await;
    subscribe_to_analyses(&first, &tenant, &receiver).await;
    let call_id = ended_call(&first, &tenant, &assistant_id, &["Where is my order?"]).await;
    let started = poll_until(
        Duration::from_secs(15),
        || async { fake.requests().len() },
        |sent| *sent == 1,
    )
    .await;
    assert_eq!(started, 1, "the first server started the analysis");

    server.kill().expect("SIGKILL");
    server.wait().unwrap();

    let mut settings = first.settings.clone();
    quick(&mut settings, &fake);
    settings.analysis.lease_secs = 2;
    let second = TestApp::spawn_with_storage(settings, first.storage.clone()).await;
    let analysis = finished_analysis(&second, &tenant, &call_id).await;
    assert_eq!(analysis["status"], "done", "{analysis}");
    assert_eq!(analysis["attempts"], 2, "the lost run, then this one");
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |received| !received.is_empty())
            .await
    );
    // Longer than a lease and a few polls: nothing runs or arrives a second time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.requests().len(), 2);
    let analysed: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|event| event.body["type"] == "call.analyzed")
        .collect();
    assert_eq!(analysed.len(), 1, "call.analyzed exactly once");
    let stored = first
        .storage
        .database()
        .collection::<bson::Document>("call_logs")
        .find_one(doc! { "analysis.status": "done" })
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored
            .get_document("analysis")
            .unwrap()
            .get("lease_id")
            .is_none_or(|lease| lease == &bson::Bson::Null)
    );
}
