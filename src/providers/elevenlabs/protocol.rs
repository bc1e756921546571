//! ElevenLabs Conversational AI as a backend of the bridge ([`RealtimeProtocol`]).
//!
//! ElevenLabs does more itself than OpenAI: it detects barge-in and stops its own speech (we
//! only clear FreJun and drop the interrupted turn's late audio, the [`StaleAudioFilter`]), it
//! greets with the agent's first message (sent as an override at initiation) and it goes on by
//! itself after a tool result. It cannot be asked to say a line mid-call, does not mark where
//! an answer's audio ends, and pings at the application level (every ping is answered).
//!
//! It has no responses or items, so its agent turns are named as responses (`turn-1`, …): a
//! turn opens with its first audio that still plays and closes at an interruption, at the
//! caller's next transcript or at the next agent text. The agent's text of a turn
//! (`agent_response`) is held until the turn is over; an interrupted turn's text waits for the
//! correction ElevenLabs sends (what the caller actually heard), which replaces it, even when
//! the correction comes after the next turn began.

use super::events::{ClientMessage, Initiation, ServerEvent, write_audio_chunk};
use super::format::AudioFormat;
use super::interruption::StaleAudioFilter;
use crate::providers::realtime::{
    AiAudio, BackendEvent, Capabilities, FunctionCall, RealtimeProtocol, ResponseStatus,
    ResponseSummary,
};

/// One call's ElevenLabs conversation.
#[derive(Debug, Clone)]
pub struct ConvaiProtocol {
    initiation: Initiation,
    /// The formats the agent should have (FreJun's rates: no resampling), until the
    /// conversation's metadata says.
    expected: (AudioFormat, AudioFormat),
    stale: StaleAudioFilter,
    /// The number of agent turns opened so far; the open one, if `turn_open`.
    turns: u64,
    turn_name: String,
    turn_open: bool,
    /// The open turn already has its `agent_response` text.
    turn_has_text: bool,
    /// An `agent_response` arrived before its turn's audio.
    text_for_next_turn: bool,
    /// The agent's last text, not yet in the transcript (its turn may still be interrupted).
    held_text: Option<String>,
    /// The text of an interrupted turn, waiting for the correction that says what the caller
    /// heard of it.
    awaiting_correction: Option<String>,
}

impl ConvaiProtocol {
    /// A conversation opened with `initiation`, for a call whose caller audio arrives at
    /// `inbound_rate`.
    pub fn new(initiation: Initiation, inbound_rate: u32) -> Self {
        Self {
            initiation,
            expected: AudioFormat::matching_frejun(inbound_rate),
            stale: StaleAudioFilter::default(),
            turns: 0,
            turn_name: String::new(),
            turn_open: false,
            turn_has_text: false,
            text_for_next_turn: false,
            held_text: None,
            awaiting_correction: None,
        }
    }

    /// The open (or last) turn's id: `turn-<n>`, formatted once per turn rather than per
    /// audio event.
    fn turn_id(&self) -> String {
        self.turn_name.clone()
    }

    /// Closes the open turn, if any, as `status`.
    fn close_turn(&mut self, status: ResponseStatus, events: &mut Vec<BackendEvent>) {
        if !self.turn_open {
            return;
        }
        self.turn_open = false;
        self.turn_has_text = false;
        events.push(BackendEvent::ResponseDone(ResponseSummary {
            id: self.turn_id(),
            status,
            ..ResponseSummary::default()
        }));
    }

    /// Puts the held agent text into the transcript.
    fn release_text(&mut self, events: &mut Vec<BackendEvent>) {
        if let Some(text) = self.held_text.take() {
            events.push(agent_text(text, false));
        }
    }

    /// Puts an interrupted turn's text into the transcript as it was, when no correction came.
    fn release_uncorrected(&mut self, events: &mut Vec<BackendEvent>) {
        if let Some(text) = self.awaiting_correction.take() {
            events.push(agent_text(text, true));
        }
    }
}

