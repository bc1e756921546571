//! ConvaiProtocol alone: ElevenLabs' server frames (in the shapes of docs/protocols.md §5.4)
//! read into the bridge's events, and the bridge's requests written as ElevenLabs' messages.

use serde_json::{Value, json};

use super::*;
use crate::audio::pcm;

fn protocol() -> ConvaiProtocol {
    ConvaiProtocol::new(Initiation::default(), 8_000)
}

/// The events one server frame yields.
fn read(protocol: &mut ConvaiProtocol, frame: Value) -> Vec<BackendEvent> {
    let mut events = Vec::new();
    protocol
        .read(&frame.to_string(), &mut events)
        .expect("a well-formed frame");
    events
}

fn metadata(input: &str, output: &str) -> Value {
    json!({"type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {"conversation_id": "conv_1",
            "agent_output_audio_format": output, "user_input_audio_format": input}})
}

fn audio(event_id: u64, b64: &str) -> Value {
    json!({"type": "audio", "audio_event": {"audio_base_64": b64, "event_id": event_id}})
}

fn interruption(event_id: u64) -> Value {
    json!({"type": "interruption", "interruption_event": {"event_id": event_id}})
}

fn agent_response(text: &str) -> Value {
    json!({"type": "agent_response", "agent_response_event": {"agent_response": text}})
}

fn correction(original: &str, corrected: &str) -> Value {
    json!({"type": "agent_response_correction", "agent_response_correction_event":
        {"original_agent_response": original, "corrected_agent_response": corrected}})
}

fn user_transcript(text: &str) -> Value {
    json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": text}})
}

fn started(turn: &str) -> BackendEvent {
    BackendEvent::ResponseStarted {
        response_id: turn.into(),
        purpose: None,
    }
}

fn played(turn: &str, b64: &str) -> BackendEvent {
    BackendEvent::AssistantAudio {
        response_id: turn.into(),
        item_id: turn.into(),
        content_index: 0,
        audio_base64: b64.into(),
    }
}

fn done(turn: &str, status: ResponseStatus) -> BackendEvent {
    BackendEvent::ResponseDone(ResponseSummary {
        id: turn.into(),
        status,
        ..ResponseSummary::default()
    })
}

fn said(text: &str, interrupted: bool) -> BackendEvent {
    BackendEvent::AssistantTranscript {
        item_id: None,
        text: text.into(),
        interrupted,
    }
}

fn heard(text: &str) -> BackendEvent {
    BackendEvent::UserTranscript {
        item_id: None,
        text: text.into(),
    }
}

fn json_of(message: &str) -> Value {
    serde_json::from_str(message).unwrap()
}

#[test]
fn the_metadata_configures_the_session_with_the_agents_formats() {
    let mut protocol = protocol();
    assert_eq!(
        read(&mut protocol, metadata("pcm_16000", "pcm_24000")),
        [BackendEvent::Configured {
            expires_at: None,
            formats: Some((AiAudio::Pcm(16_000), AiAudio::Pcm(24_000))),
        }]
    );
    assert_eq!(
        read(&mut protocol, metadata("ulaw_8000", "pcm_8000")),
        [BackendEvent::Configured {
            expires_at: None,
            formats: Some((AiAudio::Mulaw8k, AiAudio::Pcm(8_000))),
        }]
    );
    // A format ElevenLabs does not have is a frame that cannot be read, not a guess.
    let mut events = Vec::new();
    let bad = metadata("pcm_11025", "pcm_8000").to_string();
    assert!(protocol.read(&bad, &mut events).is_err());
    assert!(events.is_empty());
}

#[test]
fn the_first_playable_audio_opens_turn_1_and_the_rest_stays_in_it() {
    let mut protocol = protocol();
    assert_eq!(
        read(&mut protocol, audio(1, "AAE=")),
        [started("turn-1"), played("turn-1", "AAE=")]
    );
    assert_eq!(
        read(&mut protocol, audio(2, "AgM=")),
        [played("turn-1", "AgM=")],
        "no second ResponseStarted within a turn"
    );
}

