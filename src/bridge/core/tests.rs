//! The core driven directly, without sockets: early audio, assistant audio, barge-in,
//! failures, μ-law and malformed frames.

use super::*;
use crate::audio::tone;
use crate::bridge::teler_media::CLEAR_MESSAGE;
use crate::domain::assistant::{AssistantSpec, AudioConfig, InboundRate, NewAssistant};

mod elevenlabs;
mod tools;
use crate::domain::assistant::Codec;
use crate::providers::openai::events::{ApiError, ResponseError, ResponseUsage, ServerEvent};
use crate::providers::openai::{OpenAiProtocol, SessionConfig};
use crate::providers::realtime::ResponseSummary;

fn spec(codec: Codec) -> AssistantSpec {
    let new: NewAssistant = serde_json::from_value(serde_json::json!({"name": "Test"})).unwrap();
    let mut spec = AssistantSpec::from_new(new, "gpt-realtime").unwrap();
    spec.audio = AudioConfig {
        codec,
        inbound_rate: InboundRate::Khz8,
        inbound_chunk_ms: 100,
        outbound_chunk_ms: 200,
    };
    spec.greeting = Some("Hello!".into());
    spec
}

fn core(codec: Codec) -> BridgeCore {
    core_with_tools(codec, ToolsConfig::none())
}

fn core_with_tools(codec: Codec, tools: ToolsConfig) -> BridgeCore {
    let spec = spec(codec);
    BridgeCore::new(
        CoreConfig {
            model: spec.model.clone(),
            outbound_chunk_ms: 200,
            playback_chunk_ms: 200,
            greeting: spec.greeting.clone(),
            ..CoreConfig::for_tests(tools)
        },
        Box::new(OpenAiProtocol::new(SessionConfig::for_assistant(
            &spec, false,
        ))),
        Instant::now(),
    )
}

