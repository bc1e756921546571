//! Server-event parsing against OpenAI's documented shapes: every event the bridge reads (both
//! spellings where GA renamed one), tolerance of nulls, extra fields and unknown types, and the
//! errors for malformed frames.

use serde_json::json;

use super::*;

fn parse(text: &str) -> ServerEvent {
    ServerEvent::parse(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

#[test]
fn session_created_and_updated_keep_the_session() {
    let text = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j","session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ","model":"gpt-realtime-2025-08-28","output_modalities":["audio"],"instructions":"Your knowledge cutoff is 2023-10.","tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null,"prompt":null,"expires_at":1756324625,"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":null,"noise_reduction":null,"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true}},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin","speed":1}},"include":null}}"#;
    let ServerEvent::SessionCreated { session } = parse(text) else {
        panic!("not session.created");
    };
    assert_eq!(session["id"], "sess_C9G5QPteg4UIbotdKLoYQ");
    assert_eq!(session["expires_at"], 1756324625);

    let event = parse(
        r#"{"type":"session.updated","event_id":"e","session":{"type":"realtime","model":"gpt-realtime"}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::SessionUpdated {
            session: json!({"type": "realtime", "model": "gpt-realtime"})
        }
    );
    assert_eq!(event.kind(), "session.updated");
    assert_eq!(
        parse(r#"{"type":"session.updated"}"#),
        ServerEvent::SessionUpdated {
            session: Value::Null
        }
    );
}

