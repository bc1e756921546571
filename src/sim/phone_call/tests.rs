use std::time::Instant;

use serde_json::json;

use super::*;
use crate::audio::tone::{level_dbfs, sine};
use crate::sim::caller::{CloseInfo, Received, ReceivedEvent};
use crate::sim::phone_call::audio_source::AudioError;
use crate::sim::phone_call::lifecycle::WebhookResult;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn the_voxbridge_call_id_is_the_ws_url_call_id() {
    let ws = url("ws://h:1/api/frejun/media-stream/a1?call_id=6b01ff&token=v1.9.mac");
    assert_eq!(voxbridge_call_id(&ws).as_deref(), Some("6b01ff"));
    assert_eq!(voxbridge_call_id(&url("ws://h/x?token=t")), None);
    assert_eq!(voxbridge_call_id(&url("ws://h/x?call_id=")), None);
}

#[test]
fn webhook_and_server_urls_follow_the_flow_url() {
    let flow = url("https://voice.example.com/vox/api/frejun/flow?key=SECRET");
    assert_eq!(
        webhook_url_for(&flow).unwrap().as_str(),
        "https://voice.example.com/vox/api/frejun/webhook?key=SECRET"
    );
    assert_eq!(
        server_url_for(&flow).unwrap().as_str(),
        "https://voice.example.com/vox/"
    );
    let plain = url("http://127.0.0.1:8080/api/frejun/flow?key=k");
    assert_eq!(
        server_url_for(&plain).unwrap().as_str(),
        "http://127.0.0.1:8080/"
    );
    let elsewhere = url("http://h/hooks/incoming?key=k");
    assert!(webhook_url_for(&elsewhere).is_none());
    assert!(server_url_for(&elsewhere).is_none());
}

#[test]
fn error_answers_read_as_code_and_message() {
    let envelope =
        r#"{"success":false,"error":{"code":"call_not_live","message":"the call has ended"}}"#;
    assert_eq!(
        api_error_text(envelope).as_deref(),
        Some("call_not_live: the call has ended")
    );
    let bare = r#"{"code":"invalid_frejun_key","message":"bad key"}"#;
    assert_eq!(
        api_error_text(bare).as_deref(),
        Some("invalid_frejun_key: bad key")
    );
    assert_eq!(api_error_text("<html>502</html>"), None);
    let refused = CallerError::Rejected {
        status: 409,
        body: envelope.to_owned(),
    };
    assert_eq!(
        describe_media_error(&refused),
        "voxbridge refused the media stream: HTTP 409 call_not_live: the call has ended"
    );
}

fn finished_log() -> Value {
    json!({
        "id": "6b01",
        "call_status": "completed",
        "end_reason": "caller_hung_up",
        "duration": 9.0,
        "cost_usd": 0.01234,
        "status_history": [
            {"status": "initiated", "event": "flow.received"},
            {"status": "in-progress", "event": "media.started"},
            {"status": "completed", "event": "media.ended"},
        ],
        "transcript": [
            {"role": "assistant", "text": "Hello, how can I help?", "interrupted": true},
            {"role": "user", "text": "A table for two.", "interrupted": false},
        ],
        "usage": {"input_audio_tokens": 120, "output_audio_tokens": 340, "input_text_tokens": 5,
                  "output_text_tokens": 7, "input_cached_tokens": 0},
        "metrics": {"first_response_ms": 640, "barge_ins": 1, "audio_in_ms": 9000,
                    "audio_out_ms": 3000, "frame_latency_p50_us": 120, "frame_latency_p99_us": 900},
        "error": null,
    })
}

#[test]
fn a_call_log_is_described_line_by_line() {
    let lines = describe_call_log(&finished_log());
    assert_eq!(
        lines,
        [
            "status: completed",
            "end reason: caller_hung_up",
            "duration: 9 s",
            "transcript:",
            "  assistant: Hello, how can I help? [interrupted]",
            "  user: A table for two.",
            "cost: $0.0123",
            "usage: 120 input audio, 340 output audio, 5 input text, 7 output text, \
             0 cached tokens",
            "metrics: first response 640 ms, frame latency p50 120 µs / p99 900 µs, 1 barge-ins, \
             audio in 9000 ms / out 3000 ms",
            "hang-up at FreJun: not needed (the call ended on FreJun's side)",
        ]
    );
}

