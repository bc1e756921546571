//! Status updates to call logs that converge whatever order they arrive in.
//!
//! FreJun's webhooks come late, twice, or out of order, and the flow handler, the API and (later)
//! the media bridge report on the same call. Every report is merged into the stored call log so
//! that the result depends only on the *set* of reports received, never on their order:
//!
//! - `status_history` is a set keyed by (source, event): a repeated event is recorded once, at
//!   the earliest time it claimed; the list is kept sorted.
//! - `call_status` is recomputed from the history by [`derive_status`]: the furthest stage
//!   reached; among terminal reports `failed` wins, then `completed` if the call was ever
//!   answered, then `busy`, else `no-answer` (a call completed without ever being answered).
//! - `answered_at` is the earliest answer time, `ended_at` the latest end time, `duration` the
//!   largest duration, `recording_url` the greatest URL seen (all commutative).
//! - `end_reason`: any specific reason beats the generic `completed`; between two specific
//!   reasons the one declared first in [`EndReason`] wins.
//!
//! The write is optimistic: read, merge in memory, write back only if `status_revision` is
//! unchanged, else retry. Concurrent reporters therefore never lose each other's events.

use std::cmp::Ordering;

use bson::{DateTime, doc};

use super::StorageError;
use super::call_logs::{CallError, CallLogRecord, CallLogs, StatusEvent};
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;

/// Who reported a status. Part of the de-duplication key of `status_history`.
pub mod source {
    /// The flow handler (the call was admitted or refused).
    pub const FLOW: &str = "flow";
    /// A FreJun status webhook.
    pub const WEBHOOK: &str = "webhook";
    /// The tenant API (outbound initiate, hang-up).
    pub const API: &str = "api";
    /// The reaper, closing a call whose slot lease expired.
    pub const REAPER: &str = "reaper";
    /// The media bridge.
    pub const BRIDGE: &str = "bridge";
}

/// One report about a call's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub status: CallStatus,
    /// When it happened, by the reporter's clock (FreJun's timestamp when it sends one).
    pub at: DateTime,
    pub source: &'static str,
    /// The reporter's own name for the event (`call.answered`); reports of the same source and
    /// event are duplicates.
    pub event: String,
    /// The report proves the call was answered (even if its status is terminal).
    pub proves_answered: bool,
    pub duration: Option<f64>,
    pub recording_url: Option<String>,
    pub end_reason: Option<EndReason>,
    pub error: Option<CallError>,
}

impl StatusReport {
    /// A report with nothing but a status.
    pub fn new(
        status: CallStatus,
        at: DateTime,
        source: &'static str,
        event: impl Into<String>,
    ) -> Self {
        Self {
            status,
            at,
            source,
            event: event.into(),
            proves_answered: status == CallStatus::InProgress,
            duration: None,
            recording_url: None,
            end_reason: None,
            error: None,
        }
    }

    /// This report with an end reason (and, for failures, what went wrong).
    pub fn ending(mut self, reason: EndReason, error: Option<CallError>) -> Self {
        self.end_reason = Some(reason);
        self.error = error;
        self
    }
}

/// The fields of a call log that status reports decide.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusFields {
    pub status_history: Vec<StatusEvent>,
    pub call_status: CallStatus,
    pub answered_at: Option<DateTime>,
    pub ended_at: Option<DateTime>,
    pub duration: Option<f64>,
    pub recording_url: Option<String>,
    pub end_reason: Option<EndReason>,
    pub error: Option<CallError>,
}

impl StatusFields {
    pub fn of(call: &CallLogRecord) -> Self {
        Self {
            status_history: call.status_history.clone(),
            call_status: call.call_status,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            duration: call.duration,
            recording_url: call.recording_url.clone(),
            end_reason: call.end_reason,
            error: call.error.clone(),
        }
    }

    /// The fields of a new call log whose first reports are `reports`.
    pub fn from_reports(reports: &[StatusReport]) -> Self {
        let mut fields = Self {
            status_history: Vec::new(),
            call_status: CallStatus::Initiated,
            answered_at: None,
            ended_at: None,
            duration: None,
            recording_url: None,
            end_reason: None,
            error: None,
        };
        for report in reports {
            fields.merge(report);
        }
        fields
    }

