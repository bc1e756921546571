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

/// An event received from OpenAI. Read one with [`ServerEvent::parse`].
///
/// Ids and numbers the server left out are empty strings and zeros: the events are still
/// usable, and the bridge never has to guess whether a field exists.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The first event on a socket, with the server's defaults.
    SessionCreated {
        session: Value,
    },
    /// The full effective configuration after a `session.update`.
    SessionUpdated {
        session: Value,
    },
    /// Most errors leave the session open; see [`ApiError::is_cancel_not_active`].
    Error {
        error: ApiError,
    },
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
    ResponseDone {
        response: ResponseSummary,
    },
    /// `conversation.item.truncated`: a truncate we sent took effect.
    ItemTruncated {
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
    },
    /// Any other well-formed event (known-but-unused ones like `rate_limits.updated`, or unknown
    /// ones): ignored by the bridge and counted, never fatal.
    Other {
        kind: String,
    },
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
    pub const CANCEL_NOT_ACTIVE: &str = "response_cancel_not_active";

    /// Whether this is the harmless answer to a cancel that came too late (the response had
    /// already finished or been cancelled by the server).
    pub fn is_cancel_not_active(&self) -> bool {
        self.code.as_deref() == Some(Self::CANCEL_NOT_ACTIVE)
    }
}

/// The outcome of a response, from `response.done`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseSummary {
    pub id: String,
    /// `completed`, `cancelled`, `failed` or `incomplete`.
    pub status: String,
    /// Why it was cancelled (`turn_detected`, `client_cancelled`) or incomplete
    /// (`max_output_tokens`, `content_filter`).
    pub status_reason: Option<String>,
    /// What went wrong, for a failed response.
    pub error: Option<ResponseError>,
    /// What the response cost; matches billing.
    pub usage: Option<ResponseUsage>,
}

