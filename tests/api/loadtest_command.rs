//! `voxbridge loadtest` end to end: the real binary starts its own `voxbridge serve` against the
//! test MongoDB, runs short calls through it with a fake voice AI echoing (the fake OpenAI, or
//! the fake ElevenLabs with `--backend elevenlabs`), and reports them as JSON. Only counts and
//! the presence of figures are checked; speed is the benchmark's business
//! (docs/benchmarks.md). The report's metrics check (the server's own `/metrics`, scraped
//! during the run, against the generator's figures) must agree.

use std::process::{Command, Output};

use mongodb::Client;
use serde_json::Value;

/// A figure that must be a finite, positive number.
fn positive(report: &Value, pointer: &str) -> f64 {
    let value = report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {report:#}"));
    assert!(value.is_finite() && value > 0.0, "{pointer} = {value}");
    value
}

/// Runs `voxbridge loadtest <flags> --json` against the test MongoDB with a throwaway state
/// directory.
async fn loadtest(flags: &[&str]) -> Output {
    let state_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    command
        .arg("loadtest")
        .args(flags)
        .arg("--json")
        .arg("--mongodb-uri")
        .arg(crate::helpers::mongodb_uri())
        .arg("--state-dir")
        .arg(state_dir.path());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("voxbridge loadtest runs");
    drop(state_dir);
    output
}

/// The JSON report of a run that must have succeeded.
fn report_of(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}; stdout:\n{}\nstderr:\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("stdout is not one JSON report ({error}); stderr:\n{stderr}")
    })
}

/// Every call ok, finite latencies both ways, nothing the fake or the callers objected to.
fn assert_all_calls_ok_with_latency(report: &Value, calls: u64) {
    assert_eq!(report["calls"]["attempted"], calls, "{report:#}");
    assert_eq!(report["calls"]["ok"], calls, "{report:#}");
    assert_eq!(report["calls"]["failed"], 0, "{report:#}");
    for direction in ["inbound_ms", "outbound_ms"] {
        for percentile in ["p50", "p95", "p99"] {
            let ms = positive(report, &format!("/latency/{direction}/{percentile}"));
            assert!(ms < 1_000.0, "{direction} {percentile} = {ms} ms");
        }
        let samples = report["latency"][direction]["samples"].as_u64().unwrap();
        assert!(samples > 0, "{direction} has samples");
        // Every chunk is stamped before it is written, so none can arrive before its stamp.
        assert_eq!(
            report["latency"][direction]["negative"], 0,
            "{direction}: {report:#}"
        );
    }
    let violations = &report["violations"];
    assert_eq!(violations["chunk_id"], 0, "{report:#}");
    assert_eq!(violations["caller_other"], 0, "{report:#}");
    assert_eq!(violations["fake_ai"], 0, "{report:#}");
    assert_eq!(violations["sessions_missing"], 0, "{report:#}");
}

/// The server's `/metrics` was scraped and agrees with the generator on every figure: the calls
/// live mid-run, `calls` ended by the callers' hang-ups, no admission refusal, and about as many
/// frames read by the bridge as the callers and the fake AI sent it.
fn assert_metrics_agree(report: &Value, calls: u64) {
    let check = &report["metrics_check"];
    assert_eq!(check["status"], "checked", "{check:#}");
    assert_eq!(check["agrees"], true, "{check:#}");
    assert_eq!(report["violations"]["metrics_mismatch"], 0, "{check:#}");
    let figures = check["figures"].as_array().expect("figures");
    let figure = |name: &str| {
        figures
            .iter()
            .find(|figure| figure["figure"] == name)
            .unwrap_or_else(|| panic!("no figure {name:?} in {check:#}"))
    };
    for figure in figures {
        assert_eq!(figure["agrees"], true, "{figure:#}");
        let server = figure["server"].as_i64().unwrap();
        let (low, high) = (
            figure["low"].as_i64().unwrap(),
            figure["high"].as_i64().unwrap(),
        );
        assert!((low..=high).contains(&server), "{figure:#}");
        assert!(figure["tolerance"].as_str().is_some(), "{figure:#}");
    }
    // Scraped once every call was up: all of them, unless a slow machine delayed the scrape
    // until calls were ending (the figure's range then allows for those).
    let live = figure("live calls, mid-run");
    assert!(live["generator"].as_u64().unwrap() <= calls, "{live:#}");
    assert!(live["server"].as_u64().unwrap() > 0, "{live:#}");
    let hung_up = figure("calls ended, caller_hung_up");
    assert_eq!(hung_up["server"], calls, "{hung_up:#}");
    assert_eq!(hung_up["generator"], calls, "{hung_up:#}");
    assert_eq!(figure("calls ended, all reasons")["server"], calls);
    assert_eq!(figure("admission refusals")["server"], 0);
    let frames = figure("frames the bridge read");
    // Each call sent `start` and 50 chunks, and got at least as many echo frames from the AI.
    let frames_read = frames["server"].as_u64().unwrap();
    assert!(frames_read >= calls * 100, "{frames:#}");
}

