//! Function calling (protocol section 3.6): which response makes the scripted calls, the
//! `function_call` items and their argument deltas, the `function_call_output`s the client
//! returns, and the continuation `response.create` that gets the batch's follow-up.
//!
//! Each response that emitted calls opens a batch. The batch expects one output per call and
//! then one plain `response.create`, answered with the scripted follow-up. Breaches are recorded
//! in `SessionRecord::tool_violations`: an output for an unknown `call_id` (also answered with
//! an `invalid_request_error`, as OpenAI does), a second output for one call, a continuation
//! before every output arrived (answered as a normal response), a second continuation for one
//! batch (idem), and a scripted call the session's tools or `tool_choice` would not allow. A
//! batch stays open for continuations until a user turn is committed after its follow-up.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::Session;
use super::items::Item;
use crate::sim::fake_openai::behaviour::ScriptedTurn;
use crate::sim::fake_openai::record::{
    FunctionCallOutputRecord, FunctionCallRecord, ToolBatchRecord,
};

/// Most fragments one call's arguments are streamed in.
const MAX_ARGUMENT_FRAGMENTS: usize = 8;

/// Characters per argument fragment before [`MAX_ARGUMENT_FRAGMENTS`] caps them.
const ARGUMENT_FRAGMENT_CHARS: usize = 16;

/// The calls of one response, waiting for outputs and a continuation. Index `i` of
/// `Session::batches` is index `i` of `SessionRecord::tool_batches`.
pub(super) struct ToolBatch {
    response_id: String,
    call_ids: Vec<String>,
    answered: Vec<bool>,
    follow_up: ScriptedTurn,
    continuations: u32,
}

impl Session {
    /// Records a problem with the function-calling flow.
    fn tool_violation(&self, problem: String) {
        self.with_record(|record| record.tool_violations.push(problem));
    }

    /// A user audio turn was committed: counts it, and closes a batch whose follow-up was
    /// already asked for (later `response.create`s answer the new turn).
    pub(super) fn user_turn_committed(&mut self) {
        self.user_turns_committed += 1;
        if let Some(batch) = self.open_batch {
            if self.batches[batch].continuations > 0 {
                self.open_batch = None;
            }
        }
    }

