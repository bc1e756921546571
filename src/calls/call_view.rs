//! A call as the API shows it, whole (`GET /api/calls/{id}`) or as a list item, and as the
//! `call.ended` webhook event carries it: one shape for both, so an event and a read of the
//! same call never disagree. Built from the stored record, so a stored field reaches the
//! outside only when a view names it. (`http::views` builds the live-stream part from the
//! bridge's registry.)

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use serde_json::Value;

use crate::domain::analysis::{AnalysisError, AnalysisStatus, CallAnalysis, Sentiment};
use crate::domain::assistant::tools::ToolKind;
use crate::domain::call::record::{
    CallError, CallMetrics, HangupRecord, ToolCallRecord, TranscriptTurn, Usage,
};
use crate::domain::call::status::StatusEvent;
use crate::domain::call::{CallStatus, CallType, EndReason};
use crate::domain::text_ai::{TextProvider, TextUsage};
use crate::storage::call_logs::CallLogRecord;

fn time(value: bson::DateTime) -> DateTime<Utc> {
    value.to_chrono()
}

fn id(value: impl fmt::Display) -> String {
    value.to_string()
}

/// A call in a list: everything but the transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallSummary {
    pub id: String,
    /// The tenant's id.
    pub user_id: String,
    pub assistant_id: Option<String>,
    /// FreJun's id for the call; `null` until FreJun names an outbound call.
    pub frejun_call_id: Option<String>,
    /// E.164.
    pub from_number: Option<String>,
    /// E.164.
    pub to_number: Option<String>,
    pub call_type: CallType,
    pub call_status: CallStatus,
    /// The telephony platform, `frejun`.
    pub platform: String,
    pub started_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration: Option<f64>,
    /// Why the call ended; `null` while it is live.
    pub end_reason: Option<EndReason>,
    /// Estimated cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Where the post-call analysis stands; `null` when none was asked for.
    pub analysis_status: Option<AnalysisStatus>,
    /// The analysis' verdict, once done.
    pub analysis_success: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The media bridge holding the call right now, on whichever instance: set while the call
    /// has not ended and the bridge's lease runs (it is renewed every third of
    /// `bridge.slot_lease_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridged: Option<BridgedView>,
    /// The media stream, for a call this instance is bridging right now (only in
    /// `GET /api/calls/active`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<LiveStreamView>,
}

/// A live call's media bridge, as any instance sees it in the call log.
#[derive(Debug, Serialize, ToSchema)]
pub struct BridgedView {
    /// When the media stream was admitted.
    pub since: DateTime<Utc>,
    /// Until when the bridging instance's lease says it is alive; past it the call is
    /// presumed lost and closed by the reaper (`instance_lost`).
    pub lease_until: DateTime<Utc>,
}

impl BridgedView {
    /// The call's bridge, if it is live at `now`.
    fn of(call: &CallLogRecord, now: bson::DateTime) -> Option<Self> {
        call.owner
            .as_ref()
            .filter(|owner| owner.is_alive(now) && !call.call_status.is_terminal())
            .map(|owner| Self {
                since: time(owner.started_at),
                lease_until: time(owner.lease_until),
            })
    }
}

impl From<&CallLogRecord> for CallSummary {
    fn from(call: &CallLogRecord) -> Self {
        Self {
            id: id(call.id),
            user_id: id(call.user_id),
            assistant_id: call.assistant_id.map(id),
            frejun_call_id: call.frejun_call_id.clone(),
            from_number: call.from_number.clone(),
            to_number: call.to_number.clone(),
            call_type: call.call_type,
            call_status: call.call_status,
            platform: call.platform.clone(),
            started_at: call.started_at.map(time),
            answered_at: call.answered_at.map(time),
            ended_at: call.ended_at.map(time),
            duration: call.duration,
            end_reason: call.end_reason,
            cost_usd: call.cost_usd,
            analysis_status: call.analysis.as_ref().map(|analysis| analysis.status),
            analysis_success: call.analysis.as_ref().and_then(|analysis| analysis.success),
            created_at: time(call.created_at),
            updated_at: time(call.updated_at),
            bridged: BridgedView::of(call, bson::DateTime::now()),
            stream: None,
        }
    }
}

