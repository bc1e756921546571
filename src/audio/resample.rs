//! Streaming sample-rate conversion of 16-bit mono audio with a windowed-sinc polyphase filter:
//! FreJun's 8 or 16 kHz to OpenAI's 24 kHz and back, plus the common WAV rates.
//!
//! One [`Resampler`] per call direction keeps the filter state, so audio cut into arbitrary
//! pieces (20 ms frames from FreJun, odd-sized deltas from OpenAI) comes out as one continuous
//! stream, identical to converting the whole recording at once.
//!
//! # Design
//!
//! - **Filter** ([`filter`]). A windowed sinc (Blackman-Harris window, 40 taps at the lower
//!   rate) that is flat to 0.425 × the lower rate (3.4 kHz for 8 kHz telephony) and rejects
//!   everything from 0.575 × the lower rate (4.6 kHz) on by at least 80 dB, so neither aliases
//!   (downsampling) nor images (upsampling) of in-band audio get through. Measured figures are
//!   in `docs/benchmarks.md` ("Audio resampling").
//! - **Exact polyphase.** Output `k` lies at input position `k × from / to`; reduced to
//!   `k × down / up`, its fractional part is one of `up` phases, each a precomputed row of
//!   coefficients, so there is no interpolation error. The tables are shared by every stream
//!   of a rate pair.
//! - **Kernel** ([`kernel`]). The bridge's ratios (8 ↔ 24 kHz, 16 ↔ 24 kHz, 8 ↔ 16 kHz) run
//!   a SIMD loop that computes eight cycles of outputs at once; other ratios (WAV files) take
//!   one output at a time. rubato, which this module used before, spent most of its time on
//!   per-sample bookkeeping around the same filter and ran at about 2 800× real time where the
//!   kernel runs at over 20 000× (see the benchmark for both, and for rubato's FFT resampler,
//!   which cannot meet the look-ahead).
//! - **No waiting for chunks.** Every call releases every output whose last tap has arrived.
//!   The only latency is the filter's own look-ahead, [`Resampler::delay_ms`]: 2.5 ms for
//!   8 → 24 kHz, 1.2 ms for 16 → 24 kHz, 2.5 ms for 24 → 8 kHz.
//! - **Aligned output.** Output sample `k` is the signal at input time `k / to_hz`, so a
//!   one-shot conversion lines up with its input and [`Resampler::flush`] ends the stream at
//!   `round(input_len × to / from)` samples.
//! - **Samples.** `i16` is converted to `f32` exactly; the result is rounded to the nearest
//!   integer and saturated, so a full-scale input whose filtered overshoot exceeds the 16-bit
//!   range clips instead of wrapping.

mod filter;
mod kernel;

use std::sync::Arc;

use filter::Filter;
use kernel::BlockTable;

/// Lowest and highest sample rates accepted (telephony to studio rates).
const MIN_RATE_HZ: u32 = 4_000;
const MAX_RATE_HZ: u32 = 192_000;

/// The largest piece of input taken in at once, in milliseconds of input: bounds the history a
/// stream holds when handed a whole file.
const MAX_PIECE_MS: usize = 20;

/// Why a [`Resampler`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside 4–192 kHz.
    #[error(
        "unsupported sample-rate conversion {from} Hz → {to} Hz (rates must be 4000–192000 Hz)"
    )]
    UnsupportedRate { from: u32, to: u32 },
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
    /// Boxed: the stream is large and rarely moved.
    Polyphase(Box<Stream>),
}

/// The filter's coefficients in the form the stream's path reads them.
enum Path {
    /// The block kernel, for the bridge's small ratios.
    Blocks(Arc<BlockTable>),
    /// One output at a time from the filter's table, or computed per output.
    OneByOne,
}

/// The state of one stream: the input history its next outputs need, and where it stands.
struct Stream {
    filter: Arc<Filter>,
    path: Path,
    /// Input samples as f32 from absolute index `history_start` on; indices before 0 and from
    /// `consumed` on read as zeros.
    history: Vec<f32>,
    history_start: i64,
    /// Input samples received since the stream began.
    consumed: u64,
    /// Index of the next output sample to release.
    next_output: u64,
    /// Outputs of one kernel run.
    scratch: Vec<i16>,
    /// The kernel's scratch space.
    work: Vec<f32>,
    /// One output's coefficients on the one-by-one path, for a ratio without a table.
    coefficients: Vec<f32>,
    /// Input samples taken in at once (see [`MAX_PIECE_MS`]).
    max_piece: usize,
    delay_ms: f64,
}