fn agent_text(text: String, interrupted: bool) -> BackendEvent {
    BackendEvent::AssistantTranscript {
        item_id: None,
        text,
        interrupted,
    }
}

/// Our name for one of ElevenLabs' formats.
fn ai_audio(format: AudioFormat) -> AiAudio {
    match format {
        AudioFormat::Pcm(rate) => AiAudio::Pcm(rate),
        AudioFormat::Ulaw8000 => AiAudio::Mulaw8k,
    }
}

impl RealtimeProtocol for ConvaiProtocol {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            input: ai_audio(self.expected.0),
            output: ai_audio(self.expected.1),
            announces_formats: true,
            own_barge_in: true,
            speaks_on_request: false,
            marks_audio_end: false,
            reports_usage: false,
            session_expires: false,
        }
    }

    fn code_prefix(&self) -> &'static str {
        "elevenlabs"
    }

    fn display_name(&self) -> &'static str {
        "ElevenLabs"
    }

    fn format_name(&self, audio: AiAudio) -> String {
        match audio {
            AiAudio::Pcm(rate) => AudioFormat::Pcm(rate).to_string(),
            AiAudio::Mulaw8k => AudioFormat::Ulaw8000.to_string(),
        }
    }

    fn read(&mut self, text: &str, events: &mut Vec<BackendEvent>) -> Result<(), String> {
        match ServerEvent::parse(text).map_err(|err| err.to_string())? {
            ServerEvent::InitiationMetadata {
                conversation_id,
                input_format,
                output_format,
            } => {
                tracing::info!(
                    conversation_id,
                    %input_format,
                    %output_format,
                    "the ElevenLabs conversation started"
                );
                events.push(BackendEvent::Configured {
                    expires_at: None,
                    formats: Some((ai_audio(input_format), ai_audio(output_format))),
                });
            }
            ServerEvent::Audio {
                event_id,
                audio_base64,
            } => {
                if !self.stale.plays(event_id) {
                    events.push(BackendEvent::StaleAudio);
                    return Ok(());
                }
                if !self.turn_open {
                    self.turns += 1;
                    self.turn_name = format!("turn-{}", self.turns);
                    self.turn_open = true;
                    self.turn_has_text = std::mem::take(&mut self.text_for_next_turn);
                    events.push(BackendEvent::ResponseStarted {
                        response_id: self.turn_id(),
                        purpose: None,
                    });
                }
                let id = self.turn_id();
                events.push(BackendEvent::AssistantAudio {
                    response_id: id.clone(),
                    item_id: id,
                    content_index: 0,
                    audio_base64,
                });
            }
            ServerEvent::Interruption { event_id } => {
                self.stale.interrupted(event_id);
                events.push(BackendEvent::Interrupted);
                self.close_turn(ResponseStatus::Cancelled, events);
                // Text that arrived for a turn with no audio yet belonged to the turn that was
                // just cut off.
                self.text_for_next_turn = false;
                if let Some(text) = self.held_text.take() {
                    self.release_uncorrected(events);
                    self.awaiting_correction = Some(text);
                }
            }
            ServerEvent::Ping { event_id, .. } => events.push(BackendEvent::Ping { event_id }),
            ServerEvent::AgentResponse { text } => {
                if self.turn_open && self.turn_has_text {
                    // Text for a new turn while the last one still counts as open: it is over.
                    self.close_turn(ResponseStatus::Completed, events);
                }
                if self.turn_open {
                    self.turn_has_text = true;
                } else {
                    self.text_for_next_turn = true;
                }
                self.release_text(events);
                self.held_text = Some(text);
            }
            ServerEvent::AgentResponseCorrection {
                original,
                corrected,
            } => {
                // The correction replaces the text it names: usually the interrupted turn's,
                // which is waiting for it; never a newer turn's text.
                if self.awaiting_correction.is_some() {
                    self.awaiting_correction = None;
                } else if self.held_text.as_deref() == Some(original.as_str()) {
                    self.held_text = None;
                }
                events.push(agent_text(corrected, true));
            }
            ServerEvent::UserTranscript { text } => {
                // The caller finished an utterance: the agent's turn before it is over.
                self.close_turn(ResponseStatus::Completed, events);
                self.text_for_next_turn = false;
                self.release_text(events);
                events.push(BackendEvent::UserTranscript {
                    item_id: None,
                    text,
                });
            }
            ServerEvent::ClientToolCall {
                tool_name,
                tool_call_id,
                parameters,
            } => events.push(BackendEvent::ToolCalls(vec![FunctionCall {
                call_id: tool_call_id,
                name: tool_name,
                arguments: parameters.to_string(),
            }])),
            ServerEvent::AgentToolResponse {
                tool_name,
                is_error,
                ..
            } => {
                tracing::info!(tool_name, is_error, "an ElevenLabs tool ran");
                if tool_name == "end_call" && !is_error {
                    events.push(BackendEvent::AgentEndedCall);
                } else {
                    events.push(BackendEvent::Acknowledged {
                        kind: "agent_tool_response",
                    });
                }
            }
            ServerEvent::VadScore { .. } => {
                events.push(BackendEvent::Acknowledged { kind: "vad_score" });
            }
            ServerEvent::Other { kind } => events.push(BackendEvent::Other { kind }),
        }
        Ok(())
    }

    fn opening(&self, out: &mut Vec<String>) {
        out.push(ClientMessage::Initiation(&self.initiation).to_text());
    }

    fn write_audio(&self, audio: &[u8], out: &mut String) {
        write_audio_chunk(audio, out);
    }

    fn say(&self, _instruction: String, _out: &mut Vec<String>) {
        // The agent greets with its first message (an initiation override) and cannot be
        // asked to say a line mid-call without it counting as the caller's words.
    }

    /// `contextual_update`: context that neither interrupts the agent nor prompts a reply.
    fn add_context(&self, text: String, out: &mut Vec<String>) {
        out.push(ClientMessage::ContextualUpdate { text: &text }.to_text());
    }

    fn say_aside(&self, _purpose: &'static str, _instruction: String, _out: &mut Vec<String>) {}

    fn cancel_response(&self, _response_id: &str, _out: &mut Vec<String>) -> bool {
        // ElevenLabs stops its own speech on barge-in; there is no cancel message.
        false
    }

    fn truncate(
        &self,
        _item_id: &str,
        _content_index: u32,
        _heard_ms: u64,
        _out: &mut Vec<String>,
    ) {
        // ElevenLabs corrects its own record (`agent_response_correction`).
    }

    fn tool_output(&self, call_id: String, output: String, is_error: bool, out: &mut Vec<String>) {
        let result = ClientMessage::ToolResult {
            tool_call_id: &call_id,
            result: &output,
            is_error,
        };
        out.push(result.to_text());
    }

    fn continue_after_tools(&self, _out: &mut Vec<String>) {
        // The agent goes on by itself once it has the result.
    }

    fn pong(&self, event_id: u64, out: &mut Vec<String>) {
        out.push(ClientMessage::Pong { event_id }.to_text());
    }

    fn finish(&mut self, events: &mut Vec<BackendEvent>) {
        self.release_uncorrected(events);
        self.release_text(events);
    }

    fn close_error_code(&self, code: Option<u16>, _reason: &str) -> &'static str {
        match code {
            None => "elevenlabs_connection_lost",
            Some(1008) => "elevenlabs_policy_violation",
            Some(1011) => "elevenlabs_server_error",
            Some(code) if (4000..5000).contains(&code) => "elevenlabs_rejected",
            Some(_) => "elevenlabs_closed",
        }
    }
}

#[cfg(test)]
mod tests;
