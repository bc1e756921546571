//! The core driving an ElevenLabs conversation end to end: caller audio held for the agent's
//! formats, agent audio to FreJun (resampled only when the agent is not at 8 kHz), the idle
//! flush, barge-in that ElevenLabs detects itself, pings, transcripts with corrections, client
//! tools, the agent ending the call, and failures.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::audio::{pcm, tone};
use crate::bridge::core::{BridgeCore, CoreConfig, Effects, ToolEffect, ToolResult, ToolsConfig};
use crate::bridge::teler_media::CLEAR_MESSAGE;
use crate::domain::assistant::tools::{Tool, ToolKind};
use crate::domain::call::record::{ToolOutcome, TranscriptRole, TranscriptTurn};
use crate::domain::call::{CallStatus, EndReason};
use crate::providers::elevenlabs::{ConvaiProtocol, Initiation};

/// The assistant's one client tool.
fn lookup_tool() -> ToolsConfig {
    let tools: Vec<Tool> = serde_json::from_value(json!([
        {"type": "http", "name": "lookup", "description": "", "url": "https://crm.example.com/"}
    ]))
    .unwrap();
    ToolsConfig::new(&tools, None, Duration::from_millis(1_200), 4)
}

/// A core for an ElevenLabs agent on a FreJun flow at `inbound_rate`. A greeting is configured
/// so that the tests can see it is not asked for (the agent's first message is its greeting).
fn new_core(inbound_rate: u32, tools: ToolsConfig) -> BridgeCore {
    let initiation = Initiation {
        first_message: Some("Hello!".into()),
        ..Initiation::default()
    };
    BridgeCore::new(
        CoreConfig {
            inbound_rate,
            outbound_chunk_ms: 200,
            playback_chunk_ms: 200,
            greeting: Some("Hello!".into()),
            ..CoreConfig::for_tests(tools)
        },
        Box::new(ConvaiProtocol::new(initiation, inbound_rate)),
        Instant::now(),
    )
}

/// A core whose conversation started with the agent at `input`/`output`.
fn talking(inbound_rate: u32, input: &str, output: &str, now: Instant) -> BridgeCore {
    let mut core = new_core(inbound_rate, lookup_tool());
    let mut fx = Effects::default();
    core.ai_connected(SystemTime::now(), &mut fx);
    ai(&mut core, metadata(input, output), now);
    core
}

/// Feeds one ElevenLabs frame; the call must go on.
fn ai(core: &mut BridgeCore, frame: Value, now: Instant) -> Effects {
    let mut fx = Effects::default();
    let ending = core.ai_text(&frame.to_string(), now, &mut fx);
    assert!(ending.is_none(), "{frame} ended the call: {ending:?}");
    fx
}

fn metadata(input: &str, output: &str) -> Value {
    json!({"type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {"conversation_id": "conv_1",
            "agent_output_audio_format": output, "user_input_audio_format": input}})
}

fn agent_audio(event_id: u64, samples: &[i16]) -> Value {
    json!({"type": "audio", "audio_event": {"audio_base_64": b64(samples), "event_id": event_id}})
}

fn interruption(event_id: u64) -> Value {
    json!({"type": "interruption", "interruption_event": {"event_id": event_id}})
}

fn agent_response(text: &str) -> Value {
    json!({"type": "agent_response", "agent_response_event": {"agent_response": text}})
}

fn user_transcript(text: &str) -> Value {
    json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": text}})
}