impl Resampler {
    /// Supports any conversion between 4 kHz and 192 kHz; the bridge's paths (8000→24000,
    /// 16000→24000, 24000→8000) use the SIMD kernel and the usual WAV rates (44100, 48000,
    /// 22050, 11025 → 8000, 16000, 24000) a precomputed table.
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
            Engine::Polyphase(Box::new(Stream::new(from_hz, to_hz)))
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
    /// [`flush`](Self::flush) arrives. Allocates nothing in a steady stream besides growing
    /// `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.engine {
            Engine::PassThrough => out.extend_from_slice(input),
            Engine::Polyphase(stream) => stream.process(input, out),
        }
    }

    /// End of stream: appends the rest of the output, so that the stream's total output is
    /// `round(total_input × to / from)` samples, then resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if let Engine::Polyphase(stream) = &mut self.engine {
            stream.flush(self.from_hz, self.to_hz, out);
        }
    }

    /// Forgets all state (e.g. after a barge-in drops queued audio): the next input starts a
    /// new stream.
    pub(crate) fn reset(&mut self) {
        if let Engine::Polyphase(stream) = &mut self.engine {
            stream.reset();
        }
    }

    /// The latency the resampler adds, in milliseconds: the output for an input instant is
    /// released once input this much later has been processed (the filter's look-ahead, half
    /// its length). 0 when the rates are equal.
    pub(crate) fn delay_ms(&self) -> f64 {
        match &self.engine {
            Engine::PassThrough => 0.0,
            Engine::Polyphase(stream) => stream.delay_ms,
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

impl Stream {
    fn new(from_hz: u32, to_hz: u32) -> Stream {
        let Tables { filter, blocks } = &*tables(from_hz, to_hz);
        let filter = Arc::clone(filter);
        let path = match blocks {
            Some(table) => Path::Blocks(Arc::clone(table)),
            None => Path::OneByOne,
        };
        let delay_ms = filter.look_ahead_samples() * 1_000.0 / f64::from(from_hz);
        let mut stream = Stream {
            filter,
            path,
            history: Vec::new(),
            history_start: 0,
            consumed: 0,
            next_output: 0,
            scratch: Vec::new(),
            work: Vec::new(),
            coefficients: Vec::new(),
            max_piece: (from_hz as usize * MAX_PIECE_MS / 1_000).max(1),
            delay_ms,
        };
        stream.reset();
        stream
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let (up, down) = (self.filter.up as u64, self.filter.down as u64);
        out.reserve((input.len() as u64 * up / down) as usize + 1);
        for piece in input.chunks(self.max_piece) {
            // The zeros kept after the received input are overwritten by it.
            let end = (self.consumed as i64 - self.history_start) as usize;
            self.history.truncate(end);
            self.history
                .extend(piece.iter().map(|&sample| f32::from(sample)));
            self.consumed += piece.len() as u64;
            let ready = self.ready_outputs();
            self.release(ready, out);
        }
    }

    /// How many outputs (from the stream's start) have all their input: output `k`'s last tap
    /// is input `⌈k × down / up + taps / 2⌉ - 1`.
    fn ready_outputs(&self) -> u64 {
        let half = (self.filter.taps / 2) as u64;
        match self.consumed.checked_sub(half) {
            Some(room) => room * self.filter.up as u64 / self.filter.down as u64 + 1,
            None => 0,
        }
    }

    /// Releases outputs up to (not including) `end`, reading zeros past the received input.
    fn release(&mut self, end: u64, out: &mut Vec<i16>) {
        match &self.path {
            Path::Blocks(table) => {
                let table = Arc::clone(table);
                self.release_blocks(&table, end, out);
            }
            Path::OneByOne => self.release_one_by_one(end, out),
        }
        self.forget_used_input();
    }

    fn release_blocks(&mut self, table: &BlockTable, end: u64, out: &mut Vec<i16>) {
        if self.next_output >= end {
            return;
        }
        let up = self.filter.up as u64;
        let cycle = self.next_output / up;
        let skip = (self.next_output - cycle * up) as usize;
        let take = (end - self.next_output) as usize;
        let blocks = (skip + take).div_ceil(table.block_outputs());
        let first = cycle as i64 * self.filter.down as i64 + table.first_tap;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut work = std::mem::take(&mut self.work);
        let input = self.input_from(first, table.input_len(blocks));
        table.run(blocks, input, &mut work, &mut scratch);
        self.work = work;
        out.extend_from_slice(&scratch[skip..skip + take]);
        self.scratch = scratch;
        self.next_output = end;
    }

    fn release_one_by_one(&mut self, end: u64, out: &mut Vec<i16>) {
        let taps = self.filter.taps;
        let filter = Arc::clone(&self.filter);
        let mut coefficients = std::mem::take(&mut self.coefficients);
        while self.next_output < end {
            let (first, phase) = filter.first_tap(self.next_output);
            let row = match filter.row(phase) {
                Some(row) => row,
                None => {
                    coefficients.clear();
                    coefficients.extend((0..taps).map(|tap| filter.coefficient(tap, phase)));
                    &coefficients[..]
                }
            };
            let input = self.input_from(first, taps);
            let sum: f32 = row.iter().zip(input).map(|(&c, &x)| c * x).sum();
            out.push(kernel::to_i16(sum));
            self.next_output += 1;
        }
        self.coefficients = coefficients;
    }

    /// `len` input samples from absolute index `first`, zeros past the received input.
    fn input_from(&mut self, first: i64, len: usize) -> &[f32] {
        let start = (first - self.history_start) as usize;
        if self.history.len() < start + len {
            self.history.resize(start + len, 0.0);
        }
        &self.history[start..start + len]
    }

    /// Drops the history before the next output's first tap.
    fn forget_used_input(&mut self) {
        let first = match &self.path {
            Path::Blocks(table) => {
                let cycle = self.next_output / self.filter.up as u64;
                cycle as i64 * self.filter.down as i64 + table.first_tap
            }
            Path::OneByOne => self.filter.first_tap(self.next_output).0,
        };
        let unused = (first - self.history_start).clamp(0, self.history.len() as i64);
        if unused > 0 {
            self.history.drain(..unused as usize);
            self.history_start += unused;
        }
    }

    fn flush(&mut self, from_hz: u32, to_hz: u32, out: &mut Vec<i16>) {
        let total = rounded_output_len(self.consumed, from_hz, to_hz);
        let end = self.consumed as i64 - self.history_start;
        self.history.truncate(end.max(0) as usize);
        if total > self.next_output {
            self.release(total, out);
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.consumed = 0;
        self.next_output = 0;
        // The first output's first tap lies half a filter before time 0; that input is silence.
        self.history_start = -((self.filter.taps / 2) as i64);
        self.history.clear();
        self.history.resize(self.filter.taps / 2, 0.0);
    }
}

/// A rate pair's filter and, for the bridge's small ratios, its block kernel's layout.
struct Tables {
    filter: Arc<Filter>,
    blocks: Option<Arc<BlockTable>>,
}

/// The tables for a rate pair, built on first use and shared afterwards: every call's stream in
/// the same direction reads the same tables instead of holding a copy.
fn tables(from_hz: u32, to_hz: u32) -> Arc<Tables> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<(u32, u32), Arc<Tables>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    // A poisoned lock only means another thread panicked while inserting; the map is intact.
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tables = cache.entry((from_hz, to_hz)).or_insert_with(|| {
        let filter = Filter::new(from_hz, to_hz);
        let blocks = BlockTable::new(&filter).map(Arc::new);
        Arc::new(Tables {
            filter: Arc::new(filter),
            blocks,
        })
    });
    Arc::clone(tables)
}

/// `round(input_len × to / from)`, exactly, in integers.
fn rounded_output_len(input_len: u64, from_hz: u32, to_hz: u32) -> u64 {
    let scaled = u128::from(input_len) * u128::from(to_hz) + u128::from(from_hz / 2);
    u64::try_from(scaled / u128::from(from_hz)).unwrap_or(u64::MAX)
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
