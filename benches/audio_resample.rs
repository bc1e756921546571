//! CPU cost of the bridge's audio conversions on one core: the streaming resampler
//! (`voxbridge::audio::resample`) on the bridge's paths, and G.711 μ-law for comparison.
//!
//! ```text
//! cargo bench --bench audio_resample [-- --seconds 60 --runs 7]
//! ```
//!
//! Each case converts `--seconds` of a speech-band test signal (three tones plus noise), fed the
//! way the bridge feeds it: in 20 ms frames, or in other piece sizes to show what the size
//! costs. One run converts the whole signal once, on this thread, into a reused output buffer;
//! the table gives the median of `--runs` runs after one warm-up run, as "× real time": seconds
//! of audio converted per second of CPU. The bridge's budget is 0.5 ms of CPU per second of
//! call for everything, i.e. 2 000× real time for the whole call, so a conversion that runs at
//! 20 000× real time uses a tenth of it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use voxbridge::audio::mulaw;
use voxbridge::audio::resample::Resampler;

#[derive(Debug, Parser)]
#[command(about = "CPU cost of resampling and μ-law on one core, as × real time")]
struct Options {
    /// Seconds of audio converted per run.
    #[arg(long, default_value_t = 60)]
    seconds: usize,
    /// Measured runs per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// How the input is cut into pieces before each `process` call.
#[derive(Debug, Clone, Copy)]
enum Pieces {
    /// Every piece this many milliseconds long.
    Millis(f64),
    /// Every piece this many samples long.
    Samples(usize),
    /// Uniformly random sizes from 1 to this many samples (OpenAI's deltas vary like this).
    RandomUpTo(usize),
}

impl Pieces {
    fn label(self) -> String {
        match self {
            Pieces::Millis(ms) => format!("{ms} ms"),
            Pieces::Samples(n) => format!("{n} samples"),
            Pieces::RandomUpTo(n) => format!("random 1–{n} samples"),
        }
    }

    /// The piece lengths covering `total` samples at `rate_hz`.
    fn lengths(self, total: usize, rate_hz: u32) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut lengths = Vec::new();
        let mut covered = 0;
        while covered < total {
            let wanted = match self {
                Pieces::Millis(ms) => ((f64::from(rate_hz) * ms / 1_000.0).round() as usize).max(1),
                Pieces::Samples(n) => n,
                Pieces::RandomUpTo(n) => rng.random_range(1..=n),
            };
            let length = wanted.min(total - covered);
            lengths.push(length);
            covered += length;
        }
        lengths
    }
}

enum Work {
    Resample { from_hz: u32, to_hz: u32 },
    MulawEncode,
    MulawDecode,
}

struct Case {
    name: String,
    work: Work,
    pieces: Pieces,
}

fn case(name: &str, work: Work, pieces: Pieces) -> Case {
    Case {
        name: name.to_owned(),
        work,
        pieces,
    }
}

fn main() {
    let options = Options::parse();
    let frame = Pieces::Millis(20.0);
    let resample = |from_hz, to_hz| Work::Resample { from_hz, to_hz };
    let cases = [
        case("resample 8000 → 24000", resample(8_000, 24_000), frame),
        case("resample 16000 → 24000", resample(16_000, 24_000), frame),
        case("resample 24000 → 8000", resample(24_000, 8_000), frame),
        case("resample 24000 → 16000", resample(24_000, 16_000), frame),
        case("μ-law encode (8 kHz)", Work::MulawEncode, frame),
        case("μ-law decode (8 kHz)", Work::MulawDecode, frame),
        // What the piece size costs: per-call overhead against the fixed filter work.
        case(
            "resample 8000 → 24000",
            resample(8_000, 24_000),
            Pieces::Millis(2.5),
        ),
        case(
            "resample 8000 → 24000",
            resample(8_000, 24_000),
            Pieces::Millis(5.0),
        ),
        case(
            "resample 8000 → 24000",
            resample(8_000, 24_000),
            Pieces::Millis(10.0),
        ),
        case(
            "resample 8000 → 24000",
            resample(8_000, 24_000),
            Pieces::Millis(1_200.0),
        ),
        case(
            "resample 8000 → 24000",
            resample(8_000, 24_000),
            Pieces::Samples(7),
        ),
        case(
            "resample 24000 → 8000",
            resample(24_000, 8_000),
            Pieces::RandomUpTo(4_800),
        ),
        case(
            "resample 24000 → 8000",
            resample(24_000, 8_000),
            Pieces::Samples(7),
        ),
        // A WAV file's conversion, for reference.
        case("resample 44100 → 16000", resample(44_100, 16_000), frame),
    ];

    println!(
        "{} s of audio per run, median of {} runs (after 1 warm-up run), one thread\n",
        options.seconds, options.runs
    );
    println!("| conversion | piece | median ms per run | × real time | CPU µs per s of audio |");
    println!("|---|---|---:|---:|---:|");
    for case in &cases {
        let median = measure(case, &options);
        let audio = options.seconds as f64;
        let factor = audio / median.as_secs_f64();
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.1} |",
            case.name,
            case.pieces.label(),
            median.as_secs_f64() * 1_000.0,
            factor,
            1e6 / factor,
        );
    }
}

