//! Builds [`Settings`] from its layered sources and turns every problem into one line that names
//! the setting and its environment variable.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use config::{
    Config, ConfigError, Environment as EnvSource, File, FileFormat, Source as _, Value, ValueKind,
};

use super::{Environment, Settings, dev_secrets};

/// Prefix of every environment variable the service reads; sections are separated by `__`.
pub(crate) const ENV_PREFIX: &str = "VOXBRIDGE";
const ENV_SEPARATOR: &str = "__";

/// Settings that hold secrets: their values never appear in an error message.
const SECRET_KEYS: &[&str] = &[
    "security.admin_token",
    "security.master_key",
    "security.url_signing_key",
    "security.previous_master_keys",
    "mongodb.uri",
];

/// The secrets development generates when they are missing and production requires.
pub(super) const GENERATED_SECRET_KEYS: &[&str] = &[
    "security.admin_token",
    "security.master_key",
    "security.url_signing_key",
];

/// Further settings a production deployment must state explicitly.
const REQUIRED_IN_PRODUCTION: &[&str] = &["mongodb.uri", "server.public_base_url"];

/// Minimum length of the admin token and the URL signing key: both guard the whole platform.
const MIN_SECRET_LEN: usize = 32;

/// Where settings come from, apart from the defaults in code.
#[derive(Debug, Clone, Default)]
pub struct SettingsSources {
    /// TOML file from `--config` or `VOXBRIDGE_CONFIG`; it must exist when given.
    pub config_file: Option<PathBuf>,
    /// Environment variables (only `VOXBRIDGE__…` ones are read). Passed in rather than read
    /// from the process so that tests can load settings in parallel.
    pub env: HashMap<String, String>,
}

impl SettingsSources {
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        Self {
            config_file,
            env: std::env::vars().collect(),
        }
    }
}

/// Loaded settings plus what the caller should tell the operator once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// Keys found in the file or the environment that no setting has (probably typos).
    pub unknown_keys: Vec<String>,
    /// Set when development secrets were generated during this load.
    pub generated_dev_secrets: Option<GeneratedSecrets>,
}

/// Development secrets this load generated (and wrote to `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecrets {
    pub path: PathBuf,
    /// The setting keys generated, e.g. `security.admin_token`.
    pub keys: Vec<String>,
}

impl GeneratedSecrets {
    /// Whether the admin token is new: only then is it shown to the operator, once.
    pub fn admin_token(&self) -> bool {
        self.keys.iter().any(|key| key == "security.admin_token")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("missing setting {}", describe_keys(.0))]
    Missing(Vec<String>),
    #[error("invalid setting {} ({}): {message}", .key, env_var_name(.key))]
    Invalid { key: String, message: String },
    #[error("configuration file {path}: {message}")]
    File { path: String, message: String },
    /// Printed with `{}` (one line), so the I/O error is part of the message, not a source.
    #[error("cannot write development secrets to {}: {error}", .path.display())]
    DevSecrets {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("configuration error: {0}")]
    Other(String),
}

impl SettingsError {
    pub(super) fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// `server.port` → `VOXBRIDGE__SERVER__PORT`.
pub(crate) fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_uppercase()
    )
}

