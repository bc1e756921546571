//! The caller's side: appended audio (decoded once into reused buffers), the input timeline,
//! server VAD and user turns (committed by VAD or by `input_audio_buffer.commit`).

use std::time::Instant;

use serde_json::{Value, json};

use super::Session;
use super::items::Item;
use crate::audio::pcm;
use crate::sim::fake_openai::audio_format::resample;
use crate::sim::fake_openai::behaviour::{Failure, Mode, Trigger};
use crate::sim::fake_openai::record::ResponseStatus;
use crate::sim::fake_openai::response::render_samples;
use crate::sim::fake_openai::vad::{self, VadEvent};
use crate::sim::fake_openai::validate;

/// Longest user turn [`Mode::Echo`] keeps (older audio is dropped).
const MAX_TURN_MS: u64 = 30_000;

/// The caller audio since the last commit, kept by [`Mode::Echo`] only. Samples are at the
/// input rate; `samples[0]` sits at `origin_ms` on the input timeline, and only whole
/// milliseconds are ever dropped, so the mapping stays exact.
pub(super) struct InputBuffer {
    samples: Vec<i16>,
    origin_ms: u64,
    rate_hz: u32,
}

impl InputBuffer {
    /// An empty buffer at the start of the timeline.
    pub(super) fn new(rate_hz: u32) -> InputBuffer {
        InputBuffer {
            samples: Vec::new(),
            origin_ms: 0,
            rate_hz,
        }
    }

    /// Samples per millisecond (both GA rates are whole multiples of 1 kHz).
    fn samples_per_ms(&self) -> usize {
        (self.rate_hz / 1_000).max(1) as usize
    }

    /// Index of the sample at `ms`, clamped to the buffer.
    fn index(&self, ms: u64) -> usize {
        let offset = ms.saturating_sub(self.origin_ms) as usize * self.samples_per_ms();
        offset.min(self.samples.len())
    }

    /// Empties the buffer and restarts it at `origin_ms`, at a possibly new rate.
    pub(super) fn reset(&mut self, origin_ms: u64, rate_hz: u32) {
        self.samples.clear();
        self.origin_ms = origin_ms;
        self.rate_hz = rate_hz;
    }

    /// Appends audio, dropping the oldest beyond [`MAX_TURN_MS`].
    fn push(&mut self, samples: &[i16]) {
        self.samples.extend_from_slice(samples);
        let max = MAX_TURN_MS as usize * self.samples_per_ms();
        if self.samples.len() > max {
            let excess_ms = (self.samples.len() - max).div_ceil(self.samples_per_ms()) as u64;
            self.drop_ms(excess_ms);
        }
    }

    /// Drops audio before `ms`, but only in steps of a second or more (draining moves the rest).
    fn trim_before(&mut self, ms: u64) {
        let drop_ms = ms.saturating_sub(self.origin_ms);
        if drop_ms >= 1_000 {
            self.drop_ms(drop_ms);
        }
    }

    /// Drops the first `ms` of audio and moves the origin with it.
    fn drop_ms(&mut self, ms: u64) {
        let count = (ms as usize * self.samples_per_ms()).min(self.samples.len());
        self.samples.drain(..count);
        self.origin_ms += ms;
    }

    /// The audio from `from_ms` to `to_ms`; everything before `to_ms` is then dropped.
    fn take(&mut self, from_ms: u64, to_ms: u64) -> Vec<i16> {
        let start = self.index(from_ms);
        let end = self.index(to_ms).max(start);
        let turn = self
            .samples
            .get(start..end)
            .map(<[i16]>::to_vec)
            .unwrap_or_default();
        self.drop_ms(to_ms.saturating_sub(self.origin_ms));
        turn
    }
}

impl Session {
    /// The input timeline: milliseconds of audio appended this session.
    pub(super) fn appended_ms(&self) -> u64 {
        self.timeline_base_ms
            + pcm::samples_to_ms(self.samples_at_rate, self.input_format.rate_hz())
    }

