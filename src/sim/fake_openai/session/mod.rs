//! One session's state machine: the effective session, the input timeline, the conversation
//! and the response being streamed. It is driven by the connection task ([`handle_text`],
//! [`on_tick`]) and answers by queueing event texts in its outbox.
//!
//! - `config`: `session.update`, the effective session and what is derived from it.
//! - `input`: appended audio, server VAD and user turns.
//! - `items`: conversation items (create, delete, retrieve, truncate).
//! - `output`: responses (default and out-of-band): planning, pacing, deltas, barge-in and
//!   `response.done`.
//! - `tools`: scripted function calls, `function_call_output`s and continuations.
//!
//! [`handle_text`]: Session::handle_text
//! [`on_tick`]: Session::on_tick

mod config;
mod input;
mod items;
mod output;
mod tools;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::audio_format::AudioFormat;
use super::behaviour::{Behaviour, Failure, Mode};
use super::handshake::Accepted;
use super::record::{ClosedBy, ReceivedEvent, SessionRecord};
use super::response::{ActiveResponse, History};
use super::vad::{TurnDetection, Vad, VadEvent};
use super::validate::{self, Violation};
use super::{Shared, lock};
use config::default_session;
use input::InputBuffer;
use items::Item;
use output::FakeSpeech;
use tools::ToolBatch;

/// The message OpenAI sends with the beta close.
const BETA_MESSAGE: &str =
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.";

/// Ids of one session: `<prefix>_<session tag><counter>`.
struct Ids {
    tag: String,
    counter: u64,
}

impl Ids {
    /// A fresh id such as `event_<tag>00042`.
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}{:05}", self.tag, self.counter)
    }
}

/// One session's state machine.
pub(super) struct Session {
    shared: Arc<Shared>,
    record: Arc<Mutex<SessionRecord>>,
    behaviour: Arc<Behaviour>,
    ids: Ids,
    model: String,
    beta_header: bool,
    /// The effective session object.
    session: Value,
    input_format: AudioFormat,
    output_format: AudioFormat,
    turn_detection: Option<TurnDetection>,
    vad: Option<Vad>,
    transcription: bool,
    text_only: bool,
    /// The input timeline: `timeline_base_ms` plus the samples appended at the current rate.
    timeline_base_ms: u64,
    samples_at_rate: u64,
    /// Where the uncommitted part of the input buffer starts.
    uncommitted_from_ms: u64,
    /// The user item announced by `speech_started` and its `audio_start_ms`.
    pending_user_item: Option<(String, u64)>,
    buffer: Option<InputBuffer>,
    /// User turns transcribed so far (indexes `Behaviour::user_transcripts`).
    user_turns_transcribed: usize,
    /// A committed turn Echo has not answered yet, with its rate.
    echo_pending: Option<(Vec<i16>, u32)>,
    /// The conversation, in order.
    items: Vec<Item>,
    /// What usage is computed from.
    history: History,
    /// The default-conversation response being streamed (at most one, as OpenAI allows).
    response: Option<ActiveResponse>,
    /// Out-of-band responses being streamed beside it, in creation order.
    out_of_band: Vec<ActiveResponse>,
    /// User audio turns committed so far.
    user_turns_committed: u32,
    /// The newest user turn a default-conversation response was planned for.
    answered_turn: u32,
    /// Indexes of the `Behaviour::function_calls` entries used up.
    function_calls_used: Vec<usize>,
    /// One per response that emitted function calls.
    batches: Vec<ToolBatch>,
    /// The batch a plain `response.create` continues.
    open_batch: Option<usize>,
    /// `call_id`s with an output.
    answered_calls: HashSet<String>,
    /// Responses started so far (BargeIn counts them against `times`).
    responses_started: u32,
    /// The next scripted turn (cycling).
    scripted_next: usize,
    fake_speech: Option<FakeSpeech>,
    /// Output samples sent in this session (for `delta_timings`).
    output_samples_total: u64,
    /// A `Failure::ErrorEvent` fires once per session.
    error_fired: bool,
    /// When `Failure::SessionCap` closes the session.
    cap_deadline: Option<Instant>,
    /// Event texts for the connection to write, in order.
    outbox: Vec<String>,
    /// A close the connection should make after writing the outbox.
    closing: Option<(u16, String)>,
    /// Buffers reused by every append, so decoding allocates nothing in the steady state.
    scratch_bytes: Vec<u8>,
    scratch_samples: Vec<i16>,
    scratch_base64: String,
    vad_events: Vec<VadEvent>,
}

