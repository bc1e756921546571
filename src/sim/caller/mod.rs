//! A simulated FreJun caller: the client side of FreJun's (Teler's) media-stream WebSocket.
//!
//! FreJun dials the `ws_url` of the stream flow, sends `start`, then `audio` chunks of exactly
//! `chunk_size` ms of s16le PCM, in real time, and never sends `stop`: the call ends when FreJun
//! closes the socket. [`SimulatedCaller`] does the same against any voxbridge, for the
//! integration tests, `voxbridge call`, `voxbridge demo` and the load generator (thousands of
//! callers in one process). Each step is a separate call so tests can also misbehave (audio
//! before `start`, raw garbage frames, a peer that goes silent).
//!
//! One caller is one socket: the caller owns the write half and a background task (see
//! `receive`) reads, judging what voxbridge sends against FreJun's protocol. Sending builds
//! each message in buffers the caller reuses.
//!
//! Layout:
//! - this module: configuration, connecting, sending, hanging up.
//! - `receive`: the received tally ([`Received`]) and the reader task.

mod receive;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use url::Url;

use crate::audio::pcm;
use crate::sim::frejun_payloads::{FAKE_ACCOUNT_ID, FAKE_CALL_APP_ID};
use receive::{Control, Recording, Shared, WsSink};

pub use receive::{ABNORMAL_CLOSE, CloseInfo, NO_STATUS_CLOSE, Received, ReceivedEvent};

/// How long [`SimulatedCaller::hang_up`] waits for the server to answer its close frame.
pub const HANG_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// FreJun's default `chunk_size` (ms) when a flow leaves it out.
pub(crate) const DEFAULT_CHUNK_MS: u32 = 400;

/// Read buffer per socket. tungstenite allocates it up front; its 128 KiB default would cost
/// 256 MiB across 2,000 callers, while voxbridge's messages are around 10 KiB (the buffer
/// grows for larger ones).
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Longest body of a refused upgrade kept in [`CallerError::Rejected`].
const MAX_REJECTION_BODY: usize = 1_024;

/// Numbers default stream ids so that callers in one process never share one.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// Everything a caller needs to play FreJun's side of one call.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// The flow's `ws_url`, used verbatim (it carries voxbridge's `call_id` and `token`).
    pub ws_url: Url,
    /// FreJun's call id; goes in `start.call_id`.
    pub frejun_call_id: String,
    /// `start.stream_id` and every audio message's `stream_id`. Default: `stream-<n>-<random>`.
    pub stream_id: String,
    /// `start.account_id`. Default: the fake Teler's account id.
    pub account_id: String,
    /// `start.call_app_id`. Default: the fake Teler's voice app id.
    pub call_app_id: String,
    /// Inbound rate (8000 or 16000): what `start` declares and what `send_audio` chunks at.
    pub sample_rate: u32,
    /// Inbound chunk duration in ms: the flow's `chunk_size`.
    pub chunk_ms: u32,
    /// Keep received audio samples (default on; turn off in load tests).
    pub record_audio: bool,
    /// Keep per-chunk timings: [`SimulatedCaller::send_timings`] and `Audio` entries in
    /// [`Received::events`] (default on).
    pub record_timings: bool,
}

impl CallerConfig {
    /// A configuration with FreJun-like defaults for everything else.
    pub fn new(
        ws_url: Url,
        frejun_call_id: impl Into<String>,
        sample_rate: u32,
        chunk_ms: u32,
    ) -> Self {
        let sequence = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        CallerConfig {
            ws_url,
            frejun_call_id: frejun_call_id.into(),
            stream_id: format!("stream-{sequence}-{:08x}", rand::random::<u32>()),
            account_id: FAKE_ACCOUNT_ID.to_owned(),
            call_app_id: FAKE_CALL_APP_ID.to_owned(),
            sample_rate,
            chunk_ms,
            record_audio: true,
            record_timings: true,
        }
    }

