//! The bridge's decisions for one call, without any I/O: every input (a FreJun frame, an event
//! of the voice AI, a control command, the end of the call) goes in, and the messages to send
//! to either side come out as [`Effects`]. The runner ([`super::run`]) owns the sockets and
//! the clock; tests drive this core directly.
//!
//! The voice AI is reached only through the backend interface
//! ([`crate::providers::realtime`]): its frames are read into neutral events and our requests
//! are written by its protocol, so the same decisions serve OpenAI Realtime and ElevenLabs.
//!
//! The algorithm is the media bridge of docs/protocols.md §3 (steps 2–7) and the barge-in
//! recipe of docs/protocols.md §2.7.
//!
//! Layout:
//! - this module: the core's types, its constructor, its accessors and the inputs (FreJun
//!   frames, backend events), each routed to the job that handles it.
//! - `connect`: the AI connection: opening the session, the formats it announces, and how a
//!   failed or closed connection ends the call.
//! - `caller_audio`: caller audio in: FreJun's `start`, conversion to what the AI hears (no
//!   resampling where the rates match), and the early-audio buffer while the AI cannot take it.
//! - `assistant_audio`: assistant audio out: the greeting, the AI's audio turned into FreJun
//!   chunks, and the end of each item and response.
//! - `barge_in`: barge-in and the live-control commands (`clear`, `interrupt`).
//! - `call_record`: the call record: transcript turns, usage, cost and metrics for the
//!   call-log keeper.
//! - `session_end`: ending the call with a closing line before the AI's session expires.
//! - `tools`: the model's tool calls: which run, when their results go back, the filler while
//!   they run, and what a barge-in cancels.

mod assistant_audio;
mod barge_in;
mod call_record;
mod caller_audio;
mod connect;
mod session_end;
mod tools;

pub use session_end::{ClosingCause, SessionEndConfig};
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
use crate::domain::call::record::{CallError, TranscriptRole, TranscriptTurn, Usage};
use crate::domain::call::{CallStatus, EndReason};
use crate::providers::realtime::{
    AiAudio, BackendErrorKind, BackendEvent, Capabilities, RealtimeProtocol, ResponseStatus,
};
use crate::settings::AudioMessageShape;

/// How long a backend that does not mark the end of an answer's audio may pause before the
/// last partial chunk is sent: longer than the gaps between its audio events, short enough
/// that the end of a sentence is not noticeably late.
const AUDIO_IDLE_FLUSH: Duration = Duration::from_millis(150);

/// What the core needs to know about the call, fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The model, for pricing (OpenAI's; empty for backends priced elsewhere).
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
    /// Whether the AI cancels answers itself when the caller speaks (for OpenAI we pass `false`
    /// and send `response.cancel` ourselves).
    pub interrupt_response: bool,
    pub playout_latency: Duration,
    pub early_audio_max_ms: u64,
    /// How fast FreJun may send caller audio (see `bridge::audio_budget`).
    pub inbound_budget: BudgetLimits,
    /// How fast the AI may send assistant audio; past it the session is runaway.
    pub ai_budget: BudgetLimits,
    /// Malformed frames (from either peer) after which the call ends.
    pub max_bad_frames: u64,
    /// How often skipped frames are summarised in the log.
    pub fault_log_interval: Duration,
    /// How the call ends before the AI session expires.
    pub session_end: SessionEndConfig,
    /// The assistant's tools and how their calls are handled.
    pub tools: ToolsConfig,
}

