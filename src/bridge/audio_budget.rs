//! A real-time budget for audio a peer sends: the audio accepted may run ahead of the wall
//! clock by a bounded burst, and no faster than a fixed multiple of real time after that.
//!
//! FreJun streams the caller at real time (one chunk per chunk length), so a stream that sends
//! much more is broken or hostile: without a budget one call could make us resample and forward
//! hours of audio in seconds (a core busy, its neighbours on the worker delayed, the tenant
//! billed). The budget is a token bucket counted in milliseconds of audio: it starts full
//! (`burst_ms`), refills at `rate` ms per wall-clock ms, and a frame it cannot pay for is
//! dropped before any work is done on it. Dropped audio is added up; past `flood_ms` the call
//! is a flood and ends.

use std::time::Instant;

use crate::settings::BridgeSettings;

/// The budget's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetLimits {
    /// Audio milliseconds credited per wall-clock millisecond (1.5: half again real time).
    pub rate: f64,
    /// The most audio, in milliseconds, that may arrive ahead of the wall clock at once.
    pub burst_ms: f64,
    /// Dropped audio, in milliseconds, after which the stream counts as a flood.
    pub flood_ms: f64,
}

impl BudgetLimits {
    /// The limits for FreJun's caller audio, from the `bridge.inbound_audio_*` settings.
    pub fn inbound(settings: &BridgeSettings) -> Self {
        Self {
            rate: settings.inbound_audio_rate_percent as f64 / 100.0,
            burst_ms: settings.inbound_audio_burst_ms as f64,
            flood_ms: settings.inbound_audio_flood_ms as f64,
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the budget: process it.
    Accept,
    /// Over the budget: skip it, unprocessed.
    Drop,
    /// Over the budget for long enough that the stream is a flood: end the call.
    Flood,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct AudioBudget {
    limits: BudgetLimits,
    credit_ms: f64,
    refilled_at: Instant,
    dropped_ms: f64,
}

impl AudioBudget {
    pub(crate) fn new(limits: BudgetLimits, now: Instant) -> Self {
        Self {
            limits,
            credit_ms: limits.burst_ms,
            refilled_at: now,
            dropped_ms: 0.0,
        }
    }

    /// Charges `audio_ms` of audio arriving at `now`.
    pub(crate) fn charge(&mut self, audio_ms: f64, now: Instant) -> Verdict {
        let elapsed_ms = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64()
            * 1_000.0;
        self.refilled_at = now;
        self.credit_ms = (self.credit_ms + elapsed_ms * self.limits.rate).min(self.limits.burst_ms);
        if audio_ms <= self.credit_ms {
            self.credit_ms -= audio_ms;
            return Verdict::Accept;
        }
        self.dropped_ms += audio_ms;
        if self.dropped_ms > self.limits.flood_ms {
            Verdict::Flood
        } else {
            Verdict::Drop
        }
    }

    /// Audio dropped so far, in milliseconds.
    pub(crate) fn dropped_ms(&self) -> u64 {
        self.dropped_ms as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: BudgetLimits = BudgetLimits {
        rate: 1.5,
        burst_ms: 2_000.0,
        flood_ms: 5_000.0,
    };

    #[test]
    fn a_real_time_stream_is_never_dropped() {
        let start = Instant::now();
        let mut budget = AudioBudget::new(LIMITS, start);
        // Ten minutes of 20 ms frames, each arriving on time, some a little late or early.
        for frame in 0..30_000u64 {
            let jitter = if frame % 7 == 0 { 15 } else { 0 };
            let at = start + Duration::from_millis(frame * 20 + jitter);
            assert_eq!(budget.charge(20.0, at), Verdict::Accept, "frame {frame}");
        }
        assert_eq!(budget.dropped_ms(), 0);
    }

    #[test]
    fn a_burst_up_to_the_allowance_passes_then_the_rest_is_dropped() {
        let start = Instant::now();
        let mut budget = AudioBudget::new(LIMITS, start);
        // 2 s arrive at once (a network stall catching up): accepted.
        for _ in 0..20 {
            assert_eq!(budget.charge(100.0, start), Verdict::Accept);
        }
        // Anything more at the same instant is dropped.
        assert_eq!(budget.charge(100.0, start), Verdict::Drop);
        // 100 ms later, 150 ms of credit has come back.
        let later = start + Duration::from_millis(100);
        assert_eq!(budget.charge(150.0, later), Verdict::Accept);
        assert_eq!(budget.charge(1.0, later), Verdict::Drop);
    }

    #[test]
    fn a_flood_forwards_at_most_about_one_and_a_half_times_real_time_then_ends() {
        let start = Instant::now();
        let mut budget = AudioBudget::new(LIMITS, start);
        let mut accepted_ms = 0.0;
        let mut verdict = Verdict::Accept;
        // 10 s of audio every 100 ms of wall time: a hundred times real time.
        let mut at = start;
        while verdict != Verdict::Flood {
            verdict = budget.charge(1_000.0, at);
            if verdict == Verdict::Accept {
                accepted_ms += 1_000.0;
            }
            at += Duration::from_millis(10);
        }
        let wall_ms = at.duration_since(start).as_millis() as f64;
        assert!(
            accepted_ms <= LIMITS.burst_ms + wall_ms * LIMITS.rate,
            "{accepted_ms} ms accepted in {wall_ms} ms"
        );
        assert!(budget.dropped_ms() > 5_000);
    }

    #[test]
    fn one_frame_larger_than_the_burst_is_never_processed() {
        let start = Instant::now();
        let mut budget = AudioBudget::new(LIMITS, start);
        let much_later = start + Duration::from_secs(3_600);
        assert_eq!(budget.charge(6_000.0, much_later), Verdict::Flood);
        let mut fresh = AudioBudget::new(LIMITS, start);
        assert_eq!(fresh.charge(2_500.0, start), Verdict::Drop);
    }
}
