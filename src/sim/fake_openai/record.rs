//! What the fake saw and did in each session, for tests and the load generator to assert on:
//! events, audio, responses (default and out-of-band), function calls and their outputs, shape
//! and tool-flow violations, errors sent and the close.
//!
//! Each session owns one `Arc<Mutex<SessionRecord>>`, updated by its connection task under a
//! briefly held lock; [`FakeOpenAi::sessions`](super::FakeOpenAi::sessions) clones them.

use std::time::Instant;

use serde_json::Value;

/// One session (one accepted WebSocket).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// `sess_…`, as sent in `session.created`.
    pub id: String,
    /// The `model` query parameter.
    pub model: String,
    /// The bearer token of the `Authorization` header.
    pub api_key: String,
    /// Whether the handshake carried an `OpenAI-Beta` header (the session was then closed 4000).
    pub beta_header: bool,
    /// Every client event in arrival order. Appends are stored with `audio` replaced by
    /// `"<n base64 chars>"`, and only when the behaviour has `record_audio` (load tests would
    /// otherwise keep millions of them). Binary frames appear with kind `"<binary frame>"` and
    /// unparsable text with kind `"<invalid json>"`.
    pub events: Vec<ReceivedEvent>,
    /// The current effective session object (as last sent in `session.created`/`.updated`).
    pub session: Value,
    /// Audio appended so far, in milliseconds of the input timeline.
    pub appended_ms: u64,
    /// Samples appended so far (at the input rate of each append).
    pub appended_samples: u64,
    /// The appended audio as linear samples at `input_rate_hz` (24 kHz for `audio/pcm`, 8 kHz
    /// for `audio/pcmu`/`audio/pcma`; audio appended after a format change to another rate is
    /// resampled to the first rate). Empty without `record_audio`.
    pub input_audio_24k: Vec<i16>,
    /// The rate of `input_audio_24k`: the input rate at the first append.
    pub input_rate_hz: u32,
    /// Responses in creation order.
    pub responses: Vec<ResponseRecord>,
    /// Every `conversation.item.truncate` that passed the shape checks, as sent (successful or
    /// not; see `errors_sent`).
    pub truncates: Vec<Value>,
    /// `response.cancel` events received (with or without an active response).
    pub cancels: u32,
    /// Shape violations, each `"<event type>: <problem>"`.
    pub violations: Vec<String>,
    /// Breaches of the function-calling flow (protocol section 3.6), each a sentence: an output
    /// for an unknown `call_id`, a second output for one call, a continuation before every
    /// output of the batch arrived, a second continuation for one batch, a scripted call to a
    /// function the session did not declare. [`FakeOpenAi::violations`](super::FakeOpenAi::violations)
    /// lists them too.
    pub tool_violations: Vec<String>,
    /// Every `function_call` item the fake emitted, in order.
    pub function_calls: Vec<FunctionCallRecord>,
    /// Every `function_call_output` item that passed the shape checks, in arrival order
    /// (including those for unknown or already answered calls; see `tool_violations`).
    pub function_call_outputs: Vec<FunctionCallOutputRecord>,
    /// One entry per response that emitted function calls.
    pub tool_batches: Vec<ToolBatchRecord>,
    /// Every `error` event the fake sent, in order.
    pub errors_sent: Vec<Value>,
    /// Close code and reason once the socket closed (1006 with the error text when the
    /// connection dropped without a close frame).
    pub closed: Option<(u16, String)>,
    /// Who closed first.
    pub closed_by: Option<ClosedBy>,
    /// `(cumulative input samples after this append, when it arrived)`, with `record_timings`.
    pub append_timings: Vec<(u64, Instant)>,
    /// `(cumulative output samples after this delta, when the fake produced it)`, with
    /// `record_timings`. In `EchoStream` that is the instant the append it answers was read; the
    /// delta goes out in the same socket write, so the fake's own encoding and send count as
    /// bridge latency in the load generator's outbound figures (a few µs).
    pub delta_timings: Vec<(u64, Instant)>,
}

impl SessionRecord {
    /// An empty record, as a session starts (also for tests that judge records).
    pub(crate) fn new(id: String, model: String, api_key: String, beta_header: bool) -> Self {
        SessionRecord {
            id,
            model,
            api_key,
            beta_header,
            events: Vec::new(),
            session: Value::Null,
            appended_ms: 0,
            appended_samples: 0,
            input_audio_24k: Vec::new(),
            input_rate_hz: 0,
            responses: Vec::new(),
            truncates: Vec::new(),
            cancels: 0,
            violations: Vec::new(),
            tool_violations: Vec::new(),
            function_calls: Vec::new(),
            function_call_outputs: Vec::new(),
            tool_batches: Vec::new(),
            errors_sent: Vec::new(),
            closed: None,
            closed_by: None,
            append_timings: Vec::new(),
            delta_timings: Vec::new(),
        }
    }

