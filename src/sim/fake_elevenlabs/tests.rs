//! Loopback tests of the fake: a tokio-tungstenite client (and reqwest for the REST endpoint)
//! talks to it over real sockets and asserts on the messages and on the records the fake kept:
//! signing and upgrades, initiation and overrides, echo and scripted turns, pings, the scripted
//! barge-in, client tools, validation, failures and many conversations at once.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::*;
use crate::audio::{mulaw, pcm, tone};

/// Generous bound on waiting for one message; tests never assert on speed.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(150);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn fake_with(behaviour: Behaviour, agent: AgentConfig) -> FakeElevenLabs {
    let fake = FakeElevenLabs::start(behaviour).await.expect("start");
    fake.add_agent(agent);
    fake
}

fn agent_url(fake: &FakeElevenLabs, agent_id: &str) -> String {
    format!("{}?agent_id={agent_id}", fake.conversation_url())
}

async fn open(url: &str) -> Result<Ws, WsError> {
    connect_async(url).await.map(|(ws, _)| ws)
}

/// The HTTP status and JSON body of a refused upgrade.
fn refusal(result: Result<Ws, WsError>) -> (u16, Value) {
    match result {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

/// `GET get-signed-url`: status and JSON body.
async fn get_signed_url(
    fake: &FakeElevenLabs,
    agent_id: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut url = format!("{}/v1/convai/conversation/get-signed-url", fake.base_url());
    if let Some(agent_id) = agent_id {
        url.push_str(&format!("?agent_id={agent_id}"));
    }
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.header("xi-api-key", key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn initiation() -> Value {
    json!({"type": "conversation_initiation_client_data"})
}

fn audio_chunk(samples: &[i16], format: AudioFormat) -> Value {
    let mut bytes = Vec::new();
    format.encode(samples, &mut bytes);
    let mut text = String::new();
    pcm::encode_base64(&bytes, &mut text);
    json!({"user_audio_chunk": text})
}

/// The raw bytes of an `audio` event.
fn audio_bytes(event: &Value) -> Vec<u8> {
    assert_eq!(event["type"], "audio", "{event}");
    let mut bytes = Vec::new();
    pcm::decode_base64(
        event["audio_event"]["audio_base_64"].as_str().unwrap(),
        &mut bytes,
    )
    .unwrap();
    bytes
}

fn audio_id(event: &Value) -> u64 {
    assert_eq!(event["type"], "audio", "{event}");
    event["audio_event"]["event_id"].as_u64().unwrap()
}

/// A tone at `rate_hz` (-12 dBFS).
fn tone_at(rate_hz: u32, ms: u32) -> Vec<i16> {
    tone::sine(440.0, rate_hz, (rate_hz * ms / 1_000) as usize, 8_000.0)
}

struct Client {
    ws: Ws,
}

impl Client {
    async fn connect(url: &str) -> Client {
        Client {
            ws: open(url).await.expect("upgrade"),
        }
    }

    /// Connects to a public agent, sends `initiation` and returns the metadata.
    async fn started(url: &str, initiation: Value) -> (Client, Value) {
        let mut client = Client::connect(url).await;
        client.send(initiation).await;
        let metadata = client.next().await;
        assert_eq!(metadata["type"], "conversation_initiation_metadata");
        (client, metadata)
    }

    async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next message, or the close frame (`Err(None)`: the connection ended without one).
    async fn event(&mut self) -> Result<Value, Option<(u16, String)>> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next message; panics on a close.
    async fn next(&mut self) -> Value {
        match self.event().await {
            Ok(message) => message,
            Err(close) => panic!("expected a message, the socket closed: {close:?}"),
        }
    }

    /// The next message of type `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Reads until the close frame; `None` when the connection ended without one.
    async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            if let Err(close) = self.event().await {
                return close;
            }
        }
    }

    /// Asserts that nothing arrives for [`QUIET`].
    async fn quiet(&mut self) {
        if let Ok(frame) = tokio::time::timeout(QUIET, self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        self.ws.close(Some(frame)).await.expect("close");
    }
}

/// Waits until the only conversation satisfies `pred`, then returns it.
async fn session_when(
    fake: &FakeElevenLabs,
    pred: impl Fn(&SessionRecord) -> bool,
) -> SessionRecord {
    let ok = fake
        .wait_until(WAIT, |sessions| sessions.first().is_some_and(&pred))
        .await;
    let session = fake.sessions().into_iter().next().expect("a conversation");
    assert!(ok, "the record never matched: {session:#?}");
    session
}

fn scripted(turns: Vec<ScriptedTurn>) -> Behaviour {
    Behaviour {
        turn_detection: TurnDetection::AfterAudioMs(100),
        pace: Pace::Unpaced,
        ..Behaviour::with_mode(Mode::Scripted(turns))
    }
}

#[tokio::test]
async fn public_agent_echo_sends_metadata_then_converts_16k_to_8k() {
    let agent =
        AgentConfig::new("agent_pub").formats(AudioFormat::Pcm(16_000), AudioFormat::Pcm(8_000));
    let fake = fake_with(Behaviour::default(), agent).await;
    let (mut client, metadata) =
        Client::started(&agent_url(&fake, "agent_pub"), initiation()).await;
    let event = &metadata["conversation_initiation_metadata_event"];
    assert_eq!(event["user_input_audio_format"], "pcm_16000");
    assert_eq!(event["agent_output_audio_format"], "pcm_8000");
    let conversation_id = event["conversation_id"].as_str().unwrap().to_owned();
    assert!(conversation_id.starts_with("conv_"), "{conversation_id}");

    let sent = tone_at(16_000, 1_000);
    for piece in sent.chunks(1_600) {
        client
            .send(audio_chunk(piece, AudioFormat::Pcm(16_000)))
            .await;
    }
    let mut echoed = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let event = client.next().await;
        ids.push(audio_id(&event));
        pcm::decode_s16le(&audio_bytes(&event), &mut echoed);
    }
    assert_eq!(
        ids,
        (1..=10).collect::<Vec<u64>>(),
        "one event per chunk, ids increasing"
    );
    // Short of 8,000 samples only by the resampler's look-ahead (a few ms).
    assert!((7_950..=8_000).contains(&echoed.len()), "{}", echoed.len());
    let level_in = tone::level_dbfs(&sent, 440.0, 16_000);
    let level_out = tone::level_dbfs(&echoed[100..], 440.0, 8_000);
    assert!(
        (level_in - level_out).abs() < 0.5,
        "{level_in} vs {level_out}"
    );

    let session = session_when(&fake, |s| s.audio_events_sent == 10).await;
    assert_eq!(session.conversation_id, conversation_id);
    assert_eq!(session.agent_id, "agent_pub");
    assert!(!session.signed);
    assert_eq!(session.initiation, Some(initiation()));
    assert_eq!(session.audio_in, sent, "caller audio is recorded as sent");
    assert_eq!(session.audio_in_chunks, 10);
    assert!(session.agent_responses.is_empty() && session.user_transcripts.is_empty());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_eq!(fake.upgrades()[0].status, 101);
    assert_eq!(
        fake.upgrades()[0].conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    fake.stop().await;
}

#[tokio::test]
async fn echo_with_matching_formats_returns_the_bytes_unchanged() {
    for format in [AudioFormat::Pcm(16_000), AudioFormat::Ulaw8000] {
        let fake = fake_with(
            Behaviour::default(),
            AgentConfig::new("a").formats(format, format),
        )
        .await;
        let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
        let chunk = audio_chunk(&tone_at(format.rate_hz(), 100), format);
        client.send(chunk.clone()).await;
        let echoed = client.next().await;
        assert_eq!(
            echoed["audio_event"]["audio_base_64"], chunk["user_audio_chunk"],
            "{format}"
        );
    }
}

/// The load generator's timeline: each chunk's cumulative input samples (input rate) and each
/// echo's cumulative output samples (output rate), the echo produced when its chunk was read.
#[tokio::test]
async fn record_timings_keep_cumulative_samples_per_chunk_and_per_audio_event() {
    let agent = AgentConfig::new("a").formats(AudioFormat::Pcm(16_000), AudioFormat::Pcm(8_000));
    let behaviour = Behaviour {
        record_timings: true,
        record_audio: false,
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, agent).await;
    let before = std::time::Instant::now();
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let sent = tone_at(16_000, 500);
    for piece in sent.chunks(1_600) {
        client
            .send(audio_chunk(piece, AudioFormat::Pcm(16_000)))
            .await;
    }
    let mut echoed = 0u64;
    for _ in 0..5 {
        echoed += (audio_bytes(&client.next().await).len() / 2) as u64;
    }
    let session = session_when(&fake, |s| s.delta_timings.len() == 5).await;
    let appended: Vec<u64> = session.append_timings.iter().map(|(n, _)| *n).collect();
    assert_eq!(appended, vec![1_600, 3_200, 4_800, 6_400, 8_000]);
    let deltas = &session.delta_timings;
    assert_eq!(deltas.last().map(|(n, _)| *n), Some(echoed));
    assert!(deltas.windows(2).all(|pair| pair[0].0 < pair[1].0));
    for ((_, read_at), (_, produced_at)) in session.append_timings.iter().zip(deltas) {
        assert!(*read_at >= before);
        assert_eq!(
            read_at, produced_at,
            "an echo is produced as its chunk is read"
        );
    }
    // Off by default: a record stays small.
    let quiet = fake_with(Behaviour::default(), AgentConfig::new("b")).await;
    let (mut client, _) = Client::started(&agent_url(&quiet, "b"), initiation()).await;
    client
        .send(audio_chunk(&tone_at(8_000, 100), AudioFormat::Pcm(8_000)))
        .await;
    client.next().await;
    let session = session_when(&quiet, |s| s.audio_events_sent == 1).await;
    assert!(session.append_timings.is_empty() && session.delta_timings.is_empty());
}

#[tokio::test]
async fn ulaw_caller_audio_is_decoded_for_the_record_and_the_echo() {
    let agent = AgentConfig::new("a").formats(AudioFormat::Ulaw8000, AudioFormat::Pcm(8_000));
    let fake = fake_with(Behaviour::default(), agent).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let codes: Vec<u8> = (0..=255).collect();
    let mut text = String::new();
    pcm::encode_base64(&codes, &mut text);
    client.send(json!({"user_audio_chunk": text})).await;
    let mut decoded = Vec::new();
    mulaw::decode_into(&codes, &mut decoded);
    let mut echoed = Vec::new();
    pcm::decode_s16le(&audio_bytes(&client.next().await), &mut echoed);
    assert_eq!(echoed, decoded);
    let session = session_when(&fake, |s| s.audio_in_chunks == 1).await;
    assert_eq!(session.audio_in, decoded);
    assert!(session.violations.is_empty(), "{:?}", session.violations);
}

#[tokio::test]
async fn private_agents_need_a_single_use_signed_url() {
    let fake = fake_with(
        Behaviour::default(),
        AgentConfig::new("agent_priv").private(),
    )
    .await;
    let (status, body) = refusal(open(&agent_url(&fake, "agent_priv")).await);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["detail"]["status"], "authorization_required");

    let invalid = json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}});
    assert_eq!(
        get_signed_url(&fake, Some("agent_priv"), None).await,
        (401, invalid.clone())
    );
    assert_eq!(
        get_signed_url(&fake, Some("agent_priv"), Some("sk_wrong")).await,
        (401, invalid)
    );
    fake.set_api_key("sk_tenant_key");
    let (status, body) = get_signed_url(&fake, Some("agent_nope"), Some("sk_tenant_key")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get_signed_url(&fake, None, Some("sk_tenant_key")).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = get_signed_url(&fake, Some("agent_priv"), Some("sk_tenant_key")).await;
    assert_eq!(status, 200, "{body}");
    let signed_url = body["signed_url"].as_str().unwrap().to_owned();
    assert!(
        signed_url.starts_with(&format!(
            "{}?agent_id=agent_priv&conversation_signature=",
            fake.conversation_url()
        )),
        "{signed_url}"
    );

    let (mut client, _) = Client::started(&signed_url, initiation()).await;
    let session = session_when(&fake, |s| s.metadata_sent_at.is_some()).await;
    assert!(session.signed);
    client.close().await;

    let (status, body) = refusal(open(&signed_url).await);
    assert_eq!(status, 403, "signatures are single-use: {body}");
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    let requests = fake.signed_url_requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 404, 422, 200]);
    assert_eq!(requests[1].api_key.as_deref(), Some("sk_wrong"));
    assert!(requests[4].signature.is_some());
    let upgrades: Vec<u16> = fake.upgrades().iter().map(|u| u.status).collect();
    assert_eq!(upgrades, [403, 101, 403]);
    assert!(
        fake.upgrades()[0]
            .refusal
            .as_deref()
            .unwrap()
            .contains("private")
    );
}