#[test]
fn a_hang_up_and_a_recording_are_described() {
    let mut log = finished_log();
    log["id"] = json!("6b01");
    log["end_reason"] = json!("max_duration");
    log["hangup"] = json!({"result": "hung_up", "reason": "MAX_DURATION", "attempts": 2});
    log["recording_id"] = json!("rec_01JQ8Z6YH0A2B3C4D5E6F7G8H9");
    let lines = describe_call_log(&log);
    assert!(
        lines
            .contains(&"hang-up at FreJun: hung_up (reason MAX_DURATION, 2 attempt(s))".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(
        &"recording: GET /api/calls/6b01/recording (FreJun recording rec_01JQ8Z6YH0A2B3C4D5E6F7G8H9)"
            .to_owned()
    ));
}

#[test]
fn a_refused_call_log_names_its_reason_and_error() {
    let refused = json!({
        "call_status": "failed",
        "end_reason": "unknown_number",
        "duration": null,
        "metrics": null,
        "error": {"code": "unknown_number", "message": "no such number"},
    });
    assert_eq!(
        describe_call_log(&refused),
        [
            "status: failed",
            "end reason: unknown_number",
            "error: unknown_number: no such number",
        ]
    );
}

#[test]
fn a_call_log_is_final_once_the_bridge_wrote_its_end() {
    assert!(call_log_is_final(&finished_log()));

    let mut live = finished_log();
    live["status_history"].as_array_mut().unwrap().pop();
    assert!(!call_log_is_final(&live), "media started, not ended yet");
    // A terminal webhook arriving first does not end the wait while the bridge still writes.
    live["call_status"] = json!("completed");
    assert!(!call_log_is_final(&live));

    let mut no_metrics = finished_log();
    no_metrics["metrics"] = Value::Null;
    assert!(!call_log_is_final(&no_metrics));

    let refused = json!({
        "call_status": "failed",
        "status_history": [{"status": "failed", "event": "flow.refused"}],
    });
    assert!(call_log_is_final(&refused), "ended without a stream");
    let ringing = json!({"call_status": "ringing", "status_history": []});
    assert!(!call_log_is_final(&ringing));
}

/// A 16-bit stereo PCM WAV file, both channels carrying `samples`.
fn stereo_wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 4) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&2u16.to_le_bytes()); // channels
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 4).to_le_bytes()); // byte rate
    out.extend_from_slice(&4u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[test]
fn a_44_1_khz_stereo_wav_is_mixed_and_converted_to_the_flow_rate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cd.wav");
    // One second of 1 kHz at 44.1 kHz, the same on both channels.
    std::fs::write(
        &path,
        stereo_wav(44_100, &sine(1_000.0, 44_100, 44_100, 8_000.0)),
    )
    .unwrap();
    let source = AudioSource::Wav(path);

    for rate in [8_000u32, 16_000] {
        let samples = load_audio(&source, rate).unwrap();
        assert_eq!(samples.len(), rate as usize, "one second at {rate} Hz");
        let middle = &samples[rate as usize / 10..rate as usize * 9 / 10];
        let level = level_dbfs(middle, 1_000.0, rate);
        assert!(
            (level + 12.3).abs() < 1.0,
            "1 kHz at {rate} Hz: {level:.1} dBFS"
        );
        assert!(level_dbfs(middle, 3_000.0, rate) < level - 40.0);
    }
}

#[test]
fn wav_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    let error = load_audio(&AudioSource::Wav(missing), 8_000).unwrap_err();
    assert!(error.to_string().contains("missing.wav"), "{error}");

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, stereo_wav(8_000, &[])).unwrap();
    let error = load_audio(&AudioSource::Wav(empty), 8_000).unwrap_err();
    assert!(matches!(error, AudioError::Empty(_)), "{error}");
}

#[test]
fn tones_are_made_at_the_flow_rate() {
    let tone = AudioSource::Tone {
        hz: 1_000.0,
        ms: 500,
    };
    let samples = load_audio(&tone, 16_000).unwrap();
    assert_eq!(samples.len(), 8_000);
    assert!(level_dbfs(&samples, 1_000.0, 16_000) > -13.0);
    let too_high = AudioSource::Tone {
        hz: 5_000.0,
        ms: 500,
    };
    assert!(matches!(
        load_audio(&too_high, 8_000),
        Err(AudioError::ToneFrequency { .. })
    ));
    assert!(load_audio(&too_high, 16_000).is_ok());
}

#[test]
fn the_caller_voice_is_converted_too() {
    let at_8k = load_audio(&AudioSource::CallerVoice, 8_000).unwrap();
    let at_16k = load_audio(&AudioSource::CallerVoice, 16_000).unwrap();
    assert!(at_8k.len() > 8_000, "over a second of speech");
    assert_eq!(at_16k.len(), at_8k.len() * 2);
}