fn audio_frame(samples: &[i16]) -> String {
    let mut bytes = Vec::new();
    pcm::encode_s16le(samples, &mut bytes);
    let mut b64 = String::new();
    pcm::encode_base64(&bytes, &mut b64);
    format!(r#"{{"type":"audio","stream_id":"s","message_id":2,"data":{{"audio_b64":"{b64}"}}}}"#)
}

fn types(events: &[String]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let value: serde_json::Value = serde_json::from_str(event).unwrap();
            value["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// OpenAI's `response.created` for an answer of its own (no purpose of ours).
fn response_created(response: &str) -> ServerEvent {
    ServerEvent::ResponseCreated {
        response_id: response.into(),
        purpose: None,
    }
}

fn delta(response: &str, item: &str, samples_24k: &[i16]) -> ServerEvent {
    let mut bytes = Vec::new();
    pcm::encode_s16le(samples_24k, &mut bytes);
    let mut delta = String::new();
    pcm::encode_base64(&bytes, &mut delta);
    ServerEvent::AudioDelta {
        response_id: response.into(),
        item_id: item.into(),
        content_index: 0,
        delta,
    }
}

/// A core whose OpenAI session is ready (greeting already taken out of the effects).
fn ready(codec: Codec) -> BridgeCore {
    ready_with(core(codec))
}

fn ready_with(mut core: BridgeCore) -> BridgeCore {
    let mut fx = Effects::default();
    core.ai_connected(std::time::SystemTime::now(), &mut fx);
    core.ai_event(
        ServerEvent::SessionUpdated {
            session: serde_json::json!({}),
        },
        Instant::now(),
        &mut fx,
    );
    core
}

#[test]
fn early_audio_waits_for_the_session_update_and_is_bounded() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    core.teler_text(
        r#"{"type":"start","data":{"sample_rate":8000}}"#,
        Instant::now(),
        &mut fx,
    );
    for _ in 0..5 {
        core.teler_text(&audio_frame(&[100; 800]), Instant::now(), &mut fx);
    }
    assert!(fx.is_empty(), "nothing is sent before OpenAI is connected");
    core.ai_connected(std::time::SystemTime::now(), &mut fx);
    let sent = types(&fx.to_ai);
    assert_eq!(sent[0], "session.update");
    // 300 ms kept of the 500 ms received: the three newest 100 ms frames.
    assert_eq!(&sent[1..], ["input_audio_buffer.append"; 3]);
    let append: serde_json::Value = serde_json::from_str(&fx.to_ai[1]).unwrap();
    let mut bytes = Vec::new();
    pcm::decode_base64(append["audio"].as_str().unwrap(), &mut bytes).unwrap();
    assert!(
        bytes.len() <= 2_400 * 2 && bytes.len() > 2_000 * 2,
        "100 ms at 24 kHz"
    );

    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::SessionUpdated {
            session: serde_json::json!({}),
        },
        Instant::now(),
        &mut fx,
    );
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create", "response.create"],
        "the greeting: a system message, then a response under the session's instructions"
    );
    assert!(fx.to_ai[0].contains("Hello!") && fx.to_ai[0].contains(r#""role":"system""#));
    assert_eq!(fx.to_ai[1], r#"{"type":"response.create"}"#);
    let mut fx = Effects::default();
    core.teler_text(&audio_frame(&[100; 800]), Instant::now(), &mut fx);
    assert_eq!(types(&fx.to_ai), ["input_audio_buffer.append"]);
    assert_eq!(core.audio_in_ms(), 600);
}

#[test]
fn assistant_audio_reaches_the_caller_in_chunks_at_8_khz() {
    let mut core = ready(Codec::Pcm24k);
    let now = Instant::now();
    let mut fx = Effects::default();
    core.ai_event(response_created("r1"), now, &mut fx);
    // 500 ms of a 1 kHz tone at 24 kHz in 100 ms deltas.
    let tone = tone::sine(1_000.0, 24_000, 12_000, 8_000.0);
    for piece in tone.chunks(2_400) {
        core.ai_event(delta("r1", "item1", piece), now, &mut fx);
    }
    assert_eq!(fx.to_teler.len(), 2, "two full 200 ms chunks so far");
    core.ai_event(
        ServerEvent::AudioDone {
            response_id: "r1".into(),
            item_id: "item1".into(),
        },
        now,
        &mut fx,
    );
    assert_eq!(
        fx.to_teler.len(),
        3,
        "the rest is flushed at the end of the item"
    );
    let mut received = Vec::new();
    let mut ids = Vec::new();
    for message in &fx.to_teler {
        let value: serde_json::Value = serde_json::from_str(message).unwrap();
        ids.push(value["chunk_id"].as_u64().unwrap());
        let mut bytes = Vec::new();
        pcm::decode_base64(value["audio_b64"].as_str().unwrap(), &mut bytes).unwrap();
        pcm::decode_s16le(&bytes, &mut received);
    }
    assert_eq!(ids, [1, 2, 3]);
    assert!(
        (3_990..=4_010).contains(&received.len()),
        "{}",
        received.len()
    );
    let level = tone::level_dbfs(&received[400..3_600], 1_000.0, 8_000);
    assert!(
        level > -13.0,
        "the tone comes through at 8 kHz: {level} dBFS"
    );
    assert_eq!(core.audio_out_ms(), received.len() as u64 / 8);
    assert!(core.metrics().first_response_ms.is_some());
}

#[test]
fn barge_in_clears_cancels_truncates_and_drops_late_audio() {
    let mut core = ready(Codec::Pcm24k);
    let start = Instant::now();
    let mut fx = Effects::default();
    core.ai_event(response_created("r1"), start, &mut fx);
    core.ai_event(delta("r1", "item1", &[500; 24_000]), start, &mut fx);
    core.ai_event(
        ServerEvent::AudioTranscriptDone {
            response_id: "r1".into(),
            item_id: "item1".into(),
            transcript: "A long answer".into(),
        },
        start,
        &mut fx,
    );
    let first = core.take_progress(true).unwrap();
    assert_eq!(first.new_turns.len(), 1);
    assert!(!first.new_turns[0].interrupted);

    let mut fx = Effects::default();
    let at = start + Duration::from_millis(300);
    core.ai_event(
        ServerEvent::SpeechStarted {
            audio_start_ms: 1_000,
            item_id: Some("u1".into()),
        },
        at,
        &mut fx,
    );
    assert_eq!(fx.to_teler, [CLEAR_MESSAGE]);
    assert_eq!(
        types(&fx.to_ai),
        ["response.cancel", "conversation.item.truncate"]
    );
    let truncate: serde_json::Value = serde_json::from_str(&fx.to_ai[1]).unwrap();
    assert_eq!(truncate["item_id"], "item1");
    assert_eq!(
        truncate["audio_end_ms"], 300,
        "heard 300 ms of the 800 ms sent"
    );
    let cancel: serde_json::Value = serde_json::from_str(&fx.to_ai[0]).unwrap();
    assert_eq!(cancel["response_id"], "r1");

    let mut fx = Effects::default();
    core.ai_event(delta("r1", "item1", &[500; 2_400]), at, &mut fx);
    assert!(
        fx.is_empty(),
        "late audio of the cancelled response is dropped"
    );
    core.ai_event(
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                id: "r1".into(),
                status: ResponseStatus::Cancelled,
                usage: Some(ResponseUsage::default()),
                ..ResponseSummary::default()
            },
        },
        at,
        &mut fx,
    );
    assert!(fx.is_empty());
    let progress = core.take_progress(true).unwrap();
    assert_eq!(
        progress.interrupted_turns,
        [0],
        "the written turn is marked interrupted"
    );
    assert_eq!(
        progress.usage,
        Some(Usage::default()),
        "zero counts are kept"
    );
    assert_eq!(progress.metrics.unwrap().barge_ins, 1);

    // The caller speaking when nothing plays is an ordinary turn: nothing is sent.
    let mut fx = Effects::default();
    let much_later = at + Duration::from_secs(60);
    core.ai_event(
        ServerEvent::SpeechStarted {
            audio_start_ms: 9_000,
            item_id: None,
        },
        much_later,
        &mut fx,
    );
    assert!(fx.is_empty());
}

#[test]
fn a_barge_in_before_any_audio_was_sent_cancels_without_truncating() {
    let mut core = ready(Codec::Pcm24k);
    let now = Instant::now();
    let mut fx = Effects::default();
    core.ai_event(response_created("r1"), now, &mut fx);
    core.ai_event(
        ServerEvent::SpeechStarted {
            audio_start_ms: 0,
            item_id: None,
        },
        now,
        &mut fx,
    );
    assert!(fx.to_teler.is_empty(), "nothing to clear");
    assert_eq!(types(&fx.to_ai), ["response.cancel"]);
}

#[test]
fn failures_before_the_session_is_ready_are_connect_failures() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    core.ai_connected(std::time::SystemTime::now(), &mut fx);
    let error = ServerEvent::Error {
        error: ApiError {
            kind: "invalid_request_error".into(),
            code: Some("invalid_value".into()),
            message: "bad".into(),
            ..ApiError::default()
        },
    };
    let ending = core
        .ai_event(error.clone(), Instant::now(), &mut fx)
        .unwrap();
    assert_eq!(ending.reason, EndReason::AiConnectFailed);
    assert_eq!(ending.status(), CallStatus::Failed);
    assert_eq!(
        core.ai_closed(Some(3000), "invalid_request_error.invalid_api_key")
            .reason,
        EndReason::AiConnectFailed
    );

    let mut core = ready(Codec::Pcm24k);
    assert!(
        core.ai_event(error, Instant::now(), &mut fx).is_none(),
        "recoverable once ready"
    );
    let ending = core.ai_closed(
        Some(1001),
        "Your session hit the maximum duration of 60 minutes.",
    );
    assert_eq!(ending.reason, EndReason::AiError);
    assert_eq!(ending.error.unwrap().code, "openai_session_expired");
}

