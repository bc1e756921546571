//! The three GA audio formats as the fake reads and writes them: `audio/pcm` (s16le, 24 kHz),
//! `audio/pcmu` (G.711 μ-law, 8 kHz) and `audio/pcma` (G.711 A-law, 8 kHz), plus the crude
//! rate conversion the fake needs when a session's input and output rates differ.
//!
//! The converter is good enough for a fake (tones keep their frequency and level), not for a
//! product: decimation averages each group of samples, interpolation is linear.

use serde_json::{Value, json};

use crate::audio::{mulaw, pcm};

/// The rate of `audio/pcm`, the only linear PCM rate GA accepts.
pub(crate) const PCM_RATE_HZ: u32 = 24_000;

/// The rate of the G.711 formats.
pub(crate) const G711_RATE_HZ: u32 = 8_000;

/// A session's input or output audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// `{"type":"audio/pcm","rate":24000}`.
    Pcm24k,
    /// `{"type":"audio/pcmu"}`.
    Pcmu,
    /// `{"type":"audio/pcma"}`.
    Pcma,
}

impl AudioFormat {
    /// The format a GA format object names; `None` for anything else (validation reports why).
    pub(crate) fn from_json(format: &Value) -> Option<AudioFormat> {
        match format.get("type").and_then(Value::as_str)? {
            "audio/pcm" => Some(AudioFormat::Pcm24k),
            "audio/pcmu" => Some(AudioFormat::Pcmu),
            "audio/pcma" => Some(AudioFormat::Pcma),
            _ => None,
        }
    }

    /// The GA format object.
    pub(crate) fn to_json(self) -> Value {
        match self {
            AudioFormat::Pcm24k => json!({"type": "audio/pcm", "rate": PCM_RATE_HZ}),
            AudioFormat::Pcmu => json!({"type": "audio/pcmu"}),
            AudioFormat::Pcma => json!({"type": "audio/pcma"}),
        }
    }

    /// Sample rate.
    pub(crate) fn rate_hz(self) -> u32 {
        match self {
            AudioFormat::Pcm24k => PCM_RATE_HZ,
            AudioFormat::Pcmu | AudioFormat::Pcma => G711_RATE_HZ,
        }
    }

    /// Bytes per sample on the wire.
    pub(crate) fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Pcm24k => 2,
            AudioFormat::Pcmu | AudioFormat::Pcma => 1,
        }
    }

    /// Appends the linear samples of `bytes` to `out` (a trailing odd byte of PCM is ignored).
    pub(crate) fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        match self {
            AudioFormat::Pcm24k => {
                pcm::decode_s16le(bytes, out);
            }
            AudioFormat::Pcmu => mulaw::decode_into(bytes, out),
            AudioFormat::Pcma => {
                out.reserve(bytes.len());
                out.extend(bytes.iter().map(|&code| alaw::decode_sample(code)));
            }
        }
    }

    /// Appends `samples` to `out` in this format.
    pub(crate) fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            AudioFormat::Pcm24k => pcm::encode_s16le(samples, out),
            AudioFormat::Pcmu => mulaw::encode_into(samples, out),
            AudioFormat::Pcma => {
                out.reserve(samples.len());
                out.extend(samples.iter().map(|&sample| alaw::encode_sample(sample)));
            }
        }
    }
}

/// Appends `samples` taken at `from_hz` to `out`, converted to `to_hz` with the crate's
/// resampler (one-shot: each call stands alone, which is all the fake needs).
pub(crate) fn resample(samples: &[i16], from_hz: u32, to_hz: u32, out: &mut Vec<i16>) {
    match crate::audio::resample::resample_all(samples, from_hz, to_hz) {
        Ok(converted) => out.extend_from_slice(&converted),
        // Rates outside what the resampler handles never come from GA formats; keep the audio.
        Err(_) => out.extend_from_slice(samples),
    }
}

/// G.711 A-law (ITU-T G.711, segment search on the 13-bit magnitude; even bits inverted).
mod alaw {
    /// Upper end of each segment, in 13-bit magnitude.
    const SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