fn describe_keys(keys: &[String]) -> String {
    keys.iter()
        .map(|key| format!("{key} (set {})", env_var_name(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads, checks and returns the settings. In development, missing secrets are generated once
/// into `<dev.state_dir>/dev-secrets.toml` (which is why this can write a file).
pub fn load(sources: &SettingsSources) -> Result<Loaded, SettingsError> {
    let without_dev_file = build(sources, None)?;
    let environment: Environment = optional(&without_dev_file, "environment")?.unwrap_or_default();

    let mut generated_dev_secrets = None;
    let config = match environment {
        Environment::Production => {
            let missing = missing_keys(
                &without_dev_file,
                GENERATED_SECRET_KEYS.iter().chain(REQUIRED_IN_PRODUCTION),
            );
            if !missing.is_empty() {
                return Err(SettingsError::Missing(missing));
            }
            without_dev_file
        }
        Environment::Development => {
            let state_dir: PathBuf = optional(&without_dev_file, "dev.state_dir")?
                .unwrap_or_else(|| super::DevSettings::default().state_dir);
            let secrets_file = dev_secrets::path(&state_dir);
            let with_dev_file = build(sources, Some(&secrets_file))?;
            let missing = missing_keys(&with_dev_file, GENERATED_SECRET_KEYS.iter());
            if missing.is_empty() {
                with_dev_file
            } else {
                dev_secrets::generate_missing(&secrets_file, &missing)?;
                generated_dev_secrets = Some(GeneratedSecrets {
                    path: secrets_file.clone(),
                    keys: missing,
                });
                build(sources, Some(&secrets_file))?
            }
        }
    };

    let unknown_keys = unknown_keys(&config)?;
    let settings: Settings = config.try_deserialize().map_err(from_config_error)?;
    validate(&settings)?;
    Ok(Loaded {
        settings,
        unknown_keys,
        generated_dev_secrets,
    })
}

fn build(
    sources: &SettingsSources,
    dev_secrets_file: Option<&Path>,
) -> Result<Config, SettingsError> {
    let mut builder = Config::builder();
    if let Some(path) = dev_secrets_file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(false));
    }
    if let Some(path) = &sources.config_file {
        if !path.is_file() {
            return Err(SettingsError::File {
                path: path.display().to_string(),
                message: "no such file".to_owned(),
            });
        }
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }
    let env: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    builder = builder.add_source(
        EnvSource::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            // An empty variable (a blank line copied from .env.example) means "not set".
            .ignore_empty(true)
            .source(Some(env)),
    );
    builder.build().map_err(from_config_error)
}

fn optional<T: serde::de::DeserializeOwned>(
    config: &Config,
    key: &str,
) -> Result<Option<T>, SettingsError> {
    match config.get::<T>(key) {
        Ok(value) => Ok(Some(value)),
        Err(ConfigError::NotFound(_)) => Ok(None),
        Err(err) => Err(from_config_error(err).with_key(key)),
    }
}

fn missing_keys<'a>(config: &Config, keys: impl Iterator<Item = &'a &'a str>) -> Vec<String> {
    keys.filter(|key| match config.get::<String>(key) {
        Ok(value) => value.trim().is_empty(),
        Err(_) => true,
    })
    .map(|key| (*key).to_owned())
    .collect()
}

/// Keys present in the sources that no setting has. Reported as warnings, not errors, so a
/// variable left over from another version does not stop a deployment.
fn unknown_keys(config: &Config) -> Result<Vec<String>, SettingsError> {
    // Any complete Settings value names every key; the test one is at hand.
    let template = Settings::for_tests("mongodb://template", "template");
    let known = leaf_keys_of_json(
        &serde_json::to_value(&template).expect("settings serialize to JSON"),
        "",
    );
    let mut present = BTreeSet::new();
    let table = config.collect().map_err(from_config_error)?;
    collect_leaf_keys(&table, "", &mut present);
    Ok(present.difference(&known).cloned().collect())
}

fn leaf_keys_of_json(value: &serde_json::Value, prefix: &str) -> BTreeSet<String> {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .flat_map(|(key, child)| leaf_keys_of_json(child, &join_key(prefix, key)))
            .collect(),
        _ => BTreeSet::from([prefix.to_owned()]),
    }
}

