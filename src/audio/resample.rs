//! Streaming sample-rate conversion of 16-bit mono audio, built on rubato's windowed-sinc
//! resampler: FreJun's 8 or 16 kHz to OpenAI's 24 kHz and back, plus the common WAV rates.
//!
//! One [`Resampler`] per call direction keeps the filter state, so audio cut into arbitrary
//! pieces (20 ms frames from FreJun, odd-sized deltas from OpenAI) comes out as one continuous
//! stream, identical to converting the whole recording at once.
//!
//! # Design
//!
//! - **Filter.** A windowed sinc (Blackman-Harris window, 40 taps at the lower rate) that is
//!   flat to 0.425 × the lower rate (3.4 kHz for 8 kHz telephony) and rejects everything from
//!   0.575 × the lower rate (4.6 kHz) on by at least 80 dB, so neither aliases (downsampling)
//!   nor images (upsampling) of in-band audio get through. Measured figures are in
//!   `docs/benchmarks.md` ("Audio resampling").
//! - **Exact polyphase.** rubato's asynchronous sinc resampler with `Nearest` interpolation and
//!   an oversampling factor equal to the denominator of the rate ratio, so every output sample
//!   falls exactly on a precomputed filter phase: a plain polyphase FIR, no interpolation error.
//! - **No waiting for chunks.** rubato wants fixed-size input chunks; instead of collecting the
//!   caller's audio until a chunk fills (which would add up to a chunk of latency), every call
//!   processes everything it was given, shrinking rubato's chunk for the remainder. The only
//!   latency is the filter's own look-ahead, [`Resampler::delay_ms`]: 2.7 ms for 8 → 24 kHz,
//!   1.4 ms for 16 → 24 kHz, 2.6 ms for 24 → 8 kHz. The chunk size (at most 20 ms) then only
//!   trades per-call overhead, a few percent at 2.5 ms pieces (see the benchmark).
//! - **Aligned output.** The filter's start-up delay is trimmed: output sample `k` is the
//!   signal at input time `k / to_hz`, so a one-shot conversion lines up with its input and
//!   [`Resampler::flush`] ends the stream at `round(input_len × to / from)` samples. The trim does
//!   not hide latency: output for an instant is still released only once the input
//!   [`Resampler::delay_ms`] later has arrived.
//! - **Samples.** `i16` is converted to `f32` exactly; the result is rounded to the nearest
//!   integer and saturated, so a full-scale input whose filtered overshoot exceeds the 16-bit
//!   range clips instead of wrapping.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler as _, Resizable as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Lowest and highest sample rates accepted (telephony to studio rates).
const MIN_RATE_HZ: u32 = 4_000;
const MAX_RATE_HZ: u32 = 192_000;

/// Largest number of filter phases worth precomputing for an exact polyphase filter; ratios
/// with a larger denominator interpolate between 256 phases instead (cubic).
const MAX_EXACT_PHASES: usize = 1_024;
/// Phases used for the cubic fallback.
const CUBIC_PHASES: usize = 256;

/// Filter length in samples of the lower of the two rates (40 taps at 8 kHz, 120 at 24 kHz when
/// downsampling to 8 kHz). With the Blackman-Harris window and the cutoff below, the response is
/// within 0.08 dB up to 0.425 × the lower rate (3.4 kHz at 8 kHz), at least 80 dB down from
/// 0.575 × the lower rate (4.6 kHz) and at least 100 dB down from 0.625 × (5 kHz) on. 48 taps
/// would give 100 dB at 4.6 kHz for 0.5 ms more delay and, downsampling, 30 % more CPU; the
/// look-ahead is half the filter, so shorter filters are also lower-latency.
const SINC_LEN_AT_LOWER_RATE: f64 = 40.0;
/// Cutoff (the -6 dB point) relative to the lower rate's Nyquist frequency: 3.9 kHz at 8 kHz,
/// just below the middle of the transition band, which buys stopband depth at 4.6 kHz.
const RELATIVE_CUTOFF: f32 = 0.975;
const WINDOW: WindowFunction = WindowFunction::BlackmanHarris;

