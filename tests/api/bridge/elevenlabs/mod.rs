//! Calls through an ElevenLabs Conversational AI agent, end to end over real sockets: a
//! simulated FreJun caller → voxbridge → the fake ElevenLabs, with a real MongoDB. The fake
//! OpenAI runs as well and must never see a session: an agent's calls do not touch OpenAI.
//!
//! - `audio`: tones both ways, with and without resampling.
//! - `conversation`: barge-in, pings, transcripts.
//! - `connect`: signed URLs and keys, public agents, what the conversation starts with.
//! - `tools`: the assistant's tools as client tools.

mod audio;
mod connect;
mod conversation;
mod tools;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::audio::tone::sine;
use voxbridge::sim::caller::{Received, ReceivedEvent, SimulatedCaller};
use voxbridge::sim::fake_elevenlabs::{Behaviour, FakeElevenLabs, SessionRecord};
use voxbridge::sim::fake_openai::{self, FakeOpenAi};
use voxbridge::storage::call_logs::CallLogRecord;

use super::bridge_app_with;
use crate::helpers::{CallingTenant, TestApp, expect_status};

/// How long a test waits for something the fakes or the caller should see.
pub const WAIT: Duration = Duration::from_secs(15);

/// The app with both fakes; ElevenLabs is the one the assistants use.
pub struct World {
    pub app: TestApp,
    /// Kept running only to show that nothing reaches it.
    pub openai: FakeOpenAi,
    pub elevenlabs: FakeElevenLabs,
}

/// A [`World`] whose ElevenLabs conversations behave as `behaviour`.
pub async fn world(behaviour: Behaviour) -> World {
    world_with(behaviour, |_| {}).await
}

/// Like [`world`], after letting the test adjust the settings.
pub async fn world_with(
    behaviour: Behaviour,
    adjust: impl FnOnce(&mut voxbridge::settings::Settings),
) -> World {
    let elevenlabs = FakeElevenLabs::start(behaviour)
        .await
        .expect("fake ElevenLabs starts");
    let api = url::Url::parse(&elevenlabs.base_url()).expect("a URL");
    let conversation = url::Url::parse(&elevenlabs.conversation_url()).expect("a URL");
    let (app, openai) = bridge_app_with(fake_openai::Behaviour::default(), |settings| {
        settings.elevenlabs.api_base_url = api;
        settings.elevenlabs.conversation_url = conversation;
        settings.elevenlabs.connect_timeout_ms = 2_000;
        adjust(settings);
    })
    .await;
    World {
        app,
        openai,
        elevenlabs,
    }
}

/// The assistant's `backend` for the public agent `agent_id`.
pub fn public_agent(agent_id: &str) -> Value {
    json!({"type": "elevenlabs_convai", "agent_id": agent_id})
}

/// The assistant's `backend` for the private agent `agent_id`.
pub fn private_agent(agent_id: &str) -> Value {
    json!({"type": "elevenlabs_convai", "agent_id": agent_id, "private": true})
}

/// Points the tenant's assistant at `backend` with FreJun flows at `inbound_rate` ("8k" or
/// "16k"), no OpenAI transcription (an agent transcribes itself), plus the fields of `extra`.
pub async fn use_agent(
    app: &TestApp,
    tenant: &CallingTenant,
    inbound_rate: &str,
    backend: Value,
    extra: Value,
) {
    let mut body = json!({
        "audio": { "codec": "pcm24k", "inbound_rate": inbound_rate, "inbound_chunk_ms": 100, "outbound_chunk_ms": 200 },
        "transcription": null,
        "backend": backend,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let path = format!("/api/assistants/{}", tenant.assistant_id);
    expect_status(
        app.patch_as(&path, &tenant.tenant.api_key, &body).await,
        StatusCode::OK,
    )
    .await;
}

/// Stores the tenant's ElevenLabs API key.
pub async fn store_elevenlabs_key(app: &TestApp, tenant: &CallingTenant, key: &str) {
    expect_status(
        app.put_as(
            "/api/me/credentials",
            &tenant.tenant.api_key,
            &json!({"elevenlabs_api_key": key}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

impl World {
    /// Waits until the first conversation satisfies `pred`, and answers it.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&SessionRecord) -> bool,
    ) -> SessionRecord {
        let met = self
            .elevenlabs
            .wait_until(WAIT, |sessions| sessions.first().is_some_and(&pred))
            .await;
        let sessions = self.elevenlabs.sessions();
        assert!(met, "{what}: {:#?}", sessions.first());
        sessions.into_iter().next().expect("a conversation")
    }

    /// The first conversation once the agent has announced its formats.
    pub async fn conversation(&self) -> SessionRecord {
        self.wait_for("the conversation started", |session| {
            session.metadata_sent_at.is_some()
        })
        .await
    }

    /// Asserts that neither ElevenLabs nor the caller saw a protocol violation, and that
    /// OpenAI was never asked for a session.
    pub fn assert_clean(&self, received: &Received) {
        let violations = self.elevenlabs.violations();
        assert!(violations.is_empty(), "ElevenLabs fake: {violations:?}");
        assert!(
            received.violations.is_empty(),
            "FreJun caller: {:?}",
            received.violations
        );
        assert!(
            self.openai.sessions().is_empty(),
            "an ElevenLabs call opened an OpenAI session"
        );
    }
}

/// The caller says something the fake's energy VAD takes for one turn: 600 ms of a 440 Hz
/// tone at the flow's rate, then 700 ms of silence (the fake ends a turn after 500 ms). Paced
/// as FreJun streams: voxbridge drops caller audio that runs too far ahead of real time.
pub async fn speak(caller: &mut SimulatedCaller, rate_hz: u32) {
    let samples = rate_hz as usize * 6 / 10;
    caller
        .send_audio(&sine(440.0, rate_hz, samples, 8_000.0), true)
        .await
        .unwrap();
    caller.send_silence(700, true).await.unwrap();
}

/// How many samples the caller had received when the first `clear` arrived (`None` before
/// one); needs the caller's timings, which `place_call` keeps.
pub fn samples_before_clear(received: &Received) -> Option<usize> {
    let mut samples = 0;
    for event in &received.events {
        match event {
            ReceivedEvent::Audio { samples: n, .. } => samples += *n as usize,
            ReceivedEvent::Clear { .. } => return Some(samples),
            _ => {}
        }
    }
    None
}

/// The call log's transcript as (role, text, interrupted), in order.
pub fn transcript(call: &CallLogRecord) -> Vec<(String, String, bool)> {
    call.transcript
        .iter()
        .map(|turn| {
            (
                turn.role.as_str().to_owned(),
                turn.text.clone(),
                turn.interrupted,
            )
        })
        .collect()
}

/// A transcript entry, for comparisons.
pub fn turn(role: &str, text: &str, interrupted: bool) -> (String, String, bool) {
    (role.to_owned(), text.to_owned(), interrupted)
}
