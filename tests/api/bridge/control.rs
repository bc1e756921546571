//! Barge-in (the caller talks over the assistant) and the live-control API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::audio::tone::level_dbfs;
use voxbridge::sim::caller::ReceivedEvent;
use voxbridge::sim::fake_openai::{Behaviour, Mode, Pace, ScriptedTurn};

use super::{assert_no_violations, bridge_app, configure_assistant, ended_call, place_call};
use crate::helpers::{expect_error, expect_status};

#[tokio::test]
async fn barge_in_clears_playback_cancels_truncates_and_marks_the_turn_interrupted() {
    // The first answer (440 Hz) is barged in on; the fake then answers the "caller" with the
    // second turn (1 kHz), so audio after the clear must be 1 kHz only.
    let turns = vec![
        ScriptedTurn::tone(
            "Our opening hours are nine to five, every day except Sunday.",
            440.0,
            3_000,
        ),
        ScriptedTurn::tone("Sorry, go ahead.", 1_000.0, 1_000),
    ];
    let (app, fake) = bridge_app(Behaviour {
        pace: Pace::Realtime(2.0),
        ..Behaviour::with_mode(Mode::BargeIn {
            turns,
            after_ms: 1_000,
            times: 1,
        })
    })
    .await;
    let tenant = app.calling_tenant("Barge", "+14155550301", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hello")).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-barge").await;

    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.clears >= 1)
            .await,
        "FreJun was told to clear its queue"
    );
    assert!(
        fake.wait_until(Duration::from_secs(5), |sessions| {
            sessions
                .first()
                .is_some_and(|s| !s.truncates.is_empty() && s.cancels >= 1)
        })
        .await,
        "OpenAI got response.cancel and conversation.item.truncate"
    );
    let session = &fake.sessions()[0];
    let truncate = &session.truncates[0];
    let heard = truncate["audio_end_ms"].as_u64().expect("an integer");
    let sent = session.responses[0].audio_ms_sent;
    // The fake barges in after 1 s of audio at twice real time: about half a second played.
    assert!(
        heard > 0 && heard <= sent,
        "heard {heard} ms of {sent} ms sent"
    );
    assert!(
        heard <= 1_000,
        "no more than the wall time since playback began: {heard}"
    );
    assert_eq!(truncate["item_id"], session.responses[0].item_id.as_str());
    let kinds: Vec<&str> = session.events.iter().map(|e| e.kind.as_str()).collect();
    let cancel_at = kinds.iter().position(|k| *k == "response.cancel").unwrap();
    let truncate_at = kinds
        .iter()
        .position(|k| *k == "conversation.item.truncate")
        .unwrap();
    assert!(cancel_at < truncate_at);

    // Late audio of the cancelled response never reaches the caller after the clear.
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_samples
                >= 2_000 + 8_000)
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = caller.received();
    let mut samples_before_clear = 0;
    for event in &received.events {
        match event {
            ReceivedEvent::Clear { .. } => break,
            ReceivedEvent::Audio { samples, .. } => samples_before_clear += *samples as usize,
            _ => {}
        }
    }
    let after = &received.audio[samples_before_clear..];
    assert!(
        after.len() >= 4_000,
        "the next answer was heard: {} samples",
        after.len()
    );
    let answer = level_dbfs(after, 1_000.0, 8_000);
    let stale = level_dbfs(after, 440.0, 8_000);
    assert!(
        stale < answer - 40.0,
        "cancelled audio after the clear: 440 Hz at {stale:.1} dBFS, answer at {answer:.1}"
    );

    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.metrics.as_ref().unwrap().barge_ins, 1);
    let interrupted: Vec<_> = call
        .transcript
        .iter()
        .filter(|turn| {
            turn.role == voxbridge::domain::call::record::TranscriptRole::Assistant
                && turn.interrupted
        })
        .collect();
    assert_eq!(interrupted.len(), 1, "{:#?}", call.transcript);
}

#[tokio::test]
async fn live_calls_can_be_listed_interrupted_and_cleared_by_their_tenant_only() {
    let turns = vec![ScriptedTurn::tone(
        "A very long announcement.",
        440.0,
        20_000,
    )];
    let (app, fake) = bridge_app(Behaviour {
        pace: Pace::Realtime(1.0),
        ..Behaviour::with_mode(Mode::Scripted { turns })
    })
    .await;
    let tenant = app.calling_tenant("Control", "+14155550302", 5).await;
    let other = app.calling_tenant("Other", "+14155550303", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hello")).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-control").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_chunks
                >= 2)
            .await
    );
    let key = &tenant.tenant.api_key;

    let active = expect_status(app.get_as("/api/calls/active", key).await, StatusCode::OK).await;
    let item = &active["data"][0];
    assert_eq!(item["id"], call_id.as_str());
    assert_eq!(item["stream"]["sample_rate"], 8_000);
    assert_eq!(item["stream"]["encoding"], "audio/l16");
    assert_eq!(item["stream"]["ai_codec"], "pcm24k");
    assert_eq!(item["stream"]["frejun_call_id"], "fj-control");
    let streams = expect_status(
        app.get_as("/api/websocket/streams", key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(streams["data"][0]["connection_id"], call_id.as_str());
    let none = expect_status(
        app.get_as("/api/websocket/streams", &other.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["count"], 0);

    // One chunk.
    let path = format!("/api/calls/{call_id}/interrupt");
    let done = expect_status(
        app.post_as(&path, key, &json!({"chunk_id": 1})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["data"]["sent_to_frejun"], "interrupt");
    expect_error(
        app.post_as(&path, key, &json!({"chunk_id": 999_999})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // Clear, by the alias.
    let clear = format!("/api/websocket/clear/{call_id}");
    let done = expect_status(app.post_as(&clear, key, &json!({})).await, StatusCode::OK).await;
    assert_eq!(done["data"]["sent_to_frejun"], "clear");
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| {
                received.interrupts == [1] && received.clears >= 1
            })
            .await,
        "{:?}",
        caller.received().interrupts
    );
    // Stop the assistant as a barge-in would.
    assert!(
        caller
            .wait_until(Duration::from_secs(5), |received| received.audio_chunks
                >= 4)
            .await
    );
    let request = app.request(reqwest::Method::POST, &path).bearer_auth(key);
    let done = expect_status(request.send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(done["data"]["response_cancelled"], true, "{done}");
    assert!(done["data"]["truncated_item_id"].is_string(), "{done}");

    // Another tenant's call does not exist for them.
    expect_error(
        app.post_as(&path, &other.tenant.api_key, &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    ended_call(&app, &call_id, Duration::from_secs(10)).await;
    // Over: not live any more.
    expect_error(
        app.post_as(&path, key, &json!({})).await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;
    expect_error(
        app.post_as(&format!("/api/calls/{call_id}/clear"), key, &json!({}))
            .await,
        StatusCode::CONFLICT,
        "call_not_live",
    )
    .await;
}