#[tokio::test]
async fn a_small_load_test_reports_every_call_and_finite_latencies() {
    let output = loadtest(&[
        "--calls",
        "20",
        "--ramp-up-secs",
        "1",
        "--duration-secs",
        "5",
    ])
    .await;
    let report = report_of(&output);

    assert_eq!(report["config"]["backend"], "openai", "{report:#}");
    assert_all_calls_ok_with_latency(&report, 20);
    assert_metrics_agree(&report, 20);
    // 20 calls × 5 s of 100 ms chunks went out; nearly all came back.
    let inbound = report["latency"]["inbound_ms"]["samples"].as_u64().unwrap();
    assert!((900..=1_000).contains(&inbound), "{inbound} inbound chunks");

    assert!(report["server"]["pid"].as_u64().is_some(), "{report:#}");
    positive(&report, "/server/cpu_seconds");
    positive(&report, "/server/cpu_s_per_call_minute/whole_run");
    positive(&report, "/server/rss_baseline_kib");
    positive(&report, "/server/rss_peak_kib");
    assert!(
        report["server"]["rss_per_call_kib"].as_f64().is_some(),
        "{report:#}"
    );
    assert_eq!(report["server"]["peak_live_calls"], 20, "{report:#}");
    positive(&report, "/generator/cpu_seconds");
    let cores = report["machine"]["cores_busy_percent"].as_array().unwrap();
    assert!(!cores.is_empty(), "{report:#}");

    // The run's database was dropped when the server stopped.
    let database = report["server"]["database"].as_str().unwrap().to_owned();
    assert!(database.starts_with("voxbridge_loadtest_"), "{database}");
    let client = Client::with_uri_str(crate::helpers::mongodb_uri())
        .await
        .unwrap();
    let names = client.list_database_names().await.unwrap();
    client.shutdown().await;
    assert!(!names.contains(&database), "{database} is still there");
}

/// The same run through ElevenLabs agents: a 16 kHz flow reaches the fake agent as pcm_16000
/// and comes back as pcm_8000, so the bridge resamples nothing either way (no look-ahead), and
/// the fake's pings (every 2 s) are answered throughout.
#[tokio::test]
async fn an_elevenlabs_load_test_reports_every_call_and_finite_latencies() {
    let output = loadtest(&[
        "--backend",
        "elevenlabs",
        "--inbound-rate",
        "16000",
        "--calls",
        "5",
        "--ramp-up-secs",
        "1",
        "--duration-secs",
        "5",
    ])
    .await;
    let report = report_of(&output);

    assert_eq!(report["config"]["backend"], "elevenlabs", "{report:#}");
    assert_eq!(
        report["config"]["codec"], "pcm_16000/pcm_8000",
        "{report:#}"
    );
    assert_all_calls_ok_with_latency(&report, 5);
    assert_metrics_agree(&report, 5);
    // 5 calls × 5 s of 100 ms chunks went out; nearly all reached the fake.
    let arrived = report["latency"]["inbound_ms"]["samples"].as_u64().unwrap();
    assert!((225..=250).contains(&arrived), "{arrived} inbound chunks");
    assert_eq!(report["latency"]["inbound_lookahead_ms"], 0.0, "{report:#}");
    assert_eq!(
        report["latency"]["outbound_lookahead_ms"], 0.0,
        "{report:#}"
    );
    assert_eq!(report["server"]["peak_live_calls"], 5, "{report:#}");
    positive(&report, "/server/cpu_seconds");
}

#[tokio::test]
async fn elevenlabs_refuses_the_pcmu_codec_before_starting_anything() {
    let output = loadtest(&["--backend", "elevenlabs", "--codec", "pcmu"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(output.stdout.is_empty(), "no report");
    assert!(
        stderr.contains("--codec pcmu does not apply to --backend elevenlabs"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("starting voxbridge serve"),
        "nothing started: {stderr}"
    );
}
