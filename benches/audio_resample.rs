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
//!
//! The rubato rows measure the library this crate's resampler was built on before its own
//! kernel, on the bridge's main path in 20 ms frames: its asynchronous sinc resampler with the
//! same filter (the previous engine) and its synchronous FFT resampler. Below the table, each
//! engine's look-ahead and filter response (from its impulse response) show what the FFT one
//! would cost in latency and quality.

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
    Resample {
        from_hz: u32,
        to_hz: u32,
    },
    /// rubato, fed whole 20 ms frames (what its fixed chunk wants).
    Rubato {
        engine: reference::Engine,
        from_hz: u32,
        to_hz: u32,
    },
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
    let rubato = |engine| Work::Rubato {
        engine,
        from_hz: 8_000,
        to_hz: 24_000,
    };
    let references = [
        reference::Engine::Sinc,
        reference::Engine::Fft { block_ms: 5 },
        reference::Engine::Fft { block_ms: 20 },
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .chain(references.iter().map(|&engine| {
            let name = format!("{} 8000 → 24000", engine.label());
            case(&name, rubato(engine), frame)
        }))
        .collect();

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
    println!("\n| 8000 → 24000 | look-ahead | passband 0–3.4 kHz | stopband from 4.6 kHz |");
    println!("|---|---:|---:|---:|");
    for engine in references {
        let (look_ahead_ms, ripple_db, stopband_db) = reference::describe(engine);
        println!(
            "| {} | {look_ahead_ms:.1} ms | ±{ripple_db:.2} dB | {stopband_db:.1} dB |",
            engine.label()
        );
    }
}

