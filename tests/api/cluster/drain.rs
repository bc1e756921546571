//! Draining on SIGTERM: the instance stops admitting calls (`/ready`, flows and media streams
//! answer 503 `draining`, so FreJun and the load balancer go to another instance), keeps its
//! live calls until they end, and stops by itself; at the drain deadline the calls left say the
//! closing line and end with `shutdown`; a second signal ends them at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use voxbridge::audio::tone::level_dbfs;
use voxbridge::domain::call::record::TranscriptRole;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::caller::{CallerConfig, CallerError, ReceivedEvent, SimulatedCaller};
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi, Mode, ResponseStatus, SessionRecord};
use voxbridge::storage::call_logs::CallLogRecord;

use super::instances::{Cluster, FREJUN_KEY};
use crate::bridge::{
    CALLER_NUMBER, assert_no_violations, assert_slots_freed, call_id_of, configure_assistant,
    ended_call, place_call, stream_flow, tone_then_hear_echo, tone_then_hear_echo_paced,
};
use crate::helpers::{
    CallingTenant, TestApp, assert_error_envelope, expect_error, flow_body, json_body, poll_until,
};

/// The closing line the instances are configured with.
const CLOSING_LINE: &str = "This line is being restarted; please call again. Goodbye.";

/// Echo samples (8 kHz) that prove an exchange went through: most of the caller's 1 s tone.
const ECHO: u64 = 7_000;

/// A tenant with an 8 kHz assistant without a greeting (so the assistant speaks only when
/// asked), made on `app`.
async fn tenant(app: &TestApp, name: &str, number: &str) -> CallingTenant {
    let tenant = app.calling_tenant(name, number, 5).await;
    configure_assistant(app, &tenant, "pcm24k", "8k", None).await;
    tenant
}

/// Waits until the fake's `session` (the n-th opened) has finished every answer and `caller`,
/// its call, has received all of it (8 samples a millisecond at 8 kHz).
async fn answer_heard_in_full(openai: &FakeOpenAi, session: usize, caller: &SimulatedCaller) {
    assert!(
        openai
            .wait_until(Duration::from_secs(5), |sessions| sessions[session]
                .responses
                .iter()
                .all(|response| response.status != ResponseStatus::InProgress))
            .await,
        "the answer ended"
    );
    let sent_ms: u64 = openai.sessions()[session]
        .responses
        .iter()
        .map(|response| response.audio_ms_sent)
        .sum();
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.audio_samples
                + 80
                >= sent_ms * 8)
            .await,
        "the answers' {sent_ms} ms arrived: {} samples",
        caller.received().audio_samples
    );
}

