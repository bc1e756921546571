//! Events about calls reach the tenant's endpoint: `call.ended` for every terminal outcome
//! (completed, busy, no-answer, refused at the flow) with the whole call record, `call.status`
//! for each change, signed so that the Standard Webhooks library accepts them; a receiver that
//! fails is retried on the schedule until it takes the event, and one that answers 410 is
//! disabled.

use std::time::Duration;

use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::sim::fake_webhook_receiver::{FakeWebhookReceiver, ReceivedWebhook, Reply};

use crate::helpers::{
    CallingTenant, TestApp, expect_status, flow_body, poll_until, verified_independently,
};

const CALLER: &str = "+14155550123";

/// An app that reaches the receiver on 127.0.0.1 and retries after a second.
async fn app_and_receiver() -> (TestApp, FakeWebhookReceiver) {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.poll_interval_ms = 100;
        settings.webhooks.ended_settle_ms = 200;
        settings.webhooks.retry_schedule_secs = "1,1".into();
    })
    .await;
    (app, receiver)
}

/// Registers an endpoint at `path` for `tenant`, for `event_types` (`[]`: all); the receiver
/// verifies with its secret.
async fn endpoint(
    app: &TestApp,
    tenant: &CallingTenant,
    receiver: &FakeWebhookReceiver,
    path: &str,
    event_types: Value,
) -> (String, String) {
    let created = expect_status(
        app.post_as(
            "/api/webhook-endpoints",
            &tenant.tenant.api_key,
            &json!({"url": receiver.url(path), "event_types": event_types}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let secret = created["data"]["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.set_secret_text(&secret).unwrap();
    (created["data"]["id"].as_str().unwrap().to_owned(), secret)
}

/// An inbound call FreJun asks the flow for; answers FreJun's id.
async fn inbound(app: &TestApp, tenant: &CallingTenant, to: &str, label: &str) -> String {
    let frejun_call_id = format!("fj-{label}-{}", uuid::Uuid::new_v4().simple());
    expect_status(
        app.post_flow(
            Some(&tenant.key),
            None,
            &flow_body(&frejun_call_id, CALLER, to),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    frejun_call_id
}

/// FreJun reports `statuses` for the call, in order.
async fn report(app: &TestApp, tenant: &CallingTenant, frejun_call_id: &str, statuses: &[&str]) {
    for status in statuses {
        let body = json!({"call_id": frejun_call_id, "status": status, "duration": 12});
        expect_status(
            app.post_webhook(Some(&tenant.key), None, &body).await,
            StatusCode::OK,
        )
        .await;
    }
}

/// The `call.ended` event the receiver got for FreJun's call `frejun_call_id`.
async fn ended(receiver: &FakeWebhookReceiver, frejun_call_id: &str) -> ReceivedWebhook {
    let matches = |webhook: &ReceivedWebhook| {
        webhook.body["type"] == "call.ended"
            && webhook.body["data"]["call"]["frejun_call_id"] == frejun_call_id
    };
    let arrived = receiver
        .wait_for(Duration::from_secs(15), |received| {
            received
                .iter()
                .any(|webhook| matches(webhook) && webhook.status_sent == 200)
        })
        .await;
    assert!(
        arrived,
        "no call.ended for {frejun_call_id}: {:#?}",
        summary(receiver)
    );
    receiver
        .received()
        .into_iter()
        .rev()
        .find(|webhook| matches(webhook))
        .unwrap()
}

fn summary(receiver: &FakeWebhookReceiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|webhook| {
            json!([
                webhook.body["type"],
                webhook.status_sent,
                webhook.signature_error
            ])
        })
        .collect()
}

/// The endpoint at `path` once the worker has disabled it (or as it is after `timeout`).
async fn disabled_endpoint(
    app: &TestApp,
    tenant: &CallingTenant,
    path: &str,
    timeout: Duration,
) -> Value {
    let key = &tenant.tenant.api_key;
    poll_until(
        timeout,
        || async { expect_status(app.get_as(path, key).await, StatusCode::OK).await },
        |endpoint| endpoint["data"]["enabled"] == false,
    )
    .await
}

/// The stored deliveries of event `event_id`.
async fn deliveries(app: &TestApp, event_id: &str) -> Vec<Document> {
    app.storage
        .database()
        .collection::<Document>("webhook_deliveries")
        .find(doc! { "event_id": event_id })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_terminal_outcome_reaches_the_tenant_as_call_ended() {
    let (app, receiver) = app_and_receiver().await;
    let tenant = app.calling_tenant("Events", "+14155550700", 10).await;
    let (_, secret) = endpoint(&app, &tenant, &receiver, "/hooks", json!([])).await;

    let completed = inbound(&app, &tenant, &tenant.number, "done").await;
    report(
        &app,
        &tenant,
        &completed,
        &["ringing", "in-progress", "completed"],
    )
    .await;
    let busy = inbound(&app, &tenant, &tenant.number, "busy").await;
    report(&app, &tenant, &busy, &["busy"]).await;
    let unanswered = inbound(&app, &tenant, &tenant.number, "noanswer").await;
    report(&app, &tenant, &unanswered, &["no-answer"]).await;
    // A number the tenant does not have: refused at the flow, logged, and ended at once.
    let refused = inbound(&app, &tenant, "+14155550799", "refused").await;

    for (frejun_call_id, status, end_reason) in [
        (&completed, "completed", "completed"),
        (&busy, "busy", "completed"),
        (&unanswered, "no-answer", "completed"),
        (&refused, "failed", "unknown_number"),
    ] {
        let event = ended(&receiver, frejun_call_id).await;
        assert!(event.signature_valid, "{:?}", event.signature_error);
        assert!(event.shape_errors.is_empty(), "{:?}", event.shape_errors);
        assert!(verified_independently(&secret, &event), "{frejun_call_id}");
        let call = &event.body["data"]["call"];
        assert_eq!(call["call_status"], status, "{call}");
        assert_eq!(call["end_reason"], end_reason, "{call}");
        assert!(call["status_history"].is_array() && call["transcript"].is_array());
        assert_eq!(event.id.as_deref(), event.body["id"].as_str());
    }
    // The completed call's status changes came as call.status, in order, before call.ended.
    let statuses: Vec<Value> = receiver
        .received()
        .iter()
        .filter(|webhook| {
            webhook.body["type"] == "call.status"
                && webhook.body["data"]["call"]["frejun_call_id"] == completed.as_str()
        })
        .map(|webhook| webhook.body["data"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("ringing"), json!("in-progress"), json!("completed")]
    );
    // Every event left its call log's outbox.
    let left: u64 = app
        .storage
        .database()
        .collection::<Document>("call_logs")
        .count_documents(doc! { "outbox.id": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_again_until_it_takes_it() {
    let (app, receiver) = app_and_receiver().await;
    let tenant = app.calling_tenant("Retried", "+14155550701", 10).await;
    endpoint(&app, &tenant, &receiver, "/flaky", json!(["call.ended"])).await;
    receiver.script("/flaky", vec![Reply::Status(500), Reply::Status(503)]);

    let frejun_call_id = inbound(&app, &tenant, "+14155550798", "flaky").await;
    let event = ended(&receiver, &frejun_call_id).await;
    let event_id = event.id.clone().unwrap();
    let attempts: Vec<u16> = receiver
        .received()
        .iter()
        .filter(|webhook| webhook.id.as_deref() == Some(event_id.as_str()))
        .map(|webhook| webhook.status_sent)
        .collect();
    assert_eq!(
        attempts,
        [500, 503, 200],
        "the same webhook-id on every attempt"
    );
    let stored = deliveries(&app, &event_id).await;
    assert_eq!(stored.len(), 1, "one delivery per event and endpoint");

    // The tenant sees the attempts, filters by outcome and type, and can redeliver.
    let key = &tenant.tenant.api_key;
    let path = format!("/api/webhook-events/{event_id}");
    // The receiver records its answer before sending it: the worker records the attempt just
    // after, so poll briefly.
    let shown = poll_until(
        Duration::from_secs(5),
        || async { expect_status(app.get_as(&path, key).await, StatusCode::OK).await },
        |shown| shown["data"]["deliveries"][0]["delivery_status"] == "delivered",
    )
    .await;
    let delivery = &shown["data"]["deliveries"][0];
    assert_eq!(delivery["delivery_status"], "delivered");
    let statuses: Vec<Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(500), json!(503), json!(200)]);
    assert_eq!(shown["data"]["event"]["type"], "call.ended");
    let listed = expect_status(
        app.get_as(
            "/api/webhook-events?type=call.ended&delivery_status=delivered",
            key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["event_id"] == event_id.as_str())
    );
    let none = expect_status(
        app.get_as("/api/webhook-events?delivery_status=failed", key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["data"], json!([]));
    let other = app.calling_tenant("Other", "+14155550709", 1).await;
    crate::helpers::expect_error(
        app.get_as(&path, &other.tenant.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(
        app.post_as(&format!("{path}/redeliver"), key, &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let again = receiver
        .wait_for(Duration::from_secs(10), |received| {
            received
                .iter()
                .filter(|w| w.id.as_deref() == Some(event_id.as_str()))
                .count()
                == 4
        })
        .await;
    assert!(again, "redelivered with the same webhook-id");
}

#[tokio::test]
async fn a_receiver_that_answers_410_is_disabled_and_gets_nothing_more() {
    let (app, receiver) = app_and_receiver().await;
    let tenant = app.calling_tenant("Gone", "+14155550702", 10).await;
    let (endpoint_id, _) = endpoint(&app, &tenant, &receiver, "/gone", json!([])).await;
    receiver.script("/gone", vec![Reply::Status(410)]);

    inbound(&app, &tenant, "+14155550797", "gone1").await;
    let arrived = receiver
        .wait_for(Duration::from_secs(15), |received| {
            received.iter().any(|webhook| webhook.status_sent == 410)
        })
        .await;
    assert!(arrived, "{:#?}", summary(&receiver));
    // The receiver records its answer before sending it: the worker disables the endpoint
    // just after, so poll briefly.
    let path = format!("/api/webhook-endpoints/{endpoint_id}");
    let disabled = disabled_endpoint(&app, &tenant, &path, Duration::from_secs(5)).await;
    assert_eq!(disabled["data"]["enabled"], false, "{disabled}");
    assert!(
        disabled["data"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let before = receiver.received().len();
    inbound(&app, &tenant, "+14155550796", "gone2").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        receiver.received().len(),
        before,
        "a disabled endpoint gets nothing"
    );
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_and_says_why() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.poll_interval_ms = 100;
        settings.webhooks.ended_settle_ms = 0;
        settings.webhooks.retry_schedule_secs = "1,1,1,1,1".into();
        settings.webhooks.disable_after_failing_secs = 1;
    })
    .await;
    let tenant = app.calling_tenant("Failing", "+14155550703", 10).await;
    let (endpoint_id, _) = endpoint(&app, &tenant, &receiver, "/down", json!(["call.ended"])).await;
    receiver.script("/down", vec![Reply::Status(503); 10]);
    inbound(&app, &tenant, "+14155550795", "down").await;

    let path = format!("/api/webhook-endpoints/{endpoint_id}");
    let endpoint = disabled_endpoint(&app, &tenant, &path, Duration::from_secs(15)).await;
    assert_eq!(endpoint["data"]["enabled"], false, "{endpoint}");
    let reason = endpoint["data"]["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("every delivery failed for 1 s"),
        "{reason}"
    );
    assert!(
        receiver.received().len() >= 2,
        "it was retried before being disabled"
    );
}

#[tokio::test]
async fn a_transfer_is_told_as_started_then_failed_or_succeeded() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let teler = voxbridge::sim::fake_teler::FakeTeler::start()
        .await
        .unwrap();
    let base = teler.base_url();
    let app = TestApp::spawn_with(|settings| {
        settings.frejun.api_base_url = base;
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.poll_interval_ms = 100;
    })
    .await;
    let tenant = app.calling_tenant("Transfers", "+14155550704", 10).await;
    endpoint(
        &app,
        &tenant,
        &receiver,
        "/transfers",
        json!([
            "call.transfer.started",
            "call.transfer.failed",
            "call.transfer.succeeded"
        ]),
    )
    .await;
    let at_frejun = teler.receive_call("fj-test-key-0001", CALLER, &tenant.number);
    let mut call = crate::helpers::call_record(
        tenant.tenant.object_id(),
        bson::DateTime::now(),
        voxbridge::domain::call::CallStatus::InProgress,
    );
    call.frejun_call_id = Some(at_frejun.id.clone());
    app.insert_call(&call).await;
    let path = format!("/api/calls/{}/transfer", call.id);
    let key = &tenant.tenant.api_key;

    teler.fail_next(1, voxbridge::sim::fake_teler::Failure::ValidationErrors);
    let refused = app
        .post_as(&path, key, &json!({"number": "+14155550177"}))
        .await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    expect_status(
        app.post_as(&path, key, &json!({"number": "+14155550178"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;

    let all = receiver
        .wait_for(Duration::from_secs(10), |received| received.len() >= 4)
        .await;
    assert!(all, "{:#?}", summary(&receiver));
    let told: Vec<(String, Value)> = receiver
        .received()
        .iter()
        .map(|webhook| {
            (
                webhook.body["type"].as_str().unwrap().to_owned(),
                webhook.body["data"]["target"].clone(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("call.transfer.started".to_owned(), json!("+14155550177")),
            ("call.transfer.failed".to_owned(), json!("+14155550177")),
            ("call.transfer.started".to_owned(), json!("+14155550178")),
            ("call.transfer.succeeded".to_owned(), Value::Null),
        ]
    );
    assert!(
        receiver
            .received()
            .iter()
            .all(|webhook| webhook.signature_valid)
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_and_is_tried_again() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.poll_interval_ms = 100;
        settings.webhooks.ended_settle_ms = 0;
        settings.webhooks.attempt_timeout_ms = 500;
        settings.webhooks.retry_schedule_secs = "1".into();
    })
    .await;
    let tenant = app.calling_tenant("Hanging", "+14155550705", 10).await;
    endpoint(&app, &tenant, &receiver, "/slow", json!(["call.ended"])).await;
    receiver.script("/slow", vec![Reply::Hang(Duration::from_secs(3))]);
    let frejun_call_id = inbound(&app, &tenant, "+14155550794", "hang").await;
    let event = ended(&receiver, &frejun_call_id).await;
    let event_id = event.id.unwrap();

    let path = format!("/api/webhook-events/{event_id}");
    let key = &tenant.tenant.api_key;
    let shown = poll_until(
        Duration::from_secs(10),
        || async { expect_status(app.get_as(&path, key).await, StatusCode::OK).await },
        |shown| {
            shown["data"]["deliveries"][0]["attempts"]
                .as_array()
                .map_or(0, Vec::len)
                >= 2
        },
    )
    .await;
    let attempts = shown["data"]["deliveries"][0]["attempts"]
        .as_array()
        .unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert_eq!(attempts[0]["status"], Value::Null);
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.contains("no answer within 500 ms"), "{error}");
    assert_eq!(attempts[1]["status"], 200);
}
