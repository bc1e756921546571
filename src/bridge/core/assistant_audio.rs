//! Assistant audio out: the greeting once the session is configured, the AI's audio converted
//! (not resampled when it already speaks at FreJun's 8 kHz) and cut into FreJun chunks, the
//! flush at the end of each item (or after a pause, for backends that do not mark it), and the
//! end of each response (its usage added up).

use std::time::Instant;

use super::{BridgeCore, Effects, Ending};
use crate::audio::resample::Resampler;
use crate::audio::{mulaw, pcm, scratch};
use crate::bridge::audio_budget::Verdict;
use crate::bridge::playback::{ItemKey, OUTBOUND_RATE, OutboundChunk};
use crate::domain::call::EndReason;
use crate::domain::call::record::{CallError, Usage};
use crate::providers::realtime::{AiAudio, ResponseStatus, ResponseSummary};

impl BridgeCore {
    /// Asks for the greeting, in the assistant's own persona (a backend that cannot be asked
    /// greets by its own configuration: ElevenLabs' first message).
    pub(super) fn greet(&mut self, fx: &mut Effects) {
        let Some(greeting) = self.config.greeting.as_deref() else {
            return;
        };
        let instruction =
            format!("The call has just connected. Greet the caller now by saying: \"{greeting}\"");
        self.protocol.say(instruction, &mut fx.to_ai);
    }

    /// The idle-flush timer: the answer's audio paused long enough that its last partial chunk
    /// goes out (backends that do not mark the end of an item's audio).
    pub(crate) fn audio_idle_timer(&mut self, now: Instant, fx: &mut Effects) {
        if let Some((due, key)) = self.audio_idle_flush.take() {
            if now < due {
                self.audio_idle_flush = Some((due, key));
                return;
            }
            if !self.discarded.contains(&key.response_id) {
                self.end_of_item(&key.response_id, &key.item_id, now, fx);
            }
        }
    }

    pub(super) fn assistant_audio(
        &mut self,
        key: &ItemKey,
        delta: &str,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        let audio_ms = self.output.ms_of_bytes(pcm::base64_decoded_len(delta));
        if self.ai_budget.charge(audio_ms, now) != Verdict::Accept {
            return Some(Ending::failed(
                EndReason::AiError,
                &format!("{}_audio_flood", self.protocol.code_prefix()),
                format!(
                    "{} sent audio far faster and further ahead than a response is spoken",
                    self.protocol.display_name()
                ),
            ));
        }
        let mut bytes = scratch::decoded();
        if pcm::decode_base64(delta, &mut bytes).is_err() {
            return self.ai_fault(now, "audio that is not base64");
        }
        if self.active_response.as_deref() == Some(key.response_id.as_str())
            && !self.active_items.contains(key)
        {
            self.active_items.push(key.clone());
        }
        let mut samples = scratch::samples();
        match self.output {
            AiAudio::Mulaw8k => mulaw::decode_into(&bytes, &mut samples),
            AiAudio::Pcm(OUTBOUND_RATE) => {
                pcm::decode_s16le(&bytes, &mut samples);
            }
            AiAudio::Pcm(rate) => {
                let mut converted = scratch::converted();
                pcm::decode_s16le(&bytes, &mut converted);
                self.outbound
                    .get_or_insert_with(|| {
                        Resampler::new(rate, OUTBOUND_RATE)
                            .expect("the output format was checked convertible")
                    })
                    .process(&converted, &mut samples);
            }
        }
        let chunks = self.playback.push(key, &samples, now);
        self.send_chunks(chunks, now, fx);
        None
    }

    /// The item's audio is complete: drain the resampler and send the partial chunk, so the
    /// end of a sentence is not held back waiting for more audio.
    pub(super) fn end_of_item(
        &mut self,
        response_id: &str,
        item_id: &str,
        now: Instant,
        fx: &mut Effects,
    ) {
        let key = self
            .active_items
            .iter()
            .find(|key| key.item_id == item_id && key.response_id == response_id)
            .cloned();
        if let (Some(key), Some(resampler)) = (&key, self.outbound.as_mut()) {
            let mut samples = scratch::samples();
            resampler.flush(&mut samples);
            if !samples.is_empty() {
                let chunks = self.playback.push(key, &samples, now);
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
            // The first answer's latency is what a reader looks for; later audio only moves
            // the counters.
            self.record_dirty = true;
        }
        fx.to_teler
            .extend(chunks.into_iter().map(|chunk| chunk.message));
    }

    pub(super) fn response_done(
        &mut self,
        response: ResponseSummary,
        now: Instant,
        fx: &mut Effects,
    ) {
        if let Some(usage) = response.usage {
            let total = self.usage.get_or_insert_with(Usage::default);
            total.input_audio_tokens += usage.input_audio_tokens;
            total.input_text_tokens += usage.input_text_tokens;
            total.input_cached_tokens += usage.input_cached_tokens;
            total.input_cached_text_tokens += usage.input_cached_text_tokens;
            total.input_cached_audio_tokens += usage.input_cached_audio_tokens;
            total.output_audio_tokens += usage.output_audio_tokens;
            total.output_text_tokens += usage.output_text_tokens;
        } else if self.capabilities.reports_usage {
            // Token counts are stored even when OpenAI reports none.
            self.usage.get_or_insert_with(Usage::default);
        }
        self.record_dirty = true;
        if response.status == ResponseStatus::Failed {
            self.anomalies.ai_errors += 1;
            tracing::warn!(
                response_id = response.id,
                error = ?response.error,
                backend = self.protocol.display_name(),
                "a response of the voice AI failed"
            );
            self.failed_responses += 1;
            let error = response.error.unwrap_or_default();
            self.last_response_error = Some(CallError {
                code: error
                    .code
                    .filter(|code| !code.is_empty())
                    .unwrap_or_else(|| format!("{}_response_failed", self.protocol.code_prefix())),
                message: error.message.unwrap_or_else(|| {
                    format!(
                        "{} ended a response as failed without saying why",
                        self.protocol.display_name()
                    )
                }),
            });
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
}