/// Waits until `app`'s `/ready` says `draining`.
async fn wait_draining(app: &TestApp) {
    let status = poll_until(
        Duration::from_secs(5),
        || async { app.get("/ready").await.status() },
        |status| *status == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "/ready after SIGTERM"
    );
    expect_error(
        app.get("/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
    )
    .await;
}

/// Whether OpenAI got the closing line (in the instruction of a system message).
fn closing_line_asked(sessions: &[SessionRecord]) -> bool {
    sessions.iter().any(|session| {
        session.events_of("conversation.item.create").any(|event| {
            event.json["item"]["role"] == "system"
                && event.json["item"]["content"][0]["text"]
                    .as_str()
                    .is_some_and(|text| text.contains(CLOSING_LINE))
        })
    })
}

#[tokio::test]
async fn a_draining_instance_keeps_its_call_and_sends_new_ones_elsewhere() {
    let mut cluster = Cluster::start(
        Behaviour::with_mode(Mode::Echo),
        &[("VOXBRIDGE__BRIDGE__SESSION_CLOSING_LINE", CLOSING_LINE)],
    )
    .await;
    let (a, b) = (&cluster.a.app, &cluster.b.app);
    let tenant = tenant(a, "Drain", "+14155550911").await;
    let frejun_call = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, mut caller) = place_call(a, &tenant, &frejun_call.id).await;
    assert!(
        tone_then_hear_echo(&mut caller, 8_000, ECHO).await,
        "the echo came back before the drain"
    );

    cluster.a.signal("TERM");
    wait_draining(a).await;

    // A new call's flow: refused by A with a retry hint, admitted by B.
    let second = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let body = flow_body(&second.id, CALLER_NUMBER, &tenant.number);
    let refused = a.post_flow(Some(&tenant.key), None, &body).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    assert_error_envelope(&json_body(refused).await, "draining");
    let flow = stream_flow(b, &tenant, &second.id).await;
    let second_call_id = call_id_of(&flow);
    // Its media stream, offered to A by mistake, is refused without being claimed…
    let config = CallerConfig::from_flow(&flow, &second.id).expect("a stream flow");
    let mut to_a = config.clone();
    to_a.ws_url
        .set_port(Some(a.settings.server.port))
        .expect("a port can be set");
    match SimulatedCaller::connect(to_a, Duration::from_secs(5)).await {
        Err(CallerError::Rejected { status: 503, body }) => {
            assert!(body.contains("draining"), "{body}");
        }
        other => panic!(
            "a draining instance admitted a media stream: {:?}",
            other.err()
        ),
    }
    // …so B bridges it.
    let mut second_caller = SimulatedCaller::connect(config, Duration::from_secs(5))
        .await
        .expect("B admits the media stream");
    second_caller.send_start().await.expect("start sent");
    assert!(
        tone_then_hear_echo(&mut second_caller, 8_000, ECHO).await,
        "B bridges the new call"
    );
    second_caller.hang_up().await.unwrap();
    let on_b = ended_call(b, &second_call_id, Duration::from_secs(10)).await;
    assert_eq!(on_b.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(
        on_b.owner.expect("an owner").instance_id.as_str(),
        cluster.b.id
    );

    // The call on A goes on after the signal, until the caller hangs up.
    let heard = caller.received().audio_samples;
    assert!(
        tone_then_hear_echo_paced(&mut caller, 8_000, heard + ECHO, true).await,
        "the echo still comes back after SIGTERM: {} samples after {heard}, closed: {:?}",
        caller.received().audio_samples,
        caller.received().closed
    );
    answer_heard_in_full(&cluster.openai, 0, &caller).await;
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&cluster.openai, &summary.received);
    let call = ended_call(a, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(
        call.ended_at.is_some() && call.duration.is_some(),
        "{call:#?}"
    );
    let answers = call
        .transcript
        .iter()
        .filter(|turn| turn.role == TranscriptRole::Assistant)
        .count();
    assert!(
        answers >= 2,
        "both echoes are in the transcript: {:#?}",
        call.transcript
    );
    assert!(call.usage.is_some(), "{call:#?}");
    assert!(
        call.metrics.as_ref().expect("metrics").audio_out_ms >= 1_500,
        "{:?}",
        call.metrics
    );
    assert!(
        !closing_line_asked(&cluster.openai.sessions()),
        "a call that ended by itself says no closing line"
    );
    assert_slots_freed(a, &tenant).await;

    // Its last call over, A stops by itself.
    let exited = cluster
        .a
        .exited(Duration::from_secs(10))
        .await
        .expect("A stopped by itself once its call ended");
    assert!(exited.success(), "clean exit: {exited:?}");
    assert!(
        b.get("/ready").await.status().is_success(),
        "B still serves"
    );
}

#[tokio::test]
async fn the_drain_deadline_ends_a_call_with_the_closing_line() {
    let drain_timeout = Duration::from_secs(2);
    let mut cluster = Cluster::start(
        Behaviour::with_mode(Mode::Echo),
        &[
            ("VOXBRIDGE__CLUSTER__DRAIN_TIMEOUT_SECS", "2"),
            ("VOXBRIDGE__CLUSTER__DRAIN_CLOSING_SECS", "5"),
            ("VOXBRIDGE__BRIDGE__SESSION_CLOSING_LINE", CLOSING_LINE),
        ],
    )
    .await;
    let a = &cluster.a.app;
    let tenant = tenant(a, "Deadline", "+14155550912").await;
    let frejun_call = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, mut caller) = place_call(a, &tenant, &frejun_call.id).await;
    assert!(
        tone_then_hear_echo(&mut caller, 8_000, ECHO).await,
        "the echo came back"
    );
    // The echo is over (everything after the signal is the closing line), and the caller says
    // nothing more: the call would go on.
    answer_heard_in_full(&cluster.openai, 0, &caller).await;
    let heard = caller.received().audio_samples;

    let signalled = Instant::now();
    cluster.a.signal("TERM");
    wait_draining(a).await;
    let summary = caller.wait_closed(Duration::from_secs(20)).await.unwrap();
    let closed = summary
        .received
        .closed
        .clone()
        .expect("voxbridge closed the stream");
    assert!(closed.by_server, "{closed:?}");
    assert_eq!((closed.code, closed.reason.as_str()), (1001, "shutdown"));
    assert!(
        closed.at >= signalled + drain_timeout,
        "the call was kept until the drain deadline"
    );

    // After the deadline, and only then, the caller heard the closing line (the fake's answer to
    // a plain response.create: its 440 Hz greeting tone).
    let after: Vec<Instant> = summary
        .received
        .events
        .iter()
        .filter_map(|event| match event {
            ReceivedEvent::Audio { at, .. } if *at > signalled => Some(*at),
            _ => None,
        })
        .collect();
    assert!(!after.is_empty(), "the closing line was heard");
    assert!(
        after[0] >= signalled + drain_timeout,
        "nothing was said before the deadline"
    );
    let closing = &summary.received.audio[heard as usize..];
    assert!(closing.len() >= 2_400, "{} samples", closing.len());
    assert!(
        level_dbfs(closing, 440.0, 8_000) > -30.0,
        "the closing line is the fake's answer"
    );
    assert!(
        closing_line_asked(&cluster.openai.sessions()),
        "OpenAI was given the closing line"
    );
    assert_no_violations(&cluster.openai, &summary.received);

    let call = stopped_after_ending(&mut cluster, &call_id).await;
    assert!(call.call_status.is_terminal(), "{call:#?}");
    assert!(cluster.a.app.held_slots(&tenant).await.is_empty());
    // The phone call was hung up too (voxbridge ended it), before the process stopped.
    let at_frejun = &cluster.teler.calls()[0];
    assert!(at_frejun.hung_up, "hung up at FreJun");
    assert_eq!(at_frejun.hangup_reason.as_deref(), Some("SHUTDOWN"));
}

