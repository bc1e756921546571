//! The progress writer: one task per instance that writes live calls' progress batches
//! (transcript turns, usage, cost, metrics) for their call-log keepers, many calls in one
//! MongoDB command.
//!
//! Each keeper used to write its own batches: about 30 updates per call-minute under the load
//! generator, each a round trip through the driver and wake-ups of the main runtime's thread.
//! That was a sixth to a fifth of the server's CPU and nearly all of MongoDB's
//! (docs/benchmarks.md, "MongoDB writes gathered across calls"). Now a keeper hands its batch
//! here and waits for the outcome. The writer waits `bridge.log_batch_window_ms` after a batch
//! arrives, then writes every batch that came in meanwhile in one `update` command.
//!
//! What a call log sees does not change: a keeper learns the outcome of each write before it
//! makes the next (so a call's writes keep their order), retries a failure with backoff, and a
//! crash loses at most the flush interval plus this window.
//!
//! - The command matched every call log: each keeper hears `Ok`.
//! - One did not match or had an error: MongoDB does not say which (a call log deleted, or turns
//!   written by an earlier attempt), so each batch is written alone with
//!   `CallLogs::record_progress`, which is idempotent, and each keeper hears its own outcome.
//!   So does a command MongoDB refuses as a whole (say, too large, after an outage let every
//!   call's batch grow).
//! - MongoDB unreachable: every keeper hears the error and retries with its own backoff.
//! - A batch that needs two updates, a window of 0, or a writer that is gone: the keeper's
//!   batch is written alone, as before.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bson::DateTime;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use crate::domain::call::record::CallProgress;
use crate::domain::ids::{CallId, TenantId};
use crate::storage::call_logs::CallLogs;
use crate::storage::call_progress::needs_two_updates;
use crate::storage::{Storage, StorageError};
use crate::telemetry::metrics;

/// Most calls' batches in one command: well under MongoDB's 16 MiB for a command with every
/// batch a few KiB of transcript.
const MAX_CALLS_PER_COMMAND: usize = 500;

/// The keepers' handle on the instance's writer (cheap to clone).
#[derive(Clone)]
pub struct ProgressWriter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProgressWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressWriter")
            .field("window", &self.inner.window)
            .finish()
    }
}

struct Inner {
    storage: Storage,
    window: Duration,
    /// Started by the first write, on the runtime the keepers run on.
    jobs: OnceLock<mpsc::UnboundedSender<Job>>,
}

/// One call's batch, and where its outcome goes.
struct Job {
    user_id: TenantId,
    call_id: CallId,
    progress: Arc<CallProgress>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

impl ProgressWriter {
    /// A writer that gathers batches for `window` (0: every batch is written alone).
    pub fn new(storage: Storage, window: Duration) -> ProgressWriter {
        ProgressWriter {
            inner: Arc::new(Inner {
                storage,
                window,
                jobs: OnceLock::new(),
            }),
        }
    }

    /// Writes the tenant's call `call_id`'s batch, with others gathered meanwhile when it can.
    /// Call from the runtime the keepers run on.
    pub async fn write(
        &self,
        user_id: TenantId,
        call_id: CallId,
        progress: Arc<CallProgress>,
    ) -> Result<(), StorageError> {
        if !self.inner.window.is_zero() && !needs_two_updates(&progress) {
            let (done, outcome) = oneshot::channel();
            let job = Job {
                user_id,
                call_id,
                progress: Arc::clone(&progress),
                done,
            };
            if self.jobs().send(job).is_ok() {
                if let Ok(result) = outcome.await {
                    return result;
                }
            }
        }
        self.inner
            .storage
            .call_logs()
            .record_progress(user_id, call_id, &progress, DateTime::now())
            .await
    }

    fn jobs(&self) -> &mpsc::UnboundedSender<Job> {
        self.inner.jobs.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            // Not tracked for shutdown: the keepers are, and each waits here for its outcome,
            // so the process stays up while anything is queued.
            tokio::spawn(run(
                self.inner.storage.call_logs(),
                self.inner.window,
                receiver,
            ));
            sender
        })
    }
}

async fn run(calls: CallLogs, window: Duration, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // After a full command, what is already queued goes at once.
    let mut backlog = false;
    while let Some(first) = jobs.recv().await {
        if !backlog {
            // Batches arriving during the window queue in the channel without waking this task.
            tokio::time::sleep(window).await;
        }
        let mut batch = vec![first];
        while batch.len() < MAX_CALLS_PER_COMMAND {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        backlog = batch.len() == MAX_CALLS_PER_COMMAND;
        write_together(&calls, batch).await;
    }
}

/// One command for the whole batch; each alone when that cannot tell every call its outcome.
async fn write_together(calls: &CallLogs, batch: Vec<Job>) {
    let now = DateTime::now();
    let batches: Vec<_> = batch
        .iter()
        .map(|job| (job.user_id, job.call_id, &*job.progress))
        .collect();
    let outcome = calls.record_progress_of_calls(&batches, now).await;
    metrics::call_log_batch(batch.len());
    match outcome {
        Ok(true) => {
            for job in batch {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(err @ StorageError::Unavailable(_)) => {
            // Each keeper retries with its own backoff.
            for job in batch {
                let _ = job.done.send(Err(err.clone()));
            }
        }
        // A statement missed or failed, or MongoDB refused the command itself (one too large
        // after an outage let batches grow): each alone, which are well within its limits.
        Ok(false) | Err(_) => {
            let alone = batch
                .iter()
                .map(|job| calls.record_progress(job.user_id, job.call_id, &job.progress, now));
            let outcomes = join_all(alone).await;
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.done.send(outcome);
            }
        }
    }
}
