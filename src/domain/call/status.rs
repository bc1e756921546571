//! The status merge, the service's central business rule: reports about a call converge
//! whatever order they arrive in. Pure code; `storage::call_status` reads and writes the
//! documents it decides.
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
//!   largest duration, `recording_url` the one reported last by the reports' own times (ties:
//!   the greater URL), all commutative.
//! - `end_reason`: any specific reason beats the generic `completed`; between two specific
//!   reasons the one declared first in [`EndReason`] wins.

use std::cmp::Ordering;

use bson::DateTime;
use serde::{Deserialize, Serialize};

use super::record::CallError;
use super::{CallStatus, EndReason};

/// One entry of a call's `status_history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub status: CallStatus,
    pub at: DateTime,
    /// What reported it.
    pub source: Option<ReportSource>,
    /// The reporter's name for the event, e.g. FreJun's `call.answered`.
    #[serde(default)]
    pub event: Option<String>,
}

/// Who reported a status. Part of the de-duplication key of `status_history`. Declared in
/// alphabetical order: history entries at the same instant sort by source, as they did when
/// sources were stored strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// The tenant API (outbound initiate, hang-up).
    Api,
    /// The media bridge.
    Bridge,
    /// The flow handler (the call was admitted or refused).
    Flow,
    /// The reaper, closing a call whose slot lease expired.
    Reaper,
    /// A FreJun status webhook.
    Webhook,
}

impl ReportSource {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReportSource::Api => "api",
            ReportSource::Bridge => "bridge",
            ReportSource::Flow => "flow",
            ReportSource::Reaper => "reaper",
            ReportSource::Webhook => "webhook",
        }
    }
}

/// One report about a call's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub status: CallStatus,
    /// When it happened, by the reporter's clock (FreJun's timestamp when it sends one).
    pub at: DateTime,
    pub source: ReportSource,
    /// The reporter's own name for the event (`call.answered`); reports of the same source and
    /// event are duplicates.
    pub event: String,
    /// The report proves the call was answered (even if its status is terminal).
    pub proves_answered: bool,
    pub duration: Option<f64>,
    pub recording_url: Option<String>,
    /// FreJun's id of the call's recording (`rec_…`), for its recordings API.
    pub recording_id: Option<String>,
    pub end_reason: Option<EndReason>,
    pub error: Option<CallError>,
}

impl StatusReport {
    /// A report with nothing but a status.
    pub fn new(
        status: CallStatus,
        at: DateTime,
        source: ReportSource,
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
            recording_id: None,
            end_reason: None,
            error: None,
        }
    }

    /// This report with an end reason (and, for failures, what went wrong).
    pub(crate) fn ending(mut self, reason: EndReason, error: Option<CallError>) -> Self {
        self.end_reason = Some(reason);
        self.error = error;
        self
    }
}

/// The fields of a call log that status reports decide.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusFields {
    pub status_history: Vec<StatusEvent>,
    pub call_status: CallStatus,
    pub answered_at: Option<DateTime>,
    pub ended_at: Option<DateTime>,
    pub duration: Option<f64>,
    pub recording_url: Option<String>,
    /// When the report that set `recording_url` happened: the latest recording wins.
    pub recording_url_at: Option<DateTime>,
    /// FreJun's recording id, by the same rule (the latest report's wins).
    pub recording_id: Option<String>,
    pub recording_id_at: Option<DateTime>,
    pub end_reason: Option<EndReason>,
    pub error: Option<CallError>,
}

impl StatusFields {
    /// The fields of a new call log whose first reports are `reports`.
    pub(crate) fn from_reports(reports: &[StatusReport]) -> Self {
        let mut fields = Self {
            status_history: Vec::new(),
            call_status: CallStatus::Initiated,
            answered_at: None,
            ended_at: None,
            duration: None,
            recording_url: None,
            recording_url_at: None,
            recording_id: None,
            recording_id_at: None,
            end_reason: None,
            error: None,
        };
        for report in reports {
            fields.merge(report);
        }
        fields
    }

