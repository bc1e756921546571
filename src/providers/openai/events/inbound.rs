//! Server → client events: what OpenAI sends, reduced to what the bridge uses.
//!
//! Parsing is tolerant, because real servers omit fields and add new ones: a missing or `null`
//! optional field takes its default, unknown fields are ignored, and an unknown event type
//! becomes [`ServerEvent::Other`]. Only a known event whose fields have the wrong type fails,
//! with [`EventParseError::BadShape`].
//!
//! Both spellings of the audio events are accepted: the GA `response.output_audio.*` and the
//! legacy `response.audio.*`, which some live models were reported to still emit.
//!
//! Parsing reads the text once when `type` is the first key, which is how OpenAI writes its
//! events: the `type` is read, then the rest of the same object is handed straight to the
//! matching event's private wire struct. When `type` comes later, the text is read twice (once
//! for the type, once for the event); that path exists for other servers and for tests.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::providers::realtime::{
    FunctionCall, ResponseError, ResponseStatus, ResponseSummary, ResponseUsage,
};

/// An event received from OpenAI. Read one with [`ServerEvent::parse`].
///
/// Ids and numbers the server left out are empty strings and zeros: the events are still
/// usable, and the bridge never has to guess whether a field exists.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The first event on a socket, with the server's defaults.
    SessionCreated { session: Value },
    /// The full effective configuration after a `session.update`.
    SessionUpdated { session: Value },
    /// Most errors leave the session open; see [`ApiError::is_cancel_not_active`].
    Error { error: ApiError },
    /// `audio_start_ms` is on the input-buffer timeline (all audio appended this session) and
    /// includes the prefix padding.
    SpeechStarted {
        audio_start_ms: u64,
        item_id: Option<String>,
    },
    SpeechStopped {
        audio_end_ms: u64,
        item_id: Option<String>,
    },
    ResponseCreated {
        response_id: String,
        /// `metadata.purpose` of the response, which voxbridge sets on its out-of-band
        /// responses (the tool filler) to tell them from the conversation's own.
        purpose: Option<String>,
    },
    /// `response.output_audio.delta` and the legacy `response.audio.delta`.
    AudioDelta {
        response_id: String,
        item_id: String,
        content_index: u32,
        /// Base64 audio in the session's output format.
        delta: String,
    },
    /// `response.output_audio.done` / legacy `response.audio.done`; also sent on interruption.
    AudioDone {
        response_id: String,
        item_id: String,
    },
    /// `response.output_audio_transcript.done` / legacy `response.audio_transcript.done`.
    AudioTranscriptDone {
        response_id: String,
        item_id: String,
        transcript: String,
    },
    /// `conversation.item.input_audio_transcription.completed`: the caller's words.
    InputTranscriptCompleted {
        item_id: String,
        transcript: String,
        usage: Option<TranscriptionUsage>,
    },
    /// `conversation.item.input_audio_transcription.failed`.
    InputTranscriptFailed {
        item_id: String,
        error: Option<ApiError>,
    },
    /// Always sent once per response, whatever its outcome.
    ResponseDone { response: ResponseSummary },
    /// `conversation.item.truncated`: a truncate we sent took effect.
    ItemTruncated {
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
    },
    /// Any other well-formed event (known-but-unused ones like `rate_limits.updated`, or unknown
    /// ones): ignored by the bridge and counted, never fatal.
    Other { kind: String },
}

/// The `error` object of an `error` event (and of a failed transcription).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "ApiErrorWire")]
pub struct ApiError {
    /// The error's `type`, e.g. `invalid_request_error`.
    pub kind: String,
    pub code: Option<String>,
    /// The only human-readable detail; log it.
    pub message: String,
    /// The offending parameter, e.g. `session.input_audio_format`.
    pub param: Option<String>,
    /// The `event_id` of the client event that failed, if it carried one.
    pub event_id: Option<String>,
}

