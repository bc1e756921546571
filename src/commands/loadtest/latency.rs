//! Bridge latency from the timings of the two ends, which run in the load generator's process
//! and so share one monotonic clock: the simulated caller (FreJun's side) and the fake AI (the
//! fake OpenAI, or the fake ElevenLabs whose caller chunks count as appends and audio events
//! as deltas).
//!
//! Both ends record `(cumulative samples after a chunk, when it passed)`. A chunk is matched to
//! the other end by how much audio had to exist, never by message counts, so the bridge may
//! re-chunk freely (it appends one event per FreJun chunk, but sends FreJun chunks of its own
//! size):
//!
//! - **Inbound** (caller → fake): a caller chunk ending at cumulative `S` (caller rate) has
//!   reached the fake once the fake's input reaches `S × fake_rate / caller_rate` minus the
//!   bridge's resampler look-ahead (the resampler holds back the last few milliseconds until
//!   the next chunk arrives). Latency = that append's arrival − the caller's send.
//! - **Outbound** (fake → caller): a received chunk ending at cumulative `C` (8 kHz) needed the
//!   fake to have sent `C × fake_rate / 8000` plus the look-ahead (the resampler releases the
//!   chunk's last samples only when the audio after them arrives). Latency = the chunk's
//!   arrival − the first delta that reached that amount. This measures from the moment the last
//!   audio the chunk needed existed, so the time the bridge spends accumulating a chunk
//!   (`outbound_chunk_ms` of audio) is excluded by construction. At the end of a turn the
//!   bridge flushes its resampler and sends a partial chunk without waiting for look-ahead;
//!   such a chunk arrives before any delta reaching the look-ahead amount, and is measured
//!   from the delta that carried its last sample instead.
//!
//! A chunk no delta or append ever reached is *unmatched*; one whose matching message came
//! after it is *negative*. Both should be 0 and are reported, not hidden in the percentiles.
//! Percentiles are nearest-rank over the sorted values.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audio::resample::Resampler;

/// One point of a stream: `(cumulative samples after a chunk, when it passed)`, as the
/// simulated caller and the fakes record them.
pub(crate) type Timing = (u64, Instant);

/// The rate of everything voxbridge sends FreJun.
pub(crate) const CALLER_OUTBOUND_RATE_HZ: u32 = 8_000;

/// How one direction's audio maps from the sending end's timeline to the receiving end's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The rate of the caller's cumulative counts.
    pub caller_rate_hz: u32,
    /// The rate of the fake's cumulative counts (24 kHz for `audio/pcm`, 8 kHz for
    /// `audio/pcmu`; the agent's format rate for ElevenLabs).
    pub fake_rate_hz: u32,
    /// The bridge's resampler look-ahead in fake samples, rounded up (0 without resampling).
    pub lookahead: u64,
}

impl Geometry {
    /// Caller audio at `caller_rate_hz` resampled by the bridge to the fake's `fake_rate_hz`.
    pub(crate) fn inbound(caller_rate_hz: u32, fake_rate_hz: u32) -> Geometry {
        Geometry {
            caller_rate_hz,
            fake_rate_hz,
            lookahead: lookahead_samples(caller_rate_hz, fake_rate_hz, fake_rate_hz),
        }
    }

    /// The fake's output at `fake_rate_hz` resampled by the bridge to 8 kHz for FreJun.
    pub(crate) fn outbound(fake_rate_hz: u32) -> Geometry {
        Geometry {
            caller_rate_hz: CALLER_OUTBOUND_RATE_HZ,
            fake_rate_hz,
            lookahead: lookahead_samples(fake_rate_hz, CALLER_OUTBOUND_RATE_HZ, fake_rate_hz),
        }
    }

    /// The look-ahead in milliseconds (for the report).
    pub(crate) fn lookahead_ms(&self) -> f64 {
        self.lookahead as f64 * 1_000.0 / f64::from(self.fake_rate_hz.max(1))
    }