#[test]
fn pcmu_needs_no_resampling_either_way() {
    let mut core = ready(Codec::Pcmu);
    let mut fx = Effects::default();
    core.teler_text(
        &audio_frame(&tone::sine(1_000.0, 8_000, 800, 8_000.0)),
        Instant::now(),
        &mut fx,
    );
    let append: serde_json::Value = serde_json::from_str(&fx.to_ai[0]).unwrap();
    let mut codes = Vec::new();
    pcm::decode_base64(append["audio"].as_str().unwrap(), &mut codes).unwrap();
    assert_eq!(codes.len(), 800, "one μ-law byte per 8 kHz sample");

    let mut fx = Effects::default();
    let now = Instant::now();
    core.ai_event(response_created("r"), now, &mut fx);
    let mut delta = String::new();
    pcm::encode_base64(&codes, &mut delta);
    core.ai_event(
        ServerEvent::AudioDelta {
            response_id: "r".into(),
            item_id: "i".into(),
            content_index: 0,
            delta,
        },
        now,
        &mut fx,
    );
    core.ai_event(
        ServerEvent::AudioDone {
            response_id: "r".into(),
            item_id: "i".into(),
        },
        now,
        &mut fx,
    );
    let chunk: serde_json::Value = serde_json::from_str(&fx.to_teler[0]).unwrap();
    let mut bytes = Vec::new();
    pcm::decode_base64(chunk["audio_b64"].as_str().unwrap(), &mut bytes).unwrap();
    assert_eq!(bytes.len(), 1_600, "800 samples back as s16le");
}

