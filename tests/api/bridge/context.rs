//! `POST /api/calls/{id}/context`: the tenant's software tells the voice AI something mid-call,
//! as a `system` message to OpenAI and a `contextual_update` to ElevenLabs, without asking for
//! an answer; only the call's own tenant may, and only while the call is live.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::sim::fake_elevenlabs::{self, AgentConfig};
use voxbridge::sim::fake_openai::{Behaviour, Mode};

use super::elevenlabs::{public_agent, use_agent, world};
use super::{bridge_app, configure_assistant, ended_call, place_call};
use crate::helpers::{expect_error, expect_status};

const FACT: &str = "The caller's order A-1001 shipped this morning.";

#[tokio::test]
async fn context_reaches_openai_as_a_system_message_without_asking_for_an_answer() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Context", "+14155550311", 5).await;
    let other = app.calling_tenant("Stranger", "+14155550312", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-context-openai").await;
    assert!(
        fake.wait_until(Duration::from_secs(5), |sessions| !sessions.is_empty())
            .await
    );
    let key = &tenant.tenant.api_key;
    let path = format!("/api/calls/{call_id}/context");

    let done = expect_status(
        app.post_as(&path, key, &json!({"text": FACT})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["data"]["context_added"], true, "{done}");
    assert!(
        fake.wait_until(Duration::from_secs(5), |sessions| {
            sessions[0]
                .events_of("conversation.item.create")
                .any(|event| {
                    event.json["item"]["role"] == "system"
                        && event.json["item"]["content"][0]["text"] == FACT
                })
        })
        .await,
        "OpenAI got the context as a system message"
    );
    let session = &fake.sessions()[0];
    assert_eq!(
        session.events_of("response.create").count(),
        0,
        "no answer was asked for"
    );

    for bad in [
        json!({"text": "  "}),
        json!({}),
        json!({"text": "x".repeat(4_001)}),
    ] {
        expect_error(
            app.post_as(&path, key, &bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    expect_error(
        app.post_as(&path, &other.tenant.api_key, &json!({"text": FACT}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    caller.hang_up().await.unwrap();
    ended_call(&app, &call_id, Duration::from_secs(10)).await;
    expect_error(
        app.post_as(&path, key, &json!({"text": FACT})).await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn context_reaches_elevenlabs_as_a_contextual_update() {
    let w = world(fake_elevenlabs::Behaviour::default()).await;
    w.elevenlabs.add_agent(AgentConfig::new("agent_context"));
    let tenant = w.app.calling_tenant("ContextEl", "+14155550313", 5).await;
    use_agent(
        &w.app,
        &tenant,
        "8k",
        public_agent("agent_context"),
        json!({}),
    )
    .await;
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-context-el").await;
    w.conversation().await;

    let path = format!("/api/calls/{call_id}/context");
    let done = expect_status(
        w.app
            .post_as(&path, &tenant.tenant.api_key, &json!({"text": FACT}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["data"]["context_added"], true, "{done}");
    let session = w
        .wait_for("the contextual update arrived", |session| {
            !session.contextual_updates.is_empty()
        })
        .await;
    assert_eq!(session.contextual_updates, [FACT]);
    assert!(session.user_messages.is_empty(), "no user turn was faked");
    caller.hang_up().await.unwrap();
    ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert!(
        w.elevenlabs.violations().is_empty(),
        "{:?}",
        w.elevenlabs.violations()
    );
}