    /// The received events of one type, in order.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a ReceivedEvent> {
        self.events.iter().filter(move |event| event.kind == kind)
    }

    /// The effective `session.tools` (empty before `session.created`).
    pub fn tools(&self) -> &[Value] {
        self.session["tools"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The effective `session.tool_choice` (`Null` before `session.created`).
    pub fn tool_choice(&self) -> &Value {
        &self.session["tool_choice"]
    }

    /// The outputs received for one `call_id`, in order.
    pub fn outputs_for<'a>(
        &'a self,
        call_id: &'a str,
    ) -> impl Iterator<Item = &'a FunctionCallOutputRecord> {
        self.function_call_outputs
            .iter()
            .filter(move |output| output.call_id == call_id)
    }

    #[cfg(test)]
    /// The `error.code`s the fake sent, in order.
    pub(crate) fn error_codes(&self) -> Vec<String> {
        self.errors_sent
            .iter()
            .filter_map(|error| error["error"]["code"].as_str().map(str::to_owned))
            .collect()
    }
}

/// One client event.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// Its `type` (or a `<…>` marker for frames that are not events).
    pub kind: String,
    /// The event as parsed (appends without their audio).
    pub json: Value,
    /// When it was read.
    pub at: Instant,
}

/// One response the fake started.
#[derive(Debug, Clone)]
pub struct ResponseRecord {
    /// `resp_…`.
    pub id: String,
    /// The assistant message item carrying its audio (empty when the response has none: a
    /// function-call response without a preamble).
    pub item_id: String,
    /// Where it ended up. A response still streaming when the socket closed stays
    /// [`ResponseStatus::InProgress`] (no `response.done` was sent).
    pub status: ResponseStatus,
    /// Audio sent in deltas, in milliseconds.
    pub audio_ms_sent: u64,
    /// The full transcript the response was to speak (for a function-call response, its
    /// preamble's).
    pub transcript: String,
    /// The instructions the model had for this response: the session's, or the response's own
    /// `instructions`, which replace them (OpenAI does not merge the two).
    pub instructions: String,
    /// The newest conversation item when the response was created (what it answers), as
    /// `conversation.item.retrieve` would return it.
    pub previous_item: Option<Value>,
    /// `response.conversation: "none"`: the response ran beside the default conversation and
    /// added nothing to it.
    pub out_of_band: bool,
    /// `response.metadata` as the client sent it (`Null` when absent).
    pub metadata: Value,
    /// The `call_id`s of the function calls this response emitted.
    pub call_ids: Vec<String>,
}

/// One `function_call` item the fake emitted.
#[derive(Debug, Clone)]
pub struct FunctionCallRecord {
    /// The response that made the call.
    pub response_id: String,
    /// The `function_call` item.
    pub item_id: String,
    /// `call_…`, unique in the session.
    pub call_id: String,
    /// The function's name.
    pub name: String,
    /// The arguments (JSON text).
    pub arguments: String,
}

/// One `function_call_output` item the client created.
#[derive(Debug, Clone)]
pub struct FunctionCallOutputRecord {
    /// The call it answers.
    pub call_id: String,
    /// The output text.
    pub output: String,
    /// The conversation item created for it (empty when it was refused: unknown `call_id`).
    pub item_id: String,
    /// When the `conversation.item.create` was read.
    pub at: Instant,
}

/// The function calls of one response and how the client continued after them.
#[derive(Debug, Clone)]
pub struct ToolBatchRecord {
    /// The response that made the calls.
    pub response_id: String,
    /// Its calls, in output order.
    pub call_ids: Vec<String>,
    /// Distinct calls of the batch answered so far.
    pub outputs_received: usize,
    /// Plain `response.create`s received after every output of the batch had arrived (and
    /// before the next user turn): `1` is right, more is a violation.
    pub continuations: u32,
    /// Plain `response.create`s received after the calls but before every output had arrived.
    pub early_continuations: u32,
    /// The response that spoke the scripted follow-up, once started.
    pub follow_up_response_id: Option<String>,
}

/// The `status` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// Deltas are still going out.
    InProgress,
    /// `response.done` with status `completed`.
    Completed,
    /// `response.done` with status `cancelled` (client `response.cancel` or VAD interruption).
    Cancelled,
}

impl ResponseStatus {
    /// The wire value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::InProgress => "in_progress",
            ResponseStatus::Completed => "completed",
            ResponseStatus::Cancelled => "cancelled",
        }
    }
}

/// Which side started the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client sent a close frame or dropped the connection.
    Client,
    /// The fake closed (a failure, the session cap, a beta header or [`FakeOpenAi::stop`](super::FakeOpenAi::stop)).
    Server,
}

/// A handshake the fake refused with an HTTP error (no session was created).
#[derive(Debug, Clone)]
pub struct RejectedHandshake {
    /// The HTTP status sent.
    pub status: u16,
    /// Path and query as requested.
    pub path_and_query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body sent (an OpenAI error object).
    pub body: String,
}
