//! A conversation with an ElevenLabs agent: its barge-in (FreJun cleared, the interrupted
//! turn's late audio dropped, its text corrected), its application-level pings, and both
//! sides' transcripts in the call log.

use std::time::Duration;

use serde_json::json;
use voxbridge::audio::tone::level_dbfs;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::sim::fake_elevenlabs::{
    AgentConfig, Behaviour, InterruptionScript, Mode, ScriptedTurn,
};

use super::{
    WAIT, World, public_agent, samples_before_clear, speak, transcript, turn, use_agent, world,
};
use crate::bridge::{assert_slots_freed, ended_call, place_call};

/// A world with one public agent (`pcm_8000` both ways) used by a new tenant's assistant.
async fn agent_world(
    behaviour: Behaviour,
    agent: AgentConfig,
    number: &str,
) -> (World, crate::helpers::CallingTenant) {
    let w = world(behaviour).await;
    let agent_id = agent.agent_id.clone();
    w.elevenlabs.add_agent(agent);
    let tenant = w.app.calling_tenant("ElevenTalk", number, 5).await;
    use_agent(&w.app, &tenant, "8k", public_agent(&agent_id), json!({})).await;
    (w, tenant)
}

const HOURS: &str = "Our store opens at nine and closes at six.";
const HEARD: &str = "Our store opens at nine";
const SUNDAYS: &str = "On Sundays we open at ten.";

#[tokio::test]
async fn a_barge_in_clears_frejun_drops_the_stale_audio_and_keeps_the_corrected_text() {
    // The first reply (600 Hz, 3 s in 100 ms events) is interrupted at its 10th event, two of
    // which arrive after the interruption; the second reply is at 1400 Hz, so whatever the
    // caller hears after the clear says which turn it belongs to.
    let behaviour = Behaviour {
        interruption: Some(InterruptionScript {
            turn: 0,
            after_audio_events: 10,
            stale_events: 2,
            corrected_response: Some(HEARD.into()),
        }),
        ..Behaviour::with_mode(Mode::Scripted(vec![
            ScriptedTurn::tone("What are your hours?", HOURS, 600.0, 3_000),
            ScriptedTurn::tone("Wait, what about Sundays?", SUNDAYS, 1_400.0, 1_000),
        ]))
    };
    let (w, tenant) = agent_world(behaviour, AgentConfig::new("agent_barge"), "+14155550811").await;
    let (call_id, mut caller) = place_call(&w.app, &tenant, "fj-el-barge").await;
    w.conversation().await;
    speak(&mut caller, 8_000).await;

    let heard_all = caller
        .wait_until(WAIT, |r| {
            samples_before_clear(r).is_some_and(|before| r.audio.len() >= before + 8_000)
        })
        .await;
    assert!(
        heard_all,
        "a clear, then the second reply: {} clears, {} samples",
        caller.received().clears,
        caller.received().audio.len()
    );
    // Room for anything late of the first turn to (wrongly) arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = caller.received();
    assert_eq!(received.clears, 1);
    let before = samples_before_clear(&received).unwrap();
    let (first, after) = received.audio.split_at(before);
    // Events 9 and 10 were still in flight at the interruption: at most 8 × 100 ms of the
    // first turn can have reached the caller.
    assert!(
        !first.is_empty() && first.len() <= 6_400,
        "{} samples before the clear",
        first.len()
    );
    assert!(
        level_dbfs(first, 600.0, 8_000) > -20.0,
        "the first turn was heard"
    );
    assert_eq!(
        after.len(),
        8_000,
        "after the clear, exactly the second reply's second of audio"
    );
    let second = level_dbfs(after, 1_400.0, 8_000);
    let stale = level_dbfs(after, 600.0, 8_000);
    assert!(second > -15.0, "1400 Hz after the clear: {second:.1} dBFS");
    assert!(
        stale < second - 40.0,
        "600 Hz after the clear: {stale:.1} dBFS vs {second:.1}"
    );

    let session = &w.elevenlabs.sessions()[0];
    let k = session.interruption_sent.expect("the fake interrupted");
    assert_eq!(k, 10);
    assert!(
        session.last_audio_event_id > k,
        "the second turn was spoken"
    );
    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(
        transcript(&call),
        [
            turn("user", "What are your hours?", false),
            turn("assistant", HEARD, true),
            turn("user", "Wait, what about Sundays?", false),
            turn("assistant", SUNDAYS, false),
        ],
        "the corrected text replaces the interrupted one"
    );
    assert_eq!(call.metrics.expect("metrics").barge_ins, 1);
}

#[tokio::test]
async fn every_ping_of_the_agent_is_answered_with_its_pong() {
    let behaviour = Behaviour {
        ping_interval: Some(Duration::from_millis(200)),
        pong_deadline: Duration::from_secs(1),
        ..Behaviour::default()
    };
    let (w, tenant) = agent_world(behaviour, AgentConfig::new("agent_pings"), "+14155550812").await;
    let (call_id, caller) = place_call(&w.app, &tenant, "fj-el-pings").await;
    // A dozen pings, over a couple of seconds.
    let session = w
        .wait_for("a dozen pongs", |s| s.pongs.len() >= 12 || s.is_closed())
        .await;
    assert!(!session.missed_pong, "a ping went unanswered");
    assert_eq!(session.closed, None, "the agent kept the conversation open");
    let ids: Vec<u64> = session.pongs.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "one pong per ping, in order"
    );

    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(!w.elevenlabs.sessions()[0].missed_pong);
    assert_slots_freed(&w.app, &tenant).await;
}

#[tokio::test]
async fn both_sides_of_a_conversation_are_transcribed_in_order() {
    let behaviour = Behaviour::with_mode(Mode::Scripted(vec![
        ScriptedTurn::tone(
            "Is this the bakery?",
            "Yes, this is Acme bakery.",
            500.0,
            600,
        ),
        ScriptedTurn::tone(
            "Do you have rye bread?",
            "We do, fresh every morning.",
            700.0,
            600,
        ),
    ]));
    let (w, tenant) = agent_world(
        behaviour,
        AgentConfig::new("agent_bakery").first_message("Thanks for calling."),
        "+14155550813",
    )
    .await;
    let (call_id, mut caller) = place_call(&w.app, &tenant, "fj-el-transcripts").await;
    w.conversation().await;
    // Greeting (300 ms), then each reply (600 ms) before the caller speaks again.
    let mut expected_samples = 2_400;
    for _ in 0..2 {
        assert!(
            caller
                .wait_until(WAIT, |r| r.audio_samples >= expected_samples)
                .await,
            "the agent's turn was heard"
        );
        speak(&mut caller, 8_000).await;
        expected_samples += 4_800;
    }
    assert!(
        caller
            .wait_until(WAIT, |r| r.audio_samples >= expected_samples)
            .await,
        "the last reply was heard: {} samples",
        caller.received().audio_samples
    );
    let session = &w.elevenlabs.sessions()[0];
    assert_eq!(
        session.user_transcripts,
        ["Is this the bakery?", "Do you have rye bread?"]
    );
    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(
        transcript(&call),
        [
            turn("assistant", "Thanks for calling.", false),
            turn("user", "Is this the bakery?", false),
            turn("assistant", "Yes, this is Acme bakery.", false),
            turn("user", "Do you have rye bread?", false),
            turn("assistant", "We do, fresh every morning.", false),
        ]
    );
    assert_eq!(call.metrics.expect("metrics").barge_ins, 0);
}
