//! The bridge's decisions for one call, without any I/O: every input (a FreJun frame, an
//! OpenAI event, a control command, the end of the call) goes in, and the messages to send to
//! either side come out as [`Effects`]. The runner ([`super::run`]) owns the sockets and the
//! clock; tests drive this core directly.
//!
//! The algorithm is architecture.md's "Media bridge" (steps 2–7) and the barge-in recipe of
//! openai-realtime-protocol.md §5.4.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bson::DateTime;

use super::latency::LatencyHistogram;
use super::playback::{ItemKey, OUTBOUND_RATE, OutboundChunk, Playback};
use super::registry::ControlOutcome;
use super::teler_media::{CLEAR_MESSAGE, StreamStart, TelerMessage, interrupt_message};
use crate::audio::resample::Resampler;
use crate::audio::{mulaw, pcm};
use crate::domain::assistant::Codec;
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::pricing::{TokenCounts, estimate_cost_usd};
use crate::providers::openai::events::{ResponseParams, ResponseSummary};
use crate::providers::openai::{
    ClientEvent, CloseKind, ConnectError, ServerEvent, SessionConfig, classify_close,
    write_append_event,
};
use crate::storage::call_logs::{CallError, CallMetrics, TranscriptTurn, Usage};
use crate::storage::call_progress::CallProgress;

/// OpenAI's PCM rate (the only one GA accepts).
const AI_PCM_RATE: u32 = 24_000;

/// What the core needs to know about the call, fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub session: SessionConfig,
    pub model: String,
    /// The rate the flow asked FreJun for; FreJun's `start` may say otherwise.
    pub inbound_rate: u32,
    pub outbound_chunk_ms: u32,
    pub greeting: Option<String>,
    /// Whether OpenAI cancels responses itself when the caller speaks (we pass `false` and send
    /// `response.cancel` ourselves).
    pub interrupt_response: bool,
    pub playout_latency: Duration,
    pub early_audio_max_ms: u64,
}

/// Messages the runner must send, in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub to_teler: Vec<String>,
    pub to_ai: Vec<String>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.to_teler.is_empty() && self.to_ai.is_empty()
    }
}

/// Why and how a call ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub reason: EndReason,
    pub error: Option<CallError>,
}

impl Ending {
    pub fn new(reason: EndReason) -> Self {
        Self {
            reason,
            error: None,
        }
    }

