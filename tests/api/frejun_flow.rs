//! FreJun's flow request: the stream flow for an admitted call (with a token the media endpoint
//! will verify), a hang-up flow and a recorded reason for every refusal, 401 for a missing or
//! foreign key, and the concurrency limit counted atomically.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use voxbridge::calls::CallService;
use voxbridge::domain::call::{CallStatus, CallType, EndReason};
use voxbridge::domain::secret::SecretString;
use voxbridge::frejun::media_token::{MediaTokenError, MediaTokens};
use voxbridge::shared::Shared;

use crate::helpers::{TestApp, call_record, expect_error, expect_status, flow_body, oid};

const CALLER: &str = "+14155550123";

/// The call id and token of a stream flow's `ws_url`, after checking the rest of the URL.
fn ws_url_parts(app: &TestApp, flow: &Value, assistant_id: &str) -> (String, String) {
    let url = url::Url::parse(flow["ws_url"].as_str().expect("ws_url")).expect("a URL");
    let mut expected = app
        .settings
        .public_url(&format!("api/frejun/media-stream/{assistant_id}"));
    expected.set_scheme("ws").unwrap();
    assert_eq!(&url[..url::Position::AfterPath], expected.as_str());
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query.len(), 2, "only call_id and token: {url}");
    (query["call_id"].clone(), query["token"].clone())
}

/// Posts an inbound flow request with `key`; asserts a 200 and returns the flow.
async fn inbound_flow(app: &TestApp, key: &str, body: &Value) -> Value {
    expect_status(app.post_flow(Some(key), None, body).await, StatusCode::OK).await
}

fn media_tokens(app: &TestApp) -> MediaTokens {
    MediaTokens::new(app.settings.security.url_signing_key.clone())
}

#[tokio::test]
async fn an_inbound_call_gets_a_stream_flow_with_a_verifiable_token() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;

    let response = app
        .post_flow(
            Some(&acme.key),
            None,
            &flow_body("fj-in-1", CALLER, &acme.number),
        )
        .await;
    let flow = expect_status(response, StatusCode::OK).await;
    assert_eq!(flow.as_object().unwrap().len(), 5, "{flow}");
    assert_eq!(flow["action"], "stream");
    assert_eq!(flow["chunk_size"], 100);
    assert_eq!(flow["sample_rate"], "16k");
    assert_eq!(flow["record"], true);
    let (call_id, token) = ws_url_parts(&app, &flow, &acme.assistant_id);

    // The token is what the media endpoint will verify: bound to this call and assistant.
    let tokens = media_tokens(&app);
    let now = SystemTime::now();
    assert_eq!(
        tokens.verify(&token, &call_id, &acme.assistant_id, now),
        Ok(())
    );

    let call = app.call_log(&call_id).await;
    assert_eq!(call.user_id, acme.tenant.object_id());
    assert_eq!(call.assistant_id, Some(oid(&acme.assistant_id)));
    assert_eq!(call.frejun_call_id.as_deref(), Some("fj-in-1"));
    assert_eq!(call.call_type, CallType::Inbound);
    assert_eq!(call.call_status, CallStatus::Initiated);
    assert_eq!(call.platform, "frejun");
    assert_eq!(call.from_number.as_deref(), Some(CALLER));
    assert_eq!(call.to_number.as_deref(), Some(acme.number.as_str()));
    assert_eq!(call.end_reason, None);
    assert_eq!(call.status_history.len(), 1);
    assert_eq!(
        call.status_history[0].source,
        Some(voxbridge::domain::call::status::ReportSource::Flow)
    );

    // The call holds one of the tenant's slots.
    let held = app.held_slots(&acme).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].call_id, call.id);
}

#[tokio::test]
async fn forged_expired_and_misbound_tokens_are_refused_by_the_media_verifier() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let flow = inbound_flow(&app, &acme.key, &flow_body("fj-in-2", CALLER, &acme.number)).await;
    let (call_id, token) = ws_url_parts(&app, &flow, &acme.assistant_id);
    let tokens = media_tokens(&app);
    let now = SystemTime::now();
    let ttl = Duration::from_secs(app.settings.frejun.media_token_ttl_secs);

    assert_eq!(
        tokens.verify(&token, &call_id, &acme.assistant_id, now + ttl),
        Err(MediaTokenError::Expired)
    );
    let other_call = bson::oid::ObjectId::new().to_hex();
    assert_eq!(
        tokens.verify(&token, &other_call, &acme.assistant_id, now),
        Err(MediaTokenError::Invalid)
    );
    let forger = MediaTokens::new(SecretString::new("not-the-signing-key-but-long-enough-000"));
    let forged = forger.sign(&call_id, &acme.assistant_id, now, ttl);
    assert_eq!(
        tokens.verify(&forged, &call_id, &acme.assistant_id, now),
        Err(MediaTokenError::Invalid)
    );
    // Change one character inside the MAC (not the last one, whose low bits base64 ignores and
    // whose other values may not decode at all).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        tokens.verify(&tampered, &call_id, &acme.assistant_id, now),
        Err(MediaTokenError::Invalid)
    );
}