/// The largest piece of input handed to rubato at once, in milliseconds of input. Bigger pieces
/// only save a little per-call overhead; this bounds the scratch buffers.
const MAX_CHUNK_MS: usize = 20;

/// Why a [`Resampler`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside 4–192 kHz.
    #[error(
        "unsupported sample-rate conversion {from} Hz → {to} Hz (rates must be 4000–192000 Hz)"
    )]
    UnsupportedRate { from: u32, to: u32 },
    /// rubato refused the filter parameters.
    #[error("could not set up the resampler: {0}")]
    Setup(String),
}

/// A stateful sample-rate converter for one mono 16-bit stream (one per call direction).
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    engine: Engine,
}

enum Engine {
    /// Same rate in and out: samples are copied unchanged.
    PassThrough,
    /// Boxed: the sinc engine is large and rarely moved.
    Sinc(Box<SincEngine>),
}

/// The filter choice for one rate pair.
#[derive(Debug, Clone, Copy)]
struct Design {
    /// Taps per output sample, in input samples (a multiple of 8, as rubato requires).
    sinc_len: usize,
    /// Number of precomputed filter phases.
    phases: usize,
    interpolation: SincInterpolationType,
    window: WindowFunction,
    /// The -6 dB point relative to the lower Nyquist frequency.
    cutoff: f32,
}

impl Design {
    /// The design in rubato's terms.
    fn parameters(&self) -> SincInterpolationParameters {
        SincInterpolationParameters {
            sinc_len: self.sinc_len,
            f_cutoff: Some(self.cutoff),
            oversampling_factor: self.phases,
            interpolation: self.interpolation,
            window: self.window,
        }
    }

    fn for_rates(from_hz: u32, to_hz: u32) -> Self {
        let lower = from_hz.min(to_hz);
        let taps = SINC_LEN_AT_LOWER_RATE * f64::from(from_hz) / f64::from(lower);
        let sinc_len = (taps / 8.0).ceil() as usize * 8;
        // Output sample k sits at input position k × from / to; its fractional part is a
        // multiple of 1 / (to / gcd), so that many phases make every position exact.
        let exact_phases = (to_hz / gcd(from_hz, to_hz)) as usize;
        let (phases, interpolation) = if exact_phases <= MAX_EXACT_PHASES {
            (exact_phases, SincInterpolationType::Nearest)
        } else {
            (CUBIC_PHASES, SincInterpolationType::Cubic)
        };
        Design {
            sinc_len,
            phases,
            interpolation,
            window: WINDOW,
            cutoff: RELATIVE_CUTOFF,
        }
    }

    /// Output samples rubato emits before the one for input time 0, before rounding. Output `n`
    /// of a fresh rubato sits at input position `-(sinc_len - 1) + (n + 1) × from / to`; its
    /// filter's centre lies `sinc_len / 2 - 1 / phases` input samples after that (its first tap,
    /// shifted by where rubato's phase table starts). Setting that centre to 0 gives `n`.
    fn exact_leading_frames(&self, from_hz: u32, to_hz: u32) -> f64 {
        let ratio = f64::from(to_hz) / f64::from(from_hz);
        (self.sinc_len as f64 / 2.0 - 1.0 / self.phases as f64) * ratio - 1.0
    }

    /// The whole number of leading output samples that is trimmed.
    fn leading_frames(&self, from_hz: u32, to_hz: u32) -> usize {
        self.exact_leading_frames(from_hz, to_hz).round().max(0.0) as usize
    }

    /// Upper bound of the latency, in input samples: how long after an instant's input sample
    /// arrives its output is released. rubato releases an output once the input reaches one
    /// sample past its last tap, half a filter plus `(phases - 1) / phases` after its centre;
    /// rounding in rubato's bookkeeping can defer it by less than a sample more. Trimming a
    /// whole number of samples shifts output instants by the rounding of `leading_frames`.
    fn delay_frames(&self, from_hz: u32, to_hz: u32) -> f64 {
        let exact = self.exact_leading_frames(from_hz, to_hz);
        let misalignment = (self.leading_frames(from_hz, to_hz) as f64 - exact)
            * f64::from(from_hz)
            / f64::from(to_hz);
        let phases = self.phases as f64;
        self.sinc_len as f64 / 2.0 + (phases - 1.0) / phases + 1.0 + misalignment
    }
}

