//! The server → client messages the fake sends, shaped as in docs/protocols.md §5.4: each
//! carries `type` and a payload object named after it.

use serde_json::{Value, json};

use super::audio::AudioFormat;
use crate::audio::pcm;

/// `conversation_initiation_metadata`: the conversation id and the agent's formats.
pub(super) fn metadata(conversation_id: &str, input: AudioFormat, output: AudioFormat) -> String {
    json!({
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": conversation_id,
            "agent_output_audio_format": output.as_str(),
            "user_input_audio_format": input.as_str(),
        }
    })
    .to_string()
}

/// `audio` with the base64 of `bytes`.
pub(super) fn audio(event_id: u64, bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    pcm::encode_base64(bytes, &mut encoded);
    json!({
        "type": "audio",
        "audio_event": {"audio_base_64": encoded, "event_id": event_id}
    })
    .to_string()
}

/// `agent_response`.
pub(super) fn agent_response(text: &str) -> String {
    json!({
        "type": "agent_response",
        "agent_response_event": {"agent_response": text}
    })
    .to_string()
}

/// `user_transcript`.
pub(super) fn user_transcript(text: &str) -> String {
    json!({
        "type": "user_transcript",
        "user_transcription_event": {"user_transcript": text}
    })
    .to_string()
}

/// `interruption`.
pub(super) fn interruption(event_id: u64) -> String {
    json!({"type": "interruption", "interruption_event": {"event_id": event_id}}).to_string()
}

/// `agent_response_correction`.
pub(super) fn correction(original: &str, corrected: &str) -> String {
    json!({
        "type": "agent_response_correction",
        "agent_response_correction_event": {
            "original_agent_response": original,
            "corrected_agent_response": corrected,
        }
    })
    .to_string()
}

/// `ping`; `ping_ms` (the last measured round trip) is left out until there is one.
pub(super) fn ping(event_id: u64, ping_ms: Option<u64>) -> String {
    let mut event = json!({"event_id": event_id});
    if let Some(ms) = ping_ms {
        event["ping_ms"] = Value::from(ms);
    }
    json!({"type": "ping", "ping_event": event}).to_string()
}

/// `client_tool_call`.
pub(super) fn client_tool_call(tool_name: &str, tool_call_id: &str, parameters: &Value) -> String {
    json!({
        "type": "client_tool_call",
        "client_tool_call": {
            "tool_name": tool_name,
            "tool_call_id": tool_call_id,
            "parameters": parameters,
        }
    })
    .to_string()
}
