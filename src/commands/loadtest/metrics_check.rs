//! The metrics check: what the server's own `GET /metrics` says about a run against what the
//! load generator saw, figure by figure, each with the range the server's figure must fall in
//! and why. A disagreement is a finding for the report (`violations.metrics_mismatch`), never
//! an error of the run.
//!
//! The server is scraped three times (`super::scrape`): just before the first call (the
//! baseline every counter's delta is taken from), once mid-run when every call is up, and
//! after every call has ended. The figures:
//!
//! - **Live calls, mid-run**: the sum of `voxbridge_live_calls` over its labels against the
//!   calls the generator had live (WebSocket open, hang-up not finished) just before the
//!   scrape. The server registers a call just after the upgrade and drops it just after its
//!   close, so calls changing state around the scrape may be counted on one side only; they
//!   are the tolerance (usually 0: the scrape waits until every call is up, plus
//!   [`SETTLE`]).
//! - **Calls ended, by reason, and in all**: the delta of `voxbridge_calls_ended_total` per
//!   `reason` against the end reasons the callers learnt (`super::call::CallEnd`): their own
//!   answered hang-up is `caller_hung_up`, a close the server sent first carries its reason.
//!   Calls whose end the generator could not see (refused, unreachable, broken sockets) may
//!   appear under any reason or none: each widens every range by one.
//! - **Frames the bridge read**: the delta of the per-frame latency histogram's `_count`. The
//!   bridge (`bridge::run`) records one sample per *text frame it reads* that does not end the
//!   call, from either peer: the caller's `start` and audio messages, and the voice AI's
//!   events. Frames the bridge sends (the echo the callers receive) are not counted, so the
//!   generator's figure is the text frames the callers sent plus the audio frames the fake AI
//!   sent (OpenAI deltas, ElevenLabs audio events; both fakes record each). The fake's other
//!   events are read as frames too but not recorded one by one; the upper bound allows for
//!   them: [`SESSION_EVENTS`] per session (OpenAI's `session.created`/`.updated`, ElevenLabs'
//!   metadata), [`RESPONSE_EVENTS`] per OpenAI response (its lifecycle events around the
//!   deltas) and one per ElevenLabs ping. The lower bound allows [`LATE_FRAMES_PER_CALL`]
//!   per call for echo frames still unread when the caller's hang-up ended the call, and
//!   every frame of a failed call (it may have been cut off).
//! - **Admission refusals**: the delta of `voxbridge_admission_refusals_total` (all stages and
//!   reasons) against the calls the generator saw refused (a `hangup` flow, a refused
//!   upgrade): 0 in a run without failures.
//!
//! Everything the server counts is process-wide: against a `--server-url` server the check is
//! only meaningful when nothing else uses that server during the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::backend::FakeSession;
use super::call::{CallEnd, CallOutcome, CallsSnapshot};
use super::report::{MetricsCheckReport, MetricsFigure};
use super::scrape::Scrape;
use crate::telemetry::metrics::{
    ADMISSION_REFUSALS, CALLS_ENDED, FRAME_LATENCY_SECONDS, LIVE_CALLS,
};

/// How long the mid-run scrape waits once every call is up, so that the server has registered
/// the last calls to connect (it does so just after the upgrade the caller already saw).
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

/// The fake AI's events per session that are neither audio nor response lifecycle, with room
/// to spare: OpenAI's `session.created` and a `session.updated` per `session.update` (2 in a
/// load test), ElevenLabs' `conversation_initiation_metadata` (1).
pub(crate) const SESSION_EVENTS: u64 = 4;

/// The fake OpenAI's events per response besides its audio deltas: `response.created`,
/// `rate_limits.updated`, `response.output_item.added`, `conversation.item.added` and
/// `response.content_part.added` when it starts; a last transcript delta, the `.done` events of
/// the audio, its transcript, the content part and the item, `conversation.item.done` and
/// `response.done` when it completes (12 in all; a response still streaming at the hang-up has
/// sent 5). A 100-call run read 2 per session plus exactly this per completed response.
pub(crate) const RESPONSE_EVENTS: u64 = 12;

/// Echo frames of a call the bridge may not have read when the caller's hang-up ended it (the
/// caller hangs up one chunk after its last send, so normally none).
pub(crate) const LATE_FRAMES_PER_CALL: u64 = 2;

