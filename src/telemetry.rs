//! Logging: a `tracing` subscriber that prints human-readable lines locally and one JSON object
//! per line in production (`log.format`), filtered by `log.level`; and the span every line of
//! one call is written in ([`call_span`]); and the Prometheus metrics ([`metrics`]).

pub mod metrics;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::domain::ids::{AssistantId, CallId, TenantId};
use crate::settings::{LogFormat, LogSettings};

/// The span of one call: every log line written while it is entered names the call, its
/// tenant, its assistant and FreJun's call id (recorded later with [`record_frejun_call_id`]
/// when it is not known yet). A root span: a call outlives the request that started it, and
/// its keeper outlives the call.
pub(crate) fn call_span(
    call_id: CallId,
    tenant_id: TenantId,
    assistant_id: Option<AssistantId>,
    frejun_call_id: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "call",
        %call_id,
        %tenant_id,
        assistant_id = tracing::field::Empty,
        frejun_call_id = tracing::field::Empty,
    );
    if let Some(assistant_id) = assistant_id {
        span.record("assistant_id", tracing::field::display(assistant_id));
    }
    if let Some(frejun_call_id) = frejun_call_id {
        record_frejun_call_id(&span, frejun_call_id);
    }
    span
}

/// Names FreJun's call id on a call's span once FreJun has told us (its `start` message, the
/// answer to an outbound dial).
pub(crate) fn record_frejun_call_id(span: &tracing::Span, frejun_call_id: &str) {
    span.record("frejun_call_id", frejun_call_id);
}

/// Installs the global subscriber. Call once, from `main`, after settings are loaded (the level
/// was validated there, so a bad filter cannot reach this point).
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = with_tungstenite_capped(EnvFilter::try_new(&settings.level)?)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
    };
    result.map_err(|err| anyhow::anyhow!("cannot install the log subscriber: {err}"))
}

/// tungstenite logs the raw upgrade request, `Authorization: Bearer <tenant's key>` included, at
/// trace level: its level is capped at debug whatever the configured level, and otherwise
/// follows the most verbose level the filter enables (so `warn` keeps it at warn).
fn with_tungstenite_capped(filter: EnvFilter) -> anyhow::Result<EnvFilter> {
    let most_verbose = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let cap = most_verbose.min(LevelFilter::DEBUG);
    Ok(filter.add_directive(format!("tungstenite={cap}").parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tungstenite_level(level: &str) -> String {
        let filter = with_tungstenite_capped(EnvFilter::try_new(level).unwrap()).unwrap();
        filter
            .to_string()
            .split(',')
            .find_map(|directive| directive.strip_prefix("tungstenite="))
            .unwrap_or_default()
            .to_lowercase()
    }

    #[test]
    fn tungstenite_never_logs_at_trace_and_never_above_the_configured_level() {
        assert_eq!(tungstenite_level("trace"), "debug");
        assert_eq!(tungstenite_level("debug"), "debug");
        assert_eq!(tungstenite_level("info"), "info");
        assert_eq!(tungstenite_level("warn"), "warn");
    }
}
