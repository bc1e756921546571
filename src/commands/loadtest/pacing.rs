//! Pacing: whether audio flowed at the pace of a real call, in both directions.
//!
//! - **Send lag** is the load generator's own health: how late each paced caller chunk went
//!   out compared with an ideal clock started at the call's first chunk. A generator that
//!   cannot keep up sends late, and every latency it measures is then suspect, so the report
//!   warns when the 99th percentile exceeds [`SEND_LAG_WARN_MS`].
//! - **Outbound stalls** are the bridge's: while the caller is streaming, the echoed audio
//!   should come back as steadily as it went out, so a gap between consecutive received chunks
//!   longer than [`stall_threshold`] is counted as a stall.

use std::time::{Duration, Instant};

use super::latency::Timing;

/// Send-lag 99th percentile above which latency figures are flagged as untrustworthy.
pub(crate) const SEND_LAG_WARN_MS: f64 = 20.0;

/// How late each chunk of one call was sent, in milliseconds (never negative), given the
/// caller's send timings at `rate_hz`. The ideal clock starts at the first chunk, which is
/// therefore never late.
pub(crate) fn send_lags_ms(sends: &[Timing], rate_hz: u32, out: &mut Vec<f64>) {
    let Some(&(_, first_at)) = sends.first() else {
        return;
    };
    let rate = u64::from(rate_hz.max(1));
    let mut sent_before = 0u64;
    for &(cumulative, sent_at) in sends {
        let offset = Duration::from_nanos(sent_before.saturating_mul(1_000_000_000) / rate);
        let due = first_at + offset;
        let late = sent_at.saturating_duration_since(due);
        out.push(late.as_secs_f64() * 1_000.0);
        sent_before = cumulative;
    }
}

/// The longest gap between two received chunks that is not a stall: two of the largest
/// chunks' worth of audio plus 100 ms of scheduling slack.
pub(crate) fn stall_threshold(largest_chunk_ms: u32) -> Duration {
    Duration::from_millis(2 * u64::from(largest_chunk_ms) + 100)
}

/// Gaps longer than `threshold` between consecutive received chunks that ended before
/// `streaming_until` (the caller's last send: after it, silence is expected).
pub(crate) fn outbound_stalls(
    received: &[Timing],
    threshold: Duration,
    streaming_until: Instant,
) -> u64 {
    received
        .windows(2)
        .filter(|pair| match pair {
            [(_, earlier), (_, later)] => {
                *later <= streaming_until && later.saturating_duration_since(*earlier) > threshold
            }
            _ => false,
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn send_lag_is_measured_against_the_first_chunks_clock() {
        let base = Instant::now();
        // 100 ms chunks at 8 kHz: due at 0, 100, 200, 300 ms.
        let sends = vec![
            (800, at(base, 0)),
            (1_600, at(base, 100)),
            (2_400, at(base, 230)),
            (3_200, at(base, 300)),
        ];
        let mut lags = Vec::new();
        send_lags_ms(&sends, 8_000, &mut lags);
        assert_eq!(lags, vec![0.0, 0.0, 30.0, 0.0]);
    }

    #[test]
    fn send_lag_of_no_sends_is_nothing() {
        let mut lags = Vec::new();
        send_lags_ms(&[], 8_000, &mut lags);
        assert!(lags.is_empty());
    }

    #[test]
    fn stalls_are_long_gaps_while_the_caller_streams() {
        let base = Instant::now();
        let threshold = stall_threshold(100);
        assert_eq!(threshold, Duration::from_millis(300));
        let received = vec![
            (800, at(base, 100)),
            (1_600, at(base, 200)),
            (2_400, at(base, 600)), // a 400 ms gap: a stall
            (3_200, at(base, 700)),
            (4_000, at(base, 1_500)), // after the caller stopped: not counted
        ];
        assert_eq!(outbound_stalls(&received, threshold, at(base, 1_000)), 1);
        assert_eq!(outbound_stalls(&received, threshold, at(base, 2_000)), 2);
        assert_eq!(outbound_stalls(&[], threshold, base), 0);
    }
}
