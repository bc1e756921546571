//! Reaching the agent and starting the conversation: a private agent through a URL signed
//! with the tenant's own ElevenLabs key (a wrong key fails the call cleanly), a public agent
//! with no key at all, the initiation carrying the assistant's overrides and the call's
//! dynamic variables, and the end reasons of conversations ElevenLabs breaks off.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::audio::tone::level_dbfs;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_elevenlabs::{AgentConfig, Behaviour};

use super::{
    WAIT, private_agent, public_agent, store_elevenlabs_key, transcript, turn, use_agent, world,
};
use crate::bridge::{CALLER_NUMBER, assert_slots_freed, ended_call, place_call};
use crate::helpers::{CallingTenant, TestApp, expect_status};

/// The key the tenant stores and the fake accepts.
const TENANT_KEY: &str = "xi-tenant-key-0042";

#[tokio::test]
async fn a_private_agent_is_reached_through_a_url_signed_with_the_tenants_key() {
    let w = world(Behaviour::default()).await;
    w.elevenlabs.add_agent(
        AgentConfig::new("agent_private")
            .private()
            .first_message("You reached the private line."),
    );
    w.elevenlabs.set_api_key(TENANT_KEY);
    let tenant = w.app.calling_tenant("Private", "+14155550821", 5).await;
    store_elevenlabs_key(&w.app, &tenant, TENANT_KEY).await;
    use_agent(
        &w.app,
        &tenant,
        "8k",
        private_agent("agent_private"),
        json!({}),
    )
    .await;
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-el-private").await;
    let session = w.conversation().await;

    // The key went to the REST endpoint as xi-api-key, never into the WebSocket URL; the
    // upgrade carried the signature that request was given.
    let requests = w.elevenlabs.signed_url_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].agent_id.as_deref(), Some("agent_private"));
    assert_eq!(requests[0].api_key.as_deref(), Some(TENANT_KEY));
    assert_eq!(requests[0].status, 200);
    let upgrades = w.elevenlabs.upgrades();
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert_eq!(upgrades[0].status, 101);
    assert_eq!(upgrades[0].agent_id.as_deref(), Some("agent_private"));
    assert!(upgrades[0].signature.is_some());
    assert_eq!(upgrades[0].signature, requests[0].signature);
    assert!(session.signed);

    assert!(
        caller.wait_until(WAIT, |r| r.audio_samples >= 2_400).await,
        "the agent's first message was heard"
    );
    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(
        transcript(&call),
        [turn("assistant", "You reached the private line.", false)]
    );
}

#[tokio::test]
async fn a_rejected_elevenlabs_key_fails_the_call_as_ai_connect_failed() {
    // The fake accepts only its default key.
    let wrong_key = "xi-wrong-key-0000";
    let w = world(Behaviour::default()).await;
    w.elevenlabs
        .add_agent(AgentConfig::new("agent_private").private());
    let tenant = w.app.calling_tenant("WrongKey", "+14155550822", 5).await;
    store_elevenlabs_key(&w.app, &tenant, wrong_key).await;
    use_agent(
        &w.app,
        &tenant,
        "8k",
        private_agent("agent_private"),
        json!({}),
    )
    .await;
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-el-wrong-key").await;
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let closed = summary
        .received
        .closed
        .clone()
        .expect("voxbridge closed the media stream");
    assert!(closed.by_server);
    assert_eq!(closed.reason, "ai_connect_failed");
    w.assert_clean(&summary.received);

    let requests = w.elevenlabs.signed_url_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].api_key.as_deref(), Some(wrong_key));
    assert_eq!(requests[0].status, 401);
    assert!(
        w.elevenlabs.upgrades().is_empty(),
        "no conversation was attempted"
    );
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::AiConnectFailed));
    let error = call.error.expect("error recorded");
    assert_eq!(error.code, "elevenlabs_key_rejected");
    assert!(
        !error.message.contains(wrong_key),
        "the key is not in the call log: {}",
        error.message
    );
    assert_slots_freed(&w.app, &tenant).await;
}

/// A tenant that stored no credential at all, whose number's assistant talks to the public
/// agent `agent_id` on 8 kHz flows.
async fn keyless_tenant(app: &TestApp, number: &str, agent_id: &str) -> CallingTenant {
    let email = format!("{}@keyless.example", uuid::Uuid::new_v4().simple());
    let tenant = app.create_tenant("Keyless", &email).await;
    let assistant = app
        .create_assistant(
            &tenant,
            json!({
                "name": "Front desk",
                "audio": { "codec": "pcm24k", "inbound_rate": "8k", "inbound_chunk_ms": 100, "outbound_chunk_ms": 200 },
                "backend": public_agent(agent_id),
            }),
        )
        .await;
    let assistant_id = assistant["id"].as_str().expect("id").to_owned();
    let created = app
        .create_phone_number(
            &tenant,
            json!({ "phone_number": number, "assistant_id": assistant_id }),
        )
        .await;
    CallingTenant {
        key: app.frejun_key(&tenant).await,
        tenant,
        assistant_id,
        number_id: created["id"].as_str().expect("id").to_owned(),
        number: created["phone_number"].as_str().expect("number").to_owned(),
    }
}

