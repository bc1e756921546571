//! The load test's report: a readable table for a terminal and, with `--json`, one JSON object
//! whose field names are stable (scripts and the benchmark notes read them).
//!
//! JSON fields (times in milliseconds or seconds as named; `null` when not measured):
//!
//! - `run_id`; `config`: `calls`, `ramp_up_secs`, `duration_secs`, `backend` (`"openai"` or
//!   `"elevenlabs"`: which voice AI the fake played), `codec` (the assistants' codec for openai;
//!   the agent's input/output formats, e.g. `"pcm_16000/pcm_8000"`, for elevenlabs),
//!   `inbound_rate_hz`, `inbound_chunk_ms`, `outbound_chunk_ms`, `turn_ms` (the fake OpenAI's
//!   echo turns; 0 for elevenlabs, whose echo has none), `server` (`"started"` or `"external"`),
//!   `server_url`.
//! - `calls`: `attempted`, `ok`, `failed`, `failures`: `[{reason, count, example}]`, most
//!   frequent first.
//! - `latency`: `inbound_ms` and `outbound_ms`, each `{p50, p95, p99, max, samples, unmatched,
//!   negative}`; `inbound_lookahead_ms`, `outbound_lookahead_ms` (the resampler look-ahead the
//!   matching allowed for); `method` (one sentence on what was measured: outbound latency
//!   excludes the bridge's chunk accumulation).
//! - `violations`: `chunk_id` (caller-side chunk-id violations), `caller_other` (other
//!   protocol violations the caller saw), `pacing`: `{late_sends, outbound_stalls}` (sends more
//!   than 20 ms late; gaps in the echo longer than 2 × outbound chunk + 100 ms),
//!   `fake_ai` (protocol violations the fake recorded: GA-shape ones for OpenAI, the
//!   reference's for ElevenLabs; `fake_openai` before there were two), `fake_ai_examples`,
//!   `sessions_missing` (calls whose session at the fake was never seen), `metrics_mismatch`
//!   (figures of `metrics_check` that disagree, plus 1 if a scrape failed).
//! - `server`: `pid`, `cores_pinned` (its `Cpus_allowed_list`), `cpu_seconds` (during the
//!   calls), `cpu_s_per_call_minute`: `{steady, whole_run, steady_window_secs}`,
//!   `rss_baseline_kib`, `rss_peak_kib`, `rss_per_call_kib`, `rss_after_calls_kib`,
//!   `vm_hwm_kib`, `peak_live_calls`, `log_file`, `database`.
//! - `generator`: `cpu_seconds`, `cpu_percent` (of the cores it may use), `cores_allowed`,
//!   `send_lag_ms` (`{p50, p95, p99, max, samples, …}`), `send_lag_p99_ms`.
//! - `mongodb`: `pid` (given with `--mongodb-pid` or found for a `mongod` on loopback),
//!   `cpu_seconds`, `cpu_s_per_call_minute` (`{steady, whole_run, steady_window_secs}`).
//! - `machine`: `cores_busy_percent`: `[{cpu, busy_percent}]` over the steady window (every
//!   process and the kernel; a core near 100% means the figures include CPU contention).
//! - `durations`: `provisioning_secs`, `calls_secs`, `total_secs`.
//! - `metrics_check`: the server's own `GET /metrics` against the generator's figures
//!   (`metrics_check.rs` says what is compared and why the tolerances are what they are):
//!   `status` (`"checked"`; `"skipped"` for a `--server-url` server without
//!   `--metrics-token`; `"failed"` when a scrape failed; `"not_run"` in reports from before the
//!   check), `note` (why skipped or failed, else `null`), `agrees` (every figure agrees and no
//!   scrape failed), `figures`: `[{figure, metric, server, generator, low, high, tolerance,
//!   agrees}]`, where `agrees` is `low <= server <= high` and `tolerance` says in words where
//!   `low` and `high` come from.
//! - `warnings`: sentences about anything that makes the figures less trustworthy.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::latency::Distribution;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub run_id: String,
    pub config: ConfigReport,
    pub calls: CallsReport,
    pub latency: LatencyReport,
    pub violations: ViolationsReport,
    pub server: ServerReport,
    pub generator: GeneratorReport,
    pub mongodb: MongodbReport,
    pub machine: MachineReport,
    pub durations: DurationsReport,
    /// Absent from reports written before the check existed.
    #[serde(default)]
    pub metrics_check: MetricsCheckReport,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigReport {
    pub calls: usize,
    pub ramp_up_secs: f64,
    pub duration_secs: u64,
    /// `openai` or `elevenlabs` (reports from before the choice existed were `openai`).
    #[serde(default = "openai")]
    pub backend: String,
    pub codec: String,
    pub inbound_rate_hz: u32,
    pub inbound_chunk_ms: u32,
    pub outbound_chunk_ms: u32,
    pub turn_ms: u32,
    /// `started` (by this command) or `external`.
    pub server: String,
    pub server_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CallsReport {
    pub attempted: usize,
    pub ok: usize,
    pub failed: usize,
    pub failures: Vec<FailureCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FailureCount {
    pub reason: String,
    pub count: usize,
    /// The full message of one such failure.
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LatencyReport {
    pub inbound_ms: Distribution,
    pub outbound_ms: Distribution,
    pub inbound_lookahead_ms: f64,
    pub outbound_lookahead_ms: f64,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ViolationsReport {
    pub chunk_id: u64,
    pub caller_other: u64,
    pub pacing: PacingReport,
    /// Violations the fake recorded (the backend's fake; read from `fake_openai` in older
    /// reports).
    #[serde(alias = "fake_openai")]
    pub fake_ai: u64,
    #[serde(alias = "fake_openai_examples")]
    pub fake_ai_examples: Vec<String>,
    pub sessions_missing: u64,
    /// Figures of the metrics check that disagree, plus 1 if a scrape failed (0 in reports
    /// from before the check).
    #[serde(default)]
    pub metrics_mismatch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PacingReport {
    pub late_sends: u64,
    pub outbound_stalls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerReport {
    pub pid: Option<u32>,
    pub cores_pinned: Option<String>,
    pub cpu_seconds: Option<f64>,
    pub cpu_s_per_call_minute: CpuPerCallMinute,
    pub rss_baseline_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_per_call_kib: Option<f64>,
    pub rss_after_calls_kib: Option<u64>,
    pub vm_hwm_kib: Option<u64>,
    pub peak_live_calls: usize,
    pub log_file: Option<String>,
    pub database: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CpuPerCallMinute {
    pub steady: Option<f64>,
    pub whole_run: Option<f64>,
    pub steady_window_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GeneratorReport {
    pub cpu_seconds: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub cores_allowed: Option<String>,
    pub send_lag_ms: Distribution,
    pub send_lag_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MongodbReport {
    pub pid: Option<u32>,
    pub cpu_seconds: Option<f64>,
    pub cpu_s_per_call_minute: CpuPerCallMinute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MachineReport {
    pub cores_busy_percent: Vec<CoreBusy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CoreBusy {
    pub cpu: usize,
    pub busy_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DurationsReport {
    pub provisioning_secs: f64,
    pub calls_secs: f64,
    pub total_secs: f64,
}

/// The server's `/metrics` against the generator's own figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetricsCheckReport {
    /// `checked`, `skipped`, `failed`, or `not_run` (a report from before the check).
    pub status: String,
    /// Why the check was skipped or failed.
    pub note: Option<String>,
    /// Every figure agrees and no scrape failed (true when skipped).
    pub agrees: bool,
    pub figures: Vec<MetricsFigure>,
}

impl Default for MetricsCheckReport {
    /// What a report from before the check reads as.
    fn default() -> Self {
        MetricsCheckReport {
            status: "not_run".to_owned(),
            note: None,
            agrees: true,
            figures: Vec::new(),
        }
    }
}

/// One figure as the server's metrics and the generator each have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetricsFigure {
    /// What is compared, in words.
    pub figure: String,
    /// The series it is read from, and how (a sum, a delta over the run).
    pub metric: String,
    pub server: i64,
    pub generator: u64,
    /// The range the server's figure must fall in to agree.
    pub low: u64,
    pub high: u64,
    /// Where `low` and `high` come from.
    pub tolerance: String,
    pub agrees: bool,
}

/// The backend of a report that does not name one.
fn openai() -> String {
    "openai".to_owned()
}

impl ConfigReport {
    /// The fake's name in sentences.
    fn fake_name(&self) -> &'static str {
        if self.backend == "elevenlabs" {
            "fake ElevenLabs"
        } else {
            "fake OpenAI"
        }
    }
}

impl Report {
    /// The JSON form (pretty-printed).
    pub(crate) fn to_json(&self) -> String {
        // A tree of plain structs, strings and numbers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The readable form.
    pub(crate) fn to_table(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_table(&mut out);
        out
    }

    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        let config = &self.config;
        let turns = if config.backend == "elevenlabs" {
            String::new()
        } else {
            format!(", echo turns of {} ms", config.turn_ms)
        };
        writeln!(
            out,
            "voxbridge load test {}: {} calls × {} s (ramp-up {} s), backend {}, {}, {} Hz in, \
             chunks {} ms in / {} ms out{turns}",
            self.run_id,
            config.calls,
            config.duration_secs,
            config.ramp_up_secs,
            config.backend,
            config.codec,
            config.inbound_rate_hz,
            config.inbound_chunk_ms,
            config.outbound_chunk_ms,
        )?;
        writeln!(out, "server: {} ({})", config.server_url, config.server)?;
        writeln!(out)?;

        let calls = &self.calls;
        writeln!(
            out,
            "Calls       attempted {}   ok {}   failed {}",
            calls.attempted, calls.ok, calls.failed
        )?;
        for failure in &calls.failures {
            writeln!(
                out,
                "  {:>6} × {}  (e.g. {})",
                failure.count, failure.reason, failure.example
            )?;
        }
        writeln!(out)?;

        writeln!(
            out,
            "Latency ms      p50      p95      p99      max   samples  unmatched  negative"
        )?;
        write_distribution(out, "inbound", &self.latency.inbound_ms)?;
        write_distribution(out, "outbound", &self.latency.outbound_ms)?;
        writeln!(out, "  {}", self.latency.method)?;
        writeln!(
            out,
            "  resampler look-ahead allowed for: inbound {:.2} ms, outbound {:.2} ms",
            self.latency.inbound_lookahead_ms, self.latency.outbound_lookahead_ms
        )?;
        writeln!(out)?;

        let violations = &self.violations;
        let fake = config.fake_name();
        writeln!(
            out,
            "Violations  chunk_id {}   other caller-side {}   late sends (>20 ms) {}   \
             outbound stalls {}   {fake} {}   sessions missing {}   metrics mismatches {}",
            violations.chunk_id,
            violations.caller_other,
            violations.pacing.late_sends,
            violations.pacing.outbound_stalls,
            violations.fake_ai,
            violations.sessions_missing,
            violations.metrics_mismatch
        )?;
        for example in &violations.fake_ai_examples {
            writeln!(out, "  {fake}: {example}")?;
        }
        writeln!(out)?;

        let server = &self.server;
        writeln!(
            out,
            "Server      pid {}   cores {}   peak live calls {}",
            optional(server.pid),
            server.cores_pinned.as_deref().unwrap_or("-"),
            server.peak_live_calls
        )?;
        let per_minute = &server.cpu_s_per_call_minute;
        writeln!(
            out,
            "  CPU       {} s during the calls; per call-minute: {} CPU-s steady (window {} s), \
             {} CPU-s whole run",
            fixed(server.cpu_seconds, 1),
            fixed(per_minute.steady, 4),
            fixed(per_minute.steady_window_secs, 1),
            fixed(per_minute.whole_run, 4)
        )?;
        writeln!(
            out,
            "  RSS       baseline {}, peak {}, per live call {} KiB, after the calls {}, \
             high-water mark {}",
            mib(server.rss_baseline_kib),
            mib(server.rss_peak_kib),
            fixed(server.rss_per_call_kib, 1),
            mib(server.rss_after_calls_kib),
            mib(server.vm_hwm_kib)
        )?;
        if let Some(log_file) = &server.log_file {
            writeln!(out, "  log       {log_file}")?;
        }
        writeln!(out)?;

        let generator = &self.generator;
        writeln!(
            out,
            "Generator   CPU {} s ({}% of cores {})   send lag p50 {} ms, p99 {} ms, max {} ms",
            fixed(generator.cpu_seconds, 1),
            fixed(generator.cpu_percent, 0),
            generator.cores_allowed.as_deref().unwrap_or("-"),
            fixed(generator.send_lag_ms.p50, 2),
            fixed(generator.send_lag_ms.p99, 2),
            fixed(generator.send_lag_ms.max, 2)
        )?;
        let mongodb = &self.mongodb;
        writeln!(
            out,
            "MongoDB     pid {}   CPU {} s; per call-minute: {} CPU-s steady, {} CPU-s whole run",
            optional(mongodb.pid),
            fixed(mongodb.cpu_seconds, 1),
            fixed(mongodb.cpu_s_per_call_minute.steady, 4),
            fixed(mongodb.cpu_s_per_call_minute.whole_run, 4)
        )?;
        let cores: Vec<String> = self
            .machine
            .cores_busy_percent
            .iter()
            .map(|core| format!("cpu{} {:.0}%", core.cpu, core.busy_percent))
            .collect();
        writeln!(
            out,
            "Machine     cores busy in the steady window: {}",
            if cores.is_empty() {
                "-".to_owned()
            } else {
                cores.join(", ")
            }
        )?;
        let durations = &self.durations;
        writeln!(
            out,
            "Durations   provisioning {:.1} s, calls {:.1} s, total {:.1} s",
            durations.provisioning_secs, durations.calls_secs, durations.total_secs
        )?;
        writeln!(out)?;
        self.metrics_check.write_table(out)?;
        if !self.warnings.is_empty() {
            writeln!(out)?;
            writeln!(out, "Warnings")?;
            for warning in &self.warnings {
                writeln!(out, "  - {warning}")?;
            }
        }
        Ok(())
    }
}

impl MetricsCheckReport {
    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        let verdict = match self.status.as_str() {
            "checked" if self.agrees => format!("all {} figures agree", self.figures.len()),
            "checked" => {
                let disagree = self.figures.iter().filter(|figure| !figure.agrees).count();
                format!("{disagree} of {} figures DISAGREE", self.figures.len())
            }
            other => other.to_owned(),
        };
        writeln!(
            out,
            "Metrics     the server's /metrics against the generator's figures: {verdict}"
        )?;
        if let Some(note) = &self.note {
            writeln!(out, "  {note}")?;
        }
        if self.figures.is_empty() {
            return Ok(());
        }
        let width = self
            .figures
            .iter()
            .map(|figure| figure.figure.chars().count())
            .max()
            .unwrap_or(0);
        writeln!(
            out,
            "  {:<width$}  {:>9}  {:>9}  {:>19}",
            "figure", "server", "generator", "allowed"
        )?;
        for figure in &self.figures {
            writeln!(
                out,
                "  {:<width$}  {:>9}  {:>9}  {:>19}  {}",
                figure.figure,
                figure.server,
                figure.generator,
                format!("{}–{}", figure.low, figure.high),
                if figure.agrees { "agrees" } else { "DISAGREES" }
            )?;
        }
        writeln!(out, "  Tolerances:")?;
        for figure in &self.figures {
            writeln!(out, "  - {}: {}", figure.figure, figure.tolerance)?;
        }
        Ok(())
    }
}

fn write_distribution(out: &mut String, label: &str, latency: &Distribution) -> std::fmt::Result {
    writeln!(
        out,
        "  {label:<9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9}",
        fixed(latency.p50, 2),
        fixed(latency.p95, 2),
        fixed(latency.p99, 2),
        fixed(latency.max, 2),
        latency.samples,
        latency.unmatched,
        latency.negative
    )
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
}

fn optional(value: Option<u32>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1_024.0),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::Value;

    use super::*;

    pub(crate) fn sample_report() -> Report {
        let latency = Distribution {
            p50: Some(1.5),
            p95: Some(2.5),
            p99: Some(4.0),
            max: Some(9.25),
            samples: 1_000,
            unmatched: 0,
            negative: 0,
        };
        Report {
            run_id: "1700000000_ab12".into(),
            config: ConfigReport {
                calls: 20,
                ramp_up_secs: 1.0,
                duration_secs: 5,
                backend: "openai".into(),
                codec: "pcm24k".into(),
                inbound_rate_hz: 8_000,
                inbound_chunk_ms: 100,
                outbound_chunk_ms: 100,
                turn_ms: 5_000,
                server: "started".into(),
                server_url: "http://127.0.0.1:1234/".into(),
            },
            calls: CallsReport {
                attempted: 20,
                ok: 19,
                failed: 1,
                failures: vec![FailureCount {
                    reason: "connect: timed out".into(),
                    count: 1,
                    example: "timed out connecting to the media WebSocket".into(),
                }],
            },
            latency: LatencyReport {
                inbound_ms: latency.clone(),
                outbound_ms: latency.clone(),
                inbound_lookahead_ms: 2.71,
                outbound_lookahead_ms: 2.63,
                method: "outbound excludes chunk accumulation".into(),
            },
            violations: ViolationsReport {
                chunk_id: 0,
                caller_other: 0,
                pacing: PacingReport {
                    late_sends: 2,
                    outbound_stalls: 0,
                },
                fake_ai: 0,
                fake_ai_examples: Vec::new(),
                sessions_missing: 0,
                metrics_mismatch: 1,
            },
            server: ServerReport {
                pid: Some(4242),
                cores_pinned: Some("0".into()),
                cpu_seconds: Some(3.2),
                cpu_s_per_call_minute: CpuPerCallMinute {
                    steady: Some(0.41),
                    whole_run: Some(0.5),
                    steady_window_secs: Some(3.0),
                },
                rss_baseline_kib: Some(40_000),
                rss_peak_kib: Some(48_000),
                rss_per_call_kib: Some(400.0),
                rss_after_calls_kib: Some(45_000),
                vm_hwm_kib: Some(48_500),
                peak_live_calls: 20,
                log_file: Some("/tmp/server.log".into()),
                database: Some("voxbridge_loadtest_1700000000_ab12".into()),
            },
            generator: GeneratorReport {
                cpu_seconds: Some(1.0),
                cpu_percent: Some(12.0),
                cores_allowed: Some("0-1".into()),
                send_lag_ms: latency,
                send_lag_p99_ms: Some(4.0),
            },
            mongodb: MongodbReport {
                pid: Some(77),
                cpu_seconds: Some(1.5),
                cpu_s_per_call_minute: CpuPerCallMinute {
                    steady: Some(0.05),
                    whole_run: Some(0.06),
                    steady_window_secs: Some(3.0),
                },
            },
            machine: MachineReport {
                cores_busy_percent: vec![
                    CoreBusy {
                        cpu: 0,
                        busy_percent: 97.0,
                    },
                    CoreBusy {
                        cpu: 1,
                        busy_percent: 40.4,
                    },
                ],
            },
            durations: DurationsReport {
                provisioning_secs: 0.5,
                calls_secs: 6.2,
                total_secs: 9.0,
            },
            metrics_check: MetricsCheckReport {
                status: "checked".into(),
                note: None,
                agrees: false,
                figures: vec![
                    MetricsFigure {
                        figure: "live calls, mid-run".into(),
                        metric: "sum(voxbridge_live_calls)".into(),
                        server: 20,
                        generator: 20,
                        low: 20,
                        high: 20,
                        tolerance: "± 0: calls connecting or hanging up".into(),
                        agrees: true,
                    },
                    MetricsFigure {
                        figure: "calls ended, caller_hung_up".into(),
                        metric: "delta voxbridge_calls_ended_total{reason=\"caller_hung_up\"}"
                            .into(),
                        server: 18,
                        generator: 19,
                        low: 19,
                        high: 20,
                        tolerance: "up to 1 more".into(),
                        agrees: false,
                    },
                ],
            },
            warnings: vec!["something to know".into()],
        }
    }

    #[test]
    fn json_has_the_documented_shape_and_reads_back() {
        let report = sample_report();
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        for key in [
            "run_id",
            "config",
            "calls",
            "latency",
            "violations",
            "server",
            "generator",
            "mongodb",
            "machine",
            "durations",
            "metrics_check",
            "warnings",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        let check = &json["metrics_check"];
        assert_eq!(check["status"], "checked");
        assert_eq!(check["agrees"], false);
        for field in [
            "figure",
            "metric",
            "server",
            "generator",
            "low",
            "high",
            "tolerance",
            "agrees",
        ] {
            assert!(
                check["figures"][0].get(field).is_some(),
                "metrics_check.figures[].{field}"
            );
        }
        assert_eq!(json["violations"]["metrics_mismatch"], 1);
        assert_eq!(json["calls"]["attempted"], 20);
        assert_eq!(json["calls"]["failures"][0]["reason"], "connect: timed out");
        for direction in ["inbound_ms", "outbound_ms"] {
            for field in [
                "p50",
                "p95",
                "p99",
                "max",
                "samples",
                "unmatched",
                "negative",
            ] {
                assert!(
                    json["latency"][direction].get(field).is_some(),
                    "latency.{direction}.{field}"
                );
            }
        }
        assert_eq!(json["violations"]["pacing"]["late_sends"], 2);
        assert_eq!(json["server"]["cpu_s_per_call_minute"]["steady"], 0.41);
        assert_eq!(json["server"]["rss_per_call_kib"], 400.0);
        assert_eq!(json["generator"]["send_lag_p99_ms"], 4.0);
        assert_eq!(json["mongodb"]["pid"], 77);
        assert_eq!(
            json["machine"]["cores_busy_percent"][0]["busy_percent"],
            97.0
        );
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn missing_figures_are_null_in_json_and_dashes_in_the_table() {
        let mut report = sample_report();
        report.server.pid = None;
        report.server.cpu_s_per_call_minute.steady = None;
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["server"]["pid"], Value::Null);
        assert_eq!(
            json["server"]["cpu_s_per_call_minute"]["steady"],
            Value::Null
        );
        let table = report.to_table();
        assert!(table.contains("pid -"), "{table}");
    }

    #[test]
    fn the_table_shows_counts_latencies_and_warnings() {
        let table = sample_report().to_table();
        assert!(table.contains("attempted 20   ok 19   failed 1"), "{table}");
        assert!(table.contains("1 × connect: timed out"), "{table}");
        assert!(
            table.contains("inbound       1.50     2.50     4.00     9.25"),
            "{table}"
        );
        assert!(table.contains("0.4100 CPU-s steady"), "{table}");
        assert!(table.contains("per live call 400.0 KiB"), "{table}");
        assert!(table.contains("  - something to know"), "{table}");
        assert!(table.contains("cpu0 97%, cpu1 40%"), "{table}");
        assert!(table.contains("backend openai, pcm24k"), "{table}");
        assert!(table.contains("echo turns of 5000 ms"), "{table}");
        assert!(table.contains("metrics mismatches 1"), "{table}");
        assert!(table.contains("1 of 2 figures DISAGREE"), "{table}");
        assert!(
            table.contains(
                "calls ended, caller_hung_up         18         19                19–20  DISAGREES"
            ),
            "{table}"
        );
        assert!(table.contains("  - live calls, mid-run: ± 0"), "{table}");
    }

    #[test]
    fn an_elevenlabs_report_names_its_fake_and_has_no_turns() {
        let mut report = sample_report();
        report.config.backend = "elevenlabs".into();
        report.config.codec = "pcm_8000/pcm_8000".into();
        report.violations.fake_ai = 1;
        report.violations.fake_ai_examples = vec!["conversation conv_x: bad".into()];
        let table = report.to_table();
        assert!(
            table.contains("backend elevenlabs, pcm_8000/pcm_8000"),
            "{table}"
        );
        assert!(!table.contains("echo turns"), "{table}");
        assert!(table.contains("fake ElevenLabs 1"), "{table}");
        assert!(
            table.contains("  fake ElevenLabs: conversation conv_x: bad"),
            "{table}"
        );
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["config"]["backend"], "elevenlabs");
        assert_eq!(json["violations"]["fake_ai"], 1);
    }

    #[test]
    fn reports_from_before_the_backend_choice_still_read() {
        let mut json: Value = serde_json::from_str(&sample_report().to_json()).unwrap();
        json["config"].as_object_mut().unwrap().remove("backend");
        let violations = json["violations"].as_object_mut().unwrap();
        let count = violations.remove("fake_ai").unwrap();
        let examples = violations.remove("fake_ai_examples").unwrap();
        violations.insert("fake_openai".into(), count);
        violations.insert("fake_openai_examples".into(), examples);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample_report());
    }

    #[test]
    fn reports_from_before_the_metrics_check_still_read() {
        let mut json: Value = serde_json::from_str(&sample_report().to_json()).unwrap();
        json.as_object_mut().unwrap().remove("metrics_check");
        json["violations"]
            .as_object_mut()
            .unwrap()
            .remove("metrics_mismatch");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back.metrics_check.status, "not_run");
        assert!(back.metrics_check.figures.is_empty());
        assert_eq!(back.violations.metrics_mismatch, 0);
        assert!(back.to_table().contains("generator's figures: not_run"));
    }
}