    /// Merges one report. Merging is commutative and idempotent (see the module docs).
    pub fn merge(&mut self, report: &StatusReport) {
        let key = |event: &StatusEvent| {
            event.source.as_deref() == Some(report.source)
                && event.event.as_deref() == Some(report.event.as_str())
        };
        match self.status_history.iter_mut().find(|event| key(event)) {
            Some(existing) => {
                // The same event again: keep the earliest time it claimed, and the furthest
                // status (a reporter never reports two statuses under one event name, but a
                // deterministic choice costs nothing).
                existing.at = existing.at.min(report.at);
                if report.status.rank() > existing.status.rank() {
                    existing.status = report.status;
                }
            }
            None => self.status_history.push(StatusEvent {
                status: report.status,
                at: report.at,
                source: Some(report.source.to_owned()),
                event: Some(report.event.clone()),
            }),
        }
        self.status_history.sort_by(compare_events);

        if report.proves_answered {
            self.answered_at = min_option(self.answered_at, Some(report.at));
        }
        if report.status.is_terminal() {
            self.ended_at = max_option(self.ended_at, Some(report.at));
        }
        if let Some(duration) = report.duration.filter(|d| d.is_finite() && *d >= 0.0) {
            self.duration = Some(self.duration.map_or(duration, |d| d.max(duration)));
        }
        if let Some(url) = &report.recording_url {
            if self
                .recording_url
                .as_ref()
                .is_none_or(|current| url > current)
            {
                self.recording_url = Some(url.clone());
            }
        }
        let reason = report
            .end_reason
            .or(report.status.is_terminal().then_some(EndReason::Completed));
        if let Some(reason) = reason {
            self.end_reason = Some(match self.end_reason {
                Some(current) => stronger_reason(current, reason),
                None => reason,
            });
        }
        if let Some(error) = &report.error {
            if self
                .error
                .as_ref()
                .is_none_or(|current| error.code < current.code)
            {
                self.error = Some(error.clone());
            }
        }
        self.call_status = derive_status(&self.status_history, self.answered_at.is_some());
    }
}

/// The call's status given every report so far (see the module docs for the rules).
pub fn derive_status(history: &[StatusEvent], answered: bool) -> CallStatus {
    let has = |status: CallStatus| history.iter().any(|event| event.status == status);
    let any_terminal = history.iter().any(|event| event.status.is_terminal());
    if !any_terminal {
        let furthest = history
            .iter()
            .map(|event| event.status)
            .max_by_key(|status| status.rank())
            .unwrap_or(CallStatus::Initiated);
        return if answered && furthest.rank() < CallStatus::InProgress.rank() {
            CallStatus::InProgress
        } else {
            furthest
        };
    }
    if has(CallStatus::Failed) {
        CallStatus::Failed
    } else if answered {
        CallStatus::Completed
    } else if has(CallStatus::Busy) {
        CallStatus::Busy
    } else {
        CallStatus::NoAnswer
    }
}

/// Of two end reasons, the one to keep: a specific reason beats the generic `completed`;
/// otherwise the one declared first (a fixed order keeps the merge commutative).
fn stronger_reason(current: EndReason, candidate: EndReason) -> EndReason {
    match (current, candidate) {
        (EndReason::Completed, other) | (other, EndReason::Completed) => other,
        (a, b) => {
            if (b as u8) < (a as u8) {
                b
            } else {
                a
            }
        }
    }
}

fn compare_events(a: &StatusEvent, b: &StatusEvent) -> Ordering {
    a.at.cmp(&b.at)
        .then(a.status.rank().cmp(&b.status.rank()))
        .then_with(|| a.source.cmp(&b.source))
        .then_with(|| a.event.cmp(&b.event))
}

fn min_option(a: Option<DateTime>, b: Option<DateTime>) -> Option<DateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_option(a: Option<DateTime>, b: Option<DateTime>) -> Option<DateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// How many times a report is re-applied when another writer changed the call in between.
const MAX_ATTEMPTS: usize = 20;

impl CallLogs {
    /// Merges `reports` into the tenant's call `id` and returns the call as stored afterwards.
    /// A report that changes nothing writes nothing.
    pub async fn apply_status(
        &self,
        user_id: TenantId,
        id: CallId,
        reports: &[StatusReport],
        now: DateTime,
    ) -> Result<CallLogRecord, StorageError> {
        for _ in 0..MAX_ATTEMPTS {
            let call = self.get(user_id, id).await?;
            let before = StatusFields::of(&call);
            let mut after = before.clone();
            for report in reports {
                after.merge(report);
            }
            if after == before {
                return Ok(call);
            }
            let revision = call.status_revision;
            let current_revision = if revision == 0 {
                // Documents written before the revision existed have no field at all.
                doc! { "$in": [0_i64, null] }
            } else {
                doc! { "$eq": revision }
            };
            let set = doc! {
                "status_history": bson::to_bson(&after.status_history).map_err(encode)?,
                "call_status": after.call_status.as_str(),
                "answered_at": after.answered_at,
                "ended_at": after.ended_at,
                "duration": after.duration,
                "recording_url": after.recording_url.clone(),
                "end_reason": after.end_reason.map(|reason| reason.as_str()),
                "error": bson::to_bson(&after.error).map_err(encode)?,
                "status_revision": revision + 1,
                "updated_at": now,
            };
            let written = self
                .update_where(
                    doc! { "_id": id, "user_id": user_id, "status_revision": current_revision },
                    doc! { "$set": set },
                )
                .await?;
            if written {
                return self.get(user_id, id).await;
            }
        }
        Err(StorageError::Unavailable(format!(
            "call {id} kept changing; status not applied after {MAX_ATTEMPTS} attempts"
        )))
    }
}

