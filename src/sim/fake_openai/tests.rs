//! Loopback tests of the fake: a tokio-tungstenite client talks to it over real sockets and
//! asserts on the events (and on the records the fake kept): handshake, session, every mode,
//! function calling, out-of-band responses, validation, failures and load.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::*;
use crate::audio::{mulaw, pcm, tone};

const KEY: &str = "sk-test-fake-0001";
const MODEL: &str = "gpt-realtime";
/// Generous bound on waiting for one event; tests never assert on speed.
const WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(
    fake: &FakeOpenAi,
    query: Option<&str>,
    authorization: Option<&str>,
    beta: bool,
) -> Result<Ws, WsError> {
    let mut url = fake.url();
    url.set_query(query);
    let mut request = url.as_str().into_client_request()?;
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("Authorization", value.parse().unwrap());
    }
    if beta {
        request
            .headers_mut()
            .insert("OpenAI-Beta", "realtime=v1".parse().unwrap());
    }
    connect_async(request).await.map(|(ws, _)| ws)
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

struct Client {
    ws: Ws,
}

impl Client {
    async fn connect(fake: &FakeOpenAi) -> Client {
        let query = format!("model={MODEL}");
        let authorization = format!("Bearer {KEY}");
        let ws = open(fake, Some(&query), Some(&authorization), false)
            .await
            .expect("upgrade");
        Client { ws }
    }

    /// Connects and reads `session.created`.
    async fn ready(fake: &FakeOpenAi) -> Client {
        let mut client = Client::connect(fake).await;
        let created = client.next().await;
        assert_eq!(created["type"], "session.created", "{created}");
        client
    }

    async fn send(&mut self, event: Value) {
        self.ws
            .send(Message::text(event.to_string()))
            .await
            .unwrap();
    }

    async fn next_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(error))) => panic!("socket error: {error}"),
            Ok(None) => None,
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next server event (panics on a close).
    async fn next(&mut self) -> Value {
        loop {
            match self.next_message().await {
                Some(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(text.as_str()).unwrap();
                    let id = event["event_id"].as_str().unwrap_or_default();
                    assert!(
                        id.starts_with("event_"),
                        "every server event has an event_id: {event}"
                    );
                    return event;
                }
                Some(Message::Close(frame)) => {
                    panic!("closed while waiting for an event: {frame:?}")
                }
                Some(_) => {}
                None => panic!("stream ended while waiting for an event"),
            }
        }
    }

    /// Events up to and including the first of type `kind`.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"] == kind;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// Reads until the close frame; returns its code and reason and the events before it.
    async fn closed(&mut self) -> (u16, String, Vec<Value>) {
        let mut events = Vec::new();
        loop {
            match self.next_message().await {
                Some(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string(), events);
                }
                Some(Message::Close(None)) => return (1005, String::new(), events),
                Some(Message::Text(text)) => {
                    events.push(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(_) => {}
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    async fn update(&mut self, session: Value) -> Value {
        self.send(json!({"type": "session.update", "session": session}))
            .await;
        let updated = self.next().await;
        assert_eq!(updated["type"], "session.updated", "{updated}");
        updated
    }

    /// Appends `bytes` in chunks of `chunk` bytes (a phone leg sends 20 ms frames).
    async fn append(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            let mut audio = String::new();
            pcm::encode_base64(piece, &mut audio);
            self.send(json!({"type": "input_audio_buffer.append", "audio": audio}))
                .await;
        }
    }
}

fn unpaced(mode: Mode) -> Behaviour {
    Behaviour {
        pace: Pace::Unpaced,
        ..Behaviour::with_mode(mode)
    }
}

fn vad(create_response: bool, interrupt_response: bool) -> Value {
    json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
           "silence_duration_ms": 500, "create_response": create_response,
           "interrupt_response": interrupt_response})
}

fn session_with(format: Value, turn_detection: Value) -> Value {
    json!({
        "type": "realtime",
        "instructions": "You are a test.",
        "audio": {
            "input": {"format": format, "turn_detection": turn_detection,
                      "transcription": {"model": "gpt-live-transcribe"}},
            "output": {"format": format, "voice": "marin"}
        }
    })
}

fn pcm24k() -> Value {
    json!({"type": "audio/pcm", "rate": 24000})
}

fn pcmu() -> Value {
    json!({"type": "audio/pcmu"})
}

fn s16le(samples: &[i16]) -> Vec<u8> {
    let mut bytes = Vec::new();
    pcm::encode_s16le(samples, &mut bytes);
    bytes
}

/// The decoded audio of every `response.output_audio.delta` in `events`.
fn delta_bytes(events: &[Value]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for event in events {
        if event["type"] == "response.output_audio.delta" {
            pcm::decode_base64(event["delta"].as_str().unwrap(), &mut bytes).unwrap();
        }
    }
    bytes
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default())
        .collect()
}

fn position(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .position(|event| event["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", types(events)))
}

/// Asserts the GA order of one response's events and returns its `response.done`.
fn assert_response_order(events: &[Value]) -> Value {
    let order = [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ];
    let positions: Vec<usize> = order.iter().map(|kind| position(events, kind)).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{:?}",
        types(events)
    );
    events.last().unwrap().clone()
}

// ----- handshake ----------------------------------------------------------------------------

#[tokio::test]
async fn upgrades_without_a_well_formed_bearer_key_get_401() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let query = Some("model=gpt-realtime");
    for authorization in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer ")] {
        let (status, body) = refusal(open(&fake, query, authorization, false).await);
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert_eq!(fake.rejected_handshakes().len(), 3);
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn an_upgrade_without_a_model_gets_400_and_a_wrong_path_404() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let bearer = format!("Bearer {KEY}");
    let (status, body) = refusal(open(&fake, None, Some(&bearer), false).await);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "model");

    let mut url = fake.url();
    url.set_path("/v1/chat");
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", bearer.parse().unwrap());
    let (status, _) = refusal(connect_async(request).await.map(|(ws, _)| ws));
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_beta_header_is_accepted_then_closed_4000() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let bearer = format!("Bearer {KEY}");
    let ws = open(&fake, Some("model=gpt-realtime"), Some(&bearer), true)
        .await
        .expect("the upgrade itself succeeds");
    let mut client = Client { ws };
    let (code, reason, events) = client.closed().await;
    assert_eq!(code, 4000);
    assert_eq!(reason, "invalid_request_error.beta_api_shape_disabled");
    assert!(types(&events).iter().all(|kind| *kind != "session.created"));
    let record = &fake.sessions()[0];
    assert!(record.beta_header);
    assert_eq!(record.violations.len(), 1);
    assert_eq!(record.closed_by, Some(ClosedBy::Server));
}

#[tokio::test]
async fn failure_reject_key_refuses_with_the_configured_status() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::RejectKey { status: 403 }),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let bearer = format!("Bearer {KEY}");
    let (status, body) =
        refusal(open(&fake, Some("model=gpt-realtime"), Some(&bearer), false).await);
    assert_eq!(status, 403);
    assert!(body["error"]["message"].is_string());
    let rejected = fake.rejected_handshakes();
    assert_eq!(rejected[0].authorization.as_deref(), Some(bearer.as_str()));

    // The failure applies to sessions opened after set_behaviour only.
    fake.set_behaviour(Behaviour::default());
    Client::ready(&fake).await;
}

// ----- session ------------------------------------------------------------------------------

