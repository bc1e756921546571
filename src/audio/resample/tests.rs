//! The resampler's acceptance criteria, measured with synthetic tones: alias and image
//! rejection, passband flatness, delay, continuity across arbitrary pieces, and the edge cases.
//! Each quality test prints what it measured (`cargo test -- --nocapture` to see it).

use std::f64::consts::PI;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::*;
use crate::audio::tone::{level_dbfs, phase_rad, sine};

/// The conversions the bridge performs on every call.
const BRIDGE_PATHS: [(u32, u32); 3] = [(8_000, 24_000), (16_000, 24_000), (24_000, 8_000)];

/// Conversions for WAV files and 16 kHz calls.
const OTHER_PATHS: [(u32, u32); 15] = [
    (24_000, 16_000),
    (8_000, 16_000),
    (16_000, 8_000),
    (44_100, 8_000),
    (44_100, 16_000),
    (44_100, 24_000),
    (48_000, 8_000),
    (48_000, 16_000),
    (48_000, 24_000),
    (22_050, 8_000),
    (22_050, 16_000),
    (22_050, 24_000),
    (11_025, 8_000),
    (11_025, 16_000),
    (11_025, 24_000),
];

/// Required rejection of aliases and images, relative to the tone (the criterion).
const REJECTION_DB: f64 = 70.0;

/// Peak amplitude of the test tones: -0.9 dBFS, loud but clear of clipping.
const LOUD: f64 = 0.9 * 32_767.0;

fn convert(input: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    match resample_all(input, from_hz, to_hz) {
        Ok(output) => output,
        Err(error) => panic!("{from_hz} → {to_hz}: {error}"),
    }
}

fn resampler(from_hz: u32, to_hz: u32) -> Resampler {
    match Resampler::new(from_hz, to_hz) {
        Ok(resampler) => resampler,
        Err(error) => panic!("{from_hz} → {to_hz}: {error}"),
    }
}

/// The part of a one-shot conversion away from its edges (100 ms at each end), where the
/// filter's start-up and run-out transients are over.
fn steady(signal: &[i16], rate_hz: u32) -> &[i16] {
    let edge = rate_hz as usize / 10;
    &signal[edge..signal.len() - edge]
}

/// Half a second of `freq_hz` at -0.9 dBFS.
fn loud_tone(freq_hz: f64, rate_hz: u32) -> Vec<i16> {
    sine(freq_hz, rate_hz, rate_hz as usize / 2, LOUD)
}

/// Converts a loud tone and returns (tone level in, then each `unwanted` frequency's level
/// below it in the output), in dB.
fn rejection(from_hz: u32, to_hz: u32, tone_hz: f64, unwanted_hz: &[f64]) -> (f64, Vec<f64>) {
    let input = loud_tone(tone_hz, from_hz);
    let level_in = level_dbfs(steady(&input, from_hz), tone_hz, from_hz);
    let output = convert(&input, from_hz, to_hz);
    let output = steady(&output, to_hz);
    let rejections = unwanted_hz
        .iter()
        .map(|&freq| level_in - level_dbfs(output, freq, to_hz))
        .collect();
    (level_in, rejections)
}

fn assert_rejected(from_hz: u32, to_hz: u32, tone_hz: f64, unwanted_hz: &[f64]) {
    let (_, rejections) = rejection(from_hz, to_hz, tone_hz, unwanted_hz);
    for (freq, rejection) in unwanted_hz.iter().zip(&rejections) {
        if *rejection > 200.0 {
            // Below half a bit: every output sample rounded to 0.
            println!("{from_hz} → {to_hz}: {tone_hz} Hz tone, at {freq} Hz: digital silence");
        } else {
            println!("{from_hz} → {to_hz}: {tone_hz} Hz tone, at {freq} Hz: -{rejection:.1} dB");
        }
        assert!(
            *rejection >= REJECTION_DB,
            "{from_hz} → {to_hz}: a {tone_hz} Hz tone leaves {freq} Hz only {rejection:.1} dB down"
        );
    }
}

