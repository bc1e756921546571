//! Resource figures from the `/proc` samples: the server's CPU per call-minute and memory per
//! live call, and the load generator's own CPU.
//!
//! - **CPU-s per call-minute** divides the server's CPU time over a window by the calls
//!   streaming in it, integrated over time (trapezoids between samples). The *steady* window
//!   runs from one second after the ramp-up ends to the end of the first call's streaming, when
//!   every call is live and none is being set up or torn down; the *whole run* divides all the
//!   CPU from the first call's start to the last call's end (flow requests, upgrades, call-log
//!   writes included) by the calls' total streaming time.
//! - **RSS per live call** is (peak sampled RSS − RSS just before the first call) / the most
//!   calls live at once.
//! - **Core busy shares** over the steady window show whether the machine itself was saturated.

use std::time::Instant;

use super::proc_stats::{ProcSnapshot, Sample};

/// A time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: Instant,
    pub end: Instant,
}

/// CPU seconds of `process` per minute of live calls over the samples inside `window`.
/// `None` with fewer than two samples in the window, no calls live, or no readings.
pub(crate) fn cpu_per_call_minute(
    samples: &[Sample],
    window: Window,
    process: fn(&Sample) -> Option<ProcSnapshot>,
) -> Option<f64> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.at >= window.start && sample.at <= window.end)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let cpu = process(last)?.cpu_seconds - process(first)?.cpu_seconds;
    let call_minutes = live_call_seconds(&inside) / 60.0;
    (call_minutes > 0.0).then(|| cpu / call_minutes)
}

/// ∫ live calls dt over consecutive samples, in call-seconds.
fn live_call_seconds(samples: &[&Sample]) -> f64 {
    samples
        .windows(2)
        .map(|pair| match pair {
            [earlier, later] => {
                let seconds = later.at.saturating_duration_since(earlier.at).as_secs_f64();
                seconds * (earlier.live_calls + later.live_calls) as f64 / 2.0
            }
            _ => 0.0,
        })
        .sum()
}

/// CPU seconds `process` used between two samples.
pub(crate) fn cpu_between(
    from: &Sample,
    to: &Sample,
    process: fn(&Sample) -> Option<ProcSnapshot>,
) -> Option<f64> {
    Some(process(to)?.cpu_seconds - process(from)?.cpu_seconds)
}

/// CPU use between two samples as a percentage of one core.
pub(crate) fn cpu_percent(
    from: &Sample,
    to: &Sample,
    process: fn(&Sample) -> Option<ProcSnapshot>,
) -> Option<f64> {
    let seconds = to.at.saturating_duration_since(from.at).as_secs_f64();
    let cpu = cpu_between(from, to, process)?;
    (seconds > 0.0).then(|| cpu / seconds * 100.0)
}

/// The server's reading of a sample.
pub(crate) fn server(sample: &Sample) -> Option<ProcSnapshot> {
    sample.server
}

/// The generator's reading of a sample.
pub(crate) fn generator(sample: &Sample) -> Option<ProcSnapshot> {
    sample.generator
}

/// MongoDB's reading of a sample.
pub(crate) fn mongodb(sample: &Sample) -> Option<ProcSnapshot> {
    sample.mongodb
}

/// Each core's busy share (percent) between the first and last samples inside `window`.
pub(crate) fn core_busy_percent(samples: &[Sample], window: Window) -> Vec<(usize, f64)> {
    let mut inside = samples
        .iter()
        .filter(|sample| sample.at >= window.start && sample.at <= window.end);
    let (Some(first), Some(last)) = (inside.next(), inside.next_back()) else {
        return Vec::new();
    };
    last.cores
        .iter()
        .filter_map(|end| {
            let start = first.cores.iter().find(|core| core.cpu == end.cpu)?;
            let total = end.total.checked_sub(start.total)?;
            let busy = end.busy.checked_sub(start.busy)?;
            (total > 0).then(|| (end.cpu, busy as f64 / total as f64 * 100.0))
        })
        .collect()
}