/// `status_details.error` of a failed response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseError {
    /// The error's `type`.
    pub kind: String,
    pub code: Option<String>,
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
    pub output_text_tokens: u64,
    pub output_audio_tokens: u64,
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
    pub fn parse(text: &str) -> Result<ServerEvent, EventParseError> {
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
    pub const SESSION_CREATED: &str = "session.created";
    pub const SESSION_UPDATED: &str = "session.updated";
    pub const ERROR: &str = "error";
    pub const SPEECH_STARTED: &str = "input_audio_buffer.speech_started";
    pub const SPEECH_STOPPED: &str = "input_audio_buffer.speech_stopped";
    pub const RESPONSE_CREATED: &str = "response.created";
    pub const AUDIO_DELTA: &str = "response.output_audio.delta";
    pub const LEGACY_AUDIO_DELTA: &str = "response.audio.delta";
    pub const AUDIO_DONE: &str = "response.output_audio.done";
    pub const LEGACY_AUDIO_DONE: &str = "response.audio.done";
    pub const AUDIO_TRANSCRIPT_DONE: &str = "response.output_audio_transcript.done";
    pub const LEGACY_AUDIO_TRANSCRIPT_DONE: &str = "response.audio_transcript.done";
    pub const INPUT_TRANSCRIPT_COMPLETED: &str =
        "conversation.item.input_audio_transcription.completed";
    pub const INPUT_TRANSCRIPT_FAILED: &str = "conversation.item.input_audio_transcription.failed";
    pub const RESPONSE_DONE: &str = "response.done";
    pub const ITEM_TRUNCATED: &str = "conversation.item.truncated";
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
        kinds::RESPONSE_CREATED => ServerEvent::ResponseCreated {
            response_id: ResponseCreatedWire::deserialize(deserializer)?
                .response
                .and_then(|response| response.id)
                .unwrap_or_default(),
        },
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
        .map_err(|err| EventParseError::BadShape {
            kind: kind.into_owned(),
            message: short_message(&err),
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
                }),
            ),
            None => (None, None),
        };
        ResponseSummary {
            id: self.id.unwrap_or_default(),
            status: self.status.unwrap_or_default(),
            status_reason,
            error,
            usage: self.usage.map(ResponseUsageWire::flatten),
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
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> ServerEvent {
        ServerEvent::parse(text).unwrap_or_else(|err| panic!("{err}: {text}"))
    }

    #[test]
    fn session_created_and_updated_keep_the_session() {
        let text = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j","session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ","model":"gpt-realtime-2025-08-28","output_modalities":["audio"],"instructions":"Your knowledge cutoff is 2023-10.","tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null,"prompt":null,"expires_at":1756324625,"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":null,"noise_reduction":null,"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true}},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin","speed":1}},"include":null}}"#;
        let ServerEvent::SessionCreated { session } = parse(text) else {
            panic!("not session.created");
        };
        assert_eq!(session["id"], "sess_C9G5QPteg4UIbotdKLoYQ");
        assert_eq!(session["expires_at"], 1756324625);

        let event = parse(
            r#"{"type":"session.updated","event_id":"e","session":{"type":"realtime","model":"gpt-realtime"}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::SessionUpdated {
                session: json!({"type": "realtime", "model": "gpt-realtime"})
            }
        );
        assert_eq!(event.kind(), "session.updated");
        assert_eq!(
            parse(r#"{"type":"session.updated"}"#),
            ServerEvent::SessionUpdated {
                session: Value::Null
            }
        );
    }

    #[test]
    fn errors() {
        let event = parse(
            r#"{"type":"error","event_id":"event_890","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.input_audio_format'.","param":"session.input_audio_format","event_id":"evt_session_update"}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::Error {
                error: ApiError {
                    kind: "invalid_request_error".to_owned(),
                    code: Some("unknown_parameter".to_owned()),
                    message: "Unknown parameter: 'session.input_audio_format'.".to_owned(),
                    param: Some("session.input_audio_format".to_owned()),
                    event_id: Some("evt_session_update".to_owned()),
                }
            }
        );
        let ServerEvent::Error { error } = &event else {
            unreachable!()
        };
        assert!(!error.is_cancel_not_active());

        let ServerEvent::Error { error } = parse(
            r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"Cancellation failed: no active response found","param":null,"event_id":null}}"#,
        ) else {
            panic!("not an error");
        };
        assert!(error.is_cancel_not_active());
        assert_eq!(error.param, None);

        // An error without details is still an error.
        assert_eq!(
            parse(r#"{"type":"error"}"#),
            ServerEvent::Error {
                error: ApiError::default()
            }
        );
        assert_eq!(
            parse(r#"{"type":"error","error":{"message":"boom"}}"#),
            ServerEvent::Error {
                error: ApiError {
                    message: "boom".to_owned(),
                    ..ApiError::default()
                }
            }
        );
    }

    #[test]
    fn speech_started_and_stopped() {
        assert_eq!(
            parse(
                r#"{"type":"input_audio_buffer.speech_started","event_id":"event_1516","audio_start_ms":1000,"item_id":"msg_003"}"#
            ),
            ServerEvent::SpeechStarted {
                audio_start_ms: 1_000,
                item_id: Some("msg_003".to_owned())
            }
        );
        assert_eq!(
            parse(
                r#"{"type":"input_audio_buffer.speech_stopped","event_id":"event_1718","audio_end_ms":2000,"item_id":"msg_003"}"#
            ),
            ServerEvent::SpeechStopped {
                audio_end_ms: 2_000,
                item_id: Some("msg_003".to_owned())
            }
        );
        assert_eq!(
            parse(r#"{"type":"input_audio_buffer.speech_started"}"#),
            ServerEvent::SpeechStarted {
                audio_start_ms: 0,
                item_id: None
            }
        );
    }

    #[test]
    fn response_created() {
        let event = parse(
            r#"{"type":"response.created","event_id":"event_C9G8pqbTEddBSIxbBN6Os","response":{"object":"realtime.response","id":"resp_C9G8p7IH2WxLbkgPNouYL","status":"in_progress","status_details":null,"output":[],"conversation_id":"conv_C9G8mmBkLhQJwCon3hoJN","output_modalities":["audio"],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}},"usage":null,"metadata":null}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::ResponseCreated {
                response_id: "resp_C9G8p7IH2WxLbkgPNouYL".to_owned()
            }
        );
        assert_eq!(
            parse(r#"{"type":"response.created"}"#),
            ServerEvent::ResponseCreated {
                response_id: String::new()
            }
        );
    }

    #[test]
    fn audio_deltas_in_both_spellings() {
        let expected = ServerEvent::AudioDelta {
            response_id: "resp_C9G8p7IH2WxLbkgPNouYL".to_owned(),
            item_id: "item_C9G8pjSJCfRNEhMEnYAVy".to_owned(),
            content_index: 0,
            delta: "AQIDBA==".to_owned(),
        };
        for kind in ["response.output_audio.delta", "response.audio.delta"] {
            let text = format!(
                r#"{{"type":"{kind}","event_id":"event_C9G8qOFgKAJtoiXa4SRmC","response_id":"resp_C9G8p7IH2WxLbkgPNouYL","item_id":"item_C9G8pjSJCfRNEhMEnYAVy","output_index":0,"content_index":0,"delta":"AQIDBA=="}}"#
            );
            let event = parse(&text);
            assert_eq!(event, expected, "{kind}");
            assert_eq!(event.kind(), "response.output_audio.delta");
        }
        // Only the audio is required.
        assert_eq!(
            parse(r#"{"type":"response.output_audio.delta","delta":"AA=="}"#),
            ServerEvent::AudioDelta {
                response_id: String::new(),
                item_id: String::new(),
                content_index: 0,
                delta: "AA==".to_owned()
            }
        );
    }

    #[test]
    fn audio_done_in_both_spellings() {
        for kind in ["response.output_audio.done", "response.audio.done"] {
            let text = format!(
                r#"{{"type":"{kind}","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0}}"#
            );
            let event = parse(&text);
            assert_eq!(
                event,
                ServerEvent::AudioDone {
                    response_id: "resp_1".to_owned(),
                    item_id: "item_1".to_owned()
                }
            );
            assert_eq!(event.kind(), "response.output_audio.done");
        }
    }

    #[test]
    fn transcript_done_in_both_spellings() {
        for kind in [
            "response.output_audio_transcript.done",
            "response.audio_transcript.done",
        ] {
            let text = format!(
                r#"{{"type":"{kind}","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"transcript":"Hello! How can I help you today?"}}"#
            );
            assert_eq!(
                parse(&text),
                ServerEvent::AudioTranscriptDone {
                    response_id: "resp_1".to_owned(),
                    item_id: "item_1".to_owned(),
                    transcript: "Hello! How can I help you today?".to_owned()
                }
            );
        }
    }

    #[test]
    fn input_transcription_completed_with_each_usage() {
        let event = parse(
            r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_CCXGRvtUVrax5SJAnNOWZ","item_id":"item_CCXGQ4e1ht4cOraEYcuR2","content_index":0,"transcript":"Hey, can you hear me?","usage":{"type":"tokens","total_tokens":22,"input_tokens":13,"input_token_details":{"text_tokens":0,"audio_tokens":13},"output_tokens":9}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::InputTranscriptCompleted {
                item_id: "item_CCXGQ4e1ht4cOraEYcuR2".to_owned(),
                transcript: "Hey, can you hear me?".to_owned(),
                usage: Some(TranscriptionUsage::Tokens {
                    input_tokens: 13,
                    output_tokens: 9,
                    total_tokens: 22
                })
            }
        );
        let with_usage = |usage: &str| {
            let text = format!(
                r#"{{"type":"conversation.item.input_audio_transcription.completed","item_id":"i","transcript":"hi","usage":{usage}}}"#
            );
            match parse(&text) {
                ServerEvent::InputTranscriptCompleted { usage, .. } => usage,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            with_usage(r#"{"type":"duration","seconds":2.5}"#),
            Some(TranscriptionUsage::Duration { seconds: 2.5 })
        );
        assert_eq!(with_usage("null"), None);
        assert_eq!(
            with_usage(r#"{"type":"characters","count":3}"#),
            None,
            "an unknown billing kind loses the usage, not the transcript"
        );
        assert_eq!(
            with_usage(r#"{"type":"tokens"}"#),
            Some(TranscriptionUsage::Tokens {
                input_tokens: 0,
                output_tokens: 0,
                total_tokens: 0
            })
        );
    }

    #[test]
    fn input_transcription_failed() {
        assert_eq!(
            parse(
                r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"e","item_id":"msg_003","content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"The audio could not be transcribed.","param":null}}"#
            ),
            ServerEvent::InputTranscriptFailed {
                item_id: "msg_003".to_owned(),
                error: Some(ApiError {
                    kind: "transcription_error".to_owned(),
                    code: Some("audio_unintelligible".to_owned()),
                    message: "The audio could not be transcribed.".to_owned(),
                    param: None,
                    event_id: None,
                })
            }
        );
        assert_eq!(
            parse(r#"{"type":"conversation.item.input_audio_transcription.failed","item_id":"i"}"#),
            ServerEvent::InputTranscriptFailed {
                item_id: "i".to_owned(),
                error: None
            }
        );
    }

    #[test]
    fn response_done_flattens_usage() {
        let event = parse(
            r#"{"type":"response.done","event_id":"event_CCXHxcMy86rrKhBLDdqCh","response":{"object":"realtime.response","id":"resp_CCXHw0UJld10EzIUXQCNh","status":"completed","status_details":null,"output":[{"id":"item_CCXHwGjjDUfOXbiySlK7i","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Loud and clear! I can hear you perfectly. How can I help you today?"}]}],"conversation_id":"conv_CCXHsurMKcaVxIZvaCI5m","output_modalities":["audio"],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"alloy"}},"usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121,"input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,"cached_tokens":64,"cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},"output_token_details":{"text_tokens":30,"audio_tokens":91}},"metadata":null}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::ResponseDone {
                response: ResponseSummary {
                    id: "resp_CCXHw0UJld10EzIUXQCNh".to_owned(),
                    status: "completed".to_owned(),
                    status_reason: None,
                    error: None,
                    usage: Some(ResponseUsage {
                        input_tokens: 132,
                        output_tokens: 121,
                        total_tokens: 253,
                        input_text_tokens: 119,
                        input_audio_tokens: 13,
                        input_cached_tokens: 64,
                        output_text_tokens: 30,
                        output_audio_tokens: 91,
                    }),
                }
            }
        );
    }

    #[test]
    fn response_done_without_details_or_usage() {
        let event = parse(
            r#"{"type":"response.done","event_id":"e","response":{"id":"resp_2","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[],"usage":{"total_tokens":0,"input_tokens":0,"output_tokens":0}}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::ResponseDone {
                response: ResponseSummary {
                    id: "resp_2".to_owned(),
                    status: "cancelled".to_owned(),
                    status_reason: Some("turn_detected".to_owned()),
                    error: None,
                    usage: Some(ResponseUsage::default()),
                }
            }
        );
        let event = parse(
            r#"{"type":"response.done","response":{"id":"resp_3","status":"completed","usage":{"total_tokens":10,"input_tokens":4,"output_tokens":6,"input_token_details":null,"output_token_details":{"audio_tokens":6}}}}"#,
        );
        let ServerEvent::ResponseDone { response } = event else {
            panic!("not response.done");
        };
        assert_eq!(
            response.usage,
            Some(ResponseUsage {
                input_tokens: 4,
                output_tokens: 6,
                total_tokens: 10,
                output_audio_tokens: 6,
                ..ResponseUsage::default()
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"response.done","response":{"id":"resp_4","status":"completed","usage":null}}"#
            ),
            ServerEvent::ResponseDone {
                response: ResponseSummary {
                    id: "resp_4".to_owned(),
                    status: "completed".to_owned(),
                    ..ResponseSummary::default()
                }
            }
        );
    }

    #[test]
    fn response_done_failed_carries_the_error() {
        let event = parse(
            r#"{"type":"response.done","event_id":"e","response":{"id":"resp_5","status":"failed","status_details":{"type":"failed","error":{"type":"invalid_request_error","code":"rate_limit_exceeded"}},"output":[],"usage":null}}"#,
        );
        assert_eq!(
            event,
            ServerEvent::ResponseDone {
                response: ResponseSummary {
                    id: "resp_5".to_owned(),
                    status: "failed".to_owned(),
                    status_reason: None,
                    error: Some(ResponseError {
                        kind: "invalid_request_error".to_owned(),
                        code: Some("rate_limit_exceeded".to_owned())
                    }),
                    usage: None,
                }
            }
        );
    }

    #[test]
    fn item_truncated() {
        assert_eq!(
            parse(
                r#"{"type":"conversation.item.truncated","event_id":"event_2526","item_id":"msg_004","content_index":0,"audio_end_ms":1500}"#
            ),
            ServerEvent::ItemTruncated {
                item_id: "msg_004".to_owned(),
                content_index: 0,
                audio_end_ms: 1_500
            }
        );
    }

    #[test]
    fn other_events_keep_their_type() {
        let event = parse(
            r#"{"type":"rate_limits.updated","event_id":"event_C9G8qJnz0ty6ohTEZDh7l","rate_limits":[{"name":"requests","limit":5000,"remaining":4999,"reset_seconds":0.012},{"name":"tokens","limit":15000000,"remaining":14995388,"reset_seconds":0.018}]}"#,
        );
        assert_eq!(
            event,
            ServerEvent::Other {
                kind: "rate_limits.updated".to_owned()
            }
        );
        assert_eq!(event.kind(), "rate_limits.updated");
        assert_eq!(
            parse(r#"{"type":"response.output_audio_transcript.delta","delta":"Hel"}"#).kind(),
            "response.output_audio_transcript.delta"
        );
        // An unknown event may use a known field name with any shape.
        assert_eq!(
            parse(r#"{"type":"some.future_event","delta":{"nested":[1,2]},"item_id":7}"#),
            ServerEvent::Other {
                kind: "some.future_event".to_owned()
            }
        );
    }

    // --- tolerance and failures ---

    #[test]
    fn nulls_and_extra_fields_are_tolerated() {
        assert_eq!(
            parse(
                r#"{"type":"conversation.item.truncated","item_id":null,"content_index":null,"audio_end_ms":null,"brand_new":{"x":1}}"#
            ),
            ServerEvent::ItemTruncated {
                item_id: String::new(),
                content_index: 0,
                audio_end_ms: 0
            }
        );
    }

    #[test]
    fn type_first_is_read_in_one_pass() {
        let text = r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":1,"delta":"AQID"}"#;
        let mut failure = Failure::None;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let event = EventSeed {
            failure: &mut failure,
        }
        .deserialize(&mut deserializer)
        .unwrap();
        deserializer.end().unwrap();
        assert!(matches!(failure, Failure::None));
        assert_eq!(
            event,
            ServerEvent::AudioDelta {
                response_id: "r".to_owned(),
                item_id: "i".to_owned(),
                content_index: 1,
                delta: "AQID".to_owned()
            }
        );
    }

    #[test]
    fn type_need_not_come_first() {
        assert_eq!(
            parse(r#"{"event_id":"e","item_id":"i","delta":"AA==","type":"response.audio.delta"}"#),
            ServerEvent::AudioDelta {
                response_id: String::new(),
                item_id: "i".to_owned(),
                content_index: 0,
                delta: "AA==".to_owned()
            }
        );
        assert_eq!(
            parse(r#"{"event_id":"e","type":"rate_limits.updated"}"#),
            ServerEvent::Other {
                kind: "rate_limits.updated".to_owned()
            }
        );
        // An escaped type still matches.
        assert_eq!(
            parse(r#"{"type":"response.output\u005faudio.done","item_id":"i"}"#).kind(),
            "response.output_audio.done"
        );
    }

    #[test]
    fn malformed_json_is_not_json() {
        for text in [
            "",
            "not json",
            r#"{"type":"response.output_audio.delta","delta":"AA=="#,
            r#"{"type":"response.output_audio.delta","delta":"AA=="} trailing"#,
            r#"{"type":"rate_limits.updated","rate_limits":[}"#,
            r#"{"event_id":"e","type":"x",}"#,
        ] {
            assert!(
                matches!(ServerEvent::parse(text), Err(EventParseError::NotJson(_))),
                "{text}: {:?}",
                ServerEvent::parse(text)
            );
        }
    }

    #[test]
    fn no_type_is_missing_type() {
        for text in [
            "{}",
            r#"{"event_id":"e","delta":"AA=="}"#,
            r#"{"type":5,"delta":"AA=="}"#,
            r#"{"event_id":"e","type":null}"#,
            r#"[{"type":"error"}]"#,
            r#""response.done""#,
            "42",
        ] {
            assert_eq!(
                ServerEvent::parse(text),
                Err(EventParseError::MissingType),
                "{text}"
            );
        }
    }

    #[test]
    fn a_known_type_with_a_wrong_shape_is_bad_shape() {
        for (text, expected_kind) in [
            (
                r#"{"type":"response.output_audio.delta","delta":5}"#,
                "response.output_audio.delta",
            ),
            (
                r#"{"event_id":"e","type":"response.audio.delta","delta":5}"#,
                "response.audio.delta",
            ),
            (
                r#"{"type":"response.output_audio.delta","item_id":"i"}"#,
                "response.output_audio.delta",
            ),
            (
                r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":-5}"#,
                "input_audio_buffer.speech_started",
            ),
        ] {
            match ServerEvent::parse(text) {
                Err(EventParseError::BadShape { kind, message }) => {
                    assert_eq!(kind, expected_kind);
                    assert!(!message.is_empty());
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let err = ServerEvent::parse(
            r#"{"type":"response.done","response":{"id":"r","usage":{"input_tokens":"many"}}}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&err, EventParseError::BadShape { kind, .. } if kind == "response.done"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("`response.done` event has an unexpected shape: "),
            "{err}"
        );
    }

    #[test]
    fn bad_shape_messages_are_short() {
        let long = "A".repeat(10_000);
        let text = format!(r#"{{"type":"conversation.item.truncated","audio_end_ms":"{long}"}}"#);
        let Err(EventParseError::BadShape { message, .. }) = ServerEvent::parse(&text) else {
            panic!("expected a bad shape");
        };
        assert!(
            message.chars().count() <= MAX_PARSE_MESSAGE_CHARS + 1,
            "{message}"
        );
    }
}