    /// A-law code of one linear sample.
    pub(crate) fn encode_sample(sample: i16) -> u8 {
        let mut magnitude = i32::from(sample) >> 3;
        // Positive values carry the sign bit; A-law inverts the even bits (0x55).
        let mask = if magnitude >= 0 {
            0xD5
        } else {
            magnitude = -magnitude - 1;
            0x55
        };
        let Some(segment) = SEGMENT_END.iter().position(|&end| magnitude <= end) else {
            return (0x7F ^ mask) as u8;
        };
        let mantissa = if segment < 2 {
            (magnitude >> 1) & 0x0F
        } else {
            (magnitude >> segment) & 0x0F
        };
        (((segment as i32) << 4 | mantissa) ^ mask) as u8
    }

    /// Linear sample of one A-law code.
    pub(crate) fn decode_sample(code: u8) -> i16 {
        let bits = i32::from(code ^ 0x55);
        let segment = (bits & 0x70) >> 4;
        let mut magnitude = (bits & 0x0F) << 4;
        magnitude += if segment == 0 { 8 } else { 0x108 };
        if segment > 1 {
            magnitude <<= segment - 1;
        }
        if bits & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone;

    #[test]
    fn formats_parse_from_and_print_to_ga_objects() {
        for format in [AudioFormat::Pcm24k, AudioFormat::Pcmu, AudioFormat::Pcma] {
            assert_eq!(AudioFormat::from_json(&format.to_json()), Some(format));
        }
        assert_eq!(AudioFormat::from_json(&json!({"type": "g711_ulaw"})), None);
        assert_eq!(AudioFormat::Pcmu.rate_hz(), 8_000);
        assert_eq!(AudioFormat::Pcm24k.bytes_per_sample(), 2);
    }

    #[test]
    fn alaw_codes_survive_decode_then_encode_and_known_values_match() {
        for code in 0..=255u8 {
            let sample = alaw::decode_sample(code);
            assert_eq!(alaw::encode_sample(sample), code, "code {code:#04x}");
        }
        // Silence is 0xD5 (positive zero); full scale decodes to ±32256.
        assert_eq!(alaw::encode_sample(0), 0xD5);
        assert_eq!(alaw::decode_sample(0xAA), 32_256);
        assert_eq!(alaw::decode_sample(0x2A), -32_256);
    }

    #[test]
    fn every_format_round_trips_a_tone() {
        for format in [AudioFormat::Pcm24k, AudioFormat::Pcmu, AudioFormat::Pcma] {
            let rate = format.rate_hz();
            let samples = tone::sine(1_000.0, rate, rate as usize / 2, 10_000.0);
            let mut bytes = Vec::new();
            format.encode(&samples, &mut bytes);
            assert_eq!(bytes.len(), samples.len() * format.bytes_per_sample());
            let mut decoded = Vec::new();
            format.decode(&bytes, &mut decoded);
            let level = tone::level_dbfs(&decoded, 1_000.0, rate);
            assert!(
                (level - tone::level_dbfs(&samples, 1_000.0, rate)).abs() < 0.5,
                "{format:?}"
            );
        }
    }

    #[test]
    fn resampling_keeps_a_tone_in_both_directions() {
        let high = tone::sine(1_000.0, 24_000, 24_000, 10_000.0);
        let mut low = Vec::new();
        resample(&high, 24_000, 8_000, &mut low);
        assert_eq!(low.len(), 8_000);
        assert!(tone::level_dbfs(&low, 1_000.0, 8_000) > -12.0);
        let mut back = Vec::new();
        resample(&low, 8_000, 24_000, &mut back);
        assert_eq!(back.len(), 24_000);
        assert!(tone::level_dbfs(&back, 1_000.0, 24_000) > -12.0);
        let mut same = Vec::new();
        resample(&low, 8_000, 8_000, &mut same);
        assert_eq!(same, low);
    }
}
