//! Client → server events: what the bridge sends to OpenAI.
//!
//! [`ClientEvent`] covers every event the bridge sends; [`write_append_event`] writes the audio
//! append, many times a second per call, straight into a reused buffer.

use serde::Serialize;

use crate::audio::pcm::encode_base64;
use crate::providers::openai::session::SessionConfig;

/// An event we send to OpenAI. Serialize with [`ClientEvent::to_json`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    #[serde(rename = "session.update")]
    SessionUpdate { session: SessionConfig },
    /// `audio` is the standard, padded base64 of audio in the session's input format. The
    /// bridge writes appends with [`write_append_event`], which skips the intermediate
    /// `String`; this variant is the reference shape that fast path is tested against.
    #[cfg(test)]
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend { audio: String },
    /// `audio_end_ms` must be an integer no larger than the audio received for the item; the
    /// server rejects fractions and overshoots.
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
    },
    /// Adds an item to the conversation; the bridge adds `system` messages (see
    /// [`ClientEvent::system_message`]).
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate { item: ConversationItem },
    #[serde(rename = "response.create")]
    ResponseCreate {
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<ResponseParams>,
    },
    /// Without an id the server cancels the response in progress; with nothing in progress it
    /// answers a benign `response_cancel_not_active` error.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        #[serde(skip_serializing_if = "Option::is_none")]
        response_id: Option<String>,
    },
}

/// An item the bridge adds to the conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConversationItem {
    /// A message; the bridge only adds `system` ones (its own steering).
    Message {
        role: &'static str,
        content: Vec<ContentPart>,
    },
    /// The result of a tool the model called, for the `call_id` it named. `output` is free
    /// text (JSON-encoded when structured).
    FunctionCallOutput { call_id: String, output: String },
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentPart {
    /// `input_text` for text the model reads.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

impl ClientEvent {
    /// A `system` message added to the conversation: steering that leaves the session's
    /// instructions in force (OpenAI's documented way to add instructions mid-conversation).
    pub(crate) fn system_message(text: String) -> ClientEvent {
        ClientEvent::ConversationItemCreate {
            item: ConversationItem::Message {
                role: "system",
                content: vec![ContentPart {
                    kind: "input_text",
                    text,
                }],
            },
        }
    }

    /// The result of the tool call `call_id`.
    pub(crate) fn function_call_output(call_id: String, output: String) -> ClientEvent {
        ClientEvent::ConversationItemCreate {
            item: ConversationItem::FunctionCallOutput { call_id, output },
        }
    }

    /// A response outside the conversation (`conversation: "none"`, empty `input`): spoken with
    /// the session's voice but neither seeing nor adding to what was said, tagged with
    /// `purpose` so its events can be told apart. Used for the filler while a tool runs.
    pub(crate) fn out_of_band_response(purpose: &'static str, instructions: String) -> ClientEvent {
        ClientEvent::ResponseCreate {
            response: Some(ResponseParams {
                instructions: Some(instructions),
                conversation: Some("none"),
                input: Some(Vec::new()),
                metadata: Some(ResponseMetadata { purpose }),
            }),
        }
    }

    /// The event as a JSON text frame.
    pub(crate) fn to_json(&self) -> String {
        // Cannot fail: every field is a string, a number, a bool or a struct of those, and no
        // map has non-string keys (serde_json writes non-finite floats as null).
        serde_json::to_string(self).expect("client events always serialize")
    }
}

/// The start of every append event, up to the opening quote of the base64.
const APPEND_PREFIX: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
/// The end of every append event.
const APPEND_SUFFIX: &str = r#""}"#;

/// Clears `out` and writes `{"type":"input_audio_buffer.append","audio":"<base64>"}` into it:
/// the same text as `ClientEvent::InputAudioBufferAppend` (a test-only reference) serializes to, without building the
/// base64 `String` first. Reusing `out` across calls makes an append allocation-free once the
/// buffer has grown. Base64 needs no JSON escaping, so it is written as it is.
pub fn write_append_event(audio: &[u8], out: &mut String) {
    out.clear();
    out.reserve(APPEND_PREFIX.len() + audio.len().div_ceil(3) * 4 + APPEND_SUFFIX.len());
    out.push_str(APPEND_PREFIX);
    encode_base64(audio, out);
    out.push_str(APPEND_SUFFIX);
}

/// Per-response overrides for `response.create`. Absent fields keep the session's values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseParams {
    /// Instructions for this response only, e.g. "Greet the caller".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `none` for a response outside the default conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<&'static str>,
    /// The context of an out-of-band response (empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResponseMetadata>,
}

