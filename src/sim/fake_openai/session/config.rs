//! The effective session: GA defaults for `session.created`, how a `session.update` is merged
//! into it, and what the fake derives from it (formats, VAD, transcription, modalities).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::Session;
use crate::sim::fake_openai::audio_format::AudioFormat;
use crate::sim::fake_openai::behaviour::{Failure, Mode, Trigger};
use crate::sim::fake_openai::vad::{self, TurnDetection, Vad};
use crate::sim::fake_openai::validate::Violation;

/// Session lifetime OpenAI enforces (for `expires_at`).
pub(super) const SESSION_LIFETIME_SECS: u64 = 3_600;

impl Session {
    /// `session.update`: merge, re-derive and answer `session.updated` with the full session
    /// (or the injected error instead).
    pub(super) fn on_session_update(&mut self, event: &Value, client_event_id: Option<&Value>) {
        let Some(update) = event.get("session").and_then(Value::as_object) else {
            return;
        };
        if let Some(model) = update.get("model").and_then(Value::as_str) {
            if model != self.model {
                let violation = Violation {
                    code: "invalid_value",
                    param: Some("session.model".into()),
                    message: format!(
                        "session.model cannot change: the socket was opened for '{}', not '{model}'",
                        self.model
                    ),
                };
                self.reject("session.update", vec![violation], client_event_id);
                return;
            }
        }
        if let Some(Failure::ErrorEvent {
            after: Trigger::OnSessionUpdate,
            ..
        }) = &self.behaviour.failure
        {
            if !self.error_fired {
                self.fire_error_event(client_event_id);
                return;
            }
        }
        merge_session(&mut self.session, update);
        self.apply_session();
        let session = self.session.clone();
        self.with_record(|record| record.session = session.clone());
        self.emit(json!({"type": "session.updated", "session": session}));
    }

    /// Re-derives what the fake acts on from the effective session.
    pub(super) fn apply_session(&mut self) {
        let input_format = AudioFormat::from_json(&self.session["audio"]["input"]["format"])
            .unwrap_or(AudioFormat::Pcm24k);
        self.output_format = AudioFormat::from_json(&self.session["audio"]["output"]["format"])
            .unwrap_or(AudioFormat::Pcm24k);
        self.transcription = self.session["audio"]["input"]["transcription"].is_object();
        self.text_only = self.session["output_modalities"]
            .as_array()
            .is_some_and(|modalities| modalities.len() == 1 && modalities[0] == "text");
        let turn_detection = if matches!(self.behaviour.mode, Mode::EchoStream { .. }) {
            None
        } else {
            TurnDetection::from_json(self.session["audio"]["input"].get("turn_detection"))
        };
        let rate_changed = input_format.rate_hz() != self.input_format.rate_hz();
        if rate_changed {
            // Re-base the timeline so earlier audio keeps its milliseconds.
            self.timeline_base_ms = self.appended_ms();
            self.samples_at_rate = 0;
            let now_ms = self.timeline_base_ms;
            if let Some(buffer) = &mut self.buffer {
                buffer.reset(now_ms, input_format.rate_hz());
            }
            self.uncommitted_from_ms = now_ms;
        }
        self.input_format = input_format;
        if rate_changed || turn_detection != self.turn_detection {
            self.turn_detection = turn_detection;
            let position = self.appended_ms();
            self.vad =
                turn_detection.map(|config| Vad::new(config, input_format.rate_hz(), position));
            self.pending_user_item = None;
        }
    }
}

/// The session object of `session.created`: OpenAI's GA defaults.
pub(super) fn default_session(id: &str, model: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    json!({
        "type": "realtime",
        "object": "realtime.session",
        "id": id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": null,
        "truncation": "auto",
        "prompt": null,
        "include": null,
        "expires_at": now + SESSION_LIFETIME_SECS,
        "audio": {
            "input": {
                "format": AudioFormat::Pcm24k.to_json(),
                "transcription": null,
                "noise_reduction": null,
                "turn_detection": server_vad_defaults()
            },
            "output": {
                "format": AudioFormat::Pcm24k.to_json(),
                "voice": "alloy",
                "speed": 1.0
            }
        }
    })
}

fn server_vad_defaults() -> Value {
    json!({
        "type": "server_vad",
        "threshold": vad::DEFAULT_THRESHOLD,
        "prefix_padding_ms": vad::DEFAULT_PREFIX_PADDING_MS,
        "silence_duration_ms": vad::DEFAULT_SILENCE_DURATION_MS,
        "idle_timeout_ms": null,
        "create_response": true,
        "interrupt_response": true
    })
}

/// Applies a validated `session.update` to the effective session: `audio.input` and
/// `audio.output` are merged field by field, every other field (including each format and
/// `turn_detection`) is replaced whole; a new `turn_detection` gets its type's defaults for the
/// fields it leaves out.
fn merge_session(session: &mut Value, update: &Map<String, Value>) {
    let Some(session) = session.as_object_mut() else {
        return;
    };
    for (key, value) in update {
        if key != "audio" {
            session.insert(key.clone(), value.clone());
            continue;
        }
        let Some(audio_update) = value.as_object() else {
            continue;
        };
        let Some(audio) = object_entry(session, "audio") else {
            continue;
        };
        for (direction, fields) in audio_update {
            let (Some(fields), Some(target)) = (fields.as_object(), object_entry(audio, direction))
            else {
                continue;
            };
            for (field, value) in fields {
                let value = if field == "turn_detection" {
                    with_turn_detection_defaults(value)
                } else {
                    value.clone()
                };
                target.insert(field.clone(), value);
            }
        }
    }
}

/// The object under `key` (created when absent); `None` if something else is there, which the
/// fake's own session never has.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    map.entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

fn with_turn_detection_defaults(value: &Value) -> Value {
    let Some(given) = value.as_object() else {
        return value.clone();
    };
    let mut full = match given.get("type").and_then(Value::as_str) {
        Some("semantic_vad") => json!({
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": true,
            "interrupt_response": true
        }),
        _ => server_vad_defaults(),
    };
    if let Some(full) = full.as_object_mut() {
        full.extend(
            given
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_audio_fields_and_replace_formats_whole() {
        let mut session = default_session("sess_1", "gpt-realtime");
        let update = json!({
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"},
                          "turn_detection": {"type": "server_vad", "silence_duration_ms": 200,
                                             "create_response": false, "interrupt_response": true}},
                "output": {"voice": "marin"}
            }
        });
        merge_session(&mut session, update.as_object().unwrap());
        assert_eq!(session["instructions"], "Be brief.");
        assert_eq!(
            session["audio"]["input"]["format"],
            json!({"type": "audio/pcmu"})
        );
        assert_eq!(
            session["audio"]["input"]["turn_detection"]["silence_duration_ms"],
            200
        );
        assert_eq!(
            session["audio"]["input"]["turn_detection"]["threshold"],
            0.5
        );
        assert_eq!(
            session["audio"]["input"]["turn_detection"]["create_response"],
            false
        );
        assert_eq!(session["audio"]["output"]["voice"], "marin");
        assert_eq!(session["audio"]["output"]["format"]["rate"], 24_000, "kept");
        let off = json!({"type": "realtime", "audio": {"input": {"turn_detection": null}}});
        merge_session(&mut session, off.as_object().unwrap());
        assert!(session["audio"]["input"]["turn_detection"].is_null());
    }
}