#[test]
fn an_interruption_cancels_the_turn_and_only_newer_audio_opens_the_next() {
    let mut protocol = protocol();
    read(&mut protocol, audio(4, "AAE="));
    assert_eq!(
        read(&mut protocol, interruption(5)),
        [
            BackendEvent::Interrupted,
            done("turn-1", ResponseStatus::Cancelled)
        ]
    );
    // Audio of the interrupted turn still in flight: the interruption's own id and older.
    assert_eq!(
        read(&mut protocol, audio(5, "AAE=")),
        [BackendEvent::StaleAudio]
    );
    assert_eq!(
        read(&mut protocol, audio(3, "AAE=")),
        [BackendEvent::StaleAudio]
    );
    assert_eq!(
        read(&mut protocol, audio(6, "BAU=")),
        [started("turn-2"), played("turn-2", "BAU=")]
    );
    // An interruption with no turn open (the caller spoke while nothing was generated) closes
    // nothing.
    read(&mut protocol, user_transcript("Wait"));
    assert_eq!(
        read(&mut protocol, interruption(7)),
        [BackendEvent::Interrupted]
    );
}

#[test]
fn every_ping_is_reported_with_its_id_and_answered_with_a_pong() {
    let mut protocol = protocol();
    assert_eq!(
        read(
            &mut protocol,
            json!({"type": "ping", "ping_event": {"event_id": 41, "ping_ms": 80}})
        ),
        [BackendEvent::Ping { event_id: 41 }]
    );
    assert_eq!(
        read(
            &mut protocol,
            json!({"type": "ping", "ping_event": {"event_id": 42}})
        ),
        [BackendEvent::Ping { event_id: 42 }],
        "ping_ms is optional"
    );
    let mut out = Vec::new();
    protocol.pong(42, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(json_of(&out[0]), json!({"type": "pong", "event_id": 42}));
}

#[test]
fn the_agents_text_is_held_until_the_callers_next_transcript() {
    let mut protocol = protocol();
    read(&mut protocol, audio(1, "AAE="));
    assert!(
        read(&mut protocol, agent_response("Hello, how can I help?")).is_empty(),
        "held: a correction may still replace it"
    );
    assert_eq!(
        read(&mut protocol, user_transcript("I need a table")),
        [
            done("turn-1", ResponseStatus::Completed),
            said("Hello, how can I help?", false),
            heard("I need a table"),
        ],
        "the agent's words come before the caller's answer to them"
    );
}

#[test]
fn text_sent_before_its_audio_belongs_to_the_turn_that_audio_opens() {
    // ElevenLabs sends `agent_response` with (just before) the turn's first audio.
    let mut protocol = protocol();
    assert!(read(&mut protocol, agent_response("First.")).is_empty());
    assert_eq!(
        read(&mut protocol, audio(1, "AAE=")),
        [started("turn-1"), played("turn-1", "AAE=")]
    );
    // The next turn's text while turn 1 still counts as open: turn 1 is over.
    assert_eq!(
        read(&mut protocol, agent_response("Second.")),
        [
            done("turn-1", ResponseStatus::Completed),
            said("First.", false)
        ]
    );
    assert_eq!(
        read(&mut protocol, audio(2, "AgM=")),
        [started("turn-2"), played("turn-2", "AgM=")]
    );
    let mut events = Vec::new();
    protocol.finish(&mut events);
    assert_eq!(events, [said("Second.", false)]);
}

#[test]
fn after_an_interruption_the_correction_replaces_the_agents_text() {
    let mut protocol = protocol();
    let mut events = Vec::new();
    events.extend(read(
        &mut protocol,
        agent_response("Our opening hours are nine to five"),
    ));
    events.extend(read(&mut protocol, audio(1, "AAE=")));
    events.extend(read(&mut protocol, interruption(1)));
    let corrected = read(
        &mut protocol,
        correction("Our opening hours are nine to five", "Our opening hours"),
    );
    assert_eq!(corrected, [said("Our opening hours", true)]);
    events.extend(corrected);
    let next = read(&mut protocol, user_transcript("Sorry, on Sunday?"));
    assert_eq!(
        next,
        [heard("Sorry, on Sunday?")],
        "the turn was already closed by the interruption"
    );
    events.extend(next);
    protocol.finish(&mut events);
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            BackendEvent::AssistantTranscript { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["Our opening hours"],
        "the original never reaches the transcript"
    );
}

#[test]
fn finish_releases_held_text_and_an_uncorrected_interrupted_turn_stays_marked() {
    let mut protocol = protocol();
    read(&mut protocol, audio(1, "AAE="));
    read(&mut protocol, agent_response("Goodbye!"));
    let mut events = Vec::new();
    protocol.finish(&mut events);
    assert_eq!(events, [said("Goodbye!", false)]);
    events.clear();
    protocol.finish(&mut events);
    assert!(events.is_empty(), "released once");

    // Interrupted, and the session ends before ElevenLabs sends the correction.
    let mut protocol = self::protocol();
    read(&mut protocol, audio(1, "AAE="));
    read(&mut protocol, agent_response("A long explanation"));
    read(&mut protocol, interruption(1));
    assert_eq!(
        read(&mut protocol, user_transcript("Stop")),
        [heard("Stop")],
        "still waiting for the correction"
    );
    let mut events = Vec::new();
    protocol.finish(&mut events);
    assert_eq!(events, [said("A long explanation", true)]);
}

#[test]
fn a_client_tool_call_asks_for_the_tool_with_its_parameters_as_json() {
    let mut protocol = protocol();
    let parameters = json!({"date": "2025-07-01", "party": 2});
    let events = read(
        &mut protocol,
        json!({"type": "client_tool_call", "client_tool_call":
            {"tool_name": "book_table", "tool_call_id": "tc_1", "parameters": parameters}}),
    );
    let [BackendEvent::ToolCalls(calls)] = events.as_slice() else {
        panic!("one ToolCalls event: {events:?}");
    };
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call_id, "tc_1");
    assert_eq!(calls[0].name, "book_table");
    assert_eq!(json_of(&calls[0].arguments), parameters);

    let events = read(
        &mut protocol,
        json!({"type": "client_tool_call", "client_tool_call":
            {"tool_name": "ping_crm", "tool_call_id": "tc_2"}}),
    );
    let [BackendEvent::ToolCalls(calls)] = events.as_slice() else {
        panic!("one ToolCalls event: {events:?}");
    };
    assert_eq!(calls[0].arguments, "{}", "no parameters: an empty object");
}