    /// A configuration from a stream flow answer (`{"action":"stream","ws_url",
    /// "chunk_size","sample_rate":"8k"|"16k",...}`), with FreJun's defaults for what it leaves
    /// out (400 ms, 8 kHz).
    pub fn from_flow(flow: &Value, frejun_call_id: impl Into<String>) -> Result<Self, CallerError> {
        let ws_url = flow
            .get("ws_url")
            .and_then(Value::as_str)
            .ok_or_else(|| CallerError::BadFlow("no string ws_url".into()))?;
        let ws_url = Url::parse(ws_url)
            .map_err(|error| CallerError::BadFlow(format!("ws_url is not a URL: {error}")))?;
        let chunk_ms = match flow.get("chunk_size") {
            None | Some(Value::Null) => DEFAULT_CHUNK_MS,
            Some(value) => value
                .as_u64()
                .and_then(|ms| u32::try_from(ms).ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    CallerError::BadFlow(format!("chunk_size {value} is not a positive integer"))
                })?,
        };
        let sample_rate = match flow.get("sample_rate") {
            None | Some(Value::Null) => 8_000,
            Some(value) => match value.as_str() {
                Some("8k") => 8_000,
                Some("16k") => 16_000,
                _ => {
                    return Err(CallerError::BadFlow(format!(
                        "sample_rate {value} is not \"8k\" or \"16k\""
                    )));
                }
            },
        };
        Ok(CallerConfig::new(
            ws_url,
            frejun_call_id,
            sample_rate,
            chunk_ms,
        ))
    }

    /// Samples in one inbound chunk (at least one, so odd settings still make progress).
    pub(crate) fn chunk_samples(&self) -> usize {
        (pcm::ms_to_samples(u64::from(self.chunk_ms), self.sample_rate) as usize).max(1)
    }
}

/// Why a caller could not connect or send.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// Refused, unreachable, bad URL or TLS failure.
    #[error("cannot connect to the media WebSocket: {0}")]
    Connect(String),
    /// The server answered the upgrade with an HTTP status instead of 101. `body` is the part
    /// of the response body that arrived with the headers (at most 1 KiB); tungstenite reads
    /// no further.
    #[error("the media WebSocket upgrade was refused with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("timed out connecting to the media WebSocket")]
    Timeout,
    /// The socket is closed (by either side), or the caller went silent.
    #[error("the media WebSocket is closed")]
    Closed,
    #[error("media WebSocket I/O failed: {0}")]
    Io(String),
    /// [`CallerConfig::from_flow`] got a flow it cannot use.
    #[error("unusable stream flow: {0}")]
    BadFlow(String),
}

/// The record of a finished call.
#[derive(Debug, Clone)]
pub struct CallSummary {
    pub received: Received,
    /// Samples sent in `audio` messages, at the inbound rate.
    pub sent_samples: u64,
    /// From the socket opening to its close (or to when the summary was taken).
    pub duration: Duration,
}

/// One simulated FreJun call leg. Dropping it closes the socket abruptly (no close frame), as a
/// crashed FreJun would.
pub struct SimulatedCaller {
    config: CallerConfig,
    /// `None` once the caller went silent or hung up.
    sink: Option<WsSink>,
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    reader: JoinHandle<()>,
    connected_at: Instant,
    sent_samples: u64,
    /// The next audio `message_id` (`start` is 1).
    next_message_id: u64,
    /// When the next paced chunk is due, so that consecutive paced sends keep one clock.
    next_paced_at: Option<tokio::time::Instant>,
    send_timings: Vec<(u64, Instant)>,
    /// `stream_id` as a JSON string literal, escaped once.
    stream_id_json: String,
    /// Reused per chunk: the s16le bytes and the JSON text being built.
    pcm_bytes: Vec<u8>,
    json: String,
    /// One chunk of zeros for `send_silence`.
    silence: Vec<i16>,
}

/// Where the samples of a send come from.
#[derive(Clone, Copy)]
enum Pcm<'a> {
    Samples(&'a [i16]),
    Silence(usize),
}