impl ApiError {
    /// The code OpenAI returns for a `response.cancel` with no response in progress.
    pub(crate) const CANCEL_NOT_ACTIVE: &str = "response_cancel_not_active";

    /// Whether this is the harmless answer to a cancel that came too late (the response had
    /// already finished or been cancelled by the server).
    pub(crate) fn is_cancel_not_active(&self) -> bool {
        self.code.as_deref() == Some(Self::CANCEL_NOT_ACTIVE)
    }

    /// The code OpenAI returns for a `response.create` while a response is still running.
    pub(crate) const ACTIVE_RESPONSE: &str = "conversation_already_has_active_response";

    /// Whether this is the harmless refusal of a `response.create` because a response is
    /// already running (the caller spoke and server VAD started one, or the API started one
    /// itself after a tool's output): the model is responding anyway.
    pub(crate) fn is_active_response(&self) -> bool {
        self.code.as_deref() == Some(Self::ACTIVE_RESPONSE)
    }
}

/// How a transcription of the caller was billed: by tokens or by audio duration, depending on
/// the transcription model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TranscriptionUsage {
    Tokens {
        input_tokens: u64,
        output_tokens: u64,
        total_tokens: u64,
    },
    Duration {
        seconds: f64,
    },
}

/// Why a text frame from OpenAI could not be read as an event. None of these is fatal for the
/// call: the bridge logs and skips the frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object with a string `type`")]
    MissingType,
    #[error("`{kind}` event has an unexpected shape: {message}")]
    BadShape { kind: String, message: String },
}

/// Longest serde message kept in [`EventParseError`]. serde quotes the offending value, which
/// could be kilobytes of base64 or the caller's words; the start is enough to diagnose.
const MAX_PARSE_MESSAGE_CHARS: usize = 200;

impl ServerEvent {
    /// Reads one text frame from OpenAI.
    pub(crate) fn parse(text: &str) -> Result<ServerEvent, EventParseError> {
        let mut failure = Failure::None;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let result = EventSeed {
            failure: &mut failure,
        }
        .deserialize(&mut deserializer)
        .and_then(|event| deserializer.end().map(|()| event));
        match result {
            Ok(event) => Ok(event),
            Err(err) if err.is_syntax() || err.is_eof() => {
                Err(EventParseError::NotJson(short_message(&err)))
            }
            Err(err) => match failure {
                Failure::TypeNotFirst => parse_with_type_anywhere(text),
                Failure::BadShape(kind) => Err(EventParseError::BadShape {
                    kind,
                    message: short_message(&err),
                }),
                Failure::None | Failure::MissingType => Err(EventParseError::MissingType),
            },
        }
    }

    #[cfg(test)]
    /// The event's `type`. Known events give their GA name, also when they arrived under the
    /// legacy one.
    pub fn kind(&self) -> &str {
        match self {
            ServerEvent::SessionCreated { .. } => kinds::SESSION_CREATED,
            ServerEvent::SessionUpdated { .. } => kinds::SESSION_UPDATED,
            ServerEvent::Error { .. } => kinds::ERROR,
            ServerEvent::SpeechStarted { .. } => kinds::SPEECH_STARTED,
            ServerEvent::SpeechStopped { .. } => kinds::SPEECH_STOPPED,
            ServerEvent::ResponseCreated { .. } => kinds::RESPONSE_CREATED,
            ServerEvent::AudioDelta { .. } => kinds::AUDIO_DELTA,
            ServerEvent::AudioDone { .. } => kinds::AUDIO_DONE,
            ServerEvent::AudioTranscriptDone { .. } => kinds::AUDIO_TRANSCRIPT_DONE,
            ServerEvent::InputTranscriptCompleted { .. } => kinds::INPUT_TRANSCRIPT_COMPLETED,
            ServerEvent::InputTranscriptFailed { .. } => kinds::INPUT_TRANSCRIPT_FAILED,
            ServerEvent::ResponseDone { .. } => kinds::RESPONSE_DONE,
            ServerEvent::ItemTruncated { .. } => kinds::ITEM_TRUNCATED,
            ServerEvent::Other { kind } => kind,
        }
    }
}

