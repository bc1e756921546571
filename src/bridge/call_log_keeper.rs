//! The call-log keeper: one small task per live call that owns every MongoDB write the call
//! makes, so the audio loop never waits on the database.
//!
//! It applies the bridge's status reports (media started, media ended), writes progress batches
//! (transcript, usage, cost, metrics; through the instance's progress writer, which puts many
//! calls' batches in one command), acts on what the instance's lease renewer finds (a slot to
//! take back, a tenant suspended), and at the end writes the final state and frees the slot.
//! Writes are retried with backoff until MongoDB accepts them: an outage delays a call log, it
//! does not lose it. The task runs on the process's main runtime and is tracked, so a shutdown
//! waits for final writes (bounded by `server.shutdown_timeout_secs`) even after the HTTP
//! workers that ran the call have stopped.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bson::DateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::domain::call::record::CallProgress;
use crate::domain::call::status::StatusReport;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;
use crate::domain::time::after;
use crate::storage::{Storage, StorageError};

use super::lease_renewer::{LeaseNews, LeaseRenewer};
use super::progress_writer::ProgressWriter;

/// What a session hands its keeper.
#[derive(Debug)]
pub(crate) enum KeeperMessage {
    Status(StatusReport),
    Progress(CallProgress),
    /// The call is over: the last progress, the terminal status; then the slot is freed.
    Finish {
        progress: CallProgress,
        status: StatusReport,
    },
}

/// Why a keeper asks its session to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeeperEnd {
    /// The call lost its concurrency slot and could not take one back (the tenant is at its
    /// limit without it).
    SlotLost,
    /// A lease renewal round found the tenant suspended (the call ends on whichever instance
    /// holds it, within a third of the slot lease).
    TenantSuspended,
}

/// The session's end of the keeper.
#[derive(Debug, Clone)]
pub(crate) struct KeeperHandle {
    /// Boxed: the channel allocates its slots in blocks of 32, and a 400-byte message made
    /// that first block 13 KiB of every live call's memory.
    sender: mpsc::UnboundedSender<Box<KeeperMessage>>,
    end: Arc<OnceLock<KeeperEnd>>,
}

impl KeeperHandle {
    /// Queues a message; never blocks. (If the keeper is gone the process is shutting down
    /// hard; nothing more can be done for this call.)
    pub(crate) fn send(&self, message: KeeperMessage) {
        if self.sender.send(Box::new(message)).is_err() {
            tracing::error!("call-log keeper is gone; a call-log write was dropped");
        }
    }

    /// Why the keeper cancelled the session's token, if it did (the token's other cancellers,
    /// a shutdown, leave this empty).
    pub(crate) fn end(&self) -> Option<KeeperEnd> {
        self.end.get().copied()
    }
}

/// Who the keeper writes for and how.
#[derive(Debug, Clone)]
pub(crate) struct KeeperConfig {
    pub user_id: TenantId,
    pub call_id: CallId,
    pub slot_lease: Duration,
    /// The tenant's limit, for taking the slot back if it was lost.
    pub max_concurrent_calls: u32,
    /// Writes the progress batches (with other calls' where it can).
    pub progress: ProgressWriter,
    /// Renews the call's slot and owner leases, with the instance's other calls.
    pub leases: LeaseRenewer,
}

/// Starts the keeper of one call on `runtime`, tracked by `tracker`, in the caller's span (the
/// call's), which it keeps after the session ends. When the call must end (see [`KeeperEnd`])
/// the keeper cancels `session_end`: the token the session already waits on for a shutdown, so
/// that its loop polls one token rather than one per reason.
pub(crate) fn spawn_keeper(
    storage: Storage,
    config: KeeperConfig,
    session_end: CancellationToken,
    runtime: &tokio::runtime::Handle,
    tracker: &TaskTracker,
) -> KeeperHandle {
    let (sender, receiver) = mpsc::unbounded_channel();
    let ends = Ends {
        session_end,
        why: Arc::new(OnceLock::new()),
    };
    let handle = KeeperHandle {
        sender,
        end: ends.why.clone(),
    };
    let (lease, lease_news) = config
        .leases
        .register(config.user_id, config.call_id, runtime);
    let keeper = async move {
        // Renewed for as long as the keeper runs: a session that panicked leaves its lease to
        // expire, so the reaper closes the call as `instance_lost`.
        let _lease = lease;
        run(storage, config, receiver, lease_news, ends).await;
    }
    .instrument(tracing::Span::current());
    runtime.spawn(tracker.track_future(keeper));
    handle
}

