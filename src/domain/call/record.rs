//! What a call log records besides its status: the transcript, the AI's usage and our
//! measurements, what went wrong, the facts a call starts with, and the batches of progress a
//! live call adds.

use bson::DateTime;
use serde::{Deserialize, Serialize};

use super::CallType;
use crate::domain::assistant::tools::ToolKind;
use crate::domain::ids::{AssistantId, TenantId};

/// The facts a call log starts with; the status fields come from its first reports.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub user_id: TenantId,
    pub assistant_id: Option<AssistantId>,
    pub frejun_call_id: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub call_type: CallType,
}

/// Who spoke a transcript turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptRole {
    /// The caller.
    User,
    /// The AI assistant.
    Assistant,
    /// A tool the assistant called; the turn's `tool` holds the details.
    Tool,
}

impl TranscriptRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptRole::User => "user",
            TranscriptRole::Assistant => "assistant",
            TranscriptRole::Tool => "tool",
        }
    }
}

/// One turn of the conversation, as the call log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    pub role: TranscriptRole,
    pub text: String,
    pub at: DateTime,
    pub item_id: Option<String>,
    /// The caller spoke over this assistant turn and it was cut short.
    #[serde(default)]
    pub interrupted: bool,
    /// For a `tool` turn: the call, its arguments, result and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolCallRecord>,
}

/// One tool call the assistant made, as the call log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// OpenAI's `call_id` for it.
    pub call_id: String,
    pub name: String,
    /// `None` when the model named a tool the assistant does not have.
    pub kind: Option<ToolKind>,
    /// The arguments as the model wrote them (truncated to [`ToolCallRecord::MAX_TEXT_CHARS`]).
    pub arguments: String,
    /// What the model was given as the result (truncated likewise).
    pub result: String,
    pub outcome: ToolOutcome,
    /// A stable code for an outcome other than `ok`, e.g. `http_status`, `refused_address`.
    pub error_code: Option<String>,
    /// From the model's call to the result.
    pub latency_ms: u64,
    pub started_at: DateTime,
    /// The tenant endpoint's answer, for `http` tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

impl ToolCallRecord {
    /// Longest arguments or result kept in the call log.
    pub const MAX_TEXT_CHARS: usize = 2_000;
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// It did what was asked.
    Ok,
    /// It failed (the tenant's endpoint answered an error, FreJun refused, bad arguments…);
    /// the model was told why.
    Error,
    /// It did not finish within its time limit.
    Timeout,
    /// The caller spoke and the tool was configured to stop (`cancel_on_barge_in`), or the
    /// call ended first.
    Cancelled,
    /// voxbridge did not run it: unknown tool, too many at once, the call was ending, or the
    /// response that asked for it did not complete.
    Refused,
}

impl ToolOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::Error => "error",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Cancelled => "cancelled",
            ToolOutcome::Refused => "refused",
        }
    }
}

/// The AI's token usage over a whole call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_audio_tokens: u64,
    pub output_audio_tokens: u64,
    pub input_text_tokens: u64,
    pub output_text_tokens: u64,
    /// Input tokens served from OpenAI's cache (a subset of the input tokens, billed lower).
    #[serde(default)]
    pub input_cached_tokens: u64,
    /// The text and audio shares of the cached tokens, as OpenAI split them
    /// (`cached_tokens_details`); cached tokens reported without a split are in neither.
    #[serde(default)]
    pub input_cached_text_tokens: u64,
    #[serde(default)]
    pub input_cached_audio_tokens: u64,
}

/// An event about a call that changes nothing voxbridge knows how to read (a webhook event
/// name it does not map, such as a newer FreJun version's): kept on the call so nothing FreJun
/// said is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherEvent {
    /// The event name as received (bounded).
    pub event: String,
    /// When it happened (FreJun's time when it sent one), the earliest if repeated.
    pub at: bson::DateTime,
}

/// voxbridge's hang-up of a call at FreJun (`POST /voice/calls/{id}/hangup`), for a call it
/// ended itself: when it was asked for, with what reason, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HangupRecord {
    pub requested_at: bson::DateTime,
    /// The `reason` sent, e.g. `MAX_DURATION`.
    pub reason: String,
    pub result: HangupResult,
    /// Requests sent (retries after 5xx answers and timeouts included); 0 when none could be.
    pub attempts: u32,
    /// What FreJun (or the lack of a key) said, for anything but `hung_up`.
    #[serde(default)]
    pub detail: Option<String>,
}

/// How a hang-up at FreJun went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupResult {
    /// FreJun accepted it (2xx).
    HungUp,
    /// FreJun says the call is already over (404, or 409 `call_not_live`).
    AlreadyEnded,
    /// The tenant has no FreJun API key stored: voxbridge cannot hang up at FreJun.
    NoFrejunKey,
    /// FreJun never told us its id for the call, so there is nothing to hang up.
    NoFrejunCallId,
    /// FreJun refused it, or kept failing after the retries.
    Failed,
}

impl HangupResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupResult::HungUp => "hung_up",
            HangupResult::AlreadyEnded => "already_ended",
            HangupResult::NoFrejunKey => "no_frejun_key",
            HangupResult::NoFrejunCallId => "no_frejun_call_id",
            HangupResult::Failed => "failed",
        }
    }
}

/// Latency and audio figures the bridge measured over a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallMetrics {
    pub first_response_ms: Option<u64>,
    pub barge_ins: u32,
    pub audio_in_ms: u64,
    pub audio_out_ms: u64,
    pub frame_latency_p50_us: Option<u64>,
    pub frame_latency_p99_us: Option<u64>,
    /// Responses OpenAI ended as `failed` (the call went on).
    #[serde(default)]
    pub failed_responses: u32,
    /// The last such failure: OpenAI's code and its own explanation.
    #[serde(default)]
    pub last_response_error: Option<CallError>,
    /// Tool calls the model made, and how many did not end `ok`.
    #[serde(default)]
    pub tool_calls: u32,
    #[serde(default)]
    pub tool_errors: u32,
}

/// What went wrong, for a failed call: a stable code and a message safe to show the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallError {
    pub code: String,
    pub message: String,
}

/// One batch of a live call's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallProgress {
    /// Turns not yet written, which belong at `first_turn_index` onwards.
    pub new_turns: Vec<TranscriptTurn>,
    pub first_turn_index: usize,
    /// Indexes of turns written earlier that have since been cut short by the caller.
    pub interrupted_turns: Vec<usize>,
    /// Running totals for the whole call (not deltas).
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    pub metrics: Option<CallMetrics>,
}

impl CallProgress {
    pub(crate) fn is_empty(&self) -> bool {
        self.new_turns.is_empty()
            && self.interrupted_turns.is_empty()
            && self.usage.is_none()
            && self.cost_usd.is_none()
            && self.metrics.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_roles_store_by_name() {
        for role in [TranscriptRole::User, TranscriptRole::Assistant] {
            assert_eq!(
                bson::to_bson(&role).unwrap(),
                bson::Bson::String(role.as_str().to_owned())
            );
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(serde_json::from_str::<TranscriptRole>(&json).unwrap(), role);
        }
    }
}