#[tokio::test]
async fn session_created_holds_ga_defaults_and_updates_merge() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut client = Client::connect(&fake).await;
    let created = client.next().await;
    assert_eq!(created["type"], "session.created");
    let session = &created["session"];
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["model"], MODEL);
    assert!(session["id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(session["instructions"], "");
    assert_eq!(session["output_modalities"], json!(["audio"]));
    assert_eq!(session["audio"]["input"]["format"], pcm24k());
    assert_eq!(
        session["audio"]["input"]["turn_detection"]["type"],
        "server_vad"
    );
    assert_eq!(session["audio"]["output"]["voice"], "alloy");

    let updated = client
        .update(json!({"type": "realtime", "instructions": "Be brief.",
                        "audio": {"output": {"voice": "cedar"}}}))
        .await;
    let session = &updated["session"];
    assert_eq!(session["instructions"], "Be brief.");
    assert_eq!(session["audio"]["output"]["voice"], "cedar");
    assert_eq!(
        session["audio"]["output"]["format"],
        pcm24k(),
        "untouched fields kept"
    );
    assert_eq!(
        session["audio"]["input"]["turn_detection"]["type"],
        "server_vad"
    );

    let record = &fake.sessions()[0];
    assert_eq!(record.api_key, KEY);
    assert_eq!(record.model, MODEL);
    assert_eq!(record.session["instructions"], "Be brief.");
    assert_eq!(record.events_of("session.update").count(), 1);
    assert!(record.violations.is_empty());
}

// ----- Echo -----------------------------------------------------------------------------------

#[tokio::test]
async fn user_transcripts_name_the_callers_turns_in_order_then_fall_back_to_lengths() {
    let fake = FakeOpenAi::start(Behaviour {
        user_transcripts: vec!["Book a table.".into()],
        ..unpaced(Mode::Scripted { turns: Vec::new() })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .update(session_with(pcm24k(), vad(true, false)))
        .await;

    let mut turn = tone::sine(1_000.0, 24_000, 24 * 600, 8_000.0);
    turn.extend(vec![0i16; 24 * 700]);
    let mut transcripts = Vec::new();
    for _ in 0..2 {
        client.append(&s16le(&turn), 960).await;
        let events = client
            .until("conversation.item.input_audio_transcription.completed")
            .await;
        let last = events.last().expect("the awaited event");
        transcripts.push(last["transcript"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(transcripts[0], "Book a table.");
    assert!(transcripts[1].ends_with("ms of audio"), "{transcripts:?}");
}

#[tokio::test]
async fn echo_with_pcm_returns_the_callers_turn_after_server_vad() {
    let fake = FakeOpenAi::start(unpaced(Mode::Echo)).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcm24k(), vad(true, true))).await;

    let mut samples = vec![0i16; 24 * 300];
    samples.extend(tone::sine(1_000.0, 24_000, 24_000, 8_000.0));
    samples.extend(vec![0i16; 24 * 700]);
    // 20 ms appends, as a phone leg sends.
    client.append(&s16le(&samples), 960).await;

    let events = client.until("response.done").await;
    let started = &events[position(&events, "input_audio_buffer.speech_started")];
    let stopped = &events[position(&events, "input_audio_buffer.speech_stopped")];
    let committed = &events[position(&events, "input_audio_buffer.committed")];
    // Onset at 300 ms minus 300 ms of padding; 1300 ms + 500 ms of silence.
    assert_eq!(started["audio_start_ms"], 0);
    assert_eq!(stopped["audio_end_ms"], 1_800);
    assert_eq!(started["item_id"], stopped["item_id"]);
    assert_eq!(committed["item_id"], started["item_id"]);
    assert!(committed["previous_item_id"].is_null());
    let transcription = &events[position(
        &events,
        "conversation.item.input_audio_transcription.completed",
    )];
    assert_eq!(transcription["transcript"], "1800 ms of audio");
    assert_eq!(transcription["usage"]["type"], "duration");
    assert!(position(&events, "conversation.item.added") < position(&events, "response.created"));

    let response_events = &events[position(&events, "response.created")..];
    let done = assert_response_order(response_events);
    let audio = delta_bytes(response_events);
    assert_eq!(
        audio,
        s16le(&samples[..24 * 1_800]),
        "exactly the turn's audio"
    );
    let mut decoded = Vec::new();
    pcm::decode_s16le(&audio, &mut decoded);
    assert!(tone::level_dbfs(&decoded, 1_000.0, 24_000) > -20.0);
    assert_eq!(done["response"]["status"], "completed");
    let usage = &done["response"]["usage"];
    assert_eq!(usage["output_token_details"]["audio_tokens"], 1_800 / 50);
    assert_eq!(usage["input_token_details"]["audio_tokens"], 1_800 / 100);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    let transcript = &events[position(&events, "response.output_audio_transcript.done")];
    assert_eq!(transcript["transcript"], "echo: 1800 ms");

    let record = &fake.sessions()[0];
    assert_eq!(record.appended_ms, 2_000);
    assert_eq!(record.input_rate_hz, 24_000);
    assert_eq!(record.input_audio_24k, samples);
    assert_eq!(record.responses.len(), 1);
    assert_eq!(record.responses[0].status, ResponseStatus::Completed);
    assert_eq!(record.responses[0].audio_ms_sent, 1_800);
    assert!(record.violations.is_empty(), "{:?}", record.violations);
}

#[tokio::test]
async fn echo_with_pcmu_reads_and_writes_mulaw_at_8khz() {
    let fake = FakeOpenAi::start(unpaced(Mode::Echo)).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), vad(true, false))).await;

    let mut samples = tone::sine(1_000.0, 8_000, 8_000, 8_000.0);
    samples.extend(vec![0i16; 8 * 700]);
    let mut codes = Vec::new();
    mulaw::encode_into(&samples, &mut codes);
    client.append(&codes, 160).await;

    let events = client.until("response.done").await;
    assert_eq!(
        events[position(&events, "input_audio_buffer.speech_started")]["audio_start_ms"],
        0
    );
    assert_eq!(
        events[position(&events, "input_audio_buffer.speech_stopped")]["audio_end_ms"],
        1_500
    );
    let response_events = &events[position(&events, "response.created")..];
    let done = assert_response_order(response_events);
    let audio = delta_bytes(response_events);
    assert_eq!(audio, codes[..8 * 1_500], "the same μ-law bytes");
    let mut decoded = Vec::new();
    mulaw::decode_into(&audio, &mut decoded);
    assert!(tone::level_dbfs(&decoded, 1_000.0, 8_000) > -20.0);
    assert_eq!(done["response"]["audio"]["output"]["format"], pcmu());
    let record = &fake.sessions()[0];
    assert_eq!(record.input_rate_hz, 8_000);
    assert_eq!(record.appended_ms, 1_700);
}

#[tokio::test]
async fn echo_commits_and_answers_by_hand_when_vad_is_off() {
    let fake = FakeOpenAi::start(unpaced(Mode::Echo)).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), Value::Null)).await;

    client
        .send(json!({"type": "input_audio_buffer.commit", "event_id": "c1"}))
        .await;
    let empty = client.next().await;
    assert_eq!(empty["error"]["code"], "input_audio_buffer_commit_empty");
    assert_eq!(empty["error"]["event_id"], "c1");

    let codes = vec![0x55u8; 8 * 400];
    client.append(&codes, 160).await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let events = client.until("conversation.item.done").await;
    assert!(types(&events).contains(&"input_audio_buffer.committed"));
    assert!(!types(&events).contains(&"input_audio_buffer.speech_started"));
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert_eq!(delta_bytes(&events), codes);

    // A second response.create with nothing new plays the greeting.
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    let greeting_ms = behaviour::ECHO_GREETING_MS as usize;
    assert_eq!(delta_bytes(&events).len(), 8 * greeting_ms);
}

#[tokio::test]
async fn echo_converts_between_different_input_and_output_formats() {
    let fake = FakeOpenAi::start(unpaced(Mode::Echo)).await.unwrap();
    let mut client = Client::ready(&fake).await;
    let mut session = session_with(pcmu(), vad(true, true));
    session["audio"]["output"]["format"] = pcm24k();
    client.update(session).await;

    let mut samples = tone::sine(1_000.0, 8_000, 8_000, 8_000.0);
    samples.extend(vec![0i16; 8 * 600]);
    let mut codes = Vec::new();
    mulaw::encode_into(&samples, &mut codes);
    client.append(&codes, 160).await;
    let events = client.until("response.done").await;
    let audio = delta_bytes(&events[position(&events, "response.created")..]);
    // 1500 ms of turn, now as 24 kHz s16le.
    assert_eq!(audio.len(), 1_500 * 48);
    let mut decoded = Vec::new();
    pcm::decode_s16le(&audio, &mut decoded);
    assert!(tone::level_dbfs(&decoded[..24_000], 1_000.0, 24_000) > -20.0);
}