    /// Merges one report. Merging is commutative and idempotent (see the module docs).
    pub(crate) fn merge(&mut self, report: &StatusReport) {
        let key = |event: &StatusEvent| {
            event.source == Some(report.source)
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
                source: Some(report.source),
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
        // The latest report's recording wins (ties: the greater value, so any order of the same
        // reports gives the same answer). A value stored without its time counts as older than
        // any report.
        latest_wins(
            &mut self.recording_url,
            &mut self.recording_url_at,
            report.recording_url.as_ref(),
            report.at,
        );
        latest_wins(
            &mut self.recording_id,
            &mut self.recording_id_at,
            report.recording_id.as_ref(),
            report.at,
        );
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

/// Keeps `candidate` (reported at `at`) when it is newer than `current` (see `merge`).
fn latest_wins(
    current: &mut Option<String>,
    current_at: &mut Option<DateTime>,
    candidate: Option<&String>,
    at: DateTime,
) {
    let Some(candidate) = candidate else {
        return;
    };
    let newer = match (current.as_ref(), *current_at) {
        (Some(value), Some(value_at)) => (at, candidate) > (value_at, value),
        _ => true,
    };
    if newer {
        *current = Some(candidate.clone());
        *current_at = Some(at);
    }
}

/// The call's status given every report so far (see the module docs for the rules).
pub(crate) fn derive_status(history: &[StatusEvent], answered: bool) -> CallStatus {
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

/// The event the media bridge reports when a call's media stream opens.
pub const MEDIA_STARTED: &str = "media.started";
/// The event the media bridge reports when a call's media stream has ended.
pub const MEDIA_ENDED: &str = "media.ended";

/// Whether a media-bridge session holds the call right now: it reported the stream open and
/// not yet ended. Such a call's concurrency slot belongs to the session (its keeper frees it
/// when the stream ends), so a terminal report from anyone else must not free it: a webhook
/// may be late, repeated or spoofed, while the stream is the proof the call is live.
pub fn media_session_open(history: &[StatusEvent]) -> bool {
    bridge_reported(history, MEDIA_STARTED) && !bridge_reported(history, MEDIA_ENDED)
}

/// Whether the media bridge reported `event` (`media.started`, `media.ended`) in `history`.
pub(crate) fn bridge_reported(history: &[StatusEvent], event: &str) -> bool {
    history.iter().any(|entry| {
        entry.source == Some(ReportSource::Bridge) && entry.event.as_deref() == Some(event)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime {
        DateTime::from_millis(1_760_000_000_000 + seconds * 1000)
    }

    fn webhook(status: CallStatus, event: &str, seconds: i64) -> StatusReport {
        StatusReport::new(status, at(seconds), ReportSource::Webhook, event)
    }

    fn merged(reports: &[StatusReport]) -> StatusFields {
        StatusFields::from_reports(reports)
    }

    #[test]
    fn report_sources_sort_and_store_by_name() {
        let all = [
            ReportSource::Api,
            ReportSource::Bridge,
            ReportSource::Flow,
            ReportSource::Reaper,
            ReportSource::Webhook,
        ];
        assert!(all.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
        for source in all {
            assert_eq!(
                bson::to_bson(&source).unwrap(),
                bson::Bson::String(source.as_str().to_owned())
            );
        }
    }

    #[test]
    fn a_call_is_held_by_its_media_session_from_start_to_end() {
        let started = StatusReport::new(
            CallStatus::InProgress,
            at(1),
            ReportSource::Bridge,
            MEDIA_STARTED,
        );
        let completed = webhook(CallStatus::Completed, "call.completed", 2);
        let ended = StatusReport::new(
            CallStatus::Completed,
            at(3),
            ReportSource::Bridge,
            MEDIA_ENDED,
        );
        assert!(!media_session_open(
            &merged(std::slice::from_ref(&completed)).status_history
        ));
        let live = merged(&[started.clone(), completed.clone()]);
        assert!(
            media_session_open(&live.status_history),
            "a webhook does not end it"
        );
        assert!(!media_session_open(
            &merged(&[started, completed, ended]).status_history
        ));
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
            StatusReport::new(CallStatus::Failed, at(4), ReportSource::Bridge, "ai_error")
                .ending(EndReason::AiError, None),
        ]);
        assert_eq!(fields.call_status, CallStatus::Failed);
        assert_eq!(fields.end_reason, Some(EndReason::AiError));
    }

    #[test]
    fn a_specific_end_reason_beats_the_generic_one_in_either_order() {
        let hung_up =
            StatusReport::new(CallStatus::Completed, at(9), ReportSource::Bridge, "closed")
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