/// The scrapes of one run.
#[derive(Debug)]
pub(crate) enum ServerMetrics {
    /// Not scraped, and why (an external server without `--metrics-token`).
    Skipped(String),
    Scraped {
        /// Just before the first call.
        before: Result<Scrape, String>,
        mid: MidRunScrape,
        /// After every call ended.
        after: Result<Scrape, String>,
    },
}

/// The mid-run scrape and the generator's counters around it.
#[derive(Debug)]
pub(crate) struct MidRunScrape {
    pub scrape: Result<Scrape, String>,
    /// When the [`SETTLE`] wait began.
    pub settle: CallsSnapshot,
    /// Just before the scrape was sent.
    pub before: CallsSnapshot,
    /// Just after its answer came.
    pub after: CallsSnapshot,
}

/// The check's section of the report, and how many mismatches it adds to the violations.
pub(crate) fn build(
    metrics: &ServerMetrics,
    outcomes: &[CallOutcome],
    sessions: &[FakeSession],
) -> (MetricsCheckReport, u64) {
    let (before, mid, after) = match metrics {
        ServerMetrics::Skipped(reason) => {
            let report = MetricsCheckReport {
                status: "skipped".to_owned(),
                note: Some(reason.clone()),
                agrees: true,
                figures: Vec::new(),
            };
            return (report, 0);
        }
        ServerMetrics::Scraped { before, mid, after } => (before, mid, after),
    };
    let mut errors = Vec::new();
    for (when, scrape) in [
        ("before the calls", before),
        ("mid-run", &mid.scrape),
        ("after the calls", after),
    ] {
        if let Err(error) = scrape {
            errors.push(format!("the scrape {when} failed: {error}"));
        }
    }
    let mut figures = Vec::new();
    if let Ok(scrape) = &mid.scrape {
        figures.push(live_calls(scrape, mid));
    }
    if let (Ok(before), Ok(after)) = (before, after) {
        figures.extend(calls_ended(before, after, outcomes));
        figures.push(frames(before, after, outcomes, sessions));
        figures.push(admission_refusals(before, after, outcomes));
    }
    let disagreeing = figures.iter().filter(|figure| !figure.agrees).count() as u64;
    let failed = !errors.is_empty();
    let report = MetricsCheckReport {
        status: if failed { "failed" } else { "checked" }.to_owned(),
        note: failed.then(|| errors.join("; ")),
        agrees: disagreeing == 0 && !failed,
        figures,
    };
    (report, disagreeing + u64::from(failed))
}

/// A figure whose server value must lie in `low..=high`.
fn figure(
    figure: &str,
    metric: String,
    server: f64,
    generator: u64,
    (low, high): (u64, u64),
    tolerance: String,
) -> MetricsFigure {
    // Counters and gauges of calls and frames are whole numbers; a NaN (an unreadable value)
    // becomes 0 and a counter reset a negative delta, both outside any range.
    let server = server.round() as i64;
    MetricsFigure {
        figure: figure.to_owned(),
        metric,
        server,
        generator,
        low,
        high,
        tolerance,
        agrees: u64::try_from(server).is_ok_and(|server| (low..=high).contains(&server)),
    }
}

fn live_calls(scrape: &Scrape, mid: &MidRunScrape) -> MetricsFigure {
    let (settle, before, after) = (mid.settle, mid.before, mid.after);
    let in_between = before.placing.max(after.placing) + before.hanging_up.max(after.hanging_up);
    let changed = after.connected.saturating_sub(settle.connected)
        + after.disconnected.saturating_sub(settle.disconnected);
    let slack = (in_between + changed) as u64;
    let generator = before.live as u64;
    figure(
        "live calls, mid-run",
        format!("sum({LIVE_CALLS})"),
        scrape.sum(LIVE_CALLS),
        generator,
        (generator.saturating_sub(slack), generator + slack),
        format!(
            "± {slack}: calls connecting or hanging up at the scrape, or that connected or \
             ended in the {} ms before it",
            SETTLE.as_millis()
        ),
    )
}