/// The `type` strings of the events we decode.
mod kinds {
    pub(crate) const SESSION_CREATED: &str = "session.created";
    pub(crate) const SESSION_UPDATED: &str = "session.updated";
    pub(crate) const ERROR: &str = "error";
    pub(crate) const SPEECH_STARTED: &str = "input_audio_buffer.speech_started";
    pub(crate) const SPEECH_STOPPED: &str = "input_audio_buffer.speech_stopped";
    pub(crate) const RESPONSE_CREATED: &str = "response.created";
    pub(crate) const AUDIO_DELTA: &str = "response.output_audio.delta";
    pub(crate) const LEGACY_AUDIO_DELTA: &str = "response.audio.delta";
    pub(crate) const AUDIO_DONE: &str = "response.output_audio.done";
    pub(crate) const LEGACY_AUDIO_DONE: &str = "response.audio.done";
    pub(crate) const AUDIO_TRANSCRIPT_DONE: &str = "response.output_audio_transcript.done";
    pub(crate) const LEGACY_AUDIO_TRANSCRIPT_DONE: &str = "response.audio_transcript.done";
    pub(crate) const INPUT_TRANSCRIPT_COMPLETED: &str =
        "conversation.item.input_audio_transcription.completed";
    pub(crate) const INPUT_TRANSCRIPT_FAILED: &str =
        "conversation.item.input_audio_transcription.failed";
    pub(crate) const RESPONSE_DONE: &str = "response.done";
    pub(crate) const ITEM_TRUNCATED: &str = "conversation.item.truncated";
}

/// Decodes the fields of an event of type `kind` from `deserializer`, which yields the event's
/// object (with or without its `type` key; wire structs ignore keys they do not name).
fn decode<'de, D: Deserializer<'de>>(kind: &str, deserializer: D) -> Result<ServerEvent, D::Error> {
    Ok(match kind {
        kinds::AUDIO_DELTA | kinds::LEGACY_AUDIO_DELTA => {
            AudioDeltaWire::deserialize(deserializer)?.into()
        }
        kinds::SESSION_CREATED => ServerEvent::SessionCreated {
            session: SessionWire::deserialize(deserializer)?.session,
        },
        kinds::SESSION_UPDATED => ServerEvent::SessionUpdated {
            session: SessionWire::deserialize(deserializer)?.session,
        },
        kinds::ERROR => ServerEvent::Error {
            error: ErrorWire::deserialize(deserializer)?
                .error
                .unwrap_or_default(),
        },
        kinds::SPEECH_STARTED => {
            let wire = SpeechStartedWire::deserialize(deserializer)?;
            ServerEvent::SpeechStarted {
                audio_start_ms: wire.audio_start_ms.unwrap_or_default(),
                item_id: wire.item_id,
            }
        }
        kinds::SPEECH_STOPPED => {
            let wire = SpeechStoppedWire::deserialize(deserializer)?;
            ServerEvent::SpeechStopped {
                audio_end_ms: wire.audio_end_ms.unwrap_or_default(),
                item_id: wire.item_id,
            }
        }
        kinds::RESPONSE_CREATED => {
            let response = ResponseCreatedWire::deserialize(deserializer)?.response;
            let (id, metadata) = response
                .map(|response| (response.id, response.metadata))
                .unwrap_or_default();
            ServerEvent::ResponseCreated {
                response_id: id.unwrap_or_default(),
                purpose: metadata.and_then(|metadata| metadata.purpose),
            }
        }
        kinds::AUDIO_DONE | kinds::LEGACY_AUDIO_DONE => {
            let wire = AudioDoneWire::deserialize(deserializer)?;
            ServerEvent::AudioDone {
                response_id: wire.response_id.unwrap_or_default(),
                item_id: wire.item_id.unwrap_or_default(),
            }
        }
        kinds::AUDIO_TRANSCRIPT_DONE | kinds::LEGACY_AUDIO_TRANSCRIPT_DONE => {
            let wire = TranscriptDoneWire::deserialize(deserializer)?;
            ServerEvent::AudioTranscriptDone {
                response_id: wire.response_id.unwrap_or_default(),
                item_id: wire.item_id.unwrap_or_default(),
                transcript: wire.transcript.unwrap_or_default(),
            }
        }
        kinds::INPUT_TRANSCRIPT_COMPLETED => {
            let wire = InputTranscriptCompletedWire::deserialize(deserializer)?;
            ServerEvent::InputTranscriptCompleted {
                item_id: wire.item_id.unwrap_or_default(),
                transcript: wire.transcript.unwrap_or_default(),
                usage: wire.usage.and_then(TranscriptionUsageWire::into_usage),
            }
        }
        kinds::INPUT_TRANSCRIPT_FAILED => {
            let wire = InputTranscriptFailedWire::deserialize(deserializer)?;
            ServerEvent::InputTranscriptFailed {
                item_id: wire.item_id.unwrap_or_default(),
                error: wire.error,
            }
        }
        kinds::RESPONSE_DONE => ServerEvent::ResponseDone {
            response: ResponseDoneWire::deserialize(deserializer)?
                .response
                .map(ResponseWire::into_summary)
                .unwrap_or_default(),
        },
        kinds::ITEM_TRUNCATED => {
            let wire = ItemTruncatedWire::deserialize(deserializer)?;
            ServerEvent::ItemTruncated {
                item_id: wire.item_id.unwrap_or_default(),
                content_index: wire.content_index.unwrap_or_default(),
                audio_end_ms: wire.audio_end_ms.unwrap_or_default(),
            }
        }
        other => {
            // Still read to the end, so that a malformed rest of the frame is reported.
            IgnoredAny::deserialize(deserializer)?;
            ServerEvent::Other {
                kind: other.to_owned(),
            }
        }
    })
}