/// `response.metadata`: OpenAI echoes it in the response's events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMetadata {
    pub purpose: &'static str,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn append_fast_path_matches_the_serialized_event() {
        let mut out = String::from("left over from the previous frame");
        for audio in [
            &b""[..],
            b"\x01",
            b"\x01\x02",
            b"\x01\x02\x03",
            &[0xff; 160],
        ] {
            write_append_event(audio, &mut out);
            let mut audio_base64 = String::new();
            encode_base64(audio, &mut audio_base64);
            let event = ClientEvent::InputAudioBufferAppend {
                audio: audio_base64,
            };
            assert_eq!(out, event.to_json());
            let value: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(value["type"], "input_audio_buffer.append");
        }
        write_append_event(b"\x01", &mut out);
        assert_eq!(
            out, r#"{"type":"input_audio_buffer.append","audio":"AQ=="}"#,
            "standard base64, padded"
        );
        write_append_event(&[0xfb, 0xff], &mut out);
        assert_eq!(
            out, r#"{"type":"input_audio_buffer.append","audio":"+/8="}"#,
            "standard alphabet, not URL-safe"
        );
    }

    #[test]
    fn truncate_sends_integers() {
        let event = ClientEvent::ConversationItemTruncate {
            item_id: "item_CCXHwGjjDUfOXbiySlK7i".to_owned(),
            content_index: 0,
            audio_end_ms: 1_234,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"conversation.item.truncate","item_id":"item_CCXHwGjjDUfOXbiySlK7i","content_index":0,"audio_end_ms":1234}"#
        );
    }

    #[test]
    fn cancel_with_and_without_an_id() {
        assert_eq!(
            ClientEvent::ResponseCancel { response_id: None }.to_json(),
            r#"{"type":"response.cancel"}"#
        );
        assert_eq!(
            ClientEvent::ResponseCancel {
                response_id: Some("resp_1".to_owned())
            }
            .to_json(),
            r#"{"type":"response.cancel","response_id":"resp_1"}"#
        );
    }

    #[test]
    fn create_with_and_without_instructions() {
        assert_eq!(
            ClientEvent::ResponseCreate { response: None }.to_json(),
            r#"{"type":"response.create"}"#
        );
        assert_eq!(
            ClientEvent::ResponseCreate {
                response: Some(ResponseParams::default())
            }
            .to_json(),
            r#"{"type":"response.create","response":{}}"#
        );
        assert_eq!(
            ClientEvent::ResponseCreate {
                response: Some(ResponseParams {
                    instructions: Some("Greet the caller \"warmly\".".to_owned()),
                    ..ResponseParams::default()
                })
            }
            .to_json(),
            r#"{"type":"response.create","response":{"instructions":"Greet the caller \"warmly\"."}}"#
        );
    }

    #[test]
    fn a_system_message_is_a_conversation_item() {
        assert_eq!(
            ClientEvent::system_message("Greet the caller.".to_owned()).to_json(),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"system","content":[{"type":"input_text","text":"Greet the caller."}]}}"#
        );
    }

    #[test]
    fn tool_outputs_and_out_of_band_responses_have_the_ga_shape() {
        assert_eq!(
            ClientEvent::function_call_output("call_1".into(), r#"{"ok":true}"#.into()).to_json(),
            r#"{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_1","output":"{\"ok\":true}"}}"#
        );
        assert_eq!(
            ClientEvent::out_of_band_response("tool_filler", "Say: one moment.".into()).to_json(),
            r#"{"type":"response.create","response":{"instructions":"Say: one moment.","conversation":"none","input":[],"metadata":{"purpose":"tool_filler"}}}"#
        );
    }
}