    /// For a default-conversation response being planned: the unused scripted entry for the
    /// user turn it answers, if any (used up here). Checks the calls against the effective
    /// tools (the response's `tools` override, else the session's) and `tool_choice`.
    pub(super) fn take_function_call(
        &mut self,
        overrides: Option<&Map<String, Value>>,
    ) -> Option<usize> {
        let turn = self.user_turns_committed;
        if turn == 0 || turn <= self.answered_turn {
            return None;
        }
        self.answered_turn = turn;
        let behaviour = Arc::clone(&self.behaviour);
        let entry = behaviour
            .function_calls
            .iter()
            .enumerate()
            .position(|(index, script)| {
                script.after_user_turn == turn && !self.function_calls_used.contains(&index)
            })?;
        self.function_calls_used.push(entry);

        let tools = overrides
            .and_then(|response| response.get("tools"))
            .unwrap_or(&self.session["tools"]);
        let choice = overrides
            .and_then(|response| response.get("tool_choice"))
            .unwrap_or(&self.session["tool_choice"]);
        let declared: Vec<&str> = tools
            .as_array()
            .map(|tools| {
                tools
                    .iter()
                    .filter(|tool| tool["type"] == "function")
                    .filter_map(|tool| tool["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let mut problems = Vec::new();
        for (name, _) in &behaviour.function_calls[entry].calls {
            if !declared.contains(&name.as_str()) {
                problems.push(format!(
                    "the model was scripted to call '{name}' after user turn {turn}, but the \
                     effective tools declare no such function (declared: {declared:?}); the \
                     real model could not call it"
                ));
            }
            let forced = (choice["type"] == "function")
                .then(|| choice["name"].as_str())
                .flatten();
            if forced.is_some_and(|forced| forced != name) {
                problems.push(format!(
                    "the model was scripted to call '{name}' but tool_choice forces '{}'",
                    forced.unwrap_or_default()
                ));
            }
        }
        if choice == "none" {
            problems.push(format!(
                "the model was scripted to call functions after user turn {turn}, but \
                 tool_choice is \"none\""
            ));
        }
        for problem in problems {
            self.tool_violation(problem);
        }
        Some(entry)
    }

    /// Emits the calls of scripted entry `entry` for response `response_id`, from output index
    /// `first_index` on, adds them to the conversation and opens their batch. Returns each
    /// call's `call_id` and final item.
    pub(super) fn emit_function_calls(
        &mut self,
        response_id: &str,
        entry: usize,
        first_index: usize,
    ) -> Vec<(String, Value)> {
        let behaviour = Arc::clone(&self.behaviour);
        let Some(script) = behaviour.function_calls.get(entry) else {
            return Vec::new();
        };
        let mut emitted = Vec::new();
        for (offset, (name, arguments)) in script.calls.iter().enumerate() {
            let output_index = first_index + offset;
            let item_id = self.ids.next("item");
            let call_id = self.ids.next("call");
            let previous_item_id = self.last_item_id();
            let mut item = json!({
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call",
                "status": "in_progress",
                "call_id": call_id,
                "name": name,
                "arguments": ""
            });
            self.emit(json!({
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": output_index,
                "item": item
            }));
            self.emit(json!({
                "type": "conversation.item.added",
                "previous_item_id": previous_item_id,
                "item": item
            }));
            for delta in argument_fragments(arguments) {
                self.emit(json!({
                    "type": "response.function_call_arguments.delta",
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": output_index,
                    "call_id": call_id,
                    "delta": delta
                }));
            }
            self.emit(json!({
                "type": "response.function_call_arguments.done",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "call_id": call_id,
                "name": name,
                "arguments": arguments
            }));
            item["arguments"] = json!(arguments);
            item["status"] = json!("completed");
            self.emit(json!({
                "type": "response.output_item.done",
                "response_id": response_id,
                "output_index": output_index,
                "item": item
            }));
            self.emit(json!({
                "type": "conversation.item.done",
                "previous_item_id": previous_item_id,
                "item": item
            }));
            self.items.push(Item {
                id: item_id.clone(),
                role: "function_call".into(),
                audio_ms: 0,
                json: item.clone(),
            });
            self.history.items += 1;
            self.history.text_chars += arguments.chars().count() as u64;
            let call = FunctionCallRecord {
                response_id: response_id.to_owned(),
                item_id,
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            };
            self.with_record(|record| record.function_calls.push(call));
            emitted.push((call_id, item));
        }
        if !emitted.is_empty() {
            let call_ids: Vec<String> = emitted.iter().map(|(id, _)| id.clone()).collect();
            self.batches.push(ToolBatch {
                response_id: response_id.to_owned(),
                call_ids: call_ids.clone(),
                answered: vec![false; call_ids.len()],
                follow_up: script.follow_up.clone(),
                continuations: 0,
            });
            self.open_batch = Some(self.batches.len() - 1);
            let batch = ToolBatchRecord {
                response_id: response_id.to_owned(),
                call_ids,
                outputs_received: 0,
                continuations: 0,
                early_continuations: 0,
                follow_up_response_id: None,
            };
            self.with_record(|record| record.tool_batches.push(batch));
        }
        emitted
    }

    /// A `function_call_output` item about to be created: refuses one whose `call_id` names
    /// no `function_call` item of the conversation (error and violation; `false`).
    pub(super) fn admit_function_call_output(
        &mut self,
        item: &Map<String, Value>,
        client_event_id: Option<&Value>,
        now: Instant,
    ) -> bool {
        let call_id = item["call_id"].as_str().unwrap_or_default().to_owned();
        let known = self
            .items
            .iter()
            .any(|known| known.json["type"] == "function_call" && known.json["call_id"] == call_id);
        if known {
            return true;
        }
        let output = item["output"].as_str().unwrap_or_default().to_owned();
        self.with_record(|record| {
            record.function_call_outputs.push(FunctionCallOutputRecord {
                call_id: call_id.clone(),
                output,
                item_id: String::new(),
                at: now,
            });
        });
        self.tool_violation(format!(
            "conversation.item.create: a function_call_output for call_id '{call_id}', which \
             no function_call in the conversation has"
        ));
        let message =
            format!("No tool call found for function call output with call_id {call_id}.");
        self.invalid("invalid_value", &message, "item.call_id", client_event_id);
        false
    }

    /// A `function_call_output` item was added: records it, flags a second output for one
    /// call, and counts it towards its batch.
    pub(super) fn on_function_call_output(&mut self, item: &Value, now: Instant) {
        let call_id = item["call_id"].as_str().unwrap_or_default().to_owned();
        let output = item["output"].as_str().unwrap_or_default().to_owned();
        let item_id = item["id"].as_str().unwrap_or_default().to_owned();
        let duplicate = !self.answered_calls.insert(call_id.clone());
        let record = FunctionCallOutputRecord {
            call_id: call_id.clone(),
            output,
            item_id,
            at: now,
        };
        self.with_record(|record_| record_.function_call_outputs.push(record));
        if duplicate {
            self.tool_violation(format!(
                "conversation.item.create: a second function_call_output for call_id \
                 '{call_id}' (exactly one output per call)"
            ));
            return;
        }
        let found = self
            .batches
            .iter_mut()
            .enumerate()
            .find_map(|(index, batch)| {
                let position = batch.call_ids.iter().position(|id| *id == call_id)?;
                batch.answered[position] = true;
                Some((index, batch.answered.iter().filter(|done| **done).count()))
            });
        if let Some((index, received)) = found {
            self.with_record(|record| {
                if let Some(batch) = record.tool_batches.get_mut(index) {
                    batch.outputs_received = received;
                }
            });
        }
    }

    /// A plain `response.create` with no response running: when a batch is open, counts it as
    /// that batch's continuation. Returns the batch and its follow-up when this is the first
    /// continuation after every output; otherwise records what is wrong and returns `None`
    /// (the response is then planned as usual).
    pub(super) fn continuation(&mut self) -> Option<(usize, ScriptedTurn)> {
        let index = self.open_batch?;
        let batch = &mut self.batches[index];
        let received = batch.answered.iter().filter(|done| **done).count();
        let expected = batch.call_ids.len();
        let response_id = batch.response_id.clone();
        if received < expected {
            self.with_record(|record| {
                if let Some(batch) = record.tool_batches.get_mut(index) {
                    batch.early_continuations += 1;
                }
                record.tool_violations.push(format!(
                    "response.create: continuation before all function outputs: {received} of \
                     {expected} outputs for the calls of {response_id} had arrived"
                ));
            });
            return None;
        }
        batch.continuations += 1;
        let continuations = batch.continuations;
        let follow_up = batch.follow_up.clone();
        self.with_record(|record| {
            if let Some(batch) = record.tool_batches.get_mut(index) {
                batch.continuations = continuations;
            }
            if continuations > 1 {
                record.tool_violations.push(format!(
                    "response.create: one response.create per batch: continuation \
                     {continuations} for the calls of {response_id}"
                ));
            }
        });
        (continuations == 1).then_some((index, follow_up))
    }

    /// The follow-up of batch `batch` started as response `response_id`.
    pub(super) fn follow_up_started(&mut self, batch: usize, response_id: &str) {
        self.with_record(|record| {
            if let Some(batch) = record.tool_batches.get_mut(batch) {
                batch.follow_up_response_id = Some(response_id.to_owned());
            }
        });
    }
}

/// `arguments` in at least two fragments (one when it has fewer than two characters), split
/// on character boundaries.
fn argument_fragments(arguments: &str) -> Vec<&str> {
    let chars = arguments.chars().count();
    if chars < 2 {
        return vec![arguments];
    }
    let pieces = chars
        .div_ceil(ARGUMENT_FRAGMENT_CHARS)
        .clamp(2, MAX_ARGUMENT_FRAGMENTS);
    let per_piece = chars.div_ceil(pieces);
    let mut fragments = Vec::with_capacity(pieces);
    let mut rest = arguments;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .nth(per_piece)
            .map_or(rest.len(), |(index, _)| index);
        fragments.push(&rest[..end]);
        rest = &rest[end..];
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_stream_in_at_least_two_fragments_that_rejoin_exactly() {
        for arguments in ["{}", "{\"order_id\":\"A-17\"}", "{\"city\":\"Zürich\"}"] {
            let fragments = argument_fragments(arguments);
            assert!(fragments.len() >= 2, "{fragments:?}");
            assert_eq!(fragments.concat(), arguments);
        }
        let long = format!("{{\"text\":\"{}\"}}", "x".repeat(500));
        let fragments = argument_fragments(&long);
        assert_eq!(fragments.len(), MAX_ARGUMENT_FRAGMENTS);
        assert_eq!(fragments.concat(), long);
        assert_eq!(argument_fragments(""), [""]);
    }
}
