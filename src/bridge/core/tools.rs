//! The model's tool calls, as decisions: which calls to run, when to hand their results back,
//! when to ask the model to go on, when to fill a silence, and what to cancel when the caller
//! speaks. Running a tool is I/O and happens outside the session loop (`bridge::tool_runner`): the
//! core emits a [`ToolRequest`] in [`Effects::tool_calls`] and later receives its
//! [`ToolResult`].
//!
//! The rules (docs/protocols.md §2.8, "Function calling"):
//! - A call runs only when the response that made it completed; calls are deduplicated by
//!   `call_id`, and every call gets exactly one `function_call_output`, whatever happens.
//! - The model is asked to go on (`response.create`) once per batch: when no tool of it is
//!   still running and no response is active. A response that starts after an output was
//!   added has seen it, so nothing more is sent for it (this is what avoids
//!   `conversation_already_has_active_response`).
//! - After `end_call` the model is never asked to go on.
//! - A barge-in keeps running tools (their results arrive later) unless a tool is configured
//!   to be cancelled by one; a cancelled call is answered `{"cancelled":true}` at once.
//! - A tool that keeps the caller waiting past the filler delay, with nothing playing, gets
//!   the assistant's filler phrase, spoken by the model out of band.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bson::DateTime;

use super::{BridgeCore, Effects, Ending};
use crate::domain::assistant::tools::{Tool, ToolKind};
use crate::domain::call::EndReason;
use crate::domain::call::record::{ToolCallRecord, ToolOutcome, TranscriptRole, TranscriptTurn};
use crate::providers::realtime::{FunctionCall, ResponseStatus};
use crate::telemetry::metrics;

/// `metadata.purpose` of the filler's out-of-band response.
pub(crate) const FILLER_PURPOSE: &str = "tool_filler";

/// How the assistant's tools behave during a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsConfig {
    /// The assistant's function tools by name: their kind and whether a barge-in cancels them.
    pub tools: HashMap<String, (ToolKind, bool)>,
    /// What the model says while a slow tool runs; `None`: nothing.
    pub filler: Option<String>,
    /// How long the caller may wait in silence before the filler.
    pub filler_delay: Duration,
    /// Tool calls of one call that may run at once; more are refused.
    pub max_in_flight: usize,
}

impl ToolsConfig {
    /// The function tools of `tools` (MCP tools are OpenAI's to run).
    pub fn new(
        tools: &[Tool],
        filler: Option<String>,
        filler_delay: Duration,
        max_in_flight: usize,
    ) -> Self {
        Self {
            tools: tools
                .iter()
                .filter(|tool| tool.kind() != ToolKind::Mcp)
                .map(|tool| {
                    (
                        tool.name().to_owned(),
                        (tool.kind(), tool.cancel_on_barge_in()),
                    )
                })
                .collect(),
            filler,
            filler_delay,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// No tools at all.
    pub fn none() -> Self {
        Self::new(&[], None, Duration::from_millis(1_200), 4)
    }
}

/// A tool call for the runner to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub call_id: String,
    pub name: String,
    pub kind: ToolKind,
    /// The arguments as the model wrote them.
    pub arguments: String,
    /// When the caller will have heard everything the assistant said so far: `end_call` and
    /// `transfer_call` wait for it before they act.
    pub speech_heard_at: Instant,
}

/// What became of a tool call, from the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// The `function_call_output` text the model gets.
    pub output: String,
    pub outcome: ToolOutcome,
    pub error_code: Option<String>,
    pub http_status: Option<u16>,
    /// What the result does to the call itself.
    pub effect: ToolEffect,
}

/// What a finished tool does to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolEffect {
    #[default]
    None,
    /// `end_call` finished waiting for the goodbye: the call ends now.
    EndCall,
    /// FreJun took the call elsewhere: it leaves voxbridge when FreJun closes the stream.
    Transferred,
}

/// A call that is running.
#[derive(Debug, Clone)]
struct Running {
    name: String,
    /// `None` for a tool the assistant does not have.
    kind: Option<ToolKind>,
    arguments: String,
    started: Instant,
    started_at: DateTime,
    cancel_on_barge_in: bool,
}

/// The core's tool state.
#[derive(Debug, Default)]
pub(super) struct Tools {
    seen: HashSet<String>,
    running: HashMap<String, Running>,
    /// Outputs were added that no response has seen yet.
    unanswered: bool,
    /// When the filler is due, while tools run.
    filler_due: Option<Instant>,
    /// The filler's response, while it speaks.
    filler_response: Option<String>,
    /// `end_call` was called: no more continuations, no new tools.
    ending: bool,
    /// A transfer succeeded: the call has left voxbridge.
    transferred: bool,
    calls: u32,
    errors: u32,
}

