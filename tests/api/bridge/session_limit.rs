//! OpenAI ends a Realtime session after a fixed time (announced as `session.expires_at`). The
//! bridge ends the call just before, after the assistant says the closing line, instead of
//! letting OpenAI cut it off mid-sentence; and no call may be configured to outlast a session.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_openai::{Behaviour, Failure, FakeOpenAi, Mode};

use super::{ended_call, place_call};
use crate::helpers::{TestApp, expect_error};

#[tokio::test]
async fn a_call_ends_with_the_closing_line_before_the_openai_session_expires() {
    // A session that expires 8 s after it opens (OpenAI's is 60 min), closing 5 s before.
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::SessionCap { after_ms: 8_000 }),
        ..Behaviour::with_mode(Mode::Echo)
    })
    .await
    .unwrap();
    let realtime = fake.url();
    let app = TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = realtime;
        settings.bridge.session_closing_secs = 5;
        settings.bridge.session_closing_line = "We are out of time, goodbye!".into();
        settings.bridge.log_flush_interval_ms = 200;
    })
    .await;
    let tenant = app.calling_tenant("Long", "+14155550601", 5).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-long").await;

    let summary = caller.wait_closed(Duration::from_secs(15)).await.unwrap();
    let closed = summary
        .received
        .closed
        .expect("voxbridge closed the stream");
    assert_eq!(closed.reason, "ai_session_limit");
    assert!(
        summary.received.audio.len() > 1_000,
        "the closing line was played to the caller"
    );
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::AiSessionLimit));
    assert_eq!(call.call_status, CallStatus::Completed);

    let session = &fake.sessions()[0];
    let closing = session
        .responses
        .iter()
        .find(|response| {
            response.previous_item.as_ref().is_some_and(|item| {
                item["role"] == "system"
                    && item.to_string().contains("We are out of time, goodbye!")
            })
        })
        .expect("the closing line was asked for as a system message");
    assert_eq!(
        closing.instructions, "",
        "under the session's own instructions (the assistant has none)"
    );
    let (code, reason) = session.closed.clone().expect("the session closed");
    assert_ne!(
        code, 1001,
        "voxbridge closed it before OpenAI's cap: {reason}"
    );
}

#[tokio::test]
async fn no_call_may_be_configured_longer_than_one_openai_session() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let body = expect_error(
        app.post_as(
            "/api/assistants",
            &tenant.api_key,
            &json!({ "name": "Marathon", "max_call_seconds": 7_200 }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("max_call_seconds: must be at most 3600")
            && message.contains("60 minutes"),
        "{message}"
    );
    expect_error(
        app.patch_as(
            &format!("/api/admin/users/{}", tenant.id),
            &app.admin_token(),
            &json!({ "max_call_seconds": 3_601 }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}
