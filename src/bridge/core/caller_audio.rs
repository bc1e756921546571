//! Caller audio in: FreJun's `start` (the rate it really streams at), each audio frame decoded
//! and converted to what OpenAI expects, and the bounded buffer of that audio while the OpenAI
//! socket is not open yet.

use std::time::Instant;

use super::{AI_PCM_RATE, AiPhase, BridgeCore, Effects, Ending, InboundPath};
use crate::audio::resample::Resampler;
use crate::audio::{mulaw, pcm};
use crate::bridge::playback::OUTBOUND_RATE;
use crate::bridge::teler_media::StreamStart;
use crate::domain::assistant::Codec;
use crate::domain::call::EndReason;
use crate::providers::openai::write_append_event;

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

    pub(super) fn caller_audio(
        &mut self,
        audio_b64: &str,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        self.bytes.clear();
        if pcm::decode_base64(audio_b64, &mut self.bytes).is_err() {
            return self.teler_fault(now, "audio that is not base64");
        }
        self.samples.clear();
        let ignored = pcm::decode_s16le(&self.bytes, &mut self.samples);
        if ignored > 0 {
            self.anomalies.odd_audio_bytes += ignored as u64;
        }
        if self.samples.is_empty() {
            return None;
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
        None
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
}
