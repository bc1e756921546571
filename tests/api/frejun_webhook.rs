//! FreJun's status webhooks: both payload shapes, statuses that only move forward, and the same
//! call log whatever the order, repetition or interleaving of deliveries.

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use voxbridge::domain::call::{CallStatus, CallType, EndReason};

use crate::helpers::{CallingTenant, TestApp, call_record, expect_error, expect_status, oid};

/// An outbound call of `tenant` that Teler is about to dial; returns our id.
async fn new_outbound_call(app: &TestApp, tenant: &CallingTenant) -> String {
    // Created before the events' timestamps, so its first history entry sorts first.
    let created = bson::DateTime::parse_rfc3339_str("2026-11-21T09:59:00Z").unwrap();
    let mut call = call_record(tenant.tenant.object_id(), created, CallStatus::Initiated);
    call.call_type = CallType::Outbound;
    call.assistant_id = Some(oid(&tenant.assistant_id));
    app.insert_call(&call).await;
    call.id.to_hex()
}

fn envelope(event: &str, data: Value) -> Value {
    json!({ "event": event, "account_id": "acc_1", "call_app_id": "app_1", "data": data })
}

/// A realistic answered call, as FreJun documents its events.
fn answered_call_events(frejun_call_id: &str) -> Vec<Value> {
    let (from, to) = ("+14155550100", "+14155550123");
    vec![
        envelope(
            "call.initiated",
            json!({ "call_id": frejun_call_id, "from": from, "to": to, "start_time": "2026-11-21T10:00:00Z" }),
        ),
        envelope(
            "call.ringing",
            json!({ "call_id": frejun_call_id, "from": from, "to": to, "time": "2026-11-21T10:00:01Z" }),
        ),
        envelope(
            "call.answered",
            json!({ "call_id": frejun_call_id, "from": from, "to": to, "answer_time": "2026-11-21T10:00:05Z" }),
        ),
        envelope(
            "stream.initiated",
            json!({ "call_id": frejun_call_id, "stream_id": "st_1", "start_time": "2026-11-21T10:00:06Z" }),
        ),
        envelope(
            "stream.completed",
            json!({ "call_id": frejun_call_id, "stream_id": "st_1", "end_time": "2026-11-21T10:00:46Z" }),
        ),
        envelope(
            "call.completed",
            json!({
                "call_id": frejun_call_id, "from": from, "to": to, "duration": 42,
                "hangup_time": "2026-11-21T10:00:47Z",
                "recording_url": "https://media.frejun.ai/recordings/call.wav",
            }),
        ),
    ]
}

/// The fields of a call log that webhooks decide, as JSON, with the per-call ids removed.
async fn outcome(app: &TestApp, call_id: &str) -> Value {
    let call = app.call_log(call_id).await;
    let history: Vec<Value> = call
        .status_history
        .iter()
        .map(|event| {
            json!({
                "status": event.status,
                "at": event.at.timestamp_millis(),
                "source": event.source,
                "event": event.event,
            })
        })
        .collect();
    json!({
        "call_status": call.call_status,
        "status_history": history,
        "answered_at": call.answered_at.map(|t| t.timestamp_millis()),
        "ended_at": call.ended_at.map(|t| t.timestamp_millis()),
        "duration": call.duration,
        "end_reason": call.end_reason,
        "recording_url": call.recording_url,
        "error": call.error.map(|e| e.code),
        "has_frejun_call_id": call.frejun_call_id.is_some(),
    })
}

/// Delivers `events` (in the given order) for a fresh outbound call; returns its outcome.
async fn deliver(app: &TestApp, tenant: &CallingTenant, order: &[usize], label: &str) -> Value {
    let call_id = new_outbound_call(app, tenant).await;
    let frejun_call_id = format!("fj-{label}-{call_id}");
    let events = answered_call_events(&frejun_call_id);
    for &index in order {
        let response = app
            .post_webhook(Some(&tenant.key), Some(&call_id), &events[index])
            .await;
        let body = expect_status(response, StatusCode::OK).await;
        assert_eq!(body["status"], "received", "{body}");
    }
    outcome(app, &call_id).await
}

