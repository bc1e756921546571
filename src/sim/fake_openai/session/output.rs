//! The model's side: which audio a response carries (per [`Mode`]), the GA event sequence from
//! `response.created` to `response.done`, delta pacing, the fake caller's barge-in, and the
//! failures injected while audio streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::Session;
use super::items::Item;
use crate::audio::{pcm, tone};
use crate::sim::fake_openai::audio_format::AudioFormat;
use crate::sim::fake_openai::behaviour::{
    ECHO_GREETING_AMPLITUDE, ECHO_GREETING_HZ, ECHO_GREETING_MS, Failure, Mode,
};
use crate::sim::fake_openai::record::{ResponseRecord, ResponseStatus};
use crate::sim::fake_openai::response::{
    ActiveResponse, ResponsePlan, Usage, audio_delta_text, render_samples, render_turn, word_count,
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

/// When the next audio delta is due.
enum DeltaDue {
    None,
    Now,
    At(Instant),
}

impl Session {
    /// `response.create`: start a response unless one is running (OpenAI allows one at a time).
    pub(super) fn on_response_create(
        &mut self,
        event: &Value,
        client_event_id: Option<&Value>,
        now: Instant,
    ) {
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
        let overrides = event.get("response").and_then(Value::as_object);
        // `response.instructions` replaces the session's for this response (it does not add
        // to them): what the model is told is exactly one or the other.
        let instructions = overrides
            .and_then(|response| response.get("instructions"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let plan = self.plan_response(overrides);
        self.start_response(plan, instructions, now);
    }

    /// `response.cancel`: end the running response as cancelled, or `response_cancel_not_active`.
    pub(super) fn on_response_cancel(&mut self, event: &Value, client_event_id: Option<&Value>) {
        self.with_record(|record| record.cancels += 1);
        let requested = event.get("response_id").and_then(Value::as_str);
        let active = self.response.as_ref().map(|response| response.id.clone());
        match (active, requested) {
            (Some(active), Some(requested)) if active != requested => {
                let message =
                    format!("Cancellation failed: no active response found with id '{requested}'.");
                self.invalid(
                    "response_cancel_not_active",
                    &message,
                    "response_id",
                    client_event_id,
                );
            }
            (Some(_), _) => {
                self.finish_response(
                    ResponseStatus::Cancelled,
                    Some("client_cancelled"),
                    Instant::now(),
                );
            }
            (None, _) => self.emit_error(
                "invalid_request_error",
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
                client_event_id,
            ),
        }
    }

    /// Decides what the next response says (consuming an Echo turn or a scripted turn).
    pub(super) fn plan_response(&mut self, overrides: Option<&Map<String, Value>>) -> ResponsePlan {
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
        ResponsePlan {
            audio: if text_only { Vec::new() } else { audio },
            format,
            transcript,
            text_only,
            streaming: streaming && !text_only,
        }
    }

    /// Bytes of `delta_ms` of audio in `format` (at least one sample).
    fn delta_bytes(&self, format: AudioFormat) -> usize {
        let samples =
            pcm::ms_to_samples(u64::from(self.behaviour.delta_ms), format.rate_hz()).max(1);
        samples as usize * format.bytes_per_sample()
    }

    /// `response.created` … `response.content_part.added`; deltas follow from the loop (or at
    /// once for text-only and silent responses, which also finish here).
    /// `instructions` is the response's own override; `None` keeps the session's.
    pub(super) fn start_response(
        &mut self,
        plan: ResponsePlan,
        instructions: Option<String>,
        now: Instant,
    ) {
        let instructions = instructions.unwrap_or_else(|| {
            self.session["instructions"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        let instructions_chars = instructions.chars().count() as u64;
        let previous_item = self.items.last().map(|item| item.json.clone());
        let id = self.ids.next("resp");
        let item_id = self.ids.next("item");
        let index = self.responses_started;
        self.responses_started += 1;
        let barge_in_eligible =
            matches!(self.behaviour.mode, Mode::BargeIn { times, .. } if index < times);
        let deltas = plan
            .audio
            .len()
            .div_ceil(self.delta_bytes(plan.format))
            .max(1);
        let words_per_delta = word_count(&plan.transcript).div_ceil(deltas).max(1);
        let previous_item_id = self.last_item_id();
        let record_index = self.with_record(|record| {
            record.responses.push(ResponseRecord {
                id: id.clone(),
                item_id: item_id.clone(),
                status: ResponseStatus::InProgress,
                audio_ms_sent: 0,
                transcript: plan.transcript.clone(),
                instructions,
                previous_item,
            });
            record.responses.len() - 1
        });
        let active = ActiveResponse {
            id: id.clone(),
            item_id: item_id.clone(),
            record_index,
            item_index: self.items.len(),
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
        };
        let voice = self.voice();
        let item = active.item_json("in_progress", false);
        self.items.push(Item {
            id: item_id.clone(),
            role: "assistant".into(),
            audio_ms: 0,
            json: item.clone(),
        });
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
        self.emit(json!({
            "type": "response.output_item.added",
            "response_id": id,
            "output_index": 0,
            "item": item
        }));
        self.emit(json!({
            "type": "conversation.item.added",
            "previous_item_id": previous_item_id,
            "item": item
        }));
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
        let text_only = active.text_only;
        let silent = !active.streaming && active.audio.is_empty();
        self.response = Some(active);
        if text_only {
            let text = self
                .response
                .as_mut()
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
            self.finish_response(ResponseStatus::Completed, None, now);
        } else if silent {
            self.finish_response(ResponseStatus::Completed, None, now);
        }
    }

    /// The session's voice, as `response` objects echo it.
    fn voice(&self) -> Value {
        self.session["audio"]["output"]["voice"].clone()
    }

    /// When the next rendered delta may go out.
    fn delta_due(&self) -> DeltaDue {
        let Some(response) = &self.response else {
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
        let ready = match self.delta_due() {
            DeltaDue::Now => true,
            // Already due (e.g. the first delta of a response just created): no timer
            // round trip, which would add up to a millisecond of timer resolution.
            DeltaDue::At(at) if at <= Instant::now() => true,
            DeltaDue::At(at) => {
                consider(at);
                false
            }
            DeltaDue::None => false,
        };
        if let Some(speech) = &self.fake_speech {
            consider(speech.stop_at);
        }
        if let Some(deadline) = self.cap_deadline {
            consider(deadline);
        }
        (ready, earliest)
    }

    /// Timed work: the session cap, the fake caller's end of speech, then due deltas (a burst
    /// at most, so inbound frames are read between bursts).
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
            if self.closing.is_some() {
                return;
            }
            match self.delta_due() {
                DeltaDue::Now => self.send_rendered_delta(now),
                DeltaDue::At(at) if at <= now => self.send_rendered_delta(now),
                _ => return,
            }
        }
    }

    /// Sends the next `delta_ms` of a rendered response.
    fn send_rendered_delta(&mut self, now: Instant) {
        let Some(format) = self.response.as_ref().map(|response| response.format) else {
            return;
        };
        let delta_bytes = self.delta_bytes(format);
        let Some(response) = self.response.as_mut() else {
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
        self.after_delta(((end - start) / format.bytes_per_sample()) as u64, now);
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
        if let Some(item) = self.items.get_mut(item_index) {
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

    /// Ends the current response: the `.done` events, then `response.done` with usage.
    pub(super) fn finish_response(
        &mut self,
        status: ResponseStatus,
        reason: Option<&str>,
        _now: Instant,
    ) {
        let Some(mut response) = self.response.take() else {
            return;
        };
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
        self.emit(json!({"type": "conversation.item.done", "item": item}));

        let sent_ms = response.sent_ms();
        let mut usage = response.usage;
        usage.output_audio = sent_ms / 50;
        usage.output_text = (said.chars().count() as u64).div_ceil(4);
        let voice = self.voice();
        let body = response.to_json(
            status,
            reason,
            vec![item.clone()],
            Some(usage.to_json()),
            &voice,
        );
        self.emit(json!({"type": "response.done", "response": body}));

        self.history.assistant_audio_ms += sent_ms;
        self.history.text_chars += said.chars().count() as u64;
        self.history.items += 1;
        self.history.last_input_tokens = usage.input_tokens();
        if let Some(known) = self.items.get_mut(response.item_index) {
            known.audio_ms = sent_ms;
            known.json = item;
        }
        let transcript = response.transcript.clone();
        let streaming = response.streaming;
        self.with_record(|record| {
            if let Some(entry) = record.responses.get_mut(response.record_index) {
                entry.status = status;
                entry.audio_ms_sent = sent_ms;
                if streaming {
                    entry.transcript = transcript;
                }
            }
        });
    }
}