impl CoreConfig {
    /// A call's configuration for tests: an 8 kHz flow, 100 ms chunks, no greeting, the
    /// deployment defaults for the rest.
    #[cfg(test)]
    pub(crate) fn for_tests(tools: ToolsConfig) -> Self {
        let bridge = crate::settings::BridgeSettings::default();
        Self {
            model: String::new(),
            inbound_rate: 8_000,
            outbound_chunk_ms: 100,
            playback_chunk_ms: 100,
            audio_message_shape: AudioMessageShape::Flat,
            greeting: None,
            interrupt_response: false,
            playout_latency: Duration::ZERO,
            early_audio_max_ms: 300,
            inbound_budget: crate::bridge::audio_budget::BudgetLimits::inbound(&bridge),
            ai_budget: Self::GENERATED_AI_AUDIO,
            max_bad_frames: 200,
            fault_log_interval: Duration::from_secs(5),
            session_end: SessionEndConfig::new(
                &bridge,
                &crate::settings::OpenAiSettings::default(),
            ),
            tools,
        }
    }

    /// Limits for the AI's audio, which arrives faster than it is spoken: twenty times real
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
    /// Set when the core learns (or assumes) when the AI session expires: the runner
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

/// Where the AI session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AiPhase {
    /// The socket is being opened; caller audio is buffered.
    Connecting,
    /// The session's opening sent, its confirmation not yet received. Audio flows (OpenAI
    /// applies events in order) unless the backend announces its formats only now; a failure
    /// now still means the session never became usable.
    Configuring,
    Ready,
}

/// How caller audio becomes what the AI hears: resampled unless the rates match, then written
/// as PCM or μ-law.
struct InboundPath {
    resampler: Option<Resampler>,
    mulaw: bool,
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
    /// Audio events of an interrupted answer that arrived after the interruption.
    pub stale_ai_audio: u64,
    pub ai_errors: u64,
}

pub struct BridgeCore {
    config: CoreConfig,
    protocol: Box<dyn RealtimeProtocol>,
    capabilities: Capabilities,
    /// What the AI hears and speaks (the capabilities' guess until the session announces).
    input: AiAudio,
    output: AiAudio,
    phase: AiPhase,
    started_at: Instant,
    start: Option<StreamStart>,
    inbound: Option<InboundPath>,
    inbound_rate: u32,
    /// Caller audio (at the inbound rate) that arrived before the AI could take it, with its
    /// duration: converted once the formats are settled.
    early: VecDeque<(Vec<i16>, u64)>,
    early_ms: u64,
    outbound: Option<Resampler>,
    /// When the current answer's last partial chunk goes out if no more audio comes (backends
    /// that do not mark the end of an item's audio).
    audio_idle_flush: Option<(Instant, ItemKey)>,
    /// Reused for the events one frame yields.
    events: Vec<BackendEvent>,
    /// Context the tenant added before the AI socket was open, sent after the opening.
    pending_context: Vec<String>,
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
    /// Something the call log must not wait for changed since the last progress.
    record_dirty: bool,
    /// The audio counters (in, out) as last written.
    flushed_audio: (u64, u64),
    first_response_ms: Option<u64>,
    barge_ins: u32,
    /// When the AI session expires, and how far the closing before it has got.
    session_ends_at: Option<SystemTime>,
    closing: session_end::Closing,
    /// Why the closing was started (what the call ends with).
    closing_cause: session_end::ClosingCause,
    /// The AI ended the conversation itself; its socket closing is then no failure.
    agent_ended: bool,
    /// Responses the AI ended as failed, and the last one's error, for the call log.
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
    // A frame's conversions borrow their buffers from `audio::scratch` (one set per thread):
    // nothing on the audio path allocates per frame except the outgoing message itself, which
    // the socket takes ownership of, and no call keeps buffers it only needs during a frame.
}

impl BridgeCore {
    pub fn new(config: CoreConfig, protocol: Box<dyn RealtimeProtocol>, now: Instant) -> Self {
        let capabilities = protocol.capabilities();
        let inbound_rate = config.inbound_rate;
        Self {
            playback: Playback::new(
                config.outbound_chunk_ms,
                config.playback_chunk_ms,
                config.audio_message_shape,
            ),
            outbound: None,
            audio_idle_flush: None,
            events: Vec::new(),
            pending_context: Vec::new(),
            protocol,
            capabilities,
            input: capabilities.input,
            output: capabilities.output,
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
            record_dirty: false,
            flushed_audio: (0, 0),
            first_response_ms: None,
            barge_ins: 0,
            session_ends_at: None,
            closing: session_end::Closing::default(),
            closing_cause: session_end::ClosingCause::default(),
            agent_ended: false,
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
            config,
        }
    }

