//! Live control of a call from an instance that does not bridge it: the request travels as a
//! command document to the call's owner, which runs it on the session, and the answer comes
//! back through the requester's change stream. Hang-up too: FreJun is asked by the instance
//! the tenant called, and the owner ends the stream at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::status::{ReportSource, StatusEvent};
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::domain::cluster::{CallOwner, InstanceId};
use voxbridge::sim::caller::ReceivedEvent;
use voxbridge::sim::fake_openai::{Behaviour, Mode, Pace, ScriptedTurn};
use voxbridge::storage::call_logs::CallLogRecord;

use super::instances::{Cluster, FREJUN_KEY, Instance};
use crate::bridge::{
    CALLER_NUMBER, assert_no_violations, assert_slots_freed, configure_assistant, ended_call,
    place_call,
};
use crate::helpers::{TestApp, TestDatabase, call_record, expect_error, expect_status, poll_until};

const CONTEXT: &str = "The caller's order A-1001 shipped this morning.";

/// Requests sent in a row per path to measure control latency.
const LATENCY_SAMPLES: usize = 100;

#[tokio::test]
async fn a_call_on_one_instance_is_controlled_through_another() {
    // The greeting is a minute-long announcement: the assistant is speaking when interrupted.
    let turns = vec![ScriptedTurn::tone(
        "A very long announcement.",
        440.0,
        60_000,
    )];
    let cluster = Cluster::start(
        Behaviour {
            pace: Pace::Realtime(1.0),
            ..Behaviour::with_mode(Mode::Scripted { turns })
        },
        &[],
    )
    .await;
    let (a, b) = (&cluster.a.app, &cluster.b.app);
    let tenant = a.calling_tenant("Cluster", "+14155550901", 5).await;
    configure_assistant(a, &tenant, "pcm24k", "8k", Some("Hello")).await;
    let frejun_call = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, caller) = place_call(a, &tenant, &frejun_call.id).await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_chunks
                >= 2)
            .await,
        "the assistant is speaking"
    );
    let key = &tenant.tenant.api_key;

    // A bridges the call; B sees it bridged, from the call log.
    let owner = a
        .call_log(&call_id)
        .await
        .owner
        .expect("the call has an owner");
    assert_eq!(owner.instance_id.as_str(), cluster.a.id);
    let detail = expect_status(
        b.get_as(&format!("/api/calls/{call_id}"), key).await,
        StatusCode::OK,
    )
    .await;
    let bridged = &detail["data"]["bridged"];
    assert!(
        bridged["since"].is_string() && bridged["lease_until"].is_string(),
        "{detail}"
    );
    let local_on_b = expect_status(
        b.get_as("/api/websocket/streams", key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(local_on_b["count"], 0, "B does not bridge it itself");

    // Interrupt through B: FreJun clears, OpenAI's response is cancelled.
    let interrupt = format!("/api/calls/{call_id}/interrupt");
    let done = expect_status(b.post_as(&interrupt, key, &json!({})).await, StatusCode::OK).await;
    assert_eq!(done["data"]["sent_to_frejun"], "clear", "{done}");
    assert_eq!(done["data"]["response_cancelled"], true, "{done}");
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.clears >= 1)
            .await,
        "the caller got a clear"
    );
    assert!(
        cluster
            .openai
            .wait_until(Duration::from_secs(5), |sessions| sessions
                .first()
                .is_some_and(|session| session.cancels >= 1))
            .await,
        "OpenAI got response.cancel"
    );

    // Clear through B: another clear at the caller.
    let clear = format!("/api/calls/{call_id}/clear");
    let clears = caller.received().clears;
    let done = expect_status(b.post_as(&clear, key, &json!({})).await, StatusCode::OK).await;
    assert_eq!(done["data"]["sent_to_frejun"], "clear", "{done}");
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.clears > clears)
            .await,
        "the caller got a second clear"
    );

    // Context through B: a system message at OpenAI.
    let done = expect_status(
        b.post_as(
            &format!("/api/calls/{call_id}/context"),
            key,
            &json!({"text": CONTEXT}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["data"]["context_added"], true, "{done}");
    assert!(
        cluster
            .openai
            .wait_until(Duration::from_secs(5), |sessions| {
                sessions[0]
                    .events_of("conversation.item.create")
                    .any(|event| {
                        event.json["item"]["role"] == "system"
                            && event.json["item"]["content"][0]["text"] == CONTEXT
                    })
            })
            .await,
        "OpenAI got the context as a system message"
    );

    // One chunk the caller received, through B: FreJun's interrupt for it.
    let chunk_id = caller.received().chunk_ids[0];
    let done = expect_status(
        b.post_as(&interrupt, key, &json!({"chunk_id": chunk_id}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["data"]["sent_to_frejun"], "interrupt", "{done}");
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| {
                received.events.iter().any(|event| {
                    matches!(event, ReceivedEvent::Interrupt { chunk_id: Some(id), .. } if *id == chunk_id)
                })
            })
            .await,
        "the caller got FreJun's interrupt for chunk {chunk_id}"
    );

    // The time a control request takes, through B and on A itself.
    let remote = clear_latencies(b, &clear, key).await;
    let local = clear_latencies(a, &clear, key).await;
    let (remote_p50, remote_p99) = percentiles(remote);
    let (local_p50, local_p99) = percentiles(local);
    eprintln!(
        "control through another instance: p50 {remote_p50:.1} ms, p99 {remote_p99:.1} ms \
         ({LATENCY_SAMPLES} sequential /clear)"
    );
    eprintln!(
        "control on the bridging instance: p50 {local_p50:.1} ms, p99 {local_p99:.1} ms \
         ({LATENCY_SAMPLES} sequential /clear)"
    );
    // Every request through B went to A as a command that A ran.
    let done_commands = r#"voxbridge_control_command_seconds_count{outcome="done"}"#;
    assert!(
        cluster.b.metric(done_commands).await >= (LATENCY_SAMPLES + 4) as f64,
        "B counted its commands"
    );

    // Hang-up through B: FreJun is asked, and A ends the stream at once.
    expect_status(
        b.post_as(&format!("/api/calls/{call_id}/hangup"), key, &json!({}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let closed = summary
        .received
        .closed
        .clone()
        .expect("voxbridge closed the stream");
    assert!(closed.by_server, "{closed:?}");
    assert_eq!(closed.reason, "hung_up_by_api", "{closed:?}");
    let at_frejun = &cluster.teler.calls()[0];
    assert!(at_frejun.hung_up, "the phone call was hung up at FreJun");
    assert_eq!(
        at_frejun.hangup_reason.as_deref(),
        Some(EndReason::HungUpByApi.frejun_hangup_reason().as_str())
    );
    assert_no_violations(&cluster.openai, &summary.received);
    let call = ended_call(a, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::HungUpByApi));
    assert_slots_freed(a, &tenant).await;

    // Over: neither instance can control it any more.
    for app in [b, a] {
        expect_error(
            app.post_as(&clear, key, &json!({})).await,
            StatusCode::CONFLICT,
            "call_not_live",
        )
        .await;
    }
}

/// `POST path` sent `LATENCY_SAMPLES` times in a row: each request's wall time. Every one must
/// answer 200.
async fn clear_latencies(app: &TestApp, path: &str, key: &str) -> Vec<Duration> {
    let mut times = Vec::with_capacity(LATENCY_SAMPLES);
    let mut failures = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        let response = app.post_as(path, key, &json!({})).await;
        let status = response.status();
        let body = response.text().await.expect("body read");
        times.push(started.elapsed());
        if status != StatusCode::OK {
            failures.push(format!("{status}: {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not every clear answered 200: {failures:?}"
    );
    times
}

/// The median and the 99th percentile (nearest rank), in milliseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let rank = |p: f64| {
        let index = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1_000.0
    };
    (rank(0.50), rank(0.99))
}

#[tokio::test]
async fn a_silent_owner_answers_504_and_its_command_never_runs() {
    let openai = voxbridge::sim::fake_openai::FakeOpenAi::start(Behaviour::default())
        .await
        .unwrap();
    let teler = voxbridge::sim::fake_teler::FakeTeler::start()
        .await
        .unwrap();
    let database = TestDatabase::migrated().await;
    let b = Instance::start(
        database,
        "b",
        &openai,
        &teler,
        &[("VOXBRIDGE__CLUSTER__COMMAND_TIMEOUT_MS", "500")],
    )
    .await;
    let app = &b.app;
    let tenant = app.create_tenant("Silent", "silent@owner.example").await;
    let other = app.create_tenant("Other", "other@owner.example").await;

    // A live call whose owner is an instance nobody runs, with a lease that still runs.
    let now = bson::DateTime::now();
    let mut call: CallLogRecord = call_record(tenant.object_id(), now, CallStatus::InProgress);
    call.status_history.push(StatusEvent {
        status: CallStatus::InProgress,
        at: now,
        source: Some(ReportSource::Bridge),
        event: Some("media.started".to_owned()),
    });
    call.owner = Some(CallOwner {
        instance_id: InstanceId::parse("ghost-0000").unwrap(),
        started_at: now,
        lease_until: bson::DateTime::from_millis(now.timestamp_millis() + 60_000),
    });
    app.insert_call(&call).await;
    let call_id = call.id.to_string();
    let interrupt = format!("/api/calls/{call_id}/interrupt");

    let started = Instant::now();
    expect_error(
        app.post_as(&interrupt, &tenant.api_key, &json!({})).await,
        StatusCode::GATEWAY_TIMEOUT,
        "owner_not_responding",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it waited the command timeout"
    );
    let commands: Vec<bson::Document> = poll_until(
        Duration::from_secs(5),
        || async {
            use futures_util::TryStreamExt as _;
            app.storage
                .collection::<bson::Document>("call_commands")
                .find(bson::doc! { "call_id": call.id })
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("read")
        },
        |commands: &Vec<bson::Document>| !commands.is_empty(),
    )
    .await;
    assert_eq!(commands.len(), 1, "{commands:?}");
    let command = &commands[0];
    assert_eq!(command.get_str("status"), Ok("expired"), "{command}");
    assert_eq!(command.get_str("owner"), Ok("ghost-0000"), "{command}");
    assert_eq!(command.get_str("issued_by"), Ok(b.id.as_str()), "{command}");
    assert_eq!(
        command
            .get_document("request")
            .and_then(|request| request.get_str("kind")),
        Ok("interrupt")
    );
    let expired = r#"voxbridge_control_command_seconds_count{outcome="expired"}"#;
    assert_eq!(b.metric(expired).await, 1.0);

    // Another tenant's call, and a call that does not exist: 404, nothing written.
    expect_error(
        app.post_as(&interrupt, &other.api_key, &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unknown = voxbridge::domain::ids::CallId::new();
    expect_error(
        app.post_as(
            &format!("/api/calls/{unknown}/clear"),
            &tenant.api_key,
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.count("call_commands").await, 1);
}
