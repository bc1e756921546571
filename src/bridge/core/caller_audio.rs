//! Caller audio in: FreJun's `start` (the rate it really streams at), each audio frame decoded
//! and converted to what the AI hears (not resampled where the rates match), and the bounded
//! buffer of that audio while the AI cannot take it yet (socket not open, or formats not yet
//! announced).

use std::time::Instant;

use super::{AiPhase, BridgeCore, Effects, Ending, InboundPath};
use crate::audio::resample::Resampler;
use crate::audio::{mulaw, pcm, scratch};
use crate::bridge::teler_media::StreamStart;
use crate::domain::call::EndReason;
use crate::providers::realtime::AiAudio;

/// The caller-audio rates FreJun streams (`"8k"` and `"16k"` flows). Anything else is refused:
/// an arbitrary rate would let one stream choose how much work each of its frames costs.
const SUPPORTED_RATES: [u32; 2] = [8_000, 16_000];

impl BridgeCore {
    pub(super) fn stream_started(&mut self, start: StreamStart) -> Option<Ending> {
        if self.start.is_some() {
            tracing::warn!("ignoring a second start message");
            return None;
        }
        if let Some(encoding) = &start.encoding {
            if !encoding.eq_ignore_ascii_case("audio/l16") {
                return Some(Ending::failed(
                    EndReason::TelephonyError,
                    "unsupported_encoding",
                    format!("FreJun announced {encoding:?} audio; only audio/l16 is supported"),
                ));
            }
        }
        if let Some(rate) = start.sample_rate {
            if !SUPPORTED_RATES.contains(&rate) {
                return Some(Ending::failed(
                    EndReason::TelephonyError,
                    "unsupported_sample_rate",
                    format!("FreJun announced {rate} Hz audio; FreJun streams 8000 or 16000 Hz"),
                ));
            }
            if rate != self.inbound_rate {
                if self.inbound.is_some() {
                    tracing::warn!(rate, "start arrived after audio; keeping the first rate");
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
        let from = self.inbound_rate;
        let input = self.input;
        self.inbound.get_or_insert_with(|| InboundPath {
            resampler: (from != input.rate()).then(|| {
                Resampler::new(from, input.rate()).expect("the formats were checked convertible")
            }),
            mulaw: input == AiAudio::Mulaw8k,
        })
    }

    /// Whether caller audio can go to the AI now, rather than wait.
    fn ai_takes_audio(&self) -> bool {
        match self.phase {
            AiPhase::Connecting => false,
            AiPhase::Configuring => !self.capabilities.announces_formats,
            AiPhase::Ready => true,
        }
    }

    pub(super) fn caller_audio(
        &mut self,
        audio_b64: &str,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        let mut bytes = scratch::decoded();
        if pcm::decode_base64(audio_b64, &mut bytes).is_err() {
            return self.teler_fault(now, "audio that is not base64");
        }
        let mut samples = scratch::samples();
        let ignored = pcm::decode_s16le(&bytes, &mut samples);
        if ignored > 0 {
            self.anomalies.odd_audio_bytes += ignored as u64;
        }
        if samples.is_empty() {
            return None;
        }
        self.inbound_samples += samples.len() as u64;
        if self.ai_takes_audio() {
            self.send_caller_audio(&samples, fx);
        } else {
            let ms = pcm::samples_to_ms(samples.len() as u64, self.inbound_rate);
            self.buffer_early(samples.to_vec(), ms);
        }
        None
    }

    /// Converts caller audio at the inbound rate to the AI's input format and sends it.
    fn send_caller_audio(&mut self, samples: &[i16], fx: &mut Effects) {
        let mut converted = scratch::converted();
        let mut encoded = scratch::encoded();
        let path = self.inbound_path();
        let input = match path.resampler.as_mut() {
            Some(resampler) => {
                resampler.process(samples, &mut converted);
                &converted[..]
            }
            None => samples,
        };
        if path.mulaw {
            mulaw::encode_into(input, &mut encoded);
        } else {
            pcm::encode_s16le(input, &mut encoded);
        }
        if !encoded.is_empty() {
            let mut event = String::new();
            self.protocol.write_audio(&encoded, &mut event);
            fx.to_ai.push(event);
        }
    }

    /// Sends the caller audio that waited, now that the AI takes it.
    pub(super) fn send_early_audio(&mut self, fx: &mut Effects) {
        while let Some((samples, _)) = self.early.pop_front() {
            self.send_caller_audio(&samples, fx);
        }
        self.early_ms = 0;
    }

    fn buffer_early(&mut self, samples: Vec<i16>, ms: u64) {
        self.early.push_back((samples, ms));
        self.early_ms += ms;
        while self.early_ms > self.config.early_audio_max_ms {
            match self.early.pop_front() {
                Some((_, dropped)) => self.early_ms -= dropped,
                None => break,
            }
        }
    }
}