struct SincEngine {
    rubato: Async<f32>,
    /// The chunk size rubato was built with (its upper bound).
    max_chunk: usize,
    /// The chunk size rubato is set to now (smaller for a remainder).
    chunk: usize,
    /// Input converted to f32, one chunk at a time.
    input: Vec<f32>,
    /// rubato's output for one chunk.
    output: Vec<f32>,
    /// Output samples before input time 0, dropped at the start of each stream.
    leading: usize,
    /// How many of them are still to drop.
    to_trim: usize,
    /// Zeros fed per step when flushing (enough to cover the look-ahead at once).
    flush_chunk: usize,
    /// Input samples consumed since the stream began.
    consumed: u64,
    /// Output samples emitted since the stream began (after the trim).
    emitted: u64,
    delay_ms: f64,
}

impl Resampler {
    /// Supports any conversion between 4 kHz and 192 kHz; the bridge's paths (8000→24000,
    /// 16000→24000, 24000→8000) and the usual WAV rates (44100, 48000, 22050, 11025 → 8000,
    /// 16000, 24000) use an exact polyphase filter.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        let supported = |rate: u32| (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate);
        if !supported(from_hz) || !supported(to_hz) {
            return Err(ResampleError::UnsupportedRate {
                from: from_hz,
                to: to_hz,
            });
        }
        let engine = if from_hz == to_hz {
            Engine::PassThrough
        } else {
            let design = Design::for_rates(from_hz, to_hz);
            Engine::Sinc(Box::new(SincEngine::new(from_hz, to_hz, design)?))
        };
        Ok(Resampler {
            from_hz,
            to_hz,
            engine,
        })
    }

    #[cfg(test)]
    /// The input sample rate.
    pub(crate) fn input_hz(&self) -> u32 {
        self.from_hz
    }

    #[cfg(test)]
    /// The output sample rate.
    pub(crate) fn output_hz(&self) -> u32 {
        self.to_hz
    }

    /// Appends the output for `input` to `out`. Any input length works, including 0. All of
    /// `input` is processed now (nothing waits for a chunk to fill); the output stops
    /// [`delay_ms`](Self::delay_ms) short of the input's end until more input or a
    /// [`flush`](Self::flush) arrives. Allocates nothing besides growing `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.engine {
            Engine::PassThrough => out.extend_from_slice(input),
            Engine::Sinc(engine) => engine.process(input, out),
        }
    }

    /// End of stream: appends the rest of the output, so that the stream's total output is
    /// `round(total_input × to / from)` samples, then resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if let Engine::Sinc(engine) = &mut self.engine {
            engine.flush(self.from_hz, self.to_hz, out);
        }
    }

    /// Forgets all state (e.g. after a barge-in drops queued audio): the next input starts a
    /// new stream.
    pub(crate) fn reset(&mut self) {
        if let Engine::Sinc(engine) = &mut self.engine {
            engine.reset();
        }
    }

    /// The latency the resampler adds, in milliseconds: the output for an input instant is
    /// released at the latest once input this much later has been processed (the filter's
    /// look-ahead: half its length plus up to two samples). 0 when the rates are equal.
    pub(crate) fn delay_ms(&self) -> f64 {
        match &self.engine {
            Engine::PassThrough => 0.0,
            Engine::Sinc(engine) => engine.delay_ms,
        }
    }
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("delay_ms", &self.delay_ms())
            .finish()
    }
}

