//! The caller's ear: one task per call reads what voxbridge sends, judges it against FreJun's
//! media protocol, and keeps the tally the tests and the load generator look at.
//!
//! FreJun accepts three messages on the stream: `audio` (flat
//! `{"type":"audio","audio_b64","chunk_id"}`, or the nested shape of FreJun's message docs),
//! `clear` and `interrupt`. Everything is recorded; anything a real FreJun could choke on is also
//! written down as a violation, so a test can assert that voxbridge spoke the protocol cleanly.
//!
//! Per message the task parses the JSON borrowing from the frame, decodes base64 into a buffer
//! it reuses, and holds the shared lock only to add counts (and, when asked, samples and event
//! entries). A load test with recording off keeps nothing per chunk.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::{SplitSink, SplitStream};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::audio::pcm;

pub(super) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(super) type WsSink = SplitSink<WsStream, Message>;

/// At most this many violations and `Other` events are kept; more are only counted
/// (`Received::notes_dropped`), so a server spamming garbage cannot exhaust memory.
const MAX_NOTES: usize = 1_000;

/// Longest text kept from a frame in `Other` events and violations.
const MAX_TEXT: usize = 200;

/// After the server's close frame, how long the reader keeps reading so that its close reply is
/// flushed and the server's TCP close is seen.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Close code recorded when the connection ended without a close frame (RFC 6455's "abnormal
/// closure"; it is never sent on the wire).
pub const ABNORMAL_CLOSE: u16 = 1006;

/// Close code recorded for a close frame without a status (RFC 6455's "no status received").
pub const NO_STATUS_CLOSE: u16 = 1005;

/// What the caller has received so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// `audio` messages whose `audio_b64` decoded (including empty ones, which are violations).
    pub audio_chunks: u64,
    /// Samples in those chunks, at 8 kHz (voxbridge always sends 8 kHz to FreJun).
    pub audio_samples: u64,
    /// All received audio in arrival order, 8 kHz; empty unless `record_audio`.
    pub audio: Vec<i16>,
    /// Every integer `chunk_id` of an `audio` message, in arrival order.
    pub chunk_ids: Vec<i64>,
    /// `clear` messages.
    pub clears: u32,
    /// The `chunk_id` of every `interrupt` that carried one.
    pub interrupts: Vec<i64>,
    /// Ordered log of what arrived. `Audio` entries only when `record_timings`; the others
    /// always (they are rare), `Other` capped at 1,000.
    pub events: Vec<ReceivedEvent>,
    /// Protocol problems, in the order seen (capped at 1,000).
    pub violations: Vec<String>,
    /// How the connection ended; `None` while it is open (or was never seen to close).
    pub closed: Option<CloseInfo>,
    /// Arrival of the first and latest decodable `audio` message.
    pub first_audio_at: Option<Instant>,
    pub last_audio_at: Option<Instant>,
    /// `audio` messages in the nested shape `{"data":{"audio_b64","chunk_id"}}`. Understood, and
    /// noted once in `violations`: every FreJun reference bridge sends the flat shape.
    pub nested_audio: u64,
    /// `audio` messages that arrived after the caller's hang-up close frame went out. Not a
    /// violation: the server may have sent them before it saw the close. Counted in the audio
    /// totals as well.
    pub audio_after_hang_up: u64,
    /// Violations and `Other` events not kept because of the cap.
    pub notes_dropped: u64,
}

impl Received {
    /// When each outbound chunk arrived, keyed by the cumulative samples received after it
    /// (8 kHz). Empty unless the caller kept timings (`record_timings`).
    pub fn receive_timings(&self) -> Vec<(u64, Instant)> {
        let mut total = 0;
        self.events
            .iter()
            .filter_map(|event| match event {
                ReceivedEvent::Audio { samples, at, .. } => {
                    total += samples;
                    Some((total, *at))
                }
                _ => None,
            })
            .collect()
    }
}

