//! 16-bit little-endian PCM and base64, the two encodings audio crosses on every hop.
//!
//! Each helper appends to a caller-owned buffer, reserving once for the whole chunk, so a call
//! reuses its buffers and nothing allocates per sample.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use base64::DecodeError;

/// Appends the samples of `bytes` (s16le) to `out`. A trailing odd byte cannot be a sample and
/// is ignored; returns how many bytes were ignored (0 or 1) so the caller can count it.
pub(crate) fn decode_s16le(bytes: &[u8], out: &mut Vec<i16>) -> usize {
    let whole = bytes.chunks_exact(2);
    let ignored = whole.remainder().len();
    out.reserve(bytes.len() / 2);
    out.extend(whole.map(|pair| i16::from_le_bytes([pair[0], pair[1]])));
    ignored
}

/// Appends `samples` to `out` as s16le bytes.
pub fn encode_s16le(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
}

/// Appends the bytes of standard, padded base64 `text` to `out`.
pub(crate) fn decode_base64(text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    STANDARD.decode_vec(text.as_bytes(), out)
}

/// Appends the standard, padded base64 of `bytes` to `out`. Encode a whole chunk at once:
/// joining separately encoded pieces would put `=` padding in the middle.
pub fn encode_base64(bytes: &[u8], out: &mut String) {
    STANDARD.encode_string(bytes, out);
}

/// How many bytes padded base64 `text` decodes to, from its length alone (without decoding;
/// for text that is not valid base64 the figure is meaningless but bounded by its length).
pub(crate) fn base64_decoded_len(text: &str) -> usize {
    let padding = text
        .bytes()
        .rev()
        .take(2)
        .filter(|&byte| byte == b'=')
        .count();
    (text.len() / 4 * 3).saturating_sub(padding)
}

/// Milliseconds of s16le audio at `rate_hz` that base64 `text` carries: a frame's price,
/// known before decoding it.
pub(crate) fn base64_pcm_ms(text: &str, rate_hz: u32) -> f64 {
    (base64_decoded_len(text) / 2) as f64 * 1_000.0 / f64::from(rate_hz)
}

/// Milliseconds of audio in `samples` samples at `rate_hz`, rounded down.
pub(crate) fn samples_to_ms(samples: u64, rate_hz: u32) -> u64 {
    samples * 1_000 / u64::from(rate_hz)
}

/// Samples in `ms` milliseconds at `rate_hz`.
pub(crate) fn ms_to_samples(ms: u64, rate_hz: u32) -> u64 {
    ms * u64::from(rate_hz) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lengths_are_exact_before_decoding() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|n| n as u8).collect();
            let mut text = String::new();
            encode_base64(&bytes, &mut text);
            assert_eq!(base64_decoded_len(&text), len, "{text}");
        }
        assert_eq!(base64_pcm_ms("AAAA", 8_000), 0.125);
    }

    #[test]
    fn s16le_round_trips_and_is_little_endian() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN, 0x1234];
        let mut bytes = Vec::new();
        encode_s16le(&samples, &mut bytes);
        assert_eq!(&bytes[10..12], &[0x34, 0x12]);
        let mut decoded = Vec::new();
        assert_eq!(decode_s16le(&bytes, &mut decoded), 0);
        assert_eq!(decoded, samples);
    }

    #[test]
    fn an_odd_trailing_byte_is_ignored_and_reported() {
        let mut decoded = vec![7];
        assert_eq!(decode_s16le(&[1, 0, 2, 0, 9], &mut decoded), 1);
        assert_eq!(decoded, [7, 1, 2], "appends after what was there");
    }

    #[test]
    fn base64_appends_and_rejects_garbage() {
        let mut text = String::from("x");
        encode_base64(&[1, 2, 3, 4], &mut text);
        assert_eq!(text, "xAQIDBA==");
        let mut bytes = vec![9];
        decode_base64("AQIDBA==", &mut bytes).unwrap();
        assert_eq!(bytes, [9, 1, 2, 3, 4]);
        assert!(decode_base64("not base64!", &mut bytes).is_err());
    }

    #[test]
    fn durations_convert_both_ways() {
        assert_eq!(samples_to_ms(160, 8_000), 20);
        assert_eq!(samples_to_ms(479, 24_000), 19);
        assert_eq!(ms_to_samples(100, 16_000), 1_600);
    }
}
