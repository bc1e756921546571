//! Turns what a run produced (the calls' outcomes, the fake AI's sessions and the `/proc`
//! samples) into the [`Report`].
//!
//! Each call's session at the fake (OpenAI or ElevenLabs) is found by its instructions
//! (`loadtest call <i>`, see [`FakeSession::instructions`]); the latency matching itself is in
//! [`super::latency`], pacing in [`super::pacing`], the resource arithmetic in
//! [`super::usage`] and the comparison with the server's own metrics in
//! [`super::metrics_check`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::accounts::instructions_for;
use super::backend::FakeSession;
use super::call::CallOutcome;
use super::latency::{Geometry, LatencyTally, distribution, round_ms};
use super::metrics_check::{self, ServerMetrics};
use super::pacing::{SEND_LAG_WARN_MS, outbound_stalls, send_lags_ms, stall_threshold};
use super::proc_stats::{ProcSnapshot, Sample};
use super::report::{
    CallsReport, ConfigReport, CoreBusy, CpuPerCallMinute, DurationsReport, FailureCount,
    GeneratorReport, LatencyReport, MachineReport, MongodbReport, PacingReport, Report,
    ServerReport, ViolationsReport,
};
use super::usage::{self, Window};

/// How many of the fake AI's violations are quoted in the report.
const FAKE_VIOLATION_EXAMPLES: usize = 5;

/// A core busier than this in the steady window means the machine was saturated.
const SATURATED_CORE_PERCENT: f64 = 90.0;

/// What the latency section says it measured.
pub(crate) const LATENCY_METHOD: &str = "inbound: caller send → the fake AI's receipt (OpenAI \
    append, ElevenLabs user_audio_chunk); outbound: the fake's delta or audio event that \
    completed a chunk → the caller's receipt (the bridge's outbound chunk accumulation is \
    excluded by construction)";

/// Everything the report is made from.
pub(crate) struct RunFacts<'a> {
    pub run_id: &'a str,
    pub config: ConfigReport,
    /// The rate the fake counts the caller's audio in (24 kHz `audio/pcm`, 8 kHz
    /// `audio/pcmu`; the agent's input rate for ElevenLabs).
    pub fake_input_rate_hz: u32,
    /// The rate the fake counts its own audio in (as above; the agent's output rate).
    pub fake_output_rate_hz: u32,
    pub outcomes: &'a [CallOutcome],
    pub sessions: &'a [FakeSession],
    pub fake_violations: &'a [String],
    /// Every sample, in time order; `baseline` was taken just before the first call.
    pub samples: &'a [Sample],
    pub baseline: Sample,
    /// When the first call was due to start.
    pub calls_started: Instant,
    pub calls_ended: Instant,
    pub server_pid: Option<u32>,
    pub server_cores: Option<String>,
    pub server_log_file: Option<String>,
    pub server_database: Option<String>,
    pub generator_cores: Option<String>,
    pub mongodb_pid: Option<u32>,
    pub provisioning: Duration,
    pub total: Duration,
    /// The server's `/metrics` before, during and after the calls.
    pub metrics: &'a ServerMetrics,
    /// Warnings found before the run (open-files limit, …).
    pub warnings: Vec<String>,
}

