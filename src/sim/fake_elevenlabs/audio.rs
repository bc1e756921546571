//! The agent audio formats of docs/protocols.md §5.5 as the fake reads and writes them:
//! `pcm_<rate>` (16-bit signed little-endian mono) and `ulaw_8000` (G.711 μ-law), the
//! conversion of caller audio for [`Mode::Echo`](super::Mode::Echo), and the rendering of
//! scripted speech in the agent's output format.

use std::fmt;

use crate::audio::resample::{Resampler, resample_all};
use crate::audio::{mulaw, pcm, tone};

use super::behaviour::Speech;

/// The PCM rates ElevenLabs accepts for `user_input_audio_format` and
/// `agent_output_audio_format`.
pub const PCM_RATES_HZ: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Peak of rendered tones: -12 dBFS, loud enough for any energy detector, far from clipping
/// after resampling.
const TONE_AMPLITUDE: f64 = 8_192.0;

/// An agent's input or output audio format (an agent setting; conversations cannot override it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// `pcm_<rate>`: 16-bit signed little-endian mono PCM at this rate, one of
    /// [`PCM_RATES_HZ`].
    Pcm(u32),
    /// `ulaw_8000`: G.711 μ-law at 8 kHz.
    Ulaw8000,
}

impl AudioFormat {
    /// The wire name (`pcm_16000`, `ulaw_8000`); `pcm_unsupported` for a PCM rate outside
    /// [`PCM_RATES_HZ`] (which [`FakeElevenLabs::add_agent`](super::FakeElevenLabs::add_agent)
    /// refuses).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Ulaw8000 => "ulaw_8000",
            AudioFormat::Pcm(8_000) => "pcm_8000",
            AudioFormat::Pcm(16_000) => "pcm_16000",
            AudioFormat::Pcm(22_050) => "pcm_22050",
            AudioFormat::Pcm(24_000) => "pcm_24000",
            AudioFormat::Pcm(44_100) => "pcm_44100",
            AudioFormat::Pcm(48_000) => "pcm_48000",
            AudioFormat::Pcm(_) => "pcm_unsupported",
        }
    }

    /// The format a wire name stands for; `None` for anything else.
    pub fn parse(name: &str) -> Option<AudioFormat> {
        if name == "ulaw_8000" {
            return Some(AudioFormat::Ulaw8000);
        }
        let rate: u32 = name.strip_prefix("pcm_")?.parse().ok()?;
        // `parse` accepts `+8000` and `08000`; only the canonical spelling is a wire name.
        let format = AudioFormat::Pcm(rate);
        (PCM_RATES_HZ.contains(&rate) && format.as_str() == name).then_some(format)
    }

    /// Whether ElevenLabs has this format (a PCM rate from [`PCM_RATES_HZ`], or μ-law).
    pub fn is_supported(self) -> bool {
        match self {
            AudioFormat::Pcm(rate) => PCM_RATES_HZ.contains(&rate),
            AudioFormat::Ulaw8000 => true,
        }
    }

    /// Sample rate in Hz.
    pub fn rate_hz(self) -> u32 {
        match self {
            AudioFormat::Pcm(rate) => rate,
            AudioFormat::Ulaw8000 => 8_000,
        }
    }

    /// Bytes per sample on the wire.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Pcm(_) => 2,
            AudioFormat::Ulaw8000 => 1,
        }
    }

    /// Appends the linear samples of `bytes` to `out` (a trailing odd PCM byte is ignored; the
    /// validator reports it).
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        match self {
            AudioFormat::Pcm(_) => {
                pcm::decode_s16le(bytes, out);
            }
            AudioFormat::Ulaw8000 => mulaw::decode_into(bytes, out),
        }
    }

    /// Appends `samples` to `out` in this format.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            AudioFormat::Pcm(_) => pcm::encode_s16le(samples, out),
            AudioFormat::Ulaw8000 => mulaw::encode_into(samples, out),
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Converts one conversation's caller audio to its agent's output format, as one continuous
/// stream (the resampler keeps its filter state between chunks).
pub(super) struct EchoConverter {
    from: AudioFormat,
    to: AudioFormat,
    /// `None` when the rates are equal.
    resampler: Option<Resampler>,
    samples: Vec<i16>,
    converted: Vec<i16>,
}

impl EchoConverter {
    pub(super) fn new(from: AudioFormat, to: AudioFormat) -> EchoConverter {
        let resampler = (from.rate_hz() != to.rate_hz())
            .then(|| Resampler::new(from.rate_hz(), to.rate_hz()).ok())
            .flatten();
        EchoConverter {
            from,
            to,
            resampler,
            samples: Vec::new(),
            converted: Vec::new(),
        }
    }

