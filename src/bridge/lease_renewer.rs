//! The lease renewer: one task per instance that keeps its live calls' leases alive (the
//! concurrency slot and the call log's `owner`) and checks whether their tenants were
//! suspended, for all of them at once.
//!
//! Each call's keeper used to do this itself every third of `bridge.slot_lease_secs`: two
//! updates and a read per call, and a timer per call waking the keepers' thread. Now the
//! instance does it on one timer, in four commands whatever the number of calls: the slots'
//! update and read-back ([`CallSlots::extend_many`]), the owners' update, and one read of the
//! suspended tenants. A call is renewed at most a third of the lease after its last renewal,
//! as before.
//!
//! What a renewal round finds goes to the call's keeper as [`LeaseNews`], and the keeper acts
//! on it in order with its own writes:
//! - a slot that is gone (freed by something that believed the call over, or reaped during a
//!   long outage): the keeper takes it back alone if the tenant is under its limit, or ends
//!   the call (`KeeperEnd::SlotLost`);
//! - a tenant suspended: the keeper ends the call (`KeeperEnd::TenantSuspended`).
//!
//! A round that cannot reach MongoDB changes nothing: the lease outlives two more rounds.
//!
//! [`CallSlots::extend_many`]: crate::storage::call_slots::CallSlots::extend_many

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bson::DateTime;
use tokio::sync::mpsc;

use crate::domain::cluster::InstanceId;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::time::after;
use crate::storage::Storage;
use crate::storage::call_slots::distinct_tenants;

/// Most calls in one round's commands: each command's id lists stay far below MongoDB's
/// 16 MiB, and a round of a very large instance is a few commands, not one huge one.
const MAX_CALLS_PER_COMMAND: usize = 1_000;

/// What a renewal round found about one call, for its keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseNews {
    /// The call holds no concurrency slot any more.
    SlotMissing,
    /// The call's tenant is suspended.
    TenantSuspended,
}

/// The instance's renewer (cheap to clone).
#[derive(Clone)]
pub struct LeaseRenewer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LeaseRenewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRenewer")
            .field("lease", &self.inner.lease)
            .finish()
    }
}

struct Inner {
    storage: Storage,
    owner: InstanceId,
    lease: Duration,
    calls: Mutex<HashMap<CallId, LiveCall>>,
    /// Set once the renewal loop runs (started by the first registration).
    started: OnceLock<()>,
}

struct LiveCall {
    user_id: TenantId,
    news: mpsc::UnboundedSender<LeaseNews>,
}

/// A call's place in the renewer; dropping it (when the keeper ends) stops the renewals.
#[must_use = "the call is renewed only while its registration is kept"]
pub struct LeaseRegistration {
    inner: Arc<Inner>,
    call_id: CallId,
}

impl Drop for LeaseRegistration {
    fn drop(&mut self) {
        lock(&self.inner.calls).remove(&self.call_id);
    }
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Calls the round renewed (or tried to).
    pub calls: usize,
    /// Calls found without a slot; their keepers were told.
    pub slots_missing: usize,
    /// Calls whose call log no longer names this instance (or is gone).
    pub owners_not_renewed: u64,
    /// Calls of suspended tenants; their keepers were told.
    pub suspended: usize,
    /// Commands that failed (MongoDB unreachable, say); the next round tries again.
    pub failures: usize,
}

impl LeaseRenewer {
    /// A renewer for `owner`'s calls whose leases last `lease` and are renewed every third of
    /// it.
    pub fn new(storage: Storage, owner: InstanceId, lease: Duration) -> LeaseRenewer {
        LeaseRenewer {
            inner: Arc::new(Inner {
                storage,
                owner,
                lease,
                calls: Mutex::new(HashMap::new()),
                started: OnceLock::new(),
            }),
        }
    }

    /// Renews the tenant's call `call_id` from now on, on a loop started on `runtime` by the
    /// first call. The receiver gets what rounds find about the call.
    pub fn register(
        &self,
        user_id: TenantId,
        call_id: CallId,
        runtime: &tokio::runtime::Handle,
    ) -> (LeaseRegistration, mpsc::UnboundedReceiver<LeaseNews>) {
        let (news, receiver) = mpsc::unbounded_channel();
        lock(&self.inner.calls).insert(call_id, LiveCall { user_id, news });
        self.inner.started.get_or_init(|| {
            runtime.spawn(run(Arc::downgrade(&self.inner)));
        });
        let registration = LeaseRegistration {
            inner: Arc::clone(&self.inner),
            call_id,
        };
        (registration, receiver)
    }

