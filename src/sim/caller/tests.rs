//! The caller against a tiny scripted WebSocket server: it records every frame the caller sends
//! and sends back whatever the test tells it to.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use url::Url;

use super::*;
use crate::audio::pcm;

const WAIT: Duration = Duration::from_secs(5);

enum Action {
    Send(Message),
    /// Drop the connection without a close frame.
    Drop,
}

/// A WebSocket server for one connection.
struct TestServer {
    url: Url,
    incoming: mpsc::UnboundedReceiver<Message>,
    actions: mpsc::UnboundedSender<Action>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "ws://{}/teler/ws?call_id=vx_1&token=t0k",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (actions, mut actions_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            loop {
                tokio::select! {
                    frame = ws.next() => match frame {
                        Some(Ok(message)) => { let _ = incoming_tx.send(message); }
                        _ => break,
                    },
                    action = actions_rx.recv() => match action {
                        Some(Action::Send(message)) => {
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                        Some(Action::Drop) | None => break,
                    },
                }
            }
        });
        TestServer {
            url,
            incoming,
            actions,
        }
    }

    /// The next frame the caller sent; `None` once the connection is gone.
    async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("the caller sent nothing within 5 s")
    }

    /// The next frame, which must be JSON text.
    async fn next_json(&mut self) -> Value {
        match self.next().await {
            Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    fn send(&self, message: Message) {
        self.actions.send(Action::Send(message)).unwrap();
    }

    fn send_text(&self, text: &str) {
        self.send(Message::text(text));
    }

    fn drop_connection(&self) {
        self.actions.send(Action::Drop).unwrap();
    }

    fn config(&self, sample_rate: u32, chunk_ms: u32) -> CallerConfig {
        CallerConfig::new(self.url.clone(), "cs_TESTCALL", sample_rate, chunk_ms)
    }

    async fn caller(&self, sample_rate: u32, chunk_ms: u32) -> SimulatedCaller {
        SimulatedCaller::connect(self.config(sample_rate, chunk_ms), WAIT)
            .await
            .unwrap()
    }
}

/// A server that answers the upgrade request with `status_line` and `body`.
async fn refusing_server(status_line: &'static str, body: &'static str) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("ws://{}/teler/ws", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = tcp.read(&mut buffer).await.unwrap();
            if read == 0 {
                return;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        let response = format!(
            "HTTP/1.1 {status_line}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        // One write, so the body arrives with the headers (the client keeps only that part).
        tcp.write_all(response.as_bytes()).await.unwrap();
        let _ = tcp.shutdown().await;
    });
    url
}

fn flat_audio(chunk_id: i64, samples: &[i16]) -> String {
    let mut bytes = Vec::new();
    pcm::encode_s16le(samples, &mut bytes);
    let mut b64 = String::new();
    pcm::encode_base64(&bytes, &mut b64);
    json!({"type": "audio", "audio_b64": b64, "chunk_id": chunk_id}).to_string()
}

fn decode_audio_message(message: &Value) -> Vec<i16> {
    let b64 = message["data"]["audio_b64"].as_str().unwrap();
    let mut bytes = Vec::new();
    pcm::decode_base64(b64, &mut bytes).unwrap();
    let mut samples = Vec::new();
    assert_eq!(pcm::decode_s16le(&bytes, &mut samples), 0);
    samples
}

fn ramp(n: usize) -> Vec<i16> {
    (0..n).map(|i| (i % 30_000) as i16 - 15_000).collect()
}

#[tokio::test]
async fn refused_upgrades_report_the_status_and_body() {
    for (status_line, status) in [("401 Unauthorized", 401), ("404 Not Found", 404)] {
        let url = refusing_server(status_line, "unknown call").await;
        let config = CallerConfig::new(url, "cs_X", 8_000, 100);
        match SimulatedCaller::connect(config, WAIT).await {
            Err(CallerError::Rejected { status: got, body }) => {
                assert_eq!(got, status);
                assert_eq!(body, "unknown call");
            }
            other => panic!("{status_line}: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("ws://{address}/teler/ws")).unwrap();
    let result = SimulatedCaller::connect(CallerConfig::new(url, "cs_X", 8_000, 100), WAIT).await;
    assert!(
        matches!(result, Err(CallerError::Connect(_))),
        "{:?}",
        result.map(|_| ())
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("ws://{}/teler/ws", listener.local_addr().unwrap())).unwrap();
    // Accepts the TCP connection (the backlog does that) but never answers the upgrade.
    let result = SimulatedCaller::connect(
        CallerConfig::new(url, "cs_X", 8_000, 100),
        Duration::from_millis(200),
    )
    .await;
    assert!(
        matches!(result, Err(CallerError::Timeout)),
        "{:?}",
        result.map(|_| ())
    );
    drop(listener);
}

#[tokio::test]
async fn start_is_frejuns_exact_message() {
    let mut server = TestServer::start().await;
    let mut config = server.config(16_000, 100);
    config.stream_id = "st_1".into();
    config.account_id = "acc_1".into();
    config.call_app_id = "va_\"1\"".into();
    let mut caller = SimulatedCaller::connect(config, WAIT).await.unwrap();
    caller.send_start().await.unwrap();
    match server.next().await {
        Some(Message::Text(text)) => assert_eq!(
            text.as_str(),
            r#"{"type":"start","account_id":"acc_1","call_app_id":"va_\"1\"","call_id":"cs_TESTCALL","stream_id":"st_1","message_id":1,"data":{"encoding":"audio/l16","sample_rate":16000,"channels":1}}"#
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn default_stream_ids_differ() {
    let url = Url::parse("ws://127.0.0.1:9/").unwrap();
    let a = CallerConfig::new(url.clone(), "cs_A", 8_000, 100);
    let b = CallerConfig::new(url, "cs_B", 8_000, 100);
    assert!(a.stream_id.starts_with("stream-"));
    assert_ne!(a.stream_id, b.stream_id);
    assert!(a.record_audio && a.record_timings);
}

#[tokio::test]
async fn audio_goes_in_chunk_ms_messages_with_incrementing_ids() {
    for (rate, bytes_per_chunk) in [(8_000u32, 1_600usize), (16_000, 3_200)] {
        let mut server = TestServer::start().await;
        let mut caller = server.caller(rate, 100).await;
        let samples = ramp(rate as usize);
        caller.send_start().await.unwrap();
        caller.send_audio(&samples, false).await.unwrap();
        assert_eq!(server.next_json().await["message_id"], 1);
        let mut received = Vec::new();
        for n in 0..10u64 {
            let message = server.next_json().await;
            assert_eq!(message["type"], "audio");
            assert_eq!(message["stream_id"], caller.config().stream_id.as_str());
            assert_eq!(message["message_id"], n + 2);
            let chunk = decode_audio_message(&message);
            assert_eq!(chunk.len() * 2, bytes_per_chunk, "rate {rate}");
            received.extend(chunk);
        }
        assert_eq!(received, samples);
        assert_eq!(caller.sent_samples(), u64::from(rate));
        let timings = caller.send_timings();
        let keys: Vec<u64> = timings.iter().map(|(samples, _)| *samples).collect();
        let chunk = u64::from(rate) / 10;
        assert_eq!(keys, (1..=10).map(|n| n * chunk).collect::<Vec<_>>());
        assert!(timings.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    }
}

#[tokio::test]
async fn the_last_partial_chunk_is_sent_as_is() {
    let mut server = TestServer::start().await;
    let mut caller = server.caller(8_000, 100).await;
    caller.send_audio(&ramp(2_000), false).await.unwrap();
    // Audio before start is allowed here: tests need to misbehave.
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sizes.push(decode_audio_message(&server.next_json().await).len());
    }
    assert_eq!(sizes, [800, 800, 400]);
    caller.send_silence(150, false).await.unwrap();
    let first = server.next_json().await;
    let second = server.next_json().await;
    assert_eq!(first["message_id"], 5);
    assert_eq!(decode_audio_message(&first), vec![0; 800]);
    assert_eq!(decode_audio_message(&second), vec![0; 400]);
    assert_eq!(caller.sent_samples(), 3_200);
}

#[tokio::test]
async fn paced_sending_follows_the_clock() {
    let mut server = TestServer::start().await;
    let mut caller = server.caller(8_000, 100).await;
    let started = Instant::now();
    caller.send_audio(&ramp(4_000), true).await.unwrap();
    // Five chunks, one every 100 ms starting now: the last goes out at 400 ms at the earliest.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // A second paced send continues the same clock: its first chunk is due at 500 ms.
    caller.send_silence(200, true).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..7 {
        server.next_json().await;
    }
    let timings = caller.send_timings();
    assert_eq!(timings.len(), 7);
    for (n, (_, at)) in timings.iter().enumerate() {
        assert!(
            at.duration_since(started) >= Duration::from_millis(100 * n as u64),
            "chunk {n} early"
        );
    }
}

#[tokio::test]
async fn flat_audio_clear_interrupt_and_other_messages_are_recorded() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    server.send_text(&flat_audio(1, &[1, 2, 3]));
    server.send_text(r#"{"type":"clear"}"#);
    server.send_text(r#"{"type":"interrupt","chunk_id":1}"#);
    server.send_text(r#"{"type":"mark","name":"x"}"#);
    server.send_text(&flat_audio(2, &[4, 5]));
    assert!(caller.wait_until(WAIT, |r| r.events.len() == 5).await);
    let received = caller.received();
    assert_eq!(received.audio, [1, 2, 3, 4, 5]);
    assert_eq!((received.audio_chunks, received.audio_samples), (2, 5));
    assert_eq!(received.chunk_ids, [1, 2]);
    assert_eq!(received.clears, 1);
    assert_eq!(received.interrupts, [1]);
    assert!(received.violations.is_empty(), "{:?}", received.violations);
    let kinds: Vec<String> = received
        .events
        .iter()
        .map(|event| match event {
            ReceivedEvent::Audio {
                chunk_id, samples, ..
            } => format!("audio {chunk_id:?} {samples}"),
            ReceivedEvent::Clear { .. } => "clear".into(),
            ReceivedEvent::Interrupt { chunk_id, .. } => format!("interrupt {chunk_id:?}"),
            ReceivedEvent::Other { text, .. } => format!("other {text}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "audio Some(1) 3",
            "clear",
            "interrupt Some(1)",
            r#"other {"type":"mark","name":"x"}"#,
            "audio Some(2) 2"
        ]
    );
    let (first, last) = (
        received.first_audio_at.unwrap(),
        received.last_audio_at.unwrap(),
    );
    assert!(first <= last);
    let timings = caller.shared.lock().receive_timings();
    assert_eq!(timings.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [3, 5]);
    assert!(received.closed.is_none());
}

#[tokio::test]
async fn nested_audio_is_understood_and_noted_once() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    for (chunk_id, sample) in [(7, 70i16), (8, 80)] {
        let flat: Value = serde_json::from_str(&flat_audio(chunk_id, &[sample])).unwrap();
        server.send_text(
            &json!({"type": "audio", "data": {"audio_b64": flat["audio_b64"], "chunk_id": chunk_id}})
                .to_string(),
        );
    }
    assert!(caller.wait_until(WAIT, |r| r.audio_chunks == 2).await);
    let received = caller.received();
    assert_eq!(received.audio, [70, 80]);
    assert_eq!(received.chunk_ids, [7, 8]);
    assert_eq!(received.nested_audio, 2);
    assert_eq!(received.violations.len(), 1, "{:?}", received.violations);
    assert!(received.violations[0].contains("nested"));
}

#[tokio::test]
async fn protocol_problems_are_violations() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    server.send_text("hello");
    server.send(Message::binary(vec![1u8, 2, 3]));
    server.send_text(&flat_audio(5, &[1]));
    server.send_text(&flat_audio(5, &[2]));
    server.send_text(&flat_audio(4, &[3]));
    server.send_text(r#"{"type":"audio","audio_b64":"***","chunk_id":6}"#);
    server.send_text(r#"{"type":"audio","audio_b64":"AQID","chunk_id":7}"#); // 3 bytes
    server.send_text(r#"{"type":"audio","audio_b64":"AQA="}"#);
    server.send_text(r#"{"type":"audio","chunk_id":9}"#);
    server.send_text(r#"{"type":"audio","audio_b64":"AQA=","chunk_id":"10"}"#);
    server.send_text(r#"{"type":"interrupt"}"#);
    server.send_text(r#"[1,2]"#);
    server.send_text(r#"{"kind":"audio"}"#);
    server.send_text(r#"{"type":"clear"}"#);
    assert!(caller.wait_until(WAIT, |r| r.clears == 1).await);
    let received = caller.received();
    let expected = [
        "text frame that is not JSON: hello",
        "binary frame of 3 bytes (FreJun expects JSON text)",
        "chunk_id 5 is not greater than the previous 5",
        "chunk_id 4 is not greater than the previous 5",
        "audio_b64 is not valid base64",
        "audio of 3 bytes: an odd count cannot be 16-bit samples",
        "audio without chunk_id",
        "audio without a string audio_b64",
        "audio with a chunk_id that is not an integer",
        "interrupt without chunk_id",
        "JSON that is not an object: [1,2]",
        r#"message without a string "type": {"kind":"audio"}"#,
    ];
    assert_eq!(received.violations, expected);
    assert_eq!(received.chunk_ids, [5, 5, 4, 6, 7, 9]);
    // Decodable chunks count (the odd one keeps its whole sample); the bad base64 does not.
    assert_eq!(received.audio, [1, 2, 3, 0x0201, 1, 1]);
    assert_eq!(received.audio_chunks, 6);
    let others: Vec<&str> = received
        .events
        .iter()
        .filter_map(|event| match event {
            ReceivedEvent::Other { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        others,
        [
            "hello",
            "binary frame of 3 bytes",
            "[1,2]",
            r#"{"kind":"audio"}"#
        ]
    );
}

#[tokio::test]
async fn without_recording_only_counts_are_kept() {
    let server = TestServer::start().await;
    let mut config = server.config(8_000, 100);
    config.record_audio = false;
    config.record_timings = false;
    let mut caller = SimulatedCaller::connect(config, WAIT).await.unwrap();
    server.send_text(&flat_audio(1, &[1, 2, 3]));
    server.send_text(&flat_audio(2, &[4]));
    server.send_text(r#"{"type":"clear"}"#);
    assert!(caller.wait_until(WAIT, |r| r.clears == 1).await);
    caller.send_silence(100, false).await.unwrap();
    let received = caller.received();
    assert_eq!((received.audio_chunks, received.audio_samples), (2, 4));
    assert!(received.audio.is_empty());
    assert_eq!(
        received.events.len(),
        1,
        "only the clear: {:?}",
        received.events
    );
    assert!(received.first_audio_at.is_some());
    assert!(caller.send_timings().is_empty());
    assert_eq!(caller.sent_samples(), 800);
}

#[tokio::test]
async fn hang_up_sends_close_1000_and_reports_the_servers_answer() {
    let mut server = TestServer::start().await;
    let mut caller = server.caller(8_000, 100).await;
    caller.send_start().await.unwrap();
    caller.send_silence(200, false).await.unwrap();
    let summary = caller.hang_up().await.unwrap();
    for _ in 0..3 {
        server.next_json().await;
    }
    match server.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("{other:?}"),
    }
    let closed = summary.received.closed.expect("the server answered");
    assert_eq!(closed.code, 1000);
    assert!(!closed.by_server);
    assert!(
        summary.received.violations.is_empty(),
        "{:?}",
        summary.received.violations
    );
    assert_eq!(summary.sent_samples, 1_600);
    assert!(summary.duration > Duration::ZERO);
}

#[tokio::test]
async fn a_server_close_is_recorded_with_its_code_and_reason() {
    let mut server = TestServer::start().await;
    let mut caller = server.caller(8_000, 100).await;
    server.send_text(&flat_audio(1, &[9]));
    server.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Error,
        reason: "upstream failed".into(),
    })));
    assert!(caller.wait_until(WAIT, |r| r.closed.is_some()).await);
    assert!(matches!(
        caller.send_silence(100, false).await,
        Err(CallerError::Closed)
    ));
    // The caller answered the close handshake.
    match server.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Error),
        other => panic!("{other:?}"),
    }
    let summary = caller.wait_closed(WAIT).await.unwrap();
    let closed = summary.received.closed.unwrap();
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1011, "upstream failed")
    );
    assert!(closed.by_server);
    assert!(
        summary.received.violations.is_empty(),
        "{:?}",
        summary.received.violations
    );
    assert_eq!(summary.received.audio, [9]);
}

#[tokio::test]
async fn a_dropped_connection_without_close_frame_is_a_violation() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    server.drop_connection();
    let summary = caller.wait_closed(WAIT).await.unwrap();
    let closed = summary.received.closed.unwrap();
    assert_eq!(closed.code, ABNORMAL_CLOSE);
    assert!(closed.by_server);
    assert_eq!(
        summary.received.violations,
        ["connection ended without a close frame"]
    );
}

#[tokio::test]
async fn wait_closed_times_out_with_the_connection_still_open() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    server.send_text(r#"{"type":"clear"}"#);
    assert!(caller.wait_until(WAIT, |r| r.clears == 1).await);
    assert!(
        !caller
            .wait_until(Duration::from_millis(50), |r| r.clears == 2)
            .await
    );
    let summary = caller.wait_closed(Duration::from_millis(50)).await.unwrap();
    assert!(summary.received.closed.is_none());
    assert_eq!(summary.received.clears, 1);
}

#[tokio::test]
async fn go_silent_stops_answering_pings() {
    let mut server = TestServer::start().await;
    let mut caller = server.caller(8_000, 100).await;
    server.send(Message::Ping("p1".into()));
    match server.next().await {
        Some(Message::Pong(payload)) => assert_eq!(&payload[..], b"p1"),
        other => panic!("{other:?}"),
    }

    caller.go_silent();
    server.send(Message::Ping("p2".into()));
    server.send_text(r#"{"type":"clear"}"#);
    // Nothing comes back: no pong, and the clear is not even read.
    let answer = tokio::time::timeout(Duration::from_millis(300), server.incoming.recv()).await;
    assert!(answer.is_err(), "{answer:?}");
    assert!(matches!(
        caller.send_text("{}").await,
        Err(CallerError::Closed)
    ));

    server.drop_connection();
    let summary = caller.wait_closed(WAIT).await.unwrap();
    assert_eq!(summary.received.clears, 0);
    let closed = summary
        .received
        .closed
        .expect("the server's drop is noticed");
    assert_eq!(closed.code, ABNORMAL_CLOSE);
    assert!(closed.by_server);
    assert!(summary.received.violations.is_empty());
}

#[tokio::test]
async fn dropping_the_caller_closes_the_socket() {
    let mut server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    drop(caller);
    assert!(server.next().await.is_none());
}

#[tokio::test]
async fn hang_up_after_the_server_closed_just_returns_the_summary() {
    let server = TestServer::start().await;
    let caller = server.caller(8_000, 100).await;
    server.send(Message::Close(None));
    assert!(caller.wait_until(WAIT, |r| r.closed.is_some()).await);
    let summary = caller.hang_up().await.unwrap();
    let closed = summary.received.closed.unwrap();
    assert_eq!((closed.code, closed.by_server), (NO_STATUS_CLOSE, true));
}

#[test]
fn a_config_comes_from_a_stream_flow() {
    let flow = json!({"action": "stream", "ws_url": "wss://vox.example/teler/ws?call_id=vx_1&token=abc",
        "chunk_size": 200, "sample_rate": "16k", "record": true});
    let config = CallerConfig::from_flow(&flow, "cs_1").unwrap();
    assert_eq!(
        config.ws_url.as_str(),
        "wss://vox.example/teler/ws?call_id=vx_1&token=abc"
    );
    assert_eq!((config.sample_rate, config.chunk_ms), (16_000, 200));
    assert_eq!(config.chunk_samples(), 3_200);
    assert_eq!(config.frejun_call_id, "cs_1");

    let minimal = CallerConfig::from_flow(&json!({"ws_url": "ws://h/x"}), "cs_2").unwrap();
    assert_eq!(
        (minimal.sample_rate, minimal.chunk_ms),
        (8_000, DEFAULT_CHUNK_MS)
    );

    for bad in [
        json!({}),
        json!({"ws_url": "not a url"}),
        json!({"ws_url": "ws://h/x", "chunk_size": "400"}),
        json!({"ws_url": "ws://h/x", "chunk_size": 0}),
        json!({"ws_url": "ws://h/x", "sample_rate": 8000}),
    ] {
        assert!(
            matches!(
                CallerConfig::from_flow(&bad, "cs_3"),
                Err(CallerError::BadFlow(_))
            ),
            "{bad}"
        );
    }
}
