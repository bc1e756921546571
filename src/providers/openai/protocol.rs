//! OpenAI Realtime as a backend of the bridge ([`RealtimeProtocol`]): its server events
//! translated one for one into [`BackendEvent`]s, and the bridge's requests written as its
//! client events. OpenAI leaves barge-in to us (`interrupt_response` off: we cancel and
//! truncate), marks the end of each item's audio, speaks on request and expires its sessions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::client::{CloseKind, classify_close};
use super::events::{ApiError, ClientEvent, ServerEvent, write_append_event};
use super::session::SessionConfig;
use crate::domain::assistant::Codec;
use crate::providers::realtime::{
    AiAudio, BackendError, BackendErrorKind, BackendEvent, Capabilities, RealtimeProtocol,
};

/// One call's OpenAI session.
#[derive(Debug, Clone)]
pub struct OpenAiProtocol {
    session: SessionConfig,
}

impl OpenAiProtocol {
    /// With the `session.update` the session opens with.
    pub fn new(session: SessionConfig) -> Self {
        Self { session }
    }

    /// The codec both ways.
    pub fn codec(&self) -> Codec {
        self.session.codec()
    }
}

impl RealtimeProtocol for OpenAiProtocol {
    fn capabilities(&self) -> Capabilities {
        let audio = match self.codec() {
            Codec::Pcm24k => AiAudio::Pcm(super::session::PCM_RATE_HZ),
            Codec::Pcmu => AiAudio::Mulaw8k,
        };
        Capabilities {
            input: audio,
            output: audio,
            announces_formats: false,
            own_barge_in: false,
            speaks_on_request: true,
            marks_audio_end: true,
            reports_usage: true,
            session_expires: true,
        }
    }

    fn code_prefix(&self) -> &'static str {
        "openai"
    }

    fn display_name(&self) -> &'static str {
        "OpenAI"
    }

    fn format_name(&self, audio: AiAudio) -> String {
        match audio {
            AiAudio::Mulaw8k => Codec::Pcmu.as_str().to_owned(),
            AiAudio::Pcm(super::session::PCM_RATE_HZ) => Codec::Pcm24k.as_str().to_owned(),
            AiAudio::Pcm(rate) => format!("pcm_{rate}"),
        }
    }

    fn read(&mut self, text: &str, events: &mut Vec<BackendEvent>) -> Result<(), String> {
        let event = ServerEvent::parse(text).map_err(|err| err.to_string())?;
        events.push(event.into());
        Ok(())
    }

    fn opening(&self, out: &mut Vec<String>) {
        let update = ClientEvent::SessionUpdate {
            session: self.session.clone(),
        };
        out.push(update.to_json());
    }

    fn write_audio(&self, audio: &[u8], out: &mut String) {
        write_append_event(audio, out);
    }

    /// A `system` message and a plain `response.create`: a `response.create` carrying
    /// `instructions` would *replace* the session's instructions for that response, so the
    /// line would be spoken without the tenant's persona, language and rules.
    fn say(&self, instruction: String, out: &mut Vec<String>) {
        out.push(ClientEvent::system_message(instruction).to_json());
        out.push(ClientEvent::ResponseCreate { response: None }.to_json());
    }

    /// A `system` message: the model reads it with the conversation; no `response.create`.
    fn add_context(&self, text: String, out: &mut Vec<String>) {
        out.push(ClientEvent::system_message(text).to_json());
    }

    fn say_aside(&self, purpose: &'static str, instruction: String, out: &mut Vec<String>) {
        out.push(ClientEvent::out_of_band_response(purpose, instruction).to_json());
    }

    fn cancel_response(&self, response_id: &str, out: &mut Vec<String>) -> bool {
        let cancel = ClientEvent::ResponseCancel {
            response_id: Some(response_id.to_owned()),
        };
        out.push(cancel.to_json());
        true
    }

    fn truncate(&self, item_id: &str, content_index: u32, heard_ms: u64, out: &mut Vec<String>) {
        let truncate = ClientEvent::ConversationItemTruncate {
            item_id: item_id.to_owned(),
            content_index,
            audio_end_ms: heard_ms,
        };
        out.push(truncate.to_json());
    }

    fn tool_output(&self, call_id: String, output: String, _is_error: bool, out: &mut Vec<String>) {
        // The output's own JSON says whether it is an error; the event has no flag for it.
        out.push(ClientEvent::function_call_output(call_id, output).to_json());
    }

    fn continue_after_tools(&self, out: &mut Vec<String>) {
        out.push(ClientEvent::ResponseCreate { response: None }.to_json());
    }

    fn pong(&self, _event_id: u64, _out: &mut Vec<String>) {
        // OpenAI pings at the WebSocket level only, which tungstenite answers.
    }

    fn close_error_code(&self, code: Option<u16>, reason: &str) -> &'static str {
        match code {
            Some(code) => classify_close(code, reason).error_code(),
            None => CloseKind::Abnormal.error_code(),
        }
    }
}

