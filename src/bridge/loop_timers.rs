//! A session loop's timers as one: the heartbeat, the call-log flush, the call's maximum
//! duration, the AI session's closing, the wait for FreJun's `start`, and the core's own timer
//! (tool fillers, idle flushes) share a single `Sleep`, set to the earliest of them.
//!
//! Six timers polled at every wake-up of the loop, 40 times a call-second, cost more than the
//! work some frames need; one timer that is reset only when its deadline moves (a timer fired,
//! the closing was rescheduled) costs one poll. When it fires, [`LoopTimers::due`] says which
//! deadlines have passed, earliest-ending first, and moves the periodic ones on.

use std::time::Duration;

use tokio::time::Instant;

/// The deadlines of one session loop.
#[derive(Debug)]
pub(super) struct LoopTimers {
    heartbeat_every: Duration,
    heartbeat_at: Instant,
    flush_every: Duration,
    flush_at: Instant,
    max_duration_at: Instant,
    closing_at: Instant,
    /// Until FreJun's `start` arrives.
    start_by: Option<Instant>,
}

/// What a wake-up of the timer found due.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Due {
    pub max_duration: bool,
    pub start_missing: bool,
    pub closing: bool,
    pub heartbeat: bool,
    pub flush: bool,
    pub core: bool,
}

impl LoopTimers {
    /// Timers for a loop starting `now`: the heartbeat and the flush run first at once (as a
    /// `tokio::time::interval` does) and then every period; the closing waits for
    /// [`Self::set_closing`] (the session loop moves it again when it fires, or ends the call),
    /// and the start for `start_timeout`.
    pub(super) fn new(
        now: Instant,
        heartbeat_every: Duration,
        flush_every: Duration,
        max_duration: Duration,
        start_timeout: Duration,
    ) -> LoopTimers {
        let max_duration_at = now + max_duration;
        LoopTimers {
            heartbeat_every,
            heartbeat_at: now,
            flush_every,
            flush_at: now,
            max_duration_at,
            // Past the call's end: never first until the AI says when its session expires.
            closing_at: max_duration_at + Duration::from_secs(1),
            start_by: Some(now + start_timeout),
        }
    }

    /// The earliest deadline, counting the core's `core_timer`.
    pub(super) fn next(&self, core_timer: Option<Instant>) -> Instant {
        let mut next = self
            .heartbeat_at
            .min(self.flush_at)
            .min(self.max_duration_at)
            .min(self.closing_at);
        if let Some(start_by) = self.start_by {
            next = next.min(start_by);
        }
        if let Some(core_timer) = core_timer {
            next = next.min(core_timer);
        }
        next
    }

    /// Which deadlines have passed at `now`; the heartbeat and the flush are moved a period on
    /// from `now` (late ticks are not caught up), the others stay until changed.
    pub(super) fn due(&mut self, now: Instant, core_timer: Option<Instant>) -> Due {
        let due = Due {
            max_duration: now >= self.max_duration_at,
            start_missing: self.start_by.is_some_and(|start_by| now >= start_by),
            closing: now >= self.closing_at,
            heartbeat: now >= self.heartbeat_at,
            flush: now >= self.flush_at,
            core: core_timer.is_some_and(|at| now >= at),
        };
        if due.heartbeat {
            self.heartbeat_at = now + self.heartbeat_every;
        }
        if due.flush {
            self.flush_at = now + self.flush_every;
        }
        due
    }

    /// FreJun's `start` arrived: its deadline no longer applies.
    pub(super) fn started(&mut self) {
        self.start_by = None;
    }

    /// The closing (of the AI session, or of a drain) is due at `at`.
    pub(super) fn set_closing(&mut self, at: Instant) {
        self.closing_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn timers(now: Instant) -> LoopTimers {
        LoopTimers::new(now, 5 * SECOND, 2 * SECOND, 60 * SECOND, 10 * SECOND)
    }

    #[test]
    fn the_heartbeat_and_the_flush_run_at_once_then_every_period() {
        let start = Instant::now();
        let mut timers = timers(start);
        assert_eq!(timers.next(None), start);
        let due = timers.due(start, None);
        assert!(due.heartbeat && due.flush);
        assert!(!due.max_duration && !due.start_missing && !due.closing && !due.core);
        assert_eq!(timers.next(None), start + 2 * SECOND);
        // A late wake-up moves the period on from when it ran, not from when it was due.
        let late = start + 2 * SECOND + Duration::from_millis(300);
        assert_eq!(
            timers.due(late, None),
            Due {
                flush: true,
                ..Due::default()
            }
        );
        assert_eq!(timers.next(None), start + 4300 * Duration::from_millis(1));
    }

    #[test]
    fn the_core_timer_counts_when_it_is_earliest() {
        let start = Instant::now();
        let mut timers = timers(start);
        timers.due(start, None);
        let core = start + Duration::from_millis(700);
        assert_eq!(timers.next(Some(core)), core);
        assert!(!timers.due(core - Duration::from_millis(1), Some(core)).core);
        assert!(timers.due(core, Some(core)).core);
    }

    #[test]
    fn the_start_deadline_applies_until_the_start() {
        let start = Instant::now();
        let mut timers = timers(start);
        assert!(timers.due(start + 10 * SECOND, None).start_missing);
        timers.started();
        assert!(!timers.due(start + 11 * SECOND, None).start_missing);
    }

    #[test]
    fn the_closing_fires_only_once_set() {
        let start = Instant::now();
        let mut timers = timers(start);
        timers.started();
        assert!(!timers.due(start + 59 * SECOND, None).closing);
        timers.set_closing(start + 30 * SECOND);
        assert_eq!(timers.next(None), start + 30 * SECOND);
        assert!(timers.due(start + 30 * SECOND, None).closing);
        timers.set_closing(start + 40 * SECOND);
        assert!(!timers.due(start + 31 * SECOND, None).closing);
        assert!(timers.due(start + 60 * SECOND, None).max_duration);
    }
}
