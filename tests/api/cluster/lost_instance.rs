//! An instance that dies (SIGKILL: no drain, no final write) leaves its call to the others:
//! once the call's slot lease has run out, another instance's reaper asks FreJun about the
//! call, hangs it up there, ends its log with `instance_lost`, frees the slot, and the tenant
//! gets `call.ended`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use voxbridge::domain::call::record::HangupResult;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_openai::{Behaviour, Mode};
use voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver;

use super::instances::{Cluster, FREJUN_KEY};
use crate::bridge::{CALLER_NUMBER, configure_assistant, place_call, tone_then_hear_echo};
use crate::helpers::{expect_status, poll_until, register_webhook_endpoint};

/// How long the reaper may take after the lease ran out: a sweep every second, FreJun asked,
/// the writes.
const REAPER_CAP: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_killed_instances_call_is_hung_up_by_another_and_its_slot_freed() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let mut cluster = Cluster::start(
        Behaviour::with_mode(Mode::Echo),
        &[
            ("VOXBRIDGE__BRIDGE__SLOT_LEASE_SECS", "15"),
            ("VOXBRIDGE__FREJUN__REAPER_INTERVAL_SECS", "1"),
            ("VOXBRIDGE__OUTBOUND__ALLOW", "127.0.0.1"),
            ("VOXBRIDGE__WEBHOOKS__POLL_INTERVAL_MS", "100"),
            ("VOXBRIDGE__WEBHOOKS__ENDED_SETTLE_MS", "200"),
        ],
    )
    .await;
    let tenant = cluster
        .a
        .app
        .calling_tenant("Lost", "+14155550921", 5)
        .await;
    configure_assistant(&cluster.a.app, &tenant, "pcm24k", "8k", None).await;
    register_webhook_endpoint(&cluster.b.app, &tenant, &receiver).await;
    let frejun_call = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, mut caller) = place_call(&cluster.a.app, &tenant, &frejun_call.id).await;
    assert!(
        tone_then_hear_echo(&mut caller, 8_000, 7_000).await,
        "the call is live on A"
    );
    assert_eq!(cluster.b.app.held_slots(&tenant).await.len(), 1);
    // The lease as it stands: A can only have moved it later before dying, and no reaper may
    // close the call before it has run out.
    let owner = cluster
        .a
        .app
        .call_log(&call_id)
        .await
        .owner
        .expect("A owns the call");
    assert_eq!(owner.instance_id.as_str(), cluster.a.id);

    cluster.a.kill();
    let killed = Instant::now();
    let summary = caller.wait_closed(Duration::from_secs(5)).await.unwrap();
    assert!(summary.received.closed.is_some(), "the stream died with A");

    // B's reaper closes the call once the lease has run out.
    let b = &cluster.b.app;
    let call = poll_until(
        REAPER_CAP,
        || b.call_log(&call_id),
        |call| call.call_status.is_terminal(),
    )
    .await;
    eprintln!(
        "lost instance: the call was closed {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(call.call_status, CallStatus::Failed, "{call:#?}");
    assert_eq!(call.end_reason, Some(EndReason::InstanceLost), "{call:#?}");
    let reaped = call
        .status_history
        .iter()
        .find(|event| event.event.as_deref() == Some("reaper.lease_expired"))
        .unwrap_or_else(|| panic!("the reaper closed it: {:#?}", call.status_history));
    assert!(
        reaped.at >= owner.lease_until,
        "closed at {} before the lease ran out at {}",
        reaped.at,
        owner.lease_until
    );
    // FreJun was asked first, and said the call was still up…
    assert!(
        call.status_history
            .iter()
            .any(|event| event.event.as_deref() == Some("teler.state:answered")),
        "{:#?}",
        call.status_history
    );
    assert!(
        cluster
            .teler
            .requests()
            .iter()
            .any(|request| request.method == "GET"
                && request
                    .path
                    .ends_with(&format!("/voice/calls/{}", frejun_call.id))),
        "FreJun was asked about the call"
    );
    // …so it was hung up there.
    let call = poll_until(
        Duration::from_secs(10),
        || b.call_log(&call_id),
        |call| call.hangup.is_some(),
    )
    .await;
    let hangup = call.hangup.expect("the hang-up is recorded");
    assert_eq!(hangup.result, HangupResult::HungUp, "{hangup:?}");
    assert_eq!(hangup.reason, "INSTANCE_LOST");
    let at_frejun = &cluster.teler.calls()[0];
    assert!(at_frejun.hung_up, "the phone call ended at FreJun");
    assert_eq!(at_frejun.hangup_reason.as_deref(), Some("INSTANCE_LOST"));

    // The slot is free, and nobody is said to bridge the call any more.
    let slots = poll_until(
        Duration::from_secs(5),
        || b.held_slots(&tenant),
        Vec::is_empty,
    )
    .await;
    assert!(slots.is_empty(), "the slot was freed: {slots:?}");
    let detail = expect_status(
        b.get_as(&format!("/api/calls/{call_id}"), &tenant.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(detail["data"].get("bridged").is_none(), "{detail}");
    assert_eq!(detail["data"]["end_reason"], "instance_lost", "{detail}");

    // The tenant is told.
    let told = receiver
        .wait_for(Duration::from_secs(15), |received| {
            received.iter().any(|webhook| {
                webhook.body["type"] == "call.ended"
                    && webhook.body["data"]["call"]["id"] == call_id.as_str()
            })
        })
        .await;
    assert!(told, "call.ended was delivered");
    let ended = receiver
        .received()
        .into_iter()
        .find(|webhook| webhook.body["type"] == "call.ended")
        .unwrap();
    assert!(ended.signature_valid, "{:?}", ended.signature_error);
    assert_eq!(ended.body["data"]["call"]["end_reason"], "instance_lost");
}
