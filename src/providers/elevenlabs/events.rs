//! The messages of an ElevenLabs conversation: server events read from text frames
//! ([`ServerEvent::parse`]) and client messages written as text frames ([`ClientMessage`]),
//! in the shapes of docs/protocols.md §5.3–§5.4. Unknown server event types are kept by name
//! and otherwise ignored, as ElevenLabs' own SDK does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::format::AudioFormat;

/// One event from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The first event: the conversation's id and the agent's audio formats.
    InitiationMetadata {
        conversation_id: String,
        input_format: AudioFormat,
        output_format: AudioFormat,
    },
    /// Agent speech in the output format, still base64-encoded (decoded where it is used, into
    /// a reused buffer).
    Audio { event_id: u64, audio_base64: String },
    /// The caller barged in: audio at or below `event_id` is stale.
    Interruption { event_id: u64 },
    /// Needs a [`ClientMessage::Pong`] with the same id, at once.
    Ping { event_id: u64, ping_ms: Option<u64> },
    /// The whole text of an agent turn, sent with its first audio.
    AgentResponse { text: String },
    /// What the caller actually heard of an interrupted turn.
    AgentResponseCorrection { original: String, corrected: String },
    /// The final transcript of one caller utterance.
    UserTranscript { text: String },
    /// A client tool to run; answer with [`ClientMessage::ToolResult`].
    ClientToolCall {
        tool_name: String,
        tool_call_id: String,
        parameters: Value,
    },
    /// The probability that the caller is speaking.
    VadScore { score: f64 },
    /// A tool that ran inside ElevenLabs (its built-in `end_call`, a webhook tool).
    AgentToolResponse {
        tool_name: String,
        tool_call_id: Option<String>,
        is_error: bool,
    },
    /// A type this client does not read (`agent_chat_response_part`,
    /// `internal_tentative_agent_response`, newer ones).
    Other { kind: String },
}

/// Why a frame is not a server event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the frame is not a JSON object")]
    NotJson,
    #[error("the event has no type")]
    MissingType,
    #[error("{kind}: {problem}")]
    Malformed { kind: String, problem: String },
}

impl ServerEvent {
    /// Reads one text frame.
    pub fn parse(text: &str) -> Result<ServerEvent, ParseError> {
        let value: Value = serde_json::from_str(text).map_err(|_| ParseError::NotJson)?;
        let Value::Object(map) = value else {
            return Err(ParseError::NotJson);
        };
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .ok_or(ParseError::MissingType)?
            .to_owned();
        let malformed = |problem: &str| ParseError::Malformed {
            kind: kind.clone(),
            problem: problem.to_owned(),
        };
        // Every payload is an object named after the type (`audio` → `audio_event`); a few
        // have names of their own.
        let payload = |name: &str| {
            map.get(name)
                .and_then(Value::as_object)
                .ok_or_else(|| malformed(&format!("no {name} object")))
        };
        let text_of = |object: &Map<String, Value>, field: &str| {
            object
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| malformed(&format!("no {field} string")))
        };
        let id_of = |object: &Map<String, Value>| {
            object
                .get("event_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed("no event_id integer"))
        };
        Ok(match kind.as_str() {
            "conversation_initiation_metadata" => {
                let event = payload("conversation_initiation_metadata_event")?;
                let format = |field: &str| {
                    text_of(event, field)?
                        .parse::<AudioFormat>()
                        .map_err(|error| malformed(&error.to_string()))
                };
                ServerEvent::InitiationMetadata {
                    conversation_id: text_of(event, "conversation_id")?,
                    input_format: format("user_input_audio_format")?,
                    output_format: format("agent_output_audio_format")?,
                }
            }
            "audio" => {
                let event = payload("audio_event")?;
                ServerEvent::Audio {
                    event_id: id_of(event)?,
                    audio_base64: text_of(event, "audio_base_64")?,
                }
            }
            "interruption" => ServerEvent::Interruption {
                event_id: id_of(payload("interruption_event")?)?,
            },
            "ping" => {
                let event = payload("ping_event")?;
                ServerEvent::Ping {
                    event_id: id_of(event)?,
                    ping_ms: event.get("ping_ms").and_then(Value::as_u64),
                }
            }
            "agent_response" => ServerEvent::AgentResponse {
                text: text_of(payload("agent_response_event")?, "agent_response")?,
            },
            "agent_response_correction" => {
                let event = payload("agent_response_correction_event")?;
                ServerEvent::AgentResponseCorrection {
                    original: text_of(event, "original_agent_response")?,
                    corrected: text_of(event, "corrected_agent_response")?,
                }
            }
            "user_transcript" => ServerEvent::UserTranscript {
                text: text_of(payload("user_transcription_event")?, "user_transcript")?,
            },
            "client_tool_call" => {
                let call = payload("client_tool_call")?;
                ServerEvent::ClientToolCall {
                    tool_name: text_of(call, "tool_name")?,
                    tool_call_id: text_of(call, "tool_call_id")?,
                    parameters: call.get("parameters").cloned().unwrap_or(json!({})),
                }
            }
            "vad_score" => ServerEvent::VadScore {
                score: payload("vad_score_event")?
                    .get("vad_score")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| malformed("no vad_score number"))?,
            },
            "agent_tool_response" => {
                // Seen under both names in the wild (docs/protocols.md §5.4).
                let event = payload("agent_tool_response")
                    .or_else(|_| payload("agent_tool_response_event"))?;
                ServerEvent::AgentToolResponse {
                    tool_name: text_of(event, "tool_name")?,
                    tool_call_id: event
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    is_error: event
                        .get("is_error")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            }
            _ => ServerEvent::Other { kind },
        })
    }
}

