//! The inner loop of the bridge's conversions: a polyphase FIR that computes eight output
//! "cycles" at once, one per SIMD lane, for ratios with small `up` and `down` (8 ↔ 24 kHz,
//! 16 ↔ 24 kHz, 8 ↔ 16 kHz).
//!
//! A cycle is `up` consecutive outputs, which together consume `down` input samples. Lane `i` of
//! a block holds cycle `c + i`; the outputs at the same place `q` in their cycle share a phase,
//! so their coefficients differ only by where they start: lane `i`'s filter begins `i × down`
//! input samples after lane 0's. Two layouts of the coefficients use that:
//!
//! - **Contiguous** (`down` 1 or 2: 8 → 24 kHz, 16 → 24 kHz, 8 → 16 kHz, 16 → 8 kHz). The
//!   lanes' inputs are eight consecutive samples of one input phase (with `down` 2 the input is
//!   first split into its even and odd samples), so each tap is one vector load of input,
//!   shared by every place in the cycle, times that tap's coefficient broadcast.
//! - **Spread** (`down` 3: 24 → 8 kHz, 24 → 16 kHz). One 8-lane
//!   coefficient vector per input offset `d` from the block's first tap (zero where a lane's
//!   filter does not reach `d`); each input sample is broadcast and multiplied by it.
//!
//! Either way there are no gathers and no horizontal sums, and each lane adds its taps in tap
//! order whatever else the run computes, so every output is identical to the bit however the
//! stream was cut into blocks. Blocks computed together share each coefficient load.
//!
//! Speed comes from 8-wide fused multiply-adds. The crate is built for baseline x86-64, so on
//! x86-64 the loop is compiled a second time with AVX2 and FMA enabled and chosen at run time
//! when the processor has them (every x86 server CPU since 2013); elsewhere the compiler's own
//! vectorisation of the portable loop is used. Figures are in `docs/benchmarks.md` ("Audio
//! resampling").

use super::filter::Filter;

/// Outputs per lane vector: one AVX register of f32.
pub(super) const LANES: usize = 8;

/// The largest `up` and `down` the block kernel handles; other ratios go one output at a time.
pub(super) const MAX_BLOCK_RATIO: usize = 3;

/// The block kernel's coefficients for one filter.
#[derive(Debug)]
pub(super) struct BlockTable {
    /// Outputs per cycle.
    up: usize,
    /// Input samples per cycle.
    down: usize,
    /// Offset of a block's first tap from its first cycle's input position, `c × down`.
    pub(super) first_tap: i64,
    /// Input samples one block reads from its first tap on.
    span: usize,
    layout: Layout,
}

#[derive(Debug)]
enum Layout {
    /// Per input phase (`down` of them: tap `t` reads phase `t % down`), `up` runs of that
    /// phase's taps: place `q`'s filter shifted to where it starts relative to the block's
    /// first tap (lane 0's view; lane `i` reads `i` samples of the phase later).
    Contiguous { phases: Vec<PhaseTaps> },
    /// `up` runs of `span` lane vectors: run `q` for the outputs at place `q` in their cycle.
    Spread { vectors: Vec<[f32; LANES]> },
}

/// The contiguous layout's taps that read one input phase.
#[derive(Debug)]
struct PhaseTaps {
    /// Taps per place.
    width: usize,
    /// `up` runs of `width` coefficients.
    taps: Vec<f32>,
}

