//! A call voxbridge ends is hung up at FreJun too (closing the media stream is not documented
//! to end the phone call): through the fake Teler, with the end reason in FreJun's spelling, a
//! stable idempotency key, retries on 5xx, and the outcome on the call log. A call the caller
//! ended is not hung up again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::EndReason;
use voxbridge::domain::call::record::HangupResult;
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi, Mode};
use voxbridge::sim::fake_teler::{Failure, FakeTeler};
use voxbridge::storage::call_logs::CallLogRecord;

use super::{CALLER_NUMBER, ended_call, place_call};
use crate::helpers::{CallingTenant, TestApp, expect_status};

/// The FreJun key `calling_tenant` stores.
const FREJUN_KEY: &str = "fj-test-key-0001";

/// An app whose OpenAI and Teler are fakes.
async fn app_with_teler() -> (TestApp, FakeOpenAi, FakeTeler) {
    let openai = FakeOpenAi::start(Behaviour::with_mode(Mode::Echo))
        .await
        .unwrap();
    let teler = FakeTeler::start().await.unwrap();
    let (realtime, teler_url) = (openai.url(), teler.base_url());
    let app = TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = realtime;
        settings.frejun.api_base_url = teler_url;
        settings.bridge.heartbeat_interval_secs = 1;
        settings.bridge.peer_timeout_secs = 3;
        settings.bridge.log_flush_interval_ms = 200;
    })
    .await;
    (app, openai, teler)
}