fn collect_leaf_keys(table: &config::Map<String, Value>, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let key = join_key(prefix, key);
        match &value.kind {
            ValueKind::Table(child) => collect_leaf_keys(child, &key, out),
            _ => {
                out.insert(key);
            }
        }
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn from_config_error(err: ConfigError) -> SettingsError {
    match err {
        ConfigError::NotFound(key) => SettingsError::Missing(vec![key]),
        ConfigError::At {
            error,
            key: Some(key),
            ..
        } => SettingsError::invalid(&key, describe_value_error(&key, &error)),
        ConfigError::Type {
            key: Some(ref key), ..
        } => SettingsError::invalid(key, describe_value_error(key, &err)),
        ConfigError::FileParse { uri, cause } => SettingsError::File {
            path: uri.unwrap_or_else(|| "(inline)".to_owned()),
            message: cause.to_string(),
        },
        other => SettingsError::Other(other.to_string()),
    }
}

/// The error text for one value, without echoing the value of a secret.
fn describe_value_error(key: &str, err: &ConfigError) -> String {
    match err {
        ConfigError::Type {
            unexpected,
            expected,
            ..
        } if !SECRET_KEYS.contains(&key) => format!("expected {expected}, got {unexpected}"),
        ConfigError::Type { expected, .. } => format!("expected {expected}"),
        ConfigError::Message(message) => message.clone(),
        other => other.to_string(),
    }
}

impl SettingsError {
    /// Attaches the key to an error that came back from a single-key lookup without one.
    fn with_key(self, key: &str) -> Self {
        match self {
            SettingsError::Other(message) => SettingsError::invalid(key, message),
            other => other,
        }
    }
}

/// Checks that go beyond types: URL schemes, secret strength, production rules.
fn validate(settings: &Settings) -> Result<(), SettingsError> {
    let production = settings.environment == Environment::Production;

    for (key, secret) in [
        ("security.admin_token", &settings.security.admin_token),
        (
            "security.url_signing_key",
            &settings.security.url_signing_key,
        ),
    ] {
        if secret.expose().len() < MIN_SECRET_LEN {
            return Err(SettingsError::invalid(
                key,
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
    }

    if let Some(token) = &settings.metrics.token {
        if token.expose().len() < MIN_SECRET_LEN {
            return Err(SettingsError::invalid(
                "metrics.token",
                format!("must be at least {MIN_SECRET_LEN} characters when set"),
            ));
        }
    }

    let security = &settings.security;
    if security.master_key_version == 0 {
        return Err(SettingsError::invalid(
            "security.master_key_version",
            "must be at least 1",
        ));
    }
    if security
        .previous_master_keys
        .0
        .contains_key(&security.master_key_version)
    {
        return Err(SettingsError::invalid(
            "security.previous_master_keys",
            "must not contain the current security.master_key_version",
        ));
    }

    if let Some(url) = &settings.server.public_base_url {
        let allowed: &[&str] = if production {
            &["https"]
        } else {
            &["http", "https"]
        };
        check_url("server.public_base_url", url, allowed)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(SettingsError::invalid(
                "server.public_base_url",
                "must not have a query or fragment",
            ));
        }
    }
    // Tenants' provider keys travel in these requests: in production only encrypted transports,
    // unless the operator says otherwise.
    let secure_only = production && !settings.security.allow_insecure_provider_urls;
    let (http, websocket): (&[&str], &[&str]) = if secure_only {
        (&["https"], &["wss"])
    } else {
        (&["http", "https"], &["ws", "wss"])
    };
    let text_ai = &settings.text_ai;
    let mut provider_urls = vec![
        ("frejun.api_base_url", &settings.frejun.api_base_url, http),
        (
            "openai.realtime_url",
            &settings.openai.realtime_url,
            websocket,
        ),
        (
            "elevenlabs.api_base_url",
            &settings.elevenlabs.api_base_url,
            http,
        ),
        (
            "elevenlabs.conversation_url",
            &settings.elevenlabs.conversation_url,
            websocket,
        ),
        (
            "text_ai.anthropic_base_url",
            &text_ai.anthropic_base_url,
            http,
        ),
        ("text_ai.openai_base_url", &text_ai.openai_base_url, http),
    ];
    if let Some(url) = &text_ai.chat_completions_base_url {
        provider_urls.push(("text_ai.chat_completions_base_url", url, http));
    }
    for (key, url, schemes) in provider_urls {
        check_url(key, url, schemes)?;
    }
    if text_ai.chat_completions_base_url.is_some() && text_ai.chat_completions_model.is_empty() {
        return Err(SettingsError::invalid(
            "text_ai.chat_completions_model",
            "must be set with text_ai.chat_completions_base_url",
        ));
    }
    // A lease shorter than one request with its retries lets a second instance take a slow
    // analysis over while it still runs: the provider is paid twice and one result dropped.
    let attempts = u64::from(text_ai.max_attempts.max(1));
    let longest_request_ms = text_ai
        .timeout_ms
        .saturating_mul(attempts)
        .saturating_add(text_ai.max_retry_wait_ms.saturating_mul(attempts - 1));
    if settings.analysis.lease_secs.saturating_mul(1_000) <= longest_request_ms {
        return Err(SettingsError::invalid(
            "analysis.lease_secs",
            format!(
                "must be longer than one text request with its retries ({longest_request_ms} \
                 ms: text_ai.timeout_ms × max_attempts + max_retry_wait_ms × (max_attempts - 1))"
            ),
        ));
    }
    for (key, model) in [
        ("text_ai.anthropic_model", &text_ai.anthropic_model),
        ("text_ai.openai_model", &text_ai.openai_model),
    ] {
        if let Err(problem) = crate::domain::text_ai::check_text_model(key, model) {
            return Err(SettingsError::invalid(key, problem.message));
        }
    }

    use crate::domain::model_retirement::{ModelKind, retirement};
    if let Some(retired) = retirement(ModelKind::Realtime, &settings.openai.default_model)
        .filter(|r| r.is_retired_on(chrono::Utc::now().date_naive()))
    {
        return Err(SettingsError::invalid(
            "openai.default_model",
            format!(
                "{} was shut down by OpenAI on {}; use {}",
                retired.model,
                retired.shutdown(),
                retired.replacement
            ),
        ));
    }

    let frejun = &settings.frejun;
    for (key, value, range) in [
        ("frejun.api_timeout_secs", frejun.api_timeout_secs, 1..=120),
        (
            "frejun.media_token_ttl_secs",
            frejun.media_token_ttl_secs,
            10..=3_600,
        ),
        (
            "frejun.media_arrival_timeout_secs",
            frejun.media_arrival_timeout_secs,
            5..=3_600,
        ),
        (
            "frejun.outbound_ring_timeout_secs",
            frejun.outbound_ring_timeout_secs,
            10..=3_600,
        ),
        (
            "frejun.reaper_interval_secs",
            frejun.reaper_interval_secs,
            1..=600,
        ),
        (
            "frejun.url_secret_overlap_secs",
            frejun.url_secret_overlap_secs,
            0..=30 * 86_400,
        ),
        (
            "frejun.max_unmatched_events_per_hour",
            frejun.max_unmatched_events_per_hour,
            0..=1_000_000,
        ),
        (
            "frejun.max_refused_flow_logs_per_hour",
            frejun.max_refused_flow_logs_per_hour,
            0..=1_000_000,
        ),
    ] {
        if !range.contains(&value) {
            return Err(SettingsError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }

    let tools = &settings.tools;
    for (key, value, range) in [
        ("tools.filler_delay_ms", tools.filler_delay_ms, 0..=60_000),
        (
            "tools.max_concurrent_per_call",
            tools.max_concurrent_per_call as u64,
            1..=32,
        ),
        (
            "tools.max_speech_wait_ms",
            tools.max_speech_wait_ms,
            0..=120_000,
        ),
        (
            "tools.signing_secret_overlap_secs",
            tools.signing_secret_overlap_secs,
            0..=30 * 86_400,
        ),
        (
            "webhooks.attempt_timeout_ms",
            settings.webhooks.attempt_timeout_ms,
            100..=60_000,
        ),
        (
            "webhooks.secret_overlap_secs",
            settings.webhooks.secret_overlap_secs,
            0..=30 * 86_400,
        ),
        (
            "webhooks.poll_interval_ms",
            settings.webhooks.poll_interval_ms,
            50..=60_000,
        ),
        (
            "webhooks.ended_settle_ms",
            settings.webhooks.ended_settle_ms,
            0..=60_000,
        ),
        (
            "webhooks.retention_days",
            settings.webhooks.retention_days,
            1..=365,
        ),
        (
            "text_ai.timeout_ms",
            settings.text_ai.timeout_ms,
            100..=600_000,
        ),
        (
            "text_ai.max_attempts",
            u64::from(settings.text_ai.max_attempts),
            1..=10,
        ),
        (
            "text_ai.max_retry_wait_ms",
            settings.text_ai.max_retry_wait_ms,
            0..=600_000,
        ),
        (
            "text_ai.check_interval_secs",
            settings.text_ai.check_interval_secs,
            1..=86_400,
        ),
        (
            "text_ai.max_concurrent_per_tenant",
            settings.text_ai.max_concurrent_per_tenant as u64,
            1..=1_000,
        ),
        (
            "analysis.poll_interval_ms",
            settings.analysis.poll_interval_ms,
            50..=60_000,
        ),
        (
            "analysis.max_concurrent",
            settings.analysis.max_concurrent as u64,
            1..=64,
        ),
        (
            "analysis.lease_secs",
            settings.analysis.lease_secs,
            1..=86_400,
        ),
        (
            "analysis.max_runs",
            u64::from(settings.analysis.max_runs),
            1..=20,
        ),
        (
            "analysis.retry_delay_secs",
            settings.analysis.retry_delay_secs,
            0..=86_400,
        ),
        (
            "analysis.max_output_tokens",
            u64::from(settings.analysis.max_output_tokens),
            64..=32_000,
        ),
        (
            "analysis.max_transcript_chars",
            settings.analysis.max_transcript_chars as u64,
            1_000..=1_000_000,
        ),
    ] {
        if !range.contains(&value) {
            return Err(SettingsError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }

    if let Err(problem) = super::parse_retry_schedule(&settings.webhooks.retry_schedule_secs) {
        return Err(SettingsError::invalid(
            "webhooks.retry_schedule_secs",
            problem,
        ));
    }

    if let Err(problem) =
        crate::outbound::address_policy::AllowList::parse(&settings.outbound.allow)
    {
        return Err(SettingsError::invalid("outbound.allow", problem));
    }

    let playback_chunk_ms = settings.bridge.playback_chunk_ms;
    if !(20..=2_000).contains(&playback_chunk_ms) || playback_chunk_ms % 20 != 0 {
        return Err(SettingsError::invalid(
            "bridge.playback_chunk_ms",
            "must be a multiple of 20 between 20 and 2000",
        ));
    }
    let line = settings.bridge.session_closing_line.trim();
    if line.is_empty() || line.chars().count() > 500 {
        return Err(SettingsError::invalid(
            "bridge.session_closing_line",
            "must be 1 to 500 characters",
        ));
    }
    if settings.bridge.session_closing_secs * 2 > settings.openai.session_limit_secs {
        return Err(SettingsError::invalid(
            "bridge.session_closing_secs",
            "must be at most half of openai.session_limit_secs",
        ));
    }

    let limits = &settings.rate_limit;
    for (key, value, range) in [
        (
            "rate_limit.api_key_per_second",
            limits.api_key_per_second,
            1..=100_000,
        ),
        (
            "rate_limit.api_key_burst",
            limits.api_key_burst,
            1..=1_000_000,
        ),
        (
            "rate_limit.frejun_key_per_second",
            limits.frejun_key_per_second,
            1..=100_000,
        ),
        (
            "rate_limit.frejun_key_burst",
            limits.frejun_key_burst,
            1..=1_000_000,
        ),
        (
            "rate_limit.failed_auth_per_minute",
            limits.failed_auth_per_minute,
            1..=1_000_000,
        ),
        (
            "rate_limit.failed_auth_burst",
            limits.failed_auth_burst,
            1..=1_000_000,
        ),
        (
            "rate_limit.trusted_proxy_hops",
            u32::from(limits.trusted_proxy_hops),
            0..=16,
        ),
    ] {
        if !range.contains(&value) {
            return Err(SettingsError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }

    let bridge = &settings.bridge;
    for (key, value, range) in [
        (
            "openai.connect_timeout_ms",
            settings.openai.connect_timeout_ms,
            100..=60_000,
        ),
        (
            "elevenlabs.connect_timeout_ms",
            settings.elevenlabs.connect_timeout_ms,
            100..=60_000,
        ),
        (
            "server.body_read_timeout_ms",
            settings.server.body_read_timeout_ms,
            100..=120_000,
        ),
        (
            "server.max_header_bytes",
            settings.server.max_header_bytes as u64,
            1_024..=96 * 1_024,
        ),
        (
            "server.max_headers",
            settings.server.max_headers as u64,
            8..=90,
        ),
        (
            "openai.session_limit_secs",
            settings.openai.session_limit_secs,
            60..=86_400,
        ),
        (
            "bridge.session_closing_secs",
            bridge.session_closing_secs,
            5..=300,
        ),
        (
            "bridge.heartbeat_interval_secs",
            bridge.heartbeat_interval_secs,
            1..=60,
        ),
        (
            "bridge.peer_timeout_secs",
            bridge.peer_timeout_secs,
            2..=300,
        ),
        (
            "bridge.start_timeout_secs",
            bridge.start_timeout_secs,
            1..=120,
        ),
        (
            "bridge.early_audio_max_ms",
            bridge.early_audio_max_ms,
            0..=30_000,
        ),
        (
            "bridge.max_message_bytes",
            bridge.max_message_bytes as u64,
            16 * 1024..=16 * 1024 * 1024,
        ),
        (
            "bridge.playout_latency_ms",
            bridge.playout_latency_ms,
            0..=2_000,
        ),
        (
            "bridge.log_flush_interval_ms",
            bridge.log_flush_interval_ms,
            100..=60_000,
        ),
        (
            "bridge.log_batch_window_ms",
            bridge.log_batch_window_ms,
            0..=1_000,
        ),
        (
            "bridge.metrics_flush_interval_secs",
            bridge.metrics_flush_interval_secs,
            1..=3_600,
        ),
        ("bridge.slot_lease_secs", bridge.slot_lease_secs, 15..=3_600),
        (
            "bridge.default_max_call_seconds",
            bridge.default_max_call_seconds,
            10..=86_400,
        ),
        (
            "bridge.inbound_audio_rate_percent",
            bridge.inbound_audio_rate_percent,
            100..=1_000,
        ),
        (
            "bridge.inbound_audio_burst_ms",
            bridge.inbound_audio_burst_ms,
            200..=30_000,
        ),
        (
            "bridge.inbound_audio_flood_ms",
            bridge.inbound_audio_flood_ms,
            0..=600_000,
        ),
        (
            "bridge.max_bad_frames",
            bridge.max_bad_frames,
            1..=1_000_000,
        ),
        (
            "bridge.fault_log_interval_secs",
            bridge.fault_log_interval_secs,
            1..=3_600,
        ),
        (
            "bridge.send_timeout_ms",
            bridge.send_timeout_ms,
            100..=60_000,
        ),
        (
            "cluster.command_timeout_ms",
            settings.cluster.command_timeout_ms,
            100..=60_000,
        ),
        (
            "cluster.drain_timeout_secs",
            settings.cluster.drain_timeout_secs,
            0..=86_400,
        ),
        (
            "cluster.drain_closing_secs",
            settings.cluster.drain_closing_secs,
            1..=300,
        ),
    ] {
        if !range.contains(&value) {
            return Err(SettingsError::invalid(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }
    if bridge.peer_timeout_secs <= bridge.heartbeat_interval_secs {
        return Err(SettingsError::invalid(
            "bridge.peer_timeout_secs",
            "must be longer than bridge.heartbeat_interval_secs",
        ));
    }

    if settings.server.json_body_limit_bytes == 0 {
        return Err(SettingsError::invalid(
            "server.json_body_limit_bytes",
            "must be greater than 0",
        ));
    }
    if settings.server.workers == Some(0) {
        return Err(SettingsError::invalid(
            "server.workers",
            "must be at least 1",
        ));
    }
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&settings.log.level) {
        return Err(SettingsError::invalid("log.level", err.to_string()));
    }
    let database = &settings.mongodb.database;
    if database.is_empty()
        || database.len() > 63
        || database.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
    {
        return Err(SettingsError::invalid(
            "mongodb.database",
            "must be 1-63 characters without / \\ . space \" $",
        ));
    }
    if let Some(instance_id) = &settings.cluster.instance_id {
        if !crate::domain::cluster::InstanceId::is_valid(instance_id) {
            return Err(SettingsError::invalid(
                "cluster.instance_id",
                "must be 1-64 characters of letters, digits, '.', '_' and '-'",
            ));
        }
    }
    if settings.openai.default_model.trim().is_empty() {
        return Err(SettingsError::invalid(
            "openai.default_model",
            "must not be empty",
        ));
    }
    Ok(())
}

fn check_url(key: &str, url: &url::Url, schemes: &[&str]) -> Result<(), SettingsError> {
    if !schemes.contains(&url.scheme()) {
        return Err(SettingsError::invalid(
            key,
            format!(
                "scheme must be one of {}, got {}",
                schemes.join(", "),
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none() {
        return Err(SettingsError::invalid(key, "must have a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const ADMIN: &str = "admin-token-that-is-long-enough-0123456789";
    const SIGNING: &str = "url-signing-key-that-is-long-enough-0123456";
    const MASTER: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 bytes of 0x01

    /// Sources with the three secrets set and a state directory that is private to the test.
    fn sources(state_dir: &Path, extra: &[(&str, &str)]) -> SettingsSources {
        let mut env: HashMap<String, String> = [
            ("VOXBRIDGE__SECURITY__ADMIN_TOKEN", ADMIN),
            ("VOXBRIDGE__SECURITY__URL_SIGNING_KEY", SIGNING),
            ("VOXBRIDGE__SECURITY__MASTER_KEY", MASTER),
            ("VOXBRIDGE__DEV__STATE_DIR", state_dir.to_str().unwrap()),
            ("UNRELATED_VARIABLE", "ignored"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        SettingsSources {
            config_file: None,
            env,
        }
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_apply_when_nothing_else_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let settings = load(&sources(dir.path(), &[])).unwrap().settings;
        assert_eq!(settings.environment, Environment::Development);
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.server.host.to_string(), "127.0.0.1");
        assert_eq!(settings.server.json_body_limit_bytes, 1024 * 1024);
        assert_eq!(settings.mongodb.database, "voxbridge");
        assert_eq!(
            settings.frejun.api_base_url.as_str(),
            "https://api.frejun.ai/api/v1"
        );
        assert_eq!(
            settings.openai.realtime_url.as_str(),
            "wss://api.openai.com/v1/realtime"
        );
        assert_eq!(settings.openai.default_model, "gpt-realtime-2.1");
        assert_eq!(
            settings.public_base_url().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(settings.security.master_key.expose(), &[1u8; 32]);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = toml_file(
            "[server]\nport = 9000\n\n[mongodb]\ndatabase = \"from_file\"\n\n[log]\nformat = \"json\"\n",
        );

        let mut from_file = sources(dir.path(), &[]);
        from_file.config_file = Some(file.path().to_owned());
        let settings = load(&from_file).unwrap().settings;
        assert_eq!(settings.server.port, 9000, "file beats default");
        assert_eq!(settings.mongodb.database, "from_file");
        assert_eq!(settings.log.format, crate::settings::LogFormat::Json);

        let mut both = sources(dir.path(), &[("VOXBRIDGE__SERVER__PORT", "9100")]);
        both.config_file = Some(file.path().to_owned());
        let settings = load(&both).unwrap().settings;
        assert_eq!(settings.server.port, 9100, "environment beats file");
        assert_eq!(
            settings.mongodb.database, "from_file",
            "untouched keys keep the file's value"
        );
    }

    #[test]
    fn public_urls_keep_the_base_path() {
        let dir = tempfile::tempdir().unwrap();
        for base in [
            "https://voice.example.com/voxbridge",
            "https://voice.example.com/voxbridge/",
        ] {
            let settings = load(&sources(
                dir.path(),
                &[("VOXBRIDGE__SERVER__PUBLIC_BASE_URL", base)],
            ))
            .unwrap()
            .settings;
            assert_eq!(
                settings.public_url("api/frejun/flow").as_str(),
                "https://voice.example.com/voxbridge/api/frejun/flow"
            );
        }
        let settings = load(&sources(dir.path(), &[])).unwrap().settings;
        assert_eq!(
            settings.public_url("/api/frejun/flow").as_str(),
            "http://127.0.0.1:8080/api/frejun/flow"
        );
    }

    #[test]
    fn an_invalid_value_names_the_key_and_its_variable_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&sources(
            dir.path(),
            &[("VOXBRIDGE__SERVER__PORT", "eighty")],
        ))
        .unwrap_err();
        let line = err.to_string();
        assert!(line.contains("server.port"), "{line}");
        assert!(line.contains("VOXBRIDGE__SERVER__PORT"), "{line}");
        assert!(!line.contains('\n'), "{line}");

        let err = load(&sources(dir.path(), &[("VOXBRIDGE__LOG__FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("VOXBRIDGE__LOG__FORMAT"), "{err}");

        let err = load(&sources(
            dir.path(),
            &[("VOXBRIDGE__OPENAI__REALTIME_URL", "https://example.com")],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("openai.realtime_url"), "{err}");
        assert!(err.to_string().contains("ws, wss"), "{err}");
    }

    #[test]
    fn an_invalid_secret_is_named_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let short_key = "c2hvcnQta2V5"; // base64 of "short-key"
        let err = load(&sources(
            dir.path(),
            &[("VOXBRIDGE__SECURITY__MASTER_KEY", short_key)],
        ))
        .unwrap_err();
        let line = err.to_string();
        assert!(line.contains("VOXBRIDGE__SECURITY__MASTER_KEY"), "{line}");
        assert!(line.contains("32 bytes"), "{line}");
        assert!(!line.contains(short_key), "{line}");

        let err = load(&sources(
            dir.path(),
            &[("VOXBRIDGE__SECURITY__ADMIN_TOKEN", "changeme")],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("at least 32 characters"), "{err}");
        assert!(!err.to_string().contains("changeme"), "{err}");
    }

    #[test]
    fn production_refuses_to_start_without_its_secrets_and_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = sources(dir.path(), &[("VOXBRIDGE__ENVIRONMENT", "production")]);
        env.env.remove("VOXBRIDGE__SECURITY__ADMIN_TOKEN");
        let err = load(&env).unwrap_err();
        let line = err.to_string();
        for key in [
            "VOXBRIDGE__SECURITY__ADMIN_TOKEN",
            "VOXBRIDGE__MONGODB__URI",
            "VOXBRIDGE__SERVER__PUBLIC_BASE_URL",
        ] {
            assert!(line.contains(key), "{line}");
        }
        assert!(
            !dev_secrets::path(dir.path()).exists(),
            "production never writes dev secrets"
        );

        let err = load(&sources(
            dir.path(),
            &[
                ("VOXBRIDGE__ENVIRONMENT", "production"),
                ("VOXBRIDGE__MONGODB__URI", "mongodb://db.internal/"),
                (
                    "VOXBRIDGE__SERVER__PUBLIC_BASE_URL",
                    "http://voice.example.com",
                ),
            ],
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("https"),
            "production needs https: {err}"
        );

        let production = [
            ("VOXBRIDGE__ENVIRONMENT", "production"),
            ("VOXBRIDGE__MONGODB__URI", "mongodb://db.internal/"),
            (
                "VOXBRIDGE__SERVER__PUBLIC_BASE_URL",
                "https://voice.example.com",
            ),
        ];
        for (key, insecure) in [
            (
                "VOXBRIDGE__FREJUN__API_BASE_URL",
                "http://teler.internal/api/v1",
            ),
            (
                "VOXBRIDGE__OPENAI__REALTIME_URL",
                "ws://openai.internal/v1/realtime",
            ),
        ] {
            let mut vars = production.to_vec();
            vars.push((key, insecure));
            let err = load(&sources(dir.path(), &vars)).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
            vars.push(("VOXBRIDGE__SECURITY__ALLOW_INSECURE_PROVIDER_URLS", "true"));
            assert!(
                load(&sources(dir.path(), &vars)).is_ok(),
                "explicitly allowed"
            );
        }
    }

    #[test]
    fn development_generates_missing_secrets_once_and_reuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = sources(dir.path(), &[]);
        env.env
            .retain(|key, _| !key.starts_with("VOXBRIDGE__SECURITY__"));

        let first = load(&env).unwrap();
        let file = dev_secrets::path(dir.path());
        let generated = first
            .generated_dev_secrets
            .clone()
            .expect("secrets generated");
        assert_eq!(generated.path, file);
        assert!(generated.admin_token());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let second = load(&env).unwrap();
        assert!(
            second.generated_dev_secrets.is_none(),
            "nothing left to generate"
        );
        assert_eq!(
            first.settings.security.admin_token.expose(),
            second.settings.security.admin_token.expose()
        );
        assert_eq!(
            first.settings.security.master_key,
            second.settings.security.master_key
        );

        // A value from the environment still wins over the generated one.
        let mut overridden = env.clone();
        overridden
            .env
            .insert("VOXBRIDGE__SECURITY__ADMIN_TOKEN".into(), ADMIN.into());
        assert_eq!(
            load(&overridden)
                .unwrap()
                .settings
                .security
                .admin_token
                .expose(),
            ADMIN
        );
    }

    #[test]
    fn unknown_keys_are_reported_and_empty_variables_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&sources(
            dir.path(),
            &[
                ("VOXBRIDGE__SERVER__PROT", "1"),
                ("VOXBRIDGE__SERVER__PORT", ""),
            ],
        ))
        .unwrap();
        assert_eq!(loaded.unknown_keys, vec!["server.prot".to_owned()]);
        assert_eq!(
            loaded.settings.server.port, 8080,
            "an empty variable means unset"
        );
    }

    #[test]
    fn a_missing_or_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = sources(dir.path(), &[]);
        env.config_file = Some(dir.path().join("nope.toml"));
        assert!(
            load(&env)
                .unwrap_err()
                .to_string()
                .contains("nope.toml: no such file")
        );

        let broken = toml_file("[server\nport = 1");
        env.config_file = Some(broken.path().to_owned());
        let err = load(&env).unwrap_err();
        assert!(matches!(err, SettingsError::File { .. }), "{err}");
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let dir = tempfile::tempdir().unwrap();
        let settings = load(&sources(
            dir.path(),
            &[("VOXBRIDGE__MONGODB__URI", "mongodb://user:pw-secret@db/")],
        ))
        .unwrap()
        .settings;
        let debug = format!("{settings:?}");
        for secret in [ADMIN, SIGNING, MASTER, "pw-secret"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn env_example_documents_exactly_the_known_settings() {
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
        let documented: BTreeSet<String> = example
            .lines()
            .map(|line| line.trim_start_matches('#').trim())
            .filter_map(|line| line.strip_prefix("VOXBRIDGE__"))
            .filter_map(|rest| rest.split('=').next())
            .map(|name| name.replace("__", ".").to_lowercase())
            .collect();
        let template = Settings::for_tests("mongodb://template", "template");
        let known = leaf_keys_of_json(&serde_json::to_value(&template).unwrap(), "");
        assert_eq!(
            documented, known,
            ".env.example must list every setting, and only those"
        );
    }

    #[test]
    fn an_analysis_lease_shorter_than_a_text_request_is_refused() {
        let mut settings = Settings::for_tests("mongodb://localhost", "x");
        validate(&settings).unwrap();
        settings.analysis.lease_secs = 130;
        let error = validate(&settings).unwrap_err().to_string();
        assert!(error.contains("analysis.lease_secs"), "{error}");
        assert!(error.contains("130000 ms"), "{error}");
        settings.analysis.lease_secs = 131;
        validate(&settings).unwrap();
    }
}
