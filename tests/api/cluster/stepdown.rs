//! A MongoDB primary that steps down mid-call loses no call-log field and no control command.
//!
//! The app runs over a three-member replica set of this test's own. A call exchanges audio and
//! its first turns are stored; the primary then steps down as the caller takes a second turn,
//! so the call's keeper (flushing every 200 ms here) writes that turn while the set has no
//! primary (about a second: see `LocalReplicaSet::step_down`); meanwhile a second instance
//! clears the call's playback and adds context through control commands, which must arrive
//! (the owner's change stream resumes on the new primary); a third turn goes over the new
//! primary, and the caller hangs up. The final call log must hold everything: both status
//! events of the bridge, the end reason, every transcript turn once and in order, what was
//! stored before the step-down, usage, cost, metrics; the slot must be freed. The driver's
//! retryable writes and server selection, and the keeper's retries, carry the writes over the
//! election.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::record::TranscriptTurn;
use voxbridge::domain::call::status::{MEDIA_ENDED, MEDIA_STARTED};
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::local_mongodb::{self, LocalReplicaSet};
use voxbridge::settings::Settings;
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi, Mode};
use voxbridge::sim::fake_teler::FakeTeler;
use voxbridge::storage::call_logs::CallLogRecord;
use voxbridge::storage::migrations;

use crate::bridge::{
    CALLER_NUMBER, assert_no_violations, assert_slots_freed, configure_assistant, ended_call,
    place_call, tone_then_hear_echo,
};
use crate::helpers::{TestApp, connect, poll_until, unique_database};

/// The FreJun key `calling_tenant` stores.
const FREJUN_KEY: &str = "fj-test-key-0001";
/// What the fake transcribes the caller's three turns as.
const BEFORE: &str = "said before the step-down";
const DURING: &str = "said during the step-down";
const AFTER: &str = "said after the step-down";
/// What the other instance tells the assistant during the step-down.
const CONTEXT: &str = "The caller's order shipped during the election.";