/// Builds the report.
pub(crate) fn build(facts: RunFacts<'_>) -> Report {
    let mut warnings = facts.warnings.clone();
    let calls = calls_report(facts.outcomes);
    let (latency, sessions_missing) = latency_report(&facts);
    let (violations_counts, send_lag) = pacing_and_violations(&facts);
    let steady = steady_window(&facts);
    let server = server_report(&facts, steady);
    let generator = generator_report(&facts, send_lag);
    let mongodb = mongodb_report(&facts, steady);
    let machine = MachineReport {
        cores_busy_percent: steady
            .map(|window| usage::core_busy_percent(facts.samples, window))
            .unwrap_or_default()
            .into_iter()
            .map(|(cpu, busy)| CoreBusy {
                cpu,
                busy_percent: (busy * 10.0).round() / 10.0,
            })
            .collect(),
    };
    let saturated: Vec<String> = machine
        .cores_busy_percent
        .iter()
        .filter(|core| core.busy_percent > SATURATED_CORE_PERCENT)
        .map(|core| format!("cpu{} {:.0}%", core.cpu, core.busy_percent))
        .collect();
    if !saturated.is_empty() {
        warnings.push(format!(
            "cores were saturated in the steady window ({}): the server, the generator, MongoDB \
             and the kernel competed for CPU, so latency and CPU figures include that contention",
            saturated.join(", ")
        ));
    }

    if let Some(p99) = generator.send_lag_p99_ms
        && p99 > SEND_LAG_WARN_MS
    {
        warnings.push(format!(
            "the load generator fell behind (send lag p99 {p99:.1} ms > {SEND_LAG_WARN_MS} ms): \
             the latency figures are not trustworthy"
        ));
    }
    if let Some(percent) = generator.cpu_percent
        && percent > 90.0
    {
        warnings.push(format!(
            "the load generator used {percent:.0}% of its cores: it may have been the bottleneck"
        ));
    }
    for (direction, figures) in [
        ("inbound", &latency.inbound_ms),
        ("outbound", &latency.outbound_ms),
    ] {
        if figures.unmatched > 0 || figures.negative > 0 {
            warnings.push(format!(
                "{direction}: {} chunks unmatched and {} negative (both should be 0)",
                figures.unmatched, figures.negative
            ));
        }
    }
    if facts.server_pid.is_none() {
        warnings.push("no server PID: server CPU and memory are not measured".to_owned());
    } else if server.cpu_s_per_call_minute.steady.is_none() {
        warnings.push(
            "no steady window (every call live, none ending): make --duration-secs exceed \
             --ramp-up-secs by more than 2 s"
                .to_owned(),
        );
    }
    let (metrics_check, metrics_mismatch) =
        metrics_check::build(facts.metrics, facts.outcomes, facts.sessions);
    if metrics_mismatch > 0 {
        warnings.push(format!(
            "the server's /metrics disagrees with the generator ({metrics_mismatch} \
             mismatches): see metrics_check"
        ));
    }
    let fake_ai_examples = facts
        .fake_violations
        .iter()
        .take(FAKE_VIOLATION_EXAMPLES)
        .cloned()
        .collect();
    Report {
        run_id: facts.run_id.to_owned(),
        config: facts.config.clone(),
        calls,
        latency,
        violations: ViolationsReport {
            sessions_missing,
            fake_ai: facts.fake_violations.len() as u64,
            fake_ai_examples,
            metrics_mismatch,
            ..violations_counts
        },
        server,
        generator,
        mongodb,
        machine,
        durations: DurationsReport {
            provisioning_secs: round_ms(facts.provisioning.as_secs_f64()),
            calls_secs: round_ms(
                facts
                    .calls_ended
                    .saturating_duration_since(facts.calls_started)
                    .as_secs_f64(),
            ),
            total_secs: round_ms(facts.total.as_secs_f64()),
        },
        metrics_check,
        warnings,
    }
}