impl BlockTable {
    /// The table for `filter`, or `None` when its ratio is not one the block kernel handles.
    pub(super) fn new(filter: &Filter) -> Option<BlockTable> {
        let (up, down) = (filter.up, filter.down);
        if up > MAX_BLOCK_RATIO || down > MAX_BLOCK_RATIO {
            return None;
        }
        // Place q of cycle 0 is output q: its first tap and phase.
        let starts: Vec<(i64, &[f32])> = (0..up as u64)
            .map(|q| {
                let (first, phase) = filter.first_tap(q);
                filter.row(phase).map(|row| (first, row))
            })
            .collect::<Option<_>>()?;
        let first_tap = starts.iter().map(|&(first, _)| first).min()?;
        // Each place's shift from the block's first tap.
        let places: Vec<(usize, &[f32])> = starts
            .into_iter()
            .map(|(first, row)| ((first - first_tap) as usize, row))
            .collect();
        let spread = places.iter().map(|&(shift, _)| shift).max()?;
        let width = spread + filter.taps;
        let span = (LANES - 1) * down + width;
        let layout = if down <= 2 {
            let phases = (0..down)
                .map(|phase| {
                    // Tap t = at × down + phase of every place.
                    let width = (width - phase).div_ceil(down);
                    let mut taps = vec![0.0; up * width];
                    for (q, &(shift, row)) in places.iter().enumerate() {
                        for at in 0..width {
                            let tap = (at * down + phase).checked_sub(shift);
                            let value = tap.and_then(|tap| row.get(tap)).copied();
                            taps[q * width + at] = value.unwrap_or(0.0);
                        }
                    }
                    PhaseTaps { width, taps }
                })
                .collect();
            Layout::Contiguous { phases }
        } else {
            let mut vectors = vec![[0.0; LANES]; up * span];
            for (q, &(shift, row)) in places.iter().enumerate() {
                let run = &mut vectors[q * span..(q + 1) * span];
                for (offset, vector) in run.iter_mut().enumerate() {
                    for (lane, slot) in vector.iter_mut().enumerate() {
                        // Lane `lane`'s filter starts `lane × down` after lane 0's.
                        let tap = offset.checked_sub(lane * down + shift);
                        *slot = tap.and_then(|tap| row.get(tap)).copied().unwrap_or(0.0);
                    }
                }
            }
            Layout::Spread { vectors }
        };
        Some(BlockTable {
            up,
            down,
            first_tap,
            span,
            layout,
        })
    }

    /// Input samples from a run's first tap that `blocks` consecutive blocks read.
    pub(super) fn input_len(&self, blocks: usize) -> usize {
        (blocks - 1) * LANES * self.down + self.span
    }

    /// Input samples a block advances by.
    fn block_input(&self) -> usize {
        LANES * self.down
    }

    /// Outputs one block makes.
    pub(super) fn block_outputs(&self) -> usize {
        LANES * self.up
    }

    /// Computes `blocks` consecutive blocks from `input`, which starts at the first block's
    /// first tap and is at least [`input_len`](Self::input_len) long, and appends their
    /// outputs, rounded to 16 bits, to `out` in stream order: block by block, cycle by cycle.
    /// `work` is scratch space (the input split into its phases when `down` is 2).
    pub(super) fn run(
        &self,
        blocks: usize,
        input: &[f32],
        work: &mut Vec<f32>,
        out: &mut Vec<i16>,
    ) {
        debug_assert!(input.len() >= self.input_len(blocks));
        out.reserve(blocks * self.block_outputs());
        dispatch(self, blocks, input, work, out);
    }
}

/// One fused or separate multiply-add, so the same loop compiles to FMA instructions where the
/// processor has them and to a multiply and an add where it does not.
trait MultiplyAdd {
    fn multiply_add(a: f32, b: f32, sum: f32) -> f32;
}

/// `a × b + sum` rounded once (an FMA instruction).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
struct Fused;
impl MultiplyAdd for Fused {
    #[inline(always)]
    fn multiply_add(a: f32, b: f32, sum: f32) -> f32 {
        a.mul_add(b, sum)
    }
}

/// `a × b + sum` rounded twice (for processors without FMA, where `mul_add` is a slow call).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
struct Separate;
impl MultiplyAdd for Separate {
    #[inline(always)]
    fn multiply_add(a: f32, b: f32, sum: f32) -> f32 {
        a * b + sum
    }
}

/// Picks the fastest build of [`all_blocks`] this processor runs.
fn dispatch(
    table: &BlockTable,
    blocks: usize,
    input: &[f32],
    work: &mut Vec<f32>,
    out: &mut Vec<i16>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the processor supports AVX2 and FMA, checked just above (the check reads
            // a cached CPUID result), which is all `all_blocks_avx2` requires.
            #[allow(unsafe_code)]
            unsafe {
                all_blocks_avx2(table, blocks, input, work, out)
            };
            return;
        }
        all_blocks::<Separate>(table, blocks, input, work, out);
    }
    #[cfg(target_arch = "aarch64")]
    all_blocks::<Fused>(table, blocks, input, work, out);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    all_blocks::<Separate>(table, blocks, input, work, out);
}

/// [`all_blocks`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn all_blocks_avx2(
    table: &BlockTable,
    blocks: usize,
    input: &[f32],
    work: &mut Vec<f32>,
    out: &mut Vec<i16>,
) {
    all_blocks::<Fused>(table, blocks, input, work, out);
}

/// Blocks computed together: each coefficient load serves all of them, and their sums stay in
/// registers (up to six vectors with the contiguous layout's three places, four with the
/// spread layout's one place at a time).
const TOGETHER_CONTIGUOUS: usize = 2;
const TOGETHER_SPREAD: usize = 4;

