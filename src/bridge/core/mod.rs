//! The bridge's decisions for one call, without any I/O: every input (a FreJun frame, an
//! OpenAI event, a control command, the end of the call) goes in, and the messages to send to
//! either side come out as [`Effects`]. The runner ([`super::run`]) owns the sockets and the
//! clock; tests drive this core directly.
//!
//! The algorithm is the media bridge of docs/protocols.md §3 (steps 2–7) and the barge-in
//! recipe of docs/protocols.md §2.7.
//!
//! Layout:
//! - this module: the core's types, its constructor, its accessors and the inputs (FreJun
//!   frames, OpenAI events), each routed to the job that handles it.
//! - `connect`: the OpenAI connection: configuring the session, and how a failed or closed
//!   connection ends the call.
//! - `caller_audio`: caller audio in: FreJun's `start`, conversion to what OpenAI expects, and
//!   the early-audio buffer while OpenAI is not connected yet.
//! - `assistant_audio`: assistant audio out: the greeting, OpenAI's audio turned into FreJun
//!   chunks, and the end of each item and response.
//! - `barge_in`: barge-in and the live-control commands (`clear`, `interrupt`).
//! - `call_record`: the call record: transcript turns, usage, cost and metrics for the
//!   call-log keeper.
//! - `session_end`: ending the call with a closing line before OpenAI's session expires.
//! - `tools`: the model's tool calls: which run, when their results go back, the filler while
//!   they run, and what a barge-in cancels.

mod assistant_audio;
mod barge_in;
mod call_record;
mod caller_audio;
mod connect;
mod session_end;
mod tools;

pub use session_end::SessionEndConfig;
pub(crate) use tools::error_output;
pub use tools::{ToolEffect, ToolRequest, ToolResult, ToolsConfig};

#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::audio_budget::{AudioBudget, BudgetLimits, Verdict};
use super::frame_faults::{FaultAction, FrameFaults};
use super::latency::LatencyHistogram;
use super::playback::{ItemKey, Playback};
use super::teler_media::{StreamStart, TelerMessage};
use crate::audio::pcm;
use crate::audio::resample::Resampler;
use crate::domain::assistant::Codec;
use crate::domain::call::record::{CallError, TranscriptRole, TranscriptTurn, Usage};
use crate::domain::call::{CallStatus, EndReason};
use crate::providers::openai::{ServerEvent, SessionConfig};
use crate::settings::AudioMessageShape;

/// OpenAI's PCM rate (the only one GA accepts).
const AI_PCM_RATE: u32 = 24_000;

/// What the core needs to know about the call, fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub session: SessionConfig,
    pub model: String,
    /// The rate the flow asked FreJun for; FreJun's `start` may say otherwise.
    pub inbound_rate: u32,
    /// The first chunk of each assistant item (fast first audio).
    pub outbound_chunk_ms: u32,
    /// What later chunks grow to (`bridge.playback_chunk_ms`).
    pub playback_chunk_ms: u32,
    /// The shape of audio messages to FreJun (`frejun.media_message_shape`).
    pub audio_message_shape: AudioMessageShape,
    pub greeting: Option<String>,
    /// Whether OpenAI cancels responses itself when the caller speaks (we pass `false` and send
    /// `response.cancel` ourselves).
    pub interrupt_response: bool,
    pub playout_latency: Duration,
    pub early_audio_max_ms: u64,
    /// How fast FreJun may send caller audio (see `bridge::audio_budget`).
    pub inbound_budget: BudgetLimits,
    /// How fast OpenAI may send assistant audio; past it the session is runaway.
    pub ai_budget: BudgetLimits,
    /// Malformed frames (from either peer) after which the call ends.
    pub max_bad_frames: u64,
    /// How often skipped frames are summarised in the log.
    pub fault_log_interval: Duration,
    /// How the call ends before the OpenAI session expires.
    pub session_end: SessionEndConfig,
    /// The assistant's tools and how their calls are handled.
    pub tools: ToolsConfig,
}

impl CoreConfig {
    /// Limits for OpenAI's audio, which arrives faster than it is spoken: twenty times real
    /// time with two minutes ahead, and nothing dropped (past it the session is runaway).
    pub const GENERATED_AI_AUDIO: BudgetLimits = BudgetLimits {
        rate: 20.0,
        burst_ms: 120_000.0,
        flood_ms: 0.0,
    };
}