#[test]
fn bad_frames_are_counted_and_skipped() {
    let mut core = ready(Codec::Pcm24k);
    let mut fx = Effects::default();
    assert!(core.teler_text("{nope", Instant::now(), &mut fx).is_none());
    assert!(
        core.teler_text(
            r#"{"type":"audio","data":{"audio_b64":"!!!"}}"#,
            Instant::now(),
            &mut fx
        )
        .is_none()
    );
    assert!(
        core.teler_text(r#"{"type":"mystery"}"#, Instant::now(), &mut fx)
            .is_none()
    );
    assert!(core.teler_binary(Instant::now()).is_none());
    // Three bytes: one sample and an odd byte.
    assert!(
        core.teler_text(
            r#"{"type":"audio","data":{"audio_b64":"AQID"}}"#,
            Instant::now(),
            &mut fx
        )
        .is_none()
    );
    let anomalies = core.anomalies();
    assert_eq!(anomalies.bad_teler_frames, 3);
    assert_eq!(anomalies.unknown_teler_types, 1);
    assert_eq!(anomalies.odd_audio_bytes, 1);
    assert!(core.ai_text("not json", Instant::now(), &mut fx).is_none());
    assert_eq!(core.anomalies().bad_ai_events, 1);
}

#[test]
fn an_unconvertible_rate_in_start_ends_the_call() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    let ending = core
        .teler_text(
            r#"{"type":"start","data":{"sample_rate":3}}"#,
            Instant::now(),
            &mut fx,
        )
        .unwrap();
    assert_eq!(ending.reason, EndReason::TelephonyError);
}

