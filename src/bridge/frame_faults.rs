//! Malformed frames from a peer: counted, logged as a summary at most once per interval, and
//! fatal past a limit. One WARN per bad frame would let a peer write the log at line rate
//! (hundreds of thousands of one-byte frames a second); a peer that sends nothing but garbage is
//! broken, so after `limit` bad frames its call ends.

use std::time::{Duration, Instant};

/// What the caller should do about one more bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Nothing to log now; skip the frame.
    Skip,
    /// Log a summary: `n` bad frames since the last summary (this one included).
    Log(u64),
    /// The limit is passed: end the call.
    Limit,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct FrameFaults {
    limit: u64,
    log_interval: Duration,
    total: u64,
    since_log: u64,
    logged_at: Option<Instant>,
}

impl FrameFaults {
    pub(crate) fn new(limit: u64, log_interval: Duration) -> Self {
        Self {
            limit,
            log_interval,
            total: 0,
            since_log: 0,
            logged_at: None,
        }
    }

    /// Counts one bad frame seen at `now`.
    pub(crate) fn record(&mut self, now: Instant) -> FaultAction {
        self.total += 1;
        self.since_log += 1;
        if self.total > self.limit {
            return FaultAction::Limit;
        }
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.log_interval);
        if due {
            self.logged_at = Some(now);
            let count = self.since_log;
            self.since_log = 0;
            FaultAction::Log(count)
        } else {
            FaultAction::Skip
        }
    }

    /// Bad frames so far.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fault_is_logged_then_one_summary_per_interval() {
        let start = Instant::now();
        let mut faults = FrameFaults::new(1_000, Duration::from_secs(5));
        assert_eq!(faults.record(start), FaultAction::Log(1));
        let mut logged = Vec::new();
        for ms in 1..=12_000u64 {
            if ms % 20 == 0 {
                let at = start + Duration::from_millis(ms);
                if let FaultAction::Log(n) = faults.record(at) {
                    logged.push((ms, n));
                }
            }
        }
        // 600 faults in 12 s: summaries at 5 s and 10 s, each counting what came since.
        assert_eq!(logged, vec![(5_000, 250), (10_000, 250)]);
        assert_eq!(faults.total(), 601);
    }

    #[test]
    fn past_the_limit_the_call_ends() {
        let now = Instant::now();
        let mut faults = FrameFaults::new(3, Duration::from_secs(5));
        for _ in 0..3 {
            assert_ne!(faults.record(now), FaultAction::Limit);
        }
        assert_eq!(faults.record(now), FaultAction::Limit);
    }
}
