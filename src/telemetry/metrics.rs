//! Prometheus metrics: one recorder per process (the `metrics` facade with
//! `metrics-exporter-prometheus`'s recorder, without its HTTP listener), rendered by our own
//! `GET /metrics` route (`http::metrics`), and the functions the rest of the service records
//! through, so that every metric's name, labels and buckets are in this one file.
//!
//! Rules every metric here follows:
//! - No tenant, call, assistant or number label, ever: their cardinality is unbounded. Labels
//!   take values from closed sets (end reasons, backends, route templates) or pass through
//!   [`bounded`], which lets a label take at most [`MAX_LABEL_VALUES`] distinct plain values
//!   and counts the rest as `other` (error codes come from providers, some of them tenants'
//!   own endpoints).
//! - Histograms have explicit buckets, set in [`install`].
//! - The per-frame latency is recorded through a [`metrics::Histogram`] handle each call takes
//!   once ([`frame_latency`]): a record is a few atomic operations (and a new block of the
//!   recorder's lock-free bucket every 64 samples, freed by [`run_upkeep`]); no key or label
//!   is built per frame.
//! - Gauges of the instance's state (live calls, draining) are sampled from that state when a
//!   scrape renders ([`render`]), so they cannot drift from it.
//!
//! Installing is idempotent ([`install`]): tests build many applications in one process, and
//! they share the one recorder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use metrics::{Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Live calls on this instance, by `backend` and `codec` (gauge).
pub const LIVE_CALLS: &str = "voxbridge_live_calls";
/// Calls ended, by end `reason` (counter).
pub const CALLS_ENDED: &str = "voxbridge_calls_ended_total";
/// Calls refused, by `stage` (`flow`, `media_stream`) and `reason` (counter).
pub const ADMISSION_REFUSALS: &str = "voxbridge_admission_refusals_total";
/// Per call, from the start of its media session to the first assistant audio sent to the
/// caller (the greeting, when the assistant has one) (histogram).
pub const FIRST_RESPONSE_SECONDS: &str = "voxbridge_first_response_seconds";
/// Time the bridge spends on one frame, arrival to the last send it caused (histogram).
pub const FRAME_LATENCY_SECONDS: &str = "voxbridge_bridge_frame_latency_seconds";
/// Barge-ins: the caller spoke over the assistant (counter).
pub const BARGE_INS: &str = "voxbridge_barge_ins_total";
/// Calls ended by a voice-AI failure, by error `code` (counter).
pub const AI_ERRORS: &str = "voxbridge_ai_errors_total";
/// FreJun/Teler failures (a call's telephony error, a failed Teler request), by `code`.
pub const TELER_ERRORS: &str = "voxbridge_teler_errors_total";
/// Tool calls of assistants, by `outcome` (`ok`, `error`, `cancelled`) (counter).
pub const TOOL_CALLS: &str = "voxbridge_tool_calls_total";
/// Webhook delivery attempts, by `outcome` (counter).
pub const WEBHOOK_DELIVERIES: &str = "voxbridge_webhook_deliveries_total";
/// HTTP requests, by `method`, `route` (the route template) and `status` (counter).
pub const HTTP_REQUESTS: &str = "voxbridge_http_requests_total";
/// MongoDB commands, by `command` and `outcome` (`ok`, `error`) (histogram).
pub const MONGODB_COMMAND_SECONDS: &str = "voxbridge_mongodb_command_duration_seconds";
/// Live calls' progress batches written per MongoDB command by the instance's progress
/// writer (histogram).
pub const CALL_LOG_BATCH_CALLS: &str = "voxbridge_call_log_batch_calls";
/// 1 while the instance is draining (refusing new calls, finishing live ones), else 0.
pub const DRAINING: &str = "voxbridge_draining";
/// Control requests sent to the instance bridging the call, from writing the command to its
/// answer, by `outcome` (`done`, `not_live`, `expired`: the owner did not answer) (histogram).
pub const CONTROL_COMMAND_SECONDS: &str = "voxbridge_control_command_seconds";

/// The `route` label of requests that matched no route: one label for every unknown path.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// Distinct values a label fed from outside (error codes, MongoDB command names, codecs) may
/// take; later new values are counted as `other`.
pub const MAX_LABEL_VALUES: usize = 64;

/// 100 µs to 100 ms: a frame normally takes well under a millisecond.
const FRAME_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
/// 250 ms to 10 s: conversational answers come in about a second.
const FIRST_RESPONSE_BUCKETS: &[f64] = &[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
/// 1 ms to 5 s.
const MONGODB_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// 1 to 500 (the most one command takes).
const BATCH_CALLS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder the first time it is called, and returns its handle every
/// time. If another recorder was installed first (by an embedding program), ours still renders,
/// but sees nothing; a warning says so.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %err, "another metrics recorder is installed: /metrics will be empty");
        }
        describe();
        handle
    })
}