/// One block's or several blocks' sums: `[place][block][lane]`.
type Sums<const BLOCKS: usize> = [[[f32; LANES]; BLOCKS]; MAX_BLOCK_RATIO];

/// Runs the table's layout over `blocks` blocks.
#[inline(always)]
fn all_blocks<M: MultiplyAdd>(
    table: &BlockTable,
    blocks: usize,
    input: &[f32],
    work: &mut Vec<f32>,
    out: &mut Vec<i16>,
) {
    let input = &input[..table.input_len(blocks)];
    match &table.layout {
        Layout::Contiguous { phases } => {
            if table.down == 1 {
                contiguous_for::<M>(table.up, phases, &[input], blocks, out);
            } else {
                // With `down` 2, lane i of a tap reads every other sample: split the input
                // into its two phases once, and each tap reads a contiguous run of one.
                split_phases(input, work);
                let (even, odd) = work.split_at(input.len().div_ceil(2));
                contiguous_for::<M>(table.up, phases, &[even, odd], blocks, out);
            }
        }
        Layout::Spread { vectors } => {
            let stride = table.block_input();
            let (span, up) = (table.span, table.up);
            let mut done = 0;
            while done + TOGETHER_SPREAD <= blocks {
                let input = &input[done * stride..];
                let sums = spread::<M, TOGETHER_SPREAD>(vectors, span, up, stride, input);
                emit(&sums, up, out);
                done += TOGETHER_SPREAD;
            }
            while done < blocks {
                let input = &input[done * stride..];
                emit(&spread::<M, 1>(vectors, span, up, stride, input), up, out);
                done += 1;
            }
        }
    }
}

/// `input`'s even samples, then its odd ones, into `work`. Pairs at a time, so the compiler
/// turns it into vector shuffles (`step_by` kept it one sample at a time: with 16 kHz input
/// it cost a fifth of the conversion).
#[inline(always)]
fn split_phases(input: &[f32], work: &mut Vec<f32>) {
    let evens = input.len().div_ceil(2);
    work.clear();
    work.resize(input.len(), 0.0);
    let (even, odd) = work.split_at_mut(evens);
    for ((pair, even), odd) in input
        .chunks_exact(2)
        .zip(even.iter_mut())
        .zip(odd.iter_mut())
    {
        *even = pair[0];
        *odd = pair[1];
    }
    if input.len() % 2 == 1 {
        even[evens - 1] = input[input.len() - 1];
    }
}

/// [`contiguous_blocks`] for `up` places (a constant in the loop, for the registers).
#[inline(always)]
fn contiguous_for<M: MultiplyAdd>(
    up: usize,
    phases: &[PhaseTaps],
    streams: &[&[f32]],
    blocks: usize,
    out: &mut Vec<i16>,
) {
    match up {
        1 => contiguous_blocks::<M, 1>(phases, streams, blocks, out),
        2 => contiguous_blocks::<M, 2>(phases, streams, blocks, out),
        _ => contiguous_blocks::<M, 3>(phases, streams, blocks, out),
    }
}

/// The contiguous layout over `blocks` blocks, [`TOGETHER_CONTIGUOUS`] at a time while that
/// many remain. `streams` holds the input's phases; a block advances each by `LANES`.
#[inline(always)]
fn contiguous_blocks<M: MultiplyAdd, const UP: usize>(
    phases: &[PhaseTaps],
    streams: &[&[f32]],
    blocks: usize,
    out: &mut Vec<i16>,
) {
    let mut done = 0;
    while done + TOGETHER_CONTIGUOUS <= blocks {
        emit(
            &phases_of::<M, UP, TOGETHER_CONTIGUOUS>(phases, streams, done),
            UP,
            out,
        );
        done += TOGETHER_CONTIGUOUS;
    }
    while done < blocks {
        emit(&phases_of::<M, UP, 1>(phases, streams, done), UP, out);
        done += 1;
    }
}

