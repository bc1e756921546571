//! Audio through the bridge: a tone sent by the caller reaches OpenAI at 24 kHz (or as μ-law)
//! and comes back to the caller at 8 kHz, at the same frequency; the call log records it.

use std::time::Duration;

use voxbridge::audio::tone::{level_dbfs, sine};
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_openai::{Behaviour, Mode, ResponseStatus};

use reqwest::StatusCode;

use super::{
    assert_no_violations, assert_slots_freed, bridge_app, configure_assistant, ended_call,
    place_call,
};
use crate::helpers::expect_status;

/// Sends one second of a 1 kHz tone at `inbound_rate` and a second of silence (which ends the
/// caller's turn), then checks the tone at the fake and back at the caller.
async fn tone_round_trip(codec: &str, inbound_rate: &str, rate_hz: u32) {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Echo", "+14155550201", 5).await;
    configure_assistant(&app, &tenant, codec, inbound_rate, None).await;
    let (call_id, mut caller) =
        place_call(&app, &tenant, &format!("fj-echo-{codec}-{rate_hz}")).await;

    caller
        .send_audio(&sine(1_000.0, rate_hz, rate_hz as usize, 8_000.0), false)
        .await
        .unwrap();
    caller.send_silence(1_000, false).await.unwrap();
    let echoed = caller
        .wait_until(Duration::from_secs(10), |received| {
            received.audio_samples >= 7_600
        })
        .await;
    assert!(
        echoed,
        "the echo came back: {:?}",
        caller.received().audio_samples
    );

    // At OpenAI: the declared format, and the tone at 1 kHz.
    let session = &fake.sessions()[0];
    let (expected_rate, format) = match codec {
        "pcmu" => (8_000, "audio/pcmu"),
        _ => (24_000, "audio/pcm"),
    };
    assert_eq!(session.input_rate_hz, expected_rate);
    assert_eq!(session.session["audio"]["input"]["format"]["type"], format);
    let at_ai = &session.input_audio_24k;
    let tone_part = &at_ai[expected_rate as usize / 10..expected_rate as usize * 9 / 10];
    let level = level_dbfs(tone_part, 1_000.0, expected_rate);
    assert!(level > -15.0, "1 kHz at OpenAI: {level:.1} dBFS");
    for other in [500.0, 2_000.0, 3_000.0] {
        let leak = level_dbfs(tone_part, other, expected_rate);
        assert!(
            leak < level - 40.0,
            "{other} Hz at OpenAI: {leak:.1} dBFS vs {level:.1}"
        );
    }

    // Back at the caller: 8 kHz, 1 kHz, whatever the inbound rate.
    let received = caller.received();
    let heard = &received.audio[800..7_200];
    let level = level_dbfs(heard, 1_000.0, 8_000);
    assert!(level > -15.0, "1 kHz back at the caller: {level:.1} dBFS");
    assert!(level_dbfs(heard, 3_000.0, 8_000) < level - 40.0);
    assert!(received.chunk_ids.windows(2).all(|pair| pair[0] < pair[1]));

    // Hang up once OpenAI has reported the answer's usage (a caller hanging up earlier leaves
    // it unknown, which is right, but not what this test is about).
    assert!(
        fake.wait_until(Duration::from_secs(5), |sessions| {
            sessions[0]
                .responses
                .iter()
                .any(|r| r.status == ResponseStatus::Completed)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(call.ended_at.is_some() && call.answered_at.is_some());
    let metrics = call.metrics.expect("metrics");
    assert!(metrics.audio_in_ms >= 2_000, "{metrics:?}");
    assert!(metrics.audio_out_ms >= 950, "{metrics:?}");
    assert!(metrics.frame_latency_p50_us.is_some() && metrics.frame_latency_p99_us.is_some());
    assert!(metrics.first_response_ms.is_some());
    let usage = call.usage.expect("usage recorded");
    assert!(usage.output_audio_tokens > 0, "{usage:?}");
    assert!(call.cost_usd.is_some_and(|cost| cost > 0.0));
    let roles: Vec<&str> = call
        .transcript
        .iter()
        .map(|turn| turn.role.as_str())
        .collect();
    assert!(
        roles.contains(&"user") && roles.contains(&"assistant"),
        "{:?}",
        call.transcript
    );
    assert_slots_freed(&app, &tenant).await;
}

#[tokio::test]
async fn a_tone_at_8_khz_reaches_openai_at_24_khz_and_comes_back_at_8_khz() {
    tone_round_trip("pcm24k", "8k", 8_000).await;
}

#[tokio::test]
async fn a_tone_at_16_khz_reaches_openai_at_24_khz_and_comes_back_at_8_khz() {
    tone_round_trip("pcm24k", "16k", 16_000).await;
}

#[tokio::test]
async fn a_pcmu_call_passes_mu_law_both_ways() {
    tone_round_trip("pcmu", "8k", 8_000).await;
}

#[tokio::test]
async fn the_greeting_is_spoken_first_and_the_session_is_configured_from_the_assistant() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Greeter", "+14155550202", 5).await;
    configure_assistant(
        &app,
        &tenant,
        "pcm24k",
        "8k",
        Some("Welcome to the bakery!"),
    )
    .await;
    let persona = "You are Ava of the Acme bakery. Speak only Hindi, and never discuss prices.";
    expect_status(
        app.patch_as(
            &format!("/api/assistants/{}", tenant.assistant_id),
            &tenant.tenant.api_key,
            &serde_json::json!({ "instructions": persona }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-greeting").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 3_000)
            .await,
        "the greeting is heard"
    );
    let session = &fake.sessions()[0];
    assert_eq!(
        session.api_key, "sk-test-openai-0001",
        "the tenant's own key"
    );
    assert_eq!(session.model, "gpt-realtime-2.1");
    let kinds: Vec<&str> = session
        .events
        .iter()
        .map(|event| event.kind.as_str())
        .collect();
    assert_eq!(kinds[0], "session.update");
    assert!(kinds.contains(&"response.create"));
    let effective = &session.session;
    assert_eq!(effective["type"], "realtime");
    assert_eq!(
        effective["audio"]["input"]["turn_detection"]["create_response"],
        true
    );
    assert_eq!(
        effective["audio"]["input"]["turn_detection"]["interrupt_response"],
        false
    );
    assert_eq!(
        effective["audio"]["input"]["transcription"]["model"],
        "gpt-live-transcribe"
    );
    // The greeting keeps the persona: it is asked for with a system message and a plain
    // response.create, so the response runs under the assistant's own instructions (a
    // response.create carrying instructions would have replaced them).
    let create = session.events_of("response.create").next().unwrap();
    assert!(create.json.get("response").is_none(), "{}", create.json);
    let greeting = &session.responses[0];
    assert_eq!(greeting.instructions, persona);
    let request = greeting
        .previous_item
        .as_ref()
        .expect("the greeting request");
    assert_eq!(request["role"], "system");
    assert!(
        request["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Welcome to the bakery!"),
        "{request}"
    );
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    ended_call(&app, &call_id, Duration::from_secs(10)).await;
}

/// The sizes, in ms, of the audio chunks the caller received.
fn chunk_ms(received: &voxbridge::sim::caller::Received) -> Vec<u64> {
    received
        .events
        .iter()
        .filter_map(|event| match event {
            voxbridge::sim::caller::ReceivedEvent::Audio { samples, .. } => Some(samples / 8),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_first_chunk_of_an_answer_is_small_and_later_ones_grow_to_the_playback_size() {
    let turns = vec![voxbridge::sim::fake_openai::ScriptedTurn::tone(
        "Hello there.",
        440.0,
        2_000,
    )];
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Scripted { turns })).await;
    let tenant = app.calling_tenant("Chunks", "+14155550203", 5).await;
    // outbound_chunk_ms 200; bridge.playback_chunk_ms is 500 by default.
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hello!")).await;
    let (_call_id, caller) = place_call(&app, &tenant, "fj-chunks").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 16_000)
            .await,
        "the whole answer is heard"
    );
    let summary = caller.hang_up().await.unwrap();
    let sizes = chunk_ms(&summary.received);
    assert_eq!(
        &sizes[..4],
        [200, 400, 500, 500],
        "first audio at once, then FreJun's recommended size: {sizes:?}"
    );
    assert!(sizes.iter().all(|ms| *ms <= 500), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), 2_000);
    assert_no_violations(&fake, &summary.received);
}

#[tokio::test]
async fn the_nested_audio_shape_is_sent_when_the_deployment_asks_for_it() {
    let fake = voxbridge::sim::fake_openai::FakeOpenAi::start(Behaviour::with_mode(Mode::Echo))
        .await
        .unwrap();
    let realtime = fake.url();
    let app = crate::helpers::TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = realtime;
        settings.frejun.media_message_shape = voxbridge::settings::AudioMessageShape::Nested;
    })
    .await;
    let tenant = app.calling_tenant("Nested", "+14155550204", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hello!")).await;
    let (_call_id, caller) = place_call(&app, &tenant, "fj-nested").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 3_000)
            .await,
        "the greeting is heard"
    );
    let summary = caller.hang_up().await.unwrap();
    assert!(summary.received.audio_chunks > 0);
    assert_eq!(
        summary.received.nested_audio, summary.received.audio_chunks,
        "every audio message in the nested shape"
    );
}