/// What went wrong in the single-pass parse, beyond what the serde error says.
enum Failure {
    None,
    /// The first key was not `type`: retry with the type read separately.
    TypeNotFirst,
    MissingType,
    /// The event of this type had the wrong shape.
    BadShape(String),
}

/// Reads an event object whose first key is `type` in one pass: the type, then the rest of the
/// same map through [`decode`].
struct EventSeed<'f> {
    failure: &'f mut Failure,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = ServerEvent;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ServerEvent, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = ServerEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a string `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerEvent, A::Error> {
        let Some(Text(first_key)) = map.next_key::<Text<'de>>()? else {
            *self.failure = Failure::MissingType;
            return Err(de::Error::custom("empty object"));
        };
        if first_key != "type" {
            *self.failure = Failure::TypeNotFirst;
            return Err(de::Error::custom("`type` is not the first key"));
        }
        let Text(kind) = map
            .next_value::<Text<'de>>()
            .inspect_err(|_| *self.failure = Failure::MissingType)?;
        decode(&kind, MapAccessDeserializer::new(map)).inspect_err(|_| {
            *self.failure = Failure::BadShape(kind.clone().into_owned());
        })
    }
}

/// The slow path for objects whose `type` is not the first key: read the type, then read the
/// whole text again as that event.
fn parse_with_type_anywhere(text: &str) -> Result<ServerEvent, EventParseError> {
    #[derive(Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Text<'a>>,
    }
    let type_only: TypeOnly<'_> = serde_json::from_str(text).map_err(|err| {
        if err.is_syntax() || err.is_eof() {
            EventParseError::NotJson(short_message(&err))
        } else {
            EventParseError::MissingType
        }
    })?;
    let Text(kind) = type_only.kind.ok_or(EventParseError::MissingType)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    decode(&kind, &mut deserializer)
        .and_then(|event| deserializer.end().map(|()| event))
        .map_err(|err| {
            // As in the one-pass path: a number out of range is a syntax error to serde_json,
            // and the skipping read above did not see it.
            if err.is_syntax() || err.is_eof() {
                EventParseError::NotJson(short_message(&err))
            } else {
                EventParseError::BadShape {
                    kind: kind.into_owned(),
                    message: short_message(&err),
                }
            }
        })
}