/// A shortened copy of `text` for the call log.
fn clip(text: &str) -> String {
    let max = ToolCallRecord::MAX_TEXT_CHARS;
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A JSON error output, e.g. `{"error":"unknown_tool","message":"…"}`.
pub(crate) fn error_output(code: &str, message: &str) -> String {
    serde_json::json!({"error": code, "message": message}).to_string()
}

impl BridgeCore {
    /// The response that made these calls is done: start the ones that may run, answer the rest.
    pub(super) fn function_calls(
        &mut self,
        calls: Vec<FunctionCall>,
        status: &ResponseStatus,
        now: Instant,
        fx: &mut Effects,
    ) {
        if calls.is_empty() {
            return;
        }
        let completed = *status == ResponseStatus::Completed;
        let mut started = false;
        for call in calls {
            if call.call_id.is_empty() || !self.tools.seen.insert(call.call_id.clone()) {
                continue;
            }
            let configured = self.config.tools.tools.get(&call.name).copied();
            let refusal = if !completed {
                Some((
                    "response_not_completed",
                    "not run: the response that asked for it did not complete",
                ))
            } else if self.tools.ending {
                Some(("call_ending", "not run: the call is ending"))
            } else if configured.is_none() {
                Some(("unknown_tool", "this assistant has no such tool"))
            } else if self.tools.running.len() >= self.config.tools.max_in_flight {
                Some(("too_many_tools", "too many tool calls are already running"))
            } else {
                None
            };
            let kind = configured.map(|(kind, _)| kind);
            if let Some((code, message)) = refusal {
                let output = error_output(code, message);
                let refused = Running {
                    name: call.name.clone(),
                    kind,
                    arguments: call.arguments.clone(),
                    started: now,
                    started_at: DateTime::now(),
                    cancel_on_barge_in: false,
                };
                self.record_tool(
                    &call.call_id,
                    &refused,
                    Finished::new(&output, ToolOutcome::Refused, Some(code)),
                    now,
                );
                self.protocol
                    .tool_output(call.call_id, output, true, &mut fx.to_ai);
                // Only a completed response's refusals need the model to go on; after a
                // cancelled or failed one the caller's turn (or nothing) comes next.
                self.tools.unanswered |= completed && !self.tools.ending;
                continue;
            }
            let (kind, cancel_on_barge_in) = configured.expect("checked above");
            if kind == ToolKind::EndCall {
                // From now on nothing new is started and the model is not asked to go on.
                self.tools.ending = true;
            }
            self.tools.running.insert(
                call.call_id.clone(),
                Running {
                    name: call.name.clone(),
                    kind: Some(kind),
                    arguments: call.arguments.clone(),
                    started: now,
                    started_at: DateTime::now(),
                    cancel_on_barge_in,
                },
            );
            fx.tool_calls.push(ToolRequest {
                call_id: call.call_id,
                name: call.name,
                kind,
                arguments: call.arguments,
                speech_heard_at: self.speech_heard_at(now),
            });
            started = true;
        }
        if started && self.config.tools.filler.is_some() && self.tools.filler_due.is_none() {
            self.tools.filler_due =
                Some(self.speech_heard_at(now) + self.config.tools.filler_delay);
        }
        self.continue_after_tools(fx);
    }

    /// When the caller will have heard everything sent so far.
    fn speech_heard_at(&self, now: Instant) -> Instant {
        self.playback
            .played_out_at()
            .filter(|end| *end > now)
            .unwrap_or(now)
            + self.config.playout_latency
    }

    /// A tool finished. Its output goes to the model (unless the call was already answered,
    /// as a cancelled one is); the call may end or leave voxbridge.
    pub(crate) fn tool_finished(
        &mut self,
        result: ToolResult,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Ending> {
        let running = self.tools.running.remove(&result.call_id)?;
        self.record_tool(
            &result.call_id,
            &running,
            Finished {
                result: &result.output,
                outcome: result.outcome,
                error_code: result.error_code.as_deref(),
                http_status: result.http_status,
            },
            now,
        );
        match result.effect {
            ToolEffect::EndCall => return Some(Ending::new(EndReason::AssistantEndedCall)),
            ToolEffect::Transferred => {
                // The caller is on their way elsewhere: say nothing more.
                self.tools.transferred = true;
                self.tools.ending = true;
                return None;
            }
            ToolEffect::None => {}
        }
        let is_error = result.outcome != ToolOutcome::Ok;
        self.protocol
            .tool_output(result.call_id, result.output, is_error, &mut fx.to_ai);
        if !self.tools.ending {
            self.tools.unanswered = true;
        }
        if self.tools.running.is_empty() {
            self.tools.filler_due = None;
        }
        self.continue_after_tools(fx);
        None
    }

    /// Asks the model to go on with the tools' results, when the batch is complete and no
    /// response is running.
    pub(super) fn continue_after_tools(&mut self, fx: &mut Effects) {
        if self.tools.unanswered
            && !self.tools.ending
            && self.tools.running.is_empty()
            && self.active_response.is_none()
        {
            self.tools.unanswered = false;
            self.protocol.continue_after_tools(&mut fx.to_ai);
        }
    }

    /// A response started. Unless it is our filler, it sees every output added before it.
    /// Answers whether it is the filler.
    pub(super) fn tools_response_created(
        &mut self,
        response_id: &str,
        purpose: Option<&str>,
    ) -> bool {
        if purpose == Some(FILLER_PURPOSE) {
            self.tools.filler_response = Some(response_id.to_owned());
            return true;
        }
        self.tools.unanswered = false;
        false
    }

    /// A response ended; if it was the filler, forget it.
    pub(super) fn tools_response_done(&mut self, response_id: &str) {
        if self.tools.filler_response.as_deref() == Some(response_id) {
            self.tools.filler_response = None;
        }
    }

    /// The caller spoke over the assistant: tools configured for it are cancelled and
    /// answered at once; the others keep running.
    pub(super) fn tools_barge_in(&mut self, now: Instant, fx: &mut Effects) {
        let cancelled: Vec<String> = self
            .tools
            .running
            .iter()
            .filter(|(_, running)| running.cancel_on_barge_in)
            .map(|(call_id, _)| call_id.clone())
            .collect();
        for call_id in cancelled {
            let running = self.tools.running.remove(&call_id).expect("listed above");
            let output = serde_json::json!({
                "cancelled": true,
                "reason": "the caller started speaking",
            })
            .to_string();
            self.record_tool(
                &call_id,
                &running,
                Finished::new(&output, ToolOutcome::Cancelled, Some("barge_in")),
                now,
            );
            self.protocol
                .tool_output(call_id.clone(), output, true, &mut fx.to_ai);
            fx.cancel_tools.push(call_id);
        }
        if self.tools.running.is_empty() {
            self.tools.filler_due = None;
        }
    }

    /// When the runner should call [`BridgeCore::tool_timer`] next.
    pub(crate) fn next_tool_timer(&self) -> Option<Instant> {
        self.tools.filler_due
    }

    /// The filler timer fired: speak the filler if the caller is still waiting in silence;
    /// if something is playing or being generated, look again a little later.
    pub(crate) fn tool_timer(&mut self, now: Instant, fx: &mut Effects) {
        let Some(due) = self.tools.filler_due else {
            return;
        };
        if now < due {
            return;
        }
        if self.tools.running.is_empty() || self.tools.ending {
            self.tools.filler_due = None;
            return;
        }
        if self.active_response.is_some() || self.playback.has_unplayed(now) {
            self.tools.filler_due = Some(self.speech_heard_at(now) + Duration::from_millis(250));
            return;
        }
        // Once per wait: a second filler would sound like a stuck recording.
        self.tools.filler_due = None;
        if let Some(filler) = &self.config.tools.filler {
            let instruction = format!(
                "A tool is still running and the caller is waiting. Say exactly this, and \
                 nothing else: \"{filler}\""
            );
            self.protocol
                .say_aside(FILLER_PURPOSE, instruction, &mut fx.to_ai);
        }
    }

    /// The AI ended the conversation: no new tool calls start.
    pub(super) fn stop_starting_tools(&mut self) {
        self.tools.ending = true;
    }

    /// Whether a transfer took the call away from voxbridge.
    pub(crate) fn transferred(&self) -> bool {
        self.tools.transferred
    }

    /// The tool calls still running when the call ends, recorded as cancelled.
    pub(crate) fn cancel_running_tools(&mut self, now: Instant) {
        let running: Vec<(String, Running)> = self.tools.running.drain().collect();
        for (call_id, running) in running {
            self.record_tool(
                &call_id,
                &running,
                Finished::new("", ToolOutcome::Cancelled, Some("call_ended")),
                now,
            );
        }
    }

    pub(super) fn tool_counts(&self) -> (u32, u32) {
        (self.tools.calls, self.tools.errors)
    }

    fn record_tool(&mut self, call_id: &str, call: &Running, finished: Finished<'_>, now: Instant) {
        self.tools.calls += 1;
        metrics::tool_call(finished.outcome.as_str());
        if finished.outcome != ToolOutcome::Ok {
            self.tools.errors += 1;
        }
        self.record_dirty = true;
        self.transcript.push(TranscriptTurn {
            role: TranscriptRole::Tool,
            text: format!("{} → {}", call.name, finished.outcome.as_str()),
            at: DateTime::now(),
            item_id: None,
            interrupted: false,
            tool: Some(ToolCallRecord {
                call_id: call_id.to_owned(),
                name: call.name.clone(),
                kind: call.kind,
                arguments: clip(&call.arguments),
                result: clip(finished.result),
                outcome: finished.outcome,
                error_code: finished.error_code.map(str::to_owned),
                latency_ms: now.saturating_duration_since(call.started).as_millis() as u64,
                started_at: call.started_at,
                http_status: finished.http_status,
            }),
        });
    }
}

/// How a call ended, for its record.
struct Finished<'a> {
    result: &'a str,
    outcome: ToolOutcome,
    error_code: Option<&'a str>,
    http_status: Option<u16>,
}

impl<'a> Finished<'a> {
    fn new(result: &'a str, outcome: ToolOutcome, error_code: Option<&'a str>) -> Self {
        Self {
            result,
            outcome,
            error_code,
            http_status: None,
        }
    }
}
