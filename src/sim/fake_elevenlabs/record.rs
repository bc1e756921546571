//! What the fake saw and did, for tests, the demo and the load generator to assert on: one
//! [`SessionRecord`] per accepted conversation, one [`UpgradeRecord`] per upgrade attempt and one
//! [`SignedUrlRequest`] per call of the REST endpoint.
//!
//! Each conversation owns one `Arc<Mutex<SessionRecord>>`, updated by its socket task under a
//! briefly held lock; [`FakeElevenLabs::sessions`](super::FakeElevenLabs::sessions) clones them.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::audio::AudioFormat;

/// One conversation (one accepted WebSocket).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// `conv_…`, as sent in `conversation_initiation_metadata`.
    pub conversation_id: String,
    /// The agent it talked to.
    pub agent_id: String,
    /// Whether the upgrade carried a valid `conversation_signature` (a signed URL).
    pub signed: bool,
    /// The agent's `user_input_audio_format`.
    pub input_format: AudioFormat,
    /// The agent's `agent_output_audio_format`.
    pub output_format: AudioFormat,
    /// The `conversation_initiation_client_data` message, raw as it arrived (the first one).
    pub initiation: Option<Value>,
    /// The parts of `conversation_config_override` the agent allowed, as applied.
    pub applied_overrides: Value,
    /// Override fields the client sent that the agent does not enable (dotted paths such as
    /// `agent.prompt.prompt`, plus `custom_llm_extra_body`), dropped silently as ElevenLabs
    /// does.
    pub dropped_overrides: Vec<String>,
    /// The valid dynamic variables (string, number or boolean values, names without the
    /// `system__` prefix).
    pub dynamic_variables: Map<String, Value>,
    /// When `conversation_initiation_metadata` was sent (`None` before, and forever with
    /// `Failure::Silent`).
    pub metadata_sent_at: Option<Instant>,
    /// The first message spoken, placeholders filled (`None` when it was empty).
    pub first_message: Option<String>,
    /// The caller's audio decoded to 16-bit samples at the input format's rate (empty when the
    /// behaviour does not record audio).
    pub audio_in: Vec<i16>,
    /// `user_audio_chunk` messages whose base64 decoded (problems such as an odd length or
    /// extra fields do not stop a chunk from counting), before or after initiation.
    pub audio_in_chunks: usize,
    /// Caller turns detected (and typed), answered or not.
    pub user_turns: u32,
    /// Every `user_transcript` sent, in order.
    pub user_transcripts: Vec<String>,
    /// Every `agent_response` sent, in order (the first message's included).
    pub agent_responses: Vec<String>,
    /// `ping`s sent.
    pub pings_sent: u32,
    /// Every matched `pong`: the ping's `event_id` and how long after the ping it arrived.
    pub pongs: Vec<(u64, Duration)>,
    /// A ping went unanswered past the deadline (the fake then closed with 1008).
    pub missed_pong: bool,
    /// Every `client_tool_call` sent, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Every `client_tool_result` that matched an outstanding call, in arrival order.
    pub tool_results: Vec<ToolResultRecord>,
    /// The `text` of every `contextual_update`.
    pub contextual_updates: Vec<String>,
    /// The `text` of every `user_message` (and of every `multimodal_message` with text).
    pub user_messages: Vec<String>,
    /// `user_activity` messages received.
    pub user_activities: u32,
    /// Every `feedback` message, raw.
    pub feedback: Vec<Value>,
    /// Protocol problems, one sentence each naming the field.
    pub violations: Vec<String>,
    /// The close the fake started, code and reason (`(1006, …)` for an injected drop).
    pub closed: Option<(u16, String)>,
    /// The client closed first (a close frame, or the connection dropped).
    pub client_closed: bool,
    /// The client's close code and reason (1005 for a close frame without a code, 1006 when
    /// the connection dropped without one).
    pub client_close: Option<(u16, String)>,
    /// `audio` events sent (stale ones included).
    pub audio_events_sent: u32,
    /// The last audio `event_id` used (0 before the first).
    pub last_audio_event_id: u64,
    /// The `event_id` of the `interruption` sent, if any.
    pub interruption_sent: Option<u64>,
    /// The `agent_response_correction` sent, original then corrected text.
    pub correction: Option<(String, String)>,
    /// When the upgrade was accepted.
    pub opened_at: Instant,
    /// `(cumulative caller samples after this user_audio_chunk, when it was read)`, samples
    /// counted at the input format's rate, with `Behaviour::record_timings`.
    pub append_timings: Vec<(u64, Instant)>,
    /// `(cumulative agent samples after this audio event, when the fake produced it)`, samples
    /// counted at the output format's rate, with `Behaviour::record_timings`; stale events
    /// included. In [`Mode::Echo`](super::Mode::Echo) that is the instant the caller chunk it
    /// echoes was read: the event goes out in the next socket write, so the fake's own encoding
    /// and send count as bridge latency in the load generator's outbound figures (a few µs).
    pub delta_timings: Vec<(u64, Instant)>,
}