#[tokio::test]
async fn a_primary_stepping_down_mid_call_loses_no_call_log_field_and_no_command() {
    let binary =
        local_mongodb::find_or_fetch_binary(&local_mongodb::cache_dir(Path::new(".voxbridge")))
            .await
            .expect("a mongod binary");
    let base_dir = tempfile::tempdir().unwrap();
    let set = LocalReplicaSet::start(&binary, base_dir.path(), 3)
        .await
        .expect("the replica set starts");

    let openai = FakeOpenAi::start(Behaviour {
        user_transcripts: [BEFORE, DURING, AFTER].map(str::to_owned).to_vec(),
        ..Behaviour::with_mode(Mode::Echo)
    })
    .await
    .unwrap();
    let teler = FakeTeler::start().await.unwrap();
    // The driver re-checks the members every 500 ms (its floor) and waits up to 10 s for a
    // primary: a write issued during the election (about a second here) waits for its end.
    let uri = format!("{}&heartbeatFrequencyMS=500", set.uri());
    let mut settings = Settings::for_tests(&uri, &unique_database());
    settings.mongodb.server_selection_timeout_ms = 10_000;
    settings.openai.realtime_url = openai.url();
    settings.frejun.api_base_url = teler.base_url();
    settings.bridge.heartbeat_interval_secs = 1;
    settings.bridge.peer_timeout_secs = 3;
    settings.bridge.log_flush_interval_ms = 200;
    // The caller's turns go unpaced (2 s each, a second or two apart): room for all three in
    // the real-time budget, so none of their audio is dropped (dropped trailing silence would
    // leave a turn unfinished).
    settings.bridge.inbound_audio_burst_ms = 10_000;
    // A command written during the election waits for the new primary, then for the owner's
    // stream to resume there: what is shown is that none is lost, not how fast it is.
    settings.cluster.command_timeout_ms = 15_000;
    let storage = connect(&settings).await;
    migrations::run(&storage).await.expect("migrations apply");
    let app = TestApp::spawn_with_storage(settings.clone(), storage.clone()).await;
    // A second instance (its own instance id) over the same database.
    let other = TestApp::spawn_with_storage(settings, storage).await;

    let tenant = app.calling_tenant("Failover", "+14155550801", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "16k", None).await;
    let frejun_call = teler.receive_call(FREJUN_KEY, CALLER_NUMBER, &tenant.number);
    let (call_id, mut caller) = place_call(&app, &tenant, &frejun_call.id).await;

    // Before: one exchange, stored (acknowledged by the old primary).
    assert!(
        tone_then_hear_echo(&mut caller, 16_000, 7_600).await,
        "the first echo came back"
    );
    let before = stored(&app, &call_id, &[BEFORE]).await;
    assert!(has_event(&before, MEDIA_STARTED), "{before:#?}");

    // During: the primary steps down as the caller takes the second turn, so the keeper's
    // writes of that turn (transcript, usage, metrics) meet a set without a primary.
    let old_primary = set.primary_port().await.expect("a primary");
    let heard = caller.received().audio_samples;
    let key = &tenant.tenant.api_key;
    let command = async {
        // Into the election: the step-down has begun by then. Context has no audible effect,
        // so the echo being measured is left alone.
        tokio::time::sleep(Duration::from_millis(300)).await;
        other
            .post_as(
                &format!("/api/calls/{call_id}/context"),
                key,
                &json!({ "text": CONTEXT }),
            )
            .await
            .status()
    };
    let (new_primary, echoed, context) = tokio::join!(
        set.step_down(10),
        tone_then_hear_echo(&mut caller, 16_000, heard + 7_600),
        command,
    );
    let new_primary = new_primary.expect("a new primary is elected");
    assert!(echoed, "the second echo came back");
    assert_eq!(
        context,
        StatusCode::OK,
        "the command written during the election ran"
    );
    assert!(
        openai
            .wait_until(Duration::from_secs(5), |sessions| {
                sessions[0]
                    .events_of("conversation.item.create")
                    .any(|event| event.json["item"]["content"][0]["text"] == CONTEXT)
            })
            .await,
        "the context sent through the other instance reached OpenAI"
    );
    assert_ne!(new_primary, old_primary, "the primary changed");
    assert_eq!(set.primary_port().await.expect("a primary"), new_primary);
    stored(&app, &call_id, &[BEFORE, DURING]).await;
    // And after it, through the other instance's resumed stream, to the caller.
    let clears = caller.received().clears;
    let cleared = other
        .post_as(&format!("/api/calls/{call_id}/clear"), key, &json!({}))
        .await;
    assert_eq!(cleared.status(), StatusCode::OK);
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.clears > clears)
            .await,
        "the clear sent through the other instance reached the caller"
    );

    // After: the call goes on over the new primary.
    let heard = caller.received().audio_samples;
    assert!(
        tone_then_hear_echo(&mut caller, 16_000, heard + 7_600).await,
        "the third echo came back"
    );
    stored(&app, &call_id, &[BEFORE, DURING, AFTER]).await;

    let summary = caller.hang_up().await.expect("hung up");
    assert_no_violations(&openai, &summary.received);
    let call = ended_call(&app, &call_id, Duration::from_secs(20)).await;

    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(
        call.answered_at.is_some() && call.ended_at.is_some(),
        "{call:#?}"
    );
    for event in [MEDIA_STARTED, MEDIA_ENDED] {
        let times = call
            .status_history
            .iter()
            .filter(|entry| entry.event.as_deref() == Some(event))
            .count();
        assert_eq!(times, 1, "{event}: {:#?}", call.status_history);
    }
    // Every turn once, in order, and what was stored before the step-down is still there
    // (acknowledged writes were not rolled back with the old primary).
    let turns: Vec<(&str, &str)> = call
        .transcript
        .iter()
        .map(|turn| (turn.role.as_str(), turn.text.as_str()))
        .collect();
    assert_eq!(turns.len(), 6, "no turn lost or written twice: {turns:?}");
    assert!(has_turns(&call, &[BEFORE, DURING, AFTER]), "{turns:?}");
    // The caller talks over the tail of each echo (the helper waits for its first second
    // only), so a turn stored whole may be marked interrupted later: compare the rest.
    let unflagged = |call: &CallLogRecord| -> Vec<TranscriptTurn> {
        let turns = call.transcript.iter().cloned();
        turns
            .map(|turn| TranscriptTurn {
                interrupted: false,
                ..turn
            })
            .collect()
    };
    assert!(
        unflagged(&call).starts_with(&unflagged(&before)),
        "before: {:?}, after: {:?}",
        before.transcript,
        call.transcript
    );
    let metrics = call.metrics.as_ref().expect("metrics");
    // Three turns of 1 s of tone and 1 s of silence, each echoed.
    assert!(metrics.audio_in_ms >= 6_000, "{metrics:?}");
    assert!(metrics.audio_out_ms >= 2_850, "{metrics:?}");
    assert!(metrics.first_response_ms.is_some(), "{metrics:?}");
    let usage = call.usage.as_ref().expect("usage");
    let usage_before = before
        .usage
        .as_ref()
        .map_or(0, |usage| usage.output_audio_tokens);
    assert!(
        usage.output_audio_tokens > usage_before,
        "the answers after the first counted: {usage:?}"
    );
    assert!(call.cost_usd.is_some_and(|cost| cost > 0.0), "{call:#?}");
    assert_slots_freed(&app, &tenant).await;

    drop(other);
    drop(app);
    set.stop().await;
}

fn has_event(call: &CallLogRecord, event: &str) -> bool {
    call.status_history
        .iter()
        .any(|entry| entry.event.as_deref() == Some(event))
}

/// The call log once its transcript holds the caller's turns `said` and their echoes, while the
/// call is live (polls up to 15 s).
async fn stored(app: &TestApp, call_id: &str, said: &[&str]) -> CallLogRecord {
    let call = poll_until(
        Duration::from_secs(15),
        || app.call_log(call_id),
        |call| has_turns(call, said),
    )
    .await;
    assert!(
        has_turns(&call, said),
        "{said:?} and their echoes are stored: {:#?}",
        call.transcript
    );
    call
}

/// Whether the transcript holds the caller's turns `said` (in this order) and an echo for each.
fn has_turns(call: &CallLogRecord, said: &[&str]) -> bool {
    let user: Vec<&str> = call
        .transcript
        .iter()
        .filter(|turn| turn.role.as_str() == "user")
        .map(|turn| turn.text.as_str())
        .collect();
    let echoes = call
        .transcript
        .iter()
        .filter(|turn| turn.role.as_str() == "assistant" && turn.text.starts_with("echo: "))
        .count();
    user == said && echoes >= said.len()
}