/// Server memory over a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Memory {
    pub baseline_kib: u64,
    pub peak_kib: u64,
    pub peak_live_calls: usize,
    /// `(peak − baseline) / peak live calls`.
    pub per_call_kib: Option<f64>,
}

/// The server's memory figures, from the sample taken just before the first call and all
/// samples of the run.
pub(crate) fn server_memory(baseline: &Sample, samples: &[Sample]) -> Option<Memory> {
    let baseline_kib = baseline.server?.rss_kib;
    let peak_kib = samples
        .iter()
        .filter_map(|sample| sample.server.map(|server| server.rss_kib))
        .max()?
        .max(baseline_kib);
    let peak_live_calls = samples
        .iter()
        .map(|sample| sample.live_calls)
        .max()
        .unwrap_or(0);
    let per_call_kib =
        (peak_live_calls > 0).then(|| (peak_kib - baseline_kib) as f64 / peak_live_calls as f64);
    Some(Memory {
        baseline_kib,
        peak_kib,
        peak_live_calls,
        per_call_kib,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::commands::loadtest::proc_stats::CoreTicks;

    fn sample(base: Instant, second: u64, live: usize, cpu: f64, rss: u64) -> Sample {
        let snapshot = ProcSnapshot {
            cpu_seconds: cpu,
            rss_kib: rss,
            hwm_kib: rss,
        };
        Sample {
            at: base + Duration::from_secs(second),
            live_calls: live,
            server: Some(snapshot),
            generator: Some(snapshot),
            mongodb: None,
            cores: vec![
                CoreTicks {
                    cpu: 0,
                    busy: second * 90,
                    total: second * 100,
                },
                CoreTicks {
                    cpu: 1,
                    busy: second * 25,
                    total: second * 100,
                },
            ],
        }
    }

    #[test]
    fn cpu_per_call_minute_integrates_live_calls_over_the_window() {
        let base = Instant::now();
        // 10 calls live for 60 s (10 call-minutes) using 3 CPU-s: 0.3 CPU-s per call-minute.
        let samples = vec![
            sample(base, 0, 0, 1.0, 100),
            sample(base, 10, 10, 2.0, 200),
            sample(base, 40, 10, 3.5, 200),
            sample(base, 70, 10, 5.0, 210),
            sample(base, 80, 0, 5.5, 150),
        ];
        let window = Window {
            start: base + Duration::from_secs(10),
            end: base + Duration::from_secs(70),
        };
        let figure = cpu_per_call_minute(&samples, window, server).unwrap();
        assert!((figure - 0.3).abs() < 1e-9, "{figure}");
        let empty = Window {
            start: base + Duration::from_secs(100),
            end: base + Duration::from_secs(200),
        };
        assert_eq!(cpu_per_call_minute(&samples, empty, server), None);
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let base = Instant::now();
        let from = sample(base, 0, 0, 1.0, 0);
        let to = sample(base, 2, 0, 2.0, 0);
        assert_eq!(cpu_percent(&from, &to, server), Some(50.0));
        assert_eq!(cpu_percent(&from, &from, server), None);
    }

    #[test]
    fn memory_per_call_is_growth_over_the_most_live_calls() {
        let base = Instant::now();
        let baseline = sample(base, 0, 0, 0.0, 50_000);
        let samples = vec![
            baseline.clone(),
            sample(base, 1, 50, 0.0, 60_000),
            sample(base, 2, 100, 0.0, 70_000),
            sample(base, 3, 0, 0.0, 65_000),
        ];
        let memory = server_memory(&baseline, &samples).unwrap();
        let window = Window {
            start: base,
            end: base + Duration::from_secs(2),
        };
        assert_eq!(
            core_busy_percent(&samples, window),
            vec![(0, 90.0), (1, 25.0)]
        );
        assert_eq!(memory.baseline_kib, 50_000);
        assert_eq!(memory.peak_kib, 70_000);
        assert_eq!(memory.peak_live_calls, 100);
        assert_eq!(memory.per_call_kib, Some(200.0));
        let unknown = Sample {
            server: None,
            ..baseline.clone()
        };
        assert_eq!(server_memory(&unknown, &samples), None);
    }
}