    /// `caller_samples` on the fake's timeline, rounded down.
    fn to_fake_floor(self, caller_samples: u64) -> u64 {
        let scaled = u128::from(caller_samples) * u128::from(self.fake_rate_hz)
            / u128::from(self.caller_rate_hz.max(1));
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// `caller_samples` on the fake's timeline, rounded up.
    fn to_fake_ceil(self, caller_samples: u64) -> u64 {
        let rate = u128::from(self.caller_rate_hz.max(1));
        let scaled = (u128::from(caller_samples) * u128::from(self.fake_rate_hz)).div_ceil(rate);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }
}

/// The look-ahead of voxbridge's `from_hz → to_hz` resampler counted in samples at
/// `counted_at_hz`, rounded up; 0 when the rates are equal (or the pair is unsupported, which
/// the bridge would not use either).
pub(crate) fn lookahead_samples(from_hz: u32, to_hz: u32, counted_at_hz: u32) -> u64 {
    let delay_ms = Resampler::new(from_hz, to_hz).map_or(0.0, |resampler| resampler.delay_ms());
    (delay_ms * f64::from(counted_at_hz) / 1_000.0)
        .ceil()
        .max(0.0) as u64
}

/// Latencies of one direction, gathered over many calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LatencyTally {
    /// Matched, non-negative latencies in milliseconds.
    pub millis: Vec<f64>,
    /// Chunks whose audio never (fully) showed up at the other end.
    pub unmatched: u64,
    /// Chunks whose matching message came after them: a broken assumption, never a latency.
    pub negative: u64,
}

impl LatencyTally {
    fn record(&mut self, from: Instant, to: Instant) {
        match to.checked_duration_since(from) {
            Some(elapsed) => self.millis.push(elapsed.as_secs_f64() * 1_000.0),
            None => self.negative += 1,
        }
    }
}

/// First entry of `timeline` (ordered by cumulative samples) that reaches `samples`.
fn first_reaching(timeline: &[Timing], samples: u64) -> Option<&Timing> {
    let index = timeline.partition_point(|(cumulative, _)| *cumulative < samples);
    timeline.get(index)
}

/// Matches every caller send of one call to the fake's appends (see the module docs).
pub(crate) fn match_inbound(
    sends: &[Timing],
    appends: &[Timing],
    geometry: Geometry,
    tally: &mut LatencyTally,
) {
    for &(sent, sent_at) in sends {
        let expected = geometry
            .to_fake_floor(sent)
            .saturating_sub(geometry.lookahead);
        match first_reaching(appends, expected) {
            Some(&(_, appended_at)) => tally.record(sent_at, appended_at),
            None => tally.unmatched += 1,
        }
    }
}

/// Matches every chunk one caller received to the fake's deltas (see the module docs).
pub(crate) fn match_outbound(
    received: &[Timing],
    deltas: &[Timing],
    geometry: Geometry,
    tally: &mut LatencyTally,
) {
    for &(cumulative, received_at) in received {
        let with_lookahead = geometry
            .to_fake_ceil(cumulative)
            .saturating_add(geometry.lookahead);
        let completing =
            first_reaching(deltas, with_lookahead).filter(|(_, delta_at)| *delta_at <= received_at);
        let source = completing.or_else(|| {
            // Released without look-ahead: the end-of-turn flush. The chunk's last sample came
            // in the first delta reaching its end (within the look-ahead's rounding).
            let end = geometry
                .to_fake_floor(cumulative)
                .saturating_sub(geometry.lookahead);
            first_reaching(deltas, end)
        });
        match source {
            Some(&(_, delta_at)) => tally.record(delta_at, received_at),
            None => tally.unmatched += 1,
        }
    }
}

/// Percentiles of a set of latencies, in milliseconds (`None` when there are none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Distribution {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    /// Matched latencies the percentiles are computed from.
    pub samples: u64,
    /// Chunks that could not be matched (see [`LatencyTally`]).
    pub unmatched: u64,
    /// Matches that came out negative (see [`LatencyTally`]).
    pub negative: u64,
}

