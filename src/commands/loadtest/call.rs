//! One simulated call of a load test, played as FreJun would: fetch the stream flow, open the
//! media WebSocket, send `start`, stream a tone in real time for the call's duration, hang up.
//!
//! The outcome keeps what the report needs and nothing more: counts, the per-chunk timings of
//! both directions (for latency and pacing), the caller's protocol violations, and why the call
//! failed if it did. A call is ok when it connected, streamed its whole duration, got at least
//! half of its audio back as echo, saw no protocol violation and ended by its own hang-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::domain::call::EndReason;
use crate::sim::caller::{CallSummary, CallerError, SimulatedCaller};
use crate::sim::frejun_requests::{FlowError, FlowRequest, request_stream_flow};

use super::latency::Timing;

/// How long the media WebSocket may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Share of the sent audio that must come back for the echo to count.
const MIN_ECHO_SHARE: f64 = 0.5;

/// How often (in chunks) a streaming call looks whether the server has closed on it.
const CLOSE_CHECK_EVERY: u64 = 10;

/// Peak amplitude of the caller's tone: about -20 dBFS.
pub const TONE_AMPLITUDE: f64 = 3_277.0;

/// The tone of call `index`: 300–1000 Hz in 50 Hz steps, so that every 20 ms chunk holds whole
/// periods and one chunk repeated is a continuous tone.
pub(crate) fn tone_hz(index: usize) -> f64 {
    300.0 + 50.0 * (index % 15) as f64
}

/// Everything one call needs.
#[derive(Debug, Clone)]
pub(crate) struct CallPlan {
    pub index: usize,
    /// After the first call's start.
    pub starts_after: Duration,
    pub streams_for: Duration,
    pub flow_url: String,
    pub flow: FlowRequest,
    /// One inbound chunk of the call's tone, repeated for the whole call.
    pub chunk: Arc<Vec<i16>>,
}

/// Calls in each state, for the progress line, the resource samples and the metrics check
/// (which compares the server's live-calls gauge with `live`, allowing for the calls in
/// between states around its scrape).
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    /// Calls streaming now (from the media WebSocket opening to the end of the hang-up).
    pub live: Arc<AtomicUsize>,
    pub ok: AtomicUsize,
    pub failed: AtomicUsize,
    /// Calls past their start time whose media WebSocket is not open yet (flow request,
    /// upgrade).
    pub placing: AtomicUsize,
    /// Live calls that sent their hang-up and wait for the server's close.
    pub hanging_up: AtomicUsize,
    /// Calls that have gone live so far.
    pub connected: AtomicUsize,
    /// Calls that have stopped being live so far.
    pub disconnected: AtomicUsize,
}

/// The counters at one moment (each read on its own: a call changing state meanwhile may be
/// seen in both states or neither).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallsSnapshot {
    pub live: usize,
    pub placing: usize,
    pub hanging_up: usize,
    pub connected: usize,
    pub disconnected: usize,
}

impl CallCounters {
    pub(crate) fn snapshot(&self) -> CallsSnapshot {
        CallsSnapshot {
            live: self.live.load(Ordering::Relaxed),
            placing: self.placing.load(Ordering::Relaxed),
            hanging_up: self.hanging_up.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
        }
    }

    /// Whether each of `calls` is live or over (none is still to start or connecting).
    pub(crate) fn all_up_or_over(&self, calls: usize) -> bool {
        let over = self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.live.load(Ordering::Relaxed) + over >= calls
    }
}

/// Counts a call in one state (a gauge of [`CallCounters`]) while it exists.
struct InState<'a>(&'a AtomicUsize);

impl<'a> InState<'a> {
    fn enter(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InState(gauge)
    }
}

impl Drop for InState<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a call as live while it exists, and its going live and ending.
struct LiveGuard<'a>(&'a CallCounters);

impl<'a> LiveGuard<'a> {
    fn new(counters: &'a CallCounters) -> Self {
        counters.live.fetch_add(1, Ordering::Relaxed);
        counters.connected.fetch_add(1, Ordering::Relaxed);
        LiveGuard(counters)
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
        self.0.disconnected.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a call ended as far as the generator can tell, to compare with the server's
/// calls-ended and admission-refusal counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// The bridge's end reason as the caller learnt it: `caller_hung_up` after its own
    /// hang-up was answered, or the reason in the close frame the server sent first.
    Reason(String),
    /// Refused before the bridge took it: the flow answered `hangup`, or the media WebSocket
    /// upgrade was refused. The server counts an admission refusal (and, for some refusals,
    /// a call ended by a reason the generator does not learn).
    Refused,
    /// Anything else (unreachable, timed out, a socket dropped without a close frame): the
    /// generator cannot tell what the server recorded.
    #[default]
    Unknown,
}

impl CallEnd {
    /// The reason in a close frame the server sent, when it is one of the bridge's end reasons
    /// (a plain `snake_case` word); the bridge puts nothing else there for a call it ended,
    /// anything else (`duplicate stream`) is [`CallEnd::Unknown`].
    fn from_close_reason(reason: &str) -> CallEnd {
        let plain = (1..=64).contains(&reason.len())
            && reason
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'_');
        if plain {
            CallEnd::Reason(reason.to_owned())
        } else {
            CallEnd::Unknown
        }
    }
}

