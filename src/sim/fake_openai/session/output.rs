//! The model's side: which audio a response carries (per [`Mode`], or a scripted function call's
//! preamble and follow-up), the GA event sequence from `response.created` to `response.done`,
//! delta pacing, the fake caller's barge-in, and the failures injected while audio streams.
//!
//! One default-conversation response runs at a time (`Session::response`); out-of-band
//! responses (`response.conversation: "none"`) run beside it in `Session::out_of_band`, are
//! paced the same way, add no conversation items and are never barged in on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::Session;
use super::items::Item;
use crate::audio::{pcm, tone};
use crate::sim::fake_openai::audio_format::AudioFormat;
use crate::sim::fake_openai::behaviour::{
    ECHO_GREETING_AMPLITUDE, ECHO_GREETING_HZ, ECHO_GREETING_MS, Failure, Mode, ScriptedTurn,
};
use crate::sim::fake_openai::record::{ResponseRecord, ResponseStatus};
use crate::sim::fake_openai::response::{
    ActiveResponse, History, ResponsePlan, Usage, audio_delta_text, render_samples, render_turn,
    word_count,
};

/// How long the fake caller of [`Mode::BargeIn`] "talks".
const FAKE_SPEECH_MS: u64 = 300;

/// The close reason of [`Failure::SessionCap`], as OpenAI words it.
const SESSION_CAP_REASON: &str = "Your session hit the maximum duration of 60 minutes.";

/// Unpaced deltas sent per loop turn before the socket is flushed and inbound frames read.
const UNPACED_BURST: usize = 16;

/// The fake caller talking over a response ([`Mode::BargeIn`]).
pub(super) struct FakeSpeech {
    item_id: String,
    start_ms: u64,
    stop_at: Instant,
}

/// Where a running response lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// `Session::response`, the default conversation's.
    Default,
    /// `Session::out_of_band[index]`.
    OutOfBand(usize),
}

/// When the next audio delta is due.
enum DeltaDue {
    None,
    Now,
    At(Instant),
}

