//! What anyone holding a tenant's FreJun URL secret can write is bounded: event names are
//! canonical, recording URLs are checked, numbers are sane, and what is kept of junk (webhooks
//! for no call, flows for unknown numbers) is capped per tenant per hour.

use bson::doc;
use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::{CallStatus, CallType};

use crate::helpers::{CallingTenant, TestApp, call_record, expect_status, flow_body, oid};

async fn outbound_call(app: &TestApp, tenant: &CallingTenant, frejun_call_id: &str) -> String {
    let mut call = call_record(
        tenant.tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::Ringing,
    );
    call.call_type = CallType::Outbound;
    call.assistant_id = Some(oid(&tenant.assistant_id));
    call.frejun_call_id = Some(frejun_call_id.to_owned());
    app.insert_call(&call).await;
    call.id.to_hex()
}

async fn send(app: &TestApp, tenant: &CallingTenant, body: serde_json::Value) {
    expect_status(
        app.post_webhook(Some(&tenant.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn case_variants_of_an_event_are_one_history_entry() {
    let app = TestApp::spawn().await;
    let tenant = app.calling_tenant("Cases", "+14155550460", 5).await;
    let call_id = outbound_call(&app, &tenant, "fj-cases").await;
    let before = app.call_log(&call_id).await.status_history.len();
    for name in [
        "call.answered",
        "CALL.ANSWERED",
        "Call.Answered",
        " call.Answered ",
    ] {
        send(
            &app,
            &tenant,
            json!({"event": name, "data": {"call_id": "fj-cases"}}),
        )
        .await;
    }
    for status in ["in-progress", "IN_PROGRESS", "In Progress", "inprogress"] {
        send(
            &app,
            &tenant,
            json!({"call_id": "fj-cases", "status": status}),
        )
        .await;
    }
    let call = app.call_log(&call_id).await;
    assert_eq!(
        call.status_history.len(),
        before + 2,
        "{:#?}",
        call.status_history
    );
}

#[tokio::test]
async fn only_an_https_recording_on_frejuns_hosts_is_kept_and_the_latest_wins() {
    let app = TestApp::spawn().await;
    let tenant = app.calling_tenant("Rec", "+14155550461", 5).await;
    let call_id = outbound_call(&app, &tenant, "fj-rec").await;
    let completed = |url: &str, at: &str| {
        json!({"event": "call.completed", "data": {
            "call_id": "fj-rec", "duration": 12, "recording_url": url, "end_time": at,
        }})
    };
    send(
        &app,
        &tenant,
        completed("https://media.frejun.ai/rec/b.wav", "2026-12-06T10:00:00Z"),
    )
    .await;
    send(
        &app,
        &tenant,
        completed("https://media.frejun.ai/rec/a.wav", "2026-12-06T10:05:00Z"),
    )
    .await;
    // Lexicographically greater, older, or not FreJun's: all ignored.
    send(
        &app,
        &tenant,
        completed("zzzz:javascript:alert(1)", "2026-12-06T10:09:00Z"),
    )
    .await;
    send(
        &app,
        &tenant,
        completed("https://evil.example/z.wav", "2026-12-06T10:09:00Z"),
    )
    .await;
    send(
        &app,
        &tenant,
        completed("https://media.frejun.ai/rec/z.wav", "2026-12-06T09:00:00Z"),
    )
    .await;
    let call = app.call_log(&call_id).await;
    assert_eq!(
        call.recording_url.as_deref(),
        Some("https://media.frejun.ai/rec/a.wav")
    );
}

#[tokio::test]
async fn an_absurd_duration_is_dropped_and_the_stats_stay_numbers() {
    let app = TestApp::spawn().await;
    let tenant = app.calling_tenant("Dur", "+14155550462", 5).await;
    let call_id = outbound_call(&app, &tenant, "fj-dur").await;
    send(
        &app,
        &tenant,
        json!({"call_id": "fj-dur", "status": "completed", "duration": 1e308}),
    )
    .await;
    assert_eq!(app.call_log(&call_id).await.duration, None);
    let stats = expect_status(
        app.get_as("/api/calls/stats", &tenant.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        stats["data"]["total_duration_seconds"].is_number(),
        "{stats}"
    );
}

#[tokio::test]
async fn junk_is_kept_only_up_to_the_hourly_caps() {
    let app = TestApp::spawn_with(|settings| {
        settings.frejun.max_unmatched_events_per_hour = 3;
        settings.frejun.max_refused_flow_logs_per_hour = 3;
    })
    .await;
    let tenant = app.calling_tenant("Junk", "+14155550463", 5).await;
    for n in 0..6 {
        send(
            &app,
            &tenant,
            json!({"event": "call.ringing", "data": {"call_id": format!("fj-none-{n}")}}),
        )
        .await;
        let flow = expect_status(
            app.post_flow(
                Some(&tenant.key),
                None,
                &flow_body(&format!("fj-junk-{n}"), "+14155550100", &"9".repeat(2_000)),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(flow["action"], "hangup", "still refused: {flow}");
    }
    let user = tenant.tenant.object_id();
    let kept_events = app
        .storage
        .collection::<bson::Document>("frejun_events")
        .count_documents(doc! { "user_id": user })
        .await
        .unwrap();
    assert_eq!(kept_events, 3);
    let refused_logs = app
        .storage
        .collection::<bson::Document>("call_logs")
        .count_documents(doc! { "user_id": user, "call_status": "failed" })
        .await
        .unwrap();
    assert_eq!(refused_logs, 3);
    let longest = app
        .storage
        .collection::<bson::Document>("call_logs")
        .find_one(doc! { "user_id": user })
        .await
        .unwrap()
        .unwrap();
    assert!(longest.get_str("to_number").unwrap().len() <= 32);
}