    /// `input_audio_buffer.append`: decode, count, record, run VAD (which may commit a turn and
    /// start a response), echo it back in EchoStream, and fire `AfterAppendedMs` errors.
    pub(super) fn on_append(&mut self, audio: &str, client_event_id: Option<&Value>, now: Instant) {
        let format = self.input_format;
        let mut bytes = std::mem::take(&mut self.scratch_bytes);
        if let Err(violation) = validate::decode_append(audio, format, &mut bytes) {
            self.scratch_bytes = bytes;
            self.reject(
                "input_audio_buffer.append",
                vec![violation],
                client_event_id,
            );
            return;
        }
        let rate = format.rate_hz();
        let sample_count = (bytes.len() / format.bytes_per_sample()) as u64;
        let stream_format = match self.behaviour.mode {
            Mode::EchoStream { .. } => Some(
                self.response
                    .as_ref()
                    .map_or(self.output_format, |response| response.format),
            ),
            _ => None,
        };
        let needs_samples = self.vad.is_some()
            || self.buffer.is_some()
            || self.behaviour.record_audio
            || stream_format.is_some_and(|output| output != format);
        let mut samples = std::mem::take(&mut self.scratch_samples);
        samples.clear();
        if needs_samples {
            format.decode(&bytes, &mut samples);
        }
        self.samples_at_rate += sample_count;
        let appended_ms = self.appended_ms();
        let (record_audio, record_timings) =
            (self.behaviour.record_audio, self.behaviour.record_timings);
        self.with_record(|record| {
            record.appended_samples += sample_count;
            record.appended_ms = appended_ms;
            if record_audio {
                if record.input_rate_hz == 0 {
                    record.input_rate_hz = rate;
                }
                if record.input_rate_hz == rate {
                    record.input_audio_24k.extend_from_slice(&samples);
                } else {
                    let target = record.input_rate_hz;
                    resample(&samples, rate, target, &mut record.input_audio_24k);
                }
            }
            if record_timings {
                let total = record.appended_samples;
                record.append_timings.push((total, now));
            }
        });

        if let Some(buffer) = &mut self.buffer {
            buffer.push(&samples);
        }
        if let Some(vad) = &mut self.vad {
            let mut events = std::mem::take(&mut self.vad_events);
            events.clear();
            vad.push(&samples, &mut events);
            let idle = !vad.speaking();
            let padding = vad.config().prefix_padding_ms;
            for event in &events {
                match *event {
                    VadEvent::SpeechStarted { audio_start_ms } => {
                        self.on_speech_started(audio_start_ms, now);
                    }
                    VadEvent::SpeechStopped { audio_end_ms } => {
                        self.on_speech_stopped(audio_end_ms, now);
                    }
                }
            }
            self.vad_events = events;
            if idle {
                if let Some(buffer) = &mut self.buffer {
                    buffer.trim_before(appended_ms.saturating_sub(padding + 2 * vad::FRAME_MS));
                }
            }
        }
        if let Some(output) = stream_format {
            if output == format {
                self.stream_echo(&bytes, now);
            } else {
                let converted = render_samples(&samples, rate, output);
                self.stream_echo(&converted, now);
            }
        }
        self.scratch_bytes = bytes;
        self.scratch_samples = samples;

        if let Some(Failure::ErrorEvent {
            after: Trigger::AfterAppendedMs(after_ms),
            ..
        }) = &self.behaviour.failure
        {
            if !self.error_fired && appended_ms >= u64::from(*after_ms) {
                self.fire_error_event(None);
            }
        }
    }