async fn run(
    storage: Storage,
    config: KeeperConfig,
    mut receiver: mpsc::UnboundedReceiver<Box<KeeperMessage>>,
    mut lease_news: mpsc::UnboundedReceiver<LeaseNews>,
    ends: Ends,
) {
    // Every write below is boxed while it runs: the keeper waits for messages nearly all its
    // life, and a MongoDB write's future inline made its task 4.4 KiB of each live call's
    // memory for the few milliseconds a write takes.
    let mut pending = CallProgress::default();
    loop {
        tokio::select! {
            message = receiver.recv() => match message.map(|message| *message) {
                Some(KeeperMessage::Status(report)) => {
                    Box::pin(apply_status(&storage, &config, &report)).await;
                }
                Some(KeeperMessage::Progress(progress)) => {
                    merge(&mut pending, progress);
                    // Later batches that queued up meanwhile go in the same write.
                    while let Ok(message) = receiver.try_recv() {
                        match *message {
                            KeeperMessage::Progress(progress) => merge(&mut pending, progress),
                            other => {
                                Box::pin(write_progress(&config, std::mem::take(&mut pending))).await;
                                if Box::pin(finish_or_apply(&storage, &config, other)).await {
                                    return;
                                }
                            }
                        }
                    }
                    Box::pin(write_progress(&config, std::mem::take(&mut pending))).await;
                }
                Some(finish @ KeeperMessage::Finish { .. }) => {
                    if Box::pin(finish_or_apply(&storage, &config, finish)).await {
                        return;
                    }
                }
                None => {
                    // The session ended without a final report (it panicked): leave the slot
                    // lease to expire so the reaper closes the call as `instance_lost`.
                    tracing::error!(call_id = %config.call_id, "call session ended without a final report");
                    return;
                }
            },
            Some(news) = lease_news.recv() => match news {
                LeaseNews::SlotMissing => {
                    if !Box::pin(take_slot_back(&storage, &config)).await {
                        ends.end_session(KeeperEnd::SlotLost);
                    }
                }
                LeaseNews::TenantSuspended => ends.end_session(KeeperEnd::TenantSuspended),
            },
        }
    }
}

/// Applies a status or finishes; answers whether the keeper is done.
async fn finish_or_apply(storage: &Storage, config: &KeeperConfig, message: KeeperMessage) -> bool {
    match message {
        KeeperMessage::Status(report) => {
            apply_status(storage, config, &report).await;
            false
        }
        KeeperMessage::Progress(progress) => {
            write_progress(config, progress).await;
            false
        }
        KeeperMessage::Finish { progress, status } => {
            write_progress(config, progress).await;
            apply_status(storage, config, &status).await;
            let slots = storage.call_slots();
            retry("free the call's slot", config, 5, || {
                slots.release(config.user_id, config.call_id)
            })
            .await;
            true
        }
    }
}

/// Adds `later` to `pending` (batches arrive in order).
fn merge(pending: &mut CallProgress, later: CallProgress) {
    if pending.new_turns.is_empty() {
        pending.first_turn_index = later.first_turn_index;
    }
    for index in later.interrupted_turns {
        match index.checked_sub(pending.first_turn_index) {
            Some(offset) if offset < pending.new_turns.len() => {
                pending.new_turns[offset].interrupted = true;
            }
            _ => pending.interrupted_turns.push(index),
        }
    }
    pending.new_turns.extend(later.new_turns);
    pending.usage = later.usage.or(pending.usage.take());
    pending.cost_usd = later.cost_usd.or(pending.cost_usd);
    pending.metrics = later.metrics.or(pending.metrics.take());
}