async fn limit_to_one_second(app: &TestApp, tenant: &CallingTenant) {
    expect_status(
        app.patch_as(
            &format!("/api/assistants/{}", tenant.assistant_id),
            &tenant.tenant.api_key,
            &json!({"max_call_seconds": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

/// The call log once its hang-up is recorded (polls up to 10 s).
async fn hung_up_call(app: &TestApp, call_id: &str) -> CallLogRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let call = app.call_log(call_id).await;
        if call.hangup.is_some() {
            return call;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hang-up recorded: {call:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_call_ended_at_its_maximum_duration_is_hung_up_at_frejun() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Capped", "+14155550501", 5).await;
    limit_to_one_second(&app, &tenant).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);

    let (call_id, caller) = place_call(&app, &tenant, &frejun_call.id).await;
    caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    // The final status and the hang-up are separate writes; wait for both.
    ended_call(&app, &call_id, Duration::from_secs(10)).await;
    let call = hung_up_call(&app, &call_id).await;
    assert_eq!(call.end_reason, Some(EndReason::MaxDuration));
    let hangup = call.hangup.unwrap();
    assert_eq!(hangup.result, HangupResult::HungUp);
    assert_eq!(hangup.reason, "MAX_DURATION");
    assert_eq!(hangup.attempts, 1);

    let at_frejun = &teler.calls()[0];
    assert!(at_frejun.hung_up, "the phone call ended at FreJun");
    assert_eq!(at_frejun.hangup_reason.as_deref(), Some("MAX_DURATION"));
    assert_eq!(
        at_frejun.hangup_key.as_deref(),
        Some(format!("voxbridge-hangup-{call_id}").as_str())
    );

    let detail = expect_status(
        app.get_as(&format!("/api/calls/{call_id}"), &tenant.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["data"]["hangup"]["result"], "hung_up");
    assert_eq!(detail["data"]["hangup"]["reason"], "MAX_DURATION");
}

#[tokio::test]
async fn a_failing_frejun_is_retried_with_the_same_idempotency_key() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Retried", "+14155550502", 5).await;
    limit_to_one_second(&app, &tenant).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    teler.fail_next(2, Failure::ServerError(502));

    let (call_id, caller) = place_call(&app, &tenant, &frejun_call.id).await;
    caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let hangup = hung_up_call(&app, &call_id).await.hangup.unwrap();
    assert_eq!(hangup.result, HangupResult::HungUp);
    assert_eq!(hangup.attempts, 3);
    let keys: Vec<String> = teler
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/hangup"))
        .map(|request| request.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
}

#[tokio::test]
async fn without_a_frejun_key_the_call_log_says_why_nothing_was_hung_up() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Keyless", "+14155550503", 5).await;
    limit_to_one_second(&app, &tenant).await;
    // A tenant that only takes calls needs no FreJun key; this one never stored one.
    app.storage
        .collection::<bson::Document>("users")
        .update_one(
            bson::doc! { "_id": tenant.tenant.object_id() },
            bson::doc! { "$unset": { "secrets.frejun_api_key": "" } },
        )
        .await
        .unwrap();

    let (call_id, caller) = place_call(&app, &tenant, "fj-keyless").await;
    caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let hangup = hung_up_call(&app, &call_id).await.hangup.unwrap();
    assert_eq!(hangup.result, HangupResult::NoFrejunKey);
    assert_eq!(hangup.attempts, 0);
    assert!(hangup.detail.unwrap().contains("no FreJun API key"));
    assert!(teler.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_call_the_caller_ended_is_not_hung_up_again() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Caller", "+14155550504", 5).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, caller) = place_call(&app, &tenant, &frejun_call.id).await;
    caller.hang_up().await.unwrap();
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    // Give a wrongly spawned hang-up the time it would need.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.call_log(&call_id).await.hangup.is_none());
    assert!(teler.requests().is_empty());
}

#[tokio::test]
async fn a_call_whose_media_never_arrived_is_hung_up_by_the_reaper() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Silent", "+14155550505", 5).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let flow = super::stream_flow(&app, &tenant, &frejun_call.id).await;
    let call_id = super::call_id_of(&flow);

    // Nobody opens the stream; once the lease is past, a sweep closes the call.
    let later = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() + 3_600_000);
    let calls = voxbridge::calls::CallService::new(voxbridge::shared::Shared::new(
        app.settings.clone(),
        app.storage.clone(),
    ));
    assert_eq!(calls.reap_expired(later).await.unwrap(), 1);
    let call = hung_up_call(&app, &call_id).await;
    assert_eq!(call.end_reason, Some(EndReason::MediaNeverArrived));
    // FreJun was asked first, and said the call was still up.
    assert!(
        call.status_history
            .iter()
            .any(|event| event.event.as_deref() == Some("teler.state:answered")),
        "{:?}",
        call.status_history
    );
    assert_eq!(call.hangup.unwrap().reason, "MEDIA_NEVER_ARRIVED");
    assert!(teler.calls()[0].hung_up);
}

/// A call whose end FreJun reported in a webhook that never arrived: before declaring it lost,
/// the reaper asks FreJun, records what it says, and does not hang up a call that is over.
#[tokio::test]
async fn the_reaper_asks_frejun_before_declaring_a_call_lost() {
    let (app, _openai, teler) = app_with_teler().await;
    let tenant = app.calling_tenant("Missed", "+14155550506", 5).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let flow = super::stream_flow(&app, &tenant, &frejun_call.id).await;
    let call_id = super::call_id_of(&flow);
    teler.end_call(&frejun_call.id);

    let later = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() + 3_600_000);
    let calls = voxbridge::calls::CallService::new(voxbridge::shared::Shared::new(
        app.settings.clone(),
        app.storage.clone(),
    ));
    assert_eq!(
        calls.reap_expired(later).await.unwrap(),
        1,
        "the slot is freed"
    );
    let call = app.call_log(&call_id).await;
    assert_eq!(
        call.call_status,
        voxbridge::domain::call::CallStatus::Completed
    );
    assert_eq!(
        call.end_reason,
        Some(EndReason::Completed),
        "not lost: over"
    );
    assert!(
        call.status_history
            .iter()
            .any(|event| event.event.as_deref() == Some("teler.state:completed"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.call_log(&call_id).await.hangup.is_none());
    assert!(
        !teler
            .requests()
            .iter()
            .any(|request| request.path.ends_with("/hangup")),
        "a call that is over is not hung up"
    );
}