#[tokio::test]
async fn expired_or_foreign_signatures_are_refused() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("p").private()).await;
    fake.add_agent(AgentConfig::new("q").private());
    let (_, body) = get_signed_url(&fake, Some("p"), Some(DEFAULT_API_KEY)).await;
    let for_p = body["signed_url"].as_str().unwrap().to_owned();
    let signature = for_p.split("conversation_signature=").nth(1).unwrap();
    let foreign = format!(
        "{}&conversation_signature={signature}",
        agent_url(&fake, "q")
    );
    let (status, body) = refusal(open(&foreign).await);
    assert_eq!(status, 403);
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("issued for agent p")
    );

    fake.set_signed_url_ttl(Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = refusal(open(&for_p).await);
    assert_eq!(status, 403);
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_agents_plain_requests_and_injected_refusals_are_answered() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let (status, body) = refusal(open(&agent_url(&fake, "ghost")).await);
    assert_eq!(status, 404);
    assert_eq!(body["detail"]["status"], "agent_not_found");
    let (status, _) = refusal(open(&fake.conversation_url()).await);
    assert_eq!(status, 400, "agent_id is required");

    let plain = reqwest::get(format!(
        "{}/v1/convai/conversation?agent_id=a",
        fake.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(plain.status().as_u16(), 400, "a plain GET is no upgrade");
    let elsewhere = reqwest::get(format!("{}/v1/other", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404);

    fake.set_behaviour(Behaviour {
        failure: Some(Failure::RefuseUpgrade(503)),
        ..Behaviour::default()
    });
    let (status, body) = refusal(open(&agent_url(&fake, "a")).await);
    assert_eq!(status, 503);
    assert_eq!(body["detail"]["status"], "injected_failure");
    let refusals: Vec<u16> = fake.upgrades().iter().map(|u| u.status).collect();
    assert_eq!(refusals, [404, 400, 400, 503]);
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn an_unanswered_ping_closes_1008_and_records_the_missed_pong() {
    let behaviour = Behaviour {
        ping_interval: Some(Duration::from_millis(50)),
        pong_deadline: Duration::from_millis(100),
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let ping = client.next().await;
    assert_eq!(ping, json!({"type": "ping", "ping_event": {"event_id": 1}}));
    assert_eq!(
        client.closed().await,
        Some((1008, "pong timeout".to_owned()))
    );
    let session = session_when(&fake, |s| s.closed.is_some()).await;
    assert!(session.missed_pong);
    assert_eq!(session.closed, Some((1008, "pong timeout".to_owned())));
    assert!(session.pongs.is_empty());
    assert!(session.pings_sent >= 1);
}

#[tokio::test]
async fn answered_pings_keep_the_conversation_open() {
    let behaviour = Behaviour {
        ping_interval: Some(Duration::from_millis(30)),
        pong_deadline: Duration::from_millis(100),
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let mut pings = Vec::new();
    while pings.len() < 8 {
        let ping = client.next_of("ping").await;
        let event_id = ping["ping_event"]["event_id"].as_u64().unwrap();
        client
            .send(json!({"type": "pong", "event_id": event_id}))
            .await;
        pings.push(ping);
    }
    assert!(pings[0]["ping_event"].get("ping_ms").is_none());
    assert!(
        pings[7]["ping_event"]["ping_ms"].is_u64(),
        "the last round trip is reported"
    );
    client.close().await;
    let session = session_when(&fake, |s| s.client_closed).await;
    assert!(!session.missed_pong);
    assert_eq!(session.closed, None, "the fake never closed");
    assert_eq!(session.client_close, Some((1000, "bye".to_owned())));
    let answered: Vec<u64> = session.pongs.iter().map(|(id, _)| *id).collect();
    assert_eq!(answered, (1..=8).collect::<Vec<u64>>());
    assert!(session.violations.is_empty(), "{:?}", session.violations);
}

#[tokio::test]
async fn pongs_for_unknown_pings_are_violations() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client.send(json!({"type": "pong", "event_id": 99})).await;
    let session = session_when(&fake, |s| !s.violations.is_empty()).await;
    assert_eq!(
        session.violations,
        ["pong.event_id 99 matches no outstanding ping"]
    );
    assert_eq!(
        fake.violations(),
        [format!(
            "conversation {}: pong.event_id 99 matches no outstanding ping",
            session.conversation_id
        )]
    );
}

#[tokio::test]
async fn the_interruption_script_sends_stale_audio_then_the_correction_then_the_next_turn() {
    let mut behaviour = scripted(vec![
        ScriptedTurn::tone(
            "What are your hours?",
            "We open at nine and close at six every weekday.",
            440.0,
            1_000,
        ),
        ScriptedTurn::tone(
            "Wait, on Saturday?",
            "Saturdays we open at ten.",
            660.0,
            300,
        ),
    ]);
    behaviour.interruption = Some(InterruptionScript::new(0, 5));
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client
        .send(audio_chunk(&[0; 800], AudioFormat::Pcm(8_000)))
        .await;

    let mut kinds = Vec::new();
    let mut interruption_id = None;
    let mut stale = Vec::new();
    let mut fresh = Vec::new();
    let mut correction = Value::Null;
    let mut transcripts = Vec::new();
    while fresh.len() < 3 {
        let message = client.next().await;
        let kind = message["type"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "audio" if interruption_id.is_none() => {
                kinds.push(format!("audio {}", audio_id(&message)))
            }
            "audio" if correction.is_null() => stale.push(audio_id(&message)),
            "audio" => fresh.push(audio_id(&message)),
            "interruption" => {
                interruption_id = message["interruption_event"]["event_id"].as_u64();
                kinds.push(kind);
            }
            "agent_response_correction" => {
                correction = message["agent_response_correction_event"].clone();
                kinds.push(kind);
            }
            "user_transcript" => {
                transcripts.push(message["user_transcription_event"]["user_transcript"].clone());
                kinds.push(kind);
            }
            _ => kinds.push(kind),
        }
    }
    assert_eq!(
        kinds,
        [
            "user_transcript",
            "agent_response",
            "audio 1",
            "audio 2",
            "audio 3",
            "interruption",
            "agent_response_correction",
            "user_transcript",
            "agent_response",
        ]
    );
    assert_eq!(interruption_id, Some(5));
    assert_eq!(
        stale,
        [4, 5],
        "in-flight audio with ids ≤ the interruption's arrives after it"
    );
    assert_eq!(fresh, [6, 7, 8], "the next turn's audio has higher ids");
    assert_eq!(
        correction["original_agent_response"],
        "We open at nine and close at six every weekday."
    );
    assert_eq!(
        correction["corrected_agent_response"],
        "We open at nine and"
    );
    assert_eq!(transcripts, ["What are your hours?", "Wait, on Saturday?"]);

    let session = session_when(&fake, |s| s.audio_events_sent == 8).await;
    assert_eq!(session.interruption_sent, Some(5));
    assert_eq!(session.user_turns, 2);
    assert_eq!(
        session
            .correction
            .as_ref()
            .map(|(_, corrected)| corrected.as_str()),
        Some("We open at nine and")
    );
}

#[tokio::test]
async fn scripted_turns_end_after_speech_and_half_a_second_of_silence() {
    let behaviour = Behaviour::with_mode(Mode::Scripted(vec![ScriptedTurn::tone(
        "hello there",
        "Hi! How can I help?",
        523.0,
        300,
    )]));
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let format = AudioFormat::Pcm(8_000);
    for piece in tone_at(8_000, 300).chunks(160) {
        client.send(audio_chunk(piece, format)).await;
    }
    for _ in 0..4 {
        client.send(audio_chunk(&[0; 800], format)).await;
    }
    client.quiet().await;
    client.send(audio_chunk(&[0; 800], format)).await;
    let transcript = client.next().await;
    assert_eq!(
        transcript,
        json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": "hello there"}})
    );
    let response = client.next().await;
    assert_eq!(
        response,
        json!({"type": "agent_response", "agent_response_event": {"agent_response": "Hi! How can I help?"}})
    );
    let mut reply = Vec::new();
    for id in 1..=3 {
        let event = client.next().await;
        assert_eq!(audio_id(&event), id);
        pcm::decode_s16le(&audio_bytes(&event), &mut reply);
    }
    assert_eq!(reply.len(), 2_400, "300 ms at 8 kHz in 100 ms events");
    assert!(tone::level_dbfs(&reply, 523.0, 8_000) > -15.0);
    client.quiet().await;
    let session = session_when(&fake, |s| s.audio_events_sent == 3).await;
    assert_eq!(session.user_turns, 1);
    assert_eq!(session.user_transcripts, ["hello there"]);
}

#[tokio::test]
async fn the_first_message_is_spoken_after_the_metadata_with_variables_filled() {
    let agent =
        AgentConfig::new("a").first_message("Hello {{name}}, call {{system__conversation_id}}");
    let fake = fake_with(Behaviour::default(), agent).await;
    let start = json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"name": "Asha", "calls": 3}
    });
    let (mut client, metadata) = Client::started(&agent_url(&fake, "a"), start).await;
    let conversation_id = metadata["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = client.next().await;
    let expected = format!("Hello Asha, call {conversation_id}");
    assert_eq!(
        response["agent_response_event"]["agent_response"],
        expected.as_str()
    );
    for id in 1..=3 {
        assert_eq!(
            audio_id(&client.next().await),
            id,
            "300 ms of greeting in 100 ms events"
        );
    }
    let session = session_when(&fake, |s| s.audio_events_sent == 3).await;
    assert_eq!(session.first_message.as_deref(), Some(expected.as_str()));
    assert_eq!(session.dynamic_variables["calls"], 3);
}

#[tokio::test]
async fn overrides_the_agent_does_not_enable_are_dropped_and_recorded() {
    let agent = AgentConfig::new("a")
        .first_message("Agent greeting")
        .enable(&["agent.first_message"]);
    let fake = fake_with(Behaviour::default(), agent).await;
    fake.add_agent(AgentConfig::new("b").first_message("Agent greeting"));
    let start = json!({
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {"first_message": "Override greeting", "language": "hi",
                      "prompt": {"prompt": "You are Ava."}},
            "tts": {"voice_id": "voice_1"}
        },
        "custom_llm_extra_body": {"temperature": 0.1}
    });
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), start.clone()).await;
    let response = client.next().await;
    assert_eq!(
        response["agent_response_event"]["agent_response"],
        "Override greeting"
    );
    let (mut other, _) = Client::started(&agent_url(&fake, "b"), start).await;
    let response = other.next().await;
    assert_eq!(
        response["agent_response_event"]["agent_response"], "Agent greeting",
        "a first message the agent does not let through is dropped"
    );

    assert!(
        fake.wait_until(WAIT, |s| s.len() == 2
            && s.iter().all(|s| s.first_message.is_some()))
            .await
    );
    let sessions = fake.sessions();
    let a = sessions.iter().find(|s| s.agent_id == "a").unwrap();
    assert_eq!(
        a.applied_overrides,
        json!({"agent": {"first_message": "Override greeting"}})
    );
    assert_eq!(
        a.dropped_overrides,
        [
            "agent.prompt.prompt",
            "agent.language",
            "tts.voice_id",
            "custom_llm_extra_body"
        ]
    );
    let b = sessions.iter().find(|s| s.agent_id == "b").unwrap();
    assert_eq!(
        b.dropped_overrides[..2],
        ["agent.prompt.prompt", "agent.first_message"]
    );
    assert!(
        fake.violations().is_empty(),
        "dropping is silent: {:?}",
        fake.violations()
    );
}