/// Why a call failed: a short reason to group by, and the full message of one example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub reason: String,
    pub detail: String,
}

impl Failure {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// What one call did.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOutcome {
    pub index: usize,
    pub failure: Option<Failure>,
    /// Samples sent, at the inbound rate.
    pub sent_samples: u64,
    /// The inbound rate the flow asked for.
    pub inbound_rate_hz: u32,
    /// Samples received, at 8 kHz.
    pub received_samples: u64,
    /// From the socket opening to the end of the hang-up.
    pub connected_for: Duration,
    /// `(cumulative samples sent, when)` per chunk.
    pub send_timings: Vec<Timing>,
    /// `(cumulative samples received, when)` per chunk.
    pub receive_timings: Vec<Timing>,
    /// The caller's protocol violations.
    pub violations: Vec<String>,
    /// Text frames the caller sent: `start` and one per audio chunk (the bridge reads each
    /// as one frame).
    pub text_frames_sent: u64,
    /// How the call ended, as far as the generator can tell.
    pub end: CallEnd,
}

impl CallOutcome {
    /// When the caller sent its last chunk.
    pub(crate) fn last_send_at(&self) -> Option<Instant> {
        self.send_timings.last().map(|(_, at)| *at)
    }
}

/// Runs the call at its start time and counts the result.
pub(crate) async fn run(
    plan: CallPlan,
    http: reqwest::Client,
    counters: Arc<CallCounters>,
    first_start: tokio::time::Instant,
) -> CallOutcome {
    tokio::time::sleep_until(first_start + plan.starts_after).await;
    let mut outcome = CallOutcome {
        index: plan.index,
        ..CallOutcome::default()
    };
    if let Err(failure) = place(&plan, &http, &counters, &mut outcome).await {
        outcome.failure = Some(failure);
    }
    let counter = match outcome.failure {
        None => &counters.ok,
        Some(_) => &counters.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    outcome
}

async fn place(
    plan: &CallPlan,
    http: &reqwest::Client,
    counters: &CallCounters,
    outcome: &mut CallOutcome,
) -> Result<(), Failure> {
    let placing = InState::enter(&counters.placing);
    let flow = match request_stream_flow(http, &plan.flow_url, &plan.flow).await {
        Ok(flow) => flow,
        Err(error) => {
            if matches!(error, FlowError::HungUp) {
                outcome.end = CallEnd::Refused;
            }
            return Err(flow_failure(error));
        }
    };
    let mut config = flow.caller;
    config.record_audio = false;
    config.record_timings = true;
    outcome.inbound_rate_hz = config.sample_rate;
    let chunk_ms = config.chunk_ms;
    let mut caller = match SimulatedCaller::connect(config, CONNECT_TIMEOUT).await {
        Ok(caller) => caller,
        Err(error) => {
            if matches!(error, CallerError::Rejected { .. }) {
                outcome.end = CallEnd::Refused;
            }
            return Err(caller_failure("connect", &error));
        }
    };
    let live = LiveGuard::new(counters);
    drop(placing);
    caller
        .send_start()
        .await
        .map_err(|error| caller_failure("start", &error))?;
    outcome.text_frames_sent = 1;

    let chunks = plan
        .streams_for
        .as_millis()
        .div_ceil(u128::from(chunk_ms.max(1)));
    let chunks = u64::try_from(chunks).unwrap_or(u64::MAX);
    let period = Duration::from_millis(u64::from(chunk_ms));
    // FreJun's clock: chunk k is due k periods after the first, however late earlier chunks
    // went out (a late generator then catches up instead of shifting the rest of the call).
    // The caller's own pacing restarts its clock on each call when it is late, so every chunk
    // is sent unpaced at the deadline kept here.
    let clock = tokio::time::Instant::now();
    let mut streaming_error = None;
    for sent in 0..chunks {
        tokio::time::sleep_until(clock + period.saturating_mul(chunk_count(sent))).await;
        if let Err(error) = caller.send_audio(&plan.chunk, false).await {
            streaming_error = Some(error);
            break;
        }
        if sent % CLOSE_CHECK_EVERY == CLOSE_CHECK_EVERY - 1 && server_closed(&caller).await {
            streaming_error = Some(CallerError::Closed);
            break;
        }
    }
    if streaming_error.is_none() {
        // The last chunk lasts its own duration: hang up when it has "played", as a caller
        // would, which also lets its echo come back.
        tokio::time::sleep_until(clock + period.saturating_mul(chunk_count(chunks))).await;
    }
    outcome.send_timings = caller.send_timings();
    outcome.text_frames_sent += outcome.send_timings.len() as u64;
    let hanging_up = InState::enter(&counters.hanging_up);
    // Hanging up never fails; it only records what happened.
    let summary = caller
        .hang_up()
        .await
        .map_err(|error| caller_failure("hang-up", &error))?;
    // Live until the hang-up is over, counted as hanging up until it is no longer live.
    drop(live);
    drop(hanging_up);
    judge(summary, streaming_error, outcome)
}

/// A chunk count as a `Duration` multiplier (calls never have 4 billion chunks).
fn chunk_count(chunks: u64) -> u32 {
    u32::try_from(chunks).unwrap_or(u32::MAX)
}

/// Whether the server has closed the socket (checked without copying what was received).
async fn server_closed(caller: &SimulatedCaller) -> bool {
    caller
        .wait_until(Duration::ZERO, |received| received.closed.is_some())
        .await
}

/// Fills in the outcome from the finished call and decides whether it was ok.
fn judge(
    summary: CallSummary,
    streaming_error: Option<CallerError>,
    outcome: &mut CallOutcome,
) -> Result<(), Failure> {
    let received = summary.received;
    outcome.sent_samples = summary.sent_samples;
    outcome.received_samples = received.audio_samples;
    outcome.connected_for = summary.duration;
    outcome.receive_timings = received.receive_timings();
    outcome.violations = received.violations;

    let closed_by_server = received.closed.as_ref().filter(|closed| closed.by_server);
    outcome.end = match (&closed_by_server, &streaming_error, &received.closed) {
        (Some(closed), _, _) => CallEnd::from_close_reason(&closed.reason),
        (None, None, Some(_)) => CallEnd::Reason(EndReason::CallerHungUp.as_str().to_owned()),
        // A socket broken mid-call, or a hang-up never answered: the server's side unknown.
        _ => CallEnd::Unknown,
    };
    if let Some(closed) = closed_by_server {
        return Err(Failure::new(
            format!("closed by the server ({})", closed.code),
            format!("close {} {:?}", closed.code, closed.reason),
        ));
    }
    if let Some(error) = streaming_error {
        return Err(caller_failure("streaming", &error));
    }
    if received.closed.is_none() {
        return Err(Failure::new(
            "no answer to the hang-up",
            "the server did not answer the caller's close frame",
        ));
    }
    if let Some(first) = outcome.violations.first() {
        return Err(Failure::new("caller protocol violations", first.clone()));
    }
    let sent_at_8k =
        outcome.sent_samples as f64 * 8_000.0 / f64::from(outcome.inbound_rate_hz.max(1));
    if (outcome.received_samples as f64) < MIN_ECHO_SHARE * sent_at_8k {
        return Err(Failure::new(
            "echo under 50% of the sent audio",
            format!(
                "received {} samples at 8 kHz for {sent_at_8k:.0} sent",
                outcome.received_samples
            ),
        ));
    }
    Ok(())
}

fn flow_failure(error: FlowError) -> Failure {
    let reason = match &error {
        FlowError::Unreachable { .. } => "flow: unreachable".to_owned(),
        FlowError::Refused { status, .. } => format!("flow: HTTP {status}"),
        FlowError::HungUp => "flow: answered hangup".to_owned(),
        FlowError::Unusable(_) => "flow: unusable answer".to_owned(),
    };
    Failure::new(reason, error.to_string())
}

fn caller_failure(step: &str, error: &CallerError) -> Failure {
    let kind = match error {
        CallerError::Connect(_) => "cannot connect".to_owned(),
        CallerError::Rejected { status, .. } => format!("upgrade refused with HTTP {status}"),
        CallerError::Timeout => "timed out".to_owned(),
        CallerError::Closed => "socket closed".to_owned(),
        CallerError::Io(_) => "I/O error".to_owned(),
        CallerError::BadFlow(_) => "unusable flow".to_owned(),
    };
    Failure::new(format!("{step}: {kind}"), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::caller::{CloseInfo, Received, ReceivedEvent};

    fn summary(received: Received) -> CallSummary {
        CallSummary {
            received,
            sent_samples: 8_000,
            duration: Duration::from_secs(1),
        }
    }

    fn hung_up(audio_samples: u64) -> Received {
        let now = Instant::now();
        Received {
            audio_samples,
            events: vec![
                ReceivedEvent::Audio {
                    chunk_id: Some(1),
                    samples: audio_samples / 2,
                    at: now,
                },
                ReceivedEvent::Clear { at: now },
                ReceivedEvent::Audio {
                    chunk_id: Some(2),
                    samples: audio_samples - audio_samples / 2,
                    at: now,
                },
            ],
            closed: Some(CloseInfo {
                code: 1000,
                reason: String::new(),
                by_server: false,
                at: now,
            }),
            ..Received::default()
        }
    }

    fn outcome() -> CallOutcome {
        CallOutcome {
            inbound_rate_hz: 8_000,
            ..CallOutcome::default()
        }
    }

    #[test]
    fn a_clean_call_with_its_echo_is_ok_and_keeps_cumulative_timings() {
        let mut outcome = outcome();
        assert_eq!(judge(summary(hung_up(7_000)), None, &mut outcome), Ok(()));
        let cumulative: Vec<u64> = outcome.receive_timings.iter().map(|(n, _)| *n).collect();
        assert_eq!(cumulative, vec![3_500, 7_000]);
        assert_eq!(outcome.received_samples, 7_000);
        assert_eq!(outcome.end, CallEnd::Reason("caller_hung_up".into()));
    }

    #[test]
    fn the_end_reason_is_what_the_caller_learnt() {
        let closed_by_server = |reason: &str| {
            let mut received = hung_up(8_000);
            if let Some(closed) = received.closed.as_mut() {
                closed.by_server = true;
                closed.code = 1000;
                closed.reason = reason.into();
            }
            let mut seen = outcome();
            let _ = judge(summary(received), None, &mut seen);
            seen.end
        };
        assert_eq!(
            closed_by_server("max_duration"),
            CallEnd::Reason("max_duration".into())
        );
        assert_eq!(closed_by_server("duplicate stream"), CallEnd::Unknown);
        assert_eq!(closed_by_server(""), CallEnd::Unknown);
        // A caller's own hang-up that failed its call for too little echo still ended it.
        let mut little_echo = outcome();
        let _ = judge(summary(hung_up(1_000)), None, &mut little_echo);
        assert_eq!(little_echo.end, CallEnd::Reason("caller_hung_up".into()));
        // No answer to the hang-up, or a broken socket: the server's side is unknown.
        let mut unanswered = hung_up(8_000);
        unanswered.closed = None;
        let mut no_answer = outcome();
        let _ = judge(summary(unanswered), None, &mut no_answer);
        assert_eq!(no_answer.end, CallEnd::Unknown);
        let mut broken = outcome();
        let _ = judge(
            summary(hung_up(8_000)),
            Some(CallerError::Closed),
            &mut broken,
        );
        assert_eq!(broken.end, CallEnd::Unknown);
    }

    #[test]
    fn too_little_echo_fails() {
        let failure = judge(summary(hung_up(3_000)), None, &mut outcome()).unwrap_err();
        assert_eq!(failure.reason, "echo under 50% of the sent audio");
    }

    #[test]
    fn a_server_close_and_violations_fail_with_a_short_reason() {
        let mut received = hung_up(8_000);
        if let Some(closed) = received.closed.as_mut() {
            closed.by_server = true;
            closed.code = 1011;
        }
        let failure = judge(summary(received), Some(CallerError::Closed), &mut outcome());
        assert_eq!(failure.unwrap_err().reason, "closed by the server (1011)");

        let mut received = hung_up(8_000);
        received
            .violations
            .push("chunk_id 3 is not greater than the previous 4".into());
        let failure = judge(summary(received), None, &mut outcome()).unwrap_err();
        assert_eq!(failure.reason, "caller protocol violations");

        let mut received = hung_up(8_000);
        received.closed = None;
        let failure = judge(summary(received), None, &mut outcome()).unwrap_err();
        assert_eq!(failure.reason, "no answer to the hang-up");
    }

    #[test]
    fn tones_hold_whole_periods_per_20_ms() {
        for index in 0..30 {
            let hz = tone_hz(index);
            assert!((300.0..=1_000.0).contains(&hz));
            assert_eq!((hz * 0.02).fract(), 0.0, "{hz} Hz");
        }
    }
}