#[tokio::test]
async fn text_only_sessions_get_output_text_events_and_no_audio() {
    let fake = FakeOpenAi::start(unpaced(Mode::Scripted {
        turns: vec![ScriptedTurn::tone("Just text.", 440.0, 500)],
    }))
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .update(json!({"type": "realtime", "output_modalities": ["text"]}))
        .await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert!(delta_bytes(&events).is_empty());
    assert_eq!(
        events[position(&events, "response.output_text.delta")]["delta"],
        "Just text."
    );
    assert_eq!(
        events[position(&events, "response.output_text.done")]["text"],
        "Just text."
    );
    let done = events.last().unwrap();
    assert_eq!(done["response"]["output_modalities"], json!(["text"]));
    assert_eq!(
        done["response"]["output"][0]["content"][0]["type"],
        "output_text"
    );
}

// ----- EchoStream ---------------------------------------------------------------------------

#[tokio::test]
async fn echo_stream_answers_every_append_with_one_identical_delta() {
    let fake = FakeOpenAi::start(Behaviour {
        record_audio: false,
        record_timings: true,
        ..unpaced(Mode::EchoStream { turn_ms: 100 })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), vad(true, true))).await;

    let frames: Vec<Vec<u8>> = (0..7u8).map(|n| vec![n; 160]).collect();
    let mut deltas = Vec::new();
    let mut events = Vec::new();
    for frame in &frames {
        client.append(frame, 160).await;
        loop {
            let event = client.next().await;
            let is_delta = event["type"] == "response.output_audio.delta";
            events.push(event.clone());
            if is_delta {
                deltas.push(event);
                break;
            }
        }
    }
    for (frame, delta) in frames.iter().zip(&deltas) {
        let mut bytes = Vec::new();
        pcm::decode_base64(delta["delta"].as_str().unwrap(), &mut bytes).unwrap();
        assert_eq!(&bytes, frame);
    }
    // 100 ms turns of 20 ms frames: responses end after 5 deltas.
    let created: Vec<_> = events
        .iter()
        .filter(|event| event["type"] == "response.created")
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(deltas[0]["response_id"], deltas[4]["response_id"]);
    assert_ne!(deltas[4]["response_id"], deltas[5]["response_id"]);
    assert!(
        !types(&events).contains(&"input_audio_buffer.speech_started"),
        "no VAD"
    );

    let record = &fake.sessions()[0];
    assert!(record.input_audio_24k.is_empty(), "record_audio off");
    assert_eq!(record.events_of("input_audio_buffer.append").count(), 0);
    assert_eq!(record.appended_samples, 7 * 160);
    assert_eq!(record.append_timings.len(), 7);
    assert_eq!(
        record.delta_timings.last().map(|(samples, _)| *samples),
        Some(7 * 160)
    );
    assert_eq!(record.responses[0].status, ResponseStatus::Completed);
    assert_eq!(record.responses[0].transcript, "echo: 100 ms");
    assert_eq!(record.responses[1].status, ResponseStatus::InProgress);
}

// ----- Scripted -----------------------------------------------------------------------------

#[tokio::test]
async fn scripted_tone_turns_render_in_the_output_format() {
    let turns = vec![
        ScriptedTurn::tone("Hello, thanks for calling. How can I help?", 440.0, 1_000),
        ScriptedTurn::tone("Second turn.", 880.0, 200),
    ];
    let fake = FakeOpenAi::start(Behaviour {
        delta_ms: 100,
        pace: Pace::Realtime(20.0),
        ..Behaviour::with_mode(Mode::Scripted { turns })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), vad(true, true))).await;
    client
        .send(json!({"type": "response.create", "response": {"instructions": "Greet."}}))
        .await;
    let events = client.until("response.done").await;
    assert_response_order(&events);
    let audio = delta_bytes(&events);
    assert_eq!(audio.len(), 8_000, "1 s of μ-law");
    let deltas = types(&events)
        .iter()
        .filter(|kind| **kind == "response.output_audio.delta")
        .count();
    assert_eq!(deltas, 10, "100 ms per delta");
    let mut decoded = Vec::new();
    mulaw::decode_into(&audio, &mut decoded);
    assert!(tone::level_dbfs(&decoded, 440.0, 8_000) > -20.0);
    let transcript: String = events
        .iter()
        .filter(|event| event["type"] == "response.output_audio_transcript.delta")
        .map(|event| event["delta"].as_str().unwrap())
        .collect();
    assert_eq!(transcript, "Hello, thanks for calling. How can I help?");
    assert_eq!(
        events[position(&events, "response.output_audio_transcript.done")]["transcript"],
        transcript
    );

    // The next response speaks the next turn.
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert_eq!(delta_bytes(&events).len(), 1_600);
    assert_eq!(
        events[position(&events, "response.output_audio_transcript.done")]["transcript"],
        "Second turn."
    );

    // A response's own instructions replace the session's for that response only.
    let responses = fake.sessions()[0].responses.clone();
    assert_eq!(responses[0].instructions, "Greet.");
    assert_eq!(responses[1].instructions, "You are a test.");
}

#[tokio::test]
async fn a_second_response_while_one_runs_is_refused() {
    let turns = vec![ScriptedTurn::tone("long", 440.0, 5_000)];
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(1.0),
        ..Behaviour::with_mode(Mode::Scripted { turns })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    client
        .send(json!({"type": "response.create", "event_id": "second"}))
        .await;
    let error = client.until("error").await.pop().unwrap();
    assert_eq!(
        error["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(error["error"]["event_id"], "second");
    client.send(json!({"type": "response.cancel"})).await;
    let done = client.until("response.done").await.pop().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
}

// ----- BargeIn, cancel and truncate ---------------------------------------------------------

#[tokio::test]
async fn barge_in_then_cancel_and_truncate() {
    let turns = vec![ScriptedTurn::tone(
        "A long answer that the caller interrupts.",
        440.0,
        4_000,
    )];
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(4.0),
        ..Behaviour::with_mode(Mode::BargeIn {
            turns,
            after_ms: 600,
            times: 1,
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .update(session_with(pcm24k(), vad(false, false)))
        .await;
    client.send(json!({"type": "response.create"})).await;

    let before = client.until("input_audio_buffer.speech_started").await;
    let item_id = before[position(&before, "response.output_item.added")]["item"]["id"].clone();
    let response_id = before[position(&before, "response.created")]["response"]["id"].clone();
    let heard_ms = delta_bytes(&before).len() / 48;
    assert!(
        heard_ms >= 600,
        "speech started after {heard_ms} ms of audio"
    );
    assert!(!types(&before).contains(&"response.done"), "mid-response");

    client
        .send(json!({"type": "response.cancel", "response_id": response_id}))
        .await;
    let cancelled = client.until("response.done").await;
    let done = cancelled.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "client_cancelled"
    );
    assert_eq!(done["response"]["status_details"]["type"], "cancelled");
    let sent_ms = (heard_ms + delta_bytes(&cancelled).len() / 48) as u64;

    client
        .send(
            json!({"type": "conversation.item.truncate", "item_id": item_id,
                     "content_index": 0, "audio_end_ms": 500}),
        )
        .await;
    let truncated = client
        .until("conversation.item.truncated")
        .await
        .pop()
        .unwrap();
    assert_eq!(truncated["item_id"], item_id);
    assert_eq!(truncated["audio_end_ms"], 500);

    client
        .send(
            json!({"type": "conversation.item.truncate", "item_id": item_id,
                     "content_index": 0, "audio_end_ms": sent_ms + 1_000}),
        )
        .await;
    let error = client.until("error").await.pop().unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("is already shorter than"), "{message}");
    assert_eq!(error["error"]["param"], "audio_end_ms");

    // The fake caller stops talking about 300 ms later; create_response is off.
    let after = client.until("input_audio_buffer.committed").await;
    let stopped = &after[position(&after, "input_audio_buffer.speech_stopped")];
    assert_eq!(stopped["item_id"], before.last().unwrap()["item_id"]);

    let record = &fake.sessions()[0];
    assert_eq!(record.cancels, 1);
    assert_eq!(record.truncates.len(), 2);
    assert_eq!(record.responses[0].status, ResponseStatus::Cancelled);
    assert_eq!(record.responses[0].audio_ms_sent, sent_ms);
    assert!(record.violations.is_empty(), "{:?}", record.violations);
}

#[tokio::test]
async fn barge_in_with_interrupt_response_cancels_by_itself_and_answers_again() {
    let turns = vec![
        ScriptedTurn::tone("first", 440.0, 3_000),
        ScriptedTurn::tone("second", 660.0, 300),
    ];
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(4.0),
        ..Behaviour::with_mode(Mode::BargeIn {
            turns,
            after_ms: 300,
            times: 1,
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcm24k(), vad(true, true))).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert!(position(&events, "input_audio_buffer.speech_started") < events.len() - 1);
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    // Speech stops, the turn is committed and (create_response) the next turn is spoken
    // without a barge-in (times: 1).
    let next = client.until("response.done").await;
    assert!(
        position(&next, "input_audio_buffer.speech_stopped") < position(&next, "response.created")
    );
    assert_eq!(next.last().unwrap()["response"]["status"], "completed");
    assert_eq!(
        next[position(&next, "response.output_audio_transcript.done")]["transcript"],
        "second"
    );
    // A cancel now finds nothing running.
    client.send(json!({"type": "response.cancel"})).await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
}

#[tokio::test]
async fn cancel_with_nothing_running_is_an_error_and_the_session_stays_open() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .send(json!({"type": "response.cancel", "event_id": "evt_cancel"}))
        .await;
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
    assert_eq!(error["error"]["event_id"], "evt_cancel");
    client.update(json!({"type": "realtime"})).await;
    let record = &fake.sessions()[0];
    assert_eq!(record.cancels, 1);
    assert_eq!(record.error_codes(), ["response_cancel_not_active"]);
    assert!(
        record.violations.is_empty(),
        "a benign error is not a violation"
    );
}

#[tokio::test]
async fn truncating_a_user_item_or_unknown_item_is_refused() {
    let fake = FakeOpenAi::start(unpaced(Mode::Echo)).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message",
            "role": "user", "content": [{"type": "input_text", "text": "Greet the caller."}]}}),
        )
        .await;
    let added = client.until("conversation.item.added").await.pop().unwrap();
    let user_item = added["item"]["id"].clone();
    assert_eq!(added["item"]["role"], "user");
    client.until("conversation.item.done").await;
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": user_item}))
        .await;
    let retrieved = client.next().await;
    assert_eq!(retrieved["type"], "conversation.item.retrieved");
    assert_eq!(retrieved["item"]["content"][0]["text"], "Greet the caller.");
    for item_id in [user_item.clone(), json!("item_unknown")] {
        client
            .send(
                json!({"type": "conversation.item.truncate", "item_id": item_id,
                         "content_index": 0, "audio_end_ms": 0}),
            )
            .await;
        let error = client.next().await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Only model output audio messages can be truncated"));
    }
    client
        .send(json!({"type": "conversation.item.delete", "item_id": user_item}))
        .await;
    assert_eq!(client.next().await["type"], "conversation.item.deleted");
    client
        .send(json!({"type": "conversation.item.delete", "item_id": user_item}))
        .await;
    assert_eq!(client.next().await["error"]["param"], "item_id");
}