#[tokio::test]
async fn system_dynamic_variables_and_nested_values_are_violations() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let start = json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"system__caller_id": "+91", "tenant": "Acme", "vip": true, "tags": ["x"]}
    });
    let (_client, _) = Client::started(&agent_url(&fake, "a"), start).await;
    let session = session_when(&fake, |s| s.initiation.is_some()).await;
    assert_eq!(
        session.violations,
        [
            "conversation_initiation_client_data.dynamic_variables.system__caller_id: names \
             starting with system__ are set by ElevenLabs and cannot be sent by the client",
            "conversation_initiation_client_data.dynamic_variables.tags must be a string, number \
             or boolean, got an array",
        ]
    );
    assert_eq!(
        Value::Object(session.dynamic_variables),
        json!({"tenant": "Acme", "vip": true})
    );
}

#[tokio::test]
async fn client_tool_results_are_recorded_and_the_reply_waits_for_them() {
    let mut behaviour = scripted(vec![ScriptedTurn::tone(
        "where is my order",
        "It ships today.",
        440.0,
        200,
    )]);
    behaviour.tool_calls = vec![ScriptedToolCall {
        tool_name: "lookup_order".into(),
        parameters: json!({"order_id": "42"}),
    }];
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client
        .send(audio_chunk(&[0; 800], AudioFormat::Pcm(8_000)))
        .await;
    assert_eq!(client.next().await["type"], "user_transcript");
    let call = client.next().await;
    assert_eq!(call["type"], "client_tool_call");
    assert_eq!(call["client_tool_call"]["tool_name"], "lookup_order");
    assert_eq!(
        call["client_tool_call"]["parameters"],
        json!({"order_id": "42"})
    );
    let id = call["client_tool_call"]["tool_call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.quiet().await;
    client
        .send(json!({"type": "client_tool_result", "tool_call_id": id, "result": "{\"status\":\"shipped\"}", "is_error": false}))
        .await;
    let response = client.next().await;
    assert_eq!(
        response["agent_response_event"]["agent_response"],
        "It ships today."
    );
    assert_eq!(audio_id(&client.next().await), 1);

    let session = session_when(&fake, |s| s.audio_events_sent == 2).await;
    assert_eq!(session.tool_calls.len(), 1);
    assert_eq!(session.tool_calls[0].tool_call_id, id);
    let result = &session.tool_results[0];
    assert_eq!(result.tool_name, "lookup_order");
    assert_eq!(result.result, "{\"status\":\"shipped\"}");
    assert!(!result.is_error);
    assert!(result.latency >= QUIET, "{:?}", result.latency);
    assert!(session.violations.is_empty(), "{:?}", session.violations);
}

#[tokio::test]
async fn tool_results_for_unknown_or_answered_calls_are_violations() {
    let behaviour = Behaviour {
        tool_calls: vec![ScriptedToolCall {
            tool_name: "crm_lookup".into(),
            parameters: json!({}),
        }],
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client
        .send(audio_chunk(&[0; 160], AudioFormat::Pcm(8_000)))
        .await;
    let call = client.next_of("client_tool_call").await;
    let id = call["client_tool_call"]["tool_call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .send(json!({"type": "client_tool_result", "tool_call_id": "call_wrong", "result": "x", "is_error": false}))
        .await;
    let answer = json!({"type": "client_tool_result", "tool_call_id": id, "result": "boom", "is_error": true});
    client.send(answer.clone()).await;
    client.send(answer).await;
    let session = session_when(&fake, |s| s.violations.len() == 2).await;
    assert_eq!(
        session.violations,
        [
            "client_tool_result.tool_call_id \"call_wrong\" matches no client_tool_call".to_owned(),
            format!("client_tool_result.tool_call_id \"{id}\" was already answered"),
        ]
    );
    assert_eq!(session.tool_results.len(), 1);
    assert!(session.tool_results[0].is_error);
}

#[tokio::test]
async fn an_unanswered_tool_call_times_out_as_a_violation_and_the_reply_goes_ahead() {
    let mut behaviour = scripted(vec![ScriptedTurn::tone(
        "hi",
        "Sorry, the lookup failed.",
        440.0,
        100,
    )]);
    behaviour.tool_calls = vec![ScriptedToolCall {
        tool_name: "slow_tool".into(),
        parameters: json!({"q": 1}),
    }];
    behaviour.tool_result_timeout = Duration::from_millis(100);
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client
        .send(audio_chunk(&[0; 800], AudioFormat::Pcm(8_000)))
        .await;
    let call = client.next_of("client_tool_call").await;
    let id = call["client_tool_call"]["tool_call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = client.next().await;
    assert_eq!(
        response["agent_response_event"]["agent_response"],
        "Sorry, the lookup failed."
    );
    let session = session_when(&fake, |s| !s.violations.is_empty()).await;
    assert_eq!(
        session.violations,
        [format!(
            "client_tool_call {id} (slow_tool) got no client_tool_result within 100 ms"
        )]
    );
}

#[tokio::test]
async fn audio_before_the_initiation_is_a_violation_and_starts_the_conversation() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let mut client = Client::connect(&agent_url(&fake, "a")).await;
    client
        .send(audio_chunk(&[100; 160], AudioFormat::Pcm(8_000)))
        .await;
    assert_eq!(
        client.next().await["type"],
        "conversation_initiation_metadata"
    );
    assert_eq!(
        audio_id(&client.next().await),
        1,
        "the early audio is still echoed"
    );
    client.send(initiation()).await;
    let session = session_when(&fake, |s| s.violations.len() == 2).await;
    assert_eq!(
        session.violations,
        [
            "user_audio_chunk arrived before conversation_initiation_client_data, which must be \
             the first message; the conversation started with the agent's own configuration",
            "conversation_initiation_client_data arrived after the conversation had started; it \
             must be the first message, and was ignored",
        ]
    );
    assert_eq!(session.initiation, None);
}

#[tokio::test]
async fn malformed_messages_are_recorded_as_violations_naming_the_field() {
    let fake = fake_with(
        Behaviour::default(),
        AgentConfig::new("a").formats(AudioFormat::Pcm(16_000), AudioFormat::Pcm(16_000)),
    )
    .await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client.send(initiation()).await;
    client
        .send(json!({"type": "user_message", "text": "hi", "role": "user"}))
        .await;
    client
        .send(json!({"type": "user_audio_chunk", "user_audio_chunk": "AAA="}))
        .await;
    client.send(json!({"user_audio_chunk": "AAAA"})).await;
    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        .await;
    client
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    client.send_text("not json").await;
    let session = session_when(&fake, |s| s.violations.len() >= 7).await;
    let expected = [
        "conversation_initiation_client_data arrived a second time; it is sent once",
        "user_message.role is not a documented field",
        "a user_audio_chunk message has no other fields, got \"type\"",
        "user_audio_chunk decodes to 3 bytes, an odd length for pcm_16000 (16-bit samples)",
        "unknown message type \"input_audio_buffer.append\"",
        "a binary frame (3 bytes) arrived; every message must be a JSON text frame",
        "the frame is not valid JSON",
    ];
    assert_eq!(
        session.violations.len(),
        expected.len(),
        "{:#?}",
        session.violations
    );
    for (found, expected) in session.violations.iter().zip(expected) {
        assert!(
            found.starts_with(expected),
            "{found:?} should start with {expected:?}"
        );
    }
    assert_eq!(
        session.user_messages,
        ["hi"],
        "a message with a problem still counts"
    );
}

#[tokio::test]
async fn typed_turns_context_activity_and_feedback_are_recorded() {
    let fake = fake_with(
        scripted(vec![ScriptedTurn::tone(
            "unused",
            "You typed something.",
            440.0,
            100,
        )]),
        AgentConfig::new("a"),
    )
    .await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    client
        .send(json!({"type": "contextual_update", "text": "caller is on the pricing page"}))
        .await;
    client.send(json!({"type": "user_activity"})).await;
    client.quiet().await;
    client
        .send(json!({"type": "user_message", "text": "what does it cost?"}))
        .await;
    let response = client.next().await;
    assert_eq!(
        response["type"], "agent_response",
        "a typed turn has no user_transcript"
    );
    client
        .send(json!({"type": "feedback", "score": "like", "event_id": 1}))
        .await;
    let session = session_when(&fake, |s| !s.feedback.is_empty()).await;
    assert_eq!(
        session.contextual_updates,
        ["caller is on the pricing page"]
    );
    assert_eq!(session.user_messages, ["what does it cost?"]);
    assert_eq!(session.user_activities, 1);
    assert!(session.user_transcripts.is_empty());
    assert!(session.violations.is_empty(), "{:?}", session.violations);
}

#[tokio::test]
async fn close_mid_response_closes_1011_in_the_middle_of_a_reply() {
    let behaviour = Behaviour {
        failure: Some(Failure::CloseMidResponse {
            after_audio_events: 2,
        }),
        pace: Pace::Unpaced,
        ..Behaviour::default()
    };
    let fake = fake_with(
        behaviour,
        AgentConfig::new("a").first_message("A long greeting"),
    )
    .await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    assert_eq!(client.next().await["type"], "agent_response");
    assert_eq!(audio_id(&client.next().await), 1);
    assert_eq!(audio_id(&client.next().await), 2);
    assert_eq!(
        client.closed().await,
        Some((1011, "internal error".to_owned()))
    );
    let session = session_when(&fake, |s| s.closed.is_some()).await;
    assert_eq!(session.closed, Some((1011, "internal error".to_owned())));
    assert_eq!(session.audio_events_sent, 2);
}

#[tokio::test]
async fn drop_mid_response_ends_the_connection_without_a_close_frame() {
    let behaviour = Behaviour {
        failure: Some(Failure::DropMidResponse {
            after_audio_events: 1,
        }),
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a").first_message("Hi")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    assert_eq!(client.next().await["type"], "agent_response");
    assert_eq!(audio_id(&client.next().await), 1);
    assert_eq!(client.closed().await, None);
    let session = session_when(&fake, |s| s.closed.is_some()).await;
    assert_eq!(session.closed.map(|(code, _)| code), Some(1006));
}

#[tokio::test]
async fn failures_at_the_start_close_or_stay_silent() {
    let behaviour = Behaviour {
        failure: Some(Failure::CloseAfterInitiation {
            code: 1008,
            reason: "Override for field 'first_message' is not allowed by config.".into(),
        }),
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let mut client = Client::connect(&agent_url(&fake, "a")).await;
    client.send(initiation()).await;
    let (code, reason) = client.closed().await.expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("not allowed"), "{reason}");

    fake.set_behaviour(Behaviour {
        failure: Some(Failure::Silent),
        ping_interval: Some(Duration::from_millis(20)),
        ..Behaviour::default()
    });
    let mut silent = Client::connect(&agent_url(&fake, "a")).await;
    silent.send(initiation()).await;
    silent
        .send(audio_chunk(&[0; 160], AudioFormat::Pcm(8_000)))
        .await;
    silent.quiet().await;
    assert!(
        fake.wait_until(WAIT, |s| s.len() == 2 && s[1].audio_in_chunks == 1)
            .await
    );
    let record = &fake.sessions()[1];
    assert_eq!(record.metadata_sent_at, None);
    assert_eq!(record.pings_sent, 0);
    assert!(record.initiation.is_some());
}

#[tokio::test]
async fn a_starting_workflow_node_the_agent_does_not_enable_fails_the_start() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let mut client = Client::connect(&agent_url(&fake, "a")).await;
    client
        .send(json!({"type": "conversation_initiation_client_data", "starting_workflow_node_id": "node_1"}))
        .await;
    assert_eq!(
        client.closed().await,
        Some((
            1008,
            "starting_workflow_node_id is not enabled for this agent".to_owned()
        ))
    );
    fake.add_agent(AgentConfig::new("b").enable(&[STARTING_WORKFLOW_NODE]));
    let start = json!({"type": "conversation_initiation_client_data", "starting_workflow_node_id": "node_1"});
    let (_client, _) = Client::started(&agent_url(&fake, "b"), start).await;
}

#[tokio::test]
async fn stop_closes_open_conversations_with_1001() {
    let fake = fake_with(Behaviour::default(), AgentConfig::new("a")).await;
    let (mut client, _) = Client::started(&agent_url(&fake, "a"), initiation()).await;
    let stopping = tokio::spawn(fake.stop());
    assert_eq!(
        client.closed().await,
        Some((1001, "server shutting down".to_owned()))
    );
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_conversations_run_at_once() {
    const CONVERSATIONS: usize = 200;
    let behaviour = Behaviour {
        record_audio: false,
        ..Behaviour::default()
    };
    let fake = fake_with(behaviour, AgentConfig::new("a")).await;
    let url = agent_url(&fake, "a");
    let mut tasks = Vec::new();
    for _ in 0..CONVERSATIONS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut client, _) = Client::started(&url, initiation()).await;
            for _ in 0..5 {
                client
                    .send(audio_chunk(&[7; 160], AudioFormat::Pcm(8_000)))
                    .await;
            }
            for id in 1..=5 {
                assert_eq!(audio_id(&client.next().await), id);
            }
            client.close().await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        fake.wait_until(WAIT, |s| s.len() == CONVERSATIONS
            && s.iter().all(|s| s.client_closed))
            .await
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert!(
        fake.sessions()
            .iter()
            .all(|s| s.audio_in_chunks == 5 && s.audio_in.is_empty())
    );
    let live = fake.live_conversations();
    assert!(
        fake.wait_until(WAIT, |_| fake.live_conversations() == 0)
            .await,
        "{live} still live"
    );
}
