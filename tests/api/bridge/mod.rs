//! The media bridge end to end over real sockets: a simulated FreJun caller → voxbridge → the
//! fake OpenAI Realtime server, with a real MongoDB. Audio is checked by frequency, protocol
//! events by the fake's and the caller's own validation, and outcomes in the call log.

mod audio;
mod claims;
mod compatible_endpoint;
mod context;
mod control;
mod elevenlabs;
mod failures;
mod flood;
mod hangups;
mod session_limit;
mod shutdown;
mod slots;
mod tools;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::sim::caller::{CallerConfig, SimulatedCaller};
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi};
use voxbridge::storage::call_logs::CallLogRecord;

use crate::helpers::{CallingTenant, TestApp, expect_status, flow_body};

pub const CALLER_NUMBER: &str = "+14155550100";

/// An app whose OpenAI is the fake, with short timers so failures show up quickly.
pub async fn bridge_app(behaviour: Behaviour) -> (TestApp, FakeOpenAi) {
    bridge_app_with(behaviour, |_| {}).await
}

/// Like [`bridge_app`], after letting the test adjust the settings.
pub async fn bridge_app_with(
    behaviour: Behaviour,
    adjust: impl FnOnce(&mut voxbridge::settings::Settings),
) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(behaviour)
        .await
        .expect("fake OpenAI starts");
    let url = fake.url();
    let app = TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = url;
        settings.openai.connect_timeout_ms = 2_000;
        settings.bridge.heartbeat_interval_secs = 1;
        settings.bridge.peer_timeout_secs = 3;
        settings.bridge.log_flush_interval_ms = 200;
        adjust(settings);
    })
    .await;
    (app, fake)
}

/// Sets the tenant's assistant's audio (and greeting).
pub async fn configure_assistant(
    app: &TestApp,
    tenant: &CallingTenant,
    codec: &str,
    inbound_rate: &str,
    greeting: Option<&str>,
) {
    let body = json!({
        "audio": { "codec": codec, "inbound_rate": inbound_rate, "inbound_chunk_ms": 100, "outbound_chunk_ms": 200 },
        "greeting": greeting,
        "transcription": { "model": "gpt-live-transcribe" },
    });
    let path = format!("/api/assistants/{}", tenant.assistant_id);
    expect_status(
        app.patch_as(&path, &tenant.tenant.api_key, &body).await,
        StatusCode::OK,
    )
    .await;
}

/// FreJun's flow for an inbound call to the tenant's number.
pub async fn stream_flow(app: &TestApp, tenant: &CallingTenant, frejun_call_id: &str) -> Value {
    let body = flow_body(frejun_call_id, CALLER_NUMBER, &tenant.number);
    let flow = expect_status(
        app.post_flow(Some(&tenant.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "stream", "{flow}");
    flow
}

/// Our call id in a flow's `ws_url`.
pub fn call_id_of(flow: &Value) -> String {
    let url = url::Url::parse(flow["ws_url"].as_str().expect("ws_url")).expect("a URL");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    query["call_id"].clone()
}

/// Places an inbound call and opens its media stream (with `start` sent).
pub async fn place_call(
    app: &TestApp,
    tenant: &CallingTenant,
    frejun_call_id: &str,
) -> (String, SimulatedCaller) {
    let flow = stream_flow(app, tenant, frejun_call_id).await;
    let config = CallerConfig::from_flow(&flow, frejun_call_id).expect("a stream flow");
    let mut caller = SimulatedCaller::connect(config, Duration::from_secs(5))
        .await
        .expect("the media stream opens");
    caller.send_start().await.expect("start sent");
    (call_id_of(&flow), caller)
}

/// The call log once the bridge has written its end (polls up to `timeout`).
pub async fn ended_call(app: &TestApp, call_id: &str, timeout: Duration) -> CallLogRecord {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let call = app.call_log(call_id).await;
        let bridge_ended = call
            .status_history
            .iter()
            .any(|event| event.event.as_deref() == Some("media.ended"));
        if bridge_ended && call.metrics.is_some() {
            return call;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the bridge did not record the end of call {call_id}: {call:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that the tenant's slots are all freed (the keeper frees a call's slot just after its
/// final status write, so this polls briefly).
pub async fn assert_slots_freed(app: &TestApp, tenant: &CallingTenant) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !app.held_slots(tenant).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not freed: {:?}",
            app.held_slots(tenant).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that neither fake saw a protocol violation.
pub fn assert_no_violations(fake: &FakeOpenAi, received: &voxbridge::sim::caller::Received) {
    assert!(
        fake.violations().is_empty(),
        "OpenAI fake: {:?}",
        fake.violations()
    );
    assert!(
        received.violations.is_empty(),
        "FreJun caller: {:?}",
        received.violations
    );
}

/// The caller says one second of a 1 kHz tone at `rate_hz` and then keeps quiet for a second
/// (which ends its turn); answers whether at least `samples` of the echo came back (8 kHz) within
/// 10 s. The audio goes as fast as the bridge takes it (see [`tone_then_hear_echo_paced`]).
pub async fn tone_then_hear_echo(
    caller: &mut voxbridge::sim::caller::SimulatedCaller,
    rate_hz: u32,
    samples: u64,
) -> bool {
    tone_then_hear_echo_paced(caller, rate_hz, samples, false).await
}

/// [`tone_then_hear_echo`], with the audio `paced` in real time as FreJun sends it when asked:
/// a turn spoken over an answer is then a barge-in the bridge handles before the turn ends.
pub async fn tone_then_hear_echo_paced(
    caller: &mut voxbridge::sim::caller::SimulatedCaller,
    rate_hz: u32,
    samples: u64,
    paced: bool,
) -> bool {
    use voxbridge::audio::tone::sine;
    caller
        .send_audio(&sine(1_000.0, rate_hz, rate_hz as usize, 8_000.0), paced)
        .await
        .expect("audio sent");
    caller
        .send_silence(1_000, paced)
        .await
        .expect("silence sent");
    caller
        .wait_until(Duration::from_secs(10), |received| {
            received.audio_samples >= samples
        })
        .await
}
