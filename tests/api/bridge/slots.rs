//! A live call's concurrency slot belongs to its media session: a terminal webhook (late,
//! repeated or spoofed by anyone holding the tenant's URL secret) cannot free it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::EndReason;
use voxbridge::sim::fake_openai::{Behaviour, Mode};

use super::{CALLER_NUMBER, bridge_app, configure_assistant, ended_call, place_call};
use crate::helpers::{expect_status, flow_body};

/// A bridge app whose slot leases are renewed every 5 s, so renewals happen within a test.
async fn short_lease_app() -> (
    crate::helpers::TestApp,
    voxbridge::sim::fake_openai::FakeOpenAi,
) {
    let fake = voxbridge::sim::fake_openai::FakeOpenAi::start(Behaviour::with_mode(Mode::Echo))
        .await
        .unwrap();
    let url = fake.url();
    let app = crate::helpers::TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = url;
        settings.bridge.heartbeat_interval_secs = 1;
        settings.bridge.slot_lease_secs = 15; // renewed every 5 s
    })
    .await;
    (app, fake)
}

#[tokio::test]
async fn a_spoofed_completion_does_not_free_a_live_calls_slot() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("OneLine", "+14155550430", 1).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-live-1").await;
    caller.send_silence(300, true).await.unwrap();
    // The bridge has reported the stream open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !app
        .call_log(&call_id)
        .await
        .status_history
        .iter()
        .any(|event| event.event.as_deref() == Some("media.started"))
    {
        assert!(tokio::time::Instant::now() < deadline, "media.started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let completed = json!({
        "event": "call.completed",
        "account_id": "acc_1",
        "call_app_id": "app_1",
        "data": { "call_id": "fj-live-1", "duration": 1 },
    });
    for _ in 0..4 {
        expect_status(
            app.post_webhook(Some(&tenant.key), None, &completed).await,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(
        app.held_slots(&tenant).await.len(),
        1,
        "the slot is still held"
    );

    // So a second call is refused at the limit of one.
    let second = expect_status(
        app.post_flow(
            Some(&tenant.key),
            None,
            &flow_body("fj-live-2", CALLER_NUMBER, &tenant.number),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["action"], "hangup", "{second}");

    // When the stream really ends, its keeper frees the slot.
    caller.hang_up().await.unwrap();
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !app.held_slots(&tenant).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the slot is freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A call whose slot disappeared under it (freed by mistake, or reaped during an outage) takes
/// it back at the next renewal, or ends if the tenant is at its limit without it: it never
/// runs on uncounted.
#[tokio::test]
async fn a_call_that_lost_its_slot_takes_it_back_or_ends() {
    let (app, _fake) = short_lease_app().await;
    let tenant = app.calling_tenant("Lost", "+14155550431", 1).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (first_id, mut first) = place_call(&app, &tenant, "fj-lost-1").await;
    first.send_silence(200, true).await.unwrap();
    let tenant_id = tenant.tenant.object_id();
    let release = |id: &str| {
        let slots = app.storage.call_slots();
        let call: voxbridge::domain::ids::CallId = id.parse().unwrap();
        async move { slots.release(tenant_id, call).await.unwrap() }
    };

    // Lost with room to spare: taken back at the next renewal.
    release(&first_id).await;
    assert!(app.held_slots(&tenant).await.is_empty());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    while app.held_slots(&tenant).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot is taken back"
        );
        first.send_silence(100, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Lost while another call takes the only slot: the first call ends.
    release(&first_id).await;
    let (second_id, mut second) = place_call(&app, &tenant, "fj-lost-2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    loop {
        let call = app.call_log(&first_id).await;
        if call.end_reason.is_some() {
            assert_eq!(call.end_reason, Some(EndReason::ConcurrencyLimit));
            assert_eq!(call.error.unwrap().code, "concurrency_slot_lost");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first call ends"
        );
        let _ = first.send_silence(100, false).await;
        let _ = second.send_silence(100, false).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = app.held_slots(&tenant).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].call_id.to_hex(), second_id);
    second.hang_up().await.unwrap();
}

/// Suspending a tenant ends its live calls (on whichever instance holds them, at the next lease
/// renewal) and stops its webhooks from changing anything.
#[tokio::test]
async fn suspending_a_tenant_ends_its_live_calls_and_ignores_its_webhooks() {
    let (app, _fake) = short_lease_app().await;
    let tenant = app.calling_tenant("Suspended", "+14155550432", 2).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-susp").await;
    caller.send_silence(200, true).await.unwrap();

    let admin = app.settings.security.admin_token.expose().to_owned();
    let path = format!("/api/admin/users/{}/suspend", tenant.tenant.id);
    expect_status(app.post_as(&path, &admin, &json!({})).await, StatusCode::OK).await;

    let call = ended_call(&app, &call_id, Duration::from_secs(15)).await;
    assert_eq!(call.end_reason, Some(EndReason::TenantSuspended));

    let answered = json!({"event": "call.ringing", "data": {"call_id": "fj-susp"}});
    let before = app.call_log(&call_id).await.status_history.len();
    let ack = expect_status(
        app.post_webhook(Some(&tenant.key), None, &answered).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ack["status"], "ignored", "{ack}");
    assert_eq!(app.call_log(&call_id).await.status_history.len(), before);
}
