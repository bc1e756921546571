//! One media stream cannot hurt another: the attack of a stream sending audio far faster than
//! real time, replayed against a neighbour call on the same (single) worker.

use std::time::{Duration, Instant};

use voxbridge::audio::tone::sine;
use voxbridge::domain::call::EndReason;
use voxbridge::sim::caller::{CallerConfig, SimulatedCaller};
use voxbridge::sim::fake_openai::{Behaviour, Mode};

use super::{bridge_app_with, configure_assistant, ended_call, stream_flow};
use crate::helpers::{CallingTenant, TestApp};

/// Opens a call whose caller keeps send and receive timings.
async fn timed_call(app: &TestApp, tenant: &CallingTenant, id: &str) -> (String, SimulatedCaller) {
    let flow = stream_flow(app, tenant, id).await;
    let mut config = CallerConfig::from_flow(&flow, id).expect("a stream flow");
    config.record_timings = true;
    let mut caller = SimulatedCaller::connect(config, Duration::from_secs(5))
        .await
        .expect("the media stream opens");
    caller.send_start().await.expect("start sent");
    let call_id = flow["ws_url"]
        .as_str()
        .and_then(|url| url.split("call_id=").nth(1))
        .and_then(|rest| rest.split('&').next())
        .expect("a call id in the ws_url")
        .to_owned();
    (call_id, caller)
}

/// The median time from sending caller audio to hearing its echo: for each echoed chunk, its
/// arrival minus the moment the caller had sent as much audio (both at 8 kHz here).
fn median_echo_latency(caller: &SimulatedCaller) -> Duration {
    let sent = caller.send_timings();
    let received = caller.received().receive_timings();
    let mut latencies: Vec<Duration> = received
        .iter()
        .filter_map(|(samples, at)| {
            sent.iter()
                .find(|(sent_samples, _)| sent_samples >= samples)
                .map(|(_, sent_at)| at.saturating_duration_since(*sent_at))
        })
        .collect();
    assert!(latencies.len() >= 10, "{} echoes", latencies.len());
    latencies.sort();
    latencies[latencies.len() / 2]
}

/// The neighbour streams three seconds in real time and hears them echoed.
async fn neighbour_call(app: &TestApp, tenant: &CallingTenant, id: &str) -> Duration {
    let (_, mut caller) = timed_call(app, tenant, id).await;
    caller
        .send_audio(&sine(440.0, 8_000, 24_000, 8_000.0), true)
        .await
        .expect("audio sent");
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 20_000)
            .await,
        "the echo comes back"
    );
    let latency = median_echo_latency(&caller);
    caller.hang_up().await.expect("hung up");
    latency
}

#[tokio::test]
async fn a_flooding_stream_forwards_about_real_time_and_spares_its_neighbour() {
    // Chunks kept at the assistant's 200 ms (no growth to 500 ms), so that the echo latency is
    // measured on many small chunks.
    let (app, fake) = bridge_app_with(
        Behaviour {
            record_audio: false,
            ..Behaviour::with_mode(Mode::EchoStream { turn_ms: 0 })
        },
        |settings| settings.bridge.playback_chunk_ms = 200,
    )
    .await;
    let tenant = app.calling_tenant("Flood", "+14155550420", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;

    let quiet = neighbour_call(&app, &tenant, "fj-neighbour-alone").await;

    // The attacker: 100 ms frames and 190 KiB frames of 6 s each at 8 kHz, as fast as the socket
    // takes them, while the neighbour talks.
    let (attack_id, mut attacker) = timed_call(&app, &tenant, "fj-attacker").await;
    let attack = tokio::spawn(async move {
        let frame = {
            let mut bytes = Vec::new();
            voxbridge::audio::pcm::encode_s16le(&[1_000; 48_000], &mut bytes);
            let mut b64 = String::new();
            voxbridge::audio::pcm::encode_base64(&bytes, &mut b64);
            format!(r#"{{"type":"audio","data":{{"audio_b64":"{b64}"}}}}"#)
        };
        let small = {
            let mut bytes = Vec::new();
            voxbridge::audio::pcm::encode_s16le(&[1_000; 800], &mut bytes);
            let mut b64 = String::new();
            voxbridge::audio::pcm::encode_base64(&bytes, &mut b64);
            format!(r#"{{"type":"audio","data":{{"audio_b64":"{b64}"}}}}"#)
        };
        let began = Instant::now();
        let mut sent = 0u64;
        while began.elapsed() < Duration::from_secs(4) {
            let text = if sent % 10 == 9 { &frame } else { &small };
            if attacker.send_text(text).await.is_err() {
                break;
            }
            sent += 1;
        }
        (sent, began.elapsed())
    });
    let busy = neighbour_call(&app, &tenant, "fj-neighbour-busy").await;
    let (frames_sent, attack_time) = attack.await.unwrap();

    let attack_call = ended_call(&app, &attack_id, Duration::from_secs(10)).await;
    assert_eq!(attack_call.end_reason, Some(EndReason::MediaFlood));
    // Sessions in the order they opened: the lone neighbour, the attacker, the neighbour.
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 3);
    let forwarded_ms = sessions[1].appended_ms;
    println!(
        "attacker: {frames_sent} frames in {attack_time:?}, {forwarded_ms} ms of audio forwarded; \
         neighbour echo latency median {quiet:?} alone, {busy:?} beside the attacker"
    );
    // Before the budget, such a stream forwarded hours of audio in seconds; now at most the
    // burst allowance plus 1.5× the time it lasted.
    let allowed_ms = 2_000 + attack_time.as_millis() as u64 * 3 / 2;
    assert!(
        forwarded_ms <= allowed_ms,
        "{forwarded_ms} ms forwarded in {attack_time:?}"
    );
    // Generous for a shared, noisy machine: without the budget the neighbour's latency grew
    // by hundreds of milliseconds.
    assert!(
        busy <= quiet + Duration::from_millis(100),
        "neighbour latency {quiet:?} alone, {busy:?} beside the attacker"
    );
}