/// Messages the runner must send, in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub to_teler: Vec<String>,
    pub to_ai: Vec<String>,
    /// Set when the core learns (or assumes) when the OpenAI session expires: the runner
    /// schedules the closing from it.
    pub session_ends_at: Option<SystemTime>,
    /// Tool calls to start, outside the session loop.
    pub tool_calls: Vec<ToolRequest>,
    /// Running tool calls to abort (by `call_id`); their outputs were already sent.
    pub cancel_tools: Vec<String>,
}

impl Effects {
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.to_teler.is_empty()
            && self.to_ai.is_empty()
            && self.session_ends_at.is_none()
            && self.tool_calls.is_empty()
            && self.cancel_tools.is_empty()
    }
}

/// Why and how a call ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub reason: EndReason,
    pub error: Option<CallError>,
}

impl Ending {
    pub(crate) fn new(reason: EndReason) -> Self {
        Self {
            reason,
            error: None,
        }
    }

    pub(crate) fn failed(reason: EndReason, code: &str, message: impl Into<String>) -> Self {
        Self {
            reason,
            error: Some(CallError {
                code: code.to_owned(),
                message: message.into(),
            }),
        }
    }

    /// The terminal status the bridge reports: AI and telephony failures are `failed`;
    /// everything else is a call that happened and is over.
    pub(crate) fn status(&self) -> CallStatus {
        match self.reason {
            EndReason::AiConnectFailed
            | EndReason::AiError
            | EndReason::TelephonyError
            | EndReason::MediaFlood => CallStatus::Failed,
            _ => CallStatus::Completed,
        }
    }
}

/// Where the OpenAI session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AiPhase {
    /// The socket is being opened; caller audio is buffered.
    Connecting,
    /// `session.update` sent, `session.updated` not yet received. Audio flows (OpenAI applies
    /// events in order), but a failure now still means the session never became usable.
    Configuring,
    Ready,
}

/// How caller audio becomes what OpenAI expects.
enum InboundPath {
    /// Resample to 24 kHz PCM.
    Pcm(Resampler),
    /// μ-law at 8 kHz; 16 kHz input is first resampled to 8 kHz.
    Pcmu(Option<Resampler>),
}

/// Counters of things that were skipped rather than fatal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Anomalies {
    pub bad_teler_frames: u64,
    /// Caller audio dropped for arriving faster than real time, in milliseconds.
    pub dropped_inbound_ms: u64,
    pub odd_audio_bytes: u64,
    pub unknown_teler_types: u64,
    pub unknown_ai_events: u64,
    pub bad_ai_events: u64,
    pub ai_errors: u64,
}

pub struct BridgeCore {
    config: CoreConfig,
    codec: Codec,
    phase: AiPhase,
    started_at: Instant,
    start: Option<StreamStart>,
    inbound: Option<InboundPath>,
    inbound_rate: u32,
    /// Append events prepared while the OpenAI socket was not open yet, with their duration.
    early: VecDeque<(String, u64)>,
    early_ms: u64,
    outbound: Option<Resampler>,
    playback: Playback,
    active_response: Option<String>,
    /// Items of the active response whose audio has arrived.
    active_items: Vec<ItemKey>,
    /// Responses whose late deltas must be dropped.
    discarded: HashSet<String>,
    /// Assistant items the caller cut short.
    interrupted_items: HashSet<String>,
    transcript: Vec<TranscriptTurn>,
    flushed_turns: usize,
    interrupted_flushed: Vec<usize>,
    usage: Option<Usage>,
    metrics_dirty: bool,
    first_response_ms: Option<u64>,
    barge_ins: u32,
    /// When the OpenAI session expires, and how far the closing before it has got.
    session_ends_at: Option<SystemTime>,
    closing: session_end::Closing,
    /// Responses OpenAI ended as failed, and the last one's error, for the call log.
    failed_responses: u32,
    last_response_error: Option<CallError>,
    tools: tools::Tools,
    inbound_samples: u64,
    latency: LatencyHistogram,
    anomalies: Anomalies,
    inbound_budget: AudioBudget,
    ai_budget: AudioBudget,
    teler_faults: FrameFaults,
    ai_faults: FrameFaults,
    // Reused buffers: nothing on the audio path allocates per frame except the outgoing
    // message itself, which the socket takes ownership of.
    bytes: Vec<u8>,
    samples: Vec<i16>,
    converted: Vec<i16>,
    encoded: Vec<u8>,
}

