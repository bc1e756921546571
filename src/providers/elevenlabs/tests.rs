//! The protocol pieces together against the fake ElevenLabs server: a connect (public, private
//! through a signed URL, refused), the initiation, audio both ways, pings answered, a tool
//! answered, and stale audio after an interruption filtered out.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::client::AgentRef;
use super::events::write_audio_chunk;
use super::*;
use crate::domain::secret::SecretString;
use crate::sim::fake_elevenlabs::{
    AgentConfig, Behaviour, FakeElevenLabs, InterruptionScript, Mode, Pace, ScriptedToolCall,
    ScriptedTurn,
};

fn client(fake: &FakeElevenLabs) -> ConvaiClient {
    ConvaiClient::new(
        Url::parse(&fake.base_url()).unwrap(),
        Url::parse(&fake.conversation_url()).unwrap(),
        Duration::from_secs(5),
    )
}

fn key(text: &str) -> SecretString {
    SecretString::new(text.to_owned())
}

/// What a minimal session loop saw: audio events played and dropped, transcripts, and why it
/// stopped.
#[derive(Debug, Default)]
struct Seen {
    metadata: Option<(AudioFormat, AudioFormat)>,
    played: Vec<u64>,
    dropped: Vec<u64>,
    user_transcripts: Vec<String>,
    agent_responses: Vec<String>,
    corrections: Vec<String>,
    pongs: u32,
    tools_answered: u32,
}