// ----- validation ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_events_are_violations_answered_with_errors_and_the_session_stays_open() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut client = Client::ready(&fake).await;

    let beta = json!({"type": "session.update", "event_id": "beta", "session": {
        "modalities": ["text", "audio"], "voice": "alloy", "input_audio_format": "g711_ulaw",
        "turn_detection": {"type": "server_vad"}}});
    let bad_base64 = json!({"type": "input_audio_buffer.append", "audio": "not base64!"});
    let fractional = json!({"type": "conversation.item.truncate", "item_id": "item_1",
                            "content_index": 0, "audio_end_ms": 1.5});
    let unknown = json!({"type": "response.audio.delta", "delta": "AAAA"});
    for event in [beta, bad_base64, fractional, unknown] {
        client.send(event).await;
        let error = client.next().await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    client
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(client.next().await["type"], "error");
    client.ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(client.next().await["type"], "error");

    // Still open and still serving.
    let updated = client
        .update(json!({"type": "realtime", "instructions": "ok"}))
        .await;
    assert_eq!(updated["session"]["instructions"], "ok");

    let record = &fake.sessions()[0];
    let violations = &record.violations;
    let starts = |prefix: &str| violations.iter().filter(|v| v.starts_with(prefix)).count();
    // The beta update: no session.type plus four beta keys.
    assert_eq!(starts("session.update: "), 5, "{violations:?}");
    assert_eq!(starts("input_audio_buffer.append: "), 1);
    assert_eq!(starts("conversation.item.truncate: "), 1);
    assert_eq!(starts("response.audio.delta: "), 1);
    assert_eq!(starts("<binary frame>: "), 1);
    assert_eq!(starts("<invalid json>: "), 1);
    assert_eq!(record.errors_sent.len(), 6);
    assert_eq!(record.errors_sent[0]["error"]["event_id"], "beta");
    assert_eq!(
        record.session["instructions"], "ok",
        "the beta update was not applied"
    );
    assert!(
        record.truncates.is_empty(),
        "a malformed truncate is not a truncate"
    );
    assert_eq!(fake.violations().len(), violations.len());
    assert!(fake.violations()[0].starts_with(&record.id));
}

#[tokio::test]
async fn turn_detection_flags_must_be_explicit_and_pcm_rate_is_checked_on_append() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}}),
        )
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "missing_required_parameter");
    // Three bytes cannot be 16-bit samples of the default audio/pcm.
    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["param"], "audio");
    let record = &fake.sessions()[0];
    assert_eq!(record.violations.len(), 3, "{:?}", record.violations);
    assert_eq!(record.appended_samples, 0);
}

// ----- function calling ---------------------------------------------------------------------

const LOOKUP_ARGS: &str = r#"{"order_id":"A-17","include_items":true}"#;
const WEATHER_ARGS: &str = r#"{"city":"Zürich"}"#;

/// A session with two function tools, μ-law both ways and no VAD (the test commits turns).
fn tools_session() -> Value {
    let mut session = session_with(pcmu(), Value::Null);
    session["tools"] = json!([
        {"type": "function", "name": "lookup_order", "description": "Look up an order.",
         "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}},
        {"type": "function", "name": "get_weather", "description": "Today's weather.",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ]);
    session["tool_choice"] = json!("auto");
    session
}

/// Commits 400 ms of μ-law as a user turn (VAD off) and reads up to its transcription.
async fn commit_user_turn(client: &mut Client) {
    client.append(&[0x55; 8 * 400], 160).await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    client
        .until("conversation.item.input_audio_transcription.completed")
        .await;
}

/// The event types of one response without the chatter (rate limits, conversation items,
/// transcript deltas), runs of audio or argument deltas collapsed to one.
fn skeleton(events: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = Vec::new();
    for kind in types(events) {
        let noise = matches!(
            kind,
            "rate_limits.updated"
                | "conversation.item.added"
                | "conversation.item.done"
                | "response.output_audio_transcript.delta"
        );
        let repeated = kinds.last() == Some(&kind) && kind.ends_with(".delta");
        if !noise && !repeated {
            kinds.push(kind);
        }
    }
    kinds
}

/// The argument deltas of `item_id`, in order.
fn argument_deltas<'a>(events: &'a [Value], item_id: &Value) -> Vec<&'a str> {
    events
        .iter()
        .filter(|event| {
            event["type"] == "response.function_call_arguments.delta"
                && event["item_id"] == *item_id
        })
        .map(|event| event["delta"].as_str().unwrap())
        .collect()
}

fn function_output(call_id: &Value, output: &str) -> Value {
    json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call_id, "output": output}})
}

/// The transcript of the response in `events`.
fn spoken(events: &[Value]) -> Value {
    events[position(events, "response.output_audio_transcript.done")]["transcript"].clone()
}