/// Posts a flow and asserts a hang-up answer; returns the call log it created.
async fn expect_hangup(app: &TestApp, key: &str, frejun_call_id: &str, to: &str) -> Option<String> {
    let before: Vec<String> = call_ids(app).await;
    let flow = expect_status(
        app.post_flow(Some(key), None, &flow_body(frejun_call_id, CALLER, to))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow, json!({ "action": "hangup" }));
    call_ids(app)
        .await
        .into_iter()
        .find(|id| !before.contains(id))
}

async fn call_ids(app: &TestApp) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    app.storage
        .collection::<bson::Document>("call_logs")
        .find(bson::doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|doc| doc.get_object_id("_id").unwrap().to_hex())
        .collect()
}

async fn assert_refused(app: &TestApp, call_id: Option<String>, reason: EndReason) {
    let call = app
        .call_log(&call_id.expect("a call log records the refusal"))
        .await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(reason));
    assert!(call.ended_at.is_some());
}

#[tokio::test]
async fn every_refusal_answers_a_hangup_flow_and_records_why() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1).await;
    let admin = app.admin_token();

    // A number nobody holds.
    let id = expect_hangup(&app, &acme.key, "fj-unknown", "+14155559999").await;
    assert_refused(&app, id, EndReason::UnknownNumber).await;
    // No to_number at all.
    let id = expect_hangup(&app, &acme.key, "fj-none", "").await;
    assert_refused(&app, id, EndReason::UnknownNumber).await;

    // An inactive number.
    let path = format!("/api/phone-numbers/{}", acme.number_id);
    expect_status(
        app.patch_as(
            &path,
            &acme.tenant.api_key,
            &json!({ "status": "inactive" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let id = expect_hangup(&app, &acme.key, "fj-inactive", &acme.number).await;
    assert_refused(&app, id, EndReason::NumberInactive).await;
    expect_status(
        app.patch_as(&path, &acme.tenant.api_key, &json!({ "status": "active" }))
            .await,
        StatusCode::OK,
    )
    .await;

    // A number without an assistant.
    let bare = app
        .create_phone_number(&acme.tenant, json!({ "phone_number": "+14155550101" }))
        .await;
    let id = expect_hangup(
        &app,
        &acme.key,
        "fj-bare",
        bare["phone_number"].as_str().unwrap(),
    )
    .await;
    assert_refused(&app, id, EndReason::NumberUnassigned).await;

    // The tenant at its limit of one live call.
    inbound_flow(
        &app,
        &acme.key,
        &flow_body("fj-first", CALLER, &acme.number),
    )
    .await;
    let id = expect_hangup(&app, &acme.key, "fj-second", &acme.number).await;
    assert_refused(&app, id, EndReason::ConcurrencyLimit).await;

    // A suspended tenant.
    let suspend = format!("/api/admin/users/{}/suspend", acme.tenant.id);
    expect_status(
        app.post_as(&suspend, &admin, &json!({})).await,
        StatusCode::OK,
    )
    .await;
    let id = expect_hangup(&app, &acme.key, "fj-suspended", &acme.number).await;
    assert_refused(&app, id, EndReason::TenantSuspended).await;

    // A tenant without an OpenAI key.
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    let assistant = app
        .create_assistant(&beta, json!({ "name": "Beta desk" }))
        .await;
    app.create_phone_number(
        &beta,
        json!({ "phone_number": "+14155550200", "assistant_id": assistant["id"] }),
    )
    .await;
    let beta_key = app.frejun_key(&beta).await;
    let id = expect_hangup(&app, &beta_key, "fj-nokey", "+14155550200").await;
    assert_refused(&app, id, EndReason::MissingCredentials).await;
}

#[tokio::test]
async fn a_missing_wrong_or_foreign_key_answers_401_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    let body = flow_body("fj-x", CALLER, &acme.number);

    for key in [None, Some(""), Some("not-a-key"), Some(beta.key.as_str())] {
        expect_error(
            app.post_flow(key, None, &body).await,
            StatusCode::UNAUTHORIZED,
            "invalid_frejun_key",
        )
        .await;
    }
    // Garbage is refused as unauthenticated before it is parsed.
    let response = app
        .request(Method::POST, "/api/frejun/flow")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_frejun_key").await;
    assert_eq!(app.count("call_logs").await, 0);
    assert_eq!(app.count("call_slots").await, 0);

    // With the right key, garbage is a clear 400.
    let response = app
        .request(Method::POST, &format!("/api/frejun/flow?key={}", acme.key))
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_eq!(app.count("call_logs").await, 0);
}

#[tokio::test]
async fn a_retried_flow_answers_the_same_call_without_a_second_slot() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let body = flow_body("fj-retry", CALLER, &acme.number);
    let first = expect_status(
        app.post_flow(Some(&acme.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    let second = expect_status(
        app.post_flow(Some(&acme.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    let (first_call, _) = ws_url_parts(&app, &first, &acme.assistant_id);
    let (second_call, _) = ws_url_parts(&app, &second, &acme.assistant_id);
    assert_eq!(first_call, second_call);
    assert_eq!(app.count("call_logs").await, 1);
    let held = app.held_slots(&acme).await;
    assert_eq!(held.len(), 1);
}

#[tokio::test]
async fn twenty_simultaneous_flows_for_a_tenant_limited_to_five_admit_exactly_five() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let requests = (0..20).map(|n| {
        let body = flow_body(&format!("fj-burst-{n}"), CALLER, &acme.number);
        let app = &app;
        let key = acme.key.clone();
        async move {
            let response = app.post_flow(Some(&key), None, &body).await;
            expect_status(response, StatusCode::OK).await
        }
    });
    let flows = futures_util::future::join_all(requests).await;
    let streams = flows
        .iter()
        .filter(|flow| flow["action"] == "stream")
        .count();
    let hangups = flows
        .iter()
        .filter(|flow| flow["action"] == "hangup")
        .count();
    assert_eq!((streams, hangups), (5, 15));

    let held = app.held_slots(&acme).await;
    assert_eq!(held.len(), 5);
    let refused = app
        .storage
        .collection::<bson::Document>("call_logs")
        .count_documents(bson::doc! { "end_reason": "concurrency_limit", "call_status": "failed" })
        .await
        .unwrap();
    assert_eq!(refused, 15);
    assert_eq!(app.count("call_logs").await, 20);
}

#[tokio::test]
async fn an_outbound_flow_finds_its_existing_call() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let mut call = call_record(
        acme.tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::Initiated,
    );
    call.call_type = CallType::Outbound;
    call.assistant_id = Some(oid(&acme.assistant_id));
    app.insert_call(&call).await;
    let our_id = call.id.to_hex();

    // FreJun fetches the flow before we stored its call id.
    let mut body = flow_body("fj-out-1", &acme.number, CALLER);
    body["direction"] = json!("outbound");
    let flow = expect_status(
        app.post_flow(Some(&acme.key), Some(&our_id), &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "stream");
    let (call_id, token) = ws_url_parts(&app, &flow, &acme.assistant_id);
    assert_eq!(call_id, our_id);
    assert_eq!(
        media_tokens(&app).verify(&token, &our_id, &acme.assistant_id, SystemTime::now()),
        Ok(())
    );
    let stored = app.call_log(&our_id).await;
    assert_eq!(stored.frejun_call_id.as_deref(), Some("fj-out-1"));
    assert_eq!(stored.call_status, CallStatus::InProgress);
    assert_eq!(app.count("call_logs").await, 1, "no second call log");

    // Another tenant's key does not reach it; an unknown call id hangs up.
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    let flow = expect_status(
        app.post_flow(Some(&beta.key), Some(&our_id), &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow, json!({ "action": "hangup" }));
    let unknown = bson::oid::ObjectId::new().to_hex();
    let flow = expect_status(
        app.post_flow(Some(&acme.key), Some(&unknown), &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow, json!({ "action": "hangup" }));
    assert_eq!(
        app.call_log(&our_id).await.call_status,
        CallStatus::InProgress
    );
}

#[tokio::test]
async fn a_call_whose_media_never_arrives_is_closed_and_frees_its_slot() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 1).await;
    let flow = inbound_flow(
        &app,
        &acme.key,
        &flow_body("fj-silent", CALLER, &acme.number),
    )
    .await;
    let (call_id, _) = ws_url_parts(&app, &flow, &acme.assistant_id);

    let service = CallService::new(Shared::new(app.settings.clone(), app.storage.clone()));
    // Before the lease runs out, nothing happens.
    assert_eq!(
        service.reap_expired(bson::DateTime::now()).await.unwrap(),
        0
    );
    // After it, the call is closed and the slot freed.
    let later = bson::DateTime::from_millis(
        bson::DateTime::now().timestamp_millis()
            + 1000 * (app.settings.frejun.media_arrival_timeout_secs as i64 + 1),
    );
    assert_eq!(service.reap_expired(later).await.unwrap(), 1);
    let call = app.call_log(&call_id).await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::MediaNeverArrived));
    let held = app.held_slots(&acme).await;
    assert!(held.is_empty());
    // The freed slot admits the next call.
    let flow = inbound_flow(&app, &acme.key, &flow_body("fj-next", CALLER, &acme.number)).await;
    assert_eq!(flow["action"], "stream");
}

#[tokio::test]
async fn tenants_created_before_the_key_index_get_it_at_startup() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    app.storage
        .collection::<bson::Document>("users")
        .update_one(
            bson::doc! { "_id": acme.tenant.object_id() },
            bson::doc! { "$unset": { "secrets.frejun_url_secret_hash": "" } },
        )
        .await
        .unwrap();
    let body = flow_body("fj-old", CALLER, &acme.number);
    expect_error(
        app.post_flow(Some(&acme.key), None, &body).await,
        StatusCode::UNAUTHORIZED,
        "invalid_frejun_key",
    )
    .await;

    let keyring = app.settings.security.keyring();
    let users = app.storage.users();
    assert_eq!(users.backfill_url_secret_hashes(&keyring).await.unwrap(), 1);
    assert_eq!(users.backfill_url_secret_hashes(&keyring).await.unwrap(), 0);
    let flow = expect_status(
        app.post_flow(Some(&acme.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "stream");
}

#[tokio::test]
async fn oversized_input_is_refused_or_dropped_without_failing_the_call() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    // A call id longer than any real one is ignored; the call still goes ahead.
    let body = flow_body(&"x".repeat(5_000), &"9".repeat(3_000), &acme.number);
    let flow = expect_status(
        app.post_flow(Some(&acme.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "stream");
    let (call_id, _) = ws_url_parts(&app, &flow, &acme.assistant_id);
    let call = app.call_log(&call_id).await;
    assert_eq!(call.frejun_call_id, None);
    assert_eq!(call.from_number, None);

    // A body over the limit is refused before it is read whole.
    let huge = json!({ "call_id": "fj", "pad": "y".repeat(2 * 1024 * 1024) });
    let response = app.post_flow(Some(&acme.key), None, &huge).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

/// A FreJun call id is unique per tenant: a tenant that registered an id first (by guess or by
/// copying it) does not make another tenant's real call with that id hang up, and each
/// tenant's webhooks reach only its own call.
#[tokio::test]
async fn the_same_frejun_call_id_at_two_tenants_is_two_separate_calls() {
    let app = TestApp::spawn().await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let beta = app.calling_tenant("Beta", "+14155550200", 5).await;
    let squatted = inbound_flow(
        &app,
        &beta.key,
        &flow_body("fj-shared", CALLER, &beta.number),
    )
    .await;
    assert_eq!(squatted["action"], "stream");
    let real = inbound_flow(
        &app,
        &acme.key,
        &flow_body("fj-shared", CALLER, &acme.number),
    )
    .await;
    assert_eq!(real["action"], "stream", "{real}");
    let (acme_call, _) = ws_url_parts(&app, &real, &acme.assistant_id);
    let (beta_call, _) = ws_url_parts(&app, &squatted, &beta.assistant_id);
    assert_ne!(acme_call, beta_call);
    assert_eq!(app.held_slots(&acme).await.len(), 1);

    // A retry of Acme's flow answers Acme's call, not a third one.
    let retried = inbound_flow(
        &app,
        &acme.key,
        &flow_body("fj-shared", CALLER, &acme.number),
    )
    .await;
    assert_eq!(
        ws_url_parts(&app, &retried, &acme.assistant_id).0,
        acme_call
    );
    assert_eq!(app.count("call_logs").await, 2);

    // Beta's webhook ends Beta's call only.
    let completed = json!({
        "event": "call.completed",
        "data": { "call_id": "fj-shared", "duration": 3 },
    });
    expect_status(
        app.post_webhook(Some(&beta.key), None, &completed).await,
        StatusCode::OK,
    )
    .await;
    assert!(app.call_log(&beta_call).await.call_status.is_terminal());
    assert_eq!(
        app.call_log(&acme_call).await.call_status,
        CallStatus::Initiated
    );
}
