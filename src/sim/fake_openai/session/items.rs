//! Conversation items: the messages and function calls the fake keeps (ids, roles and assistant
//! audio sent), `conversation.item.create`/`.delete`/`.retrieve`, and `.truncate` with OpenAI's
//! checks. A created `function_call_output` must answer a `function_call` of the conversation
//! (see `tools`).

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::Session;

/// A conversation item the fake knows about.
pub(super) struct Item {
    pub(super) id: String,
    /// `user`, `assistant`, `system` or the item type for non-messages.
    pub(super) role: String,
    /// Assistant audio sent (and not truncated away), in ms.
    pub(super) audio_ms: u64,
    /// The item as `conversation.item.retrieve` returns it.
    pub(super) json: Value,
}

impl Session {
    /// The id of the newest item (`previous_item_id` of the next one), or null.
    pub(super) fn last_item_id(&self) -> Value {
        self.items
            .last()
            .map_or(Value::Null, |item| Value::String(item.id.clone()))
    }

    /// `conversation.item.create`: the item (with an id) is added and done at once.
    pub(super) fn on_item_create(
        &mut self,
        event: &Value,
        client_event_id: Option<&Value>,
        now: Instant,
    ) {
        let Some(mut item) = event.get("item").and_then(Value::as_object).cloned() else {
            return;
        };
        let previous = event.get("previous_item_id").and_then(Value::as_str);
        if let Some(previous) = previous {
            if previous != "root" && !self.items.iter().any(|known| known.id == previous) {
                self.invalid(
                    "invalid_value",
                    &format!("Previous item with id '{previous}' not found."),
                    "previous_item_id",
                    client_event_id,
                );
                return;
            }
        }
        let output = item.get("type").and_then(Value::as_str) == Some("function_call_output");
        if output && !self.admit_function_call_output(&item, client_event_id, now) {
            return;
        }
        let id = match item.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => self.ids.next("item"),
        };
        item.insert("id".into(), Value::String(id.clone()));
        item.insert("object".into(), json!("realtime.item"));
        item.insert("status".into(), json!("completed"));
        let role = item
            .get("role")
            .or_else(|| item.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_owned();
        let text_chars = text_chars(&item);
        let item = Value::Object(item);
        let previous_item_id = previous.map_or_else(|| self.last_item_id(), |p| json!(p));
        self.emit(json!({
            "type": "conversation.item.added",
            "previous_item_id": previous_item_id,
            "item": item
        }));
        self.emit(json!({"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": item}));
        if output {
            self.on_function_call_output(&item, now);
        }
        self.items.push(Item {
            id,
            role,
            audio_ms: 0,
            json: item,
        });
        self.history.items += 1;
        self.history.text_chars += text_chars;
    }

    /// `conversation.item.delete`.
    pub(super) fn on_item_delete(&mut self, event: &Value, client_event_id: Option<&Value>) {
        let item_id = event["item_id"].as_str().unwrap_or_default().to_owned();
        match self.items.iter().position(|item| item.id == item_id) {
            Some(index) => {
                self.items.remove(index);
                self.emit(json!({"type": "conversation.item.deleted", "item_id": item_id}));
            }
            None => self.invalid(
                "invalid_value",
                &format!("Item with item_id '{item_id}' not found."),
                "item_id",
                client_event_id,
            ),
        }
    }

    /// `conversation.item.retrieve` (items never carry audio bytes).
    pub(super) fn on_item_retrieve(&mut self, event: &Value, client_event_id: Option<&Value>) {
        let item_id = event["item_id"].as_str().unwrap_or_default();
        match self.items.iter().find(|item| item.id == item_id) {
            Some(item) => {
                let item = item.json.clone();
                self.emit(json!({"type": "conversation.item.retrieved", "item": item}));
            }
            None => {
                let message = format!("Item with item_id '{item_id}' not found.");
                self.invalid("invalid_value", &message, "item_id", client_event_id);
            }
        }
    }

    /// `conversation.item.truncate`: only assistant items with audio, content part 0, and no
    /// further than the audio sent (OpenAI's "already shorter" error otherwise).
    pub(super) fn on_truncate(&mut self, event: &Value, client_event_id: Option<&Value>) {
        self.with_record(|record| record.truncates.push(event.clone()));
        let item_id = event["item_id"].as_str().unwrap_or_default().to_owned();
        let content_index = event["content_index"].as_u64().unwrap_or_default();
        let audio_end_ms = event["audio_end_ms"].as_u64().unwrap_or_default();
        let active_item = self
            .response
            .as_ref()
            .and_then(|response| response.item_index);
        let Some((index, item)) = self
            .items
            .iter_mut()
            .enumerate()
            .find(|(_, item)| item.id == item_id)
            .filter(|(_, item)| item.role == "assistant" && item.audio_ms > 0)
        else {
            self.invalid(
                "invalid_value",
                &format!(
                    "Only model output audio messages can be truncated ('{item_id}' is not an \
                     assistant message with audio)."
                ),
                "item_id",
                client_event_id,
            );
            return;
        };
        if content_index != 0 {
            self.invalid(
                "invalid_value",
                &format!(
                    "Content index {content_index} is not an audio content part of '{item_id}'."
                ),
                "content_index",
                client_event_id,
            );
            return;
        }
        let available_ms = item.audio_ms;
        if audio_end_ms > available_ms {
            self.invalid(
                "invalid_value",
                &format!(
                    "Audio content of {available_ms}ms is already shorter than {audio_end_ms}ms"
                ),
                "audio_end_ms",
                client_event_id,
            );
            return;
        }
        item.audio_ms = audio_end_ms;
        // The server deletes the transcript of a truncated item.
        if let Some(part) = item.json.pointer_mut("/content/0") {
            part["transcript"] = json!("");
        }
        if active_item != Some(index) {
            // A finished response's audio is already in the history; the rest is forgotten.
            self.history.assistant_audio_ms = self
                .history
                .assistant_audio_ms
                .saturating_sub(available_ms - audio_end_ms);
        }
        self.emit(json!({
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms
        }));
    }
}

/// Characters of text in an item (its text parts, transcripts, arguments and outputs).
pub(super) fn text_chars(item: &Map<String, Value>) -> u64 {
    let mut chars = 0;
    for key in ["arguments", "output"] {
        if let Some(text) = item.get(key).and_then(Value::as_str) {
            chars += text.chars().count() as u64;
        }
    }
    if let Some(content) = item.get("content").and_then(Value::as_array) {
        for part in content {
            for key in ["text", "transcript"] {
                if let Some(text) = part.get(key).and_then(Value::as_str) {
                    chars += text.chars().count() as u64;
                }
            }
        }
    }
    chars
}