#[test]
fn only_the_formats_frejun_streams_are_accepted() {
    for (start, code) in [
        (
            r#"{"type":"start","data":{"encoding":"audio/l16","sample_rate":4000}}"#,
            "unsupported_sample_rate",
        ),
        (
            r#"{"type":"start","data":{"encoding":"audio/l16","sample_rate":192000}}"#,
            "unsupported_sample_rate",
        ),
        (
            r#"{"type":"start","data":{"encoding":"audio/opus","sample_rate":8000}}"#,
            "unsupported_encoding",
        ),
    ] {
        let mut core = core(Codec::Pcm24k);
        let ending = core
            .teler_text(start, Instant::now(), &mut Effects::default())
            .expect("the call ends");
        assert_eq!(ending.reason, EndReason::TelephonyError);
        assert_eq!(ending.error.unwrap().code, code);
    }
    for rate in [8_000, 16_000] {
        let mut core = core(Codec::Pcm24k);
        let start =
            format!(r#"{{"type":"start","data":{{"encoding":"AUDIO/L16","sample_rate":{rate}}}}}"#);
        assert!(
            core.teler_text(&start, Instant::now(), &mut Effects::default())
                .is_none()
        );
    }
}

#[test]
fn audio_faster_than_real_time_is_dropped_unread_then_ends_the_call() {
    let mut core = ready(Codec::Pcm24k);
    let now = Instant::now();
    let frame = audio_frame(&[100; 800]); // 100 ms at 8 kHz
    let mut appended = 0;
    let mut ending = None;
    // A thousand frames in the same instant: 100 s of audio in no time at all.
    for _ in 0..1_000 {
        let mut fx = Effects::default();
        ending = core.teler_text(&frame, now, &mut fx);
        appended += fx.to_ai.len();
        if ending.is_some() {
            break;
        }
    }
    let ending = ending.expect("a flood ends the call");
    assert_eq!(ending.reason, EndReason::MediaFlood);
    assert_eq!(ending.status(), CallStatus::Failed);
    assert_eq!(ending.error.unwrap().code, "media_stream_flood");
    // The 2 s burst allowance was forwarded, nothing more (the resampler's look-ahead may
    // hold the last few milliseconds back, hence "at most one append per frame").
    assert_eq!(core.audio_in_ms(), 2_000);
    assert!((19..=20).contains(&appended), "{appended} appends");
    assert!(core.anomalies().dropped_inbound_ms >= 5_000);
}

#[test]
fn one_huge_frame_costs_nothing_and_ends_the_call() {
    let mut core = ready(Codec::Pcm24k);
    // About 190 KiB of base64: 9 s of audio at 8 kHz in one frame.
    let frame = audio_frame(&vec![7; 73_000]);
    let mut fx = Effects::default();
    let ending = core.teler_text(&frame, Instant::now(), &mut fx).unwrap();
    assert_eq!(ending.reason, EndReason::MediaFlood);
    assert!(fx.to_ai.is_empty(), "nothing forwarded");
    assert_eq!(core.audio_in_ms(), 0, "not even decoded");
}

#[test]
fn a_stream_of_malformed_frames_ends_the_call_past_the_limit() {
    let mut core = ready(Codec::Pcm24k);
    let now = Instant::now();
    for index in 0..200 {
        let ending = if index % 2 == 0 {
            core.teler_text("{nope", now, &mut Effects::default())
        } else {
            core.teler_binary(now)
        };
        assert!(ending.is_none(), "frame {index} is only skipped");
    }
    let ending = core
        .teler_text("x", now, &mut Effects::default())
        .expect("the 201st ends the call");
    assert_eq!(ending.reason, EndReason::TelephonyError);
    assert_eq!(ending.error.unwrap().code, "media_stream_malformed");
    assert_eq!(core.anomalies().bad_teler_frames, 201);
}

#[test]
fn a_runaway_openai_stream_ends_the_call() {
    let mut core = ready(Codec::Pcm24k);
    let now = Instant::now();
    core.ai_event(response_created("r1"), now, &mut Effects::default());
    // One second of 24 kHz audio per delta, all in the same instant: two minutes are allowed
    // ahead of real time, a runaway session is not.
    let mut bytes = Vec::new();
    pcm::encode_s16le(&[5; 24_000], &mut bytes);
    let mut delta = String::new();
    pcm::encode_base64(&bytes, &mut delta);
    let mut ending = None;
    let mut deltas = 0;
    while ending.is_none() && deltas < 1_000 {
        deltas += 1;
        ending = core.ai_event(
            ServerEvent::AudioDelta {
                response_id: "r1".into(),
                item_id: "i1".into(),
                content_index: 0,
                delta: delta.clone(),
            },
            now,
            &mut Effects::default(),
        );
    }
    let ending = ending.expect("the call ends");
    assert_eq!(ending.reason, EndReason::AiError);
    assert_eq!(ending.error.unwrap().code, "openai_audio_flood");
    assert_eq!(deltas, 121, "120 s ahead were accepted");
}

#[test]
fn a_failed_response_is_counted_with_openais_explanation_and_the_call_goes_on() {
    let mut core = ready(Codec::Pcm24k);
    let mut fx = Effects::default();
    let at = Instant::now();
    let failed = ServerEvent::ResponseDone {
        response: ResponseSummary {
            id: "r1".into(),
            status: ResponseStatus::Failed,
            error: Some(ResponseError {
                kind: "invalid_request_error".into(),
                code: Some("rate_limit_exceeded".into()),
                message: Some("Rate limit reached; try again in 2s.".into()),
            }),
            usage: Some(ResponseUsage {
                input_text_tokens: 100,
                input_audio_tokens: 50,
                input_cached_tokens: 60,
                input_cached_text_tokens: 40,
                input_cached_audio_tokens: 20,
                ..ResponseUsage::default()
            }),
            ..ResponseSummary::default()
        },
    };
    assert!(
        core.ai_event(failed, at, &mut fx).is_none(),
        "not an ending"
    );
    let progress = core.take_progress(true).unwrap();
    let metrics = progress.metrics.unwrap();
    assert_eq!(metrics.failed_responses, 1);
    let error = metrics.last_response_error.unwrap();
    assert_eq!(error.code, "rate_limit_exceeded");
    assert_eq!(error.message, "Rate limit reached; try again in 2s.");
    let usage = progress.usage.unwrap();
    assert_eq!(
        (
            usage.input_cached_text_tokens,
            usage.input_cached_audio_tokens
        ),
        (40, 20),
        "the cache's own text/audio split is kept"
    );
}

#[test]
fn the_session_expiry_is_assumed_on_connect_and_taken_from_openai() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    let opened = std::time::SystemTime::now();
    core.ai_connected(opened, &mut fx);
    assert_eq!(
        fx.session_ends_at,
        Some(opened + Duration::from_secs(3_600)),
        "the fallback limit until OpenAI says"
    );
    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::SessionCreated {
            session: serde_json::json!({"expires_at": 2_000_000_000_u64}),
        },
        Instant::now(),
        &mut fx,
    );
    assert_eq!(
        fx.session_ends_at,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
    );
    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::SessionUpdated {
            session: serde_json::json!({"expires_at": 2_000_000_000_u64}),
        },
        Instant::now(),
        &mut fx,
    );
    assert_eq!(fx.session_ends_at, None, "unchanged: nothing to reschedule");
}