#[test]
fn errors() {
    let event = parse(
        r#"{"type":"error","event_id":"event_890","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.input_audio_format'.","param":"session.input_audio_format","event_id":"evt_session_update"}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::Error {
            error: ApiError {
                kind: "invalid_request_error".to_owned(),
                code: Some("unknown_parameter".to_owned()),
                message: "Unknown parameter: 'session.input_audio_format'.".to_owned(),
                param: Some("session.input_audio_format".to_owned()),
                event_id: Some("evt_session_update".to_owned()),
            }
        }
    );
    let ServerEvent::Error { error } = &event else {
        unreachable!()
    };
    assert!(!error.is_cancel_not_active());

    let ServerEvent::Error { error } = parse(
        r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"Cancellation failed: no active response found","param":null,"event_id":null}}"#,
    ) else {
        panic!("not an error");
    };
    assert!(error.is_cancel_not_active());
    assert_eq!(error.param, None);

    // An error without details is still an error.
    assert_eq!(
        parse(r#"{"type":"error"}"#),
        ServerEvent::Error {
            error: ApiError::default()
        }
    );
    assert_eq!(
        parse(r#"{"type":"error","error":{"message":"boom"}}"#),
        ServerEvent::Error {
            error: ApiError {
                message: "boom".to_owned(),
                ..ApiError::default()
            }
        }
    );
}

#[test]
fn speech_started_and_stopped() {
    assert_eq!(
        parse(
            r#"{"type":"input_audio_buffer.speech_started","event_id":"event_1516","audio_start_ms":1000,"item_id":"msg_003"}"#
        ),
        ServerEvent::SpeechStarted {
            audio_start_ms: 1_000,
            item_id: Some("msg_003".to_owned())
        }
    );
    assert_eq!(
        parse(
            r#"{"type":"input_audio_buffer.speech_stopped","event_id":"event_1718","audio_end_ms":2000,"item_id":"msg_003"}"#
        ),
        ServerEvent::SpeechStopped {
            audio_end_ms: 2_000,
            item_id: Some("msg_003".to_owned())
        }
    );
    assert_eq!(
        parse(r#"{"type":"input_audio_buffer.speech_started"}"#),
        ServerEvent::SpeechStarted {
            audio_start_ms: 0,
            item_id: None
        }
    );
}

#[test]
fn response_created() {
    let event = parse(
        r#"{"type":"response.created","event_id":"event_C9G8pqbTEddBSIxbBN6Os","response":{"object":"realtime.response","id":"resp_C9G8p7IH2WxLbkgPNouYL","status":"in_progress","status_details":null,"output":[],"conversation_id":"conv_C9G8mmBkLhQJwCon3hoJN","output_modalities":["audio"],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}},"usage":null,"metadata":null}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::ResponseCreated {
            response_id: "resp_C9G8p7IH2WxLbkgPNouYL".to_owned(),
            purpose: None,
        }
    );
    assert_eq!(
        parse(r#"{"type":"response.created"}"#),
        ServerEvent::ResponseCreated {
            response_id: String::new(),
            purpose: None,
        }
    );
}

#[test]
fn audio_deltas_in_both_spellings() {
    let expected = ServerEvent::AudioDelta {
        response_id: "resp_C9G8p7IH2WxLbkgPNouYL".to_owned(),
        item_id: "item_C9G8pjSJCfRNEhMEnYAVy".to_owned(),
        content_index: 0,
        delta: "AQIDBA==".to_owned(),
    };
    for kind in ["response.output_audio.delta", "response.audio.delta"] {
        let text = format!(
            r#"{{"type":"{kind}","event_id":"event_C9G8qOFgKAJtoiXa4SRmC","response_id":"resp_C9G8p7IH2WxLbkgPNouYL","item_id":"item_C9G8pjSJCfRNEhMEnYAVy","output_index":0,"content_index":0,"delta":"AQIDBA=="}}"#
        );
        let event = parse(&text);
        assert_eq!(event, expected, "{kind}");
        assert_eq!(event.kind(), "response.output_audio.delta");
    }
    // Only the audio is required.
    assert_eq!(
        parse(r#"{"type":"response.output_audio.delta","delta":"AA=="}"#),
        ServerEvent::AudioDelta {
            response_id: String::new(),
            item_id: String::new(),
            content_index: 0,
            delta: "AA==".to_owned()
        }
    );
}

#[test]
fn audio_done_in_both_spellings() {
    for kind in ["response.output_audio.done", "response.audio.done"] {
        let text = format!(
            r#"{{"type":"{kind}","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0}}"#
        );
        let event = parse(&text);
        assert_eq!(
            event,
            ServerEvent::AudioDone {
                response_id: "resp_1".to_owned(),
                item_id: "item_1".to_owned()
            }
        );
        assert_eq!(event.kind(), "response.output_audio.done");
    }
}

#[test]
fn transcript_done_in_both_spellings() {
    for kind in [
        "response.output_audio_transcript.done",
        "response.audio_transcript.done",
    ] {
        let text = format!(
            r#"{{"type":"{kind}","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"transcript":"Hello! How can I help you today?"}}"#
        );
        assert_eq!(
            parse(&text),
            ServerEvent::AudioTranscriptDone {
                response_id: "resp_1".to_owned(),
                item_id: "item_1".to_owned(),
                transcript: "Hello! How can I help you today?".to_owned()
            }
        );
    }
}

#[test]
fn input_transcription_completed_with_each_usage() {
    let event = parse(
        r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_CCXGRvtUVrax5SJAnNOWZ","item_id":"item_CCXGQ4e1ht4cOraEYcuR2","content_index":0,"transcript":"Hey, can you hear me?","usage":{"type":"tokens","total_tokens":22,"input_tokens":13,"input_token_details":{"text_tokens":0,"audio_tokens":13},"output_tokens":9}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::InputTranscriptCompleted {
            item_id: "item_CCXGQ4e1ht4cOraEYcuR2".to_owned(),
            transcript: "Hey, can you hear me?".to_owned(),
            usage: Some(TranscriptionUsage::Tokens {
                input_tokens: 13,
                output_tokens: 9,
                total_tokens: 22
            })
        }
    );
    let with_usage = |usage: &str| {
        let text = format!(
            r#"{{"type":"conversation.item.input_audio_transcription.completed","item_id":"i","transcript":"hi","usage":{usage}}}"#
        );
        match parse(&text) {
            ServerEvent::InputTranscriptCompleted { usage, .. } => usage,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        with_usage(r#"{"type":"duration","seconds":2.5}"#),
        Some(TranscriptionUsage::Duration { seconds: 2.5 })
    );
    assert_eq!(with_usage("null"), None);
    assert_eq!(
        with_usage(r#"{"type":"characters","count":3}"#),
        None,
        "an unknown billing kind loses the usage, not the transcript"
    );
    assert_eq!(
        with_usage(r#"{"type":"tokens"}"#),
        Some(TranscriptionUsage::Tokens {
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0
        })
    );
}

#[test]
fn input_transcription_failed() {
    assert_eq!(
        parse(
            r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"e","item_id":"msg_003","content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"The audio could not be transcribed.","param":null}}"#
        ),
        ServerEvent::InputTranscriptFailed {
            item_id: "msg_003".to_owned(),
            error: Some(ApiError {
                kind: "transcription_error".to_owned(),
                code: Some("audio_unintelligible".to_owned()),
                message: "The audio could not be transcribed.".to_owned(),
                param: None,
                event_id: None,
            })
        }
    );
    assert_eq!(
        parse(r#"{"type":"conversation.item.input_audio_transcription.failed","item_id":"i"}"#),
        ServerEvent::InputTranscriptFailed {
            item_id: "i".to_owned(),
            error: None
        }
    );
}

#[test]
fn response_done_flattens_usage() {
    let event = parse(
        r#"{"type":"response.done","event_id":"event_CCXHxcMy86rrKhBLDdqCh","response":{"object":"realtime.response","id":"resp_CCXHw0UJld10EzIUXQCNh","status":"completed","status_details":null,"output":[{"id":"item_CCXHwGjjDUfOXbiySlK7i","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Loud and clear! I can hear you perfectly. How can I help you today?"}]}],"conversation_id":"conv_CCXHsurMKcaVxIZvaCI5m","output_modalities":["audio"],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"alloy"}},"usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121,"input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,"cached_tokens":64,"cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},"output_token_details":{"text_tokens":30,"audio_tokens":91}},"metadata":null}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                function_calls: Vec::new(),
                id: "resp_CCXHw0UJld10EzIUXQCNh".to_owned(),
                status: ResponseStatus::Completed,
                status_reason: None,
                error: None,
                usage: Some(ResponseUsage {
                    input_tokens: 132,
                    output_tokens: 121,
                    total_tokens: 253,
                    input_text_tokens: 119,
                    input_audio_tokens: 13,
                    input_cached_tokens: 64,
                    input_cached_text_tokens: 64,
                    input_cached_audio_tokens: 0,
                    output_text_tokens: 30,
                    output_audio_tokens: 91,
                }),
            }
        }
    );
}

#[test]
fn response_done_without_details_or_usage() {
    let event = parse(
        r#"{"type":"response.done","event_id":"e","response":{"id":"resp_2","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[],"usage":{"total_tokens":0,"input_tokens":0,"output_tokens":0}}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                function_calls: Vec::new(),
                id: "resp_2".to_owned(),
                status: ResponseStatus::Cancelled,
                status_reason: Some("turn_detected".to_owned()),
                error: None,
                usage: Some(ResponseUsage::default()),
            }
        }
    );
    let event = parse(
        r#"{"type":"response.done","response":{"id":"resp_3","status":"completed","usage":{"total_tokens":10,"input_tokens":4,"output_tokens":6,"input_token_details":null,"output_token_details":{"audio_tokens":6}}}}"#,
    );
    let ServerEvent::ResponseDone { response } = event else {
        panic!("not response.done");
    };
    assert_eq!(
        response.usage,
        Some(ResponseUsage {
            input_tokens: 4,
            output_tokens: 6,
            total_tokens: 10,
            output_audio_tokens: 6,
            ..ResponseUsage::default()
        })
    );
    assert_eq!(
        parse(
            r#"{"type":"response.done","response":{"id":"resp_4","status":"completed","usage":null}}"#
        ),
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                function_calls: Vec::new(),
                id: "resp_4".to_owned(),
                status: ResponseStatus::Completed,
                ..ResponseSummary::default()
            }
        }
    );
}

#[test]
fn response_done_failed_carries_the_error() {
    let event = parse(
        r#"{"type":"response.done","event_id":"e","response":{"id":"resp_5","status":"failed","status_details":{"type":"failed","error":{"type":"invalid_request_error","code":"rate_limit_exceeded","message":"Rate limit reached for gpt-realtime-2.1 on tokens per min. Please try again in 2s."}},"output":[],"usage":null}}"#,
    );
    assert_eq!(
        event,
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                function_calls: Vec::new(),
                id: "resp_5".to_owned(),
                status: ResponseStatus::Failed,
                status_reason: None,
                error: Some(ResponseError {
                    kind: "invalid_request_error".to_owned(),
                    code: Some("rate_limit_exceeded".to_owned()),
                    message: Some(
                        "Rate limit reached for gpt-realtime-2.1 on tokens per min. Please try again in 2s."
                            .to_owned()
                    ),
                }),
                usage: None,
            }
        }
    );
}