/// Runs the client side of a conversation for `duration`: sends the initiation, `audio` in
/// 100 ms chunks of 8 kHz PCM (after the metadata), answers pings and tool calls, and filters
/// audio with [`StaleAudioFilter`].
async fn converse(socket: &mut ConvaiSocket, audio: &[i16], duration: Duration) -> Seen {
    let initiation = Initiation {
        first_message: Some(String::new()),
        dynamic_variables: serde_json::from_value(json!({"caller_number": "+14155550100"}))
            .unwrap(),
        ..Initiation::default()
    };
    socket
        .send(Message::text(
            ClientMessage::Initiation(&initiation).to_text(),
        ))
        .await
        .unwrap();
    let mut seen = Seen::default();
    let mut filter = StaleAudioFilter::default();
    let mut frame = String::new();
    let mut chunks = audio.chunks(800);
    let deadline = tokio::time::Instant::now() + duration;
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick(), if seen.metadata.is_some() => {
                if let Some(chunk) = chunks.next() {
                    let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                    write_audio_chunk(&bytes, &mut frame);
                    socket.send(Message::text(frame.clone())).await.unwrap();
                }
            }
            message = socket.next() => {
                let Some(Ok(Message::Text(text))) = message else { break };
                match ServerEvent::parse(&text).unwrap() {
                    ServerEvent::InitiationMetadata { input_format, output_format, .. } => {
                        seen.metadata = Some((input_format, output_format));
                    }
                    ServerEvent::Ping { event_id, .. } => {
                        socket.send(Message::text(ClientMessage::Pong { event_id }.to_text())).await.unwrap();
                        seen.pongs += 1;
                    }
                    ServerEvent::Audio { event_id, .. } => {
                        if filter.plays(event_id) {
                            seen.played.push(event_id);
                        } else {
                            seen.dropped.push(event_id);
                        }
                    }
                    ServerEvent::Interruption { event_id } => filter.interrupted(event_id),
                    ServerEvent::UserTranscript { text } => seen.user_transcripts.push(text),
                    ServerEvent::AgentResponse { text } => seen.agent_responses.push(text),
                    ServerEvent::AgentResponseCorrection { corrected, .. } => seen.corrections.push(corrected),
                    ServerEvent::ClientToolCall { tool_call_id, .. } => {
                        let result = ClientMessage::ToolResult { tool_call_id: &tool_call_id, result: "{\"status\":\"shipped\"}", is_error: false };
                        socket.send(Message::text(result.to_text())).await.unwrap();
                        seen.tools_answered += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    seen
}

/// A second of speech-like tone then a second of silence, at 8 kHz.
fn one_utterance() -> Vec<i16> {
    let mut audio: Vec<i16> = (0..8_000)
        .map(|n| {
            ((n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8_000.0).sin() * 12_000.0) as i16
        })
        .collect();
    audio.extend(std::iter::repeat_n(0, 8_000));
    audio
}

#[tokio::test]
async fn a_public_agent_echoes_in_its_formats_and_every_ping_is_answered() {
    let fake = FakeElevenLabs::start(Behaviour {
        ping_interval: Some(Duration::from_millis(50)),
        pong_deadline: Duration::from_millis(500),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    fake.add_agent(AgentConfig::new("agent_public"));
    let http = reqwest::Client::new();
    let mut socket = client(&fake)
        .connect(
            &http,
            AgentRef {
                agent_id: "agent_public",
                private: false,
            },
            None,
        )
        .await
        .unwrap();
    let seen = converse(&mut socket, &one_utterance(), Duration::from_millis(800)).await;
    assert_eq!(
        seen.metadata,
        Some((AudioFormat::Pcm(8_000), AudioFormat::Pcm(8_000)))
    );
    assert!(!seen.played.is_empty(), "the echo came back");
    assert!(
        seen.pongs > 3,
        "pings came and were answered: {}",
        seen.pongs
    );
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(!sessions[0].missed_pong);
    assert!(!sessions[0].signed);
    assert_eq!(
        sessions[0].dynamic_variables["caller_number"],
        "+14155550100"
    );
    assert!(sessions[0].audio_in_chunks > 0);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_private_agent_is_reached_through_a_signed_url_and_only_with_the_right_key() {
    let fake = FakeElevenLabs::start(Behaviour::default()).await.unwrap();
    fake.add_agent(AgentConfig::new("agent_private").private());
    fake.set_api_key("xi-tenant-key-0001");
    let http = reqwest::Client::new();
    let private = AgentRef {
        agent_id: "agent_private",
        private: true,
    };
    let socket = client(&fake)
        .connect(&http, private.clone(), Some(&key("xi-tenant-key-0001")))
        .await;
    assert!(socket.is_ok(), "{:?}", socket.err());
    let refused = client(&fake)
        .connect(&http, private.clone(), Some(&key("xi-wrong-key-0002")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "elevenlabs_key_rejected");
    assert!(!refused.to_string().contains("xi-wrong-key-0002"));
    let missing = client(&fake)
        .connect(&http, private, None)
        .await
        .unwrap_err();
    assert_eq!(missing, ConnectError::MissingKey);
    // Without the signed URL, the private agent refuses the upgrade.
    let unsigned = client(&fake)
        .connect(
            &http,
            AgentRef {
                agent_id: "agent_private",
                private: false,
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(unsigned.code(), "elevenlabs_key_rejected", "{unsigned}");
    let unknown = client(&fake)
        .connect(
            &http,
            AgentRef {
                agent_id: "no_such_agent",
                private: false,
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(unknown, ConnectError::AgentNotFound);
    assert!(fake.sessions().iter().any(|session| session.signed));
}

#[tokio::test]
async fn audio_of_an_interrupted_turn_never_plays_and_the_tool_is_answered() {
    let fake = FakeElevenLabs::start(Behaviour {
        mode: Mode::Scripted(vec![
            ScriptedTurn::tone(
                "Where is my order?",
                "Let me look that up for you right away.",
                440.0,
                1_000,
            ),
            ScriptedTurn::tone("Thanks", "You're welcome.", 660.0, 300),
        ]),
        interruption: Some(InterruptionScript::new(0, 4)),
        tool_calls: vec![ScriptedToolCall {
            tool_name: "lookup_order".into(),
            parameters: json!({"order_id": "A-1001"}),
        }],
        pace: Pace::Unpaced,
        ..Behaviour::default()
    })
    .await
    .unwrap();
    fake.add_agent(AgentConfig::new("agent_scripted"));
    let http = reqwest::Client::new();
    let mut socket = client(&fake)
        .connect(
            &http,
            AgentRef {
                agent_id: "agent_scripted",
                private: false,
            },
            None,
        )
        .await
        .unwrap();
    let mut audio = one_utterance();
    audio.extend(one_utterance());
    let seen = converse(&mut socket, &audio, Duration::from_secs(3)).await;
    assert_eq!(seen.tools_answered, 1);
    assert!(
        !seen.dropped.is_empty(),
        "stale audio arrived after the interruption"
    );
    // The stale events are the interrupted turn's last ones: every event before them played,
    // none of them did, and the next turn's (above the interruption) played again.
    let interruption = *seen.dropped.iter().max().unwrap();
    let first_stale = *seen.dropped.iter().min().unwrap();
    assert!(
        seen.played
            .iter()
            .all(|id| *id < first_stale || *id > interruption),
        "{seen:?}"
    );
    assert!(
        seen.played.iter().any(|id| *id > interruption),
        "the next turn played: {seen:?}"
    );
    assert_eq!(seen.corrections.len(), 1);
    assert_eq!(
        seen.user_transcripts.first().map(String::as_str),
        Some("Where is my order?")
    );
    let session = &fake.sessions()[0];
    assert_eq!(session.tool_results.len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
