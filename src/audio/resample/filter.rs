//! The anti-aliasing filter of one rate pair, as a polyphase table: the windowed sinc sampled
//! at every position an output sample can fall on between two input samples.
//!
//! Output sample `k` is the signal at input position `k × down / up` (the rate ratio
//! `to / from` reduced to `up / down`). Its fractional part is `phase / up` for one of `up`
//! phases, so `up` rows of `taps` coefficients describe the whole filter exactly. Tables are
//! built once per rate pair and shared by every stream converting it (`resample::tables`); a
//! ratio whose `up` is too large to tabulate computes its coefficients per output instead.

use std::f64::consts::PI;

/// Filter length in samples of the lower of the two rates (40 taps at 8 kHz, 120 at 24 kHz when
/// downsampling to 8 kHz). With the Blackman-Harris window and the cutoff below, the response is
/// within 0.08 dB up to 0.425 × the lower rate (3.4 kHz at 8 kHz), at least 80 dB down from
/// 0.575 × the lower rate (4.6 kHz) and at least 100 dB down from 0.625 × (5 kHz) on. 48 taps
/// would give 100 dB at 4.6 kHz for 0.5 ms more delay and, downsampling, 20 % more CPU; the
/// look-ahead is half the filter, so shorter filters are also lower-latency.
const TAPS_AT_LOWER_RATE: f64 = 40.0;
/// Cutoff (the -6 dB point) relative to the lower rate's Nyquist frequency: 3.9 kHz at 8 kHz,
/// just below the middle of the transition band, which buys stopband depth at 4.6 kHz.
const RELATIVE_CUTOFF: f64 = 0.975;
/// The 4-term Blackman-Harris window's coefficients.
const BLACKMAN_HARRIS: [f64; 4] = [0.35875, 0.48829, 0.14128, 0.01168];

/// Largest number of phases worth tabulating (`up` × `taps` coefficients). Every bridge path and
/// the usual WAV rates need at most 320; rarer ratios evaluate the window per output instead.
pub(super) const MAX_TABULATED_PHASES: usize = 1_024;

/// The filter for one rate pair.
#[derive(Debug)]
pub(super) struct Filter {
    /// Output samples per `down` input samples: the ratio `to / from` in lowest terms.
    pub(super) up: usize,
    pub(super) down: usize,
    /// Input samples each output is computed from (even).
    pub(super) taps: usize,
    /// Cutoff in cycles per input sample × 2 (1.0 is the input's Nyquist frequency).
    cutoff: f64,
    /// `up` rows of `taps` coefficients, row `phase` for outputs at fractional input position
    /// `phase / up`; `None` when `up` exceeds [`MAX_TABULATED_PHASES`].
    table: Option<Vec<f32>>,
    /// The table's scale: it makes the phases' mean sum 1 (unity gain at 0 Hz).
    scale: f64,
}

impl Filter {
    /// The filter converting `from_hz` to `to_hz` (different rates, both non-zero).
    pub(super) fn new(from_hz: u32, to_hz: u32) -> Filter {
        let divisor = gcd(from_hz, to_hz);
        let (up, down) = ((to_hz / divisor) as usize, (from_hz / divisor) as usize);
        let lower = f64::from(from_hz.min(to_hz));
        // Rounded up to a multiple of 8 (120 taps at 24 kHz for 24 → 8 kHz, 64 for 24 → 16 kHz).
        let taps = (TAPS_AT_LOWER_RATE * f64::from(from_hz) / lower / 8.0).ceil() as usize * 8;
        let mut filter = Filter {
            up,
            down,
            taps,
            cutoff: RELATIVE_CUTOFF * lower / f64::from(from_hz),
            table: None,
            scale: 1.0,
        };
        // The scale: the mean over all phases of each phase's sum (sampled on a fine grid when
        // the phases are not tabulated).
        let grid = up.min(MAX_TABULATED_PHASES);
        let total: f64 = (0..grid)
            .flat_map(|phase| {
                let filter = &filter;
                (0..taps).map(move |tap| filter.prototype(tap, phase as f64 / grid as f64))
            })
            .sum();
        filter.scale = grid as f64 / total;
        if up <= MAX_TABULATED_PHASES {
            let table = (0..up)
                .flat_map(|phase| (0..taps).map(move |tap| (phase, tap)))
                .map(|(phase, tap)| filter.coefficient(tap, phase))
                .collect();
            filter.table = Some(table);
        }
        filter
    }

    /// Offset of output `k`'s first tap from its integer input position `⌊k × down / up⌋`, and
    /// its phase: taps cover the input samples within half a filter of the output's position,
    /// `[position - taps / 2, position + taps / 2)`.
    #[inline]
    pub(super) fn first_tap(&self, output: u64) -> (i64, usize) {
        let scaled = output * self.down as u64;
        let (whole, phase) = (
            (scaled / self.up as u64) as i64,
            (scaled % self.up as u64) as usize,
        );
        let half = (self.taps / 2) as i64;
        (whole - half + i64::from(phase > 0), phase)
    }

    /// The coefficients for outputs of `phase`, in tap order.
    pub(super) fn row(&self, phase: usize) -> Option<&[f32]> {
        self.table
            .as_deref()
            .map(|table| &table[phase * self.taps..(phase + 1) * self.taps])
    }

    /// Coefficient `tap` of `phase`, computed (what the table holds).
    pub(super) fn coefficient(&self, tap: usize, phase: usize) -> f32 {
        (self.prototype(tap, phase as f64 / self.up as f64) * self.scale) as f32
    }

    /// The unscaled windowed sinc for tap `tap` of an output at fractional position `fraction`
    /// (in input samples). The tap's distance from the output's position is
    /// `tap - taps / 2 + 1 - fraction` for a fraction above 0, `tap - taps / 2` at 0.
    fn prototype(&self, tap: usize, fraction: f64) -> f64 {
        let half = (self.taps / 2) as f64;
        let offset = if fraction > 0.0 {
            tap as f64 - half + 1.0 - fraction
        } else {
            tap as f64 - half
        };
        // A periodic Blackman-Harris window over [-half, half).
        let u = (offset + half) / self.taps as f64;
        let [a0, a1, a2, a3] = BLACKMAN_HARRIS;
        let window =
            a0 - a1 * (2.0 * PI * u).cos() + a2 * (4.0 * PI * u).cos() - a3 * (6.0 * PI * u).cos();
        window * sinc(offset * self.cutoff)
    }

    /// The worst look-ahead in input samples: how long after the instant an output represents
    /// its last tap's input arrives (half a filter, less the smallest nonzero phase).
    pub(super) fn look_ahead_samples(&self) -> f64 {
        let half = (self.taps / 2) as f64;
        if self.up > 1 {
            half - 1.0 / self.up as f64
        } else {
            half - 1.0
        }
    }

    #[cfg(test)]
    /// Whether every output's coefficients come from the table.
    pub(super) fn is_tabulated(&self) -> bool {
        self.table.is_some()
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

pub(super) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
