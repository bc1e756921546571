//! What the API shows of calls besides the record itself (`calls::call_view`): status,
//! statistics, live streams, the Teler-backend answer to an initiated call.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{id, time};
use crate::bridge::registry::LiveCall;
pub use crate::calls::call_view::{CallDetail, CallSummary, LiveStreamView, StatusEventView};
use crate::calls::outbound::PlacedCall;
use crate::domain::call::{CallStatus, EndReason};
use crate::storage::call_logs::{CallLogRecord, CallStats, CountBy, GroupTotals};

/// A call's status and its history, without the rest.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallStatusView {
    pub id: String,
    pub call_status: CallStatus,
    pub status_history: Vec<StatusEventView>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub end_reason: Option<EndReason>,
}

/// Counts and totals of the tenant's calls over `[created_after, created_before)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub created_after: DateTime<Utc>,
    pub created_before: DateTime<Utc>,
    pub total_calls: u64,
    pub total_duration_seconds: f64,
    pub average_duration_seconds: Option<f64>,
    pub total_cost_usd: f64,
    pub by_status: Vec<CountByView>,
    pub by_type: Vec<CountByView>,
    pub per_assistant: Vec<GroupTotalsView>,
    pub per_day: Vec<GroupTotalsView>,
    /// How the period's analysed calls were judged (docs/api.md, "Post-call analysis").
    pub analysis: AnalysisStatsView,
}

/// Post-call analysis over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisStatsView {
    /// Calls whose analysis is done.
    pub analyzed_calls: u64,
    /// Of those, the ones judged a success.
    pub successful_calls: u64,
    /// `successful_calls / analyzed_calls`; `null` when no call was analysed.
    pub success_rate: Option<f64>,
    /// Analyses that failed (the provider, or an answer that did not fit the schema).
    pub failed_analyses: u64,
    /// What the analyses cost, estimated from list prices; not part of `total_cost_usd`,
    /// which is the calls' own.
    pub total_cost_usd: f64,
}

impl StatsView {
    pub(crate) fn new(
        created_after: DateTime<Utc>,
        created_before: DateTime<Utc>,
        stats: CallStats,
    ) -> Self {
        let counts = |list: Vec<CountBy>| list.into_iter().map(CountByView::from).collect();
        let totals = |list: Vec<GroupTotals>| list.into_iter().map(GroupTotalsView::from).collect();
        Self {
            created_after,
            created_before,
            total_calls: stats.total_calls,
            total_duration_seconds: stats.total_duration_seconds,
            average_duration_seconds: stats.average_duration_seconds,
            total_cost_usd: stats.total_cost_usd,
            by_status: counts(stats.by_status),
            by_type: counts(stats.by_type),
            per_assistant: totals(stats.per_assistant),
            per_day: totals(stats.per_day),
            analysis: AnalysisStatsView {
                analyzed_calls: stats.analysis.analyzed_calls,
                successful_calls: stats.analysis.successful_calls,
                success_rate: stats.analysis.success_rate,
                failed_analyses: stats.analysis.failed_analyses,
                total_cost_usd: stats.analysis.total_cost_usd,
            },
        }
    }
}

/// How many calls had one value (a status, a direction).
#[derive(Debug, Serialize, ToSchema)]
pub struct CountByView {
    pub key: String,
    pub calls: u64,
}

impl From<CountBy> for CountByView {
    fn from(count: CountBy) -> Self {
        Self {
            key: count.key,
            calls: count.calls,
        }
    }
}

/// Totals of one group of calls (an assistant, a UTC day).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupTotalsView {
    /// Assistant id (or `null` for calls without one), or the UTC day `YYYY-MM-DD`.
    pub key: Option<String>,
    pub calls: u64,
    pub total_duration_seconds: f64,
    pub total_cost_usd: f64,
}

impl From<GroupTotals> for GroupTotalsView {
    fn from(group: GroupTotals) -> Self {
        Self {
            key: group.key,
            calls: group.calls,
            total_duration_seconds: group.total_duration_seconds,
            total_cost_usd: group.total_cost_usd,
        }
    }
}

impl From<&LiveCall> for LiveStreamView {
    fn from(call: &LiveCall) -> Self {
        Self {
            connection_id: id(call.call_id),
            assistant_id: id(call.assistant_id),
            frejun_call_id: call.stream.frejun_call_id.clone(),
            stream_id: call.stream.stream_id.clone(),
            encoding: call.stream.encoding.clone(),
            sample_rate: call.stream.sample_rate,
            ai_codec: call.stream.ai_codec.clone(),
            started_at: time(call.started_at),
            audio_in_ms: call.audio_in_ms,
            audio_out_ms: call.audio_out_ms,
        }
    }
}

impl From<&CallLogRecord> for CallStatusView {
    fn from(call: &CallLogRecord) -> Self {
        CallStatusView {
            id: call.id.to_hex(),
            call_status: call.call_status,
            status_history: call
                .status_history
                .iter()
                .map(StatusEventView::from)
                .collect(),
            answered_at: call.answered_at.map(time),
            ended_at: call.ended_at.map(time),
            duration: call.duration,
            end_reason: call.end_reason,
        }
    }
}

/// The answer to `POST /api/calls/initiate`, in the Teler backend's fields.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TelerInitiatedView {
    /// FreJun's id for the call.
    pub call_id: String,
    /// voxbridge's id for the call (its call log, `/api/calls/{id}`).
    pub voxbridge_call_id: String,
    /// The call's status in its log (`initiated` once Teler accepted it).
    pub status: CallStatus,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    /// When the call was placed.
    pub timestamp: DateTime<Utc>,
}

impl From<&PlacedCall> for TelerInitiatedView {
    fn from(placed: &PlacedCall) -> Self {
        Self {
            call_id: placed.frejun_call_id.clone(),
            voxbridge_call_id: placed.call.id.to_hex(),
            status: placed.call.call_status,
            from_number: placed.call.from_number.clone(),
            to_number: placed.call.to_number.clone(),
            timestamp: time(placed.call.created_at),
        }
    }
}