    /// The AI side's audio format, as the call's facts show it: `pcm24k` and `pcmu` for
    /// OpenAI's codecs, ElevenLabs' names (`pcm_8000`) otherwise.
    pub(crate) fn ai_audio_label(&self) -> String {
        self.protocol.format_name(self.input)
    }

    /// The backend's name in messages.
    pub(crate) fn backend_name(&self) -> &'static str {
        self.protocol.display_name()
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

    /// When the runner should call [`Self::timer_fired`] next: the tool filler, or the pause
    /// after which an answer's last partial chunk goes out.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let idle = self.audio_idle_flush.as_ref().map(|(due, _)| *due);
        match (self.next_tool_timer(), idle) {
            (Some(tool), Some(idle)) => Some(tool.min(idle)),
            (tool, idle) => tool.or(idle),
        }
    }

    /// The timer of [`Self::next_timer`] fired.
    pub(crate) fn timer_fired(&mut self, now: Instant, fx: &mut Effects) {
        self.tool_timer(now, fx);
        self.audio_idle_timer(now, fx);
    }

    /// The AI session is over: what the backend still held back (an agent turn's text waiting
    /// for its correction) goes into the record.
    pub(crate) fn ai_finished(&mut self, now: Instant) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.protocol.finish(&mut events);
        let mut fx = Effects::default();
        for event in events.drain(..) {
            let _ = self.ai_event(event, now, &mut fx);
        }
        self.events = events;
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

    /// Counts an event from the AI that could not be used, like [`Self::teler_fault`].
    pub(super) fn ai_fault(&mut self, now: Instant, what: &str) -> Option<Ending> {
        self.anomalies.bad_ai_events += 1;
        match self.ai_faults.record(now) {
            FaultAction::Skip => None,
            FaultAction::Log(skipped) => {
                tracing::warn!(
                    skipped,
                    last = what,
                    backend = self.protocol.display_name(),
                    "skipping events of the voice AI that cannot be read"
                );
                None
            }
            FaultAction::Limit => Some(Ending::failed(
                EndReason::AiError,
                &format!("{}_malformed", self.protocol.code_prefix()),
                format!(
                    "{} sent more than {} events that cannot be read",
                    self.protocol.display_name(),
                    self.config.max_bad_frames
                ),
            )),
        }
    }

    // ----- Backend events --------------------------------------------------------------------

    /// One text frame from the AI.
    pub fn ai_text(&mut self, text: &str, now: Instant, fx: &mut Effects) -> Option<Ending> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let ending = match self.protocol.read(text, &mut events) {
            Ok(()) => {
                let mut ending = None;
                for event in events.drain(..) {
                    ending = self.ai_event(event, now, fx);
                    if ending.is_some() {
                        break;
                    }
                }
                ending
            }
            Err(err) => self.ai_fault(now, &err),
        };
        events.clear();
        self.events = events;
        ending
    }

    pub(crate) fn ai_event(
        &mut self,
        event: impl Into<BackendEvent>,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        match event.into() {
            BackendEvent::SessionInfo { expires_at } => self.learn_session_expiry(expires_at, fx),
            BackendEvent::Configured {
                expires_at,
                formats,
            } => {
                self.learn_session_expiry(expires_at, fx);
                if let Some((input, output)) = formats {
                    if let Some(ending) = self.use_formats(input, output) {
                        return Some(ending);
                    }
                }
                if self.phase != AiPhase::Ready {
                    self.phase = AiPhase::Ready;
                    self.send_early_audio(fx);
                    self.greet(fx);
                }
            }
            BackendEvent::Error(error) => {
                self.anomalies.ai_errors += 1;
                match error.kind {
                    BackendErrorKind::LateCancel => {
                        tracing::debug!("a cancel arrived after its response ended");
                        return None;
                    }
                    BackendErrorKind::AnswerAlreadyRunning if self.phase == AiPhase::Ready => {
                        tracing::debug!(
                            "a response.create met a running response; it answers instead"
                        );
                        return None;
                    }
                    _ => {}
                }
                tracing::warn!(
                    code = error.raw_code,
                    message = error.message,
                    backend = self.protocol.display_name(),
                    "the voice AI reported an error"
                );
                if self.phase != AiPhase::Ready || error.kind == BackendErrorKind::Fatal {
                    return Some(Ending::failed(
                        self.ai_failure_reason(),
                        &error.code,
                        error.message,
                    ));
                }
            }
            BackendEvent::CallerSpeechStarted => {
                if !self.capabilities.own_barge_in {
                    self.tools_barge_in(now, fx);
                    self.barge_in(now, fx);
                }
            }
            BackendEvent::Interrupted => {
                self.audio_idle_flush = None;
                self.tools_barge_in(now, fx);
                self.barge_in(now, fx);
            }
            BackendEvent::ResponseStarted {
                response_id,
                purpose,
            } => {
                self.tools_response_created(&response_id, purpose.as_deref());
                self.closing_response_created(&response_id);
                self.active_response = Some(response_id);
                self.active_items.clear();
            }
            BackendEvent::AssistantAudio {
                response_id,
                item_id,
                content_index,
                audio_base64,
            } => {
                if self.discarded.contains(&response_id) {
                    return None;
                }
                let key = ItemKey {
                    response_id,
                    item_id,
                    content_index,
                };
                let ending = self.assistant_audio(&key, &audio_base64, now, fx);
                if !self.capabilities.marks_audio_end {
                    self.audio_idle_flush = Some((now + AUDIO_IDLE_FLUSH, key));
                }
                return ending;
            }
            BackendEvent::AudioDone {
                response_id,
                item_id,
            } => {
                if !self.discarded.contains(&response_id) {
                    self.end_of_item(&response_id, &item_id, now, fx);
                }
            }
            BackendEvent::AssistantTranscript {
                item_id,
                text,
                interrupted,
            } => {
                let interrupted = interrupted
                    || item_id
                        .as_ref()
                        .is_some_and(|id| self.interrupted_items.contains(id));
                self.add_turn(TranscriptRole::Assistant, text, item_id, interrupted);
            }
            BackendEvent::UserTranscript { item_id, text } => {
                self.add_turn(TranscriptRole::User, text, item_id, false);
            }
            BackendEvent::UserTranscriptFailed { item_id, message } => {
                tracing::warn!(
                    item_id,
                    error = ?message,
                    "the caller's words could not be transcribed"
                );
            }
            BackendEvent::ResponseDone(mut response) => {
                let calls = std::mem::take(&mut response.function_calls);
                let status = response.status.clone();
                let id = response.id.clone();
                self.closing_response_done(&id);
                self.response_done(response, now, fx);
                self.tools_response_done(&id);
                self.function_calls(calls, &status, now, fx);
                self.continue_after_tools(fx);
            }
            BackendEvent::ToolCalls(calls) => {
                self.function_calls(calls, &ResponseStatus::Completed, now, fx);
                self.continue_after_tools(fx);
            }
            BackendEvent::Ping { event_id } => self.protocol.pong(event_id, &mut fx.to_ai),
            BackendEvent::AgentEndedCall => {
                tracing::info!("the voice AI ended the conversation");
                self.agent_ended = true;
                self.stop_starting_tools();
            }
            BackendEvent::StaleAudio => self.anomalies.stale_ai_audio += 1,
            BackendEvent::Acknowledged { kind } => tracing::trace!(kind, "the voice AI confirmed"),
            BackendEvent::Other { kind } => {
                self.anomalies.unknown_ai_events += 1;
                tracing::trace!(kind, "ignoring an event of the voice AI");
            }
        }
        None
    }
}