/// Calls per end reason as the generator saw them, and the calls whose end it could not see.
fn generator_ends(outcomes: &[CallOutcome]) -> (BTreeMap<&str, u64>, u64) {
    let mut reasons = BTreeMap::new();
    let mut unseen = 0;
    for outcome in outcomes {
        match &outcome.end {
            CallEnd::Reason(reason) => *reasons.entry(reason.as_str()).or_insert(0) += 1,
            CallEnd::Refused | CallEnd::Unknown => unseen += 1,
        }
    }
    (reasons, unseen)
}

fn calls_ended(before: &Scrape, after: &Scrape, outcomes: &[CallOutcome]) -> Vec<MetricsFigure> {
    let server_before = before.by_label(CALLS_ENDED, "reason");
    let server_after = after.by_label(CALLS_ENDED, "reason");
    let delta = |reason: &str| {
        server_after.get(reason).copied().unwrap_or(0.0)
            - server_before.get(reason).copied().unwrap_or(0.0)
    };
    let (seen, unseen) = generator_ends(outcomes);
    let tolerance = if unseen == 0 {
        "exact".to_owned()
    } else {
        format!("up to {unseen} more: calls whose end the generator could not see")
    };
    let reasons: BTreeSet<&str> = server_after
        .keys()
        .map(String::as_str)
        .filter(|reason| delta(reason) != 0.0)
        .chain(seen.keys().copied())
        .collect();
    let mut figures: Vec<MetricsFigure> = reasons
        .into_iter()
        .map(|reason| {
            let generator = seen.get(reason).copied().unwrap_or(0);
            figure(
                &format!("calls ended, {reason}"),
                format!("delta {CALLS_ENDED}{{reason=\"{reason}\"}}"),
                delta(reason),
                generator,
                (generator, generator + unseen),
                tolerance.clone(),
            )
        })
        .collect();
    let total_seen: u64 = seen.values().sum();
    let all: f64 = server_after.keys().map(|reason| delta(reason)).sum();
    figures.push(figure(
        "calls ended, all reasons",
        format!("delta sum({CALLS_ENDED})"),
        all,
        outcomes.len() as u64,
        (total_seen, total_seen + unseen),
        if unseen == 0 {
            "exact: every call the generator ran".to_owned()
        } else {
            format!(
                "{total_seen} to {}: calls whose end the generator could not see may not have \
                 reached the server",
                total_seen + unseen
            )
        },
    ));
    figures
}

fn frames(
    before: &Scrape,
    after: &Scrape,
    outcomes: &[CallOutcome],
    sessions: &[FakeSession],
) -> MetricsFigure {
    let count = format!("{FRAME_LATENCY_SECONDS}_count");
    let caller_frames: u64 = outcomes
        .iter()
        .map(|outcome| outcome.text_frames_sent)
        .sum();
    let failed_frames: u64 = outcomes
        .iter()
        .filter(|outcome| outcome.failure.is_some())
        .map(|outcome| outcome.text_frames_sent)
        .sum();
    let ai_audio: u64 = sessions
        .iter()
        .map(|session| session.delta_timings.len() as u64)
        .sum();
    let responses: u64 = sessions.iter().map(|session| session.responses).sum();
    let pings: u64 = sessions.iter().map(|session| session.pings).sum();
    let generator = caller_frames + ai_audio;
    let short = LATE_FRAMES_PER_CALL * outcomes.len() as u64 + 2 * failed_frames;
    let extra = SESSION_EVENTS * sessions.len() as u64 + RESPONSE_EVENTS * responses + pings;
    figure(
        "frames the bridge read",
        format!("delta {count}"),
        after.sum(&count) - before.sum(&count),
        generator,
        (generator.saturating_sub(short), generator + extra),
        format!(
            "the callers' text frames ({caller_frames}) plus the fake AI's audio frames \
             ({ai_audio}); up to {extra} more for the fake's other events ({SESSION_EVENTS} per \
             session × {}, {RESPONSE_EVENTS} per response × {responses}, 1 per ping × {pings}); \
             up to {short} fewer for echo still unread at a hang-up \
             ({LATE_FRAMES_PER_CALL} per call) and both ways of failed calls' frames",
            sessions.len()
        ),
    )
}