/// The sums of `BLOCKS` blocks from block `done` on: the first phase's taps, then the second's.
/// Written out rather than looped, and the sums passed by value, so that they stay in
/// registers (a loop over the phases kept them on the stack).
#[inline(always)]
fn phases_of<M: MultiplyAdd, const UP: usize, const BLOCKS: usize>(
    phases: &[PhaseTaps],
    streams: &[&[f32]],
    done: usize,
) -> Sums<BLOCKS> {
    let mut sums = [[[0.0f32; LANES]; BLOCKS]; MAX_BLOCK_RATIO];
    if let (Some(phase), Some(stream)) = (phases.first(), streams.first()) {
        sums = contiguous::<M, UP, BLOCKS>(phase, &stream[done * LANES..], sums);
    }
    if let (Some(phase), Some(stream)) = (phases.get(1), streams.get(1)) {
        sums = contiguous::<M, UP, BLOCKS>(phase, &stream[done * LANES..], sums);
    }
    sums
}

/// The contiguous layout's kernel for one input phase: adds its taps to `BLOCKS` blocks of
/// `LANES` cycles of `UP` places. Tap `at` of lane `i` reads `input[at + i]`.
// Index loops on purpose: written with iterator adaptors the compiler kept the lanes scalar.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn contiguous<M: MultiplyAdd, const UP: usize, const BLOCKS: usize>(
    phase: &PhaseTaps,
    input: &[f32],
    mut sums: Sums<BLOCKS>,
) -> Sums<BLOCKS> {
    let width = phase.width;
    let runs: [&[f32]; UP] = std::array::from_fn(|q| &phase.taps[q * width..(q + 1) * width]);
    for at in 0..width {
        // One checked slice per block (indexing lane by lane checked every lane and kept the
        // loads scalar); in bounds by construction, so the zeros never apply.
        let samples: [[f32; LANES]; BLOCKS] = std::array::from_fn(|block| {
            let start = at + block * LANES;
            input
                .get(start..start + LANES)
                .and_then(|window| <[f32; LANES]>::try_from(window).ok())
                .unwrap_or([0.0; LANES])
        });
        for place in 0..UP {
            let coefficient = runs[place][at];
            for block in 0..BLOCKS {
                for lane in 0..LANES {
                    sums[place][block][lane] = M::multiply_add(
                        coefficient,
                        samples[block][lane],
                        sums[place][block][lane],
                    );
                }
            }
        }
    }
    sums
}

/// The spread layout's kernel: `BLOCKS` blocks of `LANES` cycles, one place after another
/// (index loops for the same reason as [`contiguous`]).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn spread<M: MultiplyAdd, const BLOCKS: usize>(
    vectors: &[[f32; LANES]],
    span: usize,
    up: usize,
    stride: usize,
    input: &[f32],
) -> Sums<BLOCKS> {
    let inputs: [&[f32]; BLOCKS] = std::array::from_fn(|b| &input[b * stride..b * stride + span]);
    let mut sums = [[[0.0f32; LANES]; BLOCKS]; MAX_BLOCK_RATIO];
    for (place, sums) in sums.iter_mut().enumerate().take(up) {
        let run = &vectors[place * span..(place + 1) * span];
        for offset in 0..span {
            let vector = run[offset];
            for block in 0..BLOCKS {
                let sample = inputs[block][offset];
                for lane in 0..LANES {
                    sums[block][lane] = M::multiply_add(vector[lane], sample, sums[block][lane]);
                }
            }
        }
    }
    sums
}

/// Rounds the sums of `up` places to 16 bits (as vectors) and appends them in stream order.
#[inline(always)]
fn emit<const BLOCKS: usize>(sums: &Sums<BLOCKS>, up: usize, out: &mut Vec<i16>) {
    let mut rounded = [[0i16; LANES]; BLOCKS];
    let mut interleaved = [0i16; MAX_BLOCK_RATIO * TOGETHER_SPREAD * LANES];
    for (place, sums) in sums.iter().enumerate().take(up) {
        for block in 0..BLOCKS {
            for lane in 0..LANES {
                rounded[block][lane] = to_i16(sums[block][lane]);
            }
        }
        if up == 1 {
            out.extend_from_slice(rounded.as_flattened());
            return;
        }
        for (cycle, &value) in rounded.as_flattened().iter().enumerate() {
            interleaved[cycle * up + place] = value;
        }
    }
    out.extend_from_slice(&interleaved[..BLOCKS * LANES * up]);
}

/// Rounds to the nearest integer (ties to even) and saturates. Adding 1.5 × 2²³ leaves the
/// rounded value in the float's low mantissa bits, an integer trick the compiler vectorises,
/// which a float-to-integer cast is not.
#[inline(always)]
pub(super) fn to_i16(value: f32) -> i16 {
    const MAGIC: f32 = 12_582_912.0;
    let clamped = value.clamp(-32_768.0, 32_767.0);
    ((clamped + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32) as i16
}
