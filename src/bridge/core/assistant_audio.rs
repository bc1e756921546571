//! Assistant audio out: the greeting once the session is configured, OpenAI's audio deltas
//! converted and cut into FreJun chunks, the flush at the end of each item, and the end of each
//! response (its usage added up).

use std::time::Instant;

use super::{AI_PCM_RATE, BridgeCore, Effects, Ending};
use crate::audio::resample::Resampler;
use crate::audio::{mulaw, pcm};
use crate::bridge::audio_budget::Verdict;
use crate::bridge::playback::{ItemKey, OUTBOUND_RATE, OutboundChunk};
use crate::domain::assistant::Codec;
use crate::domain::call::EndReason;
use crate::domain::call::record::{CallError, Usage};
use crate::providers::openai::ClientEvent;
use crate::providers::openai::events::ResponseStatus;
use crate::providers::openai::events::ResponseSummary;

impl BridgeCore {
    /// Asks for the greeting without touching the persona: a system message saying what to
    /// greet with, then a plain `response.create`. (A `response.create` carrying
    /// `instructions` would *replace* the session's instructions for that response, so the
    /// first sentence would be spoken without the tenant's persona, language and rules.)
    pub(super) fn greet(&mut self, fx: &mut Effects) {
        let Some(greeting) = self.config.greeting.as_deref() else {
            return;
        };
        let request = ClientEvent::system_message(format!(
            "The call has just connected. Greet the caller now by saying: \"{greeting}\""
        ));
        fx.to_ai.push(request.to_json());
        fx.to_ai
            .push(ClientEvent::ResponseCreate { response: None }.to_json());
    }

    pub(super) fn assistant_audio(
        &mut self,
        key: &ItemKey,
        delta: &str,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        let audio_ms = match self.codec {
            // μ-law: one byte per sample at 8 kHz.
            Codec::Pcmu => pcm::base64_decoded_len(delta) as f64 / 8.0,
            Codec::Pcm24k => pcm::base64_pcm_ms(delta, AI_PCM_RATE),
        };
        if self.ai_budget.charge(audio_ms, now) != Verdict::Accept {
            return Some(Ending::failed(
                EndReason::AiError,
                "openai_audio_flood",
                "OpenAI sent audio far faster and further ahead than a response is spoken",
            ));
        }
        self.bytes.clear();
        if pcm::decode_base64(delta, &mut self.bytes).is_err() {
            return self.ai_fault(now, "audio that is not base64");
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
        } else {
            // Token counts are stored even when OpenAI reports none.
            self.usage.get_or_insert_with(Usage::default);
        }
        self.metrics_dirty = true;
        if response.status == ResponseStatus::Failed {
            self.anomalies.ai_errors += 1;
            tracing::warn!(
                response_id = response.id,
                error = ?response.error,
                "an OpenAI response failed"
            );
            self.failed_responses += 1;
            let error = response.error.unwrap_or_default();
            self.last_response_error = Some(CallError {
                code: error
                    .code
                    .filter(|code| !code.is_empty())
                    .unwrap_or_else(|| "openai_response_failed".to_owned()),
                message: error.message.unwrap_or_else(|| {
                    "OpenAI ended a response as failed without saying why".to_owned()
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