/// Summarises a tally (sorting its values).
pub(crate) fn distribution(mut tally: LatencyTally) -> Distribution {
    tally.millis.sort_by(f64::total_cmp);
    let sorted = &tally.millis;
    Distribution {
        p50: percentile(sorted, 50.0).map(round_ms),
        p95: percentile(sorted, 95.0).map(round_ms),
        p99: percentile(sorted, 99.0).map(round_ms),
        max: sorted.last().copied().map(round_ms),
        samples: sorted.len() as u64,
        unmatched: tally.unmatched,
        negative: tally.negative,
    }
}

/// Nearest-rank percentile `p` (0–100) of ascending `sorted` values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Milliseconds to two decimals: finer digits are noise at these scales.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    /// A stream of `count` chunks of `chunk` samples, one every `every_ms`, the first at
    /// `first_ms`, with the cumulative count shifted by `offset` (a resampler's hold-back).
    fn stream(
        base: Instant,
        chunk: u64,
        count: u64,
        first_ms: u64,
        every_ms: u64,
        offset: i64,
    ) -> Vec<Timing> {
        (1..=count)
            .map(|k| {
                let cumulative = (chunk * k).saturating_add_signed(offset);
                (cumulative, at(base, first_ms + (k - 1) * every_ms))
            })
            .collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn distribution_sorts_and_counts() {
        let tally = LatencyTally {
            millis: vec![3.0, 1.0, 2.0, 10.0],
            unmatched: 2,
            negative: 1,
        };
        let summary = distribution(tally);
        assert_eq!(summary.p50, Some(2.0));
        assert_eq!(summary.p99, Some(10.0));
        assert_eq!(summary.max, Some(10.0));
        assert_eq!(summary.samples, 4);
        assert_eq!(summary.unmatched, 2);
        assert_eq!(summary.negative, 1);
        assert_eq!(distribution(LatencyTally::default()).p50, None);
    }

    #[test]
    fn bridge_lookaheads_are_a_few_milliseconds_in_fake_samples() {
        let inbound = Geometry::inbound(8_000, 24_000);
        assert!((40..=100).contains(&inbound.lookahead), "{inbound:?}");
        assert!((2.0..4.0).contains(&inbound.lookahead_ms()), "{inbound:?}");
        let outbound = Geometry::outbound(24_000);
        assert!((40..=100).contains(&outbound.lookahead), "{outbound:?}");
        // μ-law at 8 kHz passes through both ways.
        assert_eq!(Geometry::inbound(8_000, 8_000).lookahead, 0);
        assert_eq!(Geometry::outbound(8_000).lookahead, 0);
    }

    /// The assumption the matching rests on: after each piece of input, the resampler has
    /// output everything up to the input's end minus its stated look-ahead.
    #[test]
    fn resampler_output_never_lags_more_than_the_lookahead() {
        for (from, to) in [(8_000, 24_000), (16_000, 24_000), (24_000, 8_000)] {
            for chunk_ms in [20u64, 100] {
                let mut resampler = Resampler::new(from, to).expect("a bridge path");
                let lag = resampler.delay_ms() * f64::from(to) / 1_000.0;
                let chunk = (chunk_ms * u64::from(from) / 1_000) as usize;
                let tone = crate::audio::tone::sine(440.0, from, chunk * 50, 8_000.0);
                let mut output = Vec::new();
                let mut consumed = 0u64;
                for piece in tone.chunks(chunk) {
                    resampler.process(piece, &mut output);
                    consumed += piece.len() as u64;
                    let exact = consumed as f64 * f64::from(to) / f64::from(from);
                    assert!(
                        output.len() as f64 >= exact - lag,
                        "{from}→{to}, {chunk_ms} ms: {} output after {consumed} input, \
                         expected at least {exact} − {lag}",
                        output.len()
                    );
                    // And the look-ahead is real: the last few samples are held back.
                    assert!(
                        (output.len() as f64) < exact,
                        "{from}→{to} holds nothing back"
                    );
                }
            }
        }
    }

    #[test]
    fn inbound_matches_each_send_to_the_append_that_carried_it() {
        let base = Instant::now();
        let geometry = Geometry::inbound(8_000, 24_000);
        // 100 ms chunks sent every 100 ms; each arrives at the fake 3 ms later, resampled and
        // as far short of the caller's total as the look-ahead allows.
        let sends = stream(base, 800, 10, 0, 100, 0);
        let hold_back = -(geometry.lookahead as i64);
        let appends = stream(base, 2_400, 10, 3, 100, hold_back);
        let mut tally = LatencyTally::default();
        match_inbound(&sends, &appends, geometry, &mut tally);
        assert_eq!(tally.millis, vec![3.0; 10]);
        assert_eq!((tally.unmatched, tally.negative), (0, 0));
    }

    #[test]
    fn inbound_counts_audio_that_never_arrived() {
        let base = Instant::now();
        let geometry = Geometry::inbound(8_000, 8_000);
        let sends = stream(base, 800, 5, 0, 100, 0);
        let appends = stream(base, 800, 3, 2, 100, 0);
        let mut tally = LatencyTally::default();
        match_inbound(&sends, &appends, geometry, &mut tally);
        assert_eq!(tally.millis.len(), 3);
        assert_eq!(tally.unmatched, 2);
    }

    #[test]
    fn inbound_reports_an_append_before_its_send_as_negative() {
        let base = Instant::now();
        let geometry = Geometry::inbound(8_000, 8_000);
        let sends = vec![(800, at(base, 10))];
        let appends = vec![(800, at(base, 5))];
        let mut tally = LatencyTally::default();
        match_inbound(&sends, &appends, geometry, &mut tally);
        assert!(tally.millis.is_empty());
        assert_eq!(tally.negative, 1);
    }

    #[test]
    fn outbound_measures_from_the_delta_that_completed_each_chunk() {
        let base = Instant::now();
        let geometry = Geometry::outbound(24_000);
        // Deltas of 20 ms (480 samples at 24 kHz) every 20 ms; the bridge sends 100 ms chunks
        // (800 samples at 8 kHz). Chunk k needs 2400 k + look-ahead of fake audio, which the
        // (5k+1)-th delta brings; it arrives 4 ms after that delta.
        let deltas = stream(base, 480, 50, 0, 20, 0);
        let received: Vec<Timing> = (1..=9u64)
            .map(|k| (800 * k, at(base, (5 * k) * 20 + 4)))
            .collect();
        let mut tally = LatencyTally::default();
        match_outbound(&received, &deltas, geometry, &mut tally);
        assert_eq!(tally.millis, vec![4.0; 9], "accumulation is not latency");
        assert_eq!((tally.unmatched, tally.negative), (0, 0));
    }

    #[test]
    fn outbound_end_of_turn_flush_is_measured_from_the_last_delta() {
        let base = Instant::now();
        let geometry = Geometry::outbound(24_000);
        // A 250 ms turn in 100 ms deltas: the flush sends a 50 ms partial chunk 1 ms after the
        // last delta; the next turn's first delta only comes 100 ms later.
        let deltas = vec![
            (2_400, at(base, 0)),
            (4_800, at(base, 100)),
            (6_000, at(base, 200)),
            (8_400, at(base, 300)),
        ];
        let received = vec![
            (800, at(base, 102)),   // completed by the second delta
            (1_600, at(base, 201)), // completed by the turn's last delta
            (2_000, at(base, 201)), // the flushed partial chunk
        ];
        let mut tally = LatencyTally::default();
        match_outbound(&received, &deltas, geometry, &mut tally);
        assert_eq!(tally.millis, vec![2.0, 1.0, 1.0]);
        assert_eq!((tally.unmatched, tally.negative), (0, 0));
    }

    #[test]
    fn outbound_audio_the_fake_never_sent_is_unmatched_or_negative() {
        let base = Instant::now();
        let geometry = Geometry::outbound(8_000);
        let deltas = vec![(800, at(base, 0)), (1_600, at(base, 100))];
        let received = vec![
            (1_600, at(base, 50)), // before the delta that carried it
            (2_400, at(base, 150)),
        ];
        let mut tally = LatencyTally::default();
        match_outbound(&received, &deltas, geometry, &mut tally);
        assert_eq!(tally.negative, 1);
        assert_eq!(tally.unmatched, 1);
        assert!(tally.millis.is_empty());
    }
}