fn ping(event_id: u64) -> Value {
    json!({"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 70}})
}

fn end_call() -> Value {
    json!({"type": "agent_tool_response", "agent_tool_response":
        {"tool_name": "end_call", "tool_call_id": "sys_1", "tool_type": "system", "is_error": false}})
}

fn b64(samples: &[i16]) -> String {
    let mut text = String::new();
    pcm::encode_base64(&le_bytes(samples), &mut text);
    text
}

fn decode(b64: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    pcm::decode_base64(b64, &mut bytes).unwrap();
    bytes
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|sample| sample.to_le_bytes())
        .collect()
}

/// Distinguishable audio: any reordering, resampling or loss changes it.
fn ramp(samples: usize, seed: i32) -> Vec<i16> {
    (0..samples as i32)
        .map(|i| ((i * 37 + seed) % 20_000 - 10_000) as i16)
        .collect()
}

/// FreJun's `start` for a flow at `rate`.
fn start(core: &mut BridgeCore, rate: u32) {
    let start = json!({"type": "start", "data": {"sample_rate": rate}}).to_string();
    assert!(
        core.teler_text(&start, Instant::now(), &mut Effects::default())
            .is_none()
    );
}

/// FreJun's audio message for `samples` (at its flow's rate).
fn caller(core: &mut BridgeCore, samples: &[i16], now: Instant) -> Effects {
    let frame = json!({"type": "audio", "stream_id": "s", "message_id": 2,
        "data": {"audio_b64": b64(samples)}});
    let mut fx = Effects::default();
    assert!(core.teler_text(&frame.to_string(), now, &mut fx).is_none());
    fx
}

/// A client tool call from the agent.
fn tool_call(core: &mut BridgeCore, name: &str, id: &str, parameters: &Value) -> Effects {
    let frame = json!({"type": "client_tool_call", "client_tool_call":
        {"tool_name": name, "tool_call_id": id, "parameters": parameters}});
    ai(core, frame, Instant::now())
}

/// The transcript turns as (role, text, interrupted).
fn turns(turns: Vec<TranscriptTurn>) -> Vec<(TranscriptRole, String, bool)> {
    turns
        .into_iter()
        .map(|turn| (turn.role, turn.text, turn.interrupted))
        .collect()
}

/// The decoded bytes of each `user_audio_chunk` message; any other message fails the test.
fn audio_chunks(to_ai: &[String]) -> Vec<Vec<u8>> {
    to_ai
        .iter()
        .map(|message| {
            let value: Value = serde_json::from_str(message).unwrap();
            let chunk = value["user_audio_chunk"].as_str();
            decode(chunk.unwrap_or_else(|| panic!("not caller audio: {message}")))
        })
        .collect()
}

/// The samples of each audio message to FreJun; any other message fails the test.
fn teler_audio(to_teler: &[String]) -> Vec<Vec<i16>> {
    to_teler
        .iter()
        .map(|message| {
            let value: Value = serde_json::from_str(message).unwrap();
            assert_eq!(value["type"], "audio", "{message}");
            let mut samples = Vec::new();
            pcm::decode_s16le(&decode(value["audio_b64"].as_str().unwrap()), &mut samples);
            samples
        })
        .collect()
}

fn json_of(messages: &[String]) -> Vec<Value> {
    messages
        .iter()
        .map(|message| serde_json::from_str(message).unwrap())
        .collect()
}

#[test]
fn caller_audio_waits_for_the_metadata_then_reaches_a_pcm_8000_agent_unchanged() {
    let now = Instant::now();
    let mut core = new_core(8_000, ToolsConfig::none());
    start(&mut core, 8_000);
    let mut fx = Effects::default();
    let (first, second, third) = (ramp(800, 1), ramp(800, 2), ramp(800, 3));
    assert!(
        fx.is_empty() && caller(&mut core, &first, now).is_empty(),
        "nothing goes anywhere before ElevenLabs is connected"
    );

    core.ai_connected(SystemTime::now(), &mut fx);
    let opening = json_of(&fx.to_ai);
    assert_eq!(opening.len(), 1, "only the initiation: {opening:?}");
    assert_eq!(opening[0]["type"], "conversation_initiation_client_data");
    // Connected, but the agent's formats are not known yet: still held.
    assert!(caller(&mut core, &second, now).to_ai.is_empty());

    let fx = ai(&mut core, metadata("pcm_8000", "pcm_8000"), now);
    assert_eq!(
        audio_chunks(&fx.to_ai),
        [le_bytes(&first), le_bytes(&second)],
        "the held audio, in order and sample for sample; no greeting request"
    );
    assert_eq!(
        audio_chunks(&caller(&mut core, &third, now).to_ai),
        [le_bytes(&third)]
    );
}

#[test]
fn sixteen_khz_callers_reach_a_pcm_16000_agent_unchanged() {
    let now = Instant::now();
    let mut core = new_core(16_000, ToolsConfig::none());
    start(&mut core, 16_000);
    core.ai_connected(SystemTime::now(), &mut Effects::default());
    let early = ramp(1_600, 5);
    assert!(caller(&mut core, &early, now).to_ai.is_empty());
    let fx = ai(&mut core, metadata("pcm_16000", "pcm_8000"), now);
    assert_eq!(audio_chunks(&fx.to_ai), [le_bytes(&early)]);
    let later = ramp(1_600, 9);
    assert_eq!(
        audio_chunks(&caller(&mut core, &later, now).to_ai),
        [le_bytes(&later)]
    );
}

#[test]
fn agent_audio_at_8_khz_reaches_frejun_sample_for_sample() {
    let now = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", now);
    let (first, second) = (ramp(1_600, 11), ramp(1_600, 12));
    let fx = ai(&mut core, agent_audio(1, &first), now);
    assert_eq!(teler_audio(&fx.to_teler), [first], "one full 200 ms chunk");
    assert!(fx.to_ai.is_empty());
    let fx = ai(&mut core, agent_audio(2, &second), now);
    assert_eq!(teler_audio(&fx.to_teler), [second]);
    assert_eq!(json_of(&fx.to_teler)[0]["chunk_id"], 2);
}

#[test]
fn agent_audio_at_16_or_24_khz_is_resampled_to_8_khz() {
    for (format, rate) in [("pcm_16000", 16_000), ("pcm_24000", 24_000)] {
        let now = Instant::now();
        let mut core = talking(8_000, "pcm_8000", format, now);
        // One second of a 1 kHz tone in 100 ms events.
        let tone = tone::sine(1_000.0, rate, rate as usize, 8_000.0);
        let mut sent = Vec::new();
        for (index, piece) in tone.chunks(rate as usize / 10).enumerate() {
            let fx = ai(&mut core, agent_audio(index as u64 + 1, piece), now);
            sent.extend(teler_audio(&fx.to_teler));
        }
        let mut fx = Effects::default();
        core.timer_fired(core.next_timer().expect("the idle flush"), &mut fx);
        sent.extend(teler_audio(&fx.to_teler));
        let received = sent.concat();
        assert_eq!(received.len(), 8_000, "{format}: one second at 8 kHz");
        let level = tone::level_dbfs(&received[400..7_600], 1_000.0, 8_000);
        assert!(level > -13.0, "{format}: {level} dBFS");
    }
}

#[test]
fn the_last_partial_chunk_goes_out_only_after_the_idle_pause() {
    let t0 = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", t0);
    let audio = ramp(2_200, 21);
    let fx = ai(&mut core, agent_audio(1, &audio[..2_000]), t0);
    assert_eq!(teler_audio(&fx.to_teler), [audio[..1_600].to_vec()]);
    assert_eq!(core.next_timer(), Some(t0 + Duration::from_millis(150)));

    let mut fx = Effects::default();
    core.timer_fired(t0 + Duration::from_millis(100), &mut fx);
    assert!(fx.is_empty(), "too early: more audio may come");
    // More audio moves the deadline.
    let at = t0 + Duration::from_millis(100);
    assert!(ai(&mut core, agent_audio(2, &audio[2_000..]), at).is_empty());
    let due = at + Duration::from_millis(150);
    assert_eq!(core.next_timer(), Some(due));
    core.timer_fired(t0 + Duration::from_millis(150), &mut fx);
    assert!(fx.is_empty(), "the first deadline no longer counts");

    core.timer_fired(due, &mut fx);
    assert_eq!(teler_audio(&fx.to_teler), [audio[1_600..].to_vec()]);
    assert_eq!(core.next_timer(), None);
}

#[test]
fn an_interruption_clears_frejun_and_drops_the_interrupted_turns_late_audio() {
    let t0 = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", t0);
    let mut to_ai = Vec::new();
    let fx = ai(&mut core, agent_audio(1, &ramp(1_600, 1)), t0);
    assert_eq!(fx.to_teler.len(), 1, "200 ms playing until t0 + 200 ms");
    to_ai.extend(fx.to_ai);
    to_ai.extend(ai(&mut core, agent_audio(2, &ramp(800, 2)), t0).to_ai);

    let at = t0 + Duration::from_millis(50);
    let fx = ai(&mut core, interruption(2), at);
    assert_eq!(fx.to_teler, [CLEAR_MESSAGE]);
    to_ai.extend(fx.to_ai);
    assert_eq!(core.next_timer(), None, "the rest is dropped");

    // Audio of the interrupted turn still in flight: nothing for FreJun.
    let fx = ai(&mut core, agent_audio(2, &ramp(800, 2)), at);
    assert!(fx.is_empty());
    assert_eq!(core.anomalies().stale_ai_audio, 1);

    let next = ramp(1_600, 3);
    let fx = ai(&mut core, agent_audio(3, &next), at);
    assert_eq!(teler_audio(&fx.to_teler), [next], "the next turn plays");
    to_ai.extend(fx.to_ai);
    // ElevenLabs stops itself: no cancel, no truncate.
    assert!(to_ai.is_empty(), "{to_ai:?}");
    assert_eq!(core.metrics().barge_ins, 1);

    // Once everything was heard and the turn is over, an interruption clears nothing.
    ai(&mut core, user_transcript("Right"), at);
    let fx = ai(&mut core, interruption(4), at + Duration::from_secs(5));
    assert!(fx.is_empty());
    assert_eq!(core.metrics().barge_ins, 1);
}

#[test]
fn every_ping_gets_exactly_one_pong() {
    let t0 = Instant::now();
    let mut core = new_core(8_000, ToolsConfig::none());
    core.ai_connected(SystemTime::now(), &mut Effects::default());
    let mut to_ai = ai(&mut core, ping(1), t0).to_ai;
    to_ai.extend(ai(&mut core, metadata("pcm_8000", "pcm_8000"), t0).to_ai);
    to_ai.extend(ai(&mut core, ping(2), t0).to_ai);
    to_ai.extend(ai(&mut core, agent_audio(1, &ramp(400, 1)), t0).to_ai);
    to_ai.extend(ai(&mut core, ping(3), t0).to_ai);
    to_ai.extend(ai(&mut core, ping(3), t0).to_ai);
    assert_eq!(
        json_of(&to_ai),
        [1, 2, 3, 3].map(|id| json!({"type": "pong", "event_id": id})),
        "one pong per ping, before the metadata too, even for a repeated id"
    );
}

#[test]
fn transcripts_hold_the_agents_text_and_keep_the_correction_of_an_interrupted_turn() {
    let t0 = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", t0);
    // ElevenLabs' order: the turn's text just before its first audio.
    ai(&mut core, agent_response("Hi, Ava here."), t0);
    ai(&mut core, agent_audio(1, &ramp(800, 1)), t0);
    ai(&mut core, user_transcript("I'd like a table"), t0);
    assert_eq!(
        turns(core.take_progress(true).expect("new turns").new_turns),
        [
            (TranscriptRole::Assistant, "Hi, Ava here.".into(), false),
            (TranscriptRole::User, "I'd like a table".into(), false),
        ]
    );

    let at = t0 + Duration::from_secs(2);
    ai(&mut core, agent_response("We have seven and nine"), at);
    ai(&mut core, agent_audio(2, &ramp(1_600, 2)), at);
    ai(&mut core, interruption(2), at + Duration::from_millis(50));
    ai(
        &mut core,
        json!({"type": "agent_response_correction", "agent_response_correction_event":
            {"original_agent_response": "We have seven and nine",
             "corrected_agent_response": "We have seven"}}),
        at,
    );
    ai(&mut core, user_transcript("Seven, please"), at);
    ai(&mut core, agent_response("Booked."), at);
    ai(&mut core, agent_audio(3, &ramp(800, 3)), at);
    // The call ends with the last turn's text still held: it goes into the record.
    core.ai_finished(at);
    let progress = core.final_progress();
    assert_eq!(progress.first_turn_index, 2);
    assert_eq!(
        turns(progress.new_turns),
        [
            (TranscriptRole::Assistant, "We have seven".into(), true),
            (TranscriptRole::User, "Seven, please".into(), false),
            (TranscriptRole::Assistant, "Booked.".into(), false),
        ],
        "what the caller heard replaces the interrupted text, which never appears"
    );
}

#[test]
fn an_elevenlabs_call_has_no_token_usage_and_names_the_agents_formats() {
    let now = Instant::now();
    let mut core = talking(8_000, "pcm_24000", "pcm_8000", now);
    ai(&mut core, agent_audio(1, &ramp(800, 1)), now);
    ai(&mut core, user_transcript("Thanks"), now);
    core.ai_finished(now);
    let progress = core.final_progress();
    assert_eq!(progress.usage, None, "ElevenLabs reports no tokens");
    assert_eq!(
        progress.cost_usd, None,
        "and voxbridge does not price its minutes"
    );
    assert_eq!(core.ai_audio_label(), "pcm_24000", "ElevenLabs' own name");
}

#[test]
fn client_tools_run_and_are_answered_with_client_tool_results() {
    let now = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", now);
    let mut to_ai = Vec::new();
    let parameters = json!({"phone": "+14155550100"});
    let fx = tool_call(&mut core, "lookup", "tc_1", &parameters);
    assert_eq!(fx.tool_calls.len(), 1);
    let request = &fx.tool_calls[0];
    assert_eq!(
        (request.call_id.as_str(), request.name.as_str()),
        ("tc_1", "lookup")
    );
    assert_eq!(request.kind, ToolKind::Http);
    assert_eq!(
        serde_json::from_str::<Value>(&request.arguments).unwrap(),
        parameters
    );
    assert!(fx.to_ai.is_empty(), "nothing goes back before the result");
    let again = tool_call(&mut core, "lookup", "tc_1", &parameters);
    assert!(again.is_empty(), "a repeated call id is not run twice");

    let result = |call_id: &str, output: &str, outcome: ToolOutcome| ToolResult {
        call_id: call_id.into(),
        output: output.into(),
        outcome,
        error_code: None,
        http_status: Some(200),
        effect: ToolEffect::None,
    };
    let mut fx = Effects::default();
    let ending = core.tool_finished(
        result("tc_1", r#"{"name":"Ann"}"#, ToolOutcome::Ok),
        now,
        &mut fx,
    );
    assert!(ending.is_none());
    assert_eq!(
        json_of(&fx.to_ai),
        [json!({"type": "client_tool_result", "tool_call_id": "tc_1",
            "result": r#"{"name":"Ann"}"#, "is_error": false})]
    );
    to_ai.extend(fx.to_ai);

    // A tool the assistant does not have is refused at once.
    let fx = tool_call(&mut core, "wire_money", "tc_2", &json!({}));
    assert!(fx.tool_calls.is_empty());
    let refusal = json_of(&fx.to_ai);
    assert_eq!(refusal.len(), 1);
    assert_eq!(
        (&refusal[0]["tool_call_id"], &refusal[0]["is_error"]),
        (&json!("tc_2"), &json!(true))
    );
    assert!(fx.to_ai[0].contains("unknown_tool"), "{}", fx.to_ai[0]);
    to_ai.extend(fx.to_ai);

    // A tool that failed is an error result.
    let fx = tool_call(&mut core, "lookup", "tc_3", &parameters);
    assert_eq!(fx.tool_calls.len(), 1);
    let mut fx = Effects::default();
    core.tool_finished(result("tc_3", "HTTP 500", ToolOutcome::Error), now, &mut fx);
    assert_eq!(json_of(&fx.to_ai)[0]["is_error"], true);
    to_ai.extend(fx.to_ai);

    let kinds: Vec<Value> = json_of(&to_ai).iter().map(|m| m["type"].clone()).collect();
    assert_eq!(
        kinds, ["client_tool_result"; 3],
        "ElevenLabs goes on by itself: never a response.create"
    );
}

#[test]
fn after_end_call_the_socket_closing_ends_the_call_once_the_goodbye_is_heard() {
    let t0 = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", t0);
    ai(&mut core, agent_audio(1, &ramp(1_600, 1)), t0);
    ai(&mut core, end_call(), t0);
    // No new tool starts once the agent ended the conversation.
    let fx = tool_call(&mut core, "lookup", "tc_9", &json!({}));
    assert!(fx.tool_calls.is_empty());
    assert_eq!(json_of(&fx.to_ai)[0]["is_error"], true);

    let closed = t0 + Duration::from_millis(50);
    assert_eq!(core.ai_socket_closed(Some(1000), "", closed), None);
    assert_eq!(core.closing_done(t0 + Duration::from_millis(100)), None);
    let ending = core
        .closing_done(t0 + Duration::from_millis(250))
        .expect("the goodbye was heard");
    assert_eq!(ending.reason, EndReason::AssistantEndedCall);
    assert_eq!(ending.error, None);
    assert_eq!(ending.status(), CallStatus::Completed);

    // With nothing left to play, the close ends the call at once.
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", t0);
    ai(&mut core, end_call(), t0);
    let ending = core.ai_socket_closed(Some(1000), "", t0).unwrap();
    assert_eq!(ending.reason, EndReason::AssistantEndedCall);
}

#[test]
fn an_unasked_close_is_a_failure_and_a_connect_failure_before_the_metadata() {
    let now = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", now);
    let ending = core.ai_socket_closed(Some(1000), "", now).unwrap();
    assert_eq!(ending.reason, EndReason::AiError);
    assert_eq!(ending.status(), CallStatus::Failed);
    assert_eq!(ending.error.unwrap().code, "elevenlabs_closed");
    let lost = core.ai_socket_closed(None, "", now).unwrap();
    assert_eq!(lost.error.unwrap().code, "elevenlabs_connection_lost");

    let mut core = new_core(8_000, ToolsConfig::none());
    core.ai_connected(SystemTime::now(), &mut Effects::default());
    let ending = core.ai_socket_closed(Some(1000), "", now).unwrap();
    assert_eq!(ending.reason, EndReason::AiConnectFailed);
    assert_eq!(ending.error.unwrap().code, "elevenlabs_closed");
}

#[test]
fn a_malformed_frame_is_skipped_without_ending_the_call() {
    let now = Instant::now();
    let mut core = talking(8_000, "pcm_8000", "pcm_8000", now);
    let mut fx = Effects::default();
    assert!(core.ai_text("{nope", now, &mut fx).is_none());
    let no_id = json!({"type": "audio", "audio_event": {"audio_base_64": b64(&[1; 1_600])}});
    assert!(core.ai_text(&no_id.to_string(), now, &mut fx).is_none());
    assert!(fx.is_empty());
    assert_eq!(core.anomalies().bad_ai_events, 2);
    let audio = ramp(1_600, 4);
    let fx = ai(&mut core, agent_audio(1, &audio), now);
    assert_eq!(teler_audio(&fx.to_teler), [audio], "it goes on");
}
