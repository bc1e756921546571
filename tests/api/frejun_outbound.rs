//! Outbound calls against the in-crate fake Teler: the request Teler receives, FreJun's flow and
//! webhooks finding the call, every Teler failure mapped to an API error with the call log
//! marked failed, the concurrency limit, and hang-up.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::domain::call::{CallStatus, CallType, EndReason};
use voxbridge::sim::fake_teler::{Failure, FakeTeler};
use voxbridge::sim::frejun_payloads::events;

use crate::helpers::{CallingTenant, TestApp, expect_error, expect_status};

const CALLEE: &str = "+14155550123";

async fn app_with_teler() -> (TestApp, FakeTeler) {
    let teler = FakeTeler::start().await.expect("fake Teler starts");
    let base = teler.base_url();
    let app = TestApp::spawn_with(|settings| {
        settings.frejun.api_base_url = base;
        settings.frejun.api_timeout_secs = 1;
    })
    .await;
    (app, teler)
}

fn initiate_body(tenant: &CallingTenant) -> Value {
    json!({ "assistant_id": tenant.assistant_id, "from_number": tenant.number, "to_number": CALLEE })
}

async fn initiate(app: &TestApp, tenant: &CallingTenant, body: &Value) -> reqwest::Response {
    app.post_as("/api/frejun/initiate-call", &tenant.tenant.api_key, body)
        .await
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn an_outbound_call_is_placed_and_found_again_by_frejuns_flow_and_webhooks() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;

    let body = expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Call initiated successfully");
    let frejun_call_id = body["call_id"].as_str().expect("FreJun's id").to_owned();
    let our_id = body["voxbridge_call_id"]
        .as_str()
        .expect("our id")
        .to_owned();
    assert!(frejun_call_id.starts_with("cs_"), "{body}");
    assert_eq!(body["data"]["id"], our_id.as_str());
    assert_eq!(body["data"]["call_type"], "outbound");

    // What Teler received.
    let requests = teler.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/v1/voice/calls/initiate");
    assert_eq!(request.header("x-api-key"), Some("fj-test-key-0001"));
    let sent = &request.body;
    assert_eq!(sent["from_number"], acme.number.as_str());
    assert_eq!(sent["to_number"], CALLEE);
    assert_eq!(sent["record"], true);
    let flow_url = sent["flow_url"].as_str().unwrap().to_owned();
    let status_url = sent["status_callback_url"].as_str().unwrap().to_owned();
    for (url, path) in [
        (&flow_url, "api/frejun/flow"),
        (&status_url, "api/frejun/webhook"),
    ] {
        assert!(
            url.starts_with(app.settings.public_url(path).as_str()),
            "{url}"
        );
        let query = query(url);
        assert_eq!(query["key"], acme.key);
        assert_eq!(query["call"], our_id);
    }

    let call = app.call_log(&our_id).await;
    assert_eq!(call.call_type, CallType::Outbound);
    assert_eq!(call.call_status, CallStatus::Initiated);
    assert_eq!(
        call.frejun_call_id.as_deref(),
        Some(frejun_call_id.as_str())
    );
    let held = app.held_slots(&acme).await;
    assert_eq!(held.len(), 1);

    // FreJun plays its part: ringing, the flow fetch on answer, then the end of the call.
    let (from, to) = (acme.number.as_str(), CALLEE);
    let ringing = events::call_ringing(&frejun_call_id, from, to);
    assert_eq!(
        teler.send_webhook(&status_url, &ringing).await.unwrap(),
        200
    );
    let (status, flow) = teler
        .fetch_flow(&flow_url, &frejun_call_id, from, to, "outbound")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(flow["action"], "stream", "{flow}");
    assert_eq!(query(flow["ws_url"].as_str().unwrap())["call_id"], our_id);
    let answered = events::call_answered(&frejun_call_id, from, to, "2026-11-21T10:00:05Z");
    let completed = events::call_completed(&frejun_call_id, from, to, 31, "2026-11-21T10:00:36Z");
    for event in [answered, completed] {
        assert_eq!(teler.send_webhook(&status_url, &event).await.unwrap(), 200);
    }
    let call = app.call_log(&our_id).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.duration, Some(31.0));
    assert_eq!(call.end_reason, Some(EndReason::Completed));
    let held = app.held_slots(&acme).await;
    assert!(held.is_empty(), "the slot is freed when the call ends");
    assert_eq!(app.count("call_logs").await, 1);
}

