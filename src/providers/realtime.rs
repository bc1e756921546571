//! The backend interface: what the bridge needs from a speech-to-speech voice AI, whichever one
//! the assistant uses (OpenAI Realtime, ElevenLabs Conversational AI, any server that speaks
//! OpenAI's realtime events).
//!
//! A backend is a sans-IO protocol ([`RealtimeProtocol`]): it reads the AI's text frames into
//! neutral [`BackendEvent`]s and writes the bridge's requests (caller audio, tool results, a
//! line to say, a cancel, a pong) as text frames. Its [`Capabilities`] tell the bridge which
//! of its jobs the AI does itself: detecting barge-in, marking the end of an answer's audio,
//! speaking on request. The bridge core makes every decision (resampling or none, chunking,
//! the playback clock, clearing FreJun, transcripts, metrics, end reasons) against this
//! interface only; the socket is opened by the bridge's runner.
//!
//! The shapes follow OpenAI's model (responses made of items, usage per response) because it
//! is the richer one; a backend without responses (ElevenLabs) names its agent turns as
//! responses so the same bookkeeping applies.

use std::time::SystemTime;

/// Read buffer of every voice AI's socket. tungstenite allocates it up front (128 KiB by
/// default); with thousands of calls that adds up. It also zero-fills that much room before
/// every read: at 16 KiB that fill was 3 % of the server's CPU with `pcmu`. 8 KiB still takes
/// a 100 ms delta at 24 kHz (6.5 KB of JSON) in one read; bigger messages take a few reads.
pub(crate) const SOCKET_READ_BUFFER_BYTES: usize = 8 << 10;

/// Audio on the AI's side of the bridge: 16-bit little-endian mono PCM at a rate, or G.711
/// μ-law at 8 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AiAudio {
    Pcm(u32),
    Mulaw8k,
}

impl AiAudio {
    /// The sample rate.
    pub fn rate(self) -> u32 {
        match self {
            AiAudio::Pcm(rate) => rate,
            AiAudio::Mulaw8k => 8_000,
        }
    }

    /// Milliseconds of audio in `bytes` bytes.
    pub fn ms_of_bytes(self, bytes: usize) -> f64 {
        match self {
            AiAudio::Pcm(rate) => (bytes / 2) as f64 * 1000.0 / f64::from(rate),
            AiAudio::Mulaw8k => bytes as f64 / 8.0,
        }
    }
}

/// What a backend does itself, and so what the bridge must (or must not) do for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The caller audio it hears, as far as known before the session says.
    pub input: AiAudio,
    /// The audio it speaks, as far as known before the session says.
    pub output: AiAudio,
    /// The formats are settled only by the session's first event ([`BackendEvent::Configured`]
    /// with formats): caller audio waits for it.
    pub announces_formats: bool,
    /// It detects the caller talking over it and stops itself ([`BackendEvent::Interrupted`]);
    /// otherwise the bridge cancels and truncates on [`BackendEvent::CallerSpeechStarted`].
    pub own_barge_in: bool,
    /// It can be asked mid-call to say something (greeting, tool filler, closing line).
    pub speaks_on_request: bool,
    /// It marks the end of each item's audio ([`BackendEvent::AudioDone`]); otherwise the
    /// bridge sends an answer's last partial chunk after a short pause in its audio.
    pub marks_audio_end: bool,
    /// It reports token usage per answer (an answer without any is then stored as zero tokens;
    /// for a backend that never reports usage the call has none).
    pub reports_usage: bool,
    /// Its session ends after a fixed time ([`BackendEvent::SessionInfo`]), before which the
    /// bridge has the assistant say the closing line.
    pub session_expires: bool,
}

