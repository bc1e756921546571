//! Closes calls whose concurrency-slot lease expired, and frees their slots.
//!
//! A lease expires when nobody extended it in time: the media stream of an answered flow never
//! arrived (`media_never_arrived`), an outbound call was never answered nor reported by FreJun
//! (also `media_never_arrived`: no audio ever flowed), or the instance bridging a call died
//! (`instance_lost`; the bridge extends the lease while the call lives). Every instance runs
//! the reaper; its writes are idempotent, so two reapers on one call do no harm.

use bson::DateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::CallService;
use super::hangup::tenant_frejun_key;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, EndReason};
use crate::providers::teler::TelerCall;
use crate::storage::StorageError;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::call_slots::ExpiredSlot;
use crate::telemetry::call_span;
use crate::telemetry::metrics;

/// Leases handled per sweep; the next sweep takes the rest.
const BATCH: usize = 200;

impl CallService {
    /// Sweeps every `frejun.reaper_interval_secs` until `shutdown` is cancelled.
    pub(crate) async fn run_reaper(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.shared.settings.frejun.reaper_interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.reap_expired(DateTime::now()).await {
                Ok(0) => {}
                Ok(closed) => tracing::info!(closed, "closed calls whose slot lease expired"),
                Err(err) => tracing::warn!(error = %err, "reaper sweep failed; retrying next tick"),
            }
        }
    }

    /// One sweep: closes the calls whose lease expired before `now` and frees their slots.
    /// Returns how many slots it freed.
    pub async fn reap_expired(&self, now: DateTime) -> Result<usize, StorageError> {
        let expired = self.shared.storage.call_slots().expired(now, BATCH).await?;
        let mut freed = 0;
        for slot in expired {
            let span = call_span(slot.lease.call_id, slot.user_id, None, None);
            self.close_expired(&slot, now).instrument(span).await?;
            if self
                .shared
                .storage
                .call_slots()
                .remove_expired(&slot)
                .await?
            {
                freed += 1;
            }
        }
        Ok(freed)
    }

    async fn close_expired(&self, slot: &ExpiredSlot, now: DateTime) -> Result<(), StorageError> {
        let calls = self.shared.storage.call_logs();
        let call = match calls.get(slot.user_id, slot.lease.call_id).await {
            Ok(call) => call,
            Err(StorageError::NotFound) => return Ok(()),
            Err(err) => return Err(err),
        };
        if call.call_status.is_terminal() {
            return Ok(());
        }
        // Before declaring the call lost, ask FreJun what became of it: a missed webhook may be
        // all that happened.
        let at_frejun = self.state_at_frejun(slot, &call).await;
        if let Some(teler) = at_frejun.as_ref().filter(|teler| teler.ended()) {
            let report = frejun_state_report(teler, now);
            calls
                .apply_status(slot.user_id, call.id, &[report], now)
                .await?;
            tracing::info!(call_id = %call.id, state = teler.state, "a call whose lease expired had ended at FreJun");
            return Ok(());
        }
        let streamed = call
            .status_history
            .iter()
            .any(|event| event.source == Some(ReportSource::Bridge));
        let reason = if streamed {
            EndReason::InstanceLost
        } else {
            EndReason::MediaNeverArrived
        };
        let mut reports = Vec::new();
        if let Some(teler) = &at_frejun {
            // Still live at FreJun: recorded, then ended (and hung up) below.
            reports.push(frejun_state_report(teler, now));
        }
        reports.push(
            StatusReport::new(
                CallStatus::Failed,
                now,
                ReportSource::Reaper,
                "reaper.lease_expired",
            )
            .ending(reason, None),
        );
        calls
            .apply_status(slot.user_id, call.id, &reports, now)
            .await?;
        metrics::call_ended(reason.as_str());
        tracing::info!(call_id = %call.id, user_id = %slot.user_id, %reason, "closed a call whose slot lease expired");
        // The phone call may still be up (ringing, or connected to a dead instance): end it at
        // FreJun too, without holding up the sweep.
        let hangups = self.hangups();
        let (tenant, frejun_call_id) = (slot.user_id, call.frejun_call_id.clone());
        tokio::spawn(
            async move {
                hangups
                    .hang_up(tenant, call.id, frejun_call_id.as_deref(), reason)
                    .await;
            }
            .in_current_span(),
        );
        Ok(())
    }

    /// FreJun's view of the call (`GET /voice/calls/{id}`), when it can be asked: the call has
    /// FreJun's id and the tenant a FreJun key. Failures are logged and answered `None`.
    async fn state_at_frejun(&self, slot: &ExpiredSlot, call: &CallLogRecord) -> Option<TelerCall> {
        let frejun_call_id = call.frejun_call_id.as_deref()?;
        let key = match tenant_frejun_key(&self.shared, slot.user_id).await {
            Ok(Some(key)) => key,
            Ok(None) => return None,
            Err(problem) => {
                tracing::warn!(
                    problem,
                    "cannot ask FreJun about a call whose lease expired"
                );
                return None;
            }
        };
        match self.teler.get_call(&key, frejun_call_id).await {
            Ok(teler) => Some(teler),
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask FreJun about a call whose lease expired");
                None
            }
        }
    }
}

/// FreJun's state of a call, as a report: `completed` (answered or not), `failed`, or the live
/// states as progress; recorded as `teler.state:<state>`.
fn frejun_state_report(teler: &TelerCall, now: DateTime) -> StatusReport {
    let status = match teler.state.as_str() {
        "completed" if teler.answered => CallStatus::Completed,
        "completed" => CallStatus::NoAnswer,
        "failed" => CallStatus::Failed,
        "answered" => CallStatus::InProgress,
        "ringing" => CallStatus::Ringing,
        _ => CallStatus::Initiated,
    };
    let mut report = StatusReport::new(
        status,
        now,
        ReportSource::Reaper,
        format!("teler.state:{}", teler.state),
    );
    // FreJun's answer is proof only when it says the call was answered.
    report.proves_answered = teler.answered;
    if status == CallStatus::Failed {
        report.end_reason = Some(EndReason::TelephonyError);
    }
    report
}