/// Median wall time of one pass over the signal (single-threaded, so wall ≈ CPU time).
fn measure(case: &Case, options: &Options) -> Duration {
    let input_rate = match case.work {
        Work::Resample { from_hz, .. } | Work::Rubato { from_hz, .. } => from_hz,
        Work::MulawEncode | Work::MulawDecode => 8_000,
    };
    let signal = test_signal(input_rate, options.seconds);
    let lengths = case.pieces.lengths(signal.len(), input_rate);
    let mut times: Vec<Duration> = (0..=options.runs)
        .map(|_| match case.work {
            Work::Resample { from_hz, to_hz } => time_resample(&signal, &lengths, from_hz, to_hz),
            Work::Rubato {
                engine,
                from_hz,
                to_hz,
            } => {
                let mut rubato = reference::Reference::new(engine, from_hz, to_hz);
                time_pieces(&signal, &lengths, |piece, out| rubato.process(piece, out))
            }
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

/// rubato's resamplers set up as this crate used the sinc one, for the comparison rows.
mod reference {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{
        Async, Fft, FixedAsync, FixedSync, SincInterpolationParameters, SincInterpolationType,
        WindowFunction,
    };

    #[derive(Debug, Clone, Copy)]
    pub enum Engine {
        /// `Async::new_sinc`, exact polyphase (`Nearest`, 3 phases for 8 → 24 kHz), the same
        /// 40-tap Blackman-Harris filter as the crate's kernel.
        Sinc,
        /// `Fft::new_custom` with 20 ms chunks cut into FFT blocks of `block_ms`; its filter
        /// is its own (Blackman-Harris², cutoff from the block length).
        Fft { block_ms: usize },
    }

    impl Engine {
        pub fn label(self) -> String {
            match self {
                Engine::Sinc => "rubato Async sinc (previous engine)".to_owned(),
                Engine::Fft { block_ms } => format!("rubato Fft, {block_ms} ms blocks"),
            }
        }
    }

    pub struct Reference {
        rubato: Box<dyn rubato::Resampler<f32>>,
        input: Vec<f32>,
        output: Vec<f32>,
    }

    const FRAME_MS: usize = 20;

    impl Reference {
        pub fn new(engine: Engine, from_hz: u32, to_hz: u32) -> Reference {
            let frame = from_hz as usize * FRAME_MS / 1_000;
            let rubato: Box<dyn rubato::Resampler<f32>> = match engine {
                Engine::Sinc => {
                    let lower = from_hz.min(to_hz) as usize;
                    let parameters = SincInterpolationParameters {
                        sinc_len: 40 * from_hz as usize / lower,
                        f_cutoff: Some(0.975),
                        oversampling_factor: (to_hz / gcd(from_hz, to_hz)) as usize,
                        interpolation: SincInterpolationType::Nearest,
                        window: WindowFunction::BlackmanHarris,
                    };
                    let ratio = f64::from(to_hz) / f64::from(from_hz);
                    Box::new(
                        Async::<f32>::new_sinc(
                            ratio,
                            1.0,
                            &parameters,
                            frame,
                            1,
                            FixedAsync::Input,
                        )
                        .unwrap_or_else(|error| panic!("{error}")),
                    )
                }
                Engine::Fft { block_ms } => Box::new(
                    Fft::<f32>::new_custom(
                        from_hz as usize,
                        to_hz as usize,
                        frame,
                        FRAME_MS / block_ms,
                        1,
                        WindowFunction::BlackmanHarris2,
                        FixedSync::Input,
                    )
                    .unwrap_or_else(|error| panic!("{error}")),
                ),
            };
            let output = vec![0.0; rubato.output_frames_max()];
            Reference {
                rubato,
                input: vec![0.0; frame],
                output,
            }
        }

        /// Converts one frame (a shorter last piece is padded with silence).
        pub fn process(&mut self, piece: &[i16], out: &mut Vec<i16>) {
            self.input.fill(0.0);
            for (slot, &sample) in self.input.iter_mut().zip(piece) {
                *slot = f32::from(sample);
            }
            let produced = self.run();
            out.extend(self.output[..produced].iter().map(|&v| v.round() as i16));
        }

        fn run(&mut self) -> usize {
            let (frame, capacity) = (self.input.len(), self.output.len());
            let input = InterleavedSlice::new(&self.input[..], 1, frame)
                .unwrap_or_else(|error| panic!("{error}"));
            let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, capacity)
                .unwrap_or_else(|error| panic!("{error}"));
            let (_, produced) = self
                .rubato
                .process_into_buffer(&input, &mut output, None)
                .unwrap_or_else(|error| panic!("{error}"));
            produced
        }
    }

    /// 8 → 24 kHz: the engine's worst look-ahead (ms) and, from its impulse response, the
    /// passband ripple to 3.4 kHz and the highest stopband gain from 4.6 kHz (dB).
    pub fn describe(engine: Engine) -> (f64, f64, f64) {
        let (from_hz, to_hz) = (8_000u32, 24_000u32);
        let frame = from_hz as usize * FRAME_MS / 1_000;
        let look_ahead_ms = match engine {
            // Measured for the previous engine (docs/benchmarks.md).
            Engine::Sinc => 2.708,
            // An output waits for the end of its FFT block, and the filter delays it by half
            // a block more (`output_delay`): 1.5 blocks for the block's first sample.
            Engine::Fft { block_ms } => 1.5 * block_ms as f64,
        };
        let mut reference = Reference::new(engine, from_hz, to_hz);
        let mut response = Vec::new();
        for index in 0..8 {
            reference.input.fill(0.0);
            if index == 2 {
                reference.input[frame / 2] = 1.0;
            }
            let produced = reference.run();
            response.extend(reference.output[..produced].iter().map(|&v| f64::from(v)));
        }
        let rate = f64::from(to_hz);
        let ripple = (0..=340)
            .map(|step| gain_db(&response, rate, f64::from(step) * 10.0).abs())
            .fold(0.0, f64::max);
        let stopband = (460..=1_200)
            .map(|step| gain_db(&response, rate, f64::from(step) * 10.0))
            .fold(f64::NEG_INFINITY, f64::max);
        (look_ahead_ms, ripple, stopband)
    }

    /// Gain of `taps` (at `rate_hz`) at `freq_hz` relative to 0 Hz, in dB.
    fn gain_db(taps: &[f64], rate_hz: f64, freq_hz: f64) -> f64 {
        let omega = std::f64::consts::TAU * freq_hz / rate_hz;
        let (re, im) = taps
            .iter()
            .enumerate()
            .fold((0.0, 0.0), |(re, im), (n, &tap)| {
                let angle = omega * n as f64;
                (re + tap * angle.cos(), im - tap * angle.sin())
            });
        let dc: f64 = taps.iter().sum();
        20.0 * (re.hypot(im) / dc.abs()).log10()
    }

    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
}