/// Something the AI told us, in the bridge's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// The session exists; it ends at `expires_at` if the AI said (OpenAI's "going away"
    /// warning, well ahead of time: the bridge says the closing line before it).
    SessionInfo { expires_at: Option<SystemTime> },
    /// The session is configured and ready to talk; `formats` (input, output) when the AI
    /// announces the ones actually in use.
    Configured {
        expires_at: Option<SystemTime>,
        formats: Option<(AiAudio, AiAudio)>,
    },
    /// An error the AI reported.
    Error(BackendError),
    /// The caller started speaking (the bridge decides whether that is a barge-in).
    CallerSpeechStarted,
    /// The AI stopped its own speech because the caller talked over it; its queued audio is
    /// stale.
    Interrupted,
    /// An answer began. `purpose` is the tag the bridge gave an out-of-band answer.
    ResponseStarted {
        response_id: String,
        purpose: Option<String>,
    },
    /// Assistant audio, base64 in the output format.
    AssistantAudio {
        response_id: String,
        item_id: String,
        content_index: u32,
        audio_base64: String,
    },
    /// One item's audio is complete.
    AudioDone {
        response_id: String,
        item_id: String,
    },
    /// What the assistant said (or, `interrupted`, what the caller heard of it).
    AssistantTranscript {
        item_id: Option<String>,
        text: String,
        interrupted: bool,
    },
    /// What the caller said.
    UserTranscript {
        item_id: Option<String>,
        text: String,
    },
    /// The caller's words could not be transcribed.
    UserTranscriptFailed {
        item_id: String,
        message: Option<String>,
    },
    /// An answer ended, with its tool calls and usage.
    ResponseDone(ResponseSummary),
    /// Tool calls made outside any answer's end (ElevenLabs' client tools): run at once.
    ToolCalls(Vec<FunctionCall>),
    /// The AI ended the conversation itself (ElevenLabs' built-in `end_call` tool): when it
    /// closes the socket, the call ends once the caller has heard the goodbye.
    AgentEndedCall,
    /// The AI checks we are alive; answer with [`RealtimeProtocol::pong`] at once.
    Ping { event_id: u64 },
    /// Audio of an interrupted answer that arrived after the interruption: dropped.
    StaleAudio,
    /// An event the bridge knows and needs nothing from.
    Acknowledged { kind: &'static str },
    /// Anything else: ignored and counted.
    Other { kind: String },
}

/// An error event from the AI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// Our stable code for it, e.g. `openai_key_rejected`.
    pub code: String,
    /// The AI's own code, for the log.
    pub raw_code: String,
    pub message: String,
    pub kind: BackendErrorKind,
}

/// How much an error matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// A cancel that came after its answer ended: harmless.
    LateCancel,
    /// A request for an answer while one runs: harmless once the session is ready (the AI is
    /// answering anyway).
    AnswerAlreadyRunning,
    /// The session cannot go on.
    Fatal,
    /// Everything else: logged; fatal only before the session is ready.
    Other,
}

/// Why opening the AI's session failed, with a stable code (`openai_key_rejected`,
/// `elevenlabs_agent_not_found`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    pub code: &'static str,
    pub message: String,
}