/// A string borrowed from the input when it has no escapes (event types and keys never do),
/// copied otherwise.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// The serde message, cut to [`MAX_PARSE_MESSAGE_CHARS`].
fn short_message(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.char_indices().nth(MAX_PARSE_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

// Wire structs: one per event, every optional field an `Option` so that a missing field and
// `null` both read as "absent". Unknown fields are ignored.

#[derive(Deserialize)]
struct SessionWire {
    #[serde(default)]
    session: Value,
}

#[derive(Deserialize)]
struct ErrorWire {
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiErrorWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
    event_id: Option<String>,
}

impl From<ApiErrorWire> for ApiError {
    fn from(wire: ApiErrorWire) -> Self {
        Self {
            kind: wire.kind.unwrap_or_default(),
            code: wire.code,
            message: wire.message.unwrap_or_default(),
            param: wire.param,
            event_id: wire.event_id,
        }
    }
}

#[derive(Deserialize)]
struct SpeechStartedWire {
    audio_start_ms: Option<u64>,
    item_id: Option<String>,
}

#[derive(Deserialize)]
struct SpeechStoppedWire {
    audio_end_ms: Option<u64>,
    item_id: Option<String>,
}

#[derive(Deserialize)]
struct ResponseCreatedWire {
    response: Option<ResponseIdWire>,
}

#[derive(Deserialize)]
struct ResponseIdWire {
    id: Option<String>,
    metadata: Option<MetadataWire>,
}

#[derive(Deserialize)]
struct MetadataWire {
    purpose: Option<String>,
}

#[derive(Deserialize)]
struct AudioDeltaWire {
    response_id: Option<String>,
    item_id: Option<String>,
    content_index: Option<u32>,
    /// Required: a delta without audio is not an audio delta.
    delta: String,
}

impl From<AudioDeltaWire> for ServerEvent {
    fn from(wire: AudioDeltaWire) -> Self {
        ServerEvent::AudioDelta {
            response_id: wire.response_id.unwrap_or_default(),
            item_id: wire.item_id.unwrap_or_default(),
            content_index: wire.content_index.unwrap_or_default(),
            delta: wire.delta,
        }
    }
}

#[derive(Deserialize)]
struct AudioDoneWire {
    response_id: Option<String>,
    item_id: Option<String>,
}

#[derive(Deserialize)]
struct TranscriptDoneWire {
    response_id: Option<String>,
    item_id: Option<String>,
    transcript: Option<String>,
}

#[derive(Deserialize)]
struct InputTranscriptCompletedWire {
    item_id: Option<String>,
    transcript: Option<String>,
    usage: Option<TranscriptionUsageWire>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TranscriptionUsageWire {
    Tokens {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        total_tokens: Option<u64>,
    },
    Duration {
        seconds: Option<f64>,
    },
    /// A billing kind added after this was written: no usage rather than a lost transcript.
    #[serde(other)]
    Unknown,
}

impl TranscriptionUsageWire {
    fn into_usage(self) -> Option<TranscriptionUsage> {
        match self {
            TranscriptionUsageWire::Tokens {
                input_tokens,
                output_tokens,
                total_tokens,
            } => Some(TranscriptionUsage::Tokens {
                input_tokens: input_tokens.unwrap_or_default(),
                output_tokens: output_tokens.unwrap_or_default(),
                total_tokens: total_tokens.unwrap_or_default(),
            }),
            TranscriptionUsageWire::Duration { seconds } => Some(TranscriptionUsage::Duration {
                seconds: seconds.unwrap_or_default(),
            }),
            TranscriptionUsageWire::Unknown => None,
        }
    }
}

#[derive(Deserialize)]
struct InputTranscriptFailedWire {
    item_id: Option<String>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ResponseDoneWire {
    response: Option<ResponseWire>,
}

#[derive(Deserialize)]
struct ResponseWire {
    id: Option<String>,
    status: Option<String>,
    status_details: Option<StatusDetailsWire>,
    usage: Option<ResponseUsageWire>,
    output: Option<Vec<OutputItemWire>>,
}

/// An item of `response.output`: only function calls are read, the rest (messages, whose
/// audio and transcript came in their own events) is skipped without being decoded.
#[derive(Deserialize)]
struct OutputItemWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct StatusDetailsWire {
    reason: Option<String>,
    error: Option<StatusErrorWire>,
}

#[derive(Deserialize)]
struct StatusErrorWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ResponseUsageWire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    input_token_details: Option<InputTokenDetailsWire>,
    output_token_details: Option<OutputTokenDetailsWire>,
}

#[derive(Deserialize)]
struct InputTokenDetailsWire {
    text_tokens: Option<u64>,
    audio_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    cached_tokens_details: Option<CachedTokenDetailsWire>,
}

#[derive(Deserialize)]
struct CachedTokenDetailsWire {
    text_tokens: Option<u64>,
    audio_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputTokenDetailsWire {
    text_tokens: Option<u64>,
    audio_tokens: Option<u64>,
}

impl ResponseWire {
    fn into_summary(self) -> ResponseSummary {
        let (status_reason, error) = match self.status_details {
            Some(details) => (
                details.reason,
                details.error.map(|error| ResponseError {
                    kind: error.kind.unwrap_or_default(),
                    code: error.code,
                    message: error.message,
                }),
            ),
            None => (None, None),
        };
        ResponseSummary {
            id: self.id.unwrap_or_default(),
            status: ResponseStatus::from_wire(self.status),
            status_reason,
            error,
            usage: self.usage.map(ResponseUsageWire::flatten),
            function_calls: self
                .output
                .unwrap_or_default()
                .into_iter()
                .filter(|item| item.kind.as_deref() == Some("function_call"))
                .map(|item| FunctionCall {
                    call_id: item.call_id.unwrap_or_default(),
                    name: item.name.unwrap_or_default(),
                    arguments: item.arguments.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl ResponseUsageWire {
    fn flatten(self) -> ResponseUsage {
        let input = self.input_token_details;
        let output = self.output_token_details;
        let input_detail =
            |pick: fn(&InputTokenDetailsWire) -> Option<u64>| input.as_ref().and_then(pick);
        let output_detail =
            |pick: fn(&OutputTokenDetailsWire) -> Option<u64>| output.as_ref().and_then(pick);
        ResponseUsage {
            input_tokens: self.input_tokens.unwrap_or_default(),
            output_tokens: self.output_tokens.unwrap_or_default(),
            total_tokens: self.total_tokens.unwrap_or_default(),
            input_text_tokens: input_detail(|d| d.text_tokens).unwrap_or_default(),
            input_audio_tokens: input_detail(|d| d.audio_tokens).unwrap_or_default(),
            input_cached_tokens: input_detail(|d| d.cached_tokens).unwrap_or_default(),
            input_cached_text_tokens: input_detail(|d| {
                d.cached_tokens_details.as_ref()?.text_tokens
            })
            .unwrap_or_default(),
            input_cached_audio_tokens: input_detail(|d| {
                d.cached_tokens_details.as_ref()?.audio_tokens
            })
            .unwrap_or_default(),
            output_text_tokens: output_detail(|d| d.text_tokens).unwrap_or_default(),
            output_audio_tokens: output_detail(|d| d.audio_tokens).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct ItemTruncatedWire {
    item_id: Option<String>,
    content_index: Option<u32>,
    audio_end_ms: Option<u64>,
}

#[cfg(test)]
mod tests;