    /// One renewal round over every registered call (the loop runs one every third of the
    /// lease; tests call it directly).
    pub async fn renew_all(&self) -> RoundReport {
        renew_all(&self.inner).await
    }
}

/// Every third of the lease, a round; ends once the renewer is gone.
async fn run(inner: Weak<Inner>) {
    let Some(every) = inner.upgrade().map(|inner| inner.lease / 3) else {
        return;
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A round late (MongoDB slow) is not followed by a burst of catch-up rounds.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let report = renew_all(&inner).await;
        if report.failures > 0 {
            tracing::warn!(
                calls = report.calls,
                failures = report.failures,
                "cannot renew the live calls' leases; the next round tries again"
            );
        }
    }
}

async fn renew_all(inner: &Inner) -> RoundReport {
    let calls: Vec<(TenantId, CallId)> = lock(&inner.calls)
        .iter()
        .map(|(call_id, call)| (call.user_id, *call_id))
        .collect();
    let mut report = RoundReport {
        calls: calls.len(),
        ..RoundReport::default()
    };
    for chunk in calls.chunks(MAX_CALLS_PER_COMMAND) {
        renew_chunk(inner, chunk, &mut report).await;
    }
    report
}

async fn renew_chunk(inner: &Inner, calls: &[(TenantId, CallId)], report: &mut RoundReport) {
    let lease_until = after(DateTime::now(), inner.lease);

    match inner
        .storage
        .call_slots()
        .extend_many(calls, lease_until)
        .await
    {
        Ok(holding) => {
            let missing: Vec<CallId> = calls
                .iter()
                .map(|(_, call_id)| *call_id)
                .filter(|call_id| !holding.contains(call_id))
                .collect();
            report.slots_missing += tell(inner, &missing, LeaseNews::SlotMissing);
        }
        Err(err) => {
            report.failures += 1;
            tracing::warn!(error = %err, "cannot renew the live calls' slot leases");
        }
    }

    match inner
        .storage
        .call_logs()
        .renew_owner_of_calls(calls, &inner.owner, lease_until)
        .await
    {
        Ok(held) => {
            let not_renewed = (calls.len() as u64).saturating_sub(held);
            if not_renewed > 0 {
                // Its call log deleted by an operator, or claimed by another instance: nothing
                // to do here, the stream's own end settles the call.
                tracing::warn!(
                    owner = %inner.owner,
                    not_renewed,
                    "call logs no longer naming this instance as their live owner"
                );
            }
            report.owners_not_renewed += not_renewed;
        }
        Err(err) => {
            report.failures += 1;
            tracing::warn!(error = %err, "cannot renew the live calls' owner leases");
        }
    }

    let tenants = distinct_tenants(calls);
    match inner.storage.users().suspended_among(&tenants).await {
        Ok(suspended) if !suspended.is_empty() => {
            let ended: Vec<CallId> = calls
                .iter()
                .filter(|(user_id, _)| suspended.contains(user_id))
                .map(|(_, call_id)| *call_id)
                .collect();
            report.suspended += tell(inner, &ended, LeaseNews::TenantSuspended);
        }
        Ok(_) => {}
        // The calls go on: suspension is checked again at the next round.
        Err(err) => {
            report.failures += 1;
            tracing::warn!(error = %err, "cannot read whether the live calls' tenants are suspended");
        }
    }
}

/// Sends `news` to the keepers of `calls` still registered; answers how many were told.
fn tell(inner: &Inner, calls: &[CallId], news: LeaseNews) -> usize {
    if calls.is_empty() {
        return 0;
    }
    let live = lock(&inner.calls);
    calls
        .iter()
        .filter_map(|call_id| live.get(call_id))
        .filter(|call| call.news.send(news).is_ok())
        .count()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map holds no invariant a panicking holder could break halfway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