fn encode(err: bson::ser::Error) -> StorageError {
    StorageError::Unavailable(format!("cannot encode a status update: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime {
        DateTime::from_millis(1_760_000_000_000 + seconds * 1000)
    }

    fn webhook(status: CallStatus, event: &str, seconds: i64) -> StatusReport {
        StatusReport::new(status, at(seconds), source::WEBHOOK, event)
    }

    fn merged(reports: &[StatusReport]) -> StatusFields {
        StatusFields::from_reports(reports)
    }

    #[test]
    fn statuses_only_move_forward() {
        let fields = merged(&[
            webhook(CallStatus::InProgress, "call.answered", 5),
            webhook(CallStatus::Ringing, "call.ringing", 2),
        ]);
        assert_eq!(fields.call_status, CallStatus::InProgress);
        assert_eq!(fields.status_history.len(), 2);
        assert_eq!(fields.status_history[0].status, CallStatus::Ringing);
    }

    #[test]
    fn completed_without_an_answer_is_no_answer_until_an_answer_shows_up() {
        let completed = webhook(CallStatus::Completed, "call.completed", 30);
        let fields = merged(std::slice::from_ref(&completed));
        assert_eq!(fields.call_status, CallStatus::NoAnswer);
        let fields = merged(&[
            completed,
            webhook(CallStatus::InProgress, "call.answered", 5),
        ]);
        assert_eq!(fields.call_status, CallStatus::Completed);
        assert_eq!(fields.answered_at, Some(at(5)));
        assert_eq!(fields.ended_at, Some(at(30)));
        assert_eq!(fields.end_reason, Some(EndReason::Completed));
    }

    #[test]
    fn duplicates_are_recorded_once_at_their_earliest_time() {
        let fields = merged(&[
            webhook(CallStatus::Ringing, "call.ringing", 4),
            webhook(CallStatus::Ringing, "call.ringing", 2),
            webhook(CallStatus::Ringing, "call.ringing", 3),
        ]);
        assert_eq!(fields.status_history.len(), 1);
        assert_eq!(fields.status_history[0].at, at(2));
    }

    #[test]
    fn failed_beats_other_terminal_reports_and_busy_beats_no_answer() {
        let fields = merged(&[
            webhook(CallStatus::Busy, "status:busy", 3),
            webhook(CallStatus::Completed, "call.completed", 4),
        ]);
        assert_eq!(fields.call_status, CallStatus::Busy);
        let fields = merged(&[
            webhook(CallStatus::InProgress, "call.answered", 1),
            webhook(CallStatus::Completed, "call.completed", 4),
            StatusReport::new(CallStatus::Failed, at(4), source::BRIDGE, "ai_error")
                .ending(EndReason::AiError, None),
        ]);
        assert_eq!(fields.call_status, CallStatus::Failed);
        assert_eq!(fields.end_reason, Some(EndReason::AiError));
    }

    #[test]
    fn a_specific_end_reason_beats_the_generic_one_in_either_order() {
        let hung_up = StatusReport::new(CallStatus::Completed, at(9), source::BRIDGE, "closed")
            .ending(EndReason::CallerHungUp, None);
        let completed = webhook(CallStatus::Completed, "call.completed", 10);
        let a = merged(&[hung_up.clone(), completed.clone()]);
        let b = merged(&[completed, hung_up]);
        assert_eq!(a, b);
        assert_eq!(a.end_reason, Some(EndReason::CallerHungUp));
    }

    #[test]
    fn durations_and_recordings_merge_commutatively() {
        let mut first = webhook(CallStatus::Completed, "call.completed", 10);
        first.duration = Some(12.0);
        first.recording_url = Some("https://r.example/a.wav".into());
        let mut second = webhook(CallStatus::Completed, "status:completed", 11);
        second.duration = Some(13.0);
        second.recording_url = Some("https://r.example/b.wav".into());
        let a = merged(&[first.clone(), second.clone()]);
        let b = merged(&[second, first]);
        assert_eq!(a, b);
        assert_eq!(a.duration, Some(13.0));
        assert_eq!(a.recording_url.as_deref(), Some("https://r.example/b.wav"));
    }

    #[test]
    fn an_answer_alone_makes_the_call_in_progress() {
        let mut report = webhook(CallStatus::Ringing, "odd", 1);
        report.proves_answered = true;
        assert_eq!(merged(&[report]).call_status, CallStatus::InProgress);
    }
}