    /// VAD onset: announce the user item and cancel the response if `interrupt_response`.
    fn on_speech_started(&mut self, audio_start_ms: u64, now: Instant) {
        if self.fake_speech.is_some() {
            return;
        }
        let item_id = self.ids.next("item");
        self.pending_user_item = Some((item_id.clone(), audio_start_ms));
        self.emit(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_start_ms,
            "item_id": item_id
        }));
        let interrupt = self
            .turn_detection
            .is_some_and(|config| config.interrupt_response);
        if interrupt && self.response.is_some() {
            self.finish_response(ResponseStatus::Cancelled, Some("turn_detected"), now);
        }
    }

    /// VAD end of turn: `speech_stopped`, then commit the turn (and maybe respond).
    fn on_speech_stopped(&mut self, audio_end_ms: u64, now: Instant) {
        if self.fake_speech.is_some() {
            return;
        }
        let (item_id, audio_start_ms) = self
            .pending_user_item
            .take()
            .unwrap_or_else(|| (self.ids.next("item"), self.uncommitted_from_ms));
        self.emit(json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_end_ms,
            "item_id": item_id
        }));
        let echo = self
            .buffer
            .as_mut()
            .map(|buffer| (buffer.take(audio_start_ms, audio_end_ms), buffer.rate_hz));
        self.uncommitted_from_ms = audio_end_ms;
        let respond = self
            .turn_detection
            .is_some_and(|config| config.create_response);
        self.commit_user_turn(
            item_id,
            audio_end_ms.saturating_sub(audio_start_ms),
            echo,
            respond,
            now,
        );
    }

    /// `input_audio_buffer.commit`: commits the uncommitted audio (at least 100 ms) without
    /// responding, as OpenAI does.
    pub(super) fn on_commit(&mut self, client_event_id: Option<&Value>, now: Instant) {
        let end_ms = self.appended_ms();
        let buffered_ms = end_ms.saturating_sub(self.uncommitted_from_ms);
        if buffered_ms < 100 {
            self.invalid(
                "input_audio_buffer_commit_empty",
                &format!(
                    "Error committing input audio buffer: buffer too small. Expected at least \
                     100ms of audio, but buffer only has {buffered_ms}.00ms of audio."
                ),
                "",
                client_event_id,
            );
            return;
        }
        let item_id = self.ids.next("item");
        let from_ms = self.uncommitted_from_ms;
        let echo = self
            .buffer
            .as_mut()
            .map(|buffer| (buffer.take(from_ms, end_ms), buffer.rate_hz));
        self.uncommitted_from_ms = end_ms;
        self.pending_user_item = None;
        self.commit_user_turn(item_id, buffered_ms, echo, false, now);
    }

    /// `input_audio_buffer.clear`: forget the uncommitted audio.
    pub(super) fn on_clear(&mut self) {
        let now_ms = self.appended_ms();
        self.uncommitted_from_ms = now_ms;
        if let Some(buffer) = &mut self.buffer {
            let rate = buffer.rate_hz;
            buffer.reset(now_ms, rate);
        }
        self.emit(json!({"type": "input_audio_buffer.cleared"}));
    }

    /// Commits a user audio turn: committed, the item's added/done, its transcription, and a
    /// response when `respond` and none is running.
    pub(super) fn commit_user_turn(
        &mut self,
        item_id: String,
        audio_ms: u64,
        echo: Option<(Vec<i16>, u32)>,
        respond: bool,
        now: Instant,
    ) {
        let previous_item_id = self.last_item_id();
        self.emit(json!({
            "type": "input_audio_buffer.committed",
            "item_id": item_id,
            "previous_item_id": previous_item_id
        }));
        let item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}]
        });
        self.emit(json!({
            "type": "conversation.item.added",
            "previous_item_id": previous_item_id,
            "item": item
        }));
        self.emit(json!({"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": item}));
        self.items.push(Item {
            id: item_id.clone(),
            role: "user".into(),
            audio_ms: 0,
            json: item,
        });
        self.history.items += 1;
        self.history.user_audio_ms += audio_ms;
        self.user_turn_committed();
        if self.transcription {
            let transcript = self
                .behaviour
                .user_transcripts
                .get(self.user_turns_transcribed)
                .cloned()
                .unwrap_or_else(|| format!("{audio_ms} ms of audio"));
            self.user_turns_transcribed += 1;
            self.emit(json!({
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": audio_ms as f64 / 1_000.0}
            }));
        }
        if echo.is_some() {
            self.echo_pending = echo;
        }
        if respond && self.response.is_none() {
            let plan = self.plan_response(None);
            self.start_response(plan, None, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_buffer_maps_the_timeline_exactly() {
        let mut buffer = InputBuffer {
            samples: Vec::new(),
            origin_ms: 0,
            rate_hz: 8_000,
        };
        let ramp: Vec<i16> = (0..16_000).map(|n| (n % 1_000) as i16).collect();
        buffer.push(&ramp);
        buffer.trim_before(1_200);
        assert_eq!(buffer.origin_ms, 1_200);
        assert_eq!(buffer.samples.len(), 6_400);
        let turn = buffer.take(1_500, 1_600);
        assert_eq!(turn.len(), 800);
        assert_eq!(turn[0], ramp[12_000]);
        assert_eq!(buffer.origin_ms, 1_600);
        assert_eq!(buffer.samples.first(), ramp.get(12_800));
        // Small trims wait until a whole second can go.
        buffer.trim_before(1_700);
        assert_eq!(buffer.origin_ms, 1_600);
    }
}