/// One status change of a call.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEventView {
    pub status: CallStatus,
    pub at: DateTime<Utc>,
    /// What reported it: `flow`, `webhook`, `api`, `reaper` or `bridge`.
    pub source: Option<String>,
    /// The reporter's name for the event, e.g. FreJun's `call.answered`.
    pub event: Option<String>,
}

impl From<&StatusEvent> for StatusEventView {
    fn from(event: &StatusEvent) -> Self {
        Self {
            status: event.status,
            at: time(event.at),
            source: event.source.map(|source| source.as_str().to_owned()),
            event: event.event.clone(),
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptTurnView {
    /// `user` (the caller), `assistant`, or `tool` (a tool the assistant called).
    pub role: String,
    /// What was said; for a tool turn, `<name> → <outcome>`.
    pub text: String,
    pub at: DateTime<Utc>,
    /// The OpenAI Realtime item id.
    pub item_id: Option<String>,
    /// The caller spoke over this assistant turn and it was cut short.
    pub interrupted: bool,
    /// For a `tool` turn: the call's details; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolCallView>,
}

/// One tool call the assistant made.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ToolCall)]
pub struct ToolCallView {
    /// OpenAI's id for the call.
    pub call_id: String,
    pub name: String,
    /// `end_call`, `transfer_call`, `send_dtmf` or `http`; `null` for a tool the assistant
    /// does not have.
    pub kind: Option<ToolKind>,
    /// The arguments as the model wrote them (at most 2000 characters).
    pub arguments: String,
    /// What the model was given back (at most 2000 characters).
    pub result: String,
    /// `ok`, `error`, `timeout`, `cancelled` or `refused`.
    pub outcome: &'static str,
    /// Why it was not `ok`, e.g. `http_status`, `timeout`, `redirect_refused`,
    /// `refused_address`, `unknown_destination`, `transfer_failed`, `barge_in`.
    pub error_code: Option<String>,
    pub latency_ms: u64,
    pub started_at: DateTime<Utc>,
    /// The tenant endpoint's HTTP status, for `http` tools.
    pub http_status: Option<u16>,
}

impl From<&ToolCallRecord> for ToolCallView {
    fn from(tool: &ToolCallRecord) -> Self {
        Self {
            call_id: tool.call_id.clone(),
            name: tool.name.clone(),
            kind: tool.kind,
            arguments: tool.arguments.clone(),
            result: tool.result.clone(),
            outcome: tool.outcome.as_str(),
            error_code: tool.error_code.clone(),
            latency_ms: tool.latency_ms,
            started_at: time(tool.started_at),
            http_status: tool.http_status,
        }
    }
}

/// One call, whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    pub summary: CallSummary,
    pub status_history: Vec<StatusEventView>,
    pub transcript: Vec<TranscriptTurnView>,
    /// OpenAI token usage.
    pub usage: Option<UsageView>,
    /// Latency and audio figures measured by the bridge.
    pub metrics: Option<CallMetricsView>,
    pub recording_url: Option<String>,
    /// FreJun's id of the recording; fetch it with `GET /api/calls/{id}/recording`.
    pub recording_id: Option<String>,
    /// What went wrong, for failed calls.
    pub error: Option<CallErrorView>,
    /// voxbridge's hang-up at FreJun, for a call voxbridge ended itself; `null` otherwise.
    pub hangup: Option<HangupView>,
    /// Webhook events about the call that change no status (names voxbridge does not map),
    /// once per name, in arrival order.
    pub other_events: Vec<OtherEventView>,
    /// Post-call analysis; `null` when none was asked for (docs/api.md, "Post-call analysis").
    pub analysis: Option<AnalysisView>,
}

/// A call's post-call analysis.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CallAnalysis)]
pub struct AnalysisView {
    pub status: AnalysisStatus,
    /// When it was asked for: the call's end, or `POST /api/calls/{id}/analyze`.
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Runs started (a provider's passing failure, or a lost instance, runs it again).
    pub attempts: u32,
    pub summary: Option<String>,
    /// The data extracted, valid against the assistant's `structured_data_schema`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Whether the call met the assistant's `success_criteria`.
    pub success: Option<bool>,
    pub success_reason: Option<String>,
    pub sentiment: Option<Sentiment>,
    pub provider: Option<TextProvider>,
    pub model: Option<String>,
    pub usage: Option<TextUsage>,
    /// Estimated from the provider's list prices; `null` for a model without a known price.
    pub cost_usd: Option<f64>,
    /// Why it failed or was skipped (or, while pending, why the last run did not finish).
    pub error: Option<AnalysisError>,
}

impl From<&CallAnalysis> for AnalysisView {
    fn from(analysis: &CallAnalysis) -> Self {
        Self {
            status: analysis.status,
            requested_at: time(analysis.requested_at),
            finished_at: analysis.finished_at.map(time),
            attempts: analysis.attempts,
            summary: analysis.summary.clone(),
            data: analysis.data.clone(),
            success: analysis.success,
            success_reason: analysis.success_reason.clone(),
            sentiment: analysis.sentiment,
            provider: analysis.provider,
            model: analysis.model.clone(),
            usage: analysis.usage,
            cost_usd: analysis.cost_usd,
            error: analysis.error.clone(),
        }
    }
}

/// A webhook event about the call that changes no status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OtherEvent)]
pub struct OtherEventView {
    pub event: String,
    pub at: DateTime<Utc>,
}

/// How voxbridge hung a call up at FreJun.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Hangup)]
pub struct HangupView {
    pub requested_at: DateTime<Utc>,
    /// The `reason` sent to FreJun, e.g. `MAX_DURATION`.
    pub reason: String,
    /// `hung_up`, `already_ended`, `no_frejun_key`, `no_frejun_call_id` or `failed`.
    pub result: &'static str,
    /// Requests sent to FreJun, retries included.
    pub attempts: u32,
    /// Why it did not simply succeed.
    pub detail: Option<String>,
}

impl From<&HangupRecord> for HangupView {
    fn from(hangup: &HangupRecord) -> Self {
        Self {
            requested_at: time(hangup.requested_at),
            reason: hangup.reason.clone(),
            result: hangup.result.as_str(),
            attempts: hangup.attempts,
            detail: hangup.detail.clone(),
        }
    }
}

impl From<&CallLogRecord> for CallDetail {
    fn from(call: &CallLogRecord) -> Self {
        Self {
            summary: CallSummary::from(call),
            status_history: call
                .status_history
                .iter()
                .map(StatusEventView::from)
                .collect(),
            transcript: call
                .transcript
                .iter()
                .map(|turn: &TranscriptTurn| TranscriptTurnView {
                    role: turn.role.as_str().to_owned(),
                    text: turn.text.clone(),
                    at: time(turn.at),
                    item_id: turn.item_id.clone(),
                    interrupted: turn.interrupted,
                    tool: turn.tool.as_ref().map(ToolCallView::from),
                })
                .collect(),
            usage: call.usage.as_ref().map(UsageView::from),
            metrics: call.metrics.as_ref().map(CallMetricsView::from),
            recording_url: call.recording_url.clone(),
            recording_id: call.recording_id.clone(),
            error: call.error.as_ref().map(CallErrorView::from),
            hangup: call.hangup.as_ref().map(HangupView::from),
            other_events: call
                .other_events
                .iter()
                .map(|other| OtherEventView {
                    event: other.event.clone(),
                    at: time(other.at),
                })
                .collect(),
            analysis: call.analysis.as_ref().map(AnalysisView::from),
        }
    }
}

/// OpenAI token usage over the call.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Usage)]
pub struct UsageView {
    pub input_audio_tokens: u64,
    pub output_audio_tokens: u64,
    pub input_text_tokens: u64,
    pub output_text_tokens: u64,
    /// Input tokens served from OpenAI's cache (a subset of the input tokens, billed lower).
    pub input_cached_tokens: u64,
    /// The text and audio shares of the cached tokens, as OpenAI split them.
    pub input_cached_text_tokens: u64,
    pub input_cached_audio_tokens: u64,
}

impl From<&Usage> for UsageView {
    fn from(usage: &Usage) -> Self {
        Self {
            input_audio_tokens: usage.input_audio_tokens,
            output_audio_tokens: usage.output_audio_tokens,
            input_text_tokens: usage.input_text_tokens,
            output_text_tokens: usage.output_text_tokens,
            input_cached_tokens: usage.input_cached_tokens,
            input_cached_text_tokens: usage.input_cached_text_tokens,
            input_cached_audio_tokens: usage.input_cached_audio_tokens,
        }
    }
}

/// Latency and audio figures the bridge measured.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CallMetrics)]
pub struct CallMetricsView {
    pub first_response_ms: Option<u64>,
    pub barge_ins: u32,
    pub audio_in_ms: u64,
    pub audio_out_ms: u64,
    pub frame_latency_p50_us: Option<u64>,
    pub frame_latency_p99_us: Option<u64>,
    /// Responses OpenAI ended as `failed` while the call went on.
    pub failed_responses: u32,
    /// The last such failure, with OpenAI's own explanation; `null` when there was none.
    pub last_response_error: Option<CallErrorView>,
    /// Tool calls the assistant made, and how many did not end `ok`.
    pub tool_calls: u32,
    pub tool_errors: u32,
}

impl From<&CallMetrics> for CallMetricsView {
    fn from(metrics: &CallMetrics) -> Self {
        Self {
            first_response_ms: metrics.first_response_ms,
            barge_ins: metrics.barge_ins,
            audio_in_ms: metrics.audio_in_ms,
            audio_out_ms: metrics.audio_out_ms,
            frame_latency_p50_us: metrics.frame_latency_p50_us,
            frame_latency_p99_us: metrics.frame_latency_p99_us,
            failed_responses: metrics.failed_responses,
            last_response_error: metrics
                .last_response_error
                .as_ref()
                .map(CallErrorView::from),
            tool_calls: metrics.tool_calls,
            tool_errors: metrics.tool_errors,
        }
    }
}

/// What went wrong, for a failed call.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CallError)]
pub struct CallErrorView {
    pub code: String,
    pub message: String,
}

impl From<&CallError> for CallErrorView {
    fn from(error: &CallError) -> Self {
        Self {
            code: error.code.clone(),
            message: error.message.clone(),
        }
    }
}

/// A live media stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveStreamView {
    /// Our call id; also the `connection_id` of the `/api/websocket/...` aliases.
    pub connection_id: String,
    pub assistant_id: String,
    /// FreJun's call and stream ids from its `start` message (absent until it arrives).
    pub frejun_call_id: Option<String>,
    pub stream_id: Option<String>,
    /// FreJun's encoding, `audio/l16`.
    pub encoding: Option<String>,
    /// FreJun's inbound sample rate in Hz.
    pub sample_rate: Option<u32>,
    /// The codec spoken with OpenAI: `pcm24k` or `pcmu`.
    pub ai_codec: String,
    pub started_at: DateTime<Utc>,
    /// Caller audio received so far, in milliseconds (updated every few seconds).
    pub audio_in_ms: u64,
    /// Assistant audio sent to the caller so far, in milliseconds.
    pub audio_out_ms: u64,
}
