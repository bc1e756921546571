//! Call logs for tenants: filters, the active/history split, one call with its history and
//! transcript, its status, and statistics checked against the inserted calls.

use std::collections::BTreeMap;

use bson::oid::ObjectId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::domain::assistant::tools::ToolKind;
use voxbridge::domain::call::record::{
    CallError, CallMetrics, ToolCallRecord, ToolOutcome, TranscriptRole, TranscriptTurn, Usage,
};
use voxbridge::domain::call::{CallStatus, CallType, EndReason};
use voxbridge::storage::call_logs::CallLogRecord;

use crate::helpers::{
    TestApp, TestTenant, call_record, error_message, expect_error, expect_status, oid, query_value,
};

fn at(text: &str) -> bson::DateTime {
    bson::DateTime::from_chrono(
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc),
    )
}

/// One inserted call, as the test describes it.
struct Spec {
    name: &'static str,
    at: &'static str,
    status: CallStatus,
    kind: CallType,
    /// Index into the tenant's assistants.
    assistant: Option<usize>,
    from: Option<&'static str>,
    to: Option<&'static str>,
    duration: Option<f64>,
    cost: Option<f64>,
}

const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550001";

#[rustfmt::skip]
fn specs() -> Vec<Spec> {
    use CallStatus::*;
    use CallType::*;
    let spec = |name, at, status, kind, assistant, from, to, duration, cost| Spec {
        name,
        at,
        status,
        kind,
        assistant,
        from,
        to,
        duration,
        cost,
    };
    vec![
        spec("old", "2026-02-20T12:00:00Z", Completed, Inbound, Some(0), Some("+14155550004"), Some(NUMBER), Some(1000.0), Some(5.0)),
        spec("c1", "2026-03-02T10:00:00Z", Completed, Inbound, Some(0), Some(CALLER), Some(NUMBER), Some(60.0), Some(0.12)),
        spec("c2", "2026-03-02T11:00:00Z", Completed, Outbound, Some(0), Some(NUMBER), Some("+442079460958"), Some(30.5), Some(0.05)),
        spec("c3", "2026-03-02T12:00:00Z", NoAnswer, Outbound, Some(1), Some(NUMBER), Some("+442079460959"), None, None),
        spec("c4", "2026-03-03T09:00:00Z", Busy, Outbound, Some(1), Some("+14155550101"), Some(CALLER), None, Some(0.0)),
        spec("c5", "2026-03-03T10:00:00Z", Failed, Inbound, None, Some("+14155550002"), Some(NUMBER), Some(0.0), None),
        spec("c6", "2026-03-03T11:00:00Z", InProgress, Inbound, Some(0), Some(CALLER), Some(NUMBER), None, None),
        spec("c7", "2026-03-04T08:00:00Z", Ringing, Outbound, Some(1), Some(NUMBER), Some("+442079460958"), None, None),
        spec("c8", "2026-03-04T09:00:00Z", Initiated, Outbound, None, Some(NUMBER), None, None, None),
        spec("c9", "2026-03-04T23:59:59.999Z", Completed, Inbound, Some(1), Some("+14155550003"), Some(NUMBER), Some(120.25), Some(0.3)),
    ]
}

struct Fixture {
    app: TestApp,
    tenant: TestTenant,
    other: TestTenant,
    assistants: Vec<String>,
    /// Call name → id.
    ids: BTreeMap<&'static str, String>,
    specs: Vec<Spec>,
    other_calls: Vec<String>,
}

impl Fixture {
    /// The ids of the named calls, newest first (the API's order).
    fn expected(&self, names: &[&str]) -> Vec<String> {
        let mut chosen: Vec<&Spec> = self
            .specs
            .iter()
            .filter(|spec| names.contains(&spec.name))
            .collect();
        assert_eq!(chosen.len(), names.len(), "known names: {names:?}");
        chosen.sort_by_key(|spec| std::cmp::Reverse(at(spec.at)));
        chosen
            .into_iter()
            .map(|spec| self.ids[spec.name].clone())
            .collect()
    }

