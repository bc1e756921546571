//! FreJun's media-stream messages (docs/protocols.md §1.3–§1.5): parsing what FreJun sends, writing
//! what we send back.
//!
//! Parsing is tolerant, as every reference bridge is: unknown types and unknown keys are
//! ignored, ids may be strings or numbers. The audio payload is borrowed from the frame, so the
//! hot path copies it only when decoding.

use std::borrow::Cow;

use serde::Deserialize;

use crate::audio::pcm;
use crate::settings::AudioMessageShape;

/// One text frame from FreJun.
#[derive(Debug, PartialEq)]
pub(crate) enum TelerMessage<'a> {
    Start(StreamStart),
    /// Base64 of s16le mono PCM at the stream's sample rate (borrowed unless the JSON string
    /// had escapes).
    Audio {
        audio_b64: Cow<'a, str>,
    },
    /// A type we do not act on (FreJun documents none besides these; `stop` is tolerated).
    Other {
        kind: String,
    },
}

/// The facts of FreJun's `start` message.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StreamStart {
    pub call_id: Option<String>,
    pub stream_id: Option<String>,
    pub account_id: Option<String>,
    pub encoding: Option<String>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum TelerMessageError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("no `type` field")]
    MissingType,
    #[error("an audio message without data.audio_b64")]
    AudioWithoutPayload,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
    #[serde(borrow)]
    audio_b64: Option<Text<'a>>,
    call_id: Option<IdValue>,
    stream_id: Option<IdValue>,
    account_id: Option<IdValue>,
}

/// `data` of either message: the audio payload, or the stream's format.
#[derive(Deserialize, Default)]
struct Data<'a> {
    #[serde(borrow)]
    audio_b64: Option<Text<'a>>,
    encoding: Option<String>,
    sample_rate: Option<IdValue>,
    channels: Option<IdValue>,
}

/// A string borrowed from the frame unless it has escapes. serde borrows a `Cow<str>` only when
/// it is a field's whole type: as `Option<Cow<str>>` it would always be copied.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// A value FreJun may send as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(text) => text,
            IdValue::Number(number) => number.to_string(),
        }
    }

    fn as_u32(&self) -> Option<u32> {
        match self {
            IdValue::Text(text) => parse_rate(text),
            IdValue::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        }
    }
}

/// "8000", "8_000" (as FreJun's docs print it) or "8k"; `None` for anything else, including
/// kilohertz whose hertz do not fit a `u32`.
fn parse_rate(text: &str) -> Option<u32> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(khz) = digits.strip_suffix(['k', 'K']) {
        return khz.parse::<u32>().ok().and_then(|k| k.checked_mul(1_000));
    }
    digits.parse().ok()
}

impl<'a> TelerMessage<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<Self, TelerMessageError> {
        let envelope: Envelope<'a> = serde_json::from_str(text)
            .map_err(|err| TelerMessageError::NotJson(short_message(&err)))?;
        let Text(kind) = envelope.kind.ok_or(TelerMessageError::MissingType)?;
        match kind.as_ref() {
            "audio" => {
                // Documented shape: nested under `data`; a flat `audio_b64` is tolerated.
                envelope
                    .data
                    .and_then(|data| data.audio_b64)
                    .or(envelope.audio_b64)
                    .map(|Text(audio_b64)| TelerMessage::Audio { audio_b64 })
                    .ok_or(TelerMessageError::AudioWithoutPayload)
            }
            "start" => {
                let data = envelope.data.unwrap_or_default();
                Ok(TelerMessage::Start(StreamStart {
                    call_id: envelope.call_id.map(IdValue::into_string),
                    stream_id: envelope.stream_id.map(IdValue::into_string),
                    account_id: envelope.account_id.map(IdValue::into_string),
                    encoding: data.encoding,
                    sample_rate: data.sample_rate.as_ref().and_then(IdValue::as_u32),
                    channels: data.channels.as_ref().and_then(IdValue::as_u32),
                }))
            }
            other => Ok(TelerMessage::Other {
                kind: other.chars().take(64).collect(),
            }),
        }
    }
}

/// Longest serde message kept in [`TelerMessageError::NotJson`], in characters. serde quotes
/// the offending value, which may be a whole frame of base64; the start is enough to diagnose,
/// and the error is logged for every bad frame.
const MAX_ERROR_CHARS: usize = 200;