#[tokio::test]
async fn every_teler_failure_maps_to_an_api_error_and_marks_the_call_failed() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1).await;
    let cases = [
        (
            Failure::InvalidKey401,
            StatusCode::UNPROCESSABLE_ENTITY,
            "frejun_key_invalid",
            EndReason::TelerRejected,
        ),
        (
            Failure::InvalidKey403,
            StatusCode::UNPROCESSABLE_ENTITY,
            "frejun_key_invalid",
            EndReason::TelerRejected,
        ),
        (
            Failure::NumberNotProvisioned,
            StatusCode::UNPROCESSABLE_ENTITY,
            "from_number_not_provisioned",
            EndReason::TelerRejected,
        ),
        (
            Failure::ValidationErrors,
            StatusCode::UNPROCESSABLE_ENTITY,
            "telephony_validation_failed",
            EndReason::TelerRejected,
        ),
        (
            Failure::ValidationDetail,
            StatusCode::UNPROCESSABLE_ENTITY,
            "telephony_validation_failed",
            EndReason::TelerRejected,
        ),
        (
            Failure::RateLimited {
                retry_after_secs: 7,
            },
            StatusCode::TOO_MANY_REQUESTS,
            "telephony_rate_limited",
            EndReason::TelerRejected,
        ),
        (
            Failure::ServerError(503),
            StatusCode::BAD_GATEWAY,
            "telephony_unavailable",
            EndReason::TelephonyError,
        ),
        (
            Failure::ServerError(500),
            StatusCode::BAD_GATEWAY,
            "telephony_unavailable",
            EndReason::TelephonyError,
        ),
        (
            Failure::MalformedSuccess,
            StatusCode::BAD_GATEWAY,
            "telephony_unavailable",
            EndReason::TelephonyError,
        ),
        (
            Failure::Stall(Duration::from_secs(3)),
            StatusCode::GATEWAY_TIMEOUT,
            "telephony_timeout",
            EndReason::TelephonyError,
        ),
    ];
    for (failure, status, code, reason) in cases {
        teler.fail_with(failure.clone());
        let before = teler.requests().len();
        let body = expect_error(
            initiate(&app, &acme, &initiate_body(&acme)).await,
            status,
            code,
        )
        .await;
        assert_eq!(
            teler.requests().len(),
            before + 1,
            "{failure:?}: one request, never retried"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("fj-test-key-0001"), "{message}");
        let call_id = message
            .split("call ")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the message names the call");
        let call = app.call_log(call_id).await;
        assert_eq!(call.call_status, CallStatus::Failed, "{failure:?}");
        assert_eq!(call.end_reason, Some(reason), "{failure:?}");
        assert_eq!(
            call.error.as_ref().map(|e| e.code.as_str()),
            Some(code),
            "{failure:?}"
        );
        // The slot is free again (the limit is 1): the next case is not refused for it.
        let held = app.held_slots(&acme).await;
        assert!(held.is_empty(), "{failure:?}");
    }

    // Teler unreachable.
    teler.clear_failure();
    teler.stop().await;
    expect_error(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::BAD_GATEWAY,
        "telephony_unavailable",
    )
    .await;
}