fn calls_report(outcomes: &[CallOutcome]) -> CallsReport {
    let mut failures: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for failure in outcomes
        .iter()
        .filter_map(|outcome| outcome.failure.as_ref())
    {
        failures
            .entry(failure.reason.as_str())
            .or_insert((0, failure.detail.as_str()))
            .0 += 1;
    }
    let mut failures: Vec<FailureCount> = failures
        .into_iter()
        .map(|(reason, (count, example))| FailureCount {
            reason: reason.to_owned(),
            count,
            example: example.to_owned(),
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    let failed = failures.iter().map(|failure| failure.count).sum();
    CallsReport {
        attempted: outcomes.len(),
        ok: outcomes.len() - failed,
        failed,
        failures,
    }
}

/// Both directions' latencies, and how many calls had no session at the fake.
fn latency_report(facts: &RunFacts<'_>) -> (LatencyReport, u64) {
    let sessions: HashMap<&str, &FakeSession> = facts
        .sessions
        .iter()
        .filter_map(|session| Some((session.instructions.as_deref()?, session)))
        .collect();
    let outbound = Geometry::outbound(facts.fake_output_rate_hz);
    let inbound_rate = facts.config.inbound_rate_hz;
    let inbound = Geometry::inbound(inbound_rate, facts.fake_input_rate_hz);
    let mut inbound_tally = LatencyTally::default();
    let mut outbound_tally = LatencyTally::default();
    let mut missing = 0;
    for outcome in facts.outcomes {
        let instructions = instructions_for(outcome.index);
        let Some(session) = sessions.get(instructions.as_str()) else {
            if !outcome.send_timings.is_empty() {
                missing += 1;
            }
            inbound_tally.unmatched += outcome.send_timings.len() as u64;
            outbound_tally.unmatched += outcome.receive_timings.len() as u64;
            continue;
        };
        let geometry = if outcome.inbound_rate_hz == inbound_rate || outcome.inbound_rate_hz == 0 {
            inbound
        } else {
            Geometry::inbound(outcome.inbound_rate_hz, facts.fake_input_rate_hz)
        };
        super::latency::match_inbound(
            &outcome.send_timings,
            &session.append_timings,
            geometry,
            &mut inbound_tally,
        );
        super::latency::match_outbound(
            &outcome.receive_timings,
            &session.delta_timings,
            outbound,
            &mut outbound_tally,
        );
    }
    let report = LatencyReport {
        inbound_ms: distribution(inbound_tally),
        outbound_ms: distribution(outbound_tally),
        inbound_lookahead_ms: round_ms(inbound.lookahead_ms()),
        outbound_lookahead_ms: round_ms(outbound.lookahead_ms()),
        method: LATENCY_METHOD.to_owned(),
    };
    (report, missing)
}

/// The largest chunk the server sends: an answer's first chunk is the assistant's
/// `outbound_chunk_ms`, later ones grow to `bridge.playback_chunk_ms`, read as the server the
/// load generator starts reads it (the environment, else the default).
fn largest_chunk_ms(outbound_chunk_ms: u32) -> u32 {
    let playback = std::env::var("VOXBRIDGE__BRIDGE__PLAYBACK_CHUNK_MS")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| crate::settings::BridgeSettings::default().playback_chunk_ms);
    outbound_chunk_ms.max(playback)
}

/// Caller-side violation counts and every send lag.
fn pacing_and_violations(facts: &RunFacts<'_>) -> (ViolationsReport, LatencyTally) {
    let threshold = stall_threshold(largest_chunk_ms(facts.config.outbound_chunk_ms));
    let mut lags = LatencyTally::default();
    let mut stalls = 0;
    let mut chunk_id = 0;
    let mut caller_other = 0;
    for outcome in facts.outcomes {
        let rate = if outcome.inbound_rate_hz == 0 {
            facts.config.inbound_rate_hz
        } else {
            outcome.inbound_rate_hz
        };
        send_lags_ms(&outcome.send_timings, rate, &mut lags.millis);
        if let Some(last_send) = outcome.last_send_at() {
            stalls += outbound_stalls(&outcome.receive_timings, threshold, last_send);
        }
        for violation in &outcome.violations {
            if violation.contains("chunk_id") {
                chunk_id += 1;
            } else {
                caller_other += 1;
            }
        }
    }
    let late_sends = lags
        .millis
        .iter()
        .filter(|lag| **lag > SEND_LAG_WARN_MS)
        .count() as u64;
    let report = ViolationsReport {
        chunk_id,
        caller_other,
        pacing: PacingReport {
            late_sends,
            outbound_stalls: stalls,
        },
        fake_ai: 0,
        fake_ai_examples: Vec::new(),
        sessions_missing: 0,
        metrics_mismatch: 0,
    };
    (report, lags)
}

/// From one second after the ramp-up to the end of the first call's streaming: every call is
/// live and none is being set up or torn down. `None` when the run is too short for one.
fn steady_window(facts: &RunFacts<'_>) -> Option<Window> {
    let ramp_up = Duration::from_secs_f64(facts.config.ramp_up_secs.max(0.0));
    let window = Window {
        start: facts.calls_started + ramp_up + Duration::from_secs(1),
        end: facts.calls_started + Duration::from_secs(facts.config.duration_secs),
    };
    (window.end > window.start).then_some(window)
}

/// A process's CPU during the calls, and per call-minute in the steady window and over the
/// whole run.
fn cpu_per_call_minute(
    facts: &RunFacts<'_>,
    steady: Option<Window>,
    process: fn(&Sample) -> Option<ProcSnapshot>,
) -> (Option<f64>, CpuPerCallMinute) {
    let samples = facts.samples;
    let steady_figure =
        steady.and_then(|window| usage::cpu_per_call_minute(samples, window, process));
    let steady_window_secs = steady.filter(|_| steady_figure.is_some()).map(|window| {
        let mut inside = samples
            .iter()
            .filter(|sample| sample.at >= window.start && sample.at <= window.end);
        match (inside.next(), inside.next_back()) {
            (Some(first), Some(last)) => {
                round_ms(last.at.saturating_duration_since(first.at).as_secs_f64())
            }
            _ => 0.0,
        }
    });
    let cpu_seconds = samples
        .last()
        .and_then(|last| usage::cpu_between(&facts.baseline, last, process));
    let call_minutes: f64 = facts
        .outcomes
        .iter()
        .map(|outcome| outcome.connected_for.as_secs_f64())
        .sum::<f64>()
        / 60.0;
    let whole_run = cpu_seconds
        .filter(|_| call_minutes > 0.0)
        .map(|cpu| cpu / call_minutes);
    let figures = CpuPerCallMinute {
        steady: steady_figure.map(round_4),
        whole_run: whole_run.map(round_4),
        steady_window_secs,
    };
    (cpu_seconds.map(round_ms), figures)
}

fn server_report(facts: &RunFacts<'_>, steady: Option<Window>) -> ServerReport {
    let samples = facts.samples;
    let last = samples.last();
    let (cpu_seconds, cpu_s_per_call_minute) = cpu_per_call_minute(facts, steady, usage::server);
    let memory = usage::server_memory(&facts.baseline, samples);
    let last_server = last.and_then(|sample| sample.server);
    ServerReport {
        pid: facts.server_pid,
        cores_pinned: facts.server_cores.clone(),
        cpu_seconds,
        cpu_s_per_call_minute,
        rss_baseline_kib: memory.map(|memory| memory.baseline_kib),
        rss_peak_kib: memory.map(|memory| memory.peak_kib),
        rss_per_call_kib: memory
            .and_then(|memory| memory.per_call_kib)
            .map(|kib| (kib * 10.0).round() / 10.0),
        rss_after_calls_kib: last_server.map(|server| server.rss_kib),
        vm_hwm_kib: last_server.map(|server| server.hwm_kib),
        peak_live_calls: samples
            .iter()
            .map(|sample| sample.live_calls)
            .max()
            .unwrap_or(0),
        log_file: facts.server_log_file.clone(),
        database: facts.server_database.clone(),
    }
}

fn mongodb_report(facts: &RunFacts<'_>, steady: Option<Window>) -> MongodbReport {
    let (cpu_seconds, cpu_s_per_call_minute) = cpu_per_call_minute(facts, steady, usage::mongodb);
    MongodbReport {
        pid: facts.mongodb_pid,
        cpu_seconds,
        cpu_s_per_call_minute,
    }
}

fn generator_report(facts: &RunFacts<'_>, send_lags: LatencyTally) -> GeneratorReport {
    let last = facts.samples.last();
    let cpu_seconds =
        last.and_then(|last| usage::cpu_between(&facts.baseline, last, usage::generator));
    let wall = last.map_or(0.0, |last| {
        last.at
            .saturating_duration_since(facts.baseline.at)
            .as_secs_f64()
    });
    let cores = facts
        .generator_cores
        .as_deref()
        .and_then(count_cpus)
        .unwrap_or(1);
    let cpu_percent = cpu_seconds
        .filter(|_| wall > 0.0)
        .map(|cpu| (cpu / wall / cores as f64 * 100.0).round());
    let send_lag_ms = distribution(send_lags);
    GeneratorReport {
        cpu_seconds: cpu_seconds.map(round_ms),
        cpu_percent,
        cores_allowed: facts.generator_cores.clone(),
        send_lag_p99_ms: send_lag_ms.p99,
        send_lag_ms,
    }
}

/// CPUs in a `Cpus_allowed_list` such as `0-3,6`.
pub(crate) fn count_cpus(list: &str) -> Option<usize> {
    list.split(',')
        .map(|range| match range.trim().split_once('-') {
            Some((low, high)) => {
                let (low, high) = (low.parse::<usize>().ok()?, high.parse::<usize>().ok()?);
                high.checked_sub(low).map(|span| span + 1)
            }
            None => range.trim().parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

fn round_4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::loadtest::call::Failure;
    use crate::commands::loadtest::latency::Timing;

    fn session(index: usize, appends: Vec<Timing>, deltas: Vec<Timing>) -> FakeSession {
        FakeSession {
            instructions: Some(instructions_for(index)),
            append_timings: appends,
            delta_timings: deltas,
            ..FakeSession::default()
        }
    }

    fn sample(at: Instant, live_calls: usize, cpu_seconds: f64, rss_kib: u64) -> Sample {
        let snapshot = ProcSnapshot {
            cpu_seconds,
            rss_kib,
            hwm_kib: rss_kib,
        };
        Sample {
            at,
            live_calls,
            server: Some(snapshot),
            generator: Some(snapshot),
            mongodb: None,
            cores: Vec::new(),
        }
    }

    fn config() -> ConfigReport {
        ConfigReport {
            calls: 2,
            ramp_up_secs: 0.0,
            duration_secs: 4,
            backend: "openai".into(),
            codec: "pcmu".into(),
            inbound_rate_hz: 8_000,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
            turn_ms: 5_000,
            server: "started".into(),
            server_url: "http://127.0.0.1:1/".into(),
        }
    }

    /// Two calls, one of which the fake never saw: the report joins each call to its session
    /// by instructions, counts what could not be matched, and divides CPU by call-minutes.
    #[test]
    fn the_report_joins_calls_to_their_sessions_and_divides_by_call_minutes() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        // Call 0: three 100 ms μ-law chunks, each 2 ms to the fake, echoed back 3 ms later.
        let sends: Vec<Timing> = (1..=3).map(|k| (800 * k, ms(100 * k))).collect();
        let appends: Vec<Timing> = (1..=3).map(|k| (800 * k, ms(100 * k + 2))).collect();
        let received: Vec<Timing> = (1..=3).map(|k| (800 * k, ms(100 * k + 5))).collect();
        let outcomes = vec![
            CallOutcome {
                index: 0,
                inbound_rate_hz: 8_000,
                sent_samples: 2_400,
                received_samples: 2_400,
                connected_for: Duration::from_secs(30),
                send_timings: sends.clone(),
                receive_timings: received,
                violations: vec!["chunk_id 2 is not greater than the previous 2".into()],
                ..CallOutcome::default()
            },
            CallOutcome {
                index: 1,
                inbound_rate_hz: 8_000,
                connected_for: Duration::from_secs(30),
                send_timings: sends,
                failure: Some(Failure {
                    reason: "closed by the server (1011)".into(),
                    detail: "close 1011".into(),
                }),
                ..CallOutcome::default()
            },
        ];
        let sessions = vec![session(0, appends.clone(), appends)];
        let samples = vec![
            sample(ms(0), 0, 10.0, 1_000),
            sample(ms(1_000), 2, 10.5, 1_400),
            sample(ms(3_000), 2, 11.5, 1_600),
            sample(ms(4_500), 0, 12.0, 1_500),
        ];
        let fake_violations = vec!["sess_0: input_audio_buffer.append: bad".to_owned()];
        let report = build(RunFacts {
            run_id: "run",
            config: config(),
            fake_input_rate_hz: 8_000,
            fake_output_rate_hz: 8_000,
            outcomes: &outcomes,
            sessions: &sessions,
            fake_violations: &fake_violations,
            samples: &samples,
            baseline: samples[0].clone(),
            calls_started: start,
            calls_ended: ms(4_000),
            server_pid: Some(42),
            server_cores: Some("0".into()),
            server_log_file: None,
            server_database: None,
            generator_cores: Some("1".into()),
            mongodb_pid: None,
            provisioning: Duration::from_secs(1),
            total: Duration::from_secs(6),
            metrics: &ServerMetrics::Skipped("no token".into()),
            warnings: Vec::new(),
        });

        assert_eq!((report.calls.ok, report.calls.failed), (1, 1));
        assert_eq!(report.latency.inbound_ms.samples, 3);
        assert_eq!(report.latency.inbound_ms.p50, Some(2.0));
        assert_eq!(
            report.latency.inbound_ms.unmatched, 3,
            "call 1 had no session"
        );
        assert_eq!(report.latency.outbound_ms.p99, Some(3.0));
        assert_eq!(
            report.latency.outbound_lookahead_ms, 0.0,
            "μ-law is not resampled"
        );
        assert_eq!(report.violations.sessions_missing, 1);
        assert_eq!(report.violations.chunk_id, 1);
        assert_eq!(report.violations.fake_ai, 1);
        // 2 CPU-s over one call-minute in total (two calls of 30 s).
        assert_eq!(report.server.cpu_seconds, Some(2.0));
        assert_eq!(report.server.cpu_s_per_call_minute.whole_run, Some(2.0));
        // Steady window 1–4 s: samples at 1 s and 3 s, 2 calls × 2 s, 1 CPU-s.
        assert_eq!(report.server.cpu_s_per_call_minute.steady, Some(15.0));
        assert_eq!(report.server.rss_per_call_kib, Some(300.0));
        assert_eq!(report.server.peak_live_calls, 2);
        assert!(
            report
                .warnings
                .iter()
                .any(|warning| warning.contains("3 chunks unmatched")),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus("0-1"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("x"), None);
    }

    #[test]
    fn failures_are_grouped_by_reason_most_frequent_first() {
        let failing = |index: usize, reason: &str| CallOutcome {
            index,
            failure: Some(Failure {
                reason: reason.into(),
                detail: format!("detail {index}"),
            }),
            ..CallOutcome::default()
        };
        let outcomes = vec![
            CallOutcome::default(),
            failing(1, "connect: timed out"),
            failing(2, "flow: HTTP 500"),
            failing(3, "flow: HTTP 500"),
        ];
        let report = calls_report(&outcomes);
        assert_eq!((report.attempted, report.ok, report.failed), (4, 1, 3));
        assert_eq!(report.failures[0].reason, "flow: HTTP 500");
        assert_eq!(report.failures[0].count, 2);
        assert_eq!(report.failures[0].example, "detail 2");
        assert_eq!(report.failures[1].reason, "connect: timed out");
    }
}