/// What the conversation starts with: the assistant's overrides (each applied only if the
/// agent enables it in ElevenLabs; otherwise ElevenLabs drops it silently) and the dynamic
/// variables its prompts may use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Initiation {
    /// `agent.first_message`; `Some("")` makes the agent wait for the caller.
    pub first_message: Option<String>,
    /// `agent.prompt.prompt`.
    pub prompt: Option<String>,
    /// `agent.language`.
    pub language: Option<String>,
    /// `tts.voice_id`.
    pub voice_id: Option<String>,
    /// Strings, numbers or booleans; names must not start with `system__` (ElevenLabs' own).
    pub dynamic_variables: Map<String, Value>,
}

/// One message to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage<'a> {
    /// Sent first, before any audio.
    Initiation(&'a Initiation),
    /// The answer to a `ping`.
    Pong { event_id: u64 },
    /// A client tool's outcome.
    ToolResult {
        tool_call_id: &'a str,
        result: &'a str,
        is_error: bool,
    },
    /// Context for the agent that neither interrupts it nor asks for a reply.
    ContextualUpdate { text: &'a str },
    /// A typed user turn (asks for a reply).
    UserMessage { text: &'a str },
}

impl ClientMessage<'_> {
    /// The text frame.
    pub fn to_text(&self) -> String {
        match self {
            ClientMessage::Initiation(initiation) => initiation_json(initiation).to_string(),
            ClientMessage::Pong { event_id } => {
                json!({"type": "pong", "event_id": event_id}).to_string()
            }
            ClientMessage::ToolResult {
                tool_call_id,
                result,
                is_error,
            } => json!({
                "type": "client_tool_result",
                "tool_call_id": tool_call_id,
                "result": result,
                "is_error": is_error,
            })
            .to_string(),
            ClientMessage::ContextualUpdate { text } => {
                json!({"type": "contextual_update", "text": text}).to_string()
            }
            ClientMessage::UserMessage { text } => {
                json!({"type": "user_message", "text": text}).to_string()
            }
        }
    }
}

fn initiation_json(initiation: &Initiation) -> Value {
    let mut agent = Map::new();
    if let Some(first_message) = &initiation.first_message {
        agent.insert("first_message".into(), json!(first_message));
    }
    if let Some(language) = &initiation.language {
        agent.insert("language".into(), json!(language));
    }
    if let Some(prompt) = &initiation.prompt {
        agent.insert("prompt".into(), json!({"prompt": prompt}));
    }
    let mut overrides = Map::new();
    if !agent.is_empty() {
        overrides.insert("agent".into(), Value::Object(agent));
    }
    if let Some(voice_id) = &initiation.voice_id {
        overrides.insert("tts".into(), json!({"voice_id": voice_id}));
    }
    let mut message = Map::new();
    message.insert("type".into(), json!("conversation_initiation_client_data"));
    if !overrides.is_empty() {
        message.insert(
            "conversation_config_override".into(),
            Value::Object(overrides),
        );
    }
    if !initiation.dynamic_variables.is_empty() {
        message.insert(
            "dynamic_variables".into(),
            Value::Object(initiation.dynamic_variables.clone()),
        );
    }
    Value::Object(message)
}

/// Writes `{"user_audio_chunk":"<base64 of audio>"}` into `frame` (cleared first), so a session
/// reuses one buffer for every chunk.
pub fn write_audio_chunk(audio: &[u8], frame: &mut String) {
    const OPEN: &str = "{\"user_audio_chunk\":\"";
    const CLOSE: &str = "\"}";
    frame.clear();
    frame.reserve(OPEN.len() + audio.len().div_ceil(3) * 4 + CLOSE.len());
    frame.push_str(OPEN);
    BASE64.encode_string(audio, frame);
    frame.push_str(CLOSE);
}

#[cfg(test)]
mod tests;
