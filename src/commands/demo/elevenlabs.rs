//! The demo's fourth call, to an ElevenLabs Conversational AI agent instead of OpenAI: the
//! fake ElevenLabs (started with the stack) gets a private agent whose formats are FreJun's
//! (`pcm_8000` both ways, so nothing is resampled) and whose first message greets the caller
//! by number (`{{caller_number}}`, a dynamic variable voxbridge sends); the tenant stores its
//! ElevenLabs key, creates an assistant with the `elevenlabs_convai` backend and a number for
//! it. On the call the agent's answer is interrupted by the caller: ElevenLabs reports the
//! interruption, still sends some of the interrupted answer's audio, and corrects its text;
//! voxbridge clears FreJun's queue and drops that late audio. The account adds what the fake
//! recorded: the signed URL, the initiation, what the agent heard and said, the pings answered.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};

use crate::audio::tone::level_dbfs;
use crate::sim::caller::{Received, ReceivedEvent};
use crate::sim::fake_elevenlabs::{
    AgentConfig, AudioFormat, Behaviour, InterruptionScript, Mode, ScriptedTurn, Speech,
};
use crate::sim::provision::{AssistantSpec, ProvisionedTenant};

use super::calls::{self, PlayedCall};
use super::narrate::Narrator;
use super::stack::DemoStack;

/// The tenant's number answered by the agent.
pub(crate) const NUMBER: &str = "+990000000102";
/// The agent, as configured in (the fake) ElevenLabs.
const AGENT_ID: &str = "agent_demo_acme_bistro";
/// The tenant's ElevenLabs key; the fake accepts only it.
const API_KEY: &str = "xi-demo-not-a-real-key";
/// The agent's own first message; ElevenLabs fills the placeholder.
const FIRST_MESSAGE: &str = "Hello {{caller_number}}, this is Acme Bistro. How can I help?";

/// What the caller asks, and says over the answer (as the fake transcribes them).
pub(crate) const QUESTION: &str = "Are you open on Sundays?";
pub(crate) const INTERJECTION: &str = "Sorry, can I bring my dog?";
/// The answer the caller talks over, what of it the caller heard, and the next answer.
const HOURS: &str = "On Sundays we open at ten in the morning and close at four in the \
                     afternoon, and the kitchen takes last orders at half past three.";
const HOURS_HEARD: &str = "On Sundays we open at ten";
const DOGS: &str = "Dogs are welcome on our terrace.";
/// The agent's voice is tones (the recorded voices do not say these lines), one per line, so
/// what the caller heard after the `clear` shows which answer it belongs to.
const FIRST_MESSAGE_HZ: f64 = 440.0;
const HOURS_HZ: f64 = 523.0;
const DOGS_HZ: f64 = 784.0;
/// The answer is interrupted once the agent has produced this many 100 ms audio events (at
/// four times real time: a second after it began, as the caller talks over it); this many of
/// them arrive only after the interruption, stale.
const INTERRUPTED_AT_EVENT: u32 = 40;
const STALE_EVENTS: u32 = 2;

/// The fake agent's conversation: the first message, then the answer to the question (cut
/// short by the caller) and the answer to the interjection; a ping every second.
pub(crate) fn behaviour() -> Behaviour {
    Behaviour {
        ping_interval: Some(Duration::from_secs(1)),
        // Generous: a missed pong ends the conversation, and a busy machine must not fail
        // the demo (the account prints how long each pong took).
        pong_deadline: Duration::from_secs(5),
        interruption: Some(InterruptionScript {
            turn: 0,
            after_audio_events: INTERRUPTED_AT_EVENT,
            stale_events: STALE_EVENTS,
            corrected_response: Some(HOURS_HEARD.to_owned()),
        }),
        first_message_audio: Speech::Tone {
            hz: FIRST_MESSAGE_HZ,
            ms: 1_500,
        },
        ..Behaviour::with_mode(Mode::Scripted(vec![
            ScriptedTurn::tone(QUESTION, HOURS, HOURS_HZ, 6_000),
            ScriptedTurn::tone(INTERJECTION, DOGS, DOGS_HZ, 2_000),
        ]))
    }
}