#[tokio::test]
async fn a_second_signal_ends_the_calls_at_once() {
    let mut cluster = Cluster::start(
        Behaviour::with_mode(Mode::Echo),
        &[("VOXBRIDGE__BRIDGE__SESSION_CLOSING_LINE", CLOSING_LINE)],
    )
    .await;
    let a = &cluster.a.app;
    let tenant = tenant(a, "Twice", "+14155550913").await;
    let frejun_call = cluster
        .teler
        .receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, mut caller) = place_call(a, &tenant, &frejun_call.id).await;
    assert!(tone_then_hear_echo(&mut caller, 8_000, ECHO).await);

    cluster.a.signal("TERM");
    wait_draining(a).await;
    // Still live (the drain time is 15 minutes)…
    let heard = caller.received().audio_samples;
    assert!(
        tone_then_hear_echo_paced(&mut caller, 8_000, heard + ECHO, true).await,
        "the call goes on while draining: {} samples after {heard}, closed: {:?}",
        caller.received().audio_samples,
        caller.received().closed
    );
    // …until a second signal.
    cluster.a.signal("INT");
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let closed = summary
        .received
        .closed
        .clone()
        .expect("closed by voxbridge");
    assert_eq!((closed.code, closed.reason.as_str()), (1001, "shutdown"));
    stopped_after_ending(&mut cluster, &call_id).await;
    assert!(
        !closing_line_asked(&cluster.openai.sessions()),
        "no closing line on a second signal"
    );
}

/// Waits for A to exit by itself (successfully) and answers the call log, which it must have
/// completed before exiting: ended with `shutdown`, metrics written.
async fn stopped_after_ending(cluster: &mut Cluster, call_id: &str) -> CallLogRecord {
    let exited = cluster
        .a
        .exited(Duration::from_secs(15))
        .await
        .expect("A stopped");
    assert!(exited.success(), "clean exit: {exited:?}");
    let call = cluster.a.app.call_log(call_id).await;
    assert_eq!(call.end_reason, Some(EndReason::Shutdown), "{call:#?}");
    assert!(call.metrics.is_some(), "{call:#?}");
    call
}