#[tokio::test]
async fn a_public_agent_takes_calls_for_a_tenant_without_any_ai_key() {
    let w = world(Behaviour::default()).await;
    w.elevenlabs
        .add_agent(AgentConfig::new("agent_public").first_message("Hi there."));
    let tenant = keyless_tenant(&w.app, "+14155550823", "agent_public").await;
    let me = expect_status(
        w.app.get_as("/api/me", &tenant.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let credentials = &me["data"]["credentials"];
    assert_eq!(credentials["openai_api_key"]["set"], false, "{credentials}");
    assert_eq!(
        credentials["elevenlabs_api_key"]["set"], false,
        "{credentials}"
    );
    // `place_call` asserts that the flow answers `stream`.
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-el-public").await;
    let session = w.conversation().await;
    assert!(!session.signed);
    assert!(w.elevenlabs.signed_url_requests().is_empty());
    let upgrades = w.elevenlabs.upgrades();
    assert_eq!(upgrades.len(), 1);
    assert_eq!(upgrades[0].signature, None);
    assert_eq!(upgrades[0].status, 101);
    assert!(
        caller.wait_until(WAIT, |r| r.audio_samples >= 2_400).await,
        "the agent's first message was heard"
    );
    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert_slots_freed(&w.app, &tenant).await;
}

#[tokio::test]
async fn the_conversation_starts_with_the_assistants_overrides_and_the_calls_variables() {
    let greeting = "Hello {{customer_name}}, welcome to the bakery.";
    let persona = "You are Ava of the Acme bakery. Never discuss prices.";
    let w = world(Behaviour::default()).await;
    // The agent allows the greeting, language and voice to be overridden, not its prompt.
    w.elevenlabs
        .add_agent(AgentConfig::new("agent_overrides").enable(&[
            "agent.first_message",
            "agent.language",
            "tts.voice_id",
        ]));
    let tenant = w.app.calling_tenant("Overrides", "+14155550824", 5).await;
    let backend = json!({
        "type": "elevenlabs_convai",
        "agent_id": "agent_overrides",
        "voice_id": "voice_ava_01",
        "dynamic_variables": {"customer_name": "Asha", "visits": 3, "vip": true},
    });
    let extra = json!({"greeting": greeting, "instructions": persona, "language": "hi"});
    use_agent(&w.app, &tenant, "8k", backend, extra).await;
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-el-overrides").await;
    let session = w.conversation().await;

    let initiation = session.initiation.as_ref().expect("an initiation");
    assert_eq!(
        initiation["conversation_config_override"]["agent"]["prompt"]["prompt"], persona,
        "the instructions were offered: {initiation}"
    );
    assert_eq!(
        session.applied_overrides,
        json!({
            "agent": {"first_message": greeting, "language": "hi"},
            "tts": {"voice_id": "voice_ava_01"},
        })
    );
    assert_eq!(
        session.dropped_overrides,
        ["agent.prompt.prompt"],
        "the agent does not allow its prompt to be replaced"
    );
    assert_eq!(
        serde_json::Value::Object(session.dynamic_variables.clone()),
        json!({
            "customer_name": "Asha",
            "visits": 3,
            "vip": true,
            "caller_number": CALLER_NUMBER,
            "called_number": tenant.number,
            "call_id": call_id,
            "direction": "inbound",
        })
    );
    // The agent filled its greeting from the variables and spoke it (the fake's 660 Hz).
    let spoken = "Hello Asha, welcome to the bakery.";
    assert_eq!(session.first_message.as_deref(), Some(spoken));
    assert!(
        caller.wait_until(WAIT, |r| r.audio_samples >= 2_400).await,
        "the greeting was heard"
    );
    let level = level_dbfs(&caller.received().audio[..2_400], 660.0, 8_000);
    assert!(level > -20.0, "the greeting's tone: {level:.1} dBFS");

    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(transcript(&call), [turn("assistant", spoken, false)]);
}

/// Places a call to a public agent whose conversation fails as `failure`, and answers the call
/// log once the bridge has recorded the end.
async fn failing_call(
    failure: voxbridge::sim::fake_elevenlabs::Failure,
    number: &str,
) -> voxbridge::storage::call_logs::CallLogRecord {
    let w = world(Behaviour {
        failure: Some(failure),
        ..Behaviour::default()
    })
    .await;
    w.elevenlabs.add_agent(
        AgentConfig::new("agent_failing").first_message("This sentence will not be finished."),
    );
    let tenant = keyless_tenant(&w.app, number, "agent_failing").await;
    let (call_id, caller) = place_call(&w.app, &tenant, &format!("fj-el-{number}")).await;
    let summary = caller.wait_closed(WAIT).await.unwrap();
    assert!(
        summary.received.violations.is_empty(),
        "{:?}",
        summary.received.violations
    );
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_slots_freed(&w.app, &tenant).await;
    call
}

#[tokio::test]
async fn a_conversation_elevenlabs_closes_mid_reply_ends_the_call_as_an_ai_error() {
    use voxbridge::sim::fake_elevenlabs::Failure;
    let call = failing_call(
        Failure::CloseMidResponse {
            after_audio_events: 1,
        },
        "+14155550831",
    )
    .await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::AiError));
    let error = call.error.expect("the call log says why");
    assert_eq!(error.code, "elevenlabs_server_error", "{error:?}");
    assert!(error.message.contains("1011"), "{error:?}");

    let call = failing_call(
        Failure::DropMidResponse {
            after_audio_events: 1,
        },
        "+14155550832",
    )
    .await;
    assert_eq!(call.end_reason, Some(EndReason::AiError));
    assert_eq!(call.error.expect("why").code, "elevenlabs_connection_lost");
}

#[tokio::test]
async fn a_conversation_refused_before_its_metadata_never_became_usable() {
    use voxbridge::sim::fake_elevenlabs::Failure;
    let call = failing_call(
        Failure::CloseAfterInitiation {
            code: 1008,
            reason: "Override for field 'first_message' is not allowed".into(),
        },
        "+14155550833",
    )
    .await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::AiConnectFailed));
    let error = call.error.expect("the call log says why");
    assert_eq!(error.code, "elevenlabs_policy_violation", "{error:?}");
    assert!(error.message.contains("first_message"), "{error:?}");
}