/// What the fake Anthropic model answers to this call's post-call analysis.
pub(crate) fn analysis_answer() -> String {
    json!({
        "summary": "The caller asked whether the bistro opens on Sundays, talked over the \
                    answer to ask about their dog, and learned that dogs are welcome on the \
                    terrace.",
        "success": true,
        "success_reason": "The caller's questions were answered.",
        "sentiment": "positive",
        "data": {"topics": ["opening_hours", "dogs"], "caller_interrupted": true}
    })
    .to_string()
}

/// Configures the agent in the fake, stores the tenant's ElevenLabs key, and creates the
/// assistant with the agent as its backend, answering [`NUMBER`].
pub(crate) async fn set_up(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    narrator: &Narrator,
) -> anyhow::Result<()> {
    let pcm_8000 = AudioFormat::Pcm(8_000);
    stack.fake_elevenlabs.add_agent(
        AgentConfig::new(AGENT_ID)
            .private()
            .formats(pcm_8000, pcm_8000)
            .first_message(FIRST_MESSAGE)
            .enable(&["agent.prompt.prompt"]),
    );
    stack.fake_elevenlabs.set_api_key(API_KEY);
    narrator.step(&format!(
        "ElevenLabs (fake, at {}): a private agent {AGENT_ID}, pcm_8000 in and out (FreJun's \
         8 kHz: nothing to resample), first message \"{FIRST_MESSAGE}\", prompt override allowed",
        stack.fake_elevenlabs.base_url()
    ));
    tenant
        .api
        .put(
            "api/me/credentials",
            &json!({"elevenlabs_api_key": API_KEY}),
        )
        .await
        .context("storing the ElevenLabs key")?;
    narrator.step(
        "tenant: PUT /api/me/credentials → an ElevenLabs key, used only to fetch signed URLs \
         for its private agents",
    );
    let mut assistant = AssistantSpec {
        name: "Sunday line".into(),
        instructions: "You answer questions about Acme Bistro's opening hours and policies.".into(),
        // The agent's own first message is spoken.
        greeting: None,
        codec: "pcm24k".into(),
        inbound_rate_hz: 8_000,
        inbound_chunk_ms: 100,
        outbound_chunk_ms: 100,
        // The agent transcribes both sides itself.
        transcription_model: None,
        analysis: Some(json!({
            "enabled": true,
            "min_user_turns": 0,
            "success_criteria": "The caller's questions were answered.",
            "structured_data_schema": {
                "type": "object",
                "properties": {
                    "topics": {"type": "array", "items": {"type": "string"}},
                    "caller_interrupted": {"type": "boolean"}
                },
                "required": ["topics", "caller_interrupted"],
                "additionalProperties": false
            }
        })),
    }
    .to_json();
    assistant["backend"] =
        json!({"type": "elevenlabs_convai", "agent_id": AGENT_ID, "private": true});
    let created = tenant
        .api
        .post_data("api/assistants", &assistant)
        .await
        .context("creating the ElevenLabs assistant")?;
    let assistant_id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("POST /api/assistants answered without an id: {created}"))?;
    tenant
        .add_number(NUMBER, assistant_id)
        .await
        .context("adding the ElevenLabs assistant's number")?;
    narrator.step(&format!(
        "tenant: POST /api/assistants → \"Sunday line\" with backend elevenlabs_convai \
         (agent {AGENT_ID}, private); POST /api/phone-numbers → {NUMBER} answers with it"
    ));
    Ok(())
}

/// The call: as every inbound call, then how voxbridge reached the private agent.
pub(crate) async fn call(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    let played = calls::to_agent(stack, tenant, NUMBER, narrator).await?;
    for request in stack.fake_elevenlabs.signed_url_requests() {
        narrator.step(&format!(
            "ElevenLabs (fake), as the stream opened: GET /v1/convai/conversation/get-signed-url \
             for {} with {} → HTTP {}; the key never appeared in a WebSocket URL",
            request.agent_id.as_deref().unwrap_or("-"),
            if request.api_key.as_deref() == Some(API_KEY) {
                "the tenant's xi-api-key"
            } else {
                "ANOTHER xi-api-key"
            },
            request.status
        ));
    }
    Ok(played)
}

