//! Reading a call's log back through voxbridge's API once the call is over, and putting it in
//! words: what the tenant would see in `GET /api/calls/{id}` (docs/api.md, "Calls").
//!
//! The bridge writes the end of a call (`status_history` event `media.ended`, with `metrics`)
//! just after the media stream closes, so the log is polled until that write has landed.

use std::time::Duration;

use serde_json::Value;

use crate::sim::api_client::{ApiClient, ApiError};

/// How often the call log is read while waiting for the bridge's final write.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls per page when looking a call up by FreJun's id (the API's largest page).
const LOOKUP_PAGE: u32 = 200;

/// Statuses after which a call changes no more (docs/api.md).
const TERMINAL_STATUSES: [&str; 4] = ["completed", "busy", "failed", "no-answer"];

/// The call log is complete: the bridge has recorded the end of the media stream (a
/// `media.ended` history event, and `metrics`), or the call ended without a stream ever
/// starting (refused in the flow or at the media upgrade, never answered).
pub fn call_log_is_final(log: &Value) -> bool {
    let has_event = |name: &str| {
        log.get("status_history")
            .and_then(Value::as_array)
            .is_some_and(|history| {
                history
                    .iter()
                    .any(|entry| entry.get("event").and_then(Value::as_str) == Some(name))
            })
    };
    let metrics = log.get("metrics").is_some_and(|metrics| !metrics.is_null());
    if has_event("media.ended") && metrics {
        return true;
    }
    let terminal = log
        .get("call_status")
        .and_then(Value::as_str)
        .is_some_and(|status| TERMINAL_STATUSES.contains(&status));
    terminal && !has_event("media.started")
}