/// One entry of [`Received::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceivedEvent {
    /// An `audio` message; `chunk_id` is `None` when it was missing or not an integer.
    Audio {
        chunk_id: Option<i64>,
        samples: u64,
        at: Instant,
    },
    Clear {
        at: Instant,
    },
    /// An `interrupt`; `chunk_id` is `None` when it was missing or not an integer.
    Interrupt {
        chunk_id: Option<i64>,
        at: Instant,
    },
    /// Any other frame: unknown `type`, JSON without a `type`, non-JSON text (truncated to 200
    /// bytes), or `binary frame of N bytes`.
    Other {
        text: String,
        at: Instant,
    },
}

/// How the WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close frame's code; 1005 for a close frame without one, 1006 when the connection
    /// ended without a close frame.
    pub code: u16,
    /// The close frame's reason (empty if none); for 1006, what ended the connection.
    pub reason: String,
    /// The server started the close (a close frame or a dropped connection before the caller
    /// hung up). `false` when this is the answer to the caller's own hang-up.
    pub by_server: bool,
    pub at: Instant,
}

/// What the caller and its reader task share.
#[derive(Default)]
pub(super) struct Shared {
    pub received: Mutex<Received>,
    /// Signalled after every change to `received`, and when the reader ends.
    pub changed: Notify,
    /// The caller has sent its hang-up close frame.
    pub hung_up: AtomicBool,
    /// The reader task has ended: nothing will be received any more.
    pub reader_done: AtomicBool,
}

impl Shared {
    /// Locks the received state. A test that panicked while holding the lock must not hide its
    /// own failure behind poison errors, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Commands from the caller to its reader task. Dropping the sender ends the task (and, with
/// the caller's half already gone, closes the socket).
pub(super) enum Control {
    /// Stop answering: the reader takes the write half too, so nothing (not even a pong) is
    /// written again, and reads the socket raw only to notice when the server drops it.
    GoSilent(WsSink),
}

/// What to keep beyond counts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Recording {
    pub audio: bool,
    pub timings: bool,
}

/// Marks the reader as finished however it exits.
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.reader_done.store(true, Ordering::Release);
        self.0.changed.notify_waiters();
    }
}