fn builder() -> PrometheusBuilder {
    let buckets = [
        (FRAME_LATENCY_SECONDS, FRAME_LATENCY_BUCKETS),
        (FIRST_RESPONSE_SECONDS, FIRST_RESPONSE_BUCKETS),
        (MONGODB_COMMAND_SECONDS, MONGODB_BUCKETS),
        (CONTROL_COMMAND_SECONDS, MONGODB_BUCKETS),
        (CALL_LOG_BATCH_CALLS, BATCH_CALLS_BUCKETS),
    ];
    buckets
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("bucket lists are not empty")
        })
}

fn describe() {
    describe_gauge!(
        LIVE_CALLS,
        "Live calls on this instance, by backend and codec."
    );
    describe_counter!(CALLS_ENDED, "Calls ended, by end reason.");
    describe_counter!(
        ADMISSION_REFUSALS,
        "Calls refused at the flow or the media stream, by stage and reason."
    );
    describe_histogram!(
        FIRST_RESPONSE_SECONDS,
        metrics::Unit::Seconds,
        "Per call, from the start of its media session to the first assistant audio sent to the caller."
    );
    describe_histogram!(
        FRAME_LATENCY_SECONDS,
        metrics::Unit::Seconds,
        "Time the bridge spends on one frame, from its arrival to the last send it caused."
    );
    describe_counter!(BARGE_INS, "Times a caller spoke over the assistant.");
    describe_counter!(
        AI_ERRORS,
        "Calls ended by a voice-AI failure, by error code."
    );
    describe_counter!(
        TELER_ERRORS,
        "FreJun/Teler failures: calls ended by a telephony error and failed Teler requests, by code."
    );
    describe_counter!(TOOL_CALLS, "Assistants' tool calls, by outcome.");
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome.");
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests, by method, route template and status."
    );
    describe_histogram!(
        MONGODB_COMMAND_SECONDS,
        metrics::Unit::Seconds,
        "MongoDB command durations, by command and outcome."
    );
    describe_histogram!(
        CALL_LOG_BATCH_CALLS,
        "Live calls' progress batches written per MongoDB command."
    );
    describe_gauge!(DRAINING, "1 while the instance is draining, else 0.");
    describe_histogram!(
        CONTROL_COMMAND_SECONDS,
        metrics::Unit::Seconds,
        "Control requests sent to the instance bridging the call, to their answer, by outcome."
    );
}

/// Drops histogram samples already folded into their buckets; called periodically by the
/// server (`startup`), so memory stays bounded between scrapes.
pub fn run_upkeep() {
    install().run_upkeep();
}