/// The protocol of one backend, for one call. Reads are `&mut self` because a backend may keep
/// state between events (ElevenLabs' interruption mark and agent turns).
pub trait RealtimeProtocol: Send {
    fn capabilities(&self) -> Capabilities;
    /// The prefix of our error codes for it (`openai`, `elevenlabs`).
    fn code_prefix(&self) -> &'static str;
    /// Its name in messages ("OpenAI").
    fn display_name(&self) -> &'static str;
    /// The name of one of its audio formats, as its own configuration spells it (`pcm24k`,
    /// `pcm_8000`), for the call's live facts.
    fn format_name(&self, audio: AiAudio) -> String;
    /// Reads one text frame into `events` (usually one). An error is a frame that cannot be
    /// read; the bridge counts and skips it.
    fn read(&mut self, text: &str, events: &mut Vec<BackendEvent>) -> Result<(), String>;
    /// The messages that open the session, sent as soon as the socket is open.
    fn opening(&self, out: &mut Vec<String>);
    /// One piece of caller audio, already in the input format, as a message.
    fn write_audio(&self, audio: &[u8], out: &mut String);
    /// Asks the assistant to say something now, in its own persona (nothing where it cannot).
    fn say(&self, instruction: String, out: &mut Vec<String>);
    /// Tells the model something mid-call (facts from the tenant's systems) without asking it to
    /// answer or interrupting it.
    fn add_context(&self, text: String, out: &mut Vec<String>);
    /// Asks for an out-of-band answer tagged `purpose` (the tool filler); nothing where the AI
    /// cannot.
    fn say_aside(&self, purpose: &'static str, instruction: String, out: &mut Vec<String>);
    /// Stops an answer being generated. Answers whether anything was sent.
    fn cancel_response(&self, response_id: &str, out: &mut Vec<String>) -> bool;
    /// Tells the AI the caller heard only `heard_ms` of an item (nothing where the AI keeps
    /// track itself).
    fn truncate(&self, item_id: &str, content_index: u32, heard_ms: u64, out: &mut Vec<String>);
    /// A tool's result for the model.
    fn tool_output(&self, call_id: String, output: String, is_error: bool, out: &mut Vec<String>);
    /// Asks the model to go on after tool results (nothing where it goes on by itself).
    fn continue_after_tools(&self, out: &mut Vec<String>);
    /// The answer to [`BackendEvent::Ping`].
    fn pong(&self, event_id: u64, out: &mut Vec<String>);
    /// The session's end: what is still held back (an agent turn's text) comes out now.
    fn finish(&mut self, _events: &mut Vec<BackendEvent>) {}
    /// Our stable code for the AI closing the socket (`code` None: the connection broke).
    fn close_error_code(&self, code: Option<u16>, reason: &str) -> &'static str;
}

/// How a response ended (`response.status` in `response.done`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResponseStatus {
    Completed,
    Cancelled,
    Failed,
    Incomplete,
    /// No status was sent.
    #[default]
    Missing,
    /// A status this client does not know (kept for the log).
    Other(String),
}

impl ResponseStatus {
    /// From the wire's `status` string (`None`: not sent).
    pub fn from_wire(status: Option<String>) -> Self {
        match status.as_deref() {
            None => ResponseStatus::Missing,
            Some("completed") => ResponseStatus::Completed,
            Some("cancelled") => ResponseStatus::Cancelled,
            Some("failed") => ResponseStatus::Failed,
            Some("incomplete") => ResponseStatus::Incomplete,
            Some(_) => ResponseStatus::Other(status.unwrap_or_default()),
        }
    }
}

/// The outcome of a response, from `response.done`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseSummary {
    pub id: String,
    pub status: ResponseStatus,
    /// Why it was cancelled (`turn_detected`, `client_cancelled`) or incomplete
    /// (`max_output_tokens`, `content_filter`).
    pub status_reason: Option<String>,
    /// What went wrong, for a failed response.
    pub error: Option<ResponseError>,
    /// What the response cost; matches billing.
    pub usage: Option<ResponseUsage>,
    /// The `function_call` items of its output, in order: the tools the model called.
    pub function_calls: Vec<FunctionCall>,
}

/// A `function_call` output item: the model calling one of our tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionCall {
    /// What the `function_call_output` must name.
    pub call_id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet checked.
    pub arguments: String,
}

/// `status_details.error` of a failed response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseError {
    /// The error's `type`.
    pub kind: String,
    pub code: Option<String>,
    /// OpenAI's explanation (rate limit, quota, server error): often the only one there is.
    pub message: Option<String>,
}

/// Token usage of one response, flattened from `usage` and its `input_token_details` /
/// `output_token_details`. Anything the server left out is 0. Cached tokens are a subset of the
/// input tokens, not in addition to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub input_text_tokens: u64,
    pub input_audio_tokens: u64,
    pub input_cached_tokens: u64,
    /// The text and audio shares of `input_cached_tokens`, from `cached_tokens_details`;
    /// both 0 when the server gave no split (the cached tokens are then priced uncached).
    pub input_cached_text_tokens: u64,
    pub input_cached_audio_tokens: u64,
    pub output_text_tokens: u64,
    pub output_audio_tokens: u64,
}