    /// The output-format bytes for one chunk of caller audio. Identical formats pass the
    /// bytes through untouched (a μ-law round trip would turn `0x7F` into `0xFF`); with a rate
    /// change the output lags the input by the resampler's look-ahead (a few ms), so a chunk
    /// may come out a few samples short (or empty when it is tiny).
    pub(super) fn convert(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.from == self.to {
            return bytes.to_vec();
        }
        self.samples.clear();
        self.from.decode(bytes, &mut self.samples);
        let samples = match &mut self.resampler {
            Some(resampler) => {
                self.converted.clear();
                resampler.process(&self.samples, &mut self.converted);
                &self.converted
            }
            None => &self.samples,
        };
        let mut out = Vec::with_capacity(samples.len() * self.to.bytes_per_sample());
        self.to.encode(samples, &mut out);
        out
    }
}

/// `speech` as bytes in `format`.
pub(super) fn render(speech: &Speech, format: AudioFormat) -> Vec<u8> {
    let rate = format.rate_hz();
    let samples = match speech {
        Speech::Tone { hz, ms } => {
            let count = usize::try_from(u64::from(*ms) * u64::from(rate) / 1_000).unwrap_or(0);
            tone::sine(*hz, rate, count, TONE_AMPLITUDE)
        }
        Speech::Samples { rate_hz, samples } if *rate_hz == rate => samples.to_vec(),
        Speech::Samples { rate_hz, samples } => {
            // A rate the resampler cannot handle is a test's mistake; play it unconverted
            // rather than silently playing nothing.
            resample_all(samples, *rate_hz, rate).unwrap_or_else(|_| samples.to_vec())
        }
    };
    let mut bytes = Vec::with_capacity(samples.len() * format.bytes_per_sample());
    format.encode(&samples, &mut bytes);
    bytes
}

/// Bytes of `format` audio in one `audio` event of `chunk_ms` (at least one sample).
pub(super) fn chunk_bytes(format: AudioFormat, chunk_ms: u32) -> usize {
    let samples = (u64::from(format.rate_hz()) * u64::from(chunk_ms) / 1_000).max(1);
    usize::try_from(samples).unwrap_or(usize::MAX / 2) * format.bytes_per_sample()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_only_canonical_names_parse() {
        for rate in PCM_RATES_HZ {
            let format = AudioFormat::Pcm(rate);
            assert_eq!(AudioFormat::parse(format.as_str()), Some(format));
        }
        assert_eq!(AudioFormat::parse("ulaw_8000"), Some(AudioFormat::Ulaw8000));
        for bad in [
            "pcm_12000",
            "pcm_+8000",
            "pcm_08000",
            "ulaw_16000",
            "pcm",
            "",
        ] {
            assert_eq!(AudioFormat::parse(bad), None, "{bad}");
        }
        assert!(!AudioFormat::Pcm(12_000).is_supported());
        assert_eq!(AudioFormat::Pcm(12_000).as_str(), "pcm_unsupported");
    }

    #[test]
    fn identical_formats_pass_bytes_through() {
        let bytes = vec![0x7F, 0xFF, 0x00, 0x12];
        let mut echo = EchoConverter::new(AudioFormat::Ulaw8000, AudioFormat::Ulaw8000);
        assert_eq!(echo.convert(&bytes), bytes);
    }

    #[test]
    fn ulaw_to_pcm_at_the_same_rate_decodes_exactly() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut echo = EchoConverter::new(AudioFormat::Ulaw8000, AudioFormat::Pcm(8_000));
        let mut expected_samples = Vec::new();
        mulaw::decode_into(&codes, &mut expected_samples);
        let mut expected = Vec::new();
        pcm::encode_s16le(&expected_samples, &mut expected);
        assert_eq!(echo.convert(&codes), expected);
    }

    #[test]
    fn rendered_tones_have_the_requested_length_in_every_format() {
        let speech = Speech::Tone { hz: 440.0, ms: 250 };
        assert_eq!(render(&speech, AudioFormat::Pcm(16_000)).len(), 4_000 * 2);
        assert_eq!(render(&speech, AudioFormat::Ulaw8000).len(), 2_000);
        assert_eq!(render(&speech, AudioFormat::Pcm(44_100)).len(), 11_025 * 2);
        assert_eq!(chunk_bytes(AudioFormat::Pcm(22_050), 100), 2_205 * 2);
        assert_eq!(chunk_bytes(AudioFormat::Ulaw8000, 0), 1);
    }
}