#[test]
fn item_truncated() {
    assert_eq!(
        parse(
            r#"{"type":"conversation.item.truncated","event_id":"event_2526","item_id":"msg_004","content_index":0,"audio_end_ms":1500}"#
        ),
        ServerEvent::ItemTruncated {
            item_id: "msg_004".to_owned(),
            content_index: 0,
            audio_end_ms: 1_500
        }
    );
}

#[test]
fn other_events_keep_their_type() {
    let event = parse(
        r#"{"type":"rate_limits.updated","event_id":"event_C9G8qJnz0ty6ohTEZDh7l","rate_limits":[{"name":"requests","limit":5000,"remaining":4999,"reset_seconds":0.012},{"name":"tokens","limit":15000000,"remaining":14995388,"reset_seconds":0.018}]}"#,
    );
    assert_eq!(
        event,
        ServerEvent::Other {
            kind: "rate_limits.updated".to_owned()
        }
    );
    assert_eq!(event.kind(), "rate_limits.updated");
    assert_eq!(
        parse(r#"{"type":"response.output_audio_transcript.delta","delta":"Hel"}"#).kind(),
        "response.output_audio_transcript.delta"
    );
    // An unknown event may use a known field name with any shape.
    assert_eq!(
        parse(r#"{"type":"some.future_event","delta":{"nested":[1,2]},"item_id":7}"#),
        ServerEvent::Other {
            kind: "some.future_event".to_owned()
        }
    );
}

// --- tolerance and failures ---

#[test]
fn nulls_and_extra_fields_are_tolerated() {
    assert_eq!(
        parse(
            r#"{"type":"conversation.item.truncated","item_id":null,"content_index":null,"audio_end_ms":null,"brand_new":{"x":1}}"#
        ),
        ServerEvent::ItemTruncated {
            item_id: String::new(),
            content_index: 0,
            audio_end_ms: 0
        }
    );
}

#[test]
fn type_first_is_read_in_one_pass() {
    let text = r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":1,"delta":"AQID"}"#;
    let mut failure = Failure::None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let event = EventSeed {
        failure: &mut failure,
    }
    .deserialize(&mut deserializer)
    .unwrap();
    deserializer.end().unwrap();
    assert!(matches!(failure, Failure::None));
    assert_eq!(
        event,
        ServerEvent::AudioDelta {
            response_id: "r".to_owned(),
            item_id: "i".to_owned(),
            content_index: 1,
            delta: "AQID".to_owned()
        }
    );
}

#[test]
fn type_need_not_come_first() {
    assert_eq!(
        parse(r#"{"event_id":"e","item_id":"i","delta":"AA==","type":"response.audio.delta"}"#),
        ServerEvent::AudioDelta {
            response_id: String::new(),
            item_id: "i".to_owned(),
            content_index: 0,
            delta: "AA==".to_owned()
        }
    );
    assert_eq!(
        parse(r#"{"event_id":"e","type":"rate_limits.updated"}"#),
        ServerEvent::Other {
            kind: "rate_limits.updated".to_owned()
        }
    );
    // An escaped type still matches.
    assert_eq!(
        parse(r#"{"type":"response.output\u005faudio.done","item_id":"i"}"#).kind(),
        "response.output_audio.done"
    );
}

#[test]
fn malformed_json_is_not_json() {
    for text in [
        "",
        "not json",
        r#"{"type":"response.output_audio.delta","delta":"AA=="#,
        r#"{"type":"response.output_audio.delta","delta":"AA=="} trailing"#,
        r#"{"type":"rate_limits.updated","rate_limits":[}"#,
        r#"{"event_id":"e","type":"x",}"#,
    ] {
        assert!(
            matches!(ServerEvent::parse(text), Err(EventParseError::NotJson(_))),
            "{text}: {:?}",
            ServerEvent::parse(text)
        );
    }
}

#[test]
fn no_type_is_missing_type() {
    for text in [
        "{}",
        r#"{"event_id":"e","delta":"AA=="}"#,
        r#"{"type":5,"delta":"AA=="}"#,
        r#"{"event_id":"e","type":null}"#,
        r#"[{"type":"error"}]"#,
        r#""response.done""#,
        "42",
    ] {
        assert_eq!(
            ServerEvent::parse(text),
            Err(EventParseError::MissingType),
            "{text}"
        );
    }
}

#[test]
fn a_known_type_with_a_wrong_shape_is_bad_shape() {
    for (text, expected_kind) in [
        (
            r#"{"type":"response.output_audio.delta","delta":5}"#,
            "response.output_audio.delta",
        ),
        (
            r#"{"event_id":"e","type":"response.audio.delta","delta":5}"#,
            "response.audio.delta",
        ),
        (
            r#"{"type":"response.output_audio.delta","item_id":"i"}"#,
            "response.output_audio.delta",
        ),
        (
            r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":-5}"#,
            "input_audio_buffer.speech_started",
        ),
    ] {
        match ServerEvent::parse(text) {
            Err(EventParseError::BadShape { kind, message }) => {
                assert_eq!(kind, expected_kind);
                assert!(!message.is_empty());
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let err = ServerEvent::parse(
        r#"{"type":"response.done","response":{"id":"r","usage":{"input_tokens":"many"}}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, EventParseError::BadShape { kind, .. } if kind == "response.done"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("`response.done` event has an unexpected shape: "),
        "{err}"
    );
}

#[test]
fn bad_shape_messages_are_short() {
    let long = "A".repeat(10_000);
    let text = format!(r#"{{"type":"conversation.item.truncated","audio_end_ms":"{long}"}}"#);
    let Err(EventParseError::BadShape { message, .. }) = ServerEvent::parse(&text) else {
        panic!("expected a bad shape");
    };
    assert!(
        message.chars().count() <= MAX_PARSE_MESSAGE_CHARS + 1,
        "{message}"
    );
}

#[test]
fn response_done_lists_the_function_calls_of_its_output() {
    let event = parse(
        r#"{"type":"response.done","response":{"id":"resp_1","status":"completed","output":[
            {"id":"item_a","type":"message","role":"assistant","content":[{"type":"output_audio","transcript":"Let me check."}]},
            {"id":"item_b","type":"function_call","call_id":"call_1","name":"lookup_order","arguments":"{\"order_id\":\"A-1\"}","status":"completed"},
            {"id":"item_c","type":"function_call","call_id":"call_2","name":"hang_up","arguments":"{}"}
        ]}}"#,
    );
    let ServerEvent::ResponseDone { response } = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        response.function_calls,
        vec![
            FunctionCall {
                call_id: "call_1".into(),
                name: "lookup_order".into(),
                arguments: r#"{"order_id":"A-1"}"#.into(),
            },
            FunctionCall {
                call_id: "call_2".into(),
                name: "hang_up".into(),
                arguments: "{}".into(),
            },
        ]
    );
    let created = parse(
        r#"{"type":"response.created","response":{"id":"resp_2","conversation_id":null,"metadata":{"purpose":"tool_filler"}}}"#,
    );
    assert_eq!(
        created,
        ServerEvent::ResponseCreated {
            response_id: "resp_2".into(),
            purpose: Some("tool_filler".into()),
        }
    );
}