fn admission_refusals(before: &Scrape, after: &Scrape, outcomes: &[CallOutcome]) -> MetricsFigure {
    let refused = outcomes
        .iter()
        .filter(|outcome| outcome.end == CallEnd::Refused)
        .count() as u64;
    let unknown = outcomes
        .iter()
        .filter(|outcome| outcome.end == CallEnd::Unknown)
        .count() as u64;
    figure(
        "admission refusals",
        format!("delta sum({ADMISSION_REFUSALS})"),
        after.sum(ADMISSION_REFUSALS) - before.sum(ADMISSION_REFUSALS),
        refused,
        (refused, refused + unknown),
        if unknown == 0 {
            "exact: the calls refused at the flow or the media-stream upgrade".to_owned()
        } else {
            format!("up to {unknown} more: failed calls whose cause the generator could not see")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::loadtest::call::Failure;
    use crate::commands::loadtest::scrape::tests::SAMPLE;

    fn ended(reason: &str) -> CallOutcome {
        CallOutcome {
            end: CallEnd::Reason(reason.into()),
            text_frames_sent: 51,
            ..CallOutcome::default()
        }
    }

    fn session(deltas: usize, responses: u64) -> FakeSession {
        FakeSession {
            delta_timings: vec![(0, std::time::Instant::now()); deltas],
            responses,
            ..FakeSession::default()
        }
    }

    fn counters(live: usize, connected: usize) -> CallsSnapshot {
        CallsSnapshot {
            live,
            connected,
            ..CallsSnapshot::default()
        }
    }

    fn scraped(before: &str, mid: &str, after: &str, live: usize) -> ServerMetrics {
        let steady = counters(live, live);
        ServerMetrics::Scraped {
            before: Ok(Scrape::parse(before)),
            mid: MidRunScrape {
                scrape: Ok(Scrape::parse(mid)),
                settle: steady,
                before: steady,
                after: steady,
            },
            after: Ok(Scrape::parse(after)),
        }
    }

    const BEFORE: &str = "voxbridge_calls_ended_total{reason=\"caller_hung_up\"} 5\n\
                          voxbridge_bridge_frame_latency_seconds_count 1000\n";

    /// Two clean calls: 51 text frames each, 50 echo deltas each, one response each.
    const AFTER: &str = "voxbridge_calls_ended_total{reason=\"caller_hung_up\"} 7\n\
                         voxbridge_bridge_frame_latency_seconds_count 1230\n\
                         voxbridge_admission_refusals_total{stage=\"flow\",reason=\"x\"} 0\n";

    fn named<'a>(report: &'a MetricsCheckReport, name: &str) -> &'a MetricsFigure {
        report
            .figures
            .iter()
            .find(|figure| figure.figure == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#?}"))
    }

    #[test]
    fn a_clean_run_agrees_on_every_figure() {
        let mid = "voxbridge_live_calls{backend=\"openai_realtime\",codec=\"pcm24k\"} 2\n";
        let outcomes = vec![ended("caller_hung_up"), ended("caller_hung_up")];
        let sessions = vec![session(50, 1), session(50, 1)];
        let (report, mismatches) = build(&scraped(BEFORE, mid, AFTER, 2), &outcomes, &sessions);
        assert_eq!((report.status.as_str(), report.agrees), ("checked", true));
        assert_eq!(mismatches, 0, "{report:#?}");
        let live = named(&report, "live calls, mid-run");
        assert_eq!(
            (live.server, live.generator, live.low, live.high),
            (2, 2, 2, 2)
        );
        let hung_up = named(&report, "calls ended, caller_hung_up");
        assert_eq!((hung_up.server, hung_up.generator), (2, 2));
        assert_eq!(hung_up.tolerance, "exact");
        assert_eq!(named(&report, "calls ended, all reasons").server, 2);
        // 2 × 51 sent + 2 × 50 echoed = 202; the server read 230, within 202 + 2 × 4 + 2 × 12.
        let frames = named(&report, "frames the bridge read");
        assert_eq!((frames.server, frames.generator), (230, 202));
        assert_eq!((frames.low, frames.high), (198, 234));
        let refusals = named(&report, "admission refusals");
        assert_eq!(
            (refusals.server, refusals.generator, refusals.high),
            (0, 0, 0)
        );
    }

    #[test]
    fn disagreements_are_counted_not_fatal() {
        // The server saw a call end as ai_error that the generator saw hang up, and one live
        // call too many.
        let after = "voxbridge_calls_ended_total{reason=\"caller_hung_up\"} 6\n\
                     voxbridge_calls_ended_total{reason=\"ai_error\"} 1\n\
                     voxbridge_bridge_frame_latency_seconds_count 1230\n";
        let outcomes = vec![ended("caller_hung_up"), ended("caller_hung_up")];
        let sessions = vec![session(50, 1), session(50, 1)];
        let (report, mismatches) = build(&scraped(BEFORE, SAMPLE, after, 99), &outcomes, &sessions);
        assert!(!report.agrees);
        assert_eq!(report.status, "checked");
        let disagreeing: Vec<&str> = report
            .figures
            .iter()
            .filter(|figure| !figure.agrees)
            .map(|figure| figure.figure.as_str())
            .collect();
        assert_eq!(
            disagreeing,
            [
                "live calls, mid-run",
                "calls ended, ai_error",
                "calls ended, caller_hung_up"
            ]
        );
        assert_eq!(mismatches, 3);
        assert!(named(&report, "calls ended, all reasons").agrees);
    }

    #[test]
    fn calls_the_generator_could_not_see_widen_the_ranges() {
        let after = "voxbridge_calls_ended_total{reason=\"caller_hung_up\"} 6\n\
                     voxbridge_calls_ended_total{reason=\"concurrency_limit\"} 1\n\
                     voxbridge_admission_refusals_total{stage=\"flow\",reason=\"concurrency_limit\"} 1\n\
                     voxbridge_bridge_frame_latency_seconds_count 1100\n";
        let refused = CallOutcome {
            end: CallEnd::Refused,
            failure: Some(Failure {
                reason: "flow: answered hangup".into(),
                detail: String::new(),
            }),
            ..CallOutcome::default()
        };
        let outcomes = vec![ended("caller_hung_up"), refused];
        let (report, mismatches) = build(
            &scraped(BEFORE, "voxbridge_live_calls 1\n", after, 1),
            &outcomes,
            &[session(50, 1)],
        );
        assert_eq!(mismatches, 0, "{report:#?}");
        let limit = named(&report, "calls ended, concurrency_limit");
        assert_eq!((limit.generator, limit.low, limit.high), (0, 0, 1));
        let refusals = named(&report, "admission refusals");
        assert_eq!((refusals.server, refusals.low, refusals.high), (1, 1, 1));
        let all = named(&report, "calls ended, all reasons");
        assert_eq!((all.generator, all.low, all.high), (2, 1, 2));
    }

    #[test]
    fn calls_changing_state_around_the_scrape_are_the_live_tolerance() {
        let mid = MidRunScrape {
            scrape: Ok(Scrape::parse("voxbridge_live_calls 8\n")),
            settle: counters(9, 9),
            before: CallsSnapshot {
                hanging_up: 1,
                ..counters(10, 10)
            },
            after: CallsSnapshot {
                disconnected: 1,
                ..counters(9, 10)
            },
        };
        let figure = live_calls(&Scrape::parse("voxbridge_live_calls 8\n"), &mid);
        // One connected and one ended since the settle began, one hanging up: ± 3.
        assert_eq!((figure.generator, figure.low, figure.high), (10, 7, 13));
        assert!(figure.agrees);
        assert!(figure.tolerance.starts_with("± 3"), "{}", figure.tolerance);
    }

    #[test]
    fn a_failed_scrape_is_a_mismatch_and_a_skipped_one_is_not() {
        let metrics = ServerMetrics::Scraped {
            before: Ok(Scrape::parse(BEFORE)),
            mid: MidRunScrape {
                scrape: Err("cannot reach http://127.0.0.1:1/metrics: refused".into()),
                settle: CallsSnapshot::default(),
                before: CallsSnapshot::default(),
                after: CallsSnapshot::default(),
            },
            after: Ok(Scrape::parse(BEFORE)),
        };
        let (report, mismatches) = build(&metrics, &[], &[]);
        assert_eq!((report.status.as_str(), report.agrees), ("failed", false));
        assert!(report.note.as_deref().unwrap().contains("mid-run"));
        assert_eq!(mismatches, 1, "the other figures still agree: {report:#?}");
        assert!(report.figures.iter().all(|figure| figure.agrees));

        let skipped = ServerMetrics::Skipped("no --metrics-token".into());
        let (report, mismatches) = build(&skipped, &[], &[]);
        assert_eq!(
            (report.status.as_str(), report.agrees, mismatches),
            ("skipped", true, 0)
        );
    }
}