async fn write_progress(config: &KeeperConfig, progress: CallProgress) {
    if progress.is_empty() {
        return;
    }
    let progress = Arc::new(progress);
    retry("write call progress", config, usize::MAX, || {
        config
            .progress
            .write(config.user_id, config.call_id, Arc::clone(&progress))
    })
    .await;
}

async fn apply_status(storage: &Storage, config: &KeeperConfig, report: &StatusReport) {
    let calls = storage.call_logs();
    retry("record the call's status", config, usize::MAX, || async {
        calls
            .apply_status(
                config.user_id,
                config.call_id,
                std::slice::from_ref(report),
                DateTime::now(),
            )
            .await
            .map(|_| ())
    })
    .await;
}

/// How the keeper tells its session to end, and why.
struct Ends {
    session_end: CancellationToken,
    why: Arc<OnceLock<KeeperEnd>>,
}

impl Ends {
    /// The first reason given is the one the session reads.
    fn end_session(&self, why: KeeperEnd) {
        let _ = self.why.set(why);
        self.session_end.cancel();
    }
}

/// The renewer found the call without a slot (freed by something that believed the call over,
/// or reaped during a long outage): it is taken back if the tenant is under its limit. The
/// answer is `false` only when the call holds no slot and cannot get one, so it must end. A
/// failed write keeps the call (the lease outlives several renewals; MongoDB may be back).
async fn take_slot_back(storage: &Storage, config: &KeeperConfig) -> bool {
    let now = DateTime::now();
    let lease_until = after(now, config.slot_lease);
    let retaken = storage
        .call_slots()
        .take(
            config.user_id,
            config.call_id,
            config.max_concurrent_calls,
            now,
            lease_until,
        )
        .await;
    match retaken {
        Ok(true) => {
            tracing::warn!("the call's concurrency slot was gone; it was taken again");
            true
        }
        Ok(false) => {
            tracing::warn!(
                "the call's concurrency slot was gone and the tenant is at its limit; \
                 ending the call"
            );
            false
        }
        Err(err) => {
            tracing::warn!(error = %err, "the call's concurrency slot was gone and cannot be taken again yet");
            true
        }
    }
}

/// Runs `write` until it succeeds, at most `attempts` times, backing off from 100 ms to 5 s.
/// `NotFound` is final: the call log is gone (deleted by an operator), nothing to retry.
async fn retry<F, Fut>(what: &str, config: &KeeperConfig, attempts: usize, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StorageError>>,
{
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=attempts {
        match write().await {
            Ok(()) => return,
            Err(StorageError::NotFound) => {
                tracing::warn!(call_id = %config.call_id, "cannot {what}: the call log is gone");
                return;
            }
            Err(err) => {
                tracing::warn!(call_id = %config.call_id, attempt, error = %err, "cannot {what}; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(call_id = %config.call_id, "gave up trying to {what}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::call::record::{TranscriptRole, TranscriptTurn, Usage};

    fn turn(text: &str) -> TranscriptTurn {
        TranscriptTurn {
            role: TranscriptRole::Assistant,
            text: text.into(),
            at: DateTime::from_millis(0),
            item_id: None,
            interrupted: false,
            tool: None,
        }
    }

    #[test]
    fn batches_merge_in_order_and_late_interruptions_find_their_turn() {
        let mut pending = CallProgress::default();
        merge(
            &mut pending,
            CallProgress {
                new_turns: vec![turn("a"), turn("b")],
                first_turn_index: 3,
                interrupted_turns: vec![1],
                ..CallProgress::default()
            },
        );
        merge(
            &mut pending,
            CallProgress {
                new_turns: vec![turn("c")],
                first_turn_index: 5,
                interrupted_turns: vec![4],
                usage: Some(Usage::default()),
                ..CallProgress::default()
            },
        );
        assert_eq!(pending.first_turn_index, 3);
        assert_eq!(pending.new_turns.len(), 3);
        assert!(pending.new_turns[1].interrupted, "turn 4 is still pending");
        assert_eq!(pending.interrupted_turns, vec![1]);
        assert_eq!(pending.usage, Some(Usage::default()));
    }
}
