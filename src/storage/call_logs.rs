//! Call logs: one document per phone call, with its status history, transcript, usage, cost,
//! latency figures and why it ended. Tenant reads take the tenant's id; the admin's cross-tenant
//! queries say so in their name.

use bson::{DateTime, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::collections::CALL_LOGS;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::{Storage, StorageError};
use crate::domain::analysis::{AnalysisStatus, CallAnalysis};
use crate::domain::call::record::CallError;
use crate::domain::call::record::CallMetrics;
use crate::domain::call::record::HangupRecord;
use crate::domain::call::record::NewCall;
use crate::domain::call::record::OtherEvent;
use crate::domain::call::record::TranscriptTurn;
use crate::domain::call::record::Usage;
use crate::domain::call::status::StatusEvent;
use crate::domain::call::status::{StatusFields, StatusReport};
use crate::domain::call::{CallStatus, CallType, EndReason};
use crate::domain::cluster::CallOwner;
use crate::domain::ids::AssistantId;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;
use crate::domain::webhook::{OutboxEvent, events_for_change};

pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallLogRecord {
    #[serde(rename = "_id")]
    pub id: CallId,
    pub user_id: TenantId,
    pub assistant_id: Option<AssistantId>,
    /// FreJun's id for the call; unset until FreJun names an outbound call.
    pub frejun_call_id: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub call_type: CallType,
    pub call_status: CallStatus,
    pub platform: String,
    pub status_history: Vec<StatusEvent>,
    #[serde(default)]
    pub started_at: Option<DateTime>,
    #[serde(default)]
    pub answered_at: Option<DateTime>,
    #[serde(default)]
    pub ended_at: Option<DateTime>,
    /// Seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub end_reason: Option<EndReason>,
    #[serde(default)]
    pub transcript: Vec<TranscriptTurn>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub metrics: Option<CallMetrics>,
    #[serde(default)]
    pub recording_url: Option<String>,
    /// When the report that set `recording_url` happened (the latest recording wins).
    #[serde(default)]
    pub recording_url_at: Option<DateTime>,
    /// FreJun's id of the recording (`rec_…`), for `GET /api/calls/{id}/recording`.
    #[serde(default)]
    pub recording_id: Option<String>,
    #[serde(default)]
    pub recording_id_at: Option<DateTime>,
    #[serde(default)]
    pub error: Option<CallError>,
    /// voxbridge's hang-up at FreJun, for a call it ended itself.
    #[serde(default)]
    pub hangup: Option<HangupRecord>,
    /// Webhook events about the call that voxbridge does not map to a status, once per name.
    #[serde(default)]
    pub other_events: Vec<OtherEvent>,
    /// Bumped by every status write; status updates are applied only to the revision they read
    /// (see `storage::call_status`).
    #[serde(default)]
    pub status_revision: i64,
    /// When a media stream claimed the call (the first WebSocket upgrade of its `ws_url`, on
    /// any instance); a second upgrade is refused.
    #[serde(default)]
    pub media_stream_claimed_at: Option<DateTime>,
    /// The instance bridging the call, set with the media-stream claim and its lease renewed
    /// with the call's concurrency slot (`storage::call_ownership`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<CallOwner>,
    /// Webhook events caused by this call's changes and not yet handed to the tenant's
    /// endpoints: written in the same update as their cause, so a crash cannot lose one
    /// (`calls::webhook_delivery` moves them out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<OutboxEvent>,
    /// Post-call analysis, once asked for (the assistant has it enabled, or the tenant asked):
    /// the job while pending, the findings once done (`calls::analysis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CallAnalysis>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub schema_version: i32,
}

impl CallLogRecord {
    /// A new call log (with a fresh id) whose status fields are `reports` merged.
    pub fn new(call: NewCall, reports: &[StatusReport], now: DateTime) -> Self {
        let status = StatusFields::from_reports(reports);
        // A call can be born terminal (a refused flow): its events go out like any other's.
        let outbox = events_for_change(&StatusFields::from_reports(&[]), &status, now);
        Self {
            id: CallId::new(),
            user_id: call.user_id,
            assistant_id: call.assistant_id,
            frejun_call_id: call.frejun_call_id,
            from_number: call.from_number,
            to_number: call.to_number,
            call_type: call.call_type,
            call_status: status.call_status,
            platform: "frejun".to_owned(),
            status_history: status.status_history,
            started_at: Some(now),
            answered_at: status.answered_at,
            ended_at: status.ended_at,
            duration: status.duration,
            end_reason: status.end_reason,
            transcript: Vec::new(),
            usage: None,
            cost_usd: None,
            metrics: None,
            recording_url: status.recording_url,
            recording_url_at: status.recording_url_at,
            recording_id: status.recording_id,
            recording_id_at: status.recording_id_at,
            error: status.error,
            hangup: None,
            other_events: Vec::new(),
            status_revision: 0,
            media_stream_claimed_at: None,
            owner: None,
            outbox,
            analysis: None,
            created_at: now,
            updated_at: now,
            schema_version: SCHEMA_VERSION,
        }
    }
}

/// Which calls a list asks for. Every condition is optional; `user_id` is set for tenants.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallFilter {
    pub user_id: Option<TenantId>,
    /// `None`: any status. `Some(list)`: one of these (an empty list matches nothing).
    pub statuses: Option<Vec<CallStatus>>,
    pub call_type: Option<CallType>,
    pub assistant_id: Option<AssistantId>,
    /// Either side of the call.
    pub phone_number: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub created_after: Option<DateTime>,
    pub created_before: Option<DateTime>,
    /// Only calls whose analysis is done and judged them a success (or not).
    pub analysis_success: Option<bool>,
}