#[tokio::test]
async fn any_order_and_any_repetition_of_events_converge_to_the_same_call_log() {
    // Hundreds of webhooks with one URL key back to back: convergence, not the rate limit, is
    // under test.
    let app = TestApp::spawn_with(|settings| settings.rate_limit.exempt_loopback = true).await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1000).await;
    let count = answered_call_events("x").len();
    let in_order: Vec<usize> = (0..count).collect();

    let expected = deliver(&app, &acme, &in_order, "ordered").await;
    assert_eq!(expected["call_status"], "completed");
    assert_eq!(expected["duration"], 42.0);
    assert_eq!(expected["end_reason"], "completed");
    assert_eq!(
        expected["recording_url"],
        "https://media.frejun.ai/recordings/call.wav"
    );
    assert_eq!(
        expected["answered_at"],
        json!(chrono_millis("2026-11-21T10:00:05Z"))
    );
    assert_eq!(
        expected["ended_at"],
        json!(chrono_millis("2026-11-21T10:00:47Z"))
    );
    // Every status-bearing event once (stream.completed changes no status), in time order,
    // after the call log's own first entry.
    let events: Vec<&str> = expected["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "flow.received",
            "call.initiated",
            "call.ringing",
            "call.answered",
            "stream.initiated",
            "call.completed",
        ]
    );

    let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
    assert_eq!(deliver(&app, &acme, &reversed, "reversed").await, expected);

    let doubled: Vec<usize> = in_order
        .iter()
        .chain(in_order.iter())
        .chain([5, 2, 0].iter())
        .copied()
        .collect();
    assert_eq!(deliver(&app, &acme, &doubled, "doubled").await, expected);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut orders = Vec::new();
    for _ in 0..100 {
        // Some events twice, then the whole sequence shuffled.
        let mut order = in_order.clone();
        order.extend(
            in_order
                .iter()
                .filter(|_| rand::Rng::random_bool(&mut rng, 0.3)),
        );
        order.shuffle(&mut rng);
        orders.push(order);
    }
    // Ten calls at a time: the calls are independent, and this keeps the test quick.
    for (batch, chunk) in orders.chunks(10).enumerate() {
        let outcomes =
            futures_util::future::join_all(chunk.iter().enumerate().map(|(n, order)| {
                let label = format!("shuffle{batch}-{n}");
                let (app, acme) = (&app, &acme);
                async move { deliver(app, acme, order, &label).await }
            }))
            .await;
        for (order, outcome) in chunk.iter().zip(outcomes) {
            assert_eq!(outcome, expected, "order {order:?}");
        }
    }
}

fn chrono_millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn events_delivered_concurrently_for_one_call_are_all_recorded() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 10).await;
    let call_id = new_outbound_call(&app, &acme).await;
    let events = answered_call_events("fj-concurrent");
    let deliveries = events.iter().chain(events.iter()).map(|event| {
        let app = &app;
        let key = acme.key.clone();
        let call_id = call_id.clone();
        async move {
            let response = app.post_webhook(Some(&key), Some(&call_id), event).await;
            expect_status(response, StatusCode::OK).await
        }
    });
    futures_util::future::join_all(deliveries).await;
    let call = app.call_log(&call_id).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    // flow.received plus five status-bearing events, each once.
    assert_eq!(call.status_history.len(), 6, "{:?}", call.status_history);
}