/// Tones, some noise and a few steps: content in every band and at every filter phase.
fn busy_signal(rate_hz: u32, samples: usize) -> Vec<i16> {
    let mut rng = StdRng::seed_from_u64(11);
    let rate = f64::from(rate_hz);
    (0..samples)
        .map(|n| {
            let t = n as f64 / rate;
            let tones = 7_000.0 * (2.0 * PI * 440.0 * t).sin()
                + 5_000.0 * (2.0 * PI * 1_700.0 * t).sin()
                + 3_000.0 * (2.0 * PI * 3_100.0 * t).sin();
            let step = if (n / 997) % 2 == 0 {
                2_000.0
            } else {
                -2_000.0
            };
            let noise = rng.random_range(-4_000.0..4_000.0);
            (tones + step + noise).round() as i16
        })
        .collect()
}

/// Feeds `input` in pieces of the given sizes (cycled), then flushes.
fn streamed(from_hz: u32, to_hz: u32, input: &[i16], sizes: &mut dyn FnMut() -> usize) -> Vec<i16> {
    let mut resampler = resampler(from_hz, to_hz);
    let mut output = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(sizes().min(rest.len()));
        resampler.process(piece, &mut output);
        rest = tail;
    }
    resampler.flush(&mut output);
    output
}

fn max_difference(a: &[i16], b: &[i16]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (i32::from(x) - i32::from(y)).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn downsampling_24k_to_8k_rejects_aliases_by_70_db() {
    // 5, 6 and 9 kHz would fold to 3, 2 and 1 kHz; 4.6 kHz is the edge of the stopband.
    for (tone, alias) in [
        (5_000.0, 3_000.0),
        (6_000.0, 2_000.0),
        (9_000.0, 1_000.0),
        (4_600.0, 3_400.0),
    ] {
        assert_rejected(24_000, 8_000, tone, &[alias]);
    }
}

#[test]
fn upsampling_8k_to_24k_rejects_images_by_70_db() {
    // A tone at f leaves images at 8k - f and 8k + f (and 16k ± f, beyond 12 kHz).
    assert_rejected(8_000, 24_000, 1_000.0, &[7_000.0, 9_000.0]);
    assert_rejected(8_000, 24_000, 3_000.0, &[5_000.0, 11_000.0]);
    assert_rejected(8_000, 24_000, 3_400.0, &[4_600.0, 11_400.0]);
}

#[test]
fn upsampling_16k_to_24k_rejects_images_by_70_db() {
    // Images at 16k ± f and 32k ± f, folded into 0–12 kHz by the 24 kHz output.
    assert_rejected(16_000, 24_000, 1_000.0, &[7_000.0, 9_000.0]);
    assert_rejected(16_000, 24_000, 6_000.0, &[10_000.0, 2_000.0]);
    assert_rejected(16_000, 24_000, 6_800.0, &[9_200.0, 1_200.0]);
}

#[test]
fn downsampling_24k_to_16k_rejects_aliases_by_70_db() {
    for (tone, alias) in [(10_000.0, 6_000.0), (11_000.0, 5_000.0), (9_200.0, 6_800.0)] {
        assert_rejected(24_000, 16_000, tone, &[alias]);
    }
}

/// Level change of a tone through `from → to → from`, in dB.
fn round_trip_gain(freq_hz: f64, from_hz: u32, via_hz: u32) -> f64 {
    let input = sine(freq_hz, from_hz, from_hz as usize / 2, 16_384.0);
    let output = convert(&convert(&input, from_hz, via_hz), via_hz, from_hz);
    assert_eq!(output.len(), input.len());
    level_dbfs(steady(&output, from_hz), freq_hz, from_hz)
        - level_dbfs(steady(&input, from_hz), freq_hz, from_hz)
}

#[test]
fn round_trip_8k_24k_8k_is_flat_within_half_a_db_from_100_hz_to_3400_hz() {
    let mut worst: f64 = 0.0;
    for freq in (1..=34).map(|step| f64::from(step) * 100.0) {
        let gain = round_trip_gain(freq, 8_000, 24_000);
        worst = worst.max(gain.abs());
        assert!(gain.abs() <= 0.5, "{freq} Hz: {gain:+.3} dB");
    }
    println!("8000 → 24000 → 8000: worst gain 100–3400 Hz ±{worst:.3} dB");
}

#[test]
fn round_trip_16k_24k_16k_is_flat_within_half_a_db_from_100_hz_to_6800_hz() {
    let mut worst: f64 = 0.0;
    for freq in (1..=34).map(|step| f64::from(step) * 200.0) {
        let gain = round_trip_gain(freq, 16_000, 24_000);
        worst = worst.max(gain.abs());
        assert!(gain.abs() <= 0.5, "{freq} Hz: {gain:+.3} dB");
    }
    println!("16000 → 24000 → 16000: worst gain 200–6800 Hz ±{worst:.3} dB");
}

/// Delay of `output` (at `to_hz`) against `input` (at `from_hz`), both starting at time 0, from
/// the phase of `freq_hz` in each, in seconds (positive: the output lags).
fn tone_delay(input: &[i16], from_hz: u32, output: &[i16], to_hz: u32, freq_hz: f64) -> f64 {
    // Compare the same stretch of time: 100 ms to 400 ms.
    let window = |signal: &[i16], rate: u32| -> (usize, Vec<i16>) {
        let start = rate as usize / 10;
        (start, signal[start..start + 3 * start].to_vec())
    };
    let (start_in, piece_in) = window(input, from_hz);
    let (start_out, piece_out) = window(output, to_hz);
    // Phase of each at time 0: measured phase at the window start minus the tone's advance.
    let at_zero = |phase: f64, start: usize, rate: u32| {
        phase - 2.0 * PI * freq_hz * start as f64 / f64::from(rate)
    };
    let lag = at_zero(phase_rad(&piece_in, freq_hz, from_hz), start_in, from_hz)
        - at_zero(phase_rad(&piece_out, freq_hz, to_hz), start_out, to_hz);
    let wrapped = (lag + PI).rem_euclid(2.0 * PI) - PI;
    wrapped / (2.0 * PI * freq_hz)
}

#[test]
fn one_shot_output_lines_up_with_its_input() {
    for (from_hz, to_hz) in BRIDGE_PATHS.iter().chain(&OTHER_PATHS) {
        let (from_hz, to_hz) = (*from_hz, *to_hz);
        let input = sine(1_000.0, from_hz, from_hz as usize / 2, 16_384.0);
        let output = convert(&input, from_hz, to_hz);
        let offset = tone_delay(&input, from_hz, &output, to_hz, 1_000.0);
        // Exactly aligned, or within half an output sample where the filter's centre falls
        // between two output samples.
        let tolerance = 0.5 / f64::from(to_hz) + 1e-6;
        println!("{from_hz} → {to_hz}: output offset {:+.2} µs", offset * 1e6);
        assert!(offset.abs() <= tolerance, "{from_hz} → {to_hz}: {offset} s");
    }
}

#[test]
fn streaming_delay_is_at_most_5_ms_and_what_delay_ms_reports() {
    for (from_hz, to_hz) in BRIDGE_PATHS.into_iter().chain(OTHER_PATHS) {
        let mut resampler = resampler(from_hz, to_hz);
        let input = busy_signal(from_hz, from_hz as usize / 4);
        let mut output = Vec::new();
        // Feed one sample at a time and note when each output sample appears: output sample k
        // is the signal at time k / to (the previous test), released once input sample c
        // (time c / from) has arrived.
        let mut worst_s: f64 = 0.0;
        for (arrived, sample) in input.iter().enumerate() {
            let before = output.len();
            resampler.process(std::slice::from_ref(sample), &mut output);
            for released in before..output.len() {
                let latency =
                    arrived as f64 / f64::from(from_hz) - released as f64 / f64::from(to_hz);
                worst_s = worst_s.max(latency);
            }
        }
        let measured_ms = worst_s * 1e3;
        let reported_ms = resampler.delay_ms();
        println!(
            "{from_hz} → {to_hz}: delay measured {measured_ms:.3} ms, reported {reported_ms:.3} ms"
        );
        assert!(measured_ms <= 5.0, "{from_hz} → {to_hz}: {measured_ms} ms");
        // The reported delay is a bound, and tight: within one input sample of the worst seen.
        let input_sample_ms = 1e3 / f64::from(from_hz);
        assert!(
            measured_ms <= reported_ms + 1e-9 && reported_ms - measured_ms <= input_sample_ms,
            "{from_hz} → {to_hz}: measured {measured_ms} ms, reported {reported_ms} ms"
        );
    }
}

#[test]
fn any_piece_sizes_give_exactly_the_one_shot_output() {
    let mut rng = StdRng::seed_from_u64(5);
    for (from_hz, to_hz) in BRIDGE_PATHS
        .into_iter()
        .chain([(24_000, 16_000), (44_100, 16_000)])
    {
        // 2.4 s and a bit, so that no piece size divides it.
        let input = busy_signal(from_hz, from_hz as usize * 12 / 5 + 123);
        let reference = convert(&input, from_hz, to_hz);
        let frame = from_hz as usize / 50;
        let cases: [(&str, &mut dyn FnMut() -> usize); 5] = [
            ("20 ms frames", &mut || frame),
            ("9600 samples", &mut || 9_600),
            ("7 samples", &mut || 7),
            ("1 sample", &mut || 1),
            ("random 0–700 samples", &mut || rng.random_range(0..=700)),
        ];
        for (name, sizes) in cases {
            let output = streamed(from_hz, to_hz, &input, sizes);
            assert_eq!(output.len(), reference.len(), "{from_hz} → {to_hz}, {name}");
            // Every output sample sees the same inputs and filter phase however the input was
            // cut, so the result is identical to the bit (the issue allows 1–2 LSB).
            let difference = max_difference(&output, &reference);
            assert_eq!(difference, 0, "{from_hz} → {to_hz}, {name}");
        }
    }
}

#[test]
fn a_tone_fed_in_tiny_pieces_has_no_clicks() {
    for (from_hz, to_hz) in BRIDGE_PATHS {
        let amplitude = 20_000.0;
        let input = sine(1_000.0, from_hz, from_hz as usize / 4, amplitude);
        let output = streamed(from_hz, to_hz, &input, &mut || 7);
        // A 1 kHz sine changes by at most amplitude × 2π × 1000 / rate between two samples; a
        // glitch at a piece boundary would jump further. The tone's abrupt start and end ring
        // (as they would in one piece): skip 10 ms at each end.
        let largest_step = 1.01 * amplitude * 2.0 * PI * 1_000.0 / f64::from(to_hz) + 2.0;
        let edge = to_hz as usize / 100;
        let middle = &output[edge..output.len() - edge];
        for (k, pair) in middle.windows(2).enumerate() {
            let step = f64::from((i32::from(pair[1]) - i32::from(pair[0])).abs());
            assert!(
                step <= largest_step,
                "{from_hz} → {to_hz}: jump of {step} at {k}"
            );
        }
    }
}

#[test]
fn a_flushed_stream_is_round_input_times_to_over_from_long() {
    for (from_hz, to_hz) in BRIDGE_PATHS.iter().chain(&OTHER_PATHS) {
        let (from_hz, to_hz) = (*from_hz, *to_hz);
        for length in [0usize, 1, 2, 7, 160, 441, 9_601] {
            let input = busy_signal(from_hz, length);
            let expected = (length as f64 * f64::from(to_hz) / f64::from(from_hz)).round();
            let output = convert(&input, from_hz, to_hz);
            assert_eq!(
                output.len() as f64,
                expected,
                "{from_hz} → {to_hz}, {length} samples"
            );
            let output = streamed(from_hz, to_hz, &input, &mut || 3);
            assert_eq!(
                output.len() as f64,
                expected,
                "{from_hz} → {to_hz}, {length} in 3s"
            );
        }
    }
}

#[test]
fn empty_input_produces_nothing_and_changes_nothing() {
    let mut resampler = resampler(8_000, 24_000);
    let mut output = Vec::new();
    resampler.process(&[], &mut output);
    resampler.flush(&mut output);
    assert!(output.is_empty());

    let input = busy_signal(8_000, 800);
    resampler.process(&input[..400], &mut output);
    resampler.process(&[], &mut output);
    resampler.process(&input[400..], &mut output);
    resampler.process(&[], &mut output);
    resampler.flush(&mut output);
    assert_eq!(output, convert(&input, 8_000, 24_000));
}

#[test]
fn after_flush_the_next_stream_starts_afresh() {
    for (from_hz, to_hz) in BRIDGE_PATHS {
        let first = busy_signal(from_hz, 1_000);
        let second = sine(700.0, from_hz, 1_500, 12_000.0);
        let mut resampler = resampler(from_hz, to_hz);
        let mut output = Vec::new();
        resampler.process(&first, &mut output);
        resampler.flush(&mut output);
        resampler.process(&second, &mut output);
        resampler.flush(&mut output);
        let mut expected = convert(&first, from_hz, to_hz);
        expected.extend(convert(&second, from_hz, to_hz));
        assert_eq!(output, expected, "{from_hz} → {to_hz}");
    }
}

#[test]
fn reset_forgets_the_audio_before_it() {
    for (from_hz, to_hz) in BRIDGE_PATHS {
        let dropped = busy_signal(from_hz, 777);
        let kept = sine(700.0, from_hz, 1_500, 12_000.0);
        let mut resampler = resampler(from_hz, to_hz);
        let mut discarded = Vec::new();
        resampler.process(&dropped, &mut discarded);
        assert!(!discarded.is_empty());
        resampler.reset();
        let mut output = Vec::new();
        resampler.process(&kept, &mut output);
        resampler.flush(&mut output);
        assert_eq!(
            output,
            convert(&kept, from_hz, to_hz),
            "{from_hz} → {to_hz}"
        );
    }
}

#[test]
fn full_scale_input_clips_instead_of_wrapping() {
    for (from_hz, to_hz) in BRIDGE_PATHS {
        // A full-scale 250 Hz square wave: filtering makes it ring about 9 % past full scale.
        let half_period = from_hz as usize / 500;
        let input: Vec<i16> = (0..from_hz as usize / 2)
            .map(|n| {
                if (n / half_period) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let output = convert(&input, from_hz, to_hz);
        assert!(output.contains(&i16::MAX) && output.contains(&i16::MIN));
        // Away from the edges (2 ms), every output sample keeps the sign and most of the
        // magnitude of the input around it; a wrapped overshoot would flip sign.
        let margin = from_hz as usize / 500;
        for (k, &value) in output.iter().enumerate() {
            let position = k * from_hz as usize / to_hz as usize;
            // The first and last 2 ms ramp from and to the silence around the stream.
            let Some(start) = position.checked_sub(margin) else {
                continue;
            };
            let Some(around) = input.get(start..position + margin) else {
                continue;
            };
            if around.iter().all(|&x| x == i16::MAX) {
                assert!(value > 30_000, "{from_hz} → {to_hz}: {value} at {k}");
            }
            if around.iter().all(|&x| x == i16::MIN) {
                assert!(value < -30_000, "{from_hz} → {to_hz}: {value} at {k}");
            }
        }
    }
}

#[test]
fn wav_rates_keep_in_band_tones_and_reject_the_rest() {
    for (from_hz, to_hz) in OTHER_PATHS {
        // In band: 1 kHz keeps its level.
        let (level_in, _) = rejection(from_hz, to_hz, 1_000.0, &[]);
        let output = convert(&loud_tone(1_000.0, from_hz), from_hz, to_hz);
        let gain = level_dbfs(steady(&output, to_hz), 1_000.0, to_hz) - level_in;
        assert!(
            gain.abs() < 0.1,
            "{from_hz} → {to_hz}: {gain:+.3} dB at 1 kHz"
        );
        // Out of band: a tone above the lower rate's stopband edge folds or images into the
        // output band only 70 dB down or more.
        if from_hz > to_hz {
            let tone = 0.65 * f64::from(to_hz);
            assert_rejected(from_hz, to_hz, tone, &[f64::from(to_hz) - tone]);
        } else {
            // The image at from - 1 kHz, folded into the output band if beyond its Nyquist.
            let image = f64::from(from_hz) - 1_000.0;
            let image = if image > f64::from(to_hz) / 2.0 {
                f64::from(to_hz) - image
            } else {
                image
            };
            assert_rejected(from_hz, to_hz, 1_000.0, &[image]);
        }
    }
}

#[test]
fn the_bridge_paths_use_the_block_kernel_and_wav_rates_a_table() {
    for (from_hz, to_hz) in BRIDGE_PATHS {
        let stream = Stream::new(from_hz, to_hz);
        assert!(
            matches!(stream.path, Path::Blocks(_)),
            "{from_hz} → {to_hz}"
        );
    }
    for (from_hz, to_hz) in OTHER_PATHS {
        assert!(
            tables(from_hz, to_hz).filter.is_tabulated(),
            "{from_hz} → {to_hz}"
        );
    }
    // A ratio with a large denominator computes each output's coefficients instead.
    assert!(!tables(8_000, 7_999).filter.is_tabulated());
    let output = convert(&loud_tone(1_000.0, 8_000), 8_000, 7_999);
    let gain = level_dbfs(steady(&output, 7_999), 1_000.0, 7_999)
        - level_dbfs(steady(&loud_tone(1_000.0, 8_000), 8_000), 1_000.0, 8_000);
    assert!(gain.abs() < 0.1, "{gain}");
}

#[test]
fn the_block_kernel_matches_the_filter_table_one_output_at_a_time() {
    // The SIMD kernel and the plain dot product compute the same sums (in another order, and
    // fused or not), so they agree to within rounding of the last bit of a 16-bit sample.
    for (from_hz, to_hz) in BRIDGE_PATHS
        .into_iter()
        .chain([(24_000, 16_000), (8_000, 16_000)])
    {
        let input = busy_signal(from_hz, from_hz as usize / 2 + 17);
        let mut by_blocks = Stream::new(from_hz, to_hz);
        assert!(
            matches!(by_blocks.path, Path::Blocks(_)),
            "{from_hz} → {to_hz}"
        );
        let mut one_by_one = Stream::new(from_hz, to_hz);
        one_by_one.path = Path::OneByOne;
        let (mut expected, mut output) = (Vec::new(), Vec::new());
        one_by_one.process(&input, &mut expected);
        one_by_one.flush(from_hz, to_hz, &mut expected);
        by_blocks.process(&input, &mut output);
        by_blocks.flush(from_hz, to_hz, &mut output);
        assert_eq!(output.len(), expected.len(), "{from_hz} → {to_hz}");
        let difference = max_difference(&output, &expected);
        assert!(difference <= 1, "{from_hz} → {to_hz}: {difference}");
    }
}

#[test]
fn equal_rates_pass_audio_through_untouched() {
    let input = busy_signal(16_000, 1_234);
    let mut resampler = resampler(16_000, 16_000);
    assert_eq!(resampler.delay_ms(), 0.0);
    let mut output = Vec::new();
    resampler.process(&input, &mut output);
    resampler.flush(&mut output);
    assert_eq!(output, input);
}

#[test]
fn unsupported_rates_are_refused() {
    for (from_hz, to_hz) in [(0, 8_000), (8_000, 0), (3_999, 8_000), (8_000, 400_000)] {
        match Resampler::new(from_hz, to_hz) {
            Err(ResampleError::UnsupportedRate { from, to }) => {
                assert_eq!((from, to), (from_hz, to_hz));
            }
            other => panic!("{from_hz} → {to_hz}: {other:?}"),
        }
    }
    let message = Resampler::new(8_000, 0)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(message.contains("8000 Hz → 0 Hz"), "{message}");
}

#[test]
fn accessors_report_the_rates_and_a_resampler_can_move_between_tasks() {
    fn assert_send<T: Send>(_: &T) {}
    let resampler = resampler(24_000, 8_000);
    assert_send(&resampler);
    assert_eq!(
        (resampler.input_hz(), resampler.output_hz()),
        (24_000, 8_000)
    );
}

/// The filter as the resampler applies it, without the 16-bit rounding: every phase's
/// coefficients placed at their distance from the output's position, which samples the
/// prototype at `from × up` (every phase of the polyphase filter).
fn impulse_response(from_hz: u32, to_hz: u32) -> (Vec<f64>, f64) {
    let filter = Arc::clone(&tables(from_hz, to_hz).filter);
    let up = filter.up as i64;
    let mut taps: Vec<(i64, f64)> = Vec::new();
    for output in 0..filter.up as u64 {
        let (first, phase) = filter.first_tap(output);
        let Some(row) = filter.row(phase) else {
            panic!("{from_hz} → {to_hz} has no table");
        };
        // Tap j reads input first + j, at distance first + j - output × down / up from the
        // output's position: in units of 1 / up, (first + j) × up - output × down.
        let position = output as i64 * filter.down as i64;
        for (tap, &value) in row.iter().enumerate() {
            taps.push(((first + tap as i64) * up - position, f64::from(value)));
        }
    }
    taps.sort_by_key(|&(distance, _)| distance);
    taps.dedup_by_key(|&mut (distance, _)| distance);
    assert_eq!(taps.len(), filter.up * filter.taps, "{from_hz} → {to_hz}");
    let rate = f64::from(from_hz) * filter.up as f64;
    (taps.into_iter().map(|(_, value)| value).collect(), rate)
}

/// Gain of the filter `taps` (at `rate_hz`) at `freq_hz`, relative to its gain at 0 Hz, in dB.
fn gain_db(taps: &[f64], rate_hz: f64, freq_hz: f64) -> f64 {
    let omega = 2.0 * PI * freq_hz / rate_hz;
    let (re, im) = taps
        .iter()
        .enumerate()
        .fold((0.0, 0.0), |(re, im), (n, &tap)| {
            (
                re + tap * (omega * n as f64).cos(),
                im - tap * (omega * n as f64).sin(),
            )
        });
    let dc: f64 = taps.iter().sum();
    20.0 * (re.hypot(im) / dc.abs()).log10()
}

#[test]
fn the_filter_is_flat_to_0_425_and_stops_from_0_575_of_the_lower_rate() {
    for (from_hz, to_hz) in BRIDGE_PATHS.into_iter().chain([(24_000, 16_000)]) {
        let (taps, rate) = impulse_response(from_hz, to_hz);
        let lower = f64::from(from_hz.min(to_hz));
        let sweep = |from: f64, to: f64| {
            let steps = ((to - from) / 10.0) as usize;
            (0..=steps).map(move |i| from + (to - from) * i as f64 / steps as f64)
        };
        let ripple = sweep(0.0, 0.425 * lower)
            .map(|freq| gain_db(&taps, rate, freq).abs())
            .fold(0.0, f64::max);
        let stop = |edge: f64| {
            sweep(edge * lower, rate / 2.0)
                .map(|freq| gain_db(&taps, rate, freq))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let (stop_575, stop_625) = (stop(0.575), stop(0.625));
        println!(
            "{from_hz} → {to_hz}: {} taps at {rate} Hz; passband ±{ripple:.3} dB to {} Hz; \
             stopband {stop_575:.1} dB from {} Hz, {stop_625:.1} dB from {} Hz",
            taps.len(),
            0.425 * lower,
            0.575 * lower,
            0.625 * lower
        );
        assert!(ripple <= 0.1, "{from_hz} → {to_hz}: ripple {ripple} dB");
        assert!(stop_575 <= -79.0, "{from_hz} → {to_hz}: {stop_575} dB");
        assert!(stop_625 <= -100.0, "{from_hz} → {to_hz}: {stop_625} dB");
    }
}