#[test]
fn a_tool_output_is_written_as_a_client_tool_result_for_the_same_call() {
    let protocol = protocol();
    let mut out = Vec::new();
    protocol.tool_output("tc_1".into(), r#"{"booked":true}"#.into(), false, &mut out);
    protocol.tool_output("tc_2".into(), "timed out".into(), true, &mut out);
    assert_eq!(
        out.iter()
            .map(|message| json_of(message))
            .collect::<Vec<_>>(),
        [
            json!({"type": "client_tool_result", "tool_call_id": "tc_1",
                "result": r#"{"booked":true}"#, "is_error": false}),
            json!({"type": "client_tool_result", "tool_call_id": "tc_2",
                "result": "timed out", "is_error": true}),
        ]
    );
}

#[test]
fn the_built_in_end_call_ends_the_conversation_and_other_server_tools_are_acknowledged() {
    let mut protocol = protocol();
    let tool = |name: &str, payload: &str, is_error: bool| {
        json!({"type": "agent_tool_response", payload: {"tool_name": name,
            "tool_call_id": "t1", "tool_type": "system", "is_error": is_error}})
    };
    let acknowledged = [BackendEvent::Acknowledged {
        kind: "agent_tool_response",
    }];
    assert_eq!(
        read(
            &mut protocol,
            tool("end_call", "agent_tool_response", false)
        ),
        [BackendEvent::AgentEndedCall]
    );
    // Seen under both payload names (docs/protocols.md §5.4).
    assert_eq!(
        read(
            &mut protocol,
            tool("end_call", "agent_tool_response_event", false)
        ),
        [BackendEvent::AgentEndedCall]
    );
    assert_eq!(
        read(&mut protocol, tool("end_call", "agent_tool_response", true)),
        acknowledged,
        "a failed end_call did not end anything"
    );
    assert_eq!(
        read(
            &mut protocol,
            tool("crm_webhook", "agent_tool_response", false)
        ),
        acknowledged
    );
}

#[test]
fn the_opening_is_the_initiation_with_the_calls_overrides() {
    let initiation = Initiation {
        first_message: Some("Hi, this is Ava.".into()),
        prompt: Some("You book tables.".into()),
        language: Some("en".into()),
        voice_id: Some("voice_1".into()),
        dynamic_variables: serde_json::from_value(json!({"caller_number": "+14155550100"}))
            .unwrap(),
    };
    let protocol = ConvaiProtocol::new(initiation, 8_000);
    let mut out = Vec::new();
    protocol.opening(&mut out);
    assert_eq!(
        out.len(),
        1,
        "nothing but the initiation before the metadata"
    );
    assert_eq!(
        json_of(&out[0]),
        json!({"type": "conversation_initiation_client_data",
            "conversation_config_override": {
                "agent": {"first_message": "Hi, this is Ava.", "language": "en",
                    "prompt": {"prompt": "You book tables."}},
                "tts": {"voice_id": "voice_1"}},
            "dynamic_variables": {"caller_number": "+14155550100"}})
    );
}

#[test]
fn caller_audio_is_written_as_a_bare_user_audio_chunk() {
    let protocol = protocol();
    let audio = [1_u8, 0, 255, 127, 0, 128];
    let mut frame = String::from("left over from the last chunk");
    protocol.write_audio(&audio, &mut frame);
    let value = json_of(&frame);
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 1, "no type key: {frame}");
    let mut bytes = Vec::new();
    pcm::decode_base64(object["user_audio_chunk"].as_str().unwrap(), &mut bytes).unwrap();
    assert_eq!(bytes, audio);
}

#[test]
fn the_capabilities_match_frejuns_rates_and_elevenlabs_own_turn_taking() {
    for (inbound, input) in [(8_000, AiAudio::Pcm(8_000)), (16_000, AiAudio::Pcm(16_000))] {
        let protocol = ConvaiProtocol::new(Initiation::default(), inbound);
        assert_eq!(
            protocol.capabilities(),
            Capabilities {
                input,
                output: AiAudio::Pcm(8_000),
                announces_formats: true,
                own_barge_in: true,
                speaks_on_request: false,
                marks_audio_end: false,
                reports_usage: false,
                session_expires: false,
            },
            "inbound {inbound} Hz"
        );
    }
    let protocol = protocol();
    assert_eq!(protocol.code_prefix(), "elevenlabs");
    assert_eq!(protocol.display_name(), "ElevenLabs");
}

#[test]
fn requests_elevenlabs_handles_itself_write_nothing() {
    let protocol = protocol();
    let mut out = Vec::new();
    protocol.say("Greet the caller".into(), &mut out);
    protocol.say_aside("tool_filler", "One moment".into(), &mut out);
    assert!(!protocol.cancel_response("turn-1", &mut out));
    protocol.truncate("turn-1", 0, 300, &mut out);
    protocol.continue_after_tools(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn close_codes_map_to_stable_error_codes() {
    let protocol = protocol();
    for (code, expected) in [
        (None, "elevenlabs_connection_lost"),
        (Some(1000), "elevenlabs_closed"),
        (Some(1001), "elevenlabs_closed"),
        (Some(1008), "elevenlabs_policy_violation"),
        (Some(1011), "elevenlabs_server_error"),
        (Some(4000), "elevenlabs_rejected"),
        (Some(4999), "elevenlabs_rejected"),
        (Some(5000), "elevenlabs_closed"),
    ] {
        assert_eq!(protocol.close_error_code(code, ""), expected, "{code:?}");
    }
}

#[test]
fn unreadable_frames_are_errors_and_unknown_types_are_only_named() {
    let mut protocol = protocol();
    let mut events = Vec::new();
    for bad in [
        "not json".to_owned(),
        json!({"audio_event": {}}).to_string(),
        json!({"type": "audio", "audio_event": {"audio_base_64": "AAE="}}).to_string(),
        json!({"type": "ping", "ping_event": {"event_id": "seven"}}).to_string(),
    ] {
        assert!(protocol.read(&bad, &mut events).is_err(), "{bad}");
    }
    assert!(events.is_empty());
    assert_eq!(
        read(
            &mut protocol,
            json!({"type": "agent_chat_response_part",
                "text_response_part": {"text": "Hi", "type": "delta"}})
        ),
        [BackendEvent::Other {
            kind: "agent_chat_response_part".into()
        }]
    );
    assert_eq!(
        read(
            &mut protocol,
            json!({"type": "vad_score", "vad_score_event": {"vad_score": 0.93}})
        ),
        [BackendEvent::Acknowledged { kind: "vad_score" }]
    );
    // A frame that failed does not disturb the turns: the next audio still opens turn 1.
    assert_eq!(read(&mut protocol, audio(1, "AAE=")).len(), 2);
}

#[test]
fn a_correction_after_the_next_turn_began_replaces_only_the_interrupted_text() {
    let mut protocol = protocol();
    let mut events = Vec::new();
    for frame in [
        agent_response("A long answer"),
        audio(1, "AAE="),
        interruption(1),
        user_transcript("X"),
        agent_response("B reply"),
        correction("A long answer", "A long"),
        audio(2, "AAE="),
    ] {
        events.extend(read(&mut protocol, frame));
    }
    protocol.finish(&mut events);
    let transcript: Vec<BackendEvent> = events
        .into_iter()
        .filter(|event| {
            matches!(
                event,
                BackendEvent::AssistantTranscript { .. } | BackendEvent::UserTranscript { .. }
            )
        })
        .collect();
    assert_eq!(
        transcript,
        [heard("X"), said("A long", true), said("B reply", false)],
        "the interrupted text is corrected, the next turn's text kept, the original never shown"
    );
}

#[test]
fn text_for_a_turn_cut_off_before_its_audio_does_not_split_the_next_turn() {
    let mut protocol = protocol();
    read(&mut protocol, agent_response("A"));
    read(&mut protocol, interruption(3));
    read(&mut protocol, user_transcript("X"));
    let mut events = read(&mut protocol, audio(4, "AAE="));
    events.extend(read(&mut protocol, agent_response("B")));
    events.extend(read(&mut protocol, audio(5, "AAE=")));
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, BackendEvent::ResponseDone(_))),
        "audio 4 and 5 are one turn: {events:?}"
    );
    assert_eq!(events.first(), Some(&started("turn-1")));
    assert_eq!(events.last(), Some(&played("turn-1", "AAE=")));
}

#[test]
fn formats_are_named_as_elevenlabs_spells_them() {
    let protocol = protocol();
    assert_eq!(protocol.format_name(AiAudio::Pcm(24_000)), "pcm_24000");
    assert_eq!(protocol.format_name(AiAudio::Pcm(8_000)), "pcm_8000");
    assert_eq!(protocol.format_name(AiAudio::Mulaw8k), "ulaw_8000");
    assert!(!protocol.capabilities().reports_usage);
}