#[tokio::test]
async fn the_flat_shape_is_accepted_and_an_unanswered_completion_is_no_answer() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 10).await;

    // Answered, in the flat Convis shape, found by FreJun's call id alone.
    let call_id = new_outbound_call(&app, &acme).await;
    app.storage
        .call_logs()
        .set_frejun_call_id(
            acme.tenant.object_id(),
            oid(&call_id),
            "fj-flat",
            bson::DateTime::now(),
        )
        .await
        .unwrap();
    for status in ["ringing", "in-progress", "completed"] {
        let body = json!({ "call_id": "fj-flat", "status": status, "duration": 17 });
        expect_status(
            app.post_webhook(Some(&acme.key), None, &body).await,
            StatusCode::OK,
        )
        .await;
    }
    let call = app.call_log(&call_id).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.duration, Some(17.0));
    // A late "ringing" does not move it back.
    let body = json!({ "call_id": "fj-flat", "status": "ringing" });
    expect_status(
        app.post_webhook(Some(&acme.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.call_log(&call_id).await.call_status,
        CallStatus::Completed
    );

    // Completed without ever being answered.
    let unanswered = new_outbound_call(&app, &acme).await;
    for event in [
        envelope("call.ringing", json!({ "call_id": "fj-unanswered" })),
        envelope(
            "call.completed",
            json!({ "call_id": "fj-unanswered", "duration": 0 }),
        ),
    ] {
        expect_status(
            app.post_webhook(Some(&acme.key), Some(&unanswered), &event)
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let call = app.call_log(&unanswered).await;
    assert_eq!(call.call_status, CallStatus::NoAnswer);
    assert!(call.ended_at.is_some());
    assert_eq!(call.frejun_call_id.as_deref(), Some("fj-unanswered"));

    // Busy, flat.
    let busy = new_outbound_call(&app, &acme).await;
    let body = json!({ "call_id": "fj-busy", "status": "busy" });
    expect_status(
        app.post_webhook(Some(&acme.key), Some(&busy), &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.call_log(&busy).await.call_status, CallStatus::Busy);
    let failed = new_outbound_call(&app, &acme).await;
    let body = json!({ "call_id": "fj-failed", "status": "failed" });
    expect_status(
        app.post_webhook(Some(&acme.key), Some(&failed), &body)
            .await,
        StatusCode::OK,
    )
    .await;
    let call = app.call_log(&failed).await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::TelephonyError));
}

#[tokio::test]
async fn a_terminal_webhook_frees_the_calls_slot() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1).await;
    let flow = expect_status(
        app.post_flow(
            Some(&acme.key),
            None,
            &crate::helpers::flow_body("fj-live", "+14155550123", &acme.number),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "stream");
    let held = app.held_slots(&acme).await;
    assert_eq!(held.len(), 1);
    let completed = envelope(
        "call.completed",
        json!({ "call_id": "fj-live", "duration": 30 }),
    );
    expect_status(
        app.post_webhook(Some(&acme.key), None, &completed).await,
        StatusCode::OK,
    )
    .await;
    let held = app.held_slots(&acme).await;
    assert!(held.is_empty());
}

#[tokio::test]
async fn events_for_unknown_calls_are_kept_and_acknowledged() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 10).await;
    let beta = app.calling_tenant("Beta", "+14155550200", 10).await;
    let beta_call = new_outbound_call(&app, &beta).await;

    let cases = [
        (
            None,
            envelope("call.answered", json!({ "call_id": "fj-nobody" })),
            "unknown_call",
        ),
        (
            None,
            json!({ "event": "call.ringing", "data": {} }),
            "no_call_id",
        ),
        // Another tenant's call, named with this tenant's key: not reachable.
        (
            Some(beta_call.as_str()),
            envelope("call.completed", json!({ "call_id": "fj-b" })),
            "unknown_call",
        ),
    ];
    for (call, body, reason) in cases {
        let answer = expect_status(
            app.post_webhook(Some(&acme.key), call, &body).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(answer, json!({ "status": "ignored", "reason": reason }));
    }
    let kept = app
        .storage
        .frejun_events()
        .recent(acme.tenant.object_id(), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    assert!(
        kept.iter()
            .any(|event| event.frejun_call_id.as_deref() == Some("fj-nobody"))
    );
    assert_eq!(
        app.call_log(&beta_call).await.call_status,
        CallStatus::Initiated
    );

    // Not JSON: a clear 400, and kept all the same.
    let response = app
        .request(
            Method::POST,
            &format!("/api/frejun/webhook?key={}", acme.key),
        )
        .body("status=completed&call_id=")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    let kept = app
        .storage
        .frejun_events()
        .recent(acme.tenant.object_id(), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 4);
    assert_eq!(kept[0].reason, "unparseable");

    // Without a valid key: 401 and nothing kept.
    for key in [None, Some("wrong")] {
        expect_error(
            app.post_webhook(
                key,
                None,
                &envelope("call.ringing", json!({ "call_id": "fj-nobody" })),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_frejun_key",
        )
        .await;
    }
    assert_eq!(app.count("frejun_events").await, 4);
}

/// FreJun's 2026-06-01 webhook version has an unpublished catalogue: an unknown `call.*` event
/// that says the call's state still moves the status, a newer name for the end still ends the
/// call, and an event that says nothing is kept on the call (once), never dropped.
#[tokio::test]
async fn newer_webhook_events_keep_the_status_and_unknown_ones_are_kept_on_the_call() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let our_id = new_outbound_call(&app, &acme).await;
    let post = |body: Value| {
        let app = &app;
        let key = acme.key.clone();
        let our_id = our_id.clone();
        async move {
            expect_status(
                app.post_webhook(Some(&key), Some(&our_id), &body).await,
                StatusCode::OK,
            )
            .await
        }
    };
    let typed = |kind: &str, data: Value| json!({ "type": kind, "api_version": "2026-06-01", "data": data });

    post(typed(
        "call.state_changed",
        json!({ "call_id": "fj-new", "state": "in_progress", "timestamp": "2026-11-21T10:00:02Z" }),
    ))
    .await;
    assert_eq!(
        app.call_log(&our_id).await.call_status,
        CallStatus::InProgress
    );

    for _ in 0..2 {
        post(typed(
            "call.transferred",
            json!({ "call_id": "fj-new", "timestamp": "2026-11-21T10:00:05Z" }),
        ))
        .await;
    }
    post(typed(
        "recording.completed",
        json!({ "call_id": "fj-new", "status": "completed" }),
    ))
    .await;
    let call = app.call_log(&our_id).await;
    assert_eq!(
        call.call_status,
        CallStatus::InProgress,
        "a recording's completion is not the call's"
    );
    let names: Vec<&str> = call.other_events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["call.transferred", "recording.completed"],
        "once each"
    );

    post(typed(
        "call.hangup",
        json!({ "call_id": "fj-new", "timestamp": "2026-11-21T10:01:00Z" }),
    ))
    .await;
    let call = app.call_log(&our_id).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    let detail = expect_status(
        app.get_as(&format!("/api/calls/{our_id}"), &acme.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        detail["data"]["other_events"][0]["event"],
        "call.transferred"
    );
    assert_eq!(
        detail["data"]["other_events"][0]["at"],
        "2026-11-21T10:00:05Z"
    );
}
