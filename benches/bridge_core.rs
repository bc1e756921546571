//! CPU cost of one call's bridging work without sockets: the bridge's sans-IO core
//! (`voxbridge::bridge::core`) fed FreJun audio frames and OpenAI audio deltas as JSON text, the
//! way the session loop feeds it. It isolates what voxbridge itself computes per call (JSON,
//! base64, resampling or μ-law, chunking, playback bookkeeping) from the socket and runtime
//! costs the load generator measures.
//!
//! ```text
//! cargo bench --bench bridge_core [-- --seconds 60 --runs 7]
//! ```
//!
//! One run plays `--seconds` of a call with 100 ms inbound frames at 8 kHz and 100 ms deltas back
//! (both directions busy all the time, as with the echo model of the load generator). The table
//! gives the median of `--runs` runs as CPU microseconds per second of call and as CPU-seconds
//! per call-minute (#6's budget for the whole server is 0.03, i.e. 500 µs per call-second).

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use voxbridge::audio::{mulaw, pcm, tone};
use voxbridge::bridge::audio_budget::BudgetLimits;
use voxbridge::bridge::core::{BridgeCore, CoreConfig, Effects, SessionEndConfig, ToolsConfig};
use voxbridge::domain::assistant::{AssistantSpec, Codec, NewAssistant};
use voxbridge::providers::openai::OpenAiProtocol;
use voxbridge::providers::openai::session::SessionConfig;

#[derive(Debug, Parser)]
#[command(about = "CPU per call-second of the bridge core, without sockets")]
struct Options {
    /// Seconds of call per run.
    #[arg(long, default_value_t = 60)]
    seconds: usize,
    /// Measured runs per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const FRAME_MS: usize = 100;

fn main() {
    let options = Options::parse();
    println!(
        "bridge core, {} s calls, 100 ms frames each way, median of {} runs",
        options.seconds, options.runs
    );
    println!(
        "{:<10} {:<9} {:>14} {:>22}",
        "codec", "direction", "µs/call-second", "CPU-s per call-minute"
    );
    for codec in [Codec::Pcm24k, Codec::Pcmu] {
        for direction in [Direction::Inbound, Direction::Outbound, Direction::Both] {
            let mut runs: Vec<Duration> = (0..=options.runs)
                .map(|_| run(codec, direction, options.seconds))
                .skip(1)
                .collect();
            runs.sort();
            let median = runs[runs.len() / 2];
            let per_second_us = median.as_secs_f64() * 1e6 / options.seconds as f64;
            println!(
                "{:<10} {:<9} {:>14.1} {:>22.4}",
                format!("{codec:?}"),
                direction.label(),
                per_second_us,
                per_second_us * 60.0 / 1e6
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    Inbound,
    Outbound,
    Both,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
            Direction::Both => "both",
        }
    }
}

fn ready_core(codec: Codec) -> BridgeCore {
    let new: NewAssistant =
        serde_json::from_value(serde_json::json!({"name": "Bench"})).expect("a valid assistant");
    let mut spec = AssistantSpec::from_new(new, "gpt-realtime").expect("a valid assistant");
    spec.audio.codec = codec;
    spec.audio.outbound_chunk_ms = 100;
    let mut core = BridgeCore::new(
        CoreConfig {
            model: spec.model.clone(),
            inbound_rate: 8_000,
            outbound_chunk_ms: 100,
            playback_chunk_ms: 100,
            audio_message_shape: voxbridge::settings::AudioMessageShape::Flat,
            greeting: None,
            interrupt_response: false,
            playout_latency: Duration::ZERO,
            early_audio_max_ms: 300,
            inbound_budget: BudgetLimits::inbound(&voxbridge::settings::BridgeSettings::default()),
            ai_budget: CoreConfig::GENERATED_AI_AUDIO,
            max_bad_frames: 200,
            fault_log_interval: Duration::from_secs(5),
            session_end: SessionEndConfig::new(
                &voxbridge::settings::BridgeSettings::default(),
                &voxbridge::settings::OpenAiSettings::default(),
            ),
            tools: ToolsConfig::none(),
        },
        Box::new(OpenAiProtocol::new(SessionConfig::for_assistant(
            &spec, false,
        ))),
        Instant::now(),
    );
    let mut fx = Effects::default();
    core.teler_text(
        r#"{"type":"start","call_id":"c","stream_id":"s","data":{"encoding":"audio/l16","sample_rate":8000,"channels":1}}"#,
        Instant::now(),
        &mut fx,
    );
    core.ai_connected(std::time::SystemTime::now(), &mut fx);
    core.ai_text(
        r#"{"type":"session.updated","session":{}}"#,
        Instant::now(),
        &mut fx,
    );
    core.ai_text(
        r#"{"type":"response.created","response":{"id":"r1","status":"in_progress"}}"#,
        Instant::now(),
        &mut fx,
    );
    core
}

/// One FreJun audio frame of 100 ms at 8 kHz.
fn teler_frame() -> String {
    let samples = tone::sine(440.0, 8_000, 8 * FRAME_MS, 8_000.0);
    let mut bytes = Vec::new();
    pcm::encode_s16le(&samples, &mut bytes);
    let mut b64 = String::new();
    pcm::encode_base64(&bytes, &mut b64);
    format!(r#"{{"type":"audio","stream_id":"s","message_id":2,"data":{{"audio_b64":"{b64}"}}}}"#)
}

/// One OpenAI delta of 100 ms in the codec's output format.
fn ai_delta(codec: Codec) -> String {
    let bytes = match codec {
        Codec::Pcm24k => {
            let samples = tone::sine(440.0, 24_000, 24 * FRAME_MS, 8_000.0);
            let mut bytes = Vec::new();
            pcm::encode_s16le(&samples, &mut bytes);
            bytes
        }
        _ => {
            let samples = tone::sine(440.0, 8_000, 8 * FRAME_MS, 8_000.0);
            let mut bytes = Vec::new();
            mulaw::encode_into(&samples, &mut bytes);
            bytes
        }
    };
    let mut b64 = String::new();
    pcm::encode_base64(&bytes, &mut b64);
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"e","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    )
}

fn run(codec: Codec, direction: Direction, seconds: usize) -> Duration {
    let mut core = ready_core(codec);
    let frame = teler_frame();
    let delta = ai_delta(codec);
    let frames = seconds * 1_000 / FRAME_MS;
    let began = Instant::now();
    for index in 0..frames {
        let mut fx = Effects::default();
        if direction != Direction::Outbound {
            // Frames are timestamped as FreJun sends them, one per FRAME_MS, so the real-time
            // budget accepts them all however fast this loop runs.
            let sent_at = began + Duration::from_millis((index * FRAME_MS) as u64);
            core.teler_text(&frame, sent_at, &mut fx);
        }
        if direction != Direction::Inbound {
            core.ai_text(&delta, Instant::now(), &mut fx);
        }
        black_box(&fx);
    }
    began.elapsed()
}