#[tokio::test]
async fn a_function_call_after_a_preamble_streams_in_ga_order_and_the_follow_up_answers_the_outputs()
 {
    let fake = FakeOpenAi::start(Behaviour {
        function_calls: vec![ScriptedFunctionCall {
            after_user_turn: 1,
            preamble: Some(ScriptedTurn::tone("Let me check that.", 660.0, 300)),
            calls: vec![("lookup_order".into(), LOOKUP_ARGS.into())],
            follow_up: ScriptedTurn::tone("Your order ships today.", 550.0, 400),
        }],
        ..unpaced(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("A normal answer.", 440.0, 200)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(tools_session()).await;
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;

    assert_eq!(
        skeleton(&events),
        [
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.done",
        ]
    );
    assert_eq!(delta_bytes(&events).len(), 8 * 300, "the preamble's audio");
    assert_eq!(spoken(&events), "Let me check that.");
    let response_id = events[0]["response"]["id"].clone();
    let added: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "response.output_item.added")
        .collect();
    let call = &added[1]["item"];
    assert_eq!(added[1]["output_index"], 1);
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "lookup_order");
    assert_eq!(call["arguments"], "");
    assert_eq!(call["status"], "in_progress");
    assert!(call["id"].as_str().unwrap().starts_with("item_"));
    let call_id = call["call_id"].clone();
    assert!(call_id.as_str().unwrap().starts_with("call_"), "{call_id}");

    let deltas = argument_deltas(&events, &call["id"]);
    assert!(deltas.len() >= 2, "{deltas:?}");
    assert_eq!(deltas.concat(), LOOKUP_ARGS);
    let first_delta = &events[position(&events, "response.function_call_arguments.delta")];
    assert_eq!(first_delta["call_id"], call_id);
    assert_eq!(first_delta["response_id"], response_id);
    assert_eq!(first_delta["output_index"], 1);
    let done = &events[position(&events, "response.function_call_arguments.done")];
    for (key, expected) in [
        ("response_id", response_id.clone()),
        ("item_id", call["id"].clone()),
        ("output_index", json!(1)),
        ("call_id", call_id.clone()),
        ("name", json!("lookup_order")),
        ("arguments", json!(LOOKUP_ARGS)),
    ] {
        assert_eq!(done[key], expected, "function_call_arguments.done.{key}");
    }
    let item_done = events
        .iter()
        .rfind(|event| event["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item_done["item"]["status"], "completed");
    assert_eq!(item_done["item"]["arguments"], LOOKUP_ARGS);
    let response = &events.last().unwrap()["response"];
    assert_eq!(response["status"], "completed");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "the preamble and the call");
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], call_id);
    assert_eq!(output[1]["name"], "lookup_order");
    assert_eq!(output[1]["arguments"], LOOKUP_ARGS);
    assert!(response["usage"]["output_token_details"]["text_tokens"].as_u64() > Some(0));

    let sent_at = std::time::Instant::now();
    client
        .send(function_output(&call_id, r#"{"status":"shipped"}"#))
        .await;
    let added = client.until("conversation.item.added").await.pop().unwrap();
    assert_eq!(added["item"]["type"], "function_call_output");
    assert_eq!(added["item"]["call_id"], call_id);
    client.until("conversation.item.done").await;
    client.send(json!({"type": "response.create"})).await;
    let follow_up = client.until("response.done").await;
    assert_response_order(&follow_up);
    assert_eq!(spoken(&follow_up), "Your order ships today.");
    assert_eq!(delta_bytes(&follow_up).len(), 8 * 400);
    let follow_up_id = follow_up[0]["response"]["id"].clone();

    let record = &fake.sessions()[0];
    assert_eq!(record.tools().len(), 2);
    assert_eq!(record.tool_choice(), "auto");
    assert_eq!(record.function_calls.len(), 1);
    assert_eq!(record.function_calls[0].call_id, call_id.as_str().unwrap());
    assert_eq!(record.function_calls[0].arguments, LOOKUP_ARGS);
    let outputs: Vec<_> = record.outputs_for(call_id.as_str().unwrap()).collect();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].output, r#"{"status":"shipped"}"#);
    assert_eq!(outputs[0].item_id, added["item"]["id"].as_str().unwrap());
    assert!(outputs[0].at >= sent_at);
    let batch = &record.tool_batches[0];
    assert_eq!(batch.response_id, response_id.as_str().unwrap());
    assert_eq!(batch.call_ids, [call_id.as_str().unwrap()]);
    assert_eq!((batch.outputs_received, batch.continuations), (1, 1));
    assert_eq!(
        batch.follow_up_response_id.as_deref(),
        follow_up_id.as_str()
    );
    assert_eq!(
        record.responses[0].call_ids,
        [call_id.as_str().unwrap()],
        "the calling response"
    );
    assert!(record.responses[1].call_ids.is_empty());
    assert!(
        record.tool_violations.is_empty(),
        "{:?}",
        record.tool_violations
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    // The next response.create after a new user turn gets the mode's next turn again.
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(
        spoken(&client.until("response.done").await),
        "A normal answer."
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn parallel_calls_without_a_preamble_answer_a_vad_turn_and_need_every_output() {
    let fake = FakeOpenAi::start(Behaviour {
        function_calls: vec![ScriptedFunctionCall {
            after_user_turn: 1,
            preamble: None,
            calls: vec![
                ("lookup_order".into(), LOOKUP_ARGS.into()),
                ("get_weather".into(), WEATHER_ARGS.into()),
            ],
            follow_up: ScriptedTurn::tone("Shipped, and it is sunny.", 550.0, 300),
        }],
        ..unpaced(Mode::Echo)
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    let mut session = tools_session();
    session["audio"]["input"]["turn_detection"] = vad(true, true);
    client.update(session).await;

    // Server VAD commits the turn and creates the response by itself.
    let mut samples = tone::sine(1_000.0, 8_000, 8 * 600, 8_000.0);
    samples.extend(vec![0i16; 8 * 700]);
    let mut codes = Vec::new();
    mulaw::encode_into(&samples, &mut codes);
    client.append(&codes, 160).await;
    let events = client.until("response.done").await;
    let events = &events[position(&events, "response.created")..];
    let call = [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ];
    let mut expected = vec!["response.created"];
    expected.extend(call);
    expected.extend(call);
    expected.push("response.done");
    assert_eq!(skeleton(events), expected);
    assert!(delta_bytes(events).is_empty(), "no echo, no preamble");

    let calls: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "response.function_call_arguments.done")
        .collect();
    assert_eq!(calls[0]["output_index"], 0);
    assert_eq!(calls[1]["output_index"], 1);
    assert_eq!(calls[1]["name"], "get_weather");
    assert_eq!(
        argument_deltas(events, &calls[1]["item_id"]).concat(),
        WEATHER_ARGS
    );
    let call_ids = [calls[0]["call_id"].clone(), calls[1]["call_id"].clone()];
    assert_ne!(call_ids[0], call_ids[1], "call ids are unique");
    let output = &events.last().unwrap()["response"]["output"];
    assert_eq!(output.as_array().unwrap().len(), 2);
    assert_eq!(output[0]["call_id"], call_ids[0]);
    assert_eq!(output[1]["call_id"], call_ids[1]);
    assert_eq!(output[1]["arguments"], WEATHER_ARGS);

    for (call_id, text) in call_ids.iter().zip(["shipped", "sunny"]) {
        client.send(function_output(call_id, text)).await;
        client.until("conversation.item.done").await;
    }
    client.send(json!({"type": "response.create"})).await;
    let follow_up = client.until("response.done").await;
    assert_eq!(spoken(&follow_up), "Shipped, and it is sunny.");

    let record = &fake.sessions()[0];
    let outputs: Vec<(&str, &str)> = record
        .function_call_outputs
        .iter()
        .map(|output| (output.call_id.as_str(), output.output.as_str()))
        .collect();
    assert_eq!(
        outputs,
        [
            (call_ids[0].as_str().unwrap(), "shipped"),
            (call_ids[1].as_str().unwrap(), "sunny")
        ]
    );
    assert!(record.function_call_outputs[0].at <= record.function_call_outputs[1].at);
    assert_eq!(record.tool_batches.len(), 1);
    assert_eq!(record.tool_batches[0].outputs_received, 2);
    assert_eq!(record.tool_batches[0].continuations, 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_response_create_while_the_follow_up_runs_gets_conversation_already_has_active_response()
{
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(1.0),
        function_calls: vec![ScriptedFunctionCall::single(
            1,
            "lookup_order",
            LOOKUP_ARGS,
            ScriptedTurn::tone("A long follow-up.", 550.0, 5_000),
        )],
        ..Behaviour::with_mode(Mode::Scripted { turns: Vec::new() })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(tools_session()).await;
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    let call_id =
        events[position(&events, "response.function_call_arguments.done")]["call_id"].clone();
    client.send(function_output(&call_id, "{}")).await;
    client.until("conversation.item.done").await;
    client.send(json!({"type": "response.create"})).await;
    let created = client.until("response.created").await.pop().unwrap();
    let running = created["response"]["id"].as_str().unwrap().to_owned();

    client
        .send(json!({"type": "response.create", "event_id": "again"}))
        .await;
    let error = client.until("error").await.pop().unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(
        error["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(
        error["error"]["message"],
        format!(
            "Conversation already has an active response in progress: {running}. Wait until \
             the response is finished before creating a new one."
        )
    );
    assert_eq!(error["error"]["event_id"], "again");
    client.send(json!({"type": "response.cancel"})).await;
    client.until("response.done").await;

    let record = &fake.sessions()[0];
    assert_eq!(
        record.tool_batches[0].continuations, 1,
        "a refused response.create is not a continuation"
    );
    assert_eq!(record.responses.len(), 2);
    assert!(
        record.tool_violations.is_empty(),
        "{:?}",
        record.tool_violations
    );
}

#[tokio::test]
async fn continuing_before_every_output_or_twice_is_recorded_and_unknown_call_ids_are_refused() {
    let fake = FakeOpenAi::start(Behaviour {
        function_calls: vec![ScriptedFunctionCall {
            after_user_turn: 1,
            preamble: None,
            calls: vec![
                ("lookup_order".into(), LOOKUP_ARGS.into()),
                ("get_weather".into(), WEATHER_ARGS.into()),
            ],
            follow_up: ScriptedTurn::tone("Here is what I found.", 550.0, 200),
        }],
        ..unpaced(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("A normal answer.", 440.0, 200)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(tools_session()).await;
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    let call_ids: Vec<Value> = events
        .iter()
        .filter(|event| event["type"] == "response.function_call_arguments.done")
        .map(|event| event["call_id"].clone())
        .collect();
    assert_eq!(call_ids.len(), 2);

    // An output for a call that does not exist is refused.
    client
        .send(
            json!({"type": "conversation.item.create", "event_id": "bogus", "item": {
            "type": "function_call_output", "call_id": "call_nope", "output": "{}"}}),
        )
        .await;
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "item.call_id");
    assert_eq!(error["error"]["event_id"], "bogus");
    // A non-string output is a shape violation.
    client
        .send(json!({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call_ids[0], "output": {"ok": true}}}))
        .await;
    assert_eq!(client.next().await["error"]["param"], "item.output");

    // One output of two, then the continuation: answered normally, recorded.
    client.send(function_output(&call_ids[0], "shipped")).await;
    client.until("conversation.item.done").await;
    client.send(json!({"type": "response.create"})).await;
    let early = client.until("response.done").await;
    assert_eq!(spoken(&early), "A normal answer.");

    // A second output for the same call is recorded (the API accepts the item).
    client.send(function_output(&call_ids[0], "again")).await;
    client.until("conversation.item.done").await;
    client.send(function_output(&call_ids[1], "sunny")).await;
    client.until("conversation.item.done").await;
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(
        spoken(&client.until("response.done").await),
        "Here is what I found."
    );
    // One response.create per batch: a second one is answered but recorded.
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(
        spoken(&client.until("response.done").await),
        "A normal answer."
    );

    let record = &fake.sessions()[0];
    let batch = &record.tool_batches[0];
    assert_eq!(batch.early_continuations, 1);
    assert_eq!(batch.continuations, 2);
    assert_eq!(batch.outputs_received, 2);
    let problems = &record.tool_violations;
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("call_nope"), "{problems:?}");
    assert!(
        problems[1].contains("continuation before all function outputs: 1 of 2"),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("a second function_call_output"),
        "{problems:?}"
    );
    assert!(
        problems[3].contains("one response.create per batch"),
        "{problems:?}"
    );
    assert_eq!(
        record.function_call_outputs.len(),
        4,
        "every well-formed output"
    );
    assert_eq!(record.outputs_for(call_ids[0].as_str().unwrap()).count(), 2);
    assert_eq!(record.violations.len(), 1, "the non-string output");
    assert_eq!(fake.violations().len(), 5);
}

#[tokio::test]
async fn a_call_response_cancelled_during_its_preamble_emits_no_calls_and_is_used_up() {
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(1.0),
        function_calls: vec![ScriptedFunctionCall {
            after_user_turn: 1,
            preamble: Some(ScriptedTurn::tone(
                "Let me check, this takes a while.",
                660.0,
                5_000,
            )),
            calls: vec![("lookup_order".into(), LOOKUP_ARGS.into())],
            follow_up: ScriptedTurn::tone("never", 550.0, 200),
        }],
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("A normal answer.", 440.0, 100)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(tools_session()).await;
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    client.send(json!({"type": "response.cancel"})).await;
    let events = client.until("response.done").await;
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(done["response"]["output"].as_array().unwrap().len(), 1);
    assert!(
        !types(&events)
            .iter()
            .any(|kind| kind.contains("function_call")),
        "{:?}",
        types(&events)
    );
    // The entry is used up: the next response is the mode's.
    client.send(json!({"type": "response.create"})).await;
    let next = client.until("response.done").await;
    assert_eq!(spoken(&next), "A normal answer.");
    assert!(
        !types(&next)
            .iter()
            .any(|kind| kind.contains("function_call"))
    );

    let record = &fake.sessions()[0];
    assert!(record.function_calls.is_empty());
    assert!(record.tool_batches.is_empty());
    assert_eq!(record.responses[0].status, ResponseStatus::Cancelled);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_scripted_call_to_an_undeclared_function_is_recorded() {
    let fake = FakeOpenAi::start(Behaviour {
        function_calls: vec![ScriptedFunctionCall::single(
            1,
            "transfer_call",
            "{}",
            ScriptedTurn::tone("Transferring.", 550.0, 100),
        )],
        ..unpaced(Mode::Scripted { turns: Vec::new() })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(tools_session()).await;
    commit_user_turn(&mut client).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert_eq!(
        events[position(&events, "response.function_call_arguments.done")]["name"],
        "transfer_call"
    );
    let record = &fake.sessions()[0];
    assert_eq!(
        record.tool_violations.len(),
        1,
        "{:?}",
        record.tool_violations
    );
    assert!(record.tool_violations[0].contains("'transfer_call'"));
}

#[tokio::test]
async fn invalid_tools_in_session_update_are_refused_naming_the_param() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut client = Client::ready(&fake).await;
    let function = json!({"type": "function", "name": "lookup_order",
        "description": "Look up an order.", "parameters": {"type": "object"}});
    let cases = [
        (
            json!([function, {"type": "function", "name": "bad name!", "description": "x",
                              "parameters": {}}]),
            json!("auto"),
            "session.tools[1].name",
        ),
        (
            json!([{"type": "function", "name": "f", "description": "x", "parameters": "{}"}]),
            json!("auto"),
            "session.tools[0].parameters",
        ),
        (
            json!([{"type": "function", "name": "f", "parameters": {}}]),
            json!("auto"),
            "session.tools[0].description",
        ),
        (
            json!([{"type": "mcp", "server_url": "https://mcp.example.com"}]),
            json!("auto"),
            "session.tools[0].server_label",
        ),
        (
            json!([{"type": "mcp", "server_label": "crm"}]),
            json!("auto"),
            "session.tools[0].server_url",
        ),
        (
            json!([{"type": "retrieval"}]),
            json!("auto"),
            "session.tools[0].type",
        ),
        (json!([function]), json!("always"), "session.tool_choice"),
        (
            json!([function]),
            json!({"type": "function"}),
            "session.tool_choice.name",
        ),
    ];
    for (index, (tools, tool_choice, param)) in cases.iter().enumerate() {
        let event_id = format!("bad{index}");
        client
            .send(
                json!({"type": "session.update", "event_id": event_id, "session": {
                "type": "realtime", "tools": tools, "tool_choice": tool_choice}}),
            )
            .await;
        let error = client.next().await;
        assert_eq!(error["type"], "error", "{param}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"], *param, "{error}");
        assert_eq!(error["error"]["event_id"], event_id.as_str());
    }
    let record = fake.sessions()[0].clone();
    assert!(record.tools().is_empty(), "no refused update was applied");
    assert_eq!(
        record.violations.len(),
        cases.len(),
        "{:?}",
        record.violations
    );

    // Valid function and MCP tools and an object tool_choice are applied and recorded.
    let tools = json!([function, {"type": "mcp", "server_label": "crm",
        "server_url": "https://mcp.example.com/sse", "allowed_tools": ["find_customer"],
        "require_approval": "never", "headers": {"X-Tenant": "t1"}}]);
    let choice = json!({"type": "function", "name": "lookup_order"});
    let updated = client
        .update(json!({"type": "realtime", "tools": tools, "tool_choice": choice}))
        .await;
    assert_eq!(updated["session"]["tools"], tools);
    let record = fake.sessions()[0].clone();
    assert_eq!(record.tools(), tools.as_array().unwrap().as_slice());
    assert_eq!(record.tool_choice(), &choice);
}

// ----- out-of-band responses ----------------------------------------------------------------

#[tokio::test]
async fn an_out_of_band_response_runs_beside_the_default_one_and_stays_out_of_the_conversation() {
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(2.0),
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("A long answer.", 440.0, 4_000)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), Value::Null)).await;
    client.send(json!({"type": "response.create"})).await;
    let started = client.until("response.output_audio.delta").await;
    let default_id = started[0]["response"]["id"].clone();
    let default_item =
        started[position(&started, "response.output_item.added")]["item"]["id"].clone();

    client
        .send(
            json!({"type": "response.create", "event_id": "oob", "response": {
            "conversation": "none",
            "metadata": {"purpose": "classify_intent"},
            "instructions": "Classify the caller's intent.",
            "input": [{"type": "item_reference", "id": default_item},
                      {"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "Which intent?"}]}]}}),
        )
        .await;
    // Read until the out-of-band response is done; the default one is still streaming.
    let mut events = Vec::new();
    let oob_done = loop {
        let event = client.next().await;
        events.push(event.clone());
        if event["type"] == "response.done" {
            break event;
        }
    };
    assert!(!types(&events).contains(&"error"), "{:?}", types(&events));
    let oob_id = oob_done["response"]["id"].clone();
    assert_ne!(oob_id, default_id, "the default response is still running");
    let created = &events[position(&events, "response.created")];
    assert_eq!(created["response"]["id"], oob_id);
    assert!(created["response"]["conversation_id"].is_null());
    assert_eq!(
        created["response"]["metadata"]["purpose"],
        "classify_intent"
    );
    assert_eq!(oob_done["response"]["status"], "completed");
    assert!(oob_done["response"]["conversation_id"].is_null());
    assert_eq!(
        oob_done["response"]["metadata"]["purpose"],
        "classify_intent"
    );
    let oob_item = oob_done["response"]["output"][0]["id"].clone();
    assert_eq!(
        oob_done["response"]["output"][0]["content"][0]["transcript"],
        FILLER_TRANSCRIPT
    );
    let of = |id: &Value| -> Vec<Value> {
        events
            .iter()
            .filter(|event| event["response_id"] == *id)
            .cloned()
            .collect()
    };
    assert_eq!(
        delta_bytes(&of(&oob_id)).len(),
        8 * FILLER_MS as usize,
        "the filler"
    );
    assert!(
        !delta_bytes(&of(&default_id)).is_empty(),
        "the default response kept streaming meanwhile"
    );
    assert!(
        events
            .iter()
            .filter(|event| event["type"]
                .as_str()
                .unwrap()
                .starts_with("conversation.item"))
            .all(|event| event["item"]["id"] != oob_item),
        "no conversation item for the out-of-band response"
    );

    let default_done = client.until("response.done").await.pop().unwrap();
    assert_eq!(default_done["response"]["id"], default_id);
    assert_eq!(default_done["response"]["status"], "completed");
    assert_eq!(default_done["response"]["conversation_id"], "conv_default");
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": oob_item}))
        .await;
    assert_eq!(client.next().await["error"]["param"], "item_id");

    let record = &fake.sessions()[0];
    assert_eq!(record.responses.len(), 2);
    let oob = &record.responses[1];
    assert!(oob.out_of_band);
    assert!(!record.responses[0].out_of_band);
    assert_eq!(oob.metadata, json!({"purpose": "classify_intent"}));
    assert_eq!(oob.instructions, "Classify the caller's intent.");
    assert_eq!(oob.status, ResponseStatus::Completed);
    assert_eq!(oob.audio_ms_sent, u64::from(FILLER_MS));
    assert_eq!(record.responses[0].status, ResponseStatus::Completed);
    assert!(record.violations.is_empty(), "{:?}", record.violations);
}

#[tokio::test]
async fn an_out_of_band_response_does_not_answer_the_pending_turn_and_is_validated() {
    let fake = FakeOpenAi::start(Behaviour {
        filler: ScriptedTurn::tone("hmm", 300.0, 200),
        ..unpaced(Mode::Echo)
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), Value::Null)).await;
    commit_user_turn(&mut client).await;

    for (bad, param) in [
        (
            json!({"conversation": "none", "metadata": {"n": 1}}),
            "response.metadata.n",
        ),
        (
            json!({"conversation": "elsewhere"}),
            "response.conversation",
        ),
        (
            json!({"conversation": "none", "input": [{"type": "item_reference"}]}),
            "response.input[0].id",
        ),
    ] {
        client
            .send(json!({"type": "response.create", "response": bad}))
            .await;
        assert_eq!(client.next().await["error"]["param"], param);
    }
    client
        .send(
            json!({"type": "response.create", "response": {"conversation": "none",
            "input": [{"type": "item_reference", "id": "item_missing"}]}}),
        )
        .await;
    assert_eq!(
        client.next().await["error"]["param"],
        "response.input[0].id"
    );

    client
        .send(
            json!({"type": "response.create", "response": {"conversation": "none",
            "output_modalities": ["text"]}}),
        )
        .await;
    let text = client.until("response.done").await;
    assert_eq!(
        text[position(&text, "response.output_text.done")]["text"],
        "hmm"
    );
    assert!(delta_bytes(&text).is_empty());
    client
        .send(json!({"type": "response.create", "response": {"conversation": "none"}}))
        .await;
    let filler = client.until("response.done").await;
    assert_eq!(delta_bytes(&filler).len(), 8 * 200);
    // The caller's turn is still waiting for its (echo) answer.
    client.send(json!({"type": "response.create"})).await;
    let answer = client.until("response.done").await;
    assert_eq!(delta_bytes(&answer), [0x55; 8 * 400]);

    let record = &fake.sessions()[0];
    let kinds: Vec<bool> = record.responses.iter().map(|r| r.out_of_band).collect();
    assert_eq!(kinds, [true, true, false]);
    assert_eq!(record.violations.len(), 3, "{:?}", record.violations);
}

// ----- failures -----------------------------------------------------------------------------

#[tokio::test]
async fn invalid_key_after_open_sends_an_error_then_closes_3000() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::InvalidKeyAfterOpen),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut client = Client::connect(&fake).await;
    let (code, reason, events) = client.closed().await;
    assert_eq!(code, 3000);
    assert_eq!(reason, "invalid_request_error.invalid_api_key");
    assert_eq!(types(&events), ["error"]);
    assert_eq!(events[0]["error"]["code"], "invalid_api_key");
    let record = &fake.sessions()[0];
    assert_eq!(record.closed, Some((3000, reason)));
}

#[tokio::test]
async fn close_mid_response_closes_while_audio_is_streaming() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::CloseMidResponse {
            code: 1011,
            reason: "internal error".into(),
            after_ms: 300,
        }),
        ..unpaced(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("never finished", 440.0, 2_000)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.send(json!({"type": "response.create"})).await;
    let (code, reason, events) = client.closed().await;
    assert_eq!((code, reason.as_str()), (1011, "internal error"));
    assert_eq!(delta_bytes(&events).len(), 300 * 48);
    assert!(!types(&events).contains(&"response.done"));
    let record = &fake.sessions()[0];
    assert_eq!(record.responses[0].status, ResponseStatus::InProgress);
    assert_eq!(record.closed_by, Some(ClosedBy::Server));
}

#[tokio::test]
async fn a_stalled_session_sends_nothing_until_the_fake_stops() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::Stall),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut client = Client::connect(&fake).await;
    let silence = tokio::time::timeout(Duration::from_millis(300), client.ws.next()).await;
    assert!(silence.is_err(), "no session.created: {silence:?}");
    assert!(fake.wait_for_sessions(1, WAIT).await);
    assert_eq!(fake.live_sessions(), 1);
    fake.stop();
    assert!(
        fake.wait_until(WAIT, |sessions| sessions[0].closed.is_some())
            .await,
        "the stalled session is dropped on stop"
    );
    assert!(fake.wait_until(WAIT, |_| fake.live_sessions() == 0).await);
}

#[tokio::test]
async fn the_session_cap_closes_1001() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::SessionCap { after_ms: 200 }),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    let (code, reason, _) = client.closed().await;
    assert_eq!(code, 1001);
    assert_eq!(
        reason,
        "Your session hit the maximum duration of 60 minutes."
    );
}

#[tokio::test]
async fn an_injected_error_answers_the_session_update_and_may_close() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::ErrorEvent {
            after: Trigger::OnSessionUpdate,
            code: "unknown_parameter".into(),
            message: "Unknown parameter: 'session.foo'.".into(),
            close_code: Some(4000),
        }),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client
        .send(json!({"type": "session.update", "event_id": "u1", "session": {"type": "realtime"}}))
        .await;
    let (code, reason, events) = client.closed().await;
    assert_eq!(types(&events), ["error"]);
    assert_eq!(events[0]["error"]["event_id"], "u1");
    assert_eq!(
        (code, reason.as_str()),
        (4000, "invalid_request_error.unknown_parameter")
    );
}

#[tokio::test]
async fn an_injected_error_after_appended_audio_leaves_the_session_open() {
    let fake = FakeOpenAi::start(Behaviour {
        failure: Some(Failure::ErrorEvent {
            after: Trigger::AfterAppendedMs(100),
            code: "server_error".into(),
            message: "The server had an error.".into(),
            close_code: None,
        }),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.update(session_with(pcmu(), Value::Null)).await;
    client.append(&[0xFF; 8 * 200], 160).await;
    let error = client.next().await;
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["event_id"].is_null());
    client.update(json!({"type": "realtime"})).await;
    assert_eq!(fake.sessions()[0].errors_sent.len(), 1, "fires once");
}

// ----- lifecycle ----------------------------------------------------------------------------

#[tokio::test]
async fn stop_closes_every_session_1001_and_records_client_closes() {
    let fake = FakeOpenAi::start(Behaviour::default()).await.unwrap();
    let mut first = Client::ready(&fake).await;
    let mut second = Client::ready(&fake).await;
    second.ws.close(None).await.unwrap();
    assert!(
        fake.wait_until(WAIT, |sessions| sessions.len() == 2
            && sessions[1].closed.is_some())
            .await
    );
    assert_eq!(fake.sessions()[1].closed_by, Some(ClosedBy::Client));
    assert!(fake.wait_until(WAIT, |_| fake.live_sessions() == 1).await);

    fake.stop();
    let (code, _, _) = first.closed().await;
    assert_eq!(code, 1001);
    assert!(fake.wait_until(WAIT, |_| fake.live_sessions() == 0).await);
    assert!(
        open(&fake, Some("model=m"), Some("Bearer k"), false)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn paced_audio_is_recorded_with_timings_in_order() {
    let fake = FakeOpenAi::start(Behaviour {
        pace: Pace::Realtime(8.0),
        delta_ms: 50,
        record_timings: true,
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("paced", 440.0, 800)],
        })
    })
    .await
    .unwrap();
    let mut client = Client::ready(&fake).await;
    client.send(json!({"type": "response.create"})).await;
    let events = client.until("response.done").await;
    assert_eq!(delta_bytes(&events).len(), 800 * 48);
    let record = &fake.sessions()[0];
    let samples: Vec<u64> = record
        .delta_timings
        .iter()
        .map(|(samples, _)| *samples)
        .collect();
    assert_eq!(samples.len(), 16);
    assert_eq!(samples.last(), Some(&(800 * 24)));
    assert!(
        record
            .delta_timings
            .windows(2)
            .all(|pair| pair[0].1 <= pair[1].1)
    );
}

// ----- load ---------------------------------------------------------------------------------

/// CPU time (user + system) this process has used, from /proc (Linux); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second
    // on Linux).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of this process in MiB, from /proc (Linux).
fn rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1_024)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A load measurement, not a speed assertion: `FAKE_OPENAI_LOAD_SESSIONS` (default 1000)
/// EchoStream sessions each append a 20 ms μ-law frame every 20 ms for
/// `FAKE_OPENAI_LOAD_SECS` (default 10) seconds, from clients in this same process (as the load
/// generator runs them; their tungstenite read buffer is `FAKE_OPENAI_LOAD_CLIENT_READ_BUFFER`
/// bytes, default 8 KiB, since tungstenite zero-fills that much on every read). It checks that every append came back as a delta and prints the CPU
/// time and memory of fake + clients. Run with
/// `cargo test --release --lib sim::fake_openai::tests::load -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load measurement: run explicitly, in release mode"]
async fn load_echo_stream_sessions_in_real_time() {
    let sessions = env_number("FAKE_OPENAI_LOAD_SESSIONS", 1_000) as usize;
    let seconds = env_number("FAKE_OPENAI_LOAD_SECS", 10);
    let frames = seconds * 50;
    let fake = FakeOpenAi::start(Behaviour {
        record_audio: false,
        ..unpaced(Mode::EchoStream { turn_ms: 10_000 })
    })
    .await
    .unwrap();
    let rss_before = rss_mib();
    let small_buffers = env_number("FAKE_OPENAI_LOAD_CLIENT_READ_BUFFER", 8 * 1024) as usize;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(small_buffers);
    let mut clients = Vec::new();
    for _ in 0..sessions {
        let mut url = fake.url();
        url.set_query(Some("model=gpt-realtime"));
        let mut request = url.as_str().into_client_request().unwrap();
        let bearer = format!("Bearer {KEY}");
        request
            .headers_mut()
            .insert("Authorization", bearer.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .unwrap();
        let mut client = Client { ws };
        assert_eq!(client.next().await["type"], "session.created");
        client.update(session_with(pcmu(), Value::Null)).await;
        clients.push(client);
    }
    let rss_connected = rss_mib();
    let cpu_start = cpu_time();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (index, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = client.ws.split();
            let reader = tokio::spawn(async move {
                let mut deltas = 0;
                while deltas < frames {
                    match tokio::time::timeout(WAIT, stream.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            if text.as_str().contains("\"response.output_audio.delta\"") {
                                deltas += 1;
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                deltas
            });
            // Spread the sessions over the 20 ms frame period, as real calls are.
            tokio::time::sleep(Duration::from_micros(
                index as u64 * 20_000 / sessions as u64,
            ))
            .await;
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            let mut audio = String::new();
            pcm::encode_base64(&[0x55; 160], &mut audio);
            let append = json!({"type": "input_audio_buffer.append", "audio": audio}).to_string();
            for _ in 0..frames {
                ticker.tick().await;
                sink.send(Message::text(append.clone())).await.unwrap();
            }
            reader.await.unwrap()
        }));
    }
    let mut echoed = 0;
    for task in tasks {
        echoed += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let cpu = cpu_start.zip(cpu_time()).map(|(start, end)| end - start);
    assert_eq!(echoed, frames * sessions as u64, "every append echoed");
    println!(
        "{sessions} sessions × {seconds} s of 20 ms appends: wall {elapsed:.1?}, CPU (fake + \
         clients) {cpu:?} = {:.0}% of one core; RSS before {rss_before:?} MiB, connected \
         {rss_connected:?} MiB, after {:?} MiB",
        cpu.map_or(0.0, |cpu| cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0),
        rss_mib(),
    );
    fake.stop();
}
