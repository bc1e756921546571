//! A call in progress when the service is told to stop: the real binary is started, a call is
//! placed, the process is signalled (the first SIGTERM drains and keeps the call, the second
//! ends it at once), and the call log must be complete once it has exited.

use std::process::Command;
use std::time::Duration;

use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi, Mode, Pace, ScriptedTurn};

use super::{configure_assistant, place_call};
use crate::helpers::TestDatabase;

#[tokio::test]
async fn a_call_log_is_complete_after_a_second_sigterm_mid_call() {
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(8.0),
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone(
                "Thanks for calling, how can I help?",
                440.0,
                2_000,
            )],
        })
    })
    .await
    .unwrap();
    let database = TestDatabase::migrated().await;
    let realtime = fake.url();
    let (mut server, app, _state_dir) = crate::helpers::serve_binary(
        database,
        &[("VOXBRIDGE__OPENAI__REALTIME_URL", realtime.as_str())],
    )
    .await;

    let tenant = app.calling_tenant("Sigterm", "+14155550501", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hello")).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-sigterm").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 12_000)
            .await,
        "the greeting was heard"
    );
    // Let a flush carry the transcript, so the test checks both paths: batch and final.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
    // The first signal drains: the instance stops being ready, the call goes on.
    let ready = crate::helpers::poll_until(
        Duration::from_secs(5),
        || async { app.get("/ready").await.status() },
        |status| *status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(ready, reqwest::StatusCode::SERVICE_UNAVAILABLE, "draining");
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.closed.is_none())
            .await,
        "the call goes on while the instance drains"
    );
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success(), "the second signal stops at once");
    let summary = caller.wait_closed(Duration::from_secs(20)).await.unwrap();
    let closed = summary
        .received
        .closed
        .expect("the stream was closed by the server");
    assert_eq!(closed.code, 1001, "going away");
    let exited = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success(), "clean exit: {exited:?}");

    // The process is gone: everything below was written before it exited.
    let call = app.call_log(&call_id).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::Shutdown));
    assert!(call.ended_at.is_some());
    assert!(call.duration.is_some());
    assert!(
        call.transcript
            .iter()
            .any(|turn| turn.role == voxbridge::domain::call::record::TranscriptRole::Assistant),
        "{:#?}",
        call.transcript
    );
    assert!(call.usage.is_some());
    let metrics = call.metrics.expect("metrics");
    assert!(metrics.audio_out_ms >= 1_500, "{metrics:?}");
    assert!(
        app.held_slots(&tenant).await.is_empty(),
        "the slot was freed"
    );
}
