//! The session records of a realtime fake (one per WebSocket), shared by its connection tasks
//! and the test: registered as sessions open, counted live while their task runs, copied out
//! for assertions, and waited on without polling. The fake OpenAI and the fake ElevenLabs keep
//! their records here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Locks a mutex, ignoring poisoning: a test that panicked while holding a record must not
/// turn every later call into a second, confusing panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every session's record, in the order they opened.
pub(crate) struct SessionRegistry<R> {
    sessions: Mutex<Vec<Arc<Mutex<R>>>>,
    live: AtomicUsize,
    /// Tasks inside [`SessionRegistry::wait_for`]; changes notify only when there are some,
    /// so a load test pays nothing for the notification.
    waiters: AtomicUsize,
    changes: Notify,
}

impl<R: Clone> SessionRegistry<R> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            changes: Notify::new(),
        })
    }

    /// Wakes [`SessionRegistry::wait_for`] callers after a record changed.
    pub(crate) fn changed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changes.notify_waiters();
        }
    }

    /// Adds a session's record; the guard counts the session as live until dropped.
    pub(crate) fn register(self: &Arc<Self>, record: Arc<Mutex<R>>) -> LiveGuard<R> {
        lock(&self.sessions).push(record);
        self.live.fetch_add(1, Ordering::SeqCst);
        self.changed();
        LiveGuard {
            registry: Arc::clone(self),
        }
    }

    /// The records themselves, to read several fields under one lock each.
    pub(crate) fn records(&self) -> Vec<Arc<Mutex<R>>> {
        lock(&self.sessions).iter().map(Arc::clone).collect()
    }

    /// A copy of every record.
    pub(crate) fn snapshot(&self) -> Vec<R> {
        self.records()
            .iter()
            .map(|record| lock(record).clone())
            .collect()
    }

    /// Sessions opened so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Sessions whose task is still running.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until `check` holds (evaluated on every change, at most once per millisecond);
    /// `false` if it still does not hold after `timeout`.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = WaiterGuard(&self.waiters);
        loop {
            let notified = self.changes.notified();
            tokio::pin!(notified);
            // Registered before checking, so a change between the check and the wait is not
            // missed.
            notified.as_mut().enable();
            if check() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check();
            }
            // Coalesce bursts of changes (a load test makes thousands per second).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Counts one session as live while its task runs.
pub(crate) struct LiveGuard<R: Clone> {
    registry: Arc<SessionRegistry<R>>,
}

impl<R: Clone> Drop for LiveGuard<R> {
    fn drop(&mut self) {
        self.registry.live.fetch_sub(1, Ordering::SeqCst);
        self.registry.changed();
    }
}

/// Decrements the waiter count when a wait ends, however it ends.
struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