impl SimulatedCaller {
    /// Opens the socket (bounded by `timeout`), with TCP_NODELAY. Does not send `start`: call
    /// [`SimulatedCaller::send_start`], so tests can also send things out of order.
    pub async fn connect(
        config: CallerConfig,
        timeout: Duration,
    ) -> Result<SimulatedCaller, CallerError> {
        let ws_config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            config.ws_url.as_str(),
            Some(ws_config),
            true,
            None,
        );
        let socket = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => return Err(CallerError::Timeout),
            Ok(Err(error)) => return Err(connect_error(error)),
            Ok(Ok((socket, _response))) => socket,
        };
        let connected_at = Instant::now();
        let (sink, stream) = socket.split();
        let shared = Arc::new(Shared::default());
        let (control, control_rx) = mpsc::channel(1);
        let recording = Recording {
            audio: config.record_audio,
            timings: config.record_timings,
        };
        let reader = tokio::spawn(receive::read_until_closed(
            stream,
            control_rx,
            Arc::clone(&shared),
            recording,
        ));
        let chunk_samples = config.chunk_samples();
        Ok(SimulatedCaller {
            stream_id_json: json_string(&config.stream_id),
            config,
            sink: Some(sink),
            shared,
            control,
            reader,
            connected_at,
            sent_samples: 0,
            next_message_id: 2,
            next_paced_at: None,
            send_timings: Vec::new(),
            pcm_bytes: Vec::with_capacity(chunk_samples * 2),
            json: String::new(),
            silence: vec![0; chunk_samples],
        })
    }

    /// The configuration this caller was made with.
    pub(crate) fn config(&self) -> &CallerConfig {
        &self.config
    }

    /// Sends FreJun's `start` message (`message_id` 1), declaring `config.sample_rate`.
    pub async fn send_start(&mut self) -> Result<(), CallerError> {
        let start = format!(
            concat!(
                r#"{{"type":"start","account_id":{},"call_app_id":{},"call_id":{},"#,
                r#""stream_id":{},"message_id":1,"#,
                r#""data":{{"encoding":"audio/l16","sample_rate":{},"channels":1}}}}"#
            ),
            json_string(&self.config.account_id),
            json_string(&self.config.call_app_id),
            json_string(&self.config.frejun_call_id),
            self.stream_id_json,
            self.config.sample_rate,
        );
        self.send_message(Message::Text(start.into())).await
    }

    /// Sends `samples` (at `config.sample_rate`) as consecutive `chunk_ms` audio messages; the
    /// last partial chunk goes as is. `paced`: one chunk every `chunk_ms`, like FreJun, on
    /// deadlines measured from the first chunk (sleep error does not accumulate), continuing
    /// the previous paced send's clock if it has not run out. Otherwise as fast as possible.
    pub async fn send_audio(&mut self, samples: &[i16], paced: bool) -> Result<(), CallerError> {
        self.send_pcm(Pcm::Samples(samples), paced).await
    }

    /// `ms` of digital silence, paced or not.
    pub async fn send_silence(&mut self, ms: u32, paced: bool) -> Result<(), CallerError> {
        let samples = pcm::ms_to_samples(u64::from(ms), self.config.sample_rate) as usize;
        self.send_pcm(Pcm::Silence(samples), paced).await
    }

    /// A raw text frame, for misbehaviour tests.
    pub async fn send_text(&mut self, text: &str) -> Result<(), CallerError> {
        self.send_message(Message::text(text)).await
    }

    /// A raw binary frame, for misbehaviour tests.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), CallerError> {
        self.send_message(Message::binary(bytes)).await
    }

    /// Hangs up as FreJun does: close frame 1000, then waits up to [`HANG_UP_TIMEOUT`] for the
    /// server's close. A server that does not answer is noted in `violations` and leaves
    /// `closed` empty. If the server had already closed, nothing is sent; after
    /// [`SimulatedCaller::go_silent`] the socket is just dropped.
    pub async fn hang_up(mut self) -> Result<CallSummary, CallerError> {
        let already_closed = self.shared.lock().closed.is_some();
        if let Some(mut sink) = self.sink.take()
            && !already_closed
        {
            self.shared.hung_up.store(true, Ordering::Release);
            let hang_up = CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::from_static(""),
            };
            // A server closing at the same moment makes this fail; its close is then recorded
            // by the reader all the same.
            let _ = sink.send(Message::Close(Some(hang_up))).await;
            if tokio::time::timeout(HANG_UP_TIMEOUT, &mut self.reader)
                .await
                .is_err()
            {
                self.shared.lock().violations.push(format!(
                    "the server did not answer the hang-up close frame within {} s",
                    HANG_UP_TIMEOUT.as_secs()
                ));
            }
        }
        Ok(self.finish())
    }

    /// Simulates a dead peer: from now on nothing is written (pings go unanswered, nothing can
    /// be sent: sends fail with [`CallerError::Closed`]) and nothing is parsed, but the socket
    /// stays open. The server dropping the connection is still noticed (`closed` code 1006).
    pub fn go_silent(&mut self) {
        if let Some(sink) = self.sink.take() {
            // The channel holds one command and this is the only one ever sent; if the reader
            // has already ended, the sink is dropped with the failed command.
            let _ = self.control.try_send(Control::GoSilent(sink));
        }
    }

    /// Waits until the server closes the socket, or `timeout`, and returns the summary.
    /// After a timeout `received.closed` is `None` and the socket is dropped.
    pub async fn wait_closed(mut self, timeout: Duration) -> Result<CallSummary, CallerError> {
        let _ = tokio::time::timeout(timeout, &mut self.reader).await;
        Ok(self.finish())
    }

    /// A snapshot of what was received so far.
    pub fn received(&self) -> Received {
        self.shared.lock().clone()
    }

    /// Waits until `pred` holds for what was received (checked after every change), up to
    /// `timeout`. Returns early with the final answer once the connection is over, since
    /// nothing will change any more.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            // Registered before checking, so a change between the check and the wait still
            // wakes us.
            changed.as_mut().enable();
            if pred(&self.shared.lock()) {
                return true;
            }
            if self.shared.reader_done.load(Ordering::Acquire) {
                return false;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&self.shared.lock());
            }
        }
    }

    /// Samples sent in `audio` messages so far, at the inbound rate.
    pub(crate) fn sent_samples(&self) -> u64 {
        self.sent_samples
    }

    /// When each inbound chunk was handed to the socket (just before the write), keyed by the cumulative samples sent
    /// after it (inbound rate). Empty unless `record_timings`.
    pub fn send_timings(&self) -> Vec<(u64, Instant)> {
        self.send_timings.clone()
    }

    async fn send_pcm(&mut self, pcm: Pcm<'_>, paced: bool) -> Result<(), CallerError> {
        let total = match pcm {
            Pcm::Samples(samples) => samples.len(),
            Pcm::Silence(samples) => samples,
        };
        let chunk = self.config.chunk_samples();
        let anchor = paced.then(|| {
            let now = tokio::time::Instant::now();
            self.next_paced_at.map_or(now, |due| due.max(now))
        });
        let mut offset = 0;
        while offset < total {
            let len = chunk.min(total - offset);
            if let Some(anchor) = anchor {
                tokio::time::sleep_until(anchor + self.duration_of(offset)).await;
            }
            let piece = match pcm {
                Pcm::Samples(samples) => samples.get(offset..offset + len),
                Pcm::Silence(_) => self.silence.get(..len),
            };
            self.pcm_bytes.clear();
            pcm::encode_s16le(piece.unwrap_or_default(), &mut self.pcm_bytes);
            self.send_chunk(len).await?;
            offset += len;
        }
        if let Some(anchor) = anchor {
            self.next_paced_at = Some(anchor + self.duration_of(total));
        }
        Ok(())
    }

    /// Sends `self.pcm_bytes` (`samples` samples) as one audio message.
    async fn send_chunk(&mut self, samples: usize) -> Result<(), CallerError> {
        self.json.clear();
        self.json.push_str(r#"{"type":"audio","stream_id":"#);
        self.json.push_str(&self.stream_id_json);
        // Writing into a String cannot fail.
        let _ = write!(
            self.json,
            r#","message_id":{},"data":{{"audio_b64":""#,
            self.next_message_id
        );
        pcm::encode_base64(&self.pcm_bytes, &mut self.json);
        self.json.push_str(r#""}}"#);
        // tungstenite needs to own the payload. Handing over the built String and starting a
        // fresh one of the same size costs one allocation and no copy.
        let capacity = self.json.len();
        let text = std::mem::replace(&mut self.json, String::with_capacity(capacity));
        self.next_message_id += 1;
        // Timed before the write: once written, the chunk can cross a bridge that does no
        // resampling and reach the AI before a timestamp taken after the write returns.
        let handed_over = Instant::now();
        self.send_message(Message::Text(text.into())).await?;
        self.sent_samples += samples as u64;
        if self.config.record_timings {
            self.send_timings.push((self.sent_samples, handed_over));
        }
        Ok(())
    }

    async fn send_message(&mut self, message: Message) -> Result<(), CallerError> {
        let sink = self.sink.as_mut().ok_or(CallerError::Closed)?;
        sink.send(message).await.map_err(send_error)
    }

    /// How long `samples` samples last at the inbound rate.
    fn duration_of(&self, samples: usize) -> Duration {
        let rate = u64::from(self.config.sample_rate.max(1));
        Duration::from_nanos((samples as u64).saturating_mul(1_000_000_000) / rate)
    }

    /// Ends the caller: drops the socket and takes what was received.
    fn finish(mut self) -> CallSummary {
        self.sink = None;
        let received = std::mem::take(&mut *self.shared.lock());
        let end = received
            .closed
            .as_ref()
            .map_or_else(Instant::now, |closed| closed.at);
        CallSummary {
            duration: end.saturating_duration_since(self.connected_at),
            sent_samples: self.sent_samples,
            received,
        }
        // Dropping `self` drops the control sender, which ends the reader and closes the
        // socket if it is still open.
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

fn connect_error(error: WsError) -> CallerError {
    match error {
        WsError::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(|body| {
                    let body = &body[..body.len().min(MAX_REJECTION_BODY)];
                    String::from_utf8_lossy(body).into_owned()
                })
                .unwrap_or_default();
            CallerError::Rejected {
                status: response.status().as_u16(),
                body,
            }
        }
        other => CallerError::Connect(other.to_string()),
    }
}

fn send_error(error: WsError) -> CallerError {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match error {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::SendAfterClosing) => CallerError::Closed,
        WsError::Io(error)
            if matches!(
                error.kind(),
                ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
            ) =>
        {
            CallerError::Closed
        }
        other => CallerError::Io(other.to_string()),
    }
}