#[test]
fn heard_sums_up_what_was_received() {
    let now = Instant::now();
    let received = Received {
        audio_chunks: 5,
        audio_samples: 8_000,
        clears: 1,
        interrupts: vec![3],
        events: vec![
            ReceivedEvent::Clear { at: now },
            ReceivedEvent::Interrupt {
                chunk_id: Some(3),
                at: now,
            },
            ReceivedEvent::Interrupt {
                chunk_id: None,
                at: now,
            },
        ],
        closed: Some(CloseInfo {
            code: 1000,
            reason: "ai_error".into(),
            by_server: true,
            at: now,
        }),
        ..Received::default()
    };
    let heard = Heard::from_received(&received);
    assert_eq!(heard.audio_ms, 1_000);
    assert_eq!(
        heard.interrupts, 2,
        "interrupts without a chunk id count too"
    );
    assert!(heard.closed_by_server());
    assert_eq!(
        heard.to_string(),
        "1.0 s of audio in 5 chunks, 1 clear, 2 interrupts; \
         voxbridge closed the stream (1000 ai_error)"
    );

    let quiet = Heard::from_received(&Received {
        violations: vec!["empty audio_b64".into()],
        ..Received::default()
    });
    assert_eq!(
        quiet.to_string(),
        "0.0 s of audio in 0 chunks, 0 clears, 0 interrupts; the stream was not seen to close; \
         1 protocol violation: empty audio_b64"
    );
}

#[test]
fn webhook_reports_read_as_voxbridge_answered() {
    let applied = WebhookReport {
        event: "call.answered",
        result: WebhookResult::Delivered {
            status: 200,
            answer: json!({"status": "received", "call_id": "6b01", "call_status": "in-progress"}),
        },
    };
    assert_eq!(
        applied.to_string(),
        "call.answered: 200 received (in-progress)"
    );
    assert!(!applied.failed());
    let ignored = WebhookReport {
        event: "call.initiated",
        result: WebhookResult::Delivered {
            status: 200,
            answer: json!({"status": "ignored", "reason": "unknown_call"}),
        },
    };
    assert_eq!(
        ignored.to_string(),
        "call.initiated: 200 ignored (unknown_call)"
    );
    let refused = WebhookReport {
        event: "call.completed",
        result: WebhookResult::Refused {
            status: 401,
            answer: json!({"success": false,
                           "error": {"code": "invalid_frejun_key", "message": "…"}}),
        },
    };
    assert_eq!(
        refused.to_string(),
        "call.completed: HTTP 401 invalid_frejun_key"
    );
    assert!(refused.failed());
}

#[tokio::test]
async fn without_a_webhook_url_nothing_is_sent() {
    let mut lifecycle = Lifecycle::new(reqwest::Client::new(), None, "cs_1", "+1", "+2");
    assert!(lifecycle.before_flow(Direction::Outbound).await.is_empty());
    assert!(lifecycle.completed(Duration::from_secs(3)).await.is_none());
    assert!(lifecycle.reports().is_empty());
    assert!(lifecycle.redacted_url().is_none());
}

#[tokio::test]
async fn failed_webhooks_are_kept_in_order_without_the_secret() {
    let port = crate::local_mongodb::free_port().unwrap();
    let webhook = format!("http://127.0.0.1:{port}/api/frejun/webhook?key=SECRET");
    let mut lifecycle = Lifecycle::new(reqwest::Client::new(), Some(webhook), "cs_1", "+1", "+2");

    let sent = lifecycle.before_flow(Direction::Outbound).await;
    let events: Vec<&str> = sent.iter().map(|report| report.event).collect();
    assert_eq!(events, ["call.initiated", "call.ringing", "call.answered"]);
    assert!(lifecycle.after_flow(Direction::Outbound).await.is_none());
    lifecycle.stream_initiated("s1").await;
    lifecycle.stream_completed("s1").await;
    lifecycle.completed(Duration::from_millis(2_600)).await;

    let warnings = lifecycle.warnings();
    assert_eq!(
        warnings.len(),
        6,
        "every webhook failed and was kept: {warnings:?}"
    );
    assert!(
        warnings[0].starts_with("call.initiated: unreachable"),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().all(|warning| !warning.contains("SECRET")),
        "{warnings:?}"
    );
    assert!(!lifecycle.redacted_url().unwrap().contains("SECRET"));

    let mut inbound = Lifecycle::new(
        reqwest::Client::new(),
        Some("http://127.0.0.1:1/w".into()),
        "cs_2",
        "+1",
        "+2",
    );
    let before: Vec<&str> = inbound
        .before_flow(Direction::Inbound)
        .await
        .iter()
        .map(|report| report.event)
        .collect();
    assert_eq!(before, ["call.initiated"]);
    assert_eq!(
        inbound
            .after_flow(Direction::Inbound)
            .await
            .map(|report| report.event),
        Some("call.answered")
    );
}
