//! `voxbridge loadtest` end to end: the real binary starts its own `voxbridge serve` against the
//! test MongoDB, runs 20 short calls through it with the fake OpenAI echoing, and reports them
//! as JSON. Only counts and the presence of figures are checked; speed is the benchmark's
//! business (docs/benchmarks.md).

use std::process::Command;

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

#[tokio::test]
async fn a_small_load_test_reports_every_call_and_finite_latencies() {
    let state_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    command
        .args(["loadtest", "--calls", "20", "--ramp-up-secs", "1"])
        .args(["--duration-secs", "5", "--json"])
        .arg("--mongodb-uri")
        .arg(crate::helpers::mongodb_uri())
        .arg("--state-dir")
        .arg(state_dir.path());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("voxbridge loadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}; stdout:\n{}\nstderr:\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("stdout is not one JSON report ({error}); stderr:\n{stderr}")
    });

    assert_eq!(report["calls"]["attempted"], 20, "{report:#}");
    assert_eq!(report["calls"]["ok"], 20, "{report:#}");
    assert_eq!(report["calls"]["failed"], 0, "{report:#}");
    for direction in ["inbound_ms", "outbound_ms"] {
        for percentile in ["p50", "p95", "p99"] {
            let ms = positive(&report, &format!("/latency/{direction}/{percentile}"));
            assert!(ms < 1_000.0, "{direction} {percentile} = {ms} ms");
        }
        let samples = report["latency"][direction]["samples"].as_u64().unwrap();
        assert!(samples > 0, "{direction} has samples");
    }
    // 20 calls × 5 s of 100 ms chunks went out; nearly all came back.
    let inbound = report["latency"]["inbound_ms"]["samples"].as_u64().unwrap();
    assert!((900..=1_000).contains(&inbound), "{inbound} inbound chunks");
    assert_eq!(report["violations"]["chunk_id"], 0, "{report:#}");
    assert_eq!(report["violations"]["sessions_missing"], 0, "{report:#}");

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