#[test]
fn the_closing_line_interrupts_the_assistant_and_the_call_ends_once_it_is_heard() {
    let mut core = ready(Codec::Pcm24k);
    let at = Instant::now();
    let mut fx = Effects::default();
    core.ai_event(response_created("r1"), at, &mut fx);
    core.ai_event(delta("r1", "item1", &[500; 24_000]), at, &mut fx);
    assert!(!fx.to_teler.is_empty(), "the answer is playing");

    let mut fx = Effects::default();
    assert!(
        core.begin_closing(at, ClosingCause::SessionLimit, &mut fx)
            .is_none()
    );
    assert!(core.closing_started());
    assert_eq!(
        types(&fx.to_ai),
        [
            "response.cancel",
            "conversation.item.truncate",
            "conversation.item.create",
            "response.create"
        ],
        "the answer in progress is stopped, then the closing line asked for"
    );
    assert!(fx.to_ai[2].contains("time limit") && fx.to_ai[2].contains(r#""role":"system""#));
    assert_eq!(fx.to_teler, [r#"{"type":"clear"}"#]);
    let mut again = Effects::default();
    assert!(
        core.begin_closing(at, ClosingCause::SessionLimit, &mut again)
            .is_none()
    );
    assert!(again.is_empty(), "the closing starts once");

    // The closing line's response: 500 ms of audio, then done.
    let mut fx = Effects::default();
    core.ai_event(response_created("r2"), at, &mut fx);
    core.ai_event(delta("r2", "item2", &[300; 12_000]), at, &mut fx);
    assert!(core.closing_done(at).is_none(), "still being generated");
    core.ai_event(
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                id: "r2".into(),
                status: ResponseStatus::Completed,
                ..ResponseSummary::default()
            },
        },
        at,
        &mut fx,
    );
    assert!(!fx.to_teler.is_empty(), "the line went to the caller");
    assert!(
        core.closing_done(at).is_none(),
        "the caller is still hearing it"
    );
    let heard = core
        .closing_done(at + Duration::from_secs(2))
        .expect("the call ends once the line is heard");
    assert_eq!(heard.reason, EndReason::AiSessionLimit);
    assert_eq!(heard.status(), crate::domain::call::CallStatus::Completed);
}

#[test]
fn running_counters_alone_wait_for_their_interval_but_news_does_not() {
    let mut core = ready(Codec::Pcm24k);
    let at = Instant::now();
    let mut fx = Effects::default();
    core.ai_event(response_created("r1"), at, &mut fx);
    core.ai_event(delta("r1", "item1", &[500; 24_000]), at, &mut fx);
    let first = core
        .take_progress(false)
        .expect("the first answer's latency is news");
    assert!(first.metrics.unwrap().first_response_ms.is_some());

    // More audio: only the counters moved.
    core.ai_event(delta("r1", "item1", &[500; 24_000]), at, &mut fx);
    assert!(
        core.take_progress(false).is_none(),
        "not before the interval"
    );
    let due = core.take_progress(true).expect("the counters, once due");
    assert!(due.new_turns.is_empty());
    assert!(core.take_progress(true).is_none(), "nothing moved since");

    // A transcript turn goes at once, counters or not.
    core.ai_event(
        ServerEvent::AudioTranscriptDone {
            response_id: "r1".into(),
            item_id: "item1".into(),
            transcript: "Hello".into(),
        },
        at,
        &mut fx,
    );
    assert_eq!(core.take_progress(false).unwrap().new_turns.len(), 1);
}

#[test]
fn a_drain_deadline_says_the_closing_line_and_ends_with_shutdown() {
    let mut core = ready(Codec::Pcm24k);
    let at = Instant::now();
    let mut fx = Effects::default();
    assert!(
        core.begin_closing(at, ClosingCause::Drain, &mut fx)
            .is_none()
    );
    assert!(
        fx.to_ai
            .iter()
            .any(|message| message.contains("restarting"))
    );
    assert_eq!(core.closing_reason(), EndReason::Shutdown);
    core.ai_event(response_created("r1"), at, &mut fx);
    core.ai_event(
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                id: "r1".into(),
                status: ResponseStatus::Completed,
                ..ResponseSummary::default()
            },
        },
        at,
        &mut fx,
    );
    let ending = core
        .closing_done(at + Duration::from_secs(1))
        .expect("the line was spoken");
    assert_eq!(ending.reason, EndReason::Shutdown);
}