    async fn list(&self, path: &str) -> Vec<String> {
        let body = expect_status(
            self.app.get_as(path, &self.tenant.api_key).await,
            StatusCode::OK,
        )
        .await;
        let data = body["data"].as_array().unwrap_or_else(|| panic!("{body}"));
        assert_eq!(body["count"], data.len(), "{path}");
        assert_eq!(body["next_cursor"], Value::Null, "{path}: one page");
        for call in data {
            assert_eq!(call["user_id"], self.tenant.id.as_str(), "{path}");
            assert!(
                call.get("transcript").is_none(),
                "lists leave the transcript out"
            );
        }
        data.iter()
            .map(|call| call["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let other = app.create_tenant("Beta", "ops@beta.example").await;
    let mut assistants = Vec::new();
    for name in ["Front desk", "Sales"] {
        let created = app.create_assistant(&tenant, json!({ "name": name })).await;
        assistants.push(created["id"].as_str().unwrap().to_owned());
    }
    let specs = specs();
    let mut ids = BTreeMap::new();
    for spec in &specs {
        let mut call = call_record(tenant.object_id(), at(spec.at), spec.status);
        call.call_type = spec.kind;
        call.assistant_id = spec.assistant.map(|index| oid(&assistants[index]));
        call.from_number = spec.from.map(str::to_owned);
        call.to_number = spec.to.map(str::to_owned);
        call.duration = spec.duration;
        call.cost_usd = spec.cost;
        app.insert_call(&call).await;
        ids.insert(spec.name, call.id.to_hex());
    }
    // Another tenant's calls match every filter but must never show.
    let mut other_calls = Vec::new();
    for spec in &specs {
        let mut call = call_record(other.object_id(), at(spec.at), spec.status);
        call.call_type = spec.kind;
        call.from_number = spec.from.map(str::to_owned);
        call.to_number = spec.to.map(str::to_owned);
        call.assistant_id = spec.assistant.map(|index| oid(&assistants[index]));
        call.duration = Some(10_000.0);
        call.cost_usd = Some(99.0);
        app.insert_call(&call).await;
        other_calls.push(call.id.to_hex());
    }
    Fixture {
        app,
        tenant,
        other,
        assistants,
        ids,
        specs,
        other_calls,
    }
}

#[tokio::test]
async fn calls_are_filtered() {
    let f = fixture().await;
    let x = f.assistants[0].clone();
    let y = f.assistants[1].clone();
    let caller = query_value(CALLER);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "".to_owned(),
            vec!["old", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"],
        ),
        ("status=completed".to_owned(), vec!["old", "c1", "c2", "c9"]),
        ("status=in-progress".to_owned(), vec!["c6"]),
        ("status=no-answer".to_owned(), vec!["c3"]),
        (
            "call_type=outbound".to_owned(),
            vec!["c2", "c3", "c4", "c7", "c8"],
        ),
        (
            "call_type=inbound".to_owned(),
            vec!["old", "c1", "c5", "c6", "c9"],
        ),
        (format!("assistant_id={x}"), vec!["old", "c1", "c2", "c6"]),
        (format!("assistant_id={y}"), vec!["c3", "c4", "c7", "c9"]),
        (format!("from={caller}"), vec!["c1", "c6"]),
        (format!("to={caller}"), vec!["c4"]),
        (
            format!("to={}", query_value("+442079460958")),
            vec!["c2", "c7"],
        ),
        // Either side of the call.
        (format!("phone_number={caller}"), vec!["c1", "c4", "c6"]),
        // Normalised like any number.
        (
            format!("phone_number={}", query_value("+1 (415) 555-0001")),
            vec!["c1", "c4", "c6"],
        ),
        (
            "created_after=2026-03-03T00:00:00Z&created_before=2026-03-04T00:00:00Z".to_owned(),
            vec!["c4", "c5", "c6"],
        ),
        // The bounds: after is inclusive, before exclusive.
        (
            "created_after=2026-03-03T09:00:00Z&created_before=2026-03-03T11:00:00Z".to_owned(),
            vec!["c4", "c5"],
        ),
        (
            format!("created_after={}", query_value("2026-03-04T10:00:00+01:00")),
            vec!["c8", "c9"],
        ),
        (
            format!("status=completed&call_type=inbound&assistant_id={x}"),
            vec!["old", "c1"],
        ),
        (format!("phone_number={caller}&status=busy"), vec!["c4"]),
        (format!("assistant_id={}", ObjectId::new()), vec![]),
    ];
    let mut failures = Vec::new();
    for (query, names) in cases {
        let path = format!("/api/calls?{query}");
        let actual = f.list(&path).await;
        let expected = f.expected(&names);
        if actual != expected {
            let name_of = |id: &String| {
                f.ids
                    .iter()
                    .find(|(_, value)| *value == id)
                    .map_or_else(|| format!("foreign {id}"), |(name, _)| name.to_string())
            };
            failures.push(format!(
                "{path}: expected {names:?}, got {:?}",
                actual.iter().map(name_of).collect::<Vec<_>>()
            ));
        }
        for foreign in &f.other_calls {
            assert!(
                !actual.contains(foreign),
                "{path} shows another tenant's call"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The other tenant sees only its own.
    let theirs = expect_status(
        f.app.get_as("/api/calls?limit=200", &f.other.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs["count"], f.other_calls.len());
}

#[tokio::test]
async fn active_and_history_split_the_calls() {
    let f = fixture().await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("/api/calls/active", vec!["c6", "c7", "c8"]),
        (
            "/api/calls/history",
            vec!["old", "c1", "c2", "c3", "c4", "c5", "c9"],
        ),
        ("/api/calls/active?status=completed", vec![]),
        ("/api/calls/active?status=ringing", vec!["c7"]),
        ("/api/calls/history?status=ringing", vec![]),
        ("/api/calls/history?status=busy", vec!["c4"]),
        (
            "/api/calls/history?call_type=inbound",
            vec!["old", "c1", "c5", "c9"],
        ),
        ("/api/calls/active?call_type=inbound", vec!["c6"]),
    ];
    for (path, names) in cases {
        assert_eq!(f.list(path).await, f.expected(&names), "{path}");
    }
    // Paged like any list.
    let page = expect_status(
        f.app
            .get_as("/api/calls/history?limit=4", &f.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["count"], 4);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = expect_status(
        f.app
            .get_as(
                &format!("/api/calls/history?limit=4&cursor={cursor}"),
                &f.tenant.api_key,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let all: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|call| call["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all,
        f.expected(&["old", "c1", "c2", "c3", "c4", "c5", "c9"])
    );
    assert_eq!(rest["next_cursor"], Value::Null);
}

#[tokio::test]
async fn one_call_with_its_history_and_transcript() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let assistant = app
        .create_assistant(&tenant, json!({ "name": "Front desk" }))
        .await;
    let created = at("2026-03-02T10:00:00Z");
    let mut call: CallLogRecord = call_record(tenant.object_id(), created, CallStatus::Completed);
    call.assistant_id = Some(oid(assistant["id"].as_str().unwrap()));
    call.frejun_call_id = Some("fj-call-0001".to_owned());
    call.answered_at = Some(at("2026-03-02T10:00:02Z"));
    call.ended_at = Some(at("2026-03-02T10:01:02.500Z"));
    call.duration = Some(60.5);
    call.end_reason = Some(EndReason::CallerHungUp);
    call.cost_usd = Some(0.125);
    call.recording_url = Some("https://recordings.example/fj-call-0001.wav".to_owned());
    call.transcript = vec![
        TranscriptTurn {
            role: TranscriptRole::Assistant,
            text: "Hello, how can I help?".to_owned(),
            at: at("2026-03-02T10:00:03Z"),
            item_id: Some("item_1".to_owned()),
            interrupted: true,
            tool: None,
        },
        TranscriptTurn {
            role: TranscriptRole::User,
            text: "I'd like to book a table.".to_owned(),
            at: at("2026-03-02T10:00:05Z"),
            item_id: None,
            interrupted: false,
            tool: None,
        },
        TranscriptTurn {
            role: TranscriptRole::Tool,
            text: "find_table → ok".to_owned(),
            at: at("2026-03-02T10:00:06Z"),
            item_id: None,
            interrupted: false,
            tool: Some(ToolCallRecord {
                call_id: "call_1".to_owned(),
                name: "find_table".to_owned(),
                kind: Some(ToolKind::Http),
                arguments: r#"{"people":2}"#.to_owned(),
                result: r#"{"table":7}"#.to_owned(),
                outcome: ToolOutcome::Ok,
                error_code: None,
                latency_ms: 180,
                started_at: at("2026-03-02T10:00:05.800Z"),
                http_status: Some(200),
            }),
        },
    ];
    call.usage = Some(Usage {
        input_audio_tokens: 1200,
        output_audio_tokens: 800,
        input_text_tokens: 50,
        output_text_tokens: 40,
        ..Usage::default()
    });
    call.metrics = Some(CallMetrics {
        first_response_ms: Some(420),
        barge_ins: 1,
        audio_in_ms: 60_000,
        audio_out_ms: 20_000,
        frame_latency_p50_us: Some(900),
        frame_latency_p99_us: Some(4_000),
        failed_responses: 1,
        last_response_error: Some(CallError {
            code: "rate_limit_exceeded".to_owned(),
            message: "Rate limit reached; try again in 2s.".to_owned(),
        }),
        tool_calls: 1,
        tool_errors: 0,
    });
    call.error = Some(CallError {
        code: "none".to_owned(),
        message: "kept for the test".to_owned(),
    });
    app.insert_call(&call).await;
    let id = call.id.to_hex();

    let body = expect_status(
        app.get_as(&format!("/api/calls/{id}"), &tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    let data = &body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["user_id"], tenant.id.as_str());
    assert_eq!(data["assistant_id"], assistant["id"]);
    assert_eq!(data["frejun_call_id"], "fj-call-0001");
    assert_eq!(data["from_number"], "+14155550100");
    assert_eq!(data["to_number"], "+14155550199");
    assert_eq!(data["call_type"], "inbound");
    assert_eq!(data["call_status"], "completed");
    assert_eq!(data["platform"], "frejun");
    assert_eq!(data["created_at"], "2026-03-02T10:00:00Z");
    assert_eq!(data["started_at"], "2026-03-02T10:00:00Z");
    assert_eq!(data["answered_at"], "2026-03-02T10:00:02Z");
    assert_eq!(data["ended_at"], "2026-03-02T10:01:02.500Z");
    assert_eq!(data["duration"], 60.5);
    assert_eq!(data["end_reason"], "caller_hung_up");
    assert_eq!(data["cost_usd"], 0.125);
    assert_eq!(
        data["recording_url"],
        "https://recordings.example/fj-call-0001.wav"
    );
    assert_eq!(
        data["status_history"],
        json!([
            { "status": "initiated", "at": "2026-03-02T10:00:00Z", "source": "flow", "event": "flow.received" },
            { "status": "ringing", "at": "2026-03-02T10:00:01Z", "source": "webhook", "event": "status:ringing" },
            { "status": "in-progress", "at": "2026-03-02T10:00:02Z", "source": "webhook", "event": "status:in-progress" },
            { "status": "completed", "at": "2026-03-02T10:00:03Z", "source": "webhook", "event": "status:completed" },
        ])
    );
    assert_eq!(
        data["transcript"],
        json!([
            { "role": "assistant", "text": "Hello, how can I help?", "at": "2026-03-02T10:00:03Z", "item_id": "item_1", "interrupted": true },
            { "role": "user", "text": "I'd like to book a table.", "at": "2026-03-02T10:00:05Z", "item_id": null, "interrupted": false },
            { "role": "tool", "text": "find_table → ok", "at": "2026-03-02T10:00:06Z", "item_id": null, "interrupted": false,
              "tool": { "call_id": "call_1", "name": "find_table", "kind": "http", "arguments": "{\"people\":2}",
                        "result": "{\"table\":7}", "outcome": "ok", "error_code": null, "latency_ms": 180,
                        "started_at": "2026-03-02T10:00:05.800Z", "http_status": 200 } },
        ])
    );
    assert_eq!(data["metrics"]["tool_calls"], 1);
    assert_eq!(data["metrics"]["tool_errors"], 0);
    assert_eq!(
        data["usage"],
        json!({ "input_audio_tokens": 1200, "output_audio_tokens": 800, "input_text_tokens": 50, "output_text_tokens": 40, "input_cached_tokens": 0, "input_cached_text_tokens": 0, "input_cached_audio_tokens": 0 })
    );
    assert_eq!(data["metrics"]["first_response_ms"], 420);
    assert_eq!(data["metrics"]["barge_ins"], 1);
    assert_eq!(data["metrics"]["failed_responses"], 1);
    assert_eq!(
        data["metrics"]["last_response_error"],
        json!({"code": "rate_limit_exceeded", "message": "Rate limit reached; try again in 2s."})
    );
    assert_eq!(data["error"]["code"], "none");

    let status = expect_status(
        app.get_as(&format!("/api/calls/{id}/status"), &tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    let status = &status["data"];
    assert_eq!(status["id"], id.as_str());
    assert_eq!(status["call_status"], "completed");
    assert_eq!(status["status_history"], data["status_history"]);
    assert_eq!(status["answered_at"], "2026-03-02T10:00:02Z");
    assert_eq!(status["ended_at"], "2026-03-02T10:01:02.500Z");
    assert_eq!(status["duration"], 60.5);
    assert_eq!(status["end_reason"], "caller_hung_up");
    assert!(status.get("transcript").is_none(), "{status}");

    // The summary in lists has no transcript.
    let list = expect_status(
        app.get_as("/api/calls", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(list["data"][0].get("transcript").is_none());
    assert!(!list.to_string().contains("book a table"));

    // Unknown calls.
    let ghost = ObjectId::new();
    for path in [
        format!("/api/calls/{ghost}"),
        format!("/api/calls/{ghost}/status"),
    ] {
        expect_error(
            app.get_as(&path, &tenant.api_key).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn stats_add_up_the_calls_of_the_period() {
    let f = fixture().await;
    let window = "created_after=2026-03-01T00:00:00Z&created_before=2026-03-05T00:00:00Z";
    let body = expect_status(
        f.app
            .get_as(&format!("/api/calls/stats?{window}"), &f.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    let stats = &body["data"];
    assert_eq!(stats["created_after"], "2026-03-01T00:00:00Z");
    assert_eq!(stats["created_before"], "2026-03-05T00:00:00Z");

    // The expected figures, from the specs.
    let lower = at("2026-03-01T00:00:00Z");
    let upper = at("2026-03-05T00:00:00Z");
    let in_window: Vec<&Spec> = f
        .specs
        .iter()
        .filter(|spec| at(spec.at) >= lower && at(spec.at) < upper)
        .collect();
    assert_eq!(in_window.len(), 9);
    let total_duration: f64 = in_window.iter().filter_map(|spec| spec.duration).sum();
    let durations: Vec<f64> = in_window.iter().filter_map(|spec| spec.duration).collect();
    let average = total_duration / durations.len() as f64;
    let total_cost: f64 = in_window.iter().filter_map(|spec| spec.cost).sum();

    assert_eq!(stats["total_calls"], 9, "{stats}");
    assert!(
        close(
            stats["total_duration_seconds"].as_f64().unwrap(),
            total_duration
        ),
        "{stats}"
    );
    assert!(close(total_duration, 210.75));
    assert!(
        close(stats["average_duration_seconds"].as_f64().unwrap(), average),
        "average over the calls that have a duration: {stats}"
    );
    assert!(
        close(stats["total_cost_usd"].as_f64().unwrap(), total_cost),
        "{stats}"
    );
    assert!(close(total_cost, 0.47));

    let counts = |field: &str| -> BTreeMap<String, u64> {
        stats[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {stats}"))
            .iter()
            .map(|entry| {
                (
                    entry["key"].as_str().unwrap().to_owned(),
                    entry["calls"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut by_status = BTreeMap::new();
    let mut by_type = BTreeMap::new();
    for spec in &in_window {
        *by_status
            .entry(spec.status.as_str().to_owned())
            .or_insert(0u64) += 1;
        *by_type.entry(spec.kind.as_str().to_owned()).or_insert(0u64) += 1;
    }
    assert_eq!(counts("by_status"), by_status);
    assert_eq!(
        by_status,
        BTreeMap::from([
            ("busy".to_owned(), 1),
            ("completed".to_owned(), 3),
            ("failed".to_owned(), 1),
            ("in-progress".to_owned(), 1),
            ("initiated".to_owned(), 1),
            ("no-answer".to_owned(), 1),
            ("ringing".to_owned(), 1),
        ])
    );
    assert_eq!(counts("by_type"), by_type);

    // Per assistant (null for calls without one) and per UTC day: calls, duration, cost.
    let groups = |field: &str| -> Vec<(Option<String>, u64, f64, f64)> {
        stats[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {stats}"))
            .iter()
            .map(|entry| {
                (
                    entry["key"].as_str().map(str::to_owned),
                    entry["calls"].as_u64().unwrap(),
                    entry["total_duration_seconds"].as_f64().unwrap(),
                    entry["total_cost_usd"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let expected_groups = |key: &dyn Fn(&Spec) -> Option<String>| {
        let mut groups: BTreeMap<Option<String>, (u64, f64, f64)> = BTreeMap::new();
        for spec in &in_window {
            let entry = groups.entry(key(spec)).or_default();
            entry.0 += 1;
            entry.1 += spec.duration.unwrap_or(0.0);
            entry.2 += spec.cost.unwrap_or(0.0);
        }
        groups
    };
    let same = |actual: Vec<(Option<String>, u64, f64, f64)>,
                expected: BTreeMap<Option<String>, (u64, f64, f64)>,
                what: &str| {
        let actual_map: BTreeMap<Option<String>, (u64, f64, f64)> = actual
            .iter()
            .cloned()
            .map(|(key, calls, duration, cost)| (key, (calls, duration, cost)))
            .collect();
        assert_eq!(actual.len(), actual_map.len(), "{what}: keys are unique");
        assert_eq!(
            actual_map.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (key, (calls, duration, cost)) in &expected {
            let (actual_calls, actual_duration, actual_cost) = actual_map[key];
            assert_eq!(actual_calls, *calls, "{what} {key:?}");
            assert!(
                close(actual_duration, *duration),
                "{what} {key:?}: {actual_duration}"
            );
            assert!(close(actual_cost, *cost), "{what} {key:?}: {actual_cost}");
        }
    };
    let per_assistant = groups("per_assistant");
    same(
        per_assistant.clone(),
        expected_groups(&|spec| spec.assistant.map(|index| f.assistants[index].clone())),
        "per_assistant",
    );
    // Busiest first.
    let calls: Vec<u64> = per_assistant.iter().map(|group| group.1).collect();
    assert!(calls.windows(2).all(|pair| pair[0] >= pair[1]), "{calls:?}");

    let per_day = groups("per_day");
    same(
        per_day.clone(),
        expected_groups(&|spec| Some(spec.at[..10].to_owned())),
        "per_day",
    );
    let days: Vec<String> = per_day
        .iter()
        .map(|group| group.0.clone().unwrap())
        .collect();
    assert_eq!(days, ["2026-03-02", "2026-03-03", "2026-03-04"], "in order");

    // Narrowed to one assistant.
    let x = &f.assistants[0];
    let body = expect_status(
        f.app
            .get_as(
                &format!("/api/calls/stats?{window}&assistant_id={x}"),
                &f.tenant.api_key,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let narrowed = &body["data"];
    assert_eq!(narrowed["total_calls"], 3, "c1, c2, c6: {narrowed}");
    assert!(close(
        narrowed["total_duration_seconds"].as_f64().unwrap(),
        90.5
    ));
    assert!(close(
        narrowed["average_duration_seconds"].as_f64().unwrap(),
        45.25
    ));
    assert!(close(narrowed["total_cost_usd"].as_f64().unwrap(), 0.17));
    assert_eq!(narrowed["per_assistant"].as_array().unwrap().len(), 1);

    // A period without calls.
    let body = expect_status(
        f.app
            .get_as(
                "/api/calls/stats?created_after=2025-01-01T00:00:00Z&created_before=2025-02-01T00:00:00Z",
                &f.tenant.api_key,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let empty = &body["data"];
    assert_eq!(empty["total_calls"], 0);
    assert_eq!(empty["total_duration_seconds"], 0.0);
    assert_eq!(empty["average_duration_seconds"], Value::Null);
    assert_eq!(empty["by_status"], json!([]));
    assert_eq!(empty["per_day"], json!([]));

    // The default period is the last 30 days, which holds none of these calls.
    let body = expect_status(
        f.app.get_as("/api/calls/stats", &f.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let default_period = &body["data"];
    let after =
        chrono::DateTime::parse_from_rfc3339(default_period["created_after"].as_str().unwrap())
            .unwrap();
    let before =
        chrono::DateTime::parse_from_rfc3339(default_period["created_before"].as_str().unwrap())
            .unwrap();
    assert_eq!((before - after).num_days(), 30);
    assert!((chrono::Utc::now() - before.with_timezone(&chrono::Utc)).num_seconds() < 60);
}

#[tokio::test]
async fn bad_query_parameters_are_refused_naming_them() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let cases = [
        ("/api/calls?status=bogus", "status"),
        ("/api/calls?status=Completed", "status"),
        ("/api/calls/active?status=bogus", "status"),
        ("/api/calls?call_type=sideways", "call_type"),
        ("/api/calls?assistant_id=nope", "assistant_id"),
        ("/api/calls?from=abc", "from"),
        ("/api/calls?to=0415555", "to"),
        ("/api/calls?phone_number=%2B0123", "phone_number"),
        ("/api/calls?created_after=yesterday", "created_after"),
        (
            "/api/calls?created_before=2026-13-01T00:00:00Z",
            "created_before",
        ),
        ("/api/calls?user_id=64b000000000000000000001", "user_id"),
        (
            "/api/calls/stats?created_after=2026-03-05T00:00:00Z&created_before=2026-03-01T00:00:00Z",
            "created_after",
        ),
        (
            "/api/calls/stats?created_after=2024-01-01T00:00:00Z&created_before=2026-01-01T00:00:00Z",
            "created_after",
        ),
        ("/api/calls/stats?assistant_id=nope", "assistant_id"),
    ];
    for (path, field) in cases {
        let body = expect_error(
            app.get_as(path, &tenant.api_key).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(
            error_message(&body).starts_with(&format!("{field}:")),
            "{path}: {body}"
        );
    }
    for path in [
        "/api/calls?colour=red",
        "/api/calls?limit=many",
        "/api/calls/stats?limit=5",
    ] {
        expect_error(
            app.get_as(path, &tenant.api_key).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    let body = expect_error(
        app.get_as("/api/admin/calls?user_id=nope", &app.admin_token())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error_message(&body).starts_with("user_id:"), "{body}");
}
