use serde_json::json;

use super::*;

fn parse(value: Value) -> ServerEvent {
    ServerEvent::parse(&value.to_string()).unwrap()
}

#[test]
fn the_documented_server_events_are_read() {
    assert_eq!(
        parse(json!({"type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {"conversation_id": "conv_1",
                "agent_output_audio_format": "pcm_8000", "user_input_audio_format": "pcm_16000"}})),
        ServerEvent::InitiationMetadata {
            conversation_id: "conv_1".into(),
            input_format: AudioFormat::Pcm(16_000),
            output_format: AudioFormat::Pcm(8_000),
        }
    );
    assert_eq!(
        parse(
            json!({"type": "audio", "audio_event": {"audio_base_64": "AAA=", "event_id": 3,
            "alignment": {"chars": ["H"], "char_start_times_ms": [0], "char_durations_ms": [50]}}})
        ),
        ServerEvent::Audio {
            event_id: 3,
            audio_base64: "AAA=".into()
        }
    );
    assert_eq!(
        parse(json!({"type": "interruption", "interruption_event": {"event_id": 3}})),
        ServerEvent::Interruption { event_id: 3 }
    );
    assert_eq!(
        parse(json!({"type": "ping", "ping_event": {"event_id": 9, "ping_ms": 42}})),
        ServerEvent::Ping {
            event_id: 9,
            ping_ms: Some(42)
        }
    );
    assert_eq!(
        parse(json!({"type": "agent_response", "agent_response_event": {"agent_response": "Hi"}})),
        ServerEvent::AgentResponse { text: "Hi".into() }
    );
    assert_eq!(
        parse(
            json!({"type": "agent_response_correction", "agent_response_correction_event":
            {"original_agent_response": "Hello there", "corrected_agent_response": "Hello"}})
        ),
        ServerEvent::AgentResponseCorrection {
            original: "Hello there".into(),
            corrected: "Hello".into()
        }
    );
    assert_eq!(
        parse(
            json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": "Table for two"}})
        ),
        ServerEvent::UserTranscript {
            text: "Table for two".into()
        }
    );
    assert_eq!(
        parse(json!({"type": "client_tool_call", "client_tool_call":
            {"tool_name": "lookup_order", "tool_call_id": "tc_1", "parameters": {"order_id": "A-1"}}})),
        ServerEvent::ClientToolCall {
            tool_name: "lookup_order".into(),
            tool_call_id: "tc_1".into(),
            parameters: json!({"order_id": "A-1"})
        }
    );
    assert_eq!(
        parse(json!({"type": "vad_score", "vad_score_event": {"vad_score": 0.9}})),
        ServerEvent::VadScore { score: 0.9 }
    );
    for name in ["agent_tool_response", "agent_tool_response_event"] {
        assert_eq!(
            parse(
                json!({"type": "agent_tool_response", name: {"tool_name": "end_call", "is_error": false}})
            ),
            ServerEvent::AgentToolResponse {
                tool_name: "end_call".into(),
                tool_call_id: None,
                is_error: false
            }
        );
    }
    assert_eq!(
        parse(
            json!({"type": "agent_chat_response_part", "text_response_part": {"text": "x", "type": "delta"}})
        ),
        ServerEvent::Other {
            kind: "agent_chat_response_part".into()
        }
    );
}

#[test]
fn malformed_frames_say_what_is_wrong() {
    assert_eq!(ServerEvent::parse("nope"), Err(ParseError::NotJson));
    assert_eq!(ServerEvent::parse("[1]"), Err(ParseError::NotJson));
    assert_eq!(
        ServerEvent::parse(r#"{"audio_event": {}}"#),
        Err(ParseError::MissingType)
    );
    let error =
        ServerEvent::parse(r#"{"type": "audio", "audio_event": {"audio_base_64": "AA=="}}"#)
            .unwrap_err();
    assert_eq!(error.to_string(), "audio: no event_id integer");
    let error = ServerEvent::parse(
        r#"{"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event":
            {"conversation_id": "c", "agent_output_audio_format": "mp3_44100", "user_input_audio_format": "pcm_8000"}}"#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("mp3_44100"), "{error}");
}

#[test]
fn client_messages_have_the_documented_shapes() {
    let text =
        |message: ClientMessage<'_>| serde_json::from_str::<Value>(&message.to_text()).unwrap();
    assert_eq!(
        text(ClientMessage::Pong { event_id: 9 }),
        json!({"type": "pong", "event_id": 9})
    );
    assert_eq!(
        text(ClientMessage::ToolResult {
            tool_call_id: "tc_1",
            result: "{\"status\":\"shipped\"}",
            is_error: false
        }),
        json!({"type": "client_tool_result", "tool_call_id": "tc_1", "result": "{\"status\":\"shipped\"}", "is_error": false})
    );
    assert_eq!(
        text(ClientMessage::ContextualUpdate { text: "VIP caller" }),
        json!({"type": "contextual_update", "text": "VIP caller"})
    );
    assert_eq!(
        text(ClientMessage::UserMessage { text: "Hello" }),
        json!({"type": "user_message", "text": "Hello"})
    );
    let mut variables = Map::new();
    variables.insert("caller_number".into(), json!("+14155550100"));
    let initiation = Initiation {
        first_message: Some("Hi, Acme here.".into()),
        prompt: Some("Be brief.".into()),
        language: Some("en".into()),
        voice_id: Some("voice_1".into()),
        dynamic_variables: variables,
    };
    assert_eq!(
        text(ClientMessage::Initiation(&initiation)),
        json!({
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {
                "agent": {"first_message": "Hi, Acme here.", "language": "en", "prompt": {"prompt": "Be brief."}},
                "tts": {"voice_id": "voice_1"}
            },
            "dynamic_variables": {"caller_number": "+14155550100"}
        })
    );
    // Nothing to override: the bare message.
    assert_eq!(
        text(ClientMessage::Initiation(&Initiation::default())),
        json!({"type": "conversation_initiation_client_data"})
    );
}

#[test]
fn audio_chunks_are_written_into_one_reused_buffer() {
    let mut frame = String::from("left over");
    write_audio_chunk(&[0, 1, 2, 3], &mut frame);
    assert_eq!(frame, r#"{"user_audio_chunk":"AAECAw=="}"#);
    let parsed: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(parsed.as_object().unwrap().len(), 1, "no type key");
    write_audio_chunk(&[], &mut frame);
    assert_eq!(frame, r#"{"user_audio_chunk":""}"#);
}