impl CallFilter {
    fn to_document(&self) -> Document {
        let mut filter = Document::new();
        if let Some(user_id) = self.user_id {
            filter.insert("user_id", user_id);
        }
        if let Some(statuses) = &self.statuses {
            let names: Vec<&str> = statuses.iter().map(|status| status.as_str()).collect();
            filter.insert("call_status", doc! { "$in": names });
        }
        if let Some(call_type) = self.call_type {
            filter.insert("call_type", call_type.as_str());
        }
        if let Some(assistant_id) = self.assistant_id {
            filter.insert("assistant_id", assistant_id);
        }
        if let Some(number) = &self.phone_number {
            filter.insert(
                "$or",
                vec![doc! { "from_number": number }, doc! { "to_number": number }],
            );
        }
        if let Some(number) = &self.from_number {
            filter.insert("from_number", number);
        }
        if let Some(number) = &self.to_number {
            filter.insert("to_number", number);
        }
        let mut created = Document::new();
        if let Some(after) = self.created_after {
            created.insert("$gte", after);
        }
        if let Some(before) = self.created_before {
            created.insert("$lt", before);
        }
        if !created.is_empty() {
            filter.insert("created_at", created);
        }
        if let Some(success) = self.analysis_success {
            filter.insert("analysis.status", AnalysisStatus::Done.as_str());
            filter.insert("analysis.success", success);
        }
        filter
    }
}

/// Call counts and totals over a period, from one aggregation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct CallStats {
    pub total_calls: u64,
    pub total_duration_seconds: f64,
    pub average_duration_seconds: Option<f64>,
    pub total_cost_usd: f64,
    pub by_status: Vec<CountBy>,
    pub by_type: Vec<CountBy>,
    pub per_assistant: Vec<GroupTotals>,
    pub per_day: Vec<GroupTotals>,
    /// How the period's analysed calls were judged.
    pub analysis: AnalysisStats,
}

