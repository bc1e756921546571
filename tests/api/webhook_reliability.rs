//! Webhook events survive the process and are not doubled by a second one: an event written
//! before the server is killed (SIGKILL, nothing flushed, no shutdown) is delivered by the next
//! server as it would have been; two servers on one database deliver each event once.

use std::collections::HashMap;
use std::time::Duration;

use bson::{Document, doc};
use reqwest::StatusCode;
use voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver;

use crate::helpers::{
    CallingTenant, TestApp, TestDatabase, expect_status, flow_body, register_webhook_endpoint,
};

/// A flow for a number the tenant does not have: the call is logged refused, and ends at once.
async fn refused_call(app: &TestApp, tenant: &CallingTenant, label: &str) -> String {
    let frejun_call_id = format!("fj-{label}-{}", uuid::Uuid::new_v4().simple());
    expect_status(
        app.post_flow(
            Some(&tenant.key),
            None,
            &flow_body(&frejun_call_id, "+14155550123", "+14155550798"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    frejun_call_id
}

#[tokio::test]
async fn an_event_written_before_a_sigkill_is_delivered_by_the_next_server() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let database = TestDatabase::migrated().await;
    // The first server holds call.ended back for a minute, so it is still in the outbox when
    // the process dies.
    let (mut server, first, _state_dir) = crate::helpers::serve_binary(
        database,
        &[
            ("VOXBRIDGE__OUTBOUND__ALLOW", "127.0.0.1"),
            ("VOXBRIDGE__WEBHOOKS__ENDED_SETTLE_MS", "60000"),
            ("VOXBRIDGE__WEBHOOKS__POLL_INTERVAL_MS", "100"),
        ],
    )
    .await;
    let mut settings = first.settings.clone();
    settings.outbound.allow = "127.0.0.1".into();
    let tenant = first.calling_tenant("Killed", "+14155550710", 5).await;
    register_webhook_endpoint(&first, &tenant, &receiver).await;
    let frejun_call_id = refused_call(&first, &tenant, "killed").await;
    // call.status goes out at once; call.ended waits in the outbox.
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |received| {
                received.iter().any(|w| w.body["type"] == "call.status")
            })
            .await
    );
    let pending: Document = first
        .storage
        .database()
        .collection::<Document>("call_logs")
        .find_one(doc! { "frejun_call_id": &frejun_call_id })
        .await
        .unwrap()
        .unwrap();
    let outbox = pending
        .get_array("outbox")
        .expect("call.ended is in the outbox");
    assert_eq!(outbox.len(), 1);
    let event_id = outbox[0]
        .as_document()
        .unwrap()
        .get_str("id")
        .unwrap()
        .to_owned();

    server.kill().expect("SIGKILL");
    server.wait().unwrap();

    // The next server, on the same database, with the usual settle time.
    settings.webhooks.ended_settle_ms = 200;
    settings.webhooks.poll_interval_ms = 100;
    let second = TestApp::spawn_with_storage(settings, first.storage.clone()).await;
    let delivered = receiver
        .wait_for(Duration::from_secs(15), |received| {
            received
                .iter()
                .any(|w| w.id.as_deref() == Some(event_id.as_str()) && w.status_sent == 200)
        })
        .await;
    assert!(delivered, "the event written before the kill was delivered");
    let event = receiver
        .received()
        .into_iter()
        .find(|w| w.id.as_deref() == Some(event_id.as_str()))
        .unwrap();
    assert!(event.signature_valid, "{:?}", event.signature_error);
    assert_eq!(event.body["type"], "call.ended");
    assert_eq!(
        event.body["data"]["call"]["frejun_call_id"],
        frejun_call_id.as_str()
    );
    assert_eq!(event.body["data"]["call"]["end_reason"], "unknown_number");
    drop(second);
}

#[tokio::test]
async fn two_servers_on_one_database_deliver_each_event_once() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let first = TestApp::spawn_with(|settings| {
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.poll_interval_ms = 50;
        settings.webhooks.ended_settle_ms = 100;
    })
    .await;
    let second = TestApp::spawn_with_storage(first.settings.clone(), first.storage.clone()).await;
    let tenant = first.calling_tenant("Twice", "+14155550711", 50).await;
    register_webhook_endpoint(&first, &tenant, &receiver).await;
    let calls = 12;
    for index in 0..calls {
        // Alternate servers, as a load balancer would.
        let app = if index % 2 == 0 { &first } else { &second };
        refused_call(app, &tenant, &format!("twice{index}")).await;
    }
    // Each refused call causes two events: call.status and call.ended.
    let all_arrived = receiver
        .wait_for(Duration::from_secs(20), |received| {
            received
                .iter()
                .filter(|w| w.body["type"] == "call.ended")
                .count()
                >= calls
        })
        .await;
    assert!(all_arrived, "every call.ended arrived");
    // Let any duplicate that is on its way arrive too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for webhook in receiver.received() {
        *seen.entry(webhook.id.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 2 * calls, "{seen:?}");
    assert!(
        seen.values().all(|count| *count == 1),
        "an event was delivered twice: {seen:?}"
    );
}