#[test]
fn a_session_not_ready_to_speak_ends_at_once() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    let ending = core
        .begin_closing(Instant::now(), ClosingCause::SessionLimit, &mut fx)
        .unwrap();
    assert_eq!(ending.reason, EndReason::AiSessionLimit);
}

#[test]
fn context_added_before_the_ai_socket_opens_follows_the_sessions_opening() {
    let mut core = core(Codec::Pcm24k);
    let mut fx = Effects::default();
    let outcome = core.add_context("The caller is a gold member.".into(), &mut fx);
    assert!(outcome.context_added);
    assert!(
        fx.to_ai.is_empty(),
        "nothing can be sent before the socket is open"
    );
    core.ai_connected(std::time::SystemTime::now(), &mut fx);
    let kinds: Vec<serde_json::Value> = fx
        .to_ai
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    assert_eq!(kinds[0]["type"], "session.update");
    assert_eq!(kinds[1]["type"], "conversation.item.create");
    assert_eq!(kinds[1]["item"]["role"], "system");
    assert_eq!(
        kinds[1]["item"]["content"][0]["text"],
        "The caller is a gold member."
    );

    // Once open, context goes at once.
    let mut fx = Effects::default();
    core.add_context("Order A-1001 shipped.".into(), &mut fx);
    assert_eq!(fx.to_ai.len(), 1);
    assert!(fx.to_ai[0].contains("Order A-1001 shipped."));
}