#[tokio::test]
async fn requests_that_cannot_be_placed_are_refused_before_teler_is_called() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    let bare = app
        .create_phone_number(&acme.tenant, json!({ "phone_number": "+14155550101" }))
        .await;

    let cases = [
        (
            json!({ "from_number": acme.number, "to_number": "12345" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({ "from_number": "nope", "to_number": CALLEE }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({ "from_number": beta.number, "to_number": CALLEE }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({ "from_number": bare["phone_number"], "to_number": CALLEE }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({ "assistant_id": beta.assistant_id, "from_number": acme.number, "to_number": CALLEE }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({ "assistant_id": "not-an-id", "from_number": acme.number, "to_number": CALLEE }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({ "from_number": acme.number }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "from_number": acme.number, "to_number": CALLEE, "extra": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let answer = expect_error(initiate(&app, &acme, &body).await, status, code).await;
        assert!(!answer.to_string().is_empty());
    }
    // The from-number's own assistant is used when none is named.
    let body = json!({ "from_number": acme.number, "to_number": CALLEE });
    let placed = expect_status(initiate(&app, &acme, &body).await, StatusCode::OK).await;
    assert_eq!(placed["data"]["assistant_id"], acme.assistant_id.as_str());

    // A tenant without a FreJun key.
    let gamma = app.create_tenant("Gamma", "ops@gamma.example").await;
    let assistant = app.create_assistant(&gamma, json!({ "name": "G" })).await;
    app.create_phone_number(
        &gamma,
        json!({ "phone_number": "+14155550300", "assistant_id": assistant["id"] }),
    )
    .await;
    let body = json!({ "from_number": "+14155550300", "to_number": CALLEE });
    expect_error(
        app.post_as("/api/frejun/initiate-call", &gamma.api_key, &body)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_credentials",
    )
    .await;

    // Only the one successful call reached Teler.
    assert_eq!(teler.requests().len(), 1);
    // Unauthenticated.
    let response = app
        .request(reqwest::Method::POST, "/api/frejun/initiate-call")
        .json(&initiate_body(&acme))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_concurrency_limit_applies_to_outbound_calls() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1).await;
    expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    let body = expect_error(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "concurrency_limit",
    )
    .await;
    assert_eq!(teler.requests().len(), 1);
    let refused = app
        .storage
        .collection::<bson::Document>("call_logs")
        .count_documents(bson::doc! { "end_reason": "concurrency_limit", "call_status": "failed" })
        .await
        .unwrap();
    assert_eq!(refused, 1, "{body}");
}

#[tokio::test]
async fn a_live_call_is_hung_up_through_teler() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let placed = expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    let our_id = placed["voxbridge_call_id"].as_str().unwrap().to_owned();
    let frejun_call_id = placed["call_id"].as_str().unwrap().to_owned();
    let path = format!("/api/calls/{our_id}/hangup");

    // Another tenant cannot.
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    expect_error(
        app.post_as(&path, &beta.tenant.api_key, &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let answer = expect_status(
        app.post_as(&path, &acme.tenant.api_key, &json!({})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(answer["data"]["end_reason"], "hung_up_by_api");
    let request = teler.requests().last().cloned().unwrap();
    assert_eq!(
        request.path,
        format!("/api/v1/voice/calls/{frejun_call_id}/hangup")
    );
    assert_eq!(request.header("x-api-key"), Some("fj-test-key-0001"));
    assert!(request.header("idempotency-key").is_some());
    assert!(teler.calls()[0].hung_up);

    // Teler says it is no longer live.
    expect_error(
        app.post_as(&path, &acme.tenant.api_key, &json!({})).await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;

    // FreJun reports the end; the reason the tenant gave stays.
    let status_url = teler.calls()[0].status_callback_url.clone();
    let completed = events::call_completed(
        &frejun_call_id,
        &acme.number,
        CALLEE,
        12,
        "2026-11-21T10:00:12Z",
    );
    teler.send_webhook(&status_url, &completed).await.unwrap();
    let call = app.call_log(&our_id).await;
    assert!(call.call_status.is_terminal());
    assert_eq!(call.end_reason, Some(EndReason::HungUpByApi));
    expect_error(
        app.post_as(&path, &acme.tenant.api_key, &json!({})).await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;
}

/// The Teler backend's initiate route: the assistant assigned to `from_number` talks, the
/// answer carries the backend's fields in our envelope, and caller-supplied URLs are refused.
#[tokio::test]
async fn the_teler_backends_initiate_route_places_the_same_call() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let path = "/api/calls/initiate";

    for (field, body) in [
        (
            "flow_url",
            json!({ "from_number": acme.number, "to_number": CALLEE, "flow_url": "https://evil.example/flow" }),
        ),
        (
            "status_callback_url",
            json!({ "from_number": acme.number, "to_number": CALLEE, "status_callback_url": "https://evil.example/cb" }),
        ),
    ] {
        let refused = expect_error(
            app.post_as(path, &acme.tenant.api_key, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "caller_urls_not_supported",
        )
        .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{refused}"
        );
    }
    assert!(teler.requests().is_empty(), "nothing reached Teler");

    let answer = expect_status(
        app.post_as(
            path,
            &acme.tenant.api_key,
            &json!({ "from_number": acme.number, "to_number": CALLEE }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["success"], true);
    let data = &answer["data"];
    assert!(
        data["call_id"].as_str().unwrap().starts_with("cs_"),
        "{answer}"
    );
    assert_eq!(data["status"], "initiated");
    assert_eq!(data["from_number"], acme.number.as_str());
    assert_eq!(data["to_number"], CALLEE);
    assert!(data["timestamp"].as_str().is_some());
    let call = app
        .call_log(data["voxbridge_call_id"].as_str().unwrap())
        .await;
    assert_eq!(call.call_type, CallType::Outbound);
    assert_eq!(
        call.assistant_id.map(|id| id.to_hex()),
        Some(acme.assistant_id.clone()),
        "the number's assistant"
    );
    // Our own URLs went to Teler.
    let sent = &teler.requests()[0].body;
    assert!(
        sent["flow_url"]
            .as_str()
            .unwrap()
            .contains("/api/frejun/flow?key=")
    );
}

/// Recording: per assistant (on by default), the recording id FreJun's webhook carries is kept,
/// and `GET /api/calls/{id}/recording` redirects to a fresh signed URL from FreJun's recordings
/// API, whose audio downloads without credentials.
#[tokio::test]
async fn a_calls_recording_is_served_through_a_fresh_signed_url() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let placed = expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    let our_id = placed["voxbridge_call_id"].as_str().unwrap().to_owned();
    let frejun_call_id = placed["call_id"].as_str().unwrap().to_owned();
    assert_eq!(teler.requests()[0].body["record"], true, "on by default");
    let path = format!("/api/calls/{our_id}/recording");
    expect_error(
        app.get_as(&path, &acme.tenant.api_key).await,
        StatusCode::NOT_FOUND,
        "no_recording",
    )
    .await;

    let recording_id = teler.add_recording(&frejun_call_id);
    let mut completed = events::call_completed(
        &frejun_call_id,
        &acme.number,
        CALLEE,
        12,
        "2026-11-21T10:00:12Z",
    );
    completed["data"]["recording_id"] = json!(recording_id);
    let status_url = teler.calls()[0].status_callback_url.clone();
    teler.send_webhook(&status_url, &completed).await.unwrap();
    assert_eq!(
        app.call_log(&our_id).await.recording_id.as_deref(),
        Some(recording_id.as_str())
    );

    let redirect = app.get_as(&path, &acme.tenant.api_key).await;
    assert_eq!(redirect.status(), StatusCode::FOUND);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains(&recording_id) && location.contains("signature="),
        "{location}"
    );
    let asked = teler
        .requests()
        .into_iter()
        .find(|request| request.path == "/api/v1/recordings")
        .expect("FreJun's recordings API was asked");
    assert_eq!(asked.header("x-api-key"), Some("fj-test-key-0001"));
    // The signed URL is fetched without credentials, like a presigned storage URL.
    let audio = reqwest::get(&location).await.unwrap();
    assert_eq!(audio.status(), StatusCode::OK);
    let wav = audio.bytes().await.unwrap();
    assert!(
        wav.starts_with(b"RIFF") && wav.len() > 16_000,
        "{} bytes",
        wav.len()
    );

    // Another tenant cannot reach it.
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    expect_error(
        app.get_as(&path, &beta.tenant.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_assistant_with_recording_off_asks_frejun_not_to_record() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    expect_status(
        app.patch_as(
            &format!("/api/assistants/{}", acme.assistant_id),
            &acme.tenant.api_key,
            &json!({ "record": false }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(teler.requests()[0].body["record"], false);
}

/// A tenant transfers a live call by hand: a cold transfer through Teler, the log says the call
/// left (`transferred`), and it is not live any more.
#[tokio::test]
async fn a_live_call_is_transferred_through_teler() {
    let (app, teler) = app_with_teler().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let placed = expect_status(
        initiate(&app, &acme, &initiate_body(&acme)).await,
        StatusCode::OK,
    )
    .await;
    let our_id = placed["voxbridge_call_id"].as_str().unwrap().to_owned();
    let path = format!("/api/calls/{our_id}/transfer");

    expect_error(
        app.post_as(
            &path,
            &acme.tenant.api_key,
            &json!({ "number": "not a number" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    expect_error(
        app.post_as(
            &path,
            &beta.tenant.api_key,
            &json!({ "number": "+14155550188" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let answer = expect_status(
        app.post_as(
            &path,
            &acme.tenant.api_key,
            &json!({ "number": "+1 415 555 0188" }),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(answer["data"]["end_reason"], "transferred");
    let request = teler.requests().last().cloned().unwrap();
    assert!(request.path.ends_with("/transfer"), "{}", request.path);
    assert_eq!(
        request.body,
        json!({"target": {"kind": "pstn", "number": "+14155550188"}, "mode": "cold"})
    );
    assert!(request.header("idempotency-key").is_some());
    assert_eq!(teler.calls()[0].operations, ["transfer:+14155550188"]);

    expect_error(
        app.post_as(
            &path,
            &acme.tenant.api_key,
            &json!({ "number": "+14155550188" }),
        )
        .await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;
}