impl From<ServerEvent> for BackendEvent {
    fn from(event: ServerEvent) -> Self {
        match event {
            ServerEvent::SessionCreated { session } => BackendEvent::SessionInfo {
                expires_at: expires_at(&session),
            },
            ServerEvent::SessionUpdated { session } => BackendEvent::Configured {
                expires_at: expires_at(&session),
                formats: None,
            },
            ServerEvent::Error { error } => BackendEvent::Error(backend_error(error)),
            ServerEvent::SpeechStarted { .. } => BackendEvent::CallerSpeechStarted,
            ServerEvent::SpeechStopped { .. } => BackendEvent::Acknowledged {
                kind: "input_audio_buffer.speech_stopped",
            },
            ServerEvent::ResponseCreated {
                response_id,
                purpose,
            } => BackendEvent::ResponseStarted {
                response_id,
                purpose,
            },
            ServerEvent::AudioDelta {
                response_id,
                item_id,
                content_index,
                delta,
            } => BackendEvent::AssistantAudio {
                response_id,
                item_id,
                content_index,
                audio_base64: delta,
            },
            ServerEvent::AudioDone {
                response_id,
                item_id,
            } => BackendEvent::AudioDone {
                response_id,
                item_id,
            },
            ServerEvent::AudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => BackendEvent::AssistantTranscript {
                item_id: Some(item_id),
                text: transcript,
                interrupted: false,
            },
            ServerEvent::InputTranscriptCompleted {
                item_id,
                transcript,
                ..
            } => BackendEvent::UserTranscript {
                item_id: Some(item_id),
                text: transcript,
            },
            ServerEvent::InputTranscriptFailed { item_id, error } => {
                BackendEvent::UserTranscriptFailed {
                    item_id,
                    message: error.map(|error| error.message),
                }
            }
            ServerEvent::ResponseDone { response } => BackendEvent::ResponseDone(response),
            ServerEvent::ItemTruncated { .. } => BackendEvent::Acknowledged {
                kind: "conversation.item.truncated",
            },
            ServerEvent::Other { kind } => BackendEvent::Other { kind },
        }
    }
}

/// `session.expires_at` (Unix seconds), if OpenAI said.
fn expires_at(session: &Value) -> Option<SystemTime> {
    let seconds = session.get("expires_at").and_then(Value::as_u64)?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

fn backend_error(error: ApiError) -> BackendError {
    let kind = if error.is_cancel_not_active() {
        BackendErrorKind::LateCancel
    } else if error.is_active_response() {
        BackendErrorKind::AnswerAlreadyRunning
    } else {
        BackendErrorKind::Other
    };
    let raw_code = error.code.clone().unwrap_or_else(|| error.kind.clone());
    let kind = if is_fatal_error(&raw_code) {
        BackendErrorKind::Fatal
    } else {
        kind
    };
    BackendError {
        code: error_code_for(&raw_code),
        raw_code,
        message: error.message,
        kind,
    }
}

/// Our stable `error.code` for an OpenAI error code: the same names the handshake and close
/// classification use, so one failure reads the same however OpenAI reported it.
fn error_code_for(code: &str) -> String {
    match code {
        "invalid_api_key" => "openai_key_rejected".to_owned(),
        "session_expired" => "openai_session_expired".to_owned(),
        "beta_api_shape_disabled" => "openai_beta_shape_rejected".to_owned(),
        other => format!("openai_{other}"),
    }
}

/// Errors after which the session cannot go on (the server closes it, or nothing will work).
fn is_fatal_error(code: &str) -> bool {
    matches!(
        code,
        "session_expired" | "invalid_api_key" | "insufficient_quota" | "beta_api_shape_disabled"
    )
}
