//! Synthetic tones and tone measurement, for tests, the fakes and the demo: generate a sine,
//! and measure how strongly a frequency is present and its phase (one Hann-windowed DFT bin).

use std::f64::consts::PI;

/// `samples` samples of a sine at `freq_hz`, sampled at `rate_hz`, with peak `amplitude`.
pub fn sine(freq_hz: f64, rate_hz: u32, samples: usize, amplitude: f64) -> Vec<i16> {
    let step = 2.0 * PI * freq_hz / f64::from(rate_hz);
    (0..samples)
        .map(|n| (amplitude * (step * n as f64).sin()).round() as i16)
        .collect()
}

/// Level of `freq_hz` in `samples` in dB relative to a full-scale sine (0 dBFS), measured with
/// a Hann window so that nearby strong tones leak little. Use at least a few hundred samples.
pub fn level_dbfs(samples: &[i16], freq_hz: f64, rate_hz: u32) -> f64 {
    let Some(bin) = hann_bin(samples, freq_hz, rate_hz) else {
        return f64::NEG_INFINITY;
    };
    // A sine of peak A gives |X| = A * sum(window) / 2 at its own frequency.
    let amplitude = 2.0 * bin.re.hypot(bin.im) / bin.window_sum;
    20.0 * (amplitude / 32_768.0).max(1e-12).log10()
}

#[cfg(test)]
/// Phase in radians (in (-π, π]) of `freq_hz` in `samples`, relative to a cosine that peaks at
/// the first sample: `sine(...)` measures -π/2. Comparing the phases of a tone before and
/// after a conversion gives the conversion's delay. Hann-windowed like [`level_dbfs`]; use
/// many periods of the tone so that its negative-frequency half does not leak in.
pub(crate) fn phase_rad(samples: &[i16], freq_hz: f64, rate_hz: u32) -> f64 {
    hann_bin(samples, freq_hz, rate_hz).map_or(0.0, |bin| bin.im.atan2(bin.re))
}

/// One Hann-windowed DFT bin at `freq_hz`.
struct Bin {
    re: f64,
    im: f64,
    window_sum: f64,
}

fn hann_bin(samples: &[i16], freq_hz: f64, rate_hz: u32) -> Option<Bin> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let omega = 2.0 * PI * freq_hz / f64::from(rate_hz);
    let mut bin = Bin {
        re: 0.0,
        im: 0.0,
        window_sum: 0.0,
    };
    for (i, &sample) in samples.iter().enumerate() {
        let window = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
        bin.window_sum += window;
        let value = f64::from(sample) * window;
        bin.re += value * (omega * i as f64).cos();
        bin.im -= value * (omega * i as f64).sin();
    }
    Some(bin)
}

/// Root-mean-square level of `samples` in dBFS (a full-scale sine is about -3 dBFS).
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let power: f64 =
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
    10.0 * (power / (32_768.0f64 * 32_768.0)).max(1e-24).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_measures_at_its_own_level_and_not_elsewhere() {
        let tone = sine(1_000.0, 8_000, 4_000, 16_384.0);
        let at_tone = level_dbfs(&tone, 1_000.0, 8_000);
        assert!((at_tone - -6.02).abs() < 0.1, "{at_tone}");
        assert!(level_dbfs(&tone, 3_000.0, 8_000) < -100.0);
        assert!((rms_dbfs(&tone) - -9.03).abs() < 0.1);
    }

    #[test]
    fn a_tone_measures_its_phase() {
        let tone = sine(1_000.0, 8_000, 4_000, 16_384.0);
        let phase = phase_rad(&tone, 1_000.0, 8_000);
        assert!((phase - -PI / 2.0).abs() < 1e-3, "{phase}");
        // Starting 2 samples (90°) later: the sine has advanced to its peak, a cosine.
        let later = phase_rad(&tone[2..], 1_000.0, 8_000);
        assert!(later.abs() < 1e-3, "{later}");
    }
}