impl Session {
    /// A session with GA defaults for an accepted upgrade.
    pub(super) fn new(
        tag: String,
        accepted: Accepted,
        behaviour: Arc<Behaviour>,
        shared: Arc<Shared>,
        record: Arc<Mutex<SessionRecord>>,
    ) -> Session {
        let mut session = default_session(&format!("sess_{tag}"), &accepted.model);
        if let Some(Failure::SessionCap { after_ms }) = behaviour.failure {
            // `expires_at` announces the cap, as OpenAI's does (whole seconds).
            let opened =
                session["expires_at"].as_u64().unwrap_or_default() - config::SESSION_LIFETIME_SECS;
            session["expires_at"] = (opened + u64::from(after_ms).div_ceil(1_000)).into();
        }
        let buffer = matches!(behaviour.mode, Mode::Echo)
            .then(|| InputBuffer::new(AudioFormat::Pcm24k.rate_hz()));
        let mut this = Session {
            shared,
            record,
            behaviour,
            ids: Ids { tag, counter: 0 },
            model: accepted.model,
            beta_header: accepted.beta_header,
            session,
            input_format: AudioFormat::Pcm24k,
            output_format: AudioFormat::Pcm24k,
            turn_detection: None,
            vad: None,
            transcription: false,
            text_only: false,
            timeline_base_ms: 0,
            samples_at_rate: 0,
            uncommitted_from_ms: 0,
            pending_user_item: None,
            buffer,
            user_turns_transcribed: 0,
            echo_pending: None,
            items: Vec::new(),
            history: History::default(),
            response: None,
            out_of_band: Vec::new(),
            user_turns_committed: 0,
            answered_turn: 0,
            function_calls_used: Vec::new(),
            batches: Vec::new(),
            open_batch: None,
            answered_calls: HashSet::new(),
            responses_started: 0,
            scripted_next: 0,
            fake_speech: None,
            output_samples_total: 0,
            error_fired: false,
            cap_deadline: None,
            outbox: Vec::new(),
            closing: None,
            scratch_bytes: Vec::new(),
            scratch_samples: Vec::new(),
            scratch_base64: String::new(),
            vad_events: Vec::new(),
        };
        this.apply_session();
        this
    }

    /// The first events of a session (or its refusal).
    pub(super) fn open(&mut self) {
        if let Some(Failure::SessionCap { after_ms }) = self.behaviour.failure {
            self.cap_deadline = Some(Instant::now() + Duration::from_millis(u64::from(after_ms)));
        }
        if self.beta_header {
            self.with_record(|record| {
                record.violations.push(
                    "handshake: an OpenAI-Beta header was sent; the GA API closes such sockets \
                     with 4000"
                        .into(),
                );
            });
            self.emit_error(
                "invalid_request_error",
                "beta_api_shape_disabled",
                BETA_MESSAGE,
                None,
                None,
            );
            self.closing = Some((4000, "invalid_request_error.beta_api_shape_disabled".into()));
            return;
        }
        if matches!(self.behaviour.failure, Some(Failure::InvalidKeyAfterOpen)) {
            self.emit_error(
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key provided. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                None,
                None,
            );
            self.closing = Some((3000, "invalid_request_error.invalid_api_key".into()));
            return;
        }
        let session = self.session.clone();
        self.with_record(|record| record.session = session.clone());
        self.emit(json!({"type": "session.created", "session": session}));
    }

    // ----- the connection's side --------------------------------------------------------

    /// The event texts waiting to be written.
    pub(super) fn outbox(&mut self) -> &mut Vec<String> {
        &mut self.outbox
    }

    /// The close the session asked for, if any (asked once).
    pub(super) fn take_close(&mut self) -> Option<(u16, String)> {
        self.closing.take()
    }

    /// Records how the socket closed, unless a close was already recorded.
    pub(super) fn record_close(&self, code: u16, reason: &str, by: ClosedBy) {
        self.with_record(|record| {
            if record.closed.is_none() {
                record.closed = Some((code, reason.to_owned()));
                record.closed_by = Some(by);
            }
        });
    }

    /// Changes the record under its lock and wakes `wait_until` callers.
    fn with_record<R>(&self, change: impl FnOnce(&mut SessionRecord) -> R) -> R {
        let result = change(&mut lock(&self.record));
        self.shared.changed();
        result
    }

    /// Queues a server event, adding its `event_id`.
    fn emit(&mut self, mut event: Value) {
        let event_id = self.ids.next("event");
        if let Some(object) = event.as_object_mut() {
            object.insert("event_id".into(), Value::String(event_id));
        }
        self.outbox.push(event.to_string());
    }

    /// Queues an `error` event (echoing the client's `event_id`) and records it.
    fn emit_error(
        &mut self,
        kind: &str,
        code: &str,
        message: &str,
        param: Option<&str>,
        client_event_id: Option<&Value>,
    ) {
        let mut event = json!({
            "type": "error",
            "error": {
                "type": kind,
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_event_id.cloned().unwrap_or(Value::Null)
            }
        });
        let event_id = self.ids.next("event");
        if let Some(object) = event.as_object_mut() {
            object.insert("event_id".into(), Value::String(event_id));
        }
        self.outbox.push(event.to_string());
        self.with_record(|record| record.errors_sent.push(event));
    }