/// `GET api/calls/{call_id}` until [`call_log_is_final`] holds, or `timeout` (then the latest
/// log as it stands).
pub async fn wait_for_call_log(
    api: &ApiClient,
    call_id: &str,
    timeout: Duration,
) -> Result<Value, ApiError> {
    // The id comes from the flow's `ws_url`; keep it from steering the request elsewhere.
    if call_id.is_empty() || !call_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::BadAnswer {
            method: "GET".into(),
            path: "api/calls/{id}".into(),
            reason: format!("{call_id:?} is not a call id"),
        });
    }
    let path = format!("api/calls/{call_id}");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let log = api.get_data(&path).await?;
        if call_log_is_final(&log) || tokio::time::Instant::now() >= deadline {
            return Ok(log);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The tenant's call FreJun calls `frejun_call_id` (as listed by `GET api/calls`, without
/// transcript), for calls whose flow was refused and so gave no voxbridge call id. `number`
/// (either side of the call, E.164) narrows the search on a busy tenant; when the API refuses
/// it as a filter the newest calls are searched instead.
pub async fn find_call_by_frejun_id(
    api: &ApiClient,
    frejun_call_id: &str,
    number: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let newest = format!("api/calls?limit={LOOKUP_PAGE}");
    let calls = match number {
        Some(number) => {
            let filter: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("phone_number", number)
                .finish();
            match api.get_data(&format!("{newest}&{filter}")).await {
                Err(ApiError::Status { status: 422, .. }) => api.get_data(&newest).await?,
                other => other?,
            }
        }
        None => api.get_data(&newest).await?,
    };
    Ok(calls.as_array().and_then(|calls| {
        calls
            .iter()
            .find(|call| call.get("frejun_call_id").and_then(Value::as_str) == Some(frejun_call_id))
            .cloned()
    }))
}

/// A call log (`GET /api/calls/{id}`, or a list item) as lines for a person: status, end
/// reason, duration, transcript, cost, token usage, the bridge's metrics and any error. Fields
/// the log does not have are left out.
pub fn describe_call_log(log: &Value) -> Vec<String> {
    let text =
        |value: &Value, field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    let number = |value: &Value, field: &str| value.get(field).and_then(Value::as_f64);
    let mut lines = Vec::new();
    if let Some(status) = text(log, "call_status") {
        lines.push(format!("status: {status}"));
    }
    if let Some(reason) = text(log, "end_reason") {
        lines.push(format!("end reason: {reason}"));
    }
    if let Some(seconds) = number(log, "duration") {
        lines.push(format!("duration: {seconds:.0} s"));
    }
    if let Some(turns) = log.get("transcript").and_then(Value::as_array) {
        if turns.is_empty() {
            lines.push("transcript: (empty)".to_owned());
        } else {
            lines.push("transcript:".to_owned());
        }
        for turn in turns {
            let role = text(turn, "role").unwrap_or_else(|| "?".into());
            let said = text(turn, "text").unwrap_or_default();
            let cut = if turn.get("interrupted") == Some(&Value::Bool(true)) {
                " [interrupted]"
            } else {
                ""
            };
            match turn.get("tool").filter(|tool| tool.is_object()) {
                Some(tool) => lines.push(format!(
                    "  tool: {} {} → {} ({}, {} ms)",
                    text(tool, "name").unwrap_or_default(),
                    text(tool, "arguments").unwrap_or_default(),
                    text(tool, "result").unwrap_or_default(),
                    text(tool, "outcome").unwrap_or_default(),
                    tool.get("latency_ms").and_then(Value::as_u64).unwrap_or(0),
                )),
                None => lines.push(format!("  {role}: {said}{cut}")),
            }
        }
    }
    if let Some(cost) = number(log, "cost_usd") {
        lines.push(format!("cost: ${cost:.4}"));
    }
    if let Some(usage) = log.get("usage").filter(|usage| usage.is_object()) {
        let tokens = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
        lines.push(format!(
            "usage: {} input audio, {} output audio, {} input text, {} output text, \
             {} cached tokens",
            tokens("input_audio_tokens"),
            tokens("output_audio_tokens"),
            tokens("input_text_tokens"),
            tokens("output_text_tokens"),
            tokens("input_cached_tokens"),
        ));
    }
    if let Some(metrics) = log.get("metrics").filter(|metrics| metrics.is_object()) {
        let figure = |field: &str, unit: &str| {
            metrics
                .get(field)
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_owned(), |value| format!("{value} {unit}"))
        };
        lines.push(format!(
            "metrics: first response {}, frame latency p50 {} / p99 {}, {} barge-ins, \
             audio in {} / out {}",
            figure("first_response_ms", "ms"),
            figure("frame_latency_p50_us", "µs"),
            figure("frame_latency_p99_us", "µs"),
            metrics
                .get("barge_ins")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            figure("audio_in_ms", "ms"),
            figure("audio_out_ms", "ms"),
        ));
    }
    let ended_by_frejun_side = matches!(
        text(log, "end_reason").as_deref(),
        Some("caller_hung_up" | "completed" | "hung_up_by_api")
    );
    if ended_by_frejun_side && log.get("hangup").is_none_or(Value::is_null) {
        lines.push("hang-up at FreJun: not needed (the call ended on FreJun's side)".to_owned());
    }
    if let Some(hangup) = log.get("hangup").filter(|hangup| hangup.is_object()) {
        let attempts = hangup.get("attempts").and_then(Value::as_u64).unwrap_or(0);
        let mut line = format!(
            "hang-up at FreJun: {} (reason {}, {attempts} attempt(s))",
            text(hangup, "result").unwrap_or_else(|| "-".into()),
            text(hangup, "reason").unwrap_or_else(|| "-".into()),
        );
        if let Some(detail) = text(hangup, "detail") {
            line.push_str(&format!(": {detail}"));
        }
        lines.push(line);
    }
    match (text(log, "recording_id"), text(log, "recording_url")) {
        (Some(recording_id), _) => lines.push(format!(
            "recording: GET /api/calls/{}/recording (FreJun recording {recording_id})",
            text(log, "id").unwrap_or_else(|| "-".into())
        )),
        (None, Some(url)) => lines.push(format!("recording: {url}")),
        (None, None) => {}
    }
    if let Some(error) = log.get("error").filter(|error| error.is_object()) {
        lines.push(format!(
            "error: {}: {}",
            text(error, "code").unwrap_or_else(|| "-".into()),
            text(error, "message").unwrap_or_default()
        ));
    }
    lines
}
