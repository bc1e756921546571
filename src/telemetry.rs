//! Logging: a `tracing` subscriber that prints human-readable lines locally and one JSON object
//! per line in production (`log.format`), filtered by `log.level`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, from `main`, after settings are loaded (the level
/// was validated there, so a bad filter cannot reach this point).
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    // tungstenite logs the raw upgrade request, `Authorization: Bearer <tenant's key>`
    // included, at trace level: never let it go below debug, whatever the configured level.
    let filter = EnvFilter::try_new(&settings.level)?.add_directive("tungstenite=debug".parse()?);
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