    /// An `invalid_request_error` about `param`.
    fn invalid(&mut self, code: &str, message: &str, param: &str, client_event_id: Option<&Value>) {
        self.emit_error(
            "invalid_request_error",
            code,
            message,
            Some(param),
            client_event_id,
        );
    }

    /// Records the violations of one event and answers the first with an error.
    fn reject(&mut self, kind: &str, violations: Vec<Violation>, client_event_id: Option<&Value>) {
        let Some(first) = violations.first().cloned() else {
            return;
        };
        self.with_record(|record| {
            record.violations.extend(
                violations
                    .iter()
                    .map(|violation| format!("{kind}: {}", violation.message)),
            );
        });
        self.emit_error(
            "invalid_request_error",
            first.code,
            &first.message,
            first.param.as_deref(),
            client_event_id,
        );
    }

    /// Adds a client event to the record.
    fn record_event(&self, kind: &str, json: Value, at: Instant) {
        self.with_record(|record| {
            record.events.push(ReceivedEvent {
                kind: kind.to_owned(),
                json,
                at,
            });
        });
    }

    // ----- inbound ------------------------------------------------------------------------

    /// A binary frame: client events are text, so this is a violation.
    pub(super) fn handle_binary(&mut self, length: usize, now: Instant) {
        self.record_event("<binary frame>", json!({ "bytes": length }), now);
        let violation = Violation {
            code: "invalid_value",
            param: None,
            message: format!(
                "a binary frame of {length} bytes was sent; client events must be JSON text \
                 frames"
            ),
        };
        self.reject("<binary frame>", vec![violation], None);
    }

    /// One text frame: parse, record, check the GA shape, then dispatch.
    pub(super) fn handle_text(&mut self, text: &str, now: Instant) {
        let mut event: Value = match serde_json::from_str(text) {
            Ok(event) => event,
            Err(error) => {
                let preview: String = text.chars().take(200).collect();
                self.record_event("<invalid json>", Value::String(preview), now);
                let violation = Violation {
                    code: "invalid_value",
                    param: None,
                    message: format!("the frame is not valid JSON: {error}"),
                };
                self.reject("<invalid json>", vec![violation], None);
                return;
            }
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("<no type>")
            .to_owned();
        let violations = validate::check_event(&event);
        let client_event_id = event.get("event_id").cloned();
        let client_event_id = client_event_id.as_ref();

        if kind == "input_audio_buffer.append" {
            let audio = match event.get_mut("audio").map(Value::take) {
                Some(Value::String(audio)) => audio,
                _ => String::new(),
            };
            if self.behaviour.record_audio || !violations.is_empty() {
                event["audio"] = Value::String(format!("<{} base64 chars>", audio.len()));
                self.record_event(&kind, event, now);
            }
            if !violations.is_empty() {
                self.reject(&kind, violations, client_event_id);
            } else if self.closing.is_none() {
                self.on_append(&audio, client_event_id, now);
            }
            return;
        }

        self.record_event(&kind, event.clone(), now);
        if !violations.is_empty() {
            self.reject(&kind, violations, client_event_id);
            return;
        }
        if self.closing.is_some() {
            return;
        }
        match kind.as_str() {
            "session.update" => self.on_session_update(&event, client_event_id),
            "input_audio_buffer.commit" => self.on_commit(client_event_id, now),
            "input_audio_buffer.clear" => self.on_clear(),
            "conversation.item.create" => self.on_item_create(&event, client_event_id, now),
            "conversation.item.truncate" => self.on_truncate(&event, client_event_id),
            "conversation.item.delete" => self.on_item_delete(&event, client_event_id),
            "conversation.item.retrieve" => self.on_item_retrieve(&event, client_event_id),
            "response.create" => self.on_response_create(&event, client_event_id, now),
            "response.cancel" => self.on_response_cancel(&event, client_event_id),
            // check_event accepts no other type.
            _ => {}
        }
    }

    /// Sends the injected [`Failure::ErrorEvent`] (once) and closes if it says so.
    fn fire_error_event(&mut self, client_event_id: Option<&Value>) {
        let Some(Failure::ErrorEvent {
            code,
            message,
            close_code,
            ..
        }) = self.behaviour.failure.clone()
        else {
            return;
        };
        self.error_fired = true;
        let kind = if code.starts_with("server") {
            "server_error"
        } else {
            "invalid_request_error"
        };
        self.emit_error(kind, &code, &message, None, client_event_id);
        if let Some(close_code) = close_code {
            self.closing = Some((close_code, format!("{kind}.{code}")));
        }
    }
}