impl Session {
    /// `response.create`: an out-of-band response runs at once; a default-conversation one
    /// starts unless one is running (OpenAI allows one at a time), speaking a function-call
    /// batch's follow-up when this is the batch's continuation.
    pub(super) fn on_response_create(
        &mut self,
        event: &Value,
        client_event_id: Option<&Value>,
        now: Instant,
    ) {
        let overrides = event.get("response").and_then(Value::as_object);
        let out_of_band = overrides
            .and_then(|response| response.get("conversation"))
            .and_then(Value::as_str)
            == Some("none");
        if out_of_band {
            self.start_out_of_band(overrides, client_event_id, now);
            return;
        }
        if let Some(active) = &self.response {
            let message = format!(
                "Conversation already has an active response in progress: {}. Wait until the \
                 response is finished before creating a new one.",
                active.id
            );
            self.emit_error(
                "invalid_request_error",
                "conversation_already_has_active_response",
                &message,
                None,
                client_event_id,
            );
            return;
        }
        // `response.instructions` replaces the session's for this response (it does not add
        // to them): what the model is told is exactly one or the other.
        let instructions = overrides
            .and_then(|response| response.get("instructions"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let follow_up = self.continuation();
        let mut plan = match &follow_up {
            Some((_, turn)) => self.plan_turn(turn, overrides),
            None => self.plan_response(overrides),
        };
        plan.metadata = overrides
            .and_then(|response| response.get("metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        let id = self.start_response(plan, instructions, now);
        if let Some((batch, _)) = follow_up {
            self.follow_up_started(batch, &id);
        }
    }

    /// An out-of-band `response.create`: says [`Behaviour::filler`] beside whatever runs,
    /// without touching the conversation (its `input` item references must exist).
    ///
    /// [`Behaviour::filler`]: crate::sim::fake_openai::Behaviour::filler
    fn start_out_of_band(
        &mut self,
        overrides: Option<&Map<String, Value>>,
        client_event_id: Option<&Value>,
        now: Instant,
    ) {
        let input = overrides
            .and_then(|response| response.get("input"))
            .and_then(Value::as_array);
        let mut context = History::default();
        if let Some(input) = input {
            for (index, item) in input.iter().enumerate() {
                let reference = (item["type"] == "item_reference")
                    .then(|| item["id"].as_str().unwrap_or_default());
                let referenced = match reference {
                    Some(id) => match self.items.iter().find(|known| known.id == id) {
                        Some(known) => Some(known.json.clone()),
                        None => {
                            let message = format!("Item with id '{id}' not found.");
                            let param = format!("response.input[{index}].id");
                            self.invalid("invalid_value", &message, &param, client_event_id);
                            return;
                        }
                    },
                    None => Some(item.clone()),
                };
                if let Some(Value::Object(item)) = referenced {
                    context.items += 1;
                    context.text_chars += super::items::text_chars(&item);
                }
            }
        }
        let instructions = overrides
            .and_then(|response| response.get("instructions"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let filler = self.behaviour.filler.clone();
        let mut plan = self.plan_turn(&filler, overrides);
        plan.out_of_band = true;
        plan.metadata = overrides
            .and_then(|response| response.get("metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        if input.is_some() {
            // `input` is the response's whole context.
            let saved = std::mem::replace(&mut self.history, context);
            self.start_response(plan, instructions, now);
            self.history = saved;
        } else {
            self.start_response(plan, instructions, now);
        }
    }

    /// `response.cancel`: end the named (or the default) running response as cancelled, or
    /// `response_cancel_not_active`.
    pub(super) fn on_response_cancel(&mut self, event: &Value, client_event_id: Option<&Value>) {
        self.with_record(|record| record.cancels += 1);
        let requested = event.get("response_id").and_then(Value::as_str);
        let active = self.response.as_ref().map(|response| response.id.clone());
        let slot = match requested {
            Some(requested) if active.as_deref() == Some(requested) => Some(Slot::Default),
            Some(requested) => self
                .out_of_band
                .iter()
                .position(|response| response.id == requested)
                .map(Slot::OutOfBand),
            None => active.map(|_| Slot::Default),
        };
        match (slot, requested) {
            (Some(slot), _) => {
                self.finish_slot(slot, ResponseStatus::Cancelled, Some("client_cancelled"))
            }
            (None, Some(requested)) => {
                let message =
                    format!("Cancellation failed: no active response found with id '{requested}'.");
                self.invalid(
                    "response_cancel_not_active",
                    &message,
                    "response_id",
                    client_event_id,
                );
            }
            (None, None) => self.emit_error(
                "invalid_request_error",
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
                client_event_id,
            ),
        }
    }

    /// The output format and text-only flag of a response with these overrides.
    fn output_of(&self, overrides: Option<&Map<String, Value>>) -> (AudioFormat, bool) {
        let format = overrides
            .and_then(|response| response.get("audio"))
            .and_then(|audio| audio.get("output"))
            .and_then(|output| output.get("format"))
            .and_then(AudioFormat::from_json)
            .unwrap_or(self.output_format);
        let text_only = overrides
            .and_then(|response| response.get("output_modalities"))
            .and_then(Value::as_array)
            .map_or(self.text_only, |modalities| {
                modalities.len() == 1 && modalities[0] == "text"
            });
        (format, text_only)
    }

    /// A response that says `turn` (a follow-up or the filler), consuming nothing.
    fn plan_turn(
        &mut self,
        turn: &ScriptedTurn,
        overrides: Option<&Map<String, Value>>,
    ) -> ResponsePlan {
        let (format, text_only) = self.output_of(overrides);
        let audio = if text_only {
            Vec::new()
        } else {
            render_turn(turn, format)
        };
        ResponsePlan::message(audio, format, turn.transcript.clone(), text_only, false)
    }

    /// Decides what the next default-conversation response says: the scripted function calls
    /// for the user turn it answers, else per [`Mode`] (consuming an Echo turn or a scripted
    /// turn).
    pub(super) fn plan_response(&mut self, overrides: Option<&Map<String, Value>>) -> ResponsePlan {
        let (format, text_only) = self.output_of(overrides);
        if let Some(entry) = self.take_function_call(overrides) {
            // The calls replace the answer: an Echo turn is not echoed.
            self.echo_pending = None;
            let behaviour = Arc::clone(&self.behaviour);
            let preamble = behaviour.function_calls[entry].preamble.as_ref();
            let (audio, transcript) = match preamble {
                Some(turn) if !text_only => (render_turn(turn, format), turn.transcript.clone()),
                Some(turn) => (Vec::new(), turn.transcript.clone()),
                None => (Vec::new(), String::new()),
            };
            let mut plan = ResponsePlan::message(audio, format, transcript, text_only, false);
            plan.message = preamble.is_some();
            plan.function_call = Some(entry);
            return plan;
        }
        let behaviour = Arc::clone(&self.behaviour);
        let (audio, transcript, streaming) = match &behaviour.mode {
            Mode::Echo => match self.echo_pending.take() {
                Some((samples, rate)) => {
                    let ms = pcm::samples_to_ms(samples.len() as u64, rate);
                    (
                        render_samples(&samples, rate, format),
                        format!("echo: {ms} ms"),
                        false,
                    )
                }
                None => {
                    let rate = format.rate_hz();
                    let greeting = tone::sine(
                        ECHO_GREETING_HZ,
                        rate,
                        pcm::ms_to_samples(u64::from(ECHO_GREETING_MS), rate) as usize,
                        ECHO_GREETING_AMPLITUDE,
                    );
                    (
                        render_samples(&greeting, rate, format),
                        "echo: greeting".to_owned(),
                        false,
                    )
                }
            },
            Mode::EchoStream { .. } => (Vec::new(), String::new(), true),
            Mode::Scripted { turns } | Mode::BargeIn { turns, .. } => {
                match turns.get(self.scripted_next % turns.len().max(1)) {
                    Some(turn) => {
                        self.scripted_next += 1;
                        (render_turn(turn, format), turn.transcript.clone(), false)
                    }
                    None => (Vec::new(), String::new(), false),
                }
            }
        };
        ResponsePlan::message(audio, format, transcript, text_only, streaming)
    }

    /// Bytes of `delta_ms` of audio in `format` (at least one sample).
    fn delta_bytes(&self, format: AudioFormat) -> usize {
        let samples =
            pcm::ms_to_samples(u64::from(self.behaviour.delta_ms), format.rate_hz()).max(1);
        samples as usize * format.bytes_per_sample()
    }

    /// `response.created` … `response.content_part.added`; deltas follow from the loop (or at
    /// once for text-only and silent responses, which also finish here, as does a
    /// function-call response without a preamble). `instructions` is the response's own
    /// override; `None` keeps the session's. Returns the response id.
    pub(super) fn start_response(
        &mut self,
        plan: ResponsePlan,
        instructions: Option<String>,
        now: Instant,
    ) -> String {
        let instructions = instructions.unwrap_or_else(|| {
            self.session["instructions"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        let instructions_chars = instructions.chars().count() as u64;
        let previous_item = self.items.last().map(|item| item.json.clone());
        let id = self.ids.next("resp");
        let item_id = if plan.message {
            self.ids.next("item")
        } else {
            String::new()
        };
        let out_of_band = plan.out_of_band;
        let barge_in_eligible = if out_of_band {
            false
        } else {
            let index = self.responses_started;
            self.responses_started += 1;
            matches!(self.behaviour.mode, Mode::BargeIn { times, .. } if index < times)
        };
        let deltas = plan
            .audio
            .len()
            .div_ceil(self.delta_bytes(plan.format))
            .max(1);
        let words_per_delta = word_count(&plan.transcript).div_ceil(deltas).max(1);
        let previous_item_id = self.last_item_id();
        let metadata = plan.metadata.clone();
        let record_index = self.with_record(|record| {
            record.responses.push(ResponseRecord {
                id: id.clone(),
                item_id: item_id.clone(),
                status: ResponseStatus::InProgress,
                audio_ms_sent: 0,
                transcript: plan.transcript.clone(),
                instructions,
                previous_item,
                out_of_band,
                metadata,
                call_ids: Vec::new(),
            });
            record.responses.len() - 1
        });
        let in_conversation = plan.message && !out_of_band;
        let active = ActiveResponse {
            id: id.clone(),
            item_id: item_id.clone(),
            record_index,
            item_index: in_conversation.then_some(self.items.len()),
            format: plan.format,
            audio: plan.audio,
            sent_bytes: 0,
            transcript: plan.transcript,
            transcript_sent: 0,
            words_per_delta,
            text_only: plan.text_only,
            streaming: plan.streaming,
            started: now,
            usage: Usage::input(&self.history, instructions_chars),
            barge_in_eligible,
            barge_in_fired: false,
            message: plan.message,
            function_call: plan.function_call,
            out_of_band,
            metadata: plan.metadata,
        };
        let voice = self.voice();
        self.emit(json!({
            "type": "response.created",
            "response": active.to_json(ResponseStatus::InProgress, None, Vec::new(), None, &voice)
        }));
        self.emit(json!({
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 5_000, "remaining": 4_999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 40_000, "remaining": 36_000, "reset_seconds": 6.0}
            ]
        }));
        if active.message {
            let item = active.item_json("in_progress", false);
            if in_conversation {
                self.items.push(Item {
                    id: item_id.clone(),
                    role: "assistant".into(),
                    audio_ms: 0,
                    json: item.clone(),
                });
            }
            self.emit(json!({
                "type": "response.output_item.added",
                "response_id": id,
                "output_index": 0,
                "item": item
            }));
            if in_conversation {
                self.emit(json!({
                    "type": "conversation.item.added",
                    "previous_item_id": previous_item_id,
                    "item": item
                }));
            }
            let part = if active.text_only {
                json!({"type": "text", "text": ""})
            } else {
                json!({"type": "audio", "transcript": ""})
            };
            self.emit(json!({
                "type": "response.content_part.added",
                "response_id": id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": part
            }));
        }
        let (message, text_only) = (active.message, active.text_only);
        let silent = !active.streaming && active.audio.is_empty();
        let slot = if out_of_band {
            self.out_of_band.push(active);
            Slot::OutOfBand(self.out_of_band.len() - 1)
        } else {
            self.response = Some(active);
            Slot::Default
        };
        if message && text_only {
            let text = self
                .slot_mut(slot)
                .and_then(|response| response.next_transcript_piece(true));
            if let Some(delta) = text {
                self.emit(json!({
                    "type": "response.output_text.delta",
                    "response_id": id,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": delta
                }));
            }
            self.finish_slot(slot, ResponseStatus::Completed, None);
        } else if silent {
            self.finish_slot(slot, ResponseStatus::Completed, None);
        }
        id
    }

    /// The response in `slot`.
    fn slot_ref(&self, slot: Slot) -> Option<&ActiveResponse> {
        match slot {
            Slot::Default => self.response.as_ref(),
            Slot::OutOfBand(index) => self.out_of_band.get(index),
        }
    }

    /// The response in `slot`, mutably.
    fn slot_mut(&mut self, slot: Slot) -> Option<&mut ActiveResponse> {
        match slot {
            Slot::Default => self.response.as_mut(),
            Slot::OutOfBand(index) => self.out_of_band.get_mut(index),
        }
    }

    /// Every running response's slot, the default one first.
    fn slots(&self) -> Vec<Slot> {
        let default = self.response.is_some().then_some(Slot::Default);
        default
            .into_iter()
            .chain((0..self.out_of_band.len()).map(Slot::OutOfBand))
            .collect()
    }

    /// The session's voice, as `response` objects echo it.
    fn voice(&self) -> Value {
        self.session["audio"]["output"]["voice"].clone()
    }

    /// When the next rendered delta of `slot`'s response may go out.
    fn delta_due(&self, slot: Slot) -> DeltaDue {
        let Some(response) = self.slot_ref(slot) else {
            return DeltaDue::None;
        };
        if !response.audio_remaining() {
            return DeltaDue::None;
        }
        match self.behaviour.pace.due_after(response.sent_ms_exact()) {
            None => DeltaDue::Now,
            Some(after) => DeltaDue::At(response.started + after),
        }
    }

    /// Whether something is due at once, and the earliest timed thing.
    pub(in crate::sim::fake_openai) fn next_wake(&self) -> (bool, Option<Instant>) {
        let mut earliest: Option<Instant> = None;
        let mut consider = |at: Instant| {
            earliest = Some(earliest.map_or(at, |current| current.min(at)));
        };
        let mut ready = false;
        let now = Instant::now();
        for slot in self.slots() {
            match self.delta_due(slot) {
                DeltaDue::Now => ready = true,
                // Already due (e.g. the first delta of a response just created): no timer
                // round trip, which would add up to a millisecond of timer resolution.
                DeltaDue::At(at) if at <= now => ready = true,
                DeltaDue::At(at) => consider(at),
                DeltaDue::None => {}
            }
        }
        if let Some(speech) = &self.fake_speech {
            consider(speech.stop_at);
        }
        if let Some(deadline) = self.cap_deadline {
            consider(deadline);
        }
        (ready, earliest)
    }

    /// Timed work: the session cap, the fake caller's end of speech, then due deltas (a burst
    /// at most, one delta per running response per round, so inbound frames are read between
    /// bursts).
    pub(in crate::sim::fake_openai) fn on_tick(&mut self, now: Instant) {
        if self.cap_deadline.is_some_and(|deadline| now >= deadline) {
            self.cap_deadline = None;
            self.closing = Some((1001, SESSION_CAP_REASON.into()));
            return;
        }
        if self
            .fake_speech
            .as_ref()
            .is_some_and(|speech| now >= speech.stop_at)
        {
            self.end_fake_speech(now);
        }
        for _ in 0..UNPACED_BURST {
            let due: Vec<Slot> = self
                .slots()
                .into_iter()
                .filter(|slot| match self.delta_due(*slot) {
                    DeltaDue::Now => true,
                    DeltaDue::At(at) => at <= now,
                    DeltaDue::None => false,
                })
                .collect();
            if due.is_empty() {
                return;
            }
            // Out-of-band slots are sent from the last, so that one finishing (and leaving
            // the list) does not move the others still to be sent this round.
            for slot in due.into_iter().rev() {
                if self.closing.is_some() {
                    return;
                }
                self.send_rendered_delta(slot, now);
            }
        }
    }

    /// Sends the next `delta_ms` of `slot`'s rendered response.
    fn send_rendered_delta(&mut self, slot: Slot, now: Instant) {
        let Some(format) = self.slot_ref(slot).map(|response| response.format) else {
            return;
        };
        let delta_bytes = self.delta_bytes(format);
        let response = match slot {
            Slot::Default => self.response.as_mut(),
            Slot::OutOfBand(index) => self.out_of_band.get_mut(index),
        };
        let Some(response) = response else {
            return;
        };
        let start = response.sent_bytes as usize;
        let end = (start + delta_bytes).min(response.audio.len());
        let Some(chunk) = response.audio.get(start..end) else {
            return;
        };
        self.scratch_base64.clear();
        pcm::encode_base64(chunk, &mut self.scratch_base64);
        response.sent_bytes = end as u64;
        let event_id = self.ids.next("event");
        self.outbox.push(audio_delta_text(
            &event_id,
            &response.id,
            &response.item_id,
            &self.scratch_base64,
        ));
        let piece = response.next_transcript_piece(false);
        let (response_id, item_id) = (response.id.clone(), response.item_id.clone());
        if let Some(delta) = piece {
            self.emit_transcript_delta(&response_id, &item_id, &delta);
        }
        let samples = ((end - start) / format.bytes_per_sample()) as u64;
        match slot {
            Slot::Default => self.after_delta(samples, now),
            Slot::OutOfBand(index) => self.after_out_of_band_delta(index),
        }
    }

    /// Bookkeeping after a delta of an out-of-band response (no failures, no barge-in).
    fn after_out_of_band_delta(&mut self, index: usize) {
        let Some(response) = self.out_of_band.get(index) else {
            return;
        };
        let (record_index, sent_ms) = (response.record_index, response.sent_ms());
        let finished = !response.audio_remaining();
        self.with_record(|record| {
            if let Some(entry) = record.responses.get_mut(record_index) {
                entry.audio_ms_sent = sent_ms;
            }
        });
        if finished {
            self.finish_slot(Slot::OutOfBand(index), ResponseStatus::Completed, None);
        }
    }

    /// Sends one appended chunk back as a delta of the long-lived EchoStream response.
    pub(super) fn stream_echo(&mut self, chunk: &[u8], now: Instant) {
        if chunk.is_empty() {
            return;
        }
        if self.response.is_none() {
            let plan = self.plan_response(None);
            self.start_response(plan, None, now);
        }
        let Some(response) = self.response.as_mut().filter(|response| response.streaming) else {
            return;
        };
        self.scratch_base64.clear();
        pcm::encode_base64(chunk, &mut self.scratch_base64);
        response.sent_bytes += chunk.len() as u64;
        let samples = (chunk.len() / response.format.bytes_per_sample()) as u64;
        let event_id = self.ids.next("event");
        self.outbox.push(audio_delta_text(
            &event_id,
            &response.id,
            &response.item_id,
            &self.scratch_base64,
        ));
        self.after_delta(samples, now);
    }

    /// One `response.output_audio_transcript.delta`.
    fn emit_transcript_delta(&mut self, response_id: &str, item_id: &str, delta: &str) {
        self.emit(json!({
            "type": "response.output_audio_transcript.delta",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": delta
        }));
    }

    /// Bookkeeping and injected behaviour after each audio delta.
    fn after_delta(&mut self, delta_samples: u64, now: Instant) {
        let Some(response) = &self.response else {
            return;
        };
        let (record_index, item_index, sent_ms) = (
            response.record_index,
            response.item_index,
            response.sent_ms(),
        );
        let (streaming, remaining) = (response.streaming, response.audio_remaining());
        let barge_in_due = response.barge_in_eligible && !response.barge_in_fired;
        self.output_samples_total += delta_samples;
        if let Some(item) = item_index.and_then(|index| self.items.get_mut(index)) {
            item.audio_ms = sent_ms;
        }
        let (timings, total) = (self.behaviour.record_timings, self.output_samples_total);
        self.with_record(|record| {
            if let Some(entry) = record.responses.get_mut(record_index) {
                entry.audio_ms_sent = sent_ms;
            }
            if timings {
                record.delta_timings.push((total, now));
            }
        });

        match &self.behaviour.failure {
            Some(Failure::CloseMidResponse {
                code,
                reason,
                after_ms,
            }) if sent_ms >= u64::from(*after_ms) => {
                self.closing = Some((*code, reason.clone()));
                return;
            }
            _ => {}
        }
        if let Mode::BargeIn { after_ms, .. } = self.behaviour.mode {
            if barge_in_due && sent_ms >= u64::from(after_ms) {
                self.start_fake_speech(now);
                if self.response.is_none() {
                    return;
                }
            }
        }
        let finished = match self.behaviour.mode {
            Mode::EchoStream { turn_ms } if streaming => {
                turn_ms > 0 && sent_ms >= u64::from(turn_ms)
            }
            _ => !streaming && !remaining,
        };
        if finished {
            self.finish_response(ResponseStatus::Completed, None, now);
        }
    }

    /// The fake caller starts talking over the current response.
    fn start_fake_speech(&mut self, now: Instant) {
        if let Some(response) = &mut self.response {
            response.barge_in_fired = true;
        }
        let item_id = self.ids.next("item");
        let start_ms = self.appended_ms();
        self.emit(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": start_ms,
            "item_id": item_id
        }));
        self.fake_speech = Some(FakeSpeech {
            item_id,
            start_ms,
            stop_at: now + Duration::from_millis(FAKE_SPEECH_MS),
        });
        if self
            .turn_detection
            .is_some_and(|config| config.interrupt_response)
        {
            self.finish_response(ResponseStatus::Cancelled, Some("turn_detected"), now);
        }
    }

    /// The fake caller stops: `speech_stopped`, then a 300 ms user turn is committed.
    fn end_fake_speech(&mut self, now: Instant) {
        let Some(speech) = self.fake_speech.take() else {
            return;
        };
        let audio_end_ms = speech.start_ms + FAKE_SPEECH_MS;
        self.emit(json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_end_ms,
            "item_id": speech.item_id
        }));
        let respond = self
            .turn_detection
            .is_some_and(|config| config.create_response);
        self.commit_user_turn(speech.item_id, FAKE_SPEECH_MS, None, respond, now);
    }

    /// Ends the default-conversation response: the `.done` events, then `response.done`.
    pub(super) fn finish_response(
        &mut self,
        status: ResponseStatus,
        reason: Option<&str>,
        _now: Instant,
    ) {
        self.finish_slot(Slot::Default, status, reason);
    }

    /// Ends the response in `slot` (if any).
    fn finish_slot(&mut self, slot: Slot, status: ResponseStatus, reason: Option<&str>) {
        let response = match slot {
            Slot::Default => self.response.take(),
            Slot::OutOfBand(index) => {
                (index < self.out_of_band.len()).then(|| self.out_of_band.remove(index))
            }
        };
        if let Some(response) = response {
            self.conclude(response, status, reason);
        }
    }

    /// The message item's `.done` events, its function calls when it completed, then
    /// `response.done` with every output item and usage; the conversation and the record are
    /// brought up to date.
    fn conclude(
        &mut self,
        mut response: ActiveResponse,
        status: ResponseStatus,
        reason: Option<&str>,
    ) {
        let id = response.id.clone();
        let mut output = Vec::new();
        let mut said = String::new();
        if response.message {
            let item = self.close_message(&mut response, status);
            said = response.transcript_so_far().to_owned();
            output.push(item);
        }
        let mut call_ids = Vec::new();
        let mut arguments_chars = 0;
        if let Some(entry) = response.function_call {
            if status == ResponseStatus::Completed && !response.out_of_band {
                let calls = self.emit_function_calls(&id, entry, output.len());
                for (call_id, item) in calls {
                    arguments_chars += item["arguments"]
                        .as_str()
                        .map_or(0, |arguments| arguments.chars().count() as u64);
                    call_ids.push(call_id);
                    output.push(item);
                }
            }
        }

        let sent_ms = response.sent_ms();
        let mut usage = response.usage;
        usage.output_audio = sent_ms / 50;
        usage.output_text = (said.chars().count() as u64).div_ceil(4) + arguments_chars.div_ceil(4);
        let voice = self.voice();
        let message_item = output.first().filter(|_| response.message).cloned();
        let body = response.to_json(status, reason, output, Some(usage.to_json()), &voice);
        self.emit(json!({"type": "response.done", "response": body}));

        if !response.out_of_band {
            // The calls' items and text were counted as they were emitted.
            if response.message {
                self.history.assistant_audio_ms += sent_ms;
                self.history.text_chars += said.chars().count() as u64;
                self.history.items += 1;
            }
            self.history.last_input_tokens = usage.input_tokens();
            if let (Some(index), Some(item)) = (response.item_index, message_item) {
                if let Some(known) = self.items.get_mut(index) {
                    known.audio_ms = sent_ms;
                    known.json = item;
                }
            }
        }
        let transcript = response.transcript.clone();
        let streaming = response.streaming;
        self.with_record(|record| {
            if let Some(entry) = record.responses.get_mut(response.record_index) {
                entry.status = status;
                entry.audio_ms_sent = sent_ms;
                entry.call_ids = call_ids;
                if streaming {
                    entry.transcript = transcript;
                }
            }
        });
    }

    /// The `.done` events of a response's message item (at output index 0); returns the item.
    fn close_message(&mut self, response: &mut ActiveResponse, status: ResponseStatus) -> Value {
        let (id, item_id) = (response.id.clone(), response.item_id.clone());
        if response.streaming {
            response.transcript = format!("echo: {} ms", response.sent_ms());
            response.transcript_sent = 0;
        }
        if (status == ResponseStatus::Completed || response.streaming) && !response.text_only {
            if let Some(delta) = response.next_transcript_piece(true) {
                self.emit_transcript_delta(&id, &item_id, &delta);
            }
        }
        let said = response.transcript_so_far().to_owned();
        let ids = json!({
            "response_id": id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0
        });
        let with = |kind: &str, extra: Value| {
            let mut event = ids.clone();
            event["type"] = json!(kind);
            if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
                event.extend(extra.clone());
            }
            event
        };
        let part = if response.text_only {
            self.emit(with("response.output_text.done", json!({"text": said})));
            json!({"type": "text", "text": said})
        } else {
            self.emit(with("response.output_audio.done", json!({})));
            self.emit(with(
                "response.output_audio_transcript.done",
                json!({"transcript": said}),
            ));
            json!({"type": "audio", "transcript": said})
        };
        self.emit(with("response.content_part.done", json!({"part": part})));
        let item_status = if status == ResponseStatus::Completed {
            "completed"
        } else {
            "incomplete"
        };
        let item = response.item_json(item_status, true);
        self.emit(json!({
            "type": "response.output_item.done",
            "response_id": id,
            "output_index": 0,
            "item": item
        }));
        if !response.out_of_band {
            self.emit(json!({"type": "conversation.item.done", "item": item}));
        }
        item
    }
}