impl SincEngine {
    fn new(from_hz: u32, to_hz: u32, design: Design) -> Result<Self, ResampleError> {
        let max_chunk = (from_hz as usize * MAX_CHUNK_MS / 1_000).max(design.sinc_len);
        let parameters = design.parameters();
        let rubato = Async::<f32>::new_sinc(
            f64::from(to_hz) / f64::from(from_hz),
            1.0,
            &parameters,
            max_chunk,
            1,
            FixedAsync::Input,
        )
        .map_err(|error| ResampleError::Setup(error.to_string()))?;
        let output = vec![0.0; rubato.output_frames_max()];
        let leading = design.leading_frames(from_hz, to_hz);
        Ok(SincEngine {
            rubato,
            max_chunk,
            chunk: max_chunk,
            input: vec![0.0; max_chunk],
            output,
            leading,
            to_trim: leading,
            flush_chunk: design.sinc_len.min(max_chunk),
            consumed: 0,
            emitted: 0,
            delay_ms: design.delay_frames(from_hz, to_hz) * 1_000.0 / f64::from(from_hz),
        })
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(input.len() * self.output.len() / self.max_chunk + 1);
        for piece in input.chunks(self.max_chunk) {
            for (slot, &sample) in self.input.iter_mut().zip(piece) {
                *slot = f32::from(sample);
            }
            self.consumed += piece.len() as u64;
            self.run(piece.len(), out);
        }
    }

    /// Resamples the first `len` samples of `self.input` and appends the result to `out`.
    fn run(&mut self, len: usize, out: &mut Vec<i16>) {
        if len != self.chunk {
            if let Err(error) = self.rubato.set_chunk_size(len) {
                // Unreachable: 0 < len ≤ max_chunk by construction.
                tracing::error!(%error, len, "resampler refused a chunk size; audio dropped");
                return;
            }
            self.chunk = len;
        }
        let output_len = self.output.len();
        let buffers = (
            InterleavedSlice::new(&self.input[..len], 1, len),
            InterleavedSlice::new_mut(&mut self.output[..], 1, output_len),
        );
        let (Ok(input), Ok(mut output)) = buffers else {
            // Unreachable: both slices are exactly the stated length.
            return;
        };
        let produced = match self.rubato.process_into_buffer(&input, &mut output, None) {
            Ok((_, produced)) => produced,
            Err(error) => {
                // Unreachable: the buffers are sized from rubato's own maxima.
                tracing::error!(%error, len, "resampling failed; audio dropped");
                return;
            }
        };
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let fresh = &self.output[skip..produced];
        out.extend(fresh.iter().map(|&value| to_i16(value)));
        self.emitted += fresh.len() as u64;
    }

    fn flush(&mut self, from_hz: u32, to_hz: u32, out: &mut Vec<i16>) {
        let total = rounded_output_len(self.consumed, from_hz, to_hz);
        let missing = usize::try_from(total.saturating_sub(self.emitted)).unwrap_or(0);
        let end = out.len() + missing;
        // Zeros after the end push the look-ahead's worth of real input through the filter.
        // One step of flush_chunk (a whole filter length) zeros normally suffices; bound the
        // loop anyway, and pad with silence should it ever stop short.
        let mut steps_left = 4 + missing / self.flush_chunk;
        while self.emitted < total && steps_left > 0 {
            self.input[..self.flush_chunk].fill(0.0);
            self.run(self.flush_chunk, out);
            steps_left -= 1;
        }
        out.resize(end, 0);
        self.reset();
    }

    fn reset(&mut self) {
        self.rubato.reset();
        self.chunk = self.max_chunk;
        self.to_trim = self.leading;
        self.consumed = 0;
        self.emitted = 0;
    }
}

/// `round(input_len × to / from)`, exactly, in integers.
fn rounded_output_len(input_len: u64, from_hz: u32, to_hz: u32) -> u64 {
    let scaled = u128::from(input_len) * u128::from(to_hz) + u128::from(from_hz / 2);
    u64::try_from(scaled / u128::from(from_hz)).unwrap_or(u64::MAX)
}

/// Rounds half away from zero and saturates (`as` saturates out-of-range floats).
#[inline]
fn to_i16(value: f32) -> i16 {
    (value + 0.5f32.copysign(value)) as i16
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One-shot conversion of a whole buffer (WAV files, tests): the output is aligned with the
/// input and `round(input.len() × to / from)` samples long.
pub(crate) fn resample_all(
    input: &[i16],
    from_hz: u32,
    to_hz: u32,
) -> Result<Vec<i16>, ResampleError> {
    let mut resampler = Resampler::new(from_hz, to_hz)?;
    let mut out = Vec::with_capacity(
        usize::try_from(rounded_output_len(input.len() as u64, from_hz, to_hz)).unwrap_or(0),
    );
    resampler.process(input, &mut out);
    resampler.flush(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests;