/// The `(backend, codec)` pairs the live-calls gauge has shown, so that a pair whose calls all
/// ended is rendered as 0 rather than keeping its last value. Its lock also serializes
/// renders: the gauges set by one scrape are the ones it renders.
static LIVE_PAIRS: Mutex<BTreeSet<(&'static str, String)>> = Mutex::new(BTreeSet::new());

/// The Prometheus text exposition of every metric, with the live-calls gauge set from `live`
/// (one `(backend, codec)` pair per live call on this instance) and the drain gauge from
/// `draining` (this instance's drain state).
pub fn render(live: impl IntoIterator<Item = (&'static str, String)>, draining: bool) -> String {
    let handle = install();
    let mut counts: BTreeMap<(&'static str, String), u32> = BTreeMap::new();
    for (backend, codec) in live {
        let codec = bounded(&CODECS, &codec);
        *counts.entry((backend, codec)).or_default() += 1;
    }
    let mut pairs = lock(&LIVE_PAIRS);
    pairs.extend(counts.keys().cloned());
    for (backend, codec) in pairs.iter() {
        let count = counts.get(&(*backend, codec.clone())).copied().unwrap_or(0);
        gauge!(LIVE_CALLS, "backend" => *backend, "codec" => codec.clone()).set(f64::from(count));
    }
    gauge!(DRAINING).set(if draining { 1.0 } else { 0.0 });
    let text = handle.render();
    drop(pairs);
    text
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A call ended (the bridge's end, a refused flow or media stream).
pub fn call_ended(reason: &'static str) {
    counter!(CALLS_ENDED, "reason" => reason).increment(1);
}

/// A call was refused at `stage` (`flow` or `media_stream`) for `reason`.
pub fn admission_refused(stage: &'static str, reason: &'static str) {
    counter!(ADMISSION_REFUSALS, "stage" => stage, "reason" => reason).increment(1);
}

/// What a finished call adds: its first-response latency (if the assistant spoke) and its
/// barge-ins.
pub fn call_summary(first_response_ms: Option<u64>, barge_ins: u64) {
    if let Some(ms) = first_response_ms {
        metrics::histogram!(FIRST_RESPONSE_SECONDS).record(ms as f64 / 1000.0);
    }
    if barge_ins > 0 {
        counter!(BARGE_INS).increment(barge_ins);
    }
}

/// The handle a call records each frame's latency through: take it once per call, after
/// [`install`] (a handle taken before records nowhere).
pub fn frame_latency() -> Histogram {
    metrics::histogram!(FRAME_LATENCY_SECONDS)
}

/// Records one frame's latency through a handle from [`frame_latency`].
pub fn record_frame(histogram: &Histogram, elapsed: Duration) {
    histogram.record(elapsed.as_secs_f64());
}

static AI_CODES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static TELER_CODES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static COMMANDS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static CODECS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A call ended by a voice-AI failure with error `code`.
pub fn ai_error(code: &str) {
    counter!(AI_ERRORS, "code" => bounded(&AI_CODES, code)).increment(1);
}

/// A control request another instance ran (or did not) answered `outcome` after `elapsed`.
pub fn control_command(outcome: &'static str, elapsed: Duration) {
    metrics::histogram!(CONTROL_COMMAND_SECONDS, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// A FreJun/Teler failure with error `code`.
pub fn teler_error(code: &str) {
    counter!(TELER_ERRORS, "code" => bounded(&TELER_CODES, code)).increment(1);
}

/// A tool call finished with `outcome` (`ok`, `error`, `cancelled`).
pub fn tool_call(outcome: &'static str) {
    counter!(TOOL_CALLS, "outcome" => outcome).increment(1);
}

/// A webhook delivery attempt finished with `outcome`.
pub fn webhook_delivery(outcome: &'static str) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// HTTP methods kept as labels; any other (an extension method a client made up) is `other`.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// A request answered `status`; `route` is the matched route template (`/api/calls/{call_id}`)
/// or `None` when no route matched (all counted as [`UNMATCHED_ROUTE`]).
pub fn http_request(method: &str, route: Option<String>, status: u16) {
    let method = METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other");
    let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    counter!(
        HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => status.to_string(),
    )
    .increment(1);
}

/// The progress writer wrote `calls` calls' batches in one command.
pub fn call_log_batch(calls: usize) {
    metrics::histogram!(CALL_LOG_BATCH_CALLS).record(calls as f64);
}

/// A MongoDB command finished after `duration`.
pub fn mongodb_command(command: &str, succeeded: bool, duration: Duration) {
    metrics::histogram!(
        MONGODB_COMMAND_SECONDS,
        "command" => bounded(&COMMANDS, command),
        "outcome" => if succeeded { "ok" } else { "error" },
    )
    .record(duration.as_secs_f64());
}

/// `value` when it is plain (1 to 64 of `a-z A-Z 0-9 _ . -`) and one of the first
/// [`MAX_LABEL_VALUES`] such values `seen` has had; `other` otherwise.
fn bounded(seen: &Mutex<BTreeSet<String>>, value: &str) -> String {
    let plain = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte));
    if !plain {
        return "other".to_owned();
    }
    let mut seen = lock(seen);
    if seen.contains(value) {
        return value.to_owned();
    }
    if seen.len() < MAX_LABEL_VALUES {
        seen.insert(value.to_owned());
        return value.to_owned();
    }
    "other".to_owned()
}

/// Every update under these locks is a single insert: a poisoned lock is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_outside_are_plain_and_bounded() {
        let seen = Mutex::new(BTreeSet::new());
        assert_eq!(bounded(&seen, "rate_limit_exceeded"), "rate_limit_exceeded");
        assert_eq!(bounded(&seen, "has space"), "other");
        assert_eq!(bounded(&seen, ""), "other");
        assert_eq!(bounded(&seen, &"a".repeat(65)), "other");
        for index in 1..MAX_LABEL_VALUES {
            assert_eq!(
                bounded(&seen, &format!("code_{index}")),
                format!("code_{index}")
            );
        }
        assert_eq!(bounded(&seen, "one_too_many"), "other");
        assert_eq!(bounded(&seen, "rate_limit_exceeded"), "rate_limit_exceeded");
    }

    #[test]
    fn installing_twice_shares_one_recorder() {
        let first = install() as *const PrometheusHandle;
        let second = install() as *const PrometheusHandle;
        assert_eq!(first, second);
    }

    #[test]
    fn histograms_have_buckets_and_live_pairs_fall_back_to_zero() {
        // A handle taken before the recorder is installed records nowhere.
        install();
        let frames = frame_latency();
        record_frame(&frames, Duration::from_micros(300));
        let text = render([("openai_realtime", "pcm24k".to_owned())], false);
        assert!(
            text.contains(&format!("{FRAME_LATENCY_SECONDS}_bucket{{le=\"0.0005\"}}")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{LIVE_CALLS}{{backend=\"openai_realtime\",codec=\"pcm24k\"}} 1"
            )),
            "{text}"
        );
        let text = render([], false);
        assert!(
            text.contains(&format!(
                "{LIVE_CALLS}{{backend=\"openai_realtime\",codec=\"pcm24k\"}} 0"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("{DRAINING} 0")), "{text}");
    }
}