/// The reader task: runs until the socket closes, the caller goes silent and the server then
/// drops the connection, or the caller is dropped.
pub(super) async fn read_until_closed(
    mut stream: SplitStream<WsStream>,
    mut control: mpsc::Receiver<Control>,
    shared: Arc<Shared>,
    recording: Recording,
) {
    let _done = DoneGuard(Arc::clone(&shared));
    let mut reader = Reader::new(shared, recording);
    let server_closed_at = loop {
        tokio::select! {
            // Commands first: once `go_silent` has returned, no frame may be read (and no pong
            // flushed) any more.
            biased;
            command = control.recv() => match command {
                Some(Control::GoSilent(sink)) => return reader.drain_silently(stream, sink, control).await,
                // The caller is gone; dropping the stream closes the socket.
                None => return,
            },
            frame = stream.next() => match reader.on_frame(frame) {
                Step::Continue => {}
                Step::Stop => return,
                Step::ServerClosed => break tokio::time::Instant::now(),
            },
        }
    };
    // Keep reading after the server's close frame: that flushes our automatic close reply and
    // sees the server's TCP close. Anything else arriving now is noted by `on_frame`.
    let deadline = server_closed_at + CLOSE_FLUSH_TIMEOUT;
    loop {
        tokio::select! {
            biased;
            command = control.recv() => if command.is_none() { return },
            frame = stream.next() => if !matches!(reader.on_frame(frame), Step::Continue) { return },
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// What the read loop does after a frame.
enum Step {
    Continue,
    /// The connection is over (or unusable).
    Stop,
    /// The server sent a close frame first; finish the handshake.
    ServerClosed,
}

/// A field that must be an integer.
#[derive(Debug, Clone, Copy)]
enum IntField {
    Missing,
    Int(i64),
    Invalid,
}

impl IntField {
    fn from_value(value: Option<&Value>) -> IntField {
        match value {
            None | Some(Value::Null) => IntField::Missing,
            Some(value) => value.as_i64().map_or(IntField::Invalid, IntField::Int),
        }
    }

    fn from_option(value: Option<i64>) -> IntField {
        value.map_or(IntField::Missing, IntField::Int)
    }

    fn value(self) -> Option<i64> {
        match self {
            IntField::Int(id) => Some(id),
            IntField::Missing | IntField::Invalid => None,
        }
    }
}

/// The `audio_b64` of an audio message, once looked at.
#[derive(Debug, Clone, Copy)]
enum Payload {
    Missing,
    BadBase64,
    /// Decoded into `Reader::bytes`.
    Decoded,
}

/// A text frame, classified.
enum Incoming {
    Audio {
        chunk_id: IntField,
        payload: Payload,
        nested: bool,
    },
    Clear,
    Interrupt {
        chunk_id: IntField,
    },
    /// A JSON object with a string `type` this protocol does not have.
    Unknown,
    /// Not something a FreJun message can be; the text says what.
    Malformed(&'static str),
}

/// The fast path: a well-formed message, parsed borrowing from the frame. Anything this does
/// not fit (wrong field types, non-object `data`, ...) goes through `serde_json::Value`.
#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    audio_b64: Option<Cow<'a, str>>,
    #[serde(default)]
    chunk_id: Option<i64>,
    #[serde(default, borrow)]
    data: Option<WireData<'a>>,
}

#[derive(Deserialize)]
struct WireData<'a> {
    #[serde(default, borrow)]
    audio_b64: Option<Cow<'a, str>>,
    #[serde(default)]
    chunk_id: Option<i64>,
}

/// The reader task's own state.
struct Reader {
    shared: Arc<Shared>,
    recording: Recording,
    /// Reused for every chunk's decoded base64.
    bytes: Vec<u8>,
    last_chunk_id: Option<i64>,
    others_kept: usize,
}

impl Reader {
    fn new(shared: Arc<Shared>, recording: Recording) -> Reader {
        Reader {
            shared,
            recording,
            bytes: Vec::new(),
            last_chunk_id: None,
            others_kept: 0,
        }
    }

    fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> Step {
        let at = Instant::now();
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.on_text(&text, at);
                Step::Continue
            }
            Some(Ok(Message::Binary(bytes))) => {
                let description = format!("binary frame of {} bytes", bytes.len());
                self.update(|received, others_kept| {
                    note(
                        received,
                        format!("{description} (FreJun expects JSON text)"),
                    );
                    push_other(received, others_kept, description, at);
                });
                Step::Continue
            }
            // tungstenite answers pings itself (the pong goes out with the next read or write).
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Step::Continue,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((NO_STATUS_CLOSE, String::new()), |frame| {
                    (u16::from(frame.code), frame.reason.as_str().to_owned())
                });
                let by_server = !self.shared.hung_up.load(Ordering::Acquire);
                self.record_close(code, reason, by_server, at, None);
                // After our own hang-up this is the server's answer: the handshake is done.
                if by_server {
                    Step::ServerClosed
                } else {
                    Step::Stop
                }
            }
            Some(Err(WsError::Utf8(_))) => {
                self.update(|received, _| note(received, "text frame that is not valid UTF-8"));
                Step::Continue
            }
            Some(Err(WsError::Protocol(ProtocolError::ReceivedAfterClosing))) => {
                self.update(|received, _| note(received, "frame after the server's close frame"));
                Step::Stop
            }
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                self.record_end("connection closed".into(), at);
                Step::Stop
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                self.record_end("connection reset without a close frame".into(), at);
                Step::Stop
            }
            Some(Err(error)) => {
                self.record_end(format!("websocket error: {error}"), at);
                Step::Stop
            }
        }
    }

    /// The stream ended; if no close frame was seen, that is a missing close handshake.
    fn record_end(&mut self, reason: String, at: Instant) {
        let by_server = !self.shared.hung_up.load(Ordering::Acquire);
        self.record_close(
            ABNORMAL_CLOSE,
            reason,
            by_server,
            at,
            Some("connection ended without a close frame"),
        );
    }

    /// Records the first close seen (later ones, such as the TCP close after a close frame,
    /// are the same ending).
    fn record_close(
        &mut self,
        code: u16,
        reason: String,
        by_server: bool,
        at: Instant,
        violation: Option<&'static str>,
    ) {
        self.update(|received, _| {
            if received.closed.is_some() {
                return;
            }
            if let Some(violation) = violation {
                note(received, violation);
            }
            received.closed = Some(CloseInfo {
                code,
                reason,
                by_server,
                at,
            });
        });
    }

    fn on_text(&mut self, text: &str, at: Instant) {
        let incoming = self.classify(text);
        let recording = self.recording;
        let after_hang_up = self.shared.hung_up.load(Ordering::Acquire);
        let last_chunk_id = &mut self.last_chunk_id;
        let bytes = &self.bytes;
        let mut received = self.shared.lock();
        match incoming {
            Incoming::Audio {
                chunk_id,
                payload,
                nested,
            } => {
                if nested {
                    received.nested_audio += 1;
                    if received.nested_audio == 1 {
                        note(
                            &mut received,
                            "nested audio shape {\"data\":{\"audio_b64\",\"chunk_id\"}} instead of \
                             the flat shape FreJun's bridges send (noted once)",
                        );
                    }
                }
                match chunk_id {
                    IntField::Int(id) => {
                        if let Some(last) = *last_chunk_id
                            && id <= last
                        {
                            note(
                                &mut received,
                                format!("chunk_id {id} is not greater than the previous {last}"),
                            );
                        }
                        *last_chunk_id = Some(id);
                        received.chunk_ids.push(id);
                    }
                    IntField::Missing => note(&mut received, "audio without chunk_id"),
                    IntField::Invalid => {
                        note(
                            &mut received,
                            "audio with a chunk_id that is not an integer",
                        );
                    }
                }
                match payload {
                    Payload::Missing => note(&mut received, "audio without a string audio_b64"),
                    Payload::BadBase64 => note(&mut received, "audio_b64 is not valid base64"),
                    Payload::Decoded => {
                        if bytes.is_empty() {
                            note(&mut received, "audio with no samples");
                        } else if bytes.len() % 2 == 1 {
                            note(
                                &mut received,
                                format!(
                                    "audio of {} bytes: an odd count cannot be 16-bit samples",
                                    bytes.len()
                                ),
                            );
                        }
                        let samples = (bytes.len() / 2) as u64;
                        received.audio_chunks += 1;
                        received.audio_samples += samples;
                        if recording.audio {
                            pcm::decode_s16le(bytes, &mut received.audio);
                        }
                        if recording.timings {
                            received.events.push(ReceivedEvent::Audio {
                                chunk_id: chunk_id.value(),
                                samples,
                                at,
                            });
                        }
                        received.first_audio_at.get_or_insert(at);
                        received.last_audio_at = Some(at);
                        if after_hang_up {
                            received.audio_after_hang_up += 1;
                        }
                    }
                }
            }
            Incoming::Clear => {
                received.clears += 1;
                received.events.push(ReceivedEvent::Clear { at });
            }
            Incoming::Interrupt { chunk_id } => {
                match chunk_id {
                    IntField::Int(id) => received.interrupts.push(id),
                    IntField::Missing => note(&mut received, "interrupt without chunk_id"),
                    IntField::Invalid => {
                        note(
                            &mut received,
                            "interrupt with a chunk_id that is not an integer",
                        );
                    }
                }
                received.events.push(ReceivedEvent::Interrupt {
                    chunk_id: chunk_id.value(),
                    at,
                });
            }
            Incoming::Unknown => {
                push_other(&mut received, &mut self.others_kept, truncate(text), at);
            }
            Incoming::Malformed(problem) => {
                note(&mut received, format!("{problem}: {}", truncate(text)));
                push_other(&mut received, &mut self.others_kept, truncate(text), at);
            }
        }
        drop(received);
        self.shared.changed.notify_waiters();
    }

    /// Parses a text frame and, for audio, decodes its base64 into `self.bytes`.
    fn classify(&mut self, text: &str) -> Incoming {
        if let Ok(message) = serde_json::from_str::<WireMessage<'_>>(text) {
            return match message.kind.as_ref() {
                "audio" => {
                    let data = message.data.as_ref();
                    let (b64, nested) = match (&message.audio_b64, data) {
                        (Some(b64), _) => (Some(b64.as_ref()), false),
                        (
                            None,
                            Some(WireData {
                                audio_b64: Some(b64),
                                ..
                            }),
                        ) => (Some(b64.as_ref()), true),
                        (None, _) => (None, false),
                    };
                    let chunk_id = message
                        .chunk_id
                        .or_else(|| data.and_then(|data| data.chunk_id));
                    Incoming::Audio {
                        chunk_id: IntField::from_option(chunk_id),
                        payload: decode_payload(b64, &mut self.bytes),
                        nested,
                    }
                }
                "clear" => Incoming::Clear,
                "interrupt" => Incoming::Interrupt {
                    chunk_id: IntField::from_option(message.chunk_id),
                },
                _ => Incoming::Unknown,
            };
        }
        // The slow path: any JSON at all, judged field by field.
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return Incoming::Malformed("text frame that is not JSON");
        };
        let Some(object) = value.as_object() else {
            return Incoming::Malformed("JSON that is not an object");
        };
        let Some(kind) = object.get("type").and_then(Value::as_str) else {
            return Incoming::Malformed("message without a string \"type\"");
        };
        match kind {
            "audio" => {
                let data = object.get("data").and_then(Value::as_object);
                let flat = object.get("audio_b64");
                let nested_b64 = data.and_then(|data| data.get("audio_b64"));
                let nested = flat.is_none() && nested_b64.is_some();
                let b64 = flat.or(nested_b64).and_then(Value::as_str);
                let chunk_id = match object.get("chunk_id") {
                    None | Some(Value::Null) => data.and_then(|data| data.get("chunk_id")),
                    flat => flat,
                };
                Incoming::Audio {
                    chunk_id: IntField::from_value(chunk_id),
                    payload: decode_payload(b64, &mut self.bytes),
                    nested,
                }
            }
            "clear" => Incoming::Clear,
            "interrupt" => Incoming::Interrupt {
                chunk_id: IntField::from_value(object.get("chunk_id")),
            },
            _ => Incoming::Unknown,
        }
    }

    /// Runs `change` under the lock, then wakes waiters.
    fn update(&mut self, change: impl FnOnce(&mut Received, &mut usize)) {
        change(&mut self.shared.lock(), &mut self.others_kept);
        self.shared.changed.notify_waiters();
    }

    /// The dead-peer simulation. The write half is dropped into the same socket the reader
    /// holds, so the caller can no longer write; nothing more goes through tungstenite, so
    /// queued and future pings are never answered. Bytes are still pulled off the socket (and
    /// thrown away unparsed) only to notice the server dropping the connection; a truly dead
    /// host would not even do that, but the server cannot tell the difference.
    async fn drain_silently(
        mut self,
        stream: SplitStream<WsStream>,
        sink: WsSink,
        mut control: mpsc::Receiver<Control>,
    ) {
        let Ok(mut socket) = stream.reunite(sink) else {
            return;
        };
        let mut scratch = vec![0u8; 4096];
        loop {
            tokio::select! {
                command = control.recv() => if command.is_none() { return },
                read = socket.get_mut().read(&mut scratch) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
            }
        }
        let by_server = !self.shared.hung_up.load(Ordering::Acquire);
        self.record_close(
            ABNORMAL_CLOSE,
            "connection closed while the caller was silent".into(),
            by_server,
            Instant::now(),
            None,
        );
    }
}

/// Decodes `b64` into `bytes` (cleared first).
fn decode_payload(b64: Option<&str>, bytes: &mut Vec<u8>) -> Payload {
    bytes.clear();
    let Some(b64) = b64 else {
        return Payload::Missing;
    };
    match pcm::decode_base64(b64, bytes) {
        Ok(()) => Payload::Decoded,
        Err(_) => Payload::BadBase64,
    }
}

/// Adds a violation, within the cap.
fn note(received: &mut Received, violation: impl Into<String>) {
    if received.violations.len() < MAX_NOTES {
        received.violations.push(violation.into());
    } else {
        received.notes_dropped += 1;
    }
}

/// Adds an `Other` event, within the cap.
fn push_other(received: &mut Received, others_kept: &mut usize, text: String, at: Instant) {
    if *others_kept < MAX_NOTES {
        *others_kept += 1;
        received.events.push(ReceivedEvent::Other { text, at });
    } else {
        received.notes_dropped += 1;
    }
}

/// At most `MAX_TEXT` bytes of `text`, cut at a character boundary, with `…` when cut.
fn truncate(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    format!("{}…", crate::domain::text::prefix_within(text, MAX_TEXT))
}