/// Post-call analysis over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct AnalysisStats {
    /// Calls whose analysis is done.
    pub analyzed_calls: u64,
    /// Of those, the ones judged a success.
    pub successful_calls: u64,
    /// `successful_calls / analyzed_calls`; `null` when none was analysed.
    pub success_rate: Option<f64>,
    /// Analyses that failed (the provider, or an answer that did not fit the schema).
    pub failed_analyses: u64,
    /// What the analyses cost, estimated (apart from the calls' own `cost_usd`).
    pub total_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct CountBy {
    pub key: String,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct GroupTotals {
    /// Assistant id (or `null` for calls without one), or the UTC day `YYYY-MM-DD`.
    pub key: Option<String>,
    pub calls: u64,
    pub total_duration_seconds: f64,
    pub total_cost_usd: f64,
}

#[derive(Clone, Debug)]
pub struct CallLogs {
    collection: Collection<CallLogRecord>,
}

impl Storage {
    pub fn call_logs(&self) -> CallLogs {
        CallLogs {
            collection: self.collection(CALL_LOGS),
        }
    }
}

impl CallLogs {
    /// How many of the tenant's calls were refused at flow time since `since` (served by the
    /// `(user_id, call_status, created_at)` index).
    pub(crate) async fn count_refused_flows_since(
        &self,
        user_id: TenantId,
        since: DateTime,
    ) -> Result<u64, StorageError> {
        Ok(self
            .collection
            .count_documents(doc! {
                "user_id": user_id,
                "call_status": CallStatus::Failed.as_str(),
                "created_at": { "$gte": since },
                "status_history.event": "flow.refused",
            })
            .await?)
    }

    pub(super) fn collection(&self) -> &Collection<CallLogRecord> {
        &self.collection
    }

    pub async fn insert(&self, call: &CallLogRecord) -> Result<(), StorageError> {
        self.collection.insert_one(call).await?;
        Ok(())
    }

    /// Calls whose outbox holds events, oldest change first (at most `limit`).
    pub(crate) async fn with_outbox(&self, limit: i64) -> Result<Vec<CallLogRecord>, StorageError> {
        Ok(self
            .collection
            .find(doc! { "outbox.id": { "$exists": true } })
            .sort(doc! { "updated_at": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?)
    }

    /// Adds events that no status change causes (a transfer asked of FreJun, or refused) to
    /// the call's outbox.
    pub(crate) async fn push_events(
        &self,
        user_id: TenantId,
        id: CallId,
        events: &[OutboxEvent],
    ) -> Result<(), StorageError> {
        let events = bson::to_bson(events)
            .map_err(|err| StorageError::Unavailable(format!("cannot encode events: {err}")))?;
        self.collection
            .update_one(
                doc! { "_id": id, "user_id": user_id },
                doc! { "$push": { "outbox": { "$each": events } } },
            )
            .await?;
        Ok(())
    }

    /// Removes the events `event_ids` from the call's outbox (they have been handed over).
    pub(crate) async fn pull_outbox(
        &self,
        user_id: TenantId,
        id: CallId,
        event_ids: &[String],
    ) -> Result<(), StorageError> {
        self.collection
            .update_one(
                doc! { "_id": id, "user_id": user_id },
                doc! { "$pull": { "outbox": { "id": { "$in": event_ids } } } },
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn get(
        &self,
        user_id: TenantId,
        id: CallId,
    ) -> Result<CallLogRecord, StorageError> {
        self.collection
            .find_one(doc! { "_id": id, "user_id": user_id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// The tenant's call that FreJun knows as `frejun_call_id`.
    pub(crate) async fn find_by_frejun_call_id(
        &self,
        user_id: TenantId,
        frejun_call_id: &str,
    ) -> Result<Option<CallLogRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(frejun_call_id_filter(user_id, frejun_call_id))
            .await?)
    }

    /// Records FreJun's id for the tenant's call, unless the call already has one. Answers
    /// [`StorageError::Conflict`] when another of the tenant's calls already carries that FreJun
    /// id (the id is unique per tenant: index `call_logs_user_frejun_call_id_unique`).
    pub async fn set_frejun_call_id(
        &self,
        user_id: TenantId,
        id: CallId,
        frejun_call_id: &str,
        now: DateTime,
    ) -> Result<(), StorageError> {
        self.collection
            .update_one(
                doc! { "_id": id, "user_id": user_id, "frejun_call_id": null },
                doc! { "$set": { "frejun_call_id": frejun_call_id, "updated_at": now } },
            )
            .await?;
        Ok(())
    }

    /// Keeps an event about the tenant's call that changes no status, once per name (a repeat
    /// changes nothing), at most [`MAX_OTHER_EVENTS`] per call.
    pub(crate) async fn record_other_event(
        &self,
        user_id: TenantId,
        id: CallId,
        event: &OtherEvent,
    ) -> Result<(), StorageError> {
        let entry =
            bson::to_bson(event).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        self.collection
            .update_one(
                doc! {
                    "_id": id,
                    "user_id": user_id,
                    "other_events.event": { "$ne": &event.event },
                    format!("other_events.{}", MAX_OTHER_EVENTS - 1): { "$exists": false },
                },
                doc! { "$push": { "other_events": entry }, "$set": { "updated_at": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Records FreJun's recording id for the tenant's call, unless a later report already set
    /// one (the latest wins, as in the status merge).
    pub(crate) async fn record_recording_id(
        &self,
        user_id: TenantId,
        id: CallId,
        recording_id: &str,
        at: DateTime,
    ) -> Result<(), StorageError> {
        self.collection
            .update_one(
                doc! {
                    "_id": id,
                    "user_id": user_id,
                    "$or": [
                        { "recording_id_at": null },
                        { "recording_id_at": { "$lt": at } },
                    ],
                },
                doc! { "$set": {
                    "recording_id": recording_id,
                    "recording_id_at": at,
                    "updated_at": DateTime::now(),
                } },
            )
            .await?;
        Ok(())
    }

    /// Records voxbridge's hang-up at FreJun of the tenant's call (the latest attempt wins).
    pub(crate) async fn record_hangup(
        &self,
        user_id: TenantId,
        id: CallId,
        hangup: &HangupRecord,
    ) -> Result<(), StorageError> {
        let hangup =
            bson::to_bson(hangup).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        self.collection
            .update_one(
                doc! { "_id": id, "user_id": user_id },
                doc! { "$set": { "hangup": hangup, "updated_at": DateTime::now() } },
            )
            .await?;
        Ok(())
    }

    /// Applies `update` to the document matching `filter`; answers whether one matched.
    pub(super) async fn update_where(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<bool, StorageError> {
        let result = self.collection.update_one(filter, update).await?;
        Ok(result.matched_count == 1)
    }

    /// A page of calls matching `filter`, newest first. Tenants' callers always set
    /// `filter.user_id`; only the admin API leaves it empty.
    pub(crate) async fn list(
        &self,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<CallLogRecord>, StorageError> {
        fetch_page(&self.collection, filter.to_document(), page, |call| {
            Cursor {
                created_at: call.created_at,
                id: call.id.object_id(),
            }
        })
        .await
    }

    /// Counts and totals for the calls matching `filter` (by status, type, assistant and UTC
    /// day), computed by MongoDB in one `$facet` aggregation.
    pub(crate) async fn stats(&self, filter: &CallFilter) -> Result<CallStats, StorageError> {
        let totals = |key: bson::Bson| {
            doc! { "$group": {
                "_id": key,
                "calls": { "$sum": 1 },
                "duration": { "$sum": { "$ifNull": ["$duration", 0] } },
                "cost": { "$sum": { "$ifNull": ["$cost_usd", 0] } },
            } }
        };
        let pipeline = vec![
            doc! { "$match": filter.to_document() },
            doc! { "$facet": {
                "totals": [{ "$group": {
                    "_id": null,
                    "calls": { "$sum": 1 },
                    "duration": { "$sum": { "$ifNull": ["$duration", 0] } },
                    "average": { "$avg": "$duration" },
                    "cost": { "$sum": { "$ifNull": ["$cost_usd", 0] } },
                } }],
                "by_status": [{ "$group": { "_id": "$call_status", "calls": { "$sum": 1 } } }, { "$sort": { "_id": 1 } }],
                "by_type": [{ "$group": { "_id": "$call_type", "calls": { "$sum": 1 } } }, { "$sort": { "_id": 1 } }],
                "per_assistant": [totals(bson::Bson::String("$assistant_id".into())), { "$sort": { "calls": -1, "_id": 1 } }],
                "per_day": [
                    totals(bson::Bson::Document(doc! { "$dateToString": { "format": "%Y-%m-%d", "date": "$created_at" } })),
                    { "$sort": { "_id": 1 } },
                ],
                "analysis": [
                    { "$match": { "analysis.status": { "$in": [AnalysisStatus::Done.as_str(), AnalysisStatus::Failed.as_str()] } } },
                    { "$group": {
                        "_id": null,
                        "done": { "$sum": { "$cond": [{ "$eq": ["$analysis.status", AnalysisStatus::Done.as_str()] }, 1, 0] } },
                        "succeeded": { "$sum": { "$cond": [{ "$eq": ["$analysis.success", true] }, 1, 0] } },
                        "failed": { "$sum": { "$cond": [{ "$eq": ["$analysis.status", AnalysisStatus::Failed.as_str()] }, 1, 0] } },
                        "cost": { "$sum": { "$ifNull": ["$analysis.cost_usd", 0] } },
                    } },
                ],
            } },
        ];
        let facets: Document = self
            .collection
            .aggregate(pipeline)
            .await?
            .try_next()
            .await?
            .unwrap_or_default();

        let array = |name: &str| facets.get_array(name).cloned().unwrap_or_default();
        let documents = |name: &str| -> Vec<Document> {
            array(name)
                .into_iter()
                .filter_map(|value| value.as_document().cloned())
                .collect()
        };
        let mut stats = CallStats::default();
        if let Some(totals) = documents("totals").first() {
            stats.total_calls = number(totals, "calls") as u64;
            stats.total_duration_seconds = number(totals, "duration");
            stats.average_duration_seconds = totals.get("average").and_then(as_f64);
            stats.total_cost_usd = number(totals, "cost");
        }
        let counts = |name: &str| {
            documents(name)
                .iter()
                .map(|group| CountBy {
                    key: group.get_str("_id").unwrap_or("unknown").to_owned(),
                    calls: number(group, "calls") as u64,
                })
                .collect()
        };
        stats.by_status = counts("by_status");
        stats.by_type = counts("by_type");
        let groups = |name: &str| {
            documents(name)
                .iter()
                .map(|group| GroupTotals {
                    key: match group.get("_id") {
                        Some(bson::Bson::ObjectId(id)) => Some(id.to_hex()),
                        Some(bson::Bson::String(text)) => Some(text.clone()),
                        _ => None,
                    },
                    calls: number(group, "calls") as u64,
                    total_duration_seconds: number(group, "duration"),
                    total_cost_usd: number(group, "cost"),
                })
                .collect()
        };
        stats.per_assistant = groups("per_assistant");
        stats.per_day = groups("per_day");
        if let Some(analysis) = documents("analysis").first() {
            let analyzed = number(analysis, "done") as u64;
            let succeeded = number(analysis, "succeeded") as u64;
            stats.analysis = AnalysisStats {
                analyzed_calls: analyzed,
                successful_calls: succeeded,
                success_rate: (analyzed > 0).then(|| succeeded as f64 / analyzed as f64),
                failed_analyses: number(analysis, "failed") as u64,
                total_cost_usd: number(analysis, "cost"),
            };
        }
        Ok(stats)
    }
}

/// Most unmapped webhook events kept per call: enough for any real call, a bound for a sender
/// inventing names.
pub(crate) const MAX_OTHER_EVENTS: usize = 50;

/// The filter that finds a tenant's call by FreJun's id. `$type` lets MongoDB use the partial
/// unique index on `(user_id, frejun_call_id)`: the planner does not infer that an equality on a string
/// implies the index's `$type: "string"` filter, and would otherwise walk the tenant's whole
/// call history. Public so that a test can check the plan.
pub fn frejun_call_id_filter(user_id: TenantId, frejun_call_id: &str) -> Document {
    doc! {
        "user_id": user_id,
        "frejun_call_id": { "$eq": frejun_call_id, "$type": "string" },
    }
}

fn as_f64(value: &bson::Bson) -> Option<f64> {
    match value {
        bson::Bson::Int32(n) => Some(f64::from(*n)),
        bson::Bson::Int64(n) => Some(*n as f64),
        bson::Bson::Double(n) => Some(*n),
        _ => None,
    }
}

fn number(document: &Document, key: &str) -> f64 {
    document.get(key).and_then(as_f64).unwrap_or(0.0)
}