impl BridgeCore {
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        let codec = config.session.codec();
        let inbound_rate = config.inbound_rate;
        Self {
            playback: Playback::new(
                config.outbound_chunk_ms,
                config.playback_chunk_ms,
                config.audio_message_shape,
            ),
            outbound: None,
            codec,
            phase: AiPhase::Connecting,
            started_at: now,
            start: None,
            inbound: None,
            inbound_rate,
            early: VecDeque::new(),
            early_ms: 0,
            active_response: None,
            active_items: Vec::new(),
            discarded: HashSet::new(),
            interrupted_items: HashSet::new(),
            transcript: Vec::new(),
            flushed_turns: 0,
            interrupted_flushed: Vec::new(),
            usage: None,
            metrics_dirty: false,
            first_response_ms: None,
            barge_ins: 0,
            session_ends_at: None,
            closing: session_end::Closing::default(),
            failed_responses: 0,
            last_response_error: None,
            tools: tools::Tools::default(),
            inbound_samples: 0,
            latency: LatencyHistogram::default(),
            anomalies: Anomalies::default(),
            inbound_budget: AudioBudget::new(config.inbound_budget, now),
            ai_budget: AudioBudget::new(config.ai_budget, now),
            teler_faults: FrameFaults::new(config.max_bad_frames, config.fault_log_interval),
            ai_faults: FrameFaults::new(config.max_bad_frames, config.fault_log_interval),
            bytes: Vec::new(),
            samples: Vec::new(),
            converted: Vec::new(),
            encoded: Vec::new(),
            config,
        }
    }

    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    pub(crate) fn start(&self) -> Option<&StreamStart> {
        self.start.as_ref()
    }

    pub(crate) fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    pub(crate) fn audio_in_ms(&self) -> u64 {
        pcm::samples_to_ms(self.inbound_samples, self.inbound_rate)
    }

    pub(crate) fn audio_out_ms(&self) -> u64 {
        self.playback.sent_ms()
    }

    /// Time spent on one frame, from receipt to the last send it caused.
    pub(crate) fn record_frame_latency(&mut self, elapsed: Duration) {
        self.latency.record(elapsed.as_micros() as u64);
    }

    // ----- FreJun ----------------------------------------------------------------------------

    /// One text frame from FreJun, received at `now`. Bad frames are counted and skipped (too
    /// many end the call); audio beyond the real-time budget is dropped unread (a flood ends
    /// the call); an unsupported stream format ends it.
    pub fn teler_text(&mut self, text: &str, now: Instant, fx: &mut Effects) -> Option<Ending> {
        match TelerMessage::parse(text) {
            Ok(TelerMessage::Audio { audio_b64 }) => {
                // Priced from the base64 length, before any decoding: a frame over the budget
                // costs nothing but this arithmetic.
                let audio_ms = pcm::base64_pcm_ms(&audio_b64, self.inbound_rate);
                match self.inbound_budget.charge(audio_ms, now) {
                    Verdict::Accept => self.caller_audio(&audio_b64, now, fx),
                    Verdict::Drop => {
                        self.anomalies.dropped_inbound_ms = self.inbound_budget.dropped_ms();
                        None
                    }
                    Verdict::Flood => {
                        self.anomalies.dropped_inbound_ms = self.inbound_budget.dropped_ms();
                        Some(Ending::failed(
                            EndReason::MediaFlood,
                            "media_stream_flood",
                            format!(
                                "FreJun's media stream sent audio faster than real time; {} ms \
                                 of it were dropped",
                                self.inbound_budget.dropped_ms()
                            ),
                        ))
                    }
                }
            }
            Ok(TelerMessage::Start(start)) => self.stream_started(start),
            Ok(TelerMessage::Other { kind }) => {
                self.anomalies.unknown_teler_types += 1;
                tracing::debug!(kind, "ignoring a media-stream message of unknown type");
                None
            }
            Err(err) => self.teler_fault(now, &err.to_string()),
        }
    }

    /// A binary frame: FreJun sends none; skipped.
    pub(crate) fn teler_binary(&mut self, now: Instant) -> Option<Ending> {
        self.teler_fault(now, "a binary frame")
    }

    /// Counts a frame from FreJun that could not be used; logs a summary now and then; ends the
    /// call past the limit.
    pub(super) fn teler_fault(&mut self, now: Instant, what: &str) -> Option<Ending> {
        self.anomalies.bad_teler_frames += 1;
        match self.teler_faults.record(now) {
            FaultAction::Skip => None,
            FaultAction::Log(skipped) => {
                tracing::warn!(
                    skipped,
                    last = what,
                    "skipping malformed media-stream messages"
                );
                None
            }
            FaultAction::Limit => Some(Ending::failed(
                EndReason::TelephonyError,
                "media_stream_malformed",
                format!(
                    "FreJun's media stream sent more than {} malformed messages",
                    self.config.max_bad_frames
                ),
            )),
        }
    }

    /// Counts an event from OpenAI that could not be used, like [`Self::teler_fault`].
    pub(super) fn ai_fault(&mut self, now: Instant, what: &str) -> Option<Ending> {
        self.anomalies.bad_ai_events += 1;
        match self.ai_faults.record(now) {
            FaultAction::Skip => None,
            FaultAction::Log(skipped) => {
                tracing::warn!(
                    skipped,
                    last = what,
                    "skipping OpenAI events that cannot be read"
                );
                None
            }
            FaultAction::Limit => Some(Ending::failed(
                EndReason::AiError,
                "openai_malformed",
                format!(
                    "OpenAI sent more than {} events that cannot be read",
                    self.config.max_bad_frames
                ),
            )),
        }
    }

    // ----- OpenAI events ---------------------------------------------------------------------

    /// One text frame from OpenAI.
    pub fn ai_text(&mut self, text: &str, now: Instant, fx: &mut Effects) -> Option<Ending> {
        match ServerEvent::parse(text) {
            Ok(event) => self.ai_event(event, now, fx),
            Err(err) => self.ai_fault(now, &err.to_string()),
        }
    }

    pub(crate) fn ai_event(
        &mut self,
        event: ServerEvent,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        match event {
            ServerEvent::SessionCreated { session } => self.learn_session_expiry(&session, fx),
            ServerEvent::SessionUpdated { session } => {
                self.learn_session_expiry(&session, fx);
                if self.phase != AiPhase::Ready {
                    self.phase = AiPhase::Ready;
                    self.greet(fx);
                }
            }
            ServerEvent::Error { error } => {
                self.anomalies.ai_errors += 1;
                if error.is_cancel_not_active() {
                    tracing::debug!("a cancel arrived after its response ended");
                    return None;
                }
                if error.is_active_response() && self.phase == AiPhase::Ready {
                    tracing::debug!("a response.create met a running response; it answers instead");
                    return None;
                }
                let code = error.code.clone().unwrap_or_else(|| error.kind.clone());
                tracing::warn!(code, message = error.message, "OpenAI reported an error");
                if self.phase != AiPhase::Ready || is_fatal_error(&code) {
                    return Some(Ending::failed(
                        self.ai_failure_reason(),
                        &error_code_for(&code),
                        error.message,
                    ));
                }
            }
            ServerEvent::SpeechStarted { .. } => {
                self.tools_barge_in(now, fx);
                self.barge_in(now, fx);
            }
            ServerEvent::SpeechStopped { .. } => {}
            ServerEvent::ResponseCreated {
                response_id,
                purpose,
            } => {
                self.tools_response_created(&response_id, purpose.as_deref());
                self.closing_response_created(&response_id);
                self.active_response = Some(response_id);
                self.active_items.clear();
            }
            ServerEvent::AudioDelta {
                response_id,
                item_id,
                content_index,
                delta,
            } => {
                if self.discarded.contains(&response_id) {
                    return None;
                }
                let key = ItemKey {
                    response_id,
                    item_id,
                    content_index,
                };
                return self.assistant_audio(&key, &delta, now, fx);
            }
            ServerEvent::AudioDone {
                response_id,
                item_id,
            } => {
                if !self.discarded.contains(&response_id) {
                    self.end_of_item(&response_id, &item_id, now, fx);
                }
            }
            ServerEvent::AudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => {
                let interrupted = self.interrupted_items.contains(&item_id);
                self.add_turn(
                    TranscriptRole::Assistant,
                    transcript,
                    Some(item_id),
                    interrupted,
                );
            }
            ServerEvent::InputTranscriptCompleted {
                item_id,
                transcript,
                ..
            } => self.add_turn(TranscriptRole::User, transcript, Some(item_id), false),
            ServerEvent::InputTranscriptFailed { item_id, error } => {
                tracing::warn!(item_id, error = ?error.map(|e| e.message), "the caller's words could not be transcribed");
            }
            ServerEvent::ResponseDone { mut response } => {
                let calls = std::mem::take(&mut response.function_calls);
                let status = response.status.clone();
                let id = response.id.clone();
                self.closing_response_done(&id);
                self.response_done(response, now, fx);
                self.tools_response_done(&id);
                self.function_calls(calls, &status, now, fx);
                self.continue_after_tools(fx);
            }
            ServerEvent::ItemTruncated {
                item_id,
                audio_end_ms,
                ..
            } => tracing::debug!(item_id, audio_end_ms, "OpenAI truncated the item"),
            ServerEvent::Other { kind } => {
                self.anomalies.unknown_ai_events += 1;
                tracing::trace!(kind, "ignoring an OpenAI event");
            }
        }
        None
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
