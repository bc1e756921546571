//! Audio through an ElevenLabs agent: the caller's tone reaches the agent in the agent's own
//! input format, sample for sample when that is FreJun's rate, and the agent's speech comes
//! back to the caller at 8 kHz at the same frequency, whatever the agent's output rate.

use std::time::Duration;

use serde_json::json;
use voxbridge::audio::tone::{level_dbfs, sine};
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_elevenlabs::{AgentConfig, AudioFormat, Behaviour};

use super::{World, public_agent, transcript, turn, use_agent, world};
use crate::bridge::{assert_slots_freed, ended_call, place_call};

/// The agent's first message, spoken (as the fake's default 300 ms 660 Hz tone) at the start.
const FIRST_MESSAGE: &str = "Hello from the echo agent.";

/// One round trip: a FreJun flow at `inbound_rate` talking to an echoing agent with these
/// formats.
struct Case {
    inbound_rate: &'static str,
    rate_hz: u32,
    input: AudioFormat,
    output: AudioFormat,
    number: &'static str,
}

/// The caller's 1 kHz tone: one second at the flow's rate, at -12 dBFS.
fn tone(rate_hz: u32) -> Vec<i16> {
    sine(1_000.0, rate_hz, rate_hz as usize, 8_000.0)
}

async fn tone_round_trip(case: Case) {
    let w: World = world(Behaviour::default()).await;
    w.elevenlabs.add_agent(
        AgentConfig::new("agent_echo")
            .formats(case.input, case.output)
            .first_message(FIRST_MESSAGE),
    );
    let tenant = w.app.calling_tenant("ElevenEcho", case.number, 5).await;
    use_agent(
        &w.app,
        &tenant,
        case.inbound_rate,
        public_agent("agent_echo"),
        json!({}),
    )
    .await;
    let (call_id, mut caller) =
        place_call(&w.app, &tenant, &format!("fj-el-{}", case.number)).await;

    // Audio sent before the agent announces its formats is buffered and bounded, so the tone
    // waits until a first chunk (100 ms of silence) has reached the agent and the greeting and
    // that chunk's echo have played: then the tone starts at known offsets on both sides.
    caller.send_silence(100, false).await.unwrap();
    w.wait_for("the first chunk reached the agent", |s| {
        s.audio_in_chunks >= 1
    })
    .await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |r| r.audio_samples >= 3_000)
            .await,
        "the greeting and the first echo came back: {}",
        caller.received().audio_samples
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard_before = caller.received().audio.len();
    let at_agent_before = w.elevenlabs.sessions()[0].audio_in.len();

    // Paced, as FreJun streams: voxbridge drops caller audio far ahead of real time.
    let sent = tone(case.rate_hz);
    caller.send_audio(&sent, true).await.unwrap();
    caller.send_silence(1_000, true).await.unwrap();

    // At the agent: its own input format, which is FreJun's rate here, so the very samples
    // sent (any resampling would change them).
    let rate = case.rate_hz as usize;
    let session = w
        .wait_for("the tone and the silence reached the agent", |s| {
            s.audio_in.len() >= at_agent_before + 2 * rate
        })
        .await;
    assert_eq!(session.input_format, case.input);
    assert_eq!(session.output_format, case.output);
    assert!(!session.signed, "a public agent needs no signed URL");
    let at_agent = &session.audio_in[at_agent_before..at_agent_before + rate];
    let first_difference = at_agent.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the tone reached the agent unchanged"
    );
    let level = level_dbfs(at_agent, 1_000.0, case.rate_hz);
    assert!(level > -15.0, "1 kHz at the agent: {level:.1} dBFS");

    // Back at the caller: 8 kHz, 1 kHz, and nothing of the greeting's 660 Hz any more.
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |r| r.audio.len()
                >= heard_before + 12_000)
            .await,
        "the echo came back: {} samples",
        caller.received().audio.len() - heard_before
    );
    let received = caller.received();
    let heard = &received.audio[heard_before + 800..heard_before + 7_200];
    let level = level_dbfs(heard, 1_000.0, 8_000);
    assert!(level > -15.0, "1 kHz back at the caller: {level:.1} dBFS");
    for other in [660.0, 3_000.0] {
        let leak = level_dbfs(heard, other, 8_000);
        assert!(
            leak < level - 40.0,
            "{other} Hz at the caller: {leak:.1} dBFS vs {level:.1}"
        );
    }
    assert!(received.chunk_ids.windows(2).all(|pair| pair[0] < pair[1]));

    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(call.answered_at.is_some() && call.ended_at.is_some());
    let metrics = call.metrics.as_ref().expect("metrics");
    assert!(metrics.audio_in_ms >= 2_000, "{metrics:?}");
    assert!(metrics.audio_out_ms >= 1_200, "{metrics:?}");
    assert!(metrics.first_response_ms.is_some(), "{metrics:?}");
    assert!(metrics.frame_latency_p50_us.is_some() && metrics.frame_latency_p99_us.is_some());
    // Echo mode has no turns: the transcript is the agent's first message.
    assert_eq!(transcript(&call), [turn("assistant", FIRST_MESSAGE, false)]);
    assert_slots_freed(&w.app, &tenant).await;
}

#[tokio::test]
async fn an_8_khz_tone_reaches_a_pcm_8000_agent_unchanged_and_comes_back_at_1_khz() {
    tone_round_trip(Case {
        inbound_rate: "8k",
        rate_hz: 8_000,
        input: AudioFormat::Pcm(8_000),
        output: AudioFormat::Pcm(8_000),
        number: "+14155550801",
    })
    .await;
}

#[tokio::test]
async fn a_16_khz_tone_reaches_a_pcm_16000_agent_unchanged_and_comes_back_at_1_khz() {
    tone_round_trip(Case {
        inbound_rate: "16k",
        rate_hz: 16_000,
        input: AudioFormat::Pcm(16_000),
        output: AudioFormat::Pcm(8_000),
        number: "+14155550802",
    })
    .await;
}

#[tokio::test]
async fn an_agent_speaking_pcm_44100_is_resampled_to_8_khz_for_the_caller() {
    tone_round_trip(Case {
        inbound_rate: "8k",
        rate_hz: 8_000,
        input: AudioFormat::Pcm(8_000),
        output: AudioFormat::Pcm(44_100),
        number: "+14155550803",
    })
    .await;
}

#[tokio::test]
async fn an_agent_speaking_pcm_24000_on_a_16_khz_flow_is_resampled_to_8_khz_for_the_caller() {
    tone_round_trip(Case {
        inbound_rate: "16k",
        rate_hz: 16_000,
        input: AudioFormat::Pcm(16_000),
        output: AudioFormat::Pcm(24_000),
        number: "+14155550804",
    })
    .await;
}