/// The serde message, cut to [`MAX_ERROR_CHARS`].
fn short_message(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

/// Writes an audio message into `out` (cleared first), base64 computed once over the whole
/// chunk: `{"type":"audio","audio_b64":"<base64 of pcm>","chunk_id":<id>}` (flat, what FreJun's
/// SDK sample and official bridge send) or
/// `{"type":"audio","data":{"audio_b64":"…","chunk_id":<id>}}` (nested, what FreJun's
/// documentation shows).
pub(crate) fn write_audio_message(
    shape: AudioMessageShape,
    pcm_s16le: &[u8],
    chunk_id: u64,
    out: &mut String,
) {
    out.clear();
    out.reserve(pcm_s16le.len().div_ceil(3) * 4 + 72);
    out.push_str(match shape {
        AudioMessageShape::Flat => r#"{"type":"audio","audio_b64":""#,
        AudioMessageShape::Nested => r#"{"type":"audio","data":{"audio_b64":""#,
    });
    pcm::encode_base64(pcm_s16le, out);
    out.push_str(r#"","chunk_id":"#);
    out.push_str(&chunk_id.to_string());
    out.push_str(match shape {
        AudioMessageShape::Flat => "}",
        AudioMessageShape::Nested => "}}",
    });
}

/// Drops everything FreJun has queued for playback.
pub(crate) const CLEAR_MESSAGE: &str = r#"{"type":"clear"}"#;

/// Drops one queued chunk.
pub(crate) fn interrupt_message(chunk_id: u64) -> String {
    format!(r#"{{"type":"interrupt","chunk_id":{chunk_id}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_read_with_numbers_strings_and_documented_oddities() {
        let text = r#"{"type":"start","account_id":"acc","call_app_id":"app","call_id":"c-1",
            "stream_id":"s-1","message_id":1,
            "data":{"encoding":"audio/l16","sample_rate":16000,"channels":1}}"#;
        let TelerMessage::Start(start) = TelerMessage::parse(text).unwrap() else {
            panic!("not a start");
        };
        assert_eq!(start.call_id.as_deref(), Some("c-1"));
        assert_eq!(start.stream_id.as_deref(), Some("s-1"));
        assert_eq!(start.sample_rate, Some(16_000));
        assert_eq!(start.encoding.as_deref(), Some("audio/l16"));
        let odd = r#"{"type":"start","call_id":42,"data":{"sample_rate":"8_000"}}"#;
        let TelerMessage::Start(start) = TelerMessage::parse(odd).unwrap() else {
            panic!("not a start");
        };
        assert_eq!(start.call_id.as_deref(), Some("42"));
        assert_eq!(start.sample_rate, Some(8_000));
        let bare = TelerMessage::parse(r#"{"type":"start"}"#).unwrap();
        assert_eq!(bare, TelerMessage::Start(StreamStart::default()));
    }

    #[test]
    fn audio_is_borrowed_from_the_nested_or_flat_shape() {
        let nested =
            r#"{"type":"audio","stream_id":"s","message_id":2,"data":{"audio_b64":"AAE="}}"#;
        assert_eq!(
            TelerMessage::parse(nested).unwrap(),
            TelerMessage::Audio {
                audio_b64: "AAE=".into()
            }
        );
        let flat = r#"{"type":"audio","audio_b64":"AAE="}"#;
        assert_eq!(
            TelerMessage::parse(flat).unwrap(),
            TelerMessage::Audio {
                audio_b64: "AAE=".into()
            }
        );
        let escaped = r#"{"type":"audio","data":{"audio_b64":"A\/E="}}"#;
        assert_eq!(
            TelerMessage::parse(escaped).unwrap(),
            TelerMessage::Audio {
                audio_b64: "A/E=".into()
            }
        );
        assert_eq!(
            TelerMessage::parse(r#"{"type":"audio","data":{}}"#),
            Err(TelerMessageError::AudioWithoutPayload)
        );
    }

    #[test]
    fn junk_is_an_error_and_unknown_types_are_other() {
        assert!(matches!(
            TelerMessage::parse("{not json"),
            Err(TelerMessageError::NotJson(_))
        ));
        assert!(matches!(
            TelerMessage::parse("[1,2]"),
            Err(TelerMessageError::NotJson(_))
        ));
        assert_eq!(
            TelerMessage::parse(r#"{"data":{}}"#),
            Err(TelerMessageError::MissingType)
        );
        assert_eq!(
            TelerMessage::parse(r#"{"type":"dtmf","digit":"5"}"#).unwrap(),
            TelerMessage::Other {
                kind: "dtmf".into()
            }
        );
    }

    #[test]
    fn outbound_messages_have_the_flat_shape() {
        let mut out = String::from("stale");
        write_audio_message(AudioMessageShape::Flat, &[1, 0, 2, 0], 7, &mut out);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "audio", "audio_b64": "AQACAA==", "chunk_id": 7})
        );
        write_audio_message(AudioMessageShape::Nested, &[1, 0, 2, 0], 7, &mut out);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "audio", "data": {"audio_b64": "AQACAA==", "chunk_id": 7}})
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&interrupt_message(9)).unwrap(),
            serde_json::json!({"type": "interrupt", "chunk_id": 9})
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(CLEAR_MESSAGE).unwrap(),
            serde_json::json!({"type": "clear"})
        );
    }
}