    pub fn failed(reason: EndReason, code: &str, message: impl Into<String>) -> Self {
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
    pub fn status(&self) -> CallStatus {
        match self.reason {
            EndReason::AiConnectFailed | EndReason::AiError | EndReason::TelephonyError => {
                CallStatus::Failed
            }
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
pub struct Anomalies {
    pub bad_teler_frames: u64,
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
    inbound_samples: u64,
    latency: LatencyHistogram,
    anomalies: Anomalies,
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
            playback: Playback::new(config.outbound_chunk_ms),
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
            inbound_samples: 0,
            latency: LatencyHistogram::default(),
            anomalies: Anomalies::default(),
            bytes: Vec::new(),
            samples: Vec::new(),
            converted: Vec::new(),
            encoded: Vec::new(),
            config,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn start(&self) -> Option<&StreamStart> {
        self.start.as_ref()
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    pub fn ai_ready(&self) -> bool {
        self.phase == AiPhase::Ready
    }

    pub fn audio_in_ms(&self) -> u64 {
        pcm::samples_to_ms(self.inbound_samples, self.inbound_rate)
    }

    pub fn audio_out_ms(&self) -> u64 {
        self.playback.sent_ms()
    }

    /// Time spent on one frame, from receipt to the last send it caused.
    pub fn record_frame_latency(&mut self, elapsed: Duration) {
        self.latency.record(elapsed.as_micros() as u64);
    }

    // ----- OpenAI connection -----------------------------------------------------------------

    /// The socket is open: configure the session, then send the audio that waited.
    pub fn ai_connected(&mut self, fx: &mut Effects) {
        let update = ClientEvent::SessionUpdate {
            session: self.config.session.clone(),
        };
        fx.to_ai.push(update.to_json());
        fx.to_ai
            .extend(self.early.drain(..).map(|(event, _)| event));
        self.early_ms = 0;
        self.phase = AiPhase::Configuring;
    }

    pub fn ai_connect_failed(&self, err: &ConnectError) -> Ending {
        Ending::failed(EndReason::AiConnectFailed, err.code(), err.to_string())
    }

    /// OpenAI closed the socket (or it broke: `code` None).
    pub fn ai_closed(&self, code: Option<u16>, reason: &str) -> Ending {
        let (error_code, message) = match code {
            Some(code) => (
                classify_close(code, reason).error_code(),
                format!("OpenAI closed the session ({code} {reason})"),
            ),
            None => (
                CloseKind::Abnormal.error_code(),
                "the OpenAI connection was lost".to_owned(),
            ),
        };
        Ending::failed(self.ai_failure_reason(), error_code, message)
    }

    /// A failure before `session.updated` means the session never became usable.
    fn ai_failure_reason(&self) -> EndReason {
        if self.phase == AiPhase::Ready {
            EndReason::AiError
        } else {
            EndReason::AiConnectFailed
        }
    }

    // ----- FreJun ----------------------------------------------------------------------------

    /// One text frame from FreJun. Bad frames are counted and skipped; only an unsupported
    /// stream format ends the call.
    pub fn teler_text(&mut self, text: &str, fx: &mut Effects) -> Option<Ending> {
        match TelerMessage::parse(text) {
            Ok(TelerMessage::Audio { audio_b64 }) => {
                self.caller_audio(&audio_b64, fx);
                None
            }
            Ok(TelerMessage::Start(start)) => self.stream_started(start),
            Ok(TelerMessage::Other { kind }) => {
                self.anomalies.unknown_teler_types += 1;
                tracing::debug!(kind, "ignoring a media-stream message of unknown type");
                None
            }
            Err(err) => {
                self.anomalies.bad_teler_frames += 1;
                tracing::warn!(error = %err, "skipping a malformed media-stream message");
                None
            }
        }
    }

    /// A binary frame: FreJun sends none; skipped.
    pub fn teler_binary(&mut self) {
        self.anomalies.bad_teler_frames += 1;
        tracing::warn!("skipping a binary media-stream frame");
    }

    fn stream_started(&mut self, start: StreamStart) -> Option<Ending> {
        if self.start.is_some() {
            tracing::warn!("ignoring a second start message");
            return None;
        }
        if let Some(rate) = start.sample_rate {
            if rate != self.inbound_rate {
                if self.inbound.is_some() {
                    tracing::warn!(rate, "start arrived after audio; keeping the first rate");
                } else if Resampler::new(rate, AI_PCM_RATE).is_err() {
                    return Some(Ending::failed(
                        EndReason::TelephonyError,
                        "unsupported_sample_rate",
                        format!("FreJun announced {rate} Hz audio, which cannot be converted"),
                    ));
                } else {
                    tracing::info!(
                        rate,
                        asked = self.inbound_rate,
                        "FreJun streams at another rate than the flow asked for"
                    );
                    self.inbound_rate = rate;
                }
            }
        }
        if start.channels.is_some_and(|channels| channels != 1) {
            tracing::warn!(channels = ?start.channels, "FreJun announced more than one channel; reading mono");
        }
        self.start = Some(start);
        None
    }

    fn inbound_path(&mut self) -> &mut InboundPath {
        let rate = self.inbound_rate;
        let codec = self.codec;
        self.inbound.get_or_insert_with(|| match codec {
            Codec::Pcm24k => InboundPath::Pcm(
                Resampler::new(rate, AI_PCM_RATE).expect("8 and 16 kHz convert to 24 kHz"),
            ),
            Codec::Pcmu => {
                InboundPath::Pcmu((rate != OUTBOUND_RATE).then(|| {
                    Resampler::new(rate, OUTBOUND_RATE).expect("16 kHz converts to 8 kHz")
                }))
            }
        })
    }

    fn caller_audio(&mut self, audio_b64: &str, fx: &mut Effects) {
        self.bytes.clear();
        if pcm::decode_base64(audio_b64, &mut self.bytes).is_err() {
            self.anomalies.bad_teler_frames += 1;
            tracing::warn!("skipping media-stream audio that is not base64");
            return;
        }
        self.samples.clear();
        let ignored = pcm::decode_s16le(&self.bytes, &mut self.samples);
        if ignored > 0 {
            self.anomalies.odd_audio_bytes += ignored as u64;
        }
        if self.samples.is_empty() {
            return;
        }
        self.inbound_samples += self.samples.len() as u64;
        let ms = pcm::samples_to_ms(self.samples.len() as u64, self.inbound_rate);

        let mut samples = std::mem::take(&mut self.samples);
        let mut converted = std::mem::take(&mut self.converted);
        let mut encoded = std::mem::take(&mut self.encoded);
        converted.clear();
        encoded.clear();
        match self.inbound_path() {
            InboundPath::Pcm(resampler) => {
                resampler.process(&samples, &mut converted);
                pcm::encode_s16le(&converted, &mut encoded);
            }
            InboundPath::Pcmu(None) => mulaw::encode_into(&samples, &mut encoded),
            InboundPath::Pcmu(Some(resampler)) => {
                resampler.process(&samples, &mut converted);
                mulaw::encode_into(&converted, &mut encoded);
            }
        }
        if !encoded.is_empty() {
            let mut event = String::new();
            write_append_event(&encoded, &mut event);
            if self.phase == AiPhase::Connecting {
                self.buffer_early(event, ms);
            } else {
                fx.to_ai.push(event);
            }
        }
        samples.clear();
        self.samples = samples;
        self.converted = converted;
        self.encoded = encoded;
    }

    fn buffer_early(&mut self, event: String, ms: u64) {
        self.early.push_back((event, ms));
        self.early_ms += ms;
        while self.early_ms > self.config.early_audio_max_ms {
            match self.early.pop_front() {
                Some((_, dropped)) => self.early_ms -= dropped,
                None => break,
            }
        }
    }

    // ----- OpenAI events ---------------------------------------------------------------------

    /// One text frame from OpenAI.
    pub fn ai_text(&mut self, text: &str, now: Instant, fx: &mut Effects) -> Option<Ending> {
        match ServerEvent::parse(text) {
            Ok(event) => self.ai_event(event, now, fx),
            Err(err) => {
                self.anomalies.bad_ai_events += 1;
                tracing::warn!(error = %err, "skipping an OpenAI event that cannot be read");
                None
            }
        }
    }

    pub fn ai_event(
        &mut self,
        event: ServerEvent,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        match event {
            ServerEvent::SessionCreated { .. } => {}
            ServerEvent::SessionUpdated { .. } => {
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
                self.barge_in(now, fx);
            }
            ServerEvent::SpeechStopped { .. } => {}
            ServerEvent::ResponseCreated { response_id } => {
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
                self.assistant_audio(&key, &delta, now, fx);
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
                self.add_turn("assistant", transcript, Some(item_id), interrupted);
            }
            ServerEvent::InputTranscriptCompleted {
                item_id,
                transcript,
                ..
            } => self.add_turn("user", transcript, Some(item_id), false),
            ServerEvent::InputTranscriptFailed { item_id, error } => {
                tracing::warn!(item_id, error = ?error.map(|e| e.message), "the caller's words could not be transcribed");
            }
            ServerEvent::ResponseDone { response } => self.response_done(response, now, fx),
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

    fn greet(&mut self, fx: &mut Effects) {
        let Some(greeting) = self.config.greeting.as_deref() else {
            return;
        };
        let event = ClientEvent::ResponseCreate {
            response: Some(ResponseParams {
                instructions: Some(format!(
                    "The call has just connected. Greet the caller by saying: \"{greeting}\""
                )),
            }),
        };
        fx.to_ai.push(event.to_json());
    }

    fn assistant_audio(&mut self, key: &ItemKey, delta: &str, now: Instant, fx: &mut Effects) {
        self.bytes.clear();
        if pcm::decode_base64(delta, &mut self.bytes).is_err() {
            self.anomalies.bad_ai_events += 1;
            tracing::warn!("skipping OpenAI audio that is not base64");
            return;
        }
        if self.active_response.as_deref() == Some(key.response_id.as_str())
            && !self.active_items.contains(key)
        {
            self.active_items.push(key.clone());
        }
        let mut samples = std::mem::take(&mut self.samples);
        samples.clear();
        match self.codec {
            Codec::Pcmu => mulaw::decode_into(&self.bytes, &mut samples),
            Codec::Pcm24k => {
                self.converted.clear();
                pcm::decode_s16le(&self.bytes, &mut self.converted);
                self.outbound
                    .get_or_insert_with(|| {
                        Resampler::new(AI_PCM_RATE, OUTBOUND_RATE)
                            .expect("24 kHz converts to 8 kHz")
                    })
                    .process(&self.converted, &mut samples);
            }
        }
        let chunks = self.playback.push(key, &samples, now);
        self.samples = samples;
        self.send_chunks(chunks, now, fx);
    }

    /// The item's audio is complete: drain the resampler and send the partial chunk, so the
    /// end of a sentence is not held back waiting for more audio.
    fn end_of_item(&mut self, response_id: &str, item_id: &str, now: Instant, fx: &mut Effects) {
        let key = self
            .active_items
            .iter()
            .find(|key| key.item_id == item_id && key.response_id == response_id)
            .cloned();
        if let (Some(key), Some(resampler)) = (&key, self.outbound.as_mut()) {
            self.samples.clear();
            resampler.flush(&mut self.samples);
            if !self.samples.is_empty() {
                let samples = std::mem::take(&mut self.samples);
                let chunks = self.playback.push(key, &samples, now);
                self.samples = samples;
                self.send_chunks(chunks, now, fx);
            }
        }
        if let Some(chunk) = self.playback.flush(now) {
            self.send_chunks(vec![chunk], now, fx);
        }
    }

    fn send_chunks(&mut self, chunks: Vec<OutboundChunk>, now: Instant, fx: &mut Effects) {
        if chunks.is_empty() {
            return;
        }
        if self.first_response_ms.is_none() {
            self.first_response_ms =
                Some(now.saturating_duration_since(self.started_at).as_millis() as u64);
        }
        self.metrics_dirty = true;
        fx.to_teler
            .extend(chunks.into_iter().map(|chunk| chunk.message));
    }

    fn response_done(&mut self, response: ResponseSummary, now: Instant, fx: &mut Effects) {
        if let Some(usage) = response.usage {
            let total = self.usage.get_or_insert_with(Usage::default);
            total.input_audio_tokens += usage.input_audio_tokens;
            total.input_text_tokens += usage.input_text_tokens;
            total.input_cached_tokens += usage.input_cached_tokens;
            total.output_audio_tokens += usage.output_audio_tokens;
            total.output_text_tokens += usage.output_text_tokens;
        } else {
            // Token counts are stored even when OpenAI reports none.
            self.usage.get_or_insert_with(Usage::default);
        }
        self.metrics_dirty = true;
        if response.status == "failed" {
            self.anomalies.ai_errors += 1;
            tracing::warn!(
                response_id = response.id,
                error = ?response.error,
                "an OpenAI response failed"
            );
        }
        let discarded = self.discarded.remove(&response.id);
        if self.active_response.as_deref() == Some(response.id.as_str()) {
            self.active_response = None;
            if !discarded {
                if let Some(chunk) = self.playback.flush(now) {
                    self.send_chunks(vec![chunk], now, fx);
                }
            }
        }
    }

    // ----- Barge-in and live control ---------------------------------------------------------

    /// The caller spoke over the assistant (or the tenant asked us to stop it): stop playback,
    /// cancel generation, tell OpenAI what was heard. Does nothing when nothing is playing or
    /// being generated (the caller simply took their turn).
    pub fn barge_in(&mut self, now: Instant, fx: &mut Effects) -> ControlOutcome {
        let mut outcome = ControlOutcome::nothing();
        let unplayed = self.playback.has_unplayed(now);
        if !unplayed && self.active_response.is_none() {
            return outcome;
        }
        self.barge_ins += 1;
        self.metrics_dirty = true;
        // 1. What the caller perceives: stop playback first.
        if unplayed {
            fx.to_teler.push(CLEAR_MESSAGE.to_owned());
            outcome.sent_to_frejun = Some("clear".into());
        }
        let unfinished = self.playback.unfinished(now, self.config.playout_latency);
        self.playback.clear();
        if let Some(resampler) = self.outbound.as_mut() {
            resampler.reset();
        }
        // 2. Stop generation, and 3. drop whatever of it is still in flight.
        if let Some(response_id) = self.active_response.take() {
            if !self.config.interrupt_response {
                fx.to_ai.push(
                    ClientEvent::ResponseCancel {
                        response_id: Some(response_id.clone()),
                    }
                    .to_json(),
                );
                outcome.response_cancelled = true;
            }
            self.discarded.insert(response_id);
            for key in self.active_items.drain(..) {
                self.interrupted_items.insert(key.item_id);
            }
        }
        // 4. Truncate what was sent but not (fully) heard; skip items with no audio sent.
        for (key, heard_ms) in unfinished {
            fx.to_ai.push(
                ClientEvent::ConversationItemTruncate {
                    item_id: key.item_id.clone(),
                    content_index: key.content_index,
                    audio_end_ms: heard_ms,
                }
                .to_json(),
            );
            if outcome.truncated_item_id.is_none() {
                outcome.truncated_item_id = Some(key.item_id.clone());
                outcome.truncated_at_ms = Some(heard_ms);
            }
            self.mark_interrupted(&key.item_id);
        }
        outcome
    }

    /// FreJun's `clear`: drop everything queued, and our unsent audio with it.
    pub fn clear_playback(&mut self, fx: &mut Effects) -> ControlOutcome {
        fx.to_teler.push(CLEAR_MESSAGE.to_owned());
        self.playback.clear();
        ControlOutcome::sent_to_frejun("clear")
    }

    /// FreJun's `interrupt` for one chunk we sent.
    pub fn interrupt_chunk(
        &mut self,
        chunk_id: u64,
        fx: &mut Effects,
    ) -> Result<ControlOutcome, u64> {
        if chunk_id == 0 || chunk_id >= self.playback.next_chunk_id() {
            return Err(self.playback.next_chunk_id());
        }
        fx.to_teler.push(interrupt_message(chunk_id));
        Ok(ControlOutcome::sent_to_frejun("interrupt"))
    }

    // ----- The call log ----------------------------------------------------------------------

    fn add_turn(&mut self, role: &str, text: String, item_id: Option<String>, interrupted: bool) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.transcript.push(TranscriptTurn {
            role: role.to_owned(),
            text: text.to_owned(),
            at: DateTime::now(),
            item_id,
            interrupted,
        });
    }

    fn mark_interrupted(&mut self, item_id: &str) {
        self.interrupted_items.insert(item_id.to_owned());
        for (index, turn) in self.transcript.iter_mut().enumerate() {
            if turn.item_id.as_deref() == Some(item_id) && !turn.interrupted {
                turn.interrupted = true;
                if index < self.flushed_turns {
                    self.interrupted_flushed.push(index);
                }
            }
        }
    }

    /// What changed since the last call, for the call-log keeper; `None` when nothing did.
    pub fn take_progress(&mut self) -> Option<CallProgress> {
        let new_turns = self.transcript[self.flushed_turns..].to_vec();
        if new_turns.is_empty() && self.interrupted_flushed.is_empty() && !self.metrics_dirty {
            return None;
        }
        let progress = CallProgress {
            first_turn_index: self.flushed_turns,
            new_turns,
            interrupted_turns: std::mem::take(&mut self.interrupted_flushed),
            usage: self.usage.clone(),
            cost_usd: self.cost_usd(),
            metrics: Some(self.metrics()),
        };
        self.flushed_turns = self.transcript.len();
        self.metrics_dirty = false;
        Some(progress)
    }

    /// Everything not yet written, for the final write.
    pub fn final_progress(&mut self) -> CallProgress {
        self.metrics_dirty = true;
        self.take_progress().unwrap_or_default()
    }

    pub fn metrics(&self) -> CallMetrics {
        CallMetrics {
            first_response_ms: self.first_response_ms,
            barge_ins: self.barge_ins,
            audio_in_ms: self.audio_in_ms(),
            audio_out_ms: self.audio_out_ms(),
            frame_latency_p50_us: self.latency.quantile(0.5),
            frame_latency_p99_us: self.latency.quantile(0.99),
        }
    }

    fn cost_usd(&self) -> Option<f64> {
        let usage = self.usage.as_ref()?;
        Some(estimate_cost_usd(
            &self.config.model,
            TokenCounts {
                input_audio: usage.input_audio_tokens,
                input_text: usage.input_text_tokens,
                input_cached: usage.input_cached_tokens,
                output_audio: usage.output_audio_tokens,
                output_text: usage.output_text_tokens,
            },
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone;
    use crate::domain::assistant::{AssistantSpec, AudioConfig, InboundRate, NewAssistant};
    use crate::providers::openai::events::{ApiError, ResponseUsage};

    fn spec(codec: Codec) -> AssistantSpec {
        let new: NewAssistant =
            serde_json::from_value(serde_json::json!({"name": "Test"})).unwrap();
        let mut spec = AssistantSpec::from_new(new, "gpt-realtime").unwrap();
        spec.audio = AudioConfig {
            codec,
            inbound_rate: InboundRate::Khz8,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 200,
        };
        spec.greeting = Some("Hello!".into());
        spec
    }

    fn core(codec: Codec) -> BridgeCore {
        let spec = spec(codec);
        BridgeCore::new(
            CoreConfig {
                session: SessionConfig::for_assistant(&spec, false),
                model: spec.model.clone(),
                inbound_rate: 8_000,
                outbound_chunk_ms: 200,
                greeting: spec.greeting.clone(),
                interrupt_response: false,
                playout_latency: Duration::ZERO,
                early_audio_max_ms: 300,
            },
            Instant::now(),
        )
    }

    fn audio_frame(samples: &[i16]) -> String {
        let mut bytes = Vec::new();
        pcm::encode_s16le(samples, &mut bytes);
        let mut b64 = String::new();
        pcm::encode_base64(&bytes, &mut b64);
        format!(
            r#"{{"type":"audio","stream_id":"s","message_id":2,"data":{{"audio_b64":"{b64}"}}}}"#
        )
    }

    fn types(events: &[String]) -> Vec<String> {
        events
            .iter()
            .map(|event| {
                let value: serde_json::Value = serde_json::from_str(event).unwrap();
                value["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn delta(response: &str, item: &str, samples_24k: &[i16]) -> ServerEvent {
        let mut bytes = Vec::new();
        pcm::encode_s16le(samples_24k, &mut bytes);
        let mut delta = String::new();
        pcm::encode_base64(&bytes, &mut delta);
        ServerEvent::AudioDelta {
            response_id: response.into(),
            item_id: item.into(),
            content_index: 0,
            delta,
        }
    }

    /// A core whose OpenAI session is ready (greeting already taken out of the effects).
    fn ready(codec: Codec) -> BridgeCore {
        let mut core = core(codec);
        let mut fx = Effects::default();
        core.ai_connected(&mut fx);
        core.ai_event(
            ServerEvent::SessionUpdated {
                session: serde_json::json!({}),
            },
            Instant::now(),
            &mut fx,
        );
        core
    }

    #[test]
    fn early_audio_waits_for_the_session_update_and_is_bounded() {
        let mut core = core(Codec::Pcm24k);
        let mut fx = Effects::default();
        core.teler_text(r#"{"type":"start","data":{"sample_rate":8000}}"#, &mut fx);
        for _ in 0..5 {
            core.teler_text(&audio_frame(&[100; 800]), &mut fx);
        }
        assert!(fx.is_empty(), "nothing is sent before OpenAI is connected");
        core.ai_connected(&mut fx);
        let sent = types(&fx.to_ai);
        assert_eq!(sent[0], "session.update");
        // 300 ms kept of the 500 ms received: the three newest 100 ms frames.
        assert_eq!(&sent[1..], ["input_audio_buffer.append"; 3]);
        let append: serde_json::Value = serde_json::from_str(&fx.to_ai[1]).unwrap();
        let mut bytes = Vec::new();
        pcm::decode_base64(append["audio"].as_str().unwrap(), &mut bytes).unwrap();
        assert!(
            bytes.len() <= 2_400 * 2 && bytes.len() > 2_000 * 2,
            "100 ms at 24 kHz"
        );

        let mut fx = Effects::default();
        core.ai_event(
            ServerEvent::SessionUpdated {
                session: serde_json::json!({}),
            },
            Instant::now(),
            &mut fx,
        );
        assert_eq!(types(&fx.to_ai), ["response.create"], "the greeting");
        assert!(fx.to_ai[0].contains("Hello!"));
        let mut fx = Effects::default();
        core.teler_text(&audio_frame(&[100; 800]), &mut fx);
        assert_eq!(types(&fx.to_ai), ["input_audio_buffer.append"]);
        assert_eq!(core.audio_in_ms(), 600);
    }

    #[test]
    fn assistant_audio_reaches_the_caller_in_chunks_at_8_khz() {
        let mut core = ready(Codec::Pcm24k);
        let now = Instant::now();
        let mut fx = Effects::default();
        core.ai_event(
            ServerEvent::ResponseCreated {
                response_id: "r1".into(),
            },
            now,
            &mut fx,
        );
        // 500 ms of a 1 kHz tone at 24 kHz in 100 ms deltas.
        let tone = tone::sine(1_000.0, 24_000, 12_000, 8_000.0);
        for piece in tone.chunks(2_400) {
            core.ai_event(delta("r1", "item1", piece), now, &mut fx);
        }
        assert_eq!(fx.to_teler.len(), 2, "two full 200 ms chunks so far");
        core.ai_event(
            ServerEvent::AudioDone {
                response_id: "r1".into(),
                item_id: "item1".into(),
            },
            now,
            &mut fx,
        );
        assert_eq!(
            fx.to_teler.len(),
            3,
            "the rest is flushed at the end of the item"
        );
        let mut received = Vec::new();
        let mut ids = Vec::new();
        for message in &fx.to_teler {
            let value: serde_json::Value = serde_json::from_str(message).unwrap();
            ids.push(value["chunk_id"].as_u64().unwrap());
            let mut bytes = Vec::new();
            pcm::decode_base64(value["audio_b64"].as_str().unwrap(), &mut bytes).unwrap();
            pcm::decode_s16le(&bytes, &mut received);
        }
        assert_eq!(ids, [1, 2, 3]);
        assert!(
            (3_990..=4_010).contains(&received.len()),
            "{}",
            received.len()
        );
        let level = tone::level_dbfs(&received[400..3_600], 1_000.0, 8_000);
        assert!(
            level > -13.0,
            "the tone comes through at 8 kHz: {level} dBFS"
        );
        assert_eq!(core.audio_out_ms(), received.len() as u64 / 8);
        assert!(core.metrics().first_response_ms.is_some());
    }

    #[test]
    fn barge_in_clears_cancels_truncates_and_drops_late_audio() {
        let mut core = ready(Codec::Pcm24k);
        let start = Instant::now();
        let mut fx = Effects::default();
        core.ai_event(
            ServerEvent::ResponseCreated {
                response_id: "r1".into(),
            },
            start,
            &mut fx,
        );
        core.ai_event(delta("r1", "item1", &[500; 24_000]), start, &mut fx);
        core.ai_event(
            ServerEvent::AudioTranscriptDone {
                response_id: "r1".into(),
                item_id: "item1".into(),
                transcript: "A long answer".into(),
            },
            start,
            &mut fx,
        );
        let first = core.take_progress().unwrap();
        assert_eq!(first.new_turns.len(), 1);
        assert!(!first.new_turns[0].interrupted);

        let mut fx = Effects::default();
        let at = start + Duration::from_millis(300);
        core.ai_event(
            ServerEvent::SpeechStarted {
                audio_start_ms: 1_000,
                item_id: Some("u1".into()),
            },
            at,
            &mut fx,
        );
        assert_eq!(fx.to_teler, [CLEAR_MESSAGE]);
        assert_eq!(
            types(&fx.to_ai),
            ["response.cancel", "conversation.item.truncate"]
        );
        let truncate: serde_json::Value = serde_json::from_str(&fx.to_ai[1]).unwrap();
        assert_eq!(truncate["item_id"], "item1");
        assert_eq!(
            truncate["audio_end_ms"], 300,
            "heard 300 ms of the 800 ms sent"
        );
        let cancel: serde_json::Value = serde_json::from_str(&fx.to_ai[0]).unwrap();
        assert_eq!(cancel["response_id"], "r1");

        let mut fx = Effects::default();
        core.ai_event(delta("r1", "item1", &[500; 2_400]), at, &mut fx);
        assert!(
            fx.is_empty(),
            "late audio of the cancelled response is dropped"
        );
        core.ai_event(
            ServerEvent::ResponseDone {
                response: ResponseSummary {
                    id: "r1".into(),
                    status: "cancelled".into(),
                    usage: Some(ResponseUsage::default()),
                    ..ResponseSummary::default()
                },
            },
            at,
            &mut fx,
        );
        assert!(fx.is_empty());
        let progress = core.take_progress().unwrap();
        assert_eq!(
            progress.interrupted_turns,
            [0],
            "the written turn is marked interrupted"
        );
        assert_eq!(
            progress.usage,
            Some(Usage::default()),
            "zero counts are kept"
        );
        assert_eq!(progress.metrics.unwrap().barge_ins, 1);

        // The caller speaking when nothing plays is an ordinary turn: nothing is sent.
        let mut fx = Effects::default();
        let much_later = at + Duration::from_secs(60);
        core.ai_event(
            ServerEvent::SpeechStarted {
                audio_start_ms: 9_000,
                item_id: None,
            },
            much_later,
            &mut fx,
        );
        assert!(fx.is_empty());
    }

    #[test]
    fn a_barge_in_before_any_audio_was_sent_cancels_without_truncating() {
        let mut core = ready(Codec::Pcm24k);
        let now = Instant::now();
        let mut fx = Effects::default();
        core.ai_event(
            ServerEvent::ResponseCreated {
                response_id: "r1".into(),
            },
            now,
            &mut fx,
        );
        core.ai_event(
            ServerEvent::SpeechStarted {
                audio_start_ms: 0,
                item_id: None,
            },
            now,
            &mut fx,
        );
        assert!(fx.to_teler.is_empty(), "nothing to clear");
        assert_eq!(types(&fx.to_ai), ["response.cancel"]);
    }

    #[test]
    fn failures_before_the_session_is_ready_are_connect_failures() {
        let mut core = core(Codec::Pcm24k);
        let mut fx = Effects::default();
        core.ai_connected(&mut fx);
        let error = ServerEvent::Error {
            error: ApiError {
                kind: "invalid_request_error".into(),
                code: Some("invalid_value".into()),
                message: "bad".into(),
                ..ApiError::default()
            },
        };
        let ending = core
            .ai_event(error.clone(), Instant::now(), &mut fx)
            .unwrap();
        assert_eq!(ending.reason, EndReason::AiConnectFailed);
        assert_eq!(ending.status(), CallStatus::Failed);
        assert_eq!(
            core.ai_closed(Some(3000), "invalid_request_error.invalid_api_key")
                .reason,
            EndReason::AiConnectFailed
        );

        let mut core = ready(Codec::Pcm24k);
        assert!(
            core.ai_event(error, Instant::now(), &mut fx).is_none(),
            "recoverable once ready"
        );
        let ending = core.ai_closed(
            Some(1001),
            "Your session hit the maximum duration of 60 minutes.",
        );
        assert_eq!(ending.reason, EndReason::AiError);
        assert_eq!(ending.error.unwrap().code, "openai_session_expired");
    }

    #[test]
    fn pcmu_needs_no_resampling_either_way() {
        let mut core = ready(Codec::Pcmu);
        let mut fx = Effects::default();
        core.teler_text(
            &audio_frame(&tone::sine(1_000.0, 8_000, 800, 8_000.0)),
            &mut fx,
        );
        let append: serde_json::Value = serde_json::from_str(&fx.to_ai[0]).unwrap();
        let mut codes = Vec::new();
        pcm::decode_base64(append["audio"].as_str().unwrap(), &mut codes).unwrap();
        assert_eq!(codes.len(), 800, "one μ-law byte per 8 kHz sample");

        let mut fx = Effects::default();
        let now = Instant::now();
        core.ai_event(
            ServerEvent::ResponseCreated {
                response_id: "r".into(),
            },
            now,
            &mut fx,
        );
        let mut delta = String::new();
        pcm::encode_base64(&codes, &mut delta);
        core.ai_event(
            ServerEvent::AudioDelta {
                response_id: "r".into(),
                item_id: "i".into(),
                content_index: 0,
                delta,
            },
            now,
            &mut fx,
        );
        core.ai_event(
            ServerEvent::AudioDone {
                response_id: "r".into(),
                item_id: "i".into(),
            },
            now,
            &mut fx,
        );
        let chunk: serde_json::Value = serde_json::from_str(&fx.to_teler[0]).unwrap();
        let mut bytes = Vec::new();
        pcm::decode_base64(chunk["audio_b64"].as_str().unwrap(), &mut bytes).unwrap();
        assert_eq!(bytes.len(), 1_600, "800 samples back as s16le");
    }

    #[test]
    fn bad_frames_are_counted_and_skipped() {
        let mut core = ready(Codec::Pcm24k);
        let mut fx = Effects::default();
        assert!(core.teler_text("{nope", &mut fx).is_none());
        assert!(
            core.teler_text(r#"{"type":"audio","data":{"audio_b64":"!!!"}}"#, &mut fx)
                .is_none()
        );
        assert!(core.teler_text(r#"{"type":"mystery"}"#, &mut fx).is_none());
        core.teler_binary();
        // Three bytes: one sample and an odd byte.
        assert!(
            core.teler_text(r#"{"type":"audio","data":{"audio_b64":"AQID"}}"#, &mut fx)
                .is_none()
        );
        let anomalies = core.anomalies();
        assert_eq!(anomalies.bad_teler_frames, 3);
        assert_eq!(anomalies.unknown_teler_types, 1);
        assert_eq!(anomalies.odd_audio_bytes, 1);
        assert!(core.ai_text("not json", Instant::now(), &mut fx).is_none());
        assert_eq!(core.anomalies().bad_ai_events, 1);
    }

    #[test]
    fn an_unconvertible_rate_in_start_ends_the_call() {
        let mut core = core(Codec::Pcm24k);
        let mut fx = Effects::default();
        let ending = core
            .teler_text(r#"{"type":"start","data":{"sample_rate":3}}"#, &mut fx)
            .unwrap();
        assert_eq!(ending.reason, EndReason::TelephonyError);
    }
}