/// Median wall time of one pass over the signal (single-threaded, so wall ≈ CPU time).
fn measure(case: &Case, options: &Options) -> Duration {
    let input_rate = match case.work {
        Work::Resample { from_hz, .. } => from_hz,
        Work::MulawEncode | Work::MulawDecode => 8_000,
    };
    let signal = test_signal(input_rate, options.seconds);
    let lengths = case.pieces.lengths(signal.len(), input_rate);
    let mut times: Vec<Duration> = (0..=options.runs)
        .map(|_| match case.work {
            Work::Resample { from_hz, to_hz } => time_resample(&signal, &lengths, from_hz, to_hz),
            Work::MulawEncode => time_pieces(&signal, &lengths, |piece, out: &mut Vec<u8>| {
                mulaw::encode_into(piece, out)
            }),
            Work::MulawDecode => {
                let mut codes = Vec::new();
                mulaw::encode_into(&signal, &mut codes);
                time_pieces(&codes, &lengths, |piece, out: &mut Vec<i16>| {
                    mulaw::decode_into(piece, out)
                })
            }
        })
        .skip(1)
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn time_resample(signal: &[i16], lengths: &[usize], from_hz: u32, to_hz: u32) -> Duration {
    let mut resampler = match Resampler::new(from_hz, to_hz) {
        Ok(resampler) => resampler,
        Err(error) => panic!("{error}"),
    };
    let mut out = Vec::with_capacity(signal.len() * to_hz as usize / from_hz as usize + 64);
    let started = Instant::now();
    let mut start = 0;
    for &length in lengths {
        out.clear();
        resampler.process(&signal[start..start + length], &mut out);
        black_box(&out);
        start += length;
    }
    out.clear();
    resampler.flush(&mut out);
    black_box(&out);
    started.elapsed()
}

fn time_pieces<I, O>(
    input: &[I],
    lengths: &[usize],
    mut convert: impl FnMut(&[I], &mut Vec<O>),
) -> Duration {
    let mut out = Vec::with_capacity(input.len());
    let started = Instant::now();
    let mut start = 0;
    for &length in lengths {
        out.clear();
        convert(&input[start..start + length], &mut out);
        black_box(&out);
        start += length;
    }
    started.elapsed()
}

/// Speech-band content: 300 Hz, 1.1 kHz and 2.9 kHz tones plus white noise, peaking near
/// -3 dBFS, so every filter tap sees non-trivial values.
fn test_signal(rate_hz: u32, seconds: usize) -> Vec<i16> {
    let mut rng = StdRng::seed_from_u64(42);
    let rate = f64::from(rate_hz);
    (0..rate_hz as usize * seconds)
        .map(|n| {
            let t = n as f64 / rate;
            let tones = [(300.0, 8_000.0), (1_100.0, 6_000.0), (2_900.0, 4_000.0)]
                .iter()
                .map(|&(freq, amplitude)| amplitude * (std::f64::consts::TAU * freq * t).sin())
                .sum::<f64>();
            let noise = rng.random_range(-3_000.0..3_000.0);
            (tones + noise).round() as i16
        })
        .collect()
}