impl SessionRecord {
    pub(super) fn new(
        conversation_id: String,
        agent_id: String,
        signed: bool,
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> SessionRecord {
        SessionRecord {
            conversation_id,
            agent_id,
            signed,
            input_format,
            output_format,
            initiation: None,
            applied_overrides: Value::Object(Map::new()),
            dropped_overrides: Vec::new(),
            dynamic_variables: Map::new(),
            metadata_sent_at: None,
            first_message: None,
            audio_in: Vec::new(),
            audio_in_chunks: 0,
            user_turns: 0,
            user_transcripts: Vec::new(),
            agent_responses: Vec::new(),
            pings_sent: 0,
            pongs: Vec::new(),
            missed_pong: false,
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
            contextual_updates: Vec::new(),
            user_messages: Vec::new(),
            user_activities: 0,
            feedback: Vec::new(),
            violations: Vec::new(),
            closed: None,
            client_closed: false,
            client_close: None,
            audio_events_sent: 0,
            last_audio_event_id: 0,
            interruption_sent: None,
            correction: None,
            opened_at: Instant::now(),
            append_timings: Vec::new(),
            delta_timings: Vec::new(),
        }
    }

    /// Whether the socket is closed, by either side.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some() || self.client_closed
    }
}

/// One `client_tool_call` the fake sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord {
    /// The id the result must carry.
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// The parameters sent.
    pub parameters: Value,
}

/// One `client_tool_result` that answered a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResultRecord {
    /// The call it answers.
    pub tool_call_id: String,
    /// That call's tool.
    pub tool_name: String,
    /// `result` (a non-string result, a violation, is kept as its JSON text).
    pub result: String,
    /// `is_error` (false when it was not a boolean, a violation).
    pub is_error: bool,
    /// From the call being sent to the result arriving.
    pub latency: Duration,
}

/// One request to the conversation path, upgraded or refused.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeRecord {
    /// The `agent_id` query parameter.
    pub agent_id: Option<String>,
    /// The `conversation_signature` query parameter.
    pub signature: Option<String>,
    /// 101 when upgraded, else the HTTP status of the refusal.
    pub status: u16,
    /// Why it was refused (`None` when upgraded).
    pub refusal: Option<String>,
    /// The conversation it opened.
    pub conversation_id: Option<String>,
}

/// One call of `GET /v1/convai/conversation/get-signed-url`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedUrlRequest {
    /// The `agent_id` query parameter.
    pub agent_id: Option<String>,
    /// The `xi-api-key` header as sent (these are test keys).
    pub api_key: Option<String>,
    /// Every query parameter (`include_conversation_id`, `branch_id`, `environment`, …).
    pub query: Vec<(String, String)>,
    /// The HTTP status answered.
    pub status: u16,
    /// The signature issued (200 only).
    pub signature: Option<String>,
}