/// What the agent's side saw, for the call's account (nothing for calls without an agent).
pub(crate) fn describe(call: &PlayedCall) -> Vec<String> {
    let Some(session) = &call.agent_session else {
        return Vec::new();
    };
    let input = session.input_format;
    let mut lines = vec![
        format!(
            "  ElevenLabs (fake) conversation {} with {} ({}), {} in / {} out; it received \
             {:.1} s of caller audio in {} chunks",
            session.conversation_id,
            session.agent_id,
            if session.signed {
                "through a signed URL"
            } else {
                "unsigned"
            },
            input.as_str(),
            session.output_format.as_str(),
            session.audio_in.len() as f64 / f64::from(input.rate_hz()),
            session.audio_in_chunks,
        ),
        format!(
            "  initiation: dynamic variables {}; overrides applied: {}, dropped: {}",
            session
                .dynamic_variables
                .iter()
                .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", "),
            list(&leaf_paths(&session.applied_overrides, "")),
            list(&session.dropped_overrides),
        ),
        format!("  the agent heard: {}", quoted(&session.user_transcripts)),
        format!("  the agent said: {}", quoted(&session.agent_responses)),
    ];
    if let (Some(event_id), Some((_, corrected))) = (session.interruption_sent, &session.correction)
    {
        lines.push(format!(
            "  the agent reported the interruption at its audio event {event_id}, then still \
             sent {STALE_EVENTS} audio events of the interrupted answer (ids ≤ {event_id}) and \
             corrected its text to \"{corrected}\""
        ));
    }
    lines.push(after_the_clear(&call.summary.received));
    let slowest = session.pongs.iter().map(|(_, took)| *took).max();
    lines.push(format!(
        "  pings: {} sent by the agent, {} answered with a pong by voxbridge (slowest after \
         {:.1} ms){}",
        session.pings_sent,
        session.pongs.len(),
        slowest.map_or(0.0, |took| took.as_secs_f64() * 1_000.0),
        if session.missed_pong {
            ", ONE MISSED"
        } else {
            ", none missed"
        }
    ));
    lines.push(format!(
        "  {} protocol problems seen by the agent",
        session.violations.len()
    ));
    lines.extend(
        session
            .violations
            .iter()
            .map(|violation| format!("    problem: {violation}")),
    );
    if call.session.is_none() {
        lines.push("  OpenAI (fake): no session; the agent's call never touches OpenAI".into());
    }
    lines
}

/// What the caller heard after FreJun's `clear`: only the answer to the interjection, or also
/// late audio of the interrupted answer (which voxbridge must drop).
fn after_the_clear(received: &Received) -> String {
    let mut before = 0usize;
    let mut cleared = false;
    for event in &received.events {
        match event {
            ReceivedEvent::Audio { samples, .. } if !cleared => {
                before += usize::try_from(*samples).unwrap_or(usize::MAX);
            }
            ReceivedEvent::Clear { .. } => cleared = true,
            _ => {}
        }
    }
    let after = received.audio.get(before..).unwrap_or_default();
    if !cleared || after.is_empty() {
        return "  after the clear: nothing heard (or no clear)".into();
    }
    let answer = level_dbfs(after, DOGS_HZ, 8_000);
    let stale = level_dbfs(after, HOURS_HZ, 8_000);
    let verdict = if stale < answer - 30.0 {
        "none of the interrupted answer's late audio reached the caller"
    } else {
        "STALE AUDIO of the interrupted answer reached the caller"
    };
    format!(
        "  after the clear the caller heard {:.1} s: the answer to the interjection ({DOGS_HZ} Hz \
         at {answer:.0} dBFS; the interrupted answer's {HOURS_HZ} Hz at {stale:.0} dBFS): \
         {verdict}",
        after.len() as f64 / 8_000.0
    )
}

/// The dotted paths of a JSON object's leaves (`agent.prompt.prompt`).
fn leaf_paths(value: &Value, prefix: &str) -> Vec<String> {
    match value.as_object() {
        Some(object) => object
            .iter()
            .flat_map(|(key, value)| {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(value, &path)
            })
            .collect(),
        None => vec![prefix.to_owned()],
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn quoted(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| format!("\"{line}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
