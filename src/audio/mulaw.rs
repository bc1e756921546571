//! G.711 μ-law: the `pcmu` codec path. FreJun sends 8 kHz 16-bit PCM; OpenAI accepts and emits
//! `audio/pcmu` at the same 8 kHz, so this table lookup per sample is all the audio work a
//! `pcmu` call needs (no resampling in either direction).
//!
//! The encoder is the classic biased-segment algorithm of ITU-T G.711 (bias 0x84, clip 32635);
//! the decoder is a 256-entry table built at compile time from the same definition.

/// Added before finding the segment so that every segment's step size doubles cleanly.
const BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment once biased.
const CLIP: i32 = 32_635;

/// Linear value of each μ-law code.
static DECODE: [i16; 256] = build_decode_table();

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = decode_computed(code as u8);
        code += 1;
    }
    table
}

const fn decode_computed(code: u8) -> i16 {
    let bits = !code;
    let exponent = (bits >> 4) & 0x07;
    let mantissa = (bits & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if bits & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// μ-law code of one linear sample.
#[inline]
pub(crate) fn encode_sample(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    let biased = magnitude.min(CLIP) + BIAS;
    // `biased` is at least 0x84, so its top bit is bit 7 (segment 0) to bit 14 (segment 7).
    let exponent = 31 - (biased as u32).leading_zeros() as i32 - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Linear sample of one μ-law code.
#[inline]
pub(crate) fn decode_sample(code: u8) -> i16 {
    DECODE[usize::from(code)]
}

/// Appends the μ-law codes of `samples` to `out` (one byte per sample).
pub fn encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&sample| encode_sample(sample)));
}

/// Appends the linear samples of the μ-law `codes` to `out`.
pub fn decode_into(codes: &[u8], out: &mut Vec<i16>) {
    out.reserve(codes.len());
    out.extend(codes.iter().map(|&code| decode_sample(code)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_match_g711() {
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x80), 32_124);
        assert_eq!(decode_sample(0x00), -32_124);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            // 0x7F is "negative zero"; it decodes to 0, which encodes as 0xFF.
            if code == 0x7F {
                continue;
            }
            assert_eq!(encode_sample(decode_sample(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn quantisation_error_stays_within_half_a_segment_step() {
        for sample in i16::MIN..=i16::MAX {
            let magnitude = i32::from(sample).abs().min(CLIP);
            let exponent = 31 - ((magnitude + BIAS) as u32).leading_zeros() as i32 - 7;
            let step = 1 << (exponent + 3);
            let clipped = i32::from(sample).clamp(-CLIP, CLIP);
            let error = (i32::from(decode_sample(encode_sample(sample))) - clipped).abs();
            assert!(
                error <= step,
                "sample {sample}: error {error} > step {step}"
            );
        }
    }

    #[test]
    fn slices_round_trip_a_tone_with_telephone_quality() {
        let tone: Vec<i16> = (0..8_000)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * 1_000.0 * f64::from(n) / 8_000.0;
                (phase.sin() * 16_000.0) as i16
            })
            .collect();
        let mut codes = Vec::new();
        encode_into(&tone, &mut codes);
        assert_eq!(codes.len(), tone.len());
        let mut decoded = Vec::new();
        decode_into(&codes, &mut decoded);
        let signal: f64 = tone.iter().map(|&s| f64::from(s).powi(2)).sum();
        let noise: f64 = tone
            .iter()
            .zip(&decoded)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let snr_db = 10.0 * (signal / noise).log10();
        // G.711 gives about 38 dB signal-to-quantisation-noise for a loud tone.
        assert!(snr_db > 35.0, "SNR {snr_db:.1} dB");
    }
}
