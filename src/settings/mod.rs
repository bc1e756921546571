//! Typed configuration for every part of the service.
//!
//! Sources, lowest priority first: defaults in code, the development secrets file (development
//! only, see [`dev_secrets`]), an optional TOML file (`--config` / `VOXBRIDGE_CONFIG`), then
//! environment variables `VOXBRIDGE__SECTION__KEY` (so `[server] port` is
//! `VOXBRIDGE__SERVER__PORT`). Loading is in [`load`]; a bad value stops startup with one line
//! that names the key and its environment variable.

pub(crate) mod dev_secrets;
pub mod load;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::crypto::Keyring;
use crate::domain::secret::{MasterKey, SecretString};
use crate::domain::text_ai::TextProvider;

pub use load::{Loaded, SettingsError, SettingsSources};

/// Which rules apply to missing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local use: missing secrets are generated into the state directory and a local MongoDB is
    /// started when no URI is configured.
    #[default]
    Development,
    /// Deployed: every secret, the MongoDB URI and an `https` public base URL must be configured.
    Production,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub mongodb: MongoSettings,
    pub security: SecuritySettings,
    #[serde(default)]
    pub frejun: FrejunSettings,
    #[serde(default)]
    pub openai: OpenAiSettings,
    #[serde(default)]
    pub elevenlabs: ElevenLabsSettings,
    #[serde(default)]
    pub bridge: BridgeSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    #[serde(default)]
    pub outbound: OutboundSettings,
    #[serde(default)]
    pub tools: ToolSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub text_ai: TextAiSettings,
    #[serde(default)]
    pub analysis: AnalysisSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub cluster: ClusterSettings,
    #[serde(default)]
    pub dev: DevSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Public origin FreJun reaches us at; `https://` here becomes `wss://` for media streams.
    /// Development falls back to `http://<host>:<port>`.
    pub public_base_url: Option<Url>,
    /// HTTP worker threads; one per CPU when unset.
    pub workers: Option<usize>,
    /// Largest JSON request body accepted, in bytes; larger bodies answer 413.
    pub json_body_limit_bytes: usize,
    /// How long a shutdown waits for in-flight requests (and, later, live calls) to finish.
    pub shutdown_timeout_secs: u64,
    /// How long the body of a FreJun request may take to arrive once its key is accepted, in
    /// milliseconds; a slower one answers 408.
    pub body_read_timeout_ms: u64,
    /// Largest total size of a request's header names and values, in bytes; larger answers
    /// 431 `headers_too_large`.
    pub max_header_bytes: usize,
    /// Most headers a request may carry; more answers 431 `headers_too_large`.
    pub max_headers: usize,
}

impl ServerSettings {
    pub(crate) fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            public_base_url: None,
            workers: None,
            json_body_limit_bytes: 1024 * 1024,
            shutdown_timeout_secs: 30,
            body_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MongoSettings {
    /// Connection string. A secret because it may carry a password. Development starts a local
    /// MongoDB when it is unset.
    pub uri: Option<SecretString>,
    pub database: String,
    /// How long an operation waits for a usable server before failing.
    pub server_selection_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Upper bound on the `/ready` database ping, so a dead database answers 503 promptly.
    pub ping_timeout_ms: u64,
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            uri: None,
            database: "voxbridge".to_owned(),
            server_selection_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            ping_timeout_ms: 2_000,
        }
    }
}

impl MongoSettings {
    pub(crate) fn server_selection_timeout(&self) -> Duration {
        Duration::from_millis(self.server_selection_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SecuritySettings {
    /// Bearer token for the admin API.
    pub admin_token: SecretString,
    /// Base64 of 32 bytes: encrypts tenants' provider keys at rest (AES-256-GCM).
    pub master_key: MasterKey,
    /// HMAC key for the short-lived media-stream tokens in the URLs handed to FreJun.
    pub url_signing_key: SecretString,
    /// Version number of `master_key`, stored with everything it encrypts. Raise it when the
    /// master key changes (see docs/operations.md, "Rotating the master key").
    #[serde(default = "default_master_key_version")]
    pub master_key_version: u32,
    /// Earlier master keys, still accepted for decryption during a rotation:
    /// `"1:BASE64,2:BASE64"`. Empty when no rotation is under way.
    #[serde(default)]
    pub previous_master_keys: PreviousMasterKeys,
    /// Production refuses plain `http://` and `ws://` provider URLs (Teler, OpenAI), which
    /// would send tenants' keys in clear; `true` allows them (a private proxy, a test rig).
    #[serde(default)]
    pub allow_insecure_provider_urls: bool,
}

fn default_master_key_version() -> u32 {
    1
}

impl SecuritySettings {
    /// The keys that encrypt (current) and decrypt (current and previous) tenants' secrets.
    pub fn keyring(&self) -> Keyring {
        Keyring::new(
            self.master_key_version,
            self.master_key.clone(),
            self.previous_master_keys.0.clone(),
        )
    }
}

/// Parsed `security.previous_master_keys`; Debug and Serialize never show key material.
#[derive(Clone, Default)]
pub struct PreviousMasterKeys(pub BTreeMap<u32, MasterKey>);

impl std::fmt::Debug for PreviousMasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PreviousMasterKeys(versions {:?})",
            self.0.keys().collect::<Vec<_>>()
        )
    }
}

impl Serialize for PreviousMasterKeys {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(crate::domain::secret::REDACTED)
    }
}

impl<'de> Deserialize<'de> for PreviousMasterKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::crypto::parse_previous_keys(&text)
            .map(PreviousMasterKeys)
            .map_err(serde::de::Error::custom)
    }
}

/// How audio messages to FreJun's media stream are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMessageShape {
    /// `{"type":"audio","audio_b64":…,"chunk_id":…}`: what FreJun's SDK sample and official
    /// bridge send.
    #[default]
    Flat,
    /// `{"type":"audio","data":{"audio_b64":…,"chunk_id":…}}`: what FreJun's documentation
    /// shows.
    Nested,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct FrejunSettings {
    /// Teler REST API root; tests and the demo point it at the in-crate fake.
    pub api_base_url: Url,
    /// How long a Teler REST request (initiate, hang up) may take before it is abandoned.
    pub api_timeout_secs: u64,
    /// The shape of the audio messages we send on FreJun's media stream.
    pub media_message_shape: AudioMessageShape,
    /// Lifetime of the token in a flow's `ws_url`: FreJun must open the media stream within it.
    pub media_token_ttl_secs: u64,
    /// After a stream flow is answered, how long the call holds its concurrency slot waiting for
    /// the media stream. A call whose stream has not arrived by then is closed with end reason
    /// `media_never_arrived` and its slot is freed.
    pub media_arrival_timeout_secs: u64,
    /// How long an outbound call holds its slot between the initiate request and FreJun's flow
    /// fetch (ringing time). An unanswered call that FreJun never reports is closed after it.
    pub outbound_ring_timeout_secs: u64,
    /// How often each instance looks for calls whose slot lease expired.
    pub reaper_interval_secs: u64,
    /// Hosts whose `https` recording URLs a webhook may set on a call, comma-separated; `*.`
    /// allows a domain's subdomains. Other recording URLs are dropped.
    pub recording_url_hosts: String,
    /// How long a tenant's previous FreJun URL secret keeps working after a rotation, so its
    /// URLs at FreJun can be updated without refusing calls.
    pub url_secret_overlap_secs: u64,
    /// Webhooks that match no call kept per tenant per hour; more are acknowledged, not kept.
    pub max_unmatched_events_per_hour: u64,
    /// Refused flows (unknown or inactive numbers and the like) recorded as call logs per
    /// tenant per hour; more are refused without a call log.
    pub max_refused_flow_logs_per_hour: u64,
}

impl FrejunSettings {
    pub(crate) fn url_secret_overlap(&self) -> Duration {
        Duration::from_secs(self.url_secret_overlap_secs)
    }

    /// The recording hosts as a list.
    pub(crate) fn recording_hosts(&self) -> Vec<String> {
        self.recording_url_hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn api_timeout(&self) -> Duration {
        Duration::from_secs(self.api_timeout_secs)
    }

    pub(crate) fn media_token_ttl(&self) -> Duration {
        Duration::from_secs(self.media_token_ttl_secs)
    }

    pub(crate) fn media_arrival_timeout(&self) -> Duration {
        Duration::from_secs(self.media_arrival_timeout_secs)
    }

    pub(crate) fn outbound_ring_timeout(&self) -> Duration {
        Duration::from_secs(self.outbound_ring_timeout_secs)
    }

    pub(crate) fn reaper_interval(&self) -> Duration {
        Duration::from_secs(self.reaper_interval_secs)
    }
}

impl Default for FrejunSettings {
    fn default() -> Self {
        Self {
            api_base_url: Url::parse("https://api.frejun.ai/api/v1").expect("valid default URL"),
            api_timeout_secs: 10,
            media_token_ttl_secs: 300,
            media_arrival_timeout_secs: 30,
            outbound_ring_timeout_secs: 120,
            reaper_interval_secs: 10,
            recording_url_hosts: "frejun.ai,*.frejun.ai,frejun.com,*.frejun.com".to_owned(),
            url_secret_overlap_secs: 86_400,
            media_message_shape: AudioMessageShape::Flat,
            max_unmatched_events_per_hour: 1_000,
            max_refused_flow_logs_per_hour: 1_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct OpenAiSettings {
    /// Realtime WebSocket endpoint (GA protocol); tests and the demo point it at the fake.
    pub realtime_url: Url,
    /// Model for assistants that do not name one.
    pub default_model: String,
    /// How long opening the Realtime WebSocket (TCP, TLS, handshake) may take before the call
    /// ends with `ai_connect_failed`.
    pub connect_timeout_ms: u64,
    /// How long one Realtime session lives when OpenAI does not announce `expires_at` (60
    /// minutes today); the announced expiry wins.
    pub session_limit_secs: u64,
}

impl OpenAiSettings {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            realtime_url: Url::parse("wss://api.openai.com/v1/realtime")
                .expect("valid default URL"),
            default_model: crate::domain::model_retirement::DEFAULT_REALTIME_MODEL.to_owned(),
            connect_timeout_ms: 10_000,
            session_limit_secs: 3_600,
        }
    }
}

/// ElevenLabs Conversational AI, for assistants whose backend is `elevenlabs_convai`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ElevenLabsSettings {
    /// The REST API (signed URLs of private agents); a regional host or a fake may replace it.
    pub api_base_url: Url,
    /// The conversation WebSocket endpoint (`?agent_id=` is added).
    pub conversation_url: Url,
    /// How long opening a conversation (signed URL and WebSocket) may take before the call ends
    /// with `ai_connect_failed`.
    pub connect_timeout_ms: u64,
}

impl ElevenLabsSettings {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

impl Default for ElevenLabsSettings {
    fn default() -> Self {
        Self {
            api_base_url: Url::parse("https://api.elevenlabs.io").expect("valid default URL"),
            conversation_url: Url::parse("wss://api.elevenlabs.io/v1/convai/conversation")
                .expect("valid default URL"),
            connect_timeout_ms: 10_000,
        }
    }
}

/// The media bridge: one session per live call between FreJun's media stream and OpenAI.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct BridgeSettings {
    /// How often each live call pings both of its sockets.
    pub heartbeat_interval_secs: u64,
    /// A peer (FreJun's media stream or OpenAI) that sends nothing at all, not even a pong, for
    /// this long is dead: the call ends (`telephony_error` or `ai_error`).
    pub peer_timeout_secs: u64,
    /// How long after the upgrade FreJun may take to send its `start` message.
    pub start_timeout_secs: u64,
    /// Caller audio kept while the OpenAI session is still being set up, in milliseconds; older
    /// audio is dropped first.
    pub early_audio_max_ms: u64,
    /// Largest media-stream message accepted from FreJun, in bytes. A larger one ends the call
    /// with `telephony_error`.
    pub max_message_bytes: usize,
    /// Subtracted from wall time when estimating how much of the assistant's speech the caller
    /// heard (FreJun's jitter buffer and the network), in milliseconds.
    pub playout_latency_ms: u64,
    /// How often a live call appends what changed (transcript turns, usage, barge-ins, tool
    /// turns) to the call log.
    pub log_flush_interval_ms: u64,
    /// How long the instance's progress writer gathers live calls' batches before writing them
    /// in one MongoDB command, in milliseconds (0: each call's batch is written alone).
    pub log_batch_window_ms: u64,
    /// How often a live call writes its running counters (audio in and out, frame latency)
    /// when nothing else changed; also the most of them a crash can lose.
    pub metrics_flush_interval_secs: u64,
    /// How long a live call's concurrency-slot lease lasts; it is renewed every third of it, so
    /// a crashed instance's calls are reaped within this time.
    pub slot_lease_secs: u64,
    /// Calls with no `max_call_seconds` on the assistant or the tenant end after this long.
    pub default_max_call_seconds: u64,
    /// How fast FreJun may send caller audio, in percent of real time (150: half again). Audio
    /// beyond it, after the burst below, is dropped unread.
    pub inbound_audio_rate_percent: u64,
    /// How much caller audio may arrive ahead of real time at once (a network stall catching
    /// up), in milliseconds.
    pub inbound_audio_burst_ms: u64,
    /// Caller audio dropped for arriving too fast, in milliseconds, after which the call ends
    /// with `media_flood`.
    pub inbound_audio_flood_ms: u64,
    /// Malformed frames from one peer (FreJun's media stream or OpenAI) after which the call
    /// ends; skipped ones are logged as a summary, at most once per `fault_log_interval_secs`.
    pub max_bad_frames: u64,
    /// How often a call logs a summary of the malformed frames it skipped.
    pub fault_log_interval_secs: u64,
    /// How long a peer (FreJun's media stream or OpenAI) may take to accept what we send, in
    /// milliseconds; one that stops reading ends its call (`telephony_error` or `ai_error`).
    pub send_timeout_ms: u64,
    /// How long before the OpenAI session expires the call starts ending: the assistant says
    /// `session_closing_line`, the caller hears it, and the call ends with `ai_session_limit`.
    pub session_closing_secs: u64,
    /// What the assistant says when the OpenAI session is about to expire (in the assistant's
    /// voice and persona, so translated to its language).
    pub session_closing_line: String,
    /// What the chunks of assistant audio to FreJun grow to after each item's first chunk
    /// (which is the assistant's `outbound_chunk_ms`): FreJun recommends at least 500 ms.
    pub playback_chunk_ms: u32,
}

impl BridgeSettings {
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs)
    }

    pub(crate) fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs)
    }

    pub(crate) fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    pub(crate) fn log_flush_interval(&self) -> Duration {
        Duration::from_millis(self.log_flush_interval_ms)
    }

    pub(crate) fn log_batch_window(&self) -> Duration {
        Duration::from_millis(self.log_batch_window_ms)
    }

    pub(crate) fn metrics_flush_interval(&self) -> Duration {
        Duration::from_secs(self.metrics_flush_interval_secs)
    }

    pub(crate) fn slot_lease(&self) -> Duration {
        Duration::from_secs(self.slot_lease_secs)
    }

    pub(crate) fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    pub(crate) fn fault_log_interval(&self) -> Duration {
        Duration::from_secs(self.fault_log_interval_secs)
    }
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_secs: 5,
            peer_timeout_secs: 15,
            start_timeout_secs: 10,
            early_audio_max_ms: 5_000,
            max_message_bytes: 256 * 1024,
            playout_latency_ms: 0,
            log_flush_interval_ms: 2_000,
            log_batch_window_ms: 100,
            metrics_flush_interval_secs: 30,
            slot_lease_secs: 60,
            default_max_call_seconds: 3_600,
            inbound_audio_rate_percent: 150,
            inbound_audio_burst_ms: 2_000,
            inbound_audio_flood_ms: 5_000,
            max_bad_frames: 200,
            fault_log_interval_secs: 5,
            send_timeout_ms: 5_000,
            session_closing_secs: 20,
            playback_chunk_ms: 500,
            session_closing_line: "I'm sorry, but this call has reached its time limit. Thank \
                                   you for calling, goodbye."
                .to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Requests to URLs tenants control (HTTP tools, webhooks).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OutboundSettings {
    /// Comma-separated host names and CIDR ranges that may be reached over plain `http` or on
    /// non-public addresses (loopback, private, link-local, CGNAT…). Empty: public `https` only.
    pub allow: String,
}

/// How assistants' tools run during calls (docs/api.md, "Tools").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ToolSettings {
    /// Silence (after the assistant's speech) before the filler phrase while a tool runs.
    pub filler_delay_ms: u64,
    /// Tool calls one call may run at once; more are refused (the model is told).
    pub max_concurrent_per_call: usize,
    /// Longest `end_call` and `transfer_call` wait for the assistant's last words to be heard.
    pub max_speech_wait_ms: u64,
    /// After the tool signing secret is rotated, how long the old one still signs (beside the
    /// new one), so tenants' servers can roll over.
    pub signing_secret_overlap_secs: u64,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            filler_delay_ms: 1_200,
            max_concurrent_per_call: 4,
            max_speech_wait_ms: 15_000,
            signing_secret_overlap_secs: 86_400,
        }
    }
}

/// Tenants' event webhooks (docs/api.md, "Webhooks").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// How long one delivery attempt may take, answer included.
    pub attempt_timeout_ms: u64,
    /// After an endpoint's secret is rotated, how long the old one still signs (beside the
    /// new one), so receivers can roll over.
    pub secret_overlap_secs: u64,
    /// Waits between attempts, in seconds, comma-separated: the n-th retry waits the n-th
    /// value (jittered by a tenth); after the last, the delivery is given up. The default is
    /// Standard Webhooks' schedule (about three days in all).
    pub retry_schedule_secs: String,
    /// How often each instance looks for events to hand over and deliveries that are due.
    pub poll_interval_ms: u64,
    /// How long `call.ended` waits after the call ended, so that the bridge's last writes
    /// (transcript, usage, metrics) are in the record it carries.
    pub ended_settle_ms: u64,
    /// How long finished deliveries (and their attempts) are kept.
    pub retention_days: u64,
    /// An endpoint whose every attempt has failed for this long is disabled (the tenant sees
    /// why, and enables it again when fixed).
    pub disable_after_failing_secs: u64,
}

impl WebhookSettings {
    /// The retry schedule; the settings loader has checked the text.
    pub fn retry_schedule(&self) -> Vec<std::time::Duration> {
        parse_retry_schedule(&self.retry_schedule_secs).unwrap_or_default()
    }
}

/// `"5,300,1800"` as durations; an error names the item that is not a number of seconds.
pub fn parse_retry_schedule(text: &str) -> Result<Vec<std::time::Duration>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(index, item)| {
            item.trim()
                .parse::<u64>()
                .ok()
                .filter(|secs| *secs <= 7 * 86_400)
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    format!("item {} is not a number of seconds up to a week", index + 1)
                })
        })
        .collect()
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            attempt_timeout_ms: 10_000,
            secret_overlap_secs: 86_400,
            retry_schedule_secs: "5,300,1800,7200,18000,36000,50400,72000,86400".to_owned(),
            poll_interval_ms: 500,
            ended_settle_ms: 2_000,
            retention_days: 30,
            disable_after_failing_secs: 5 * 86_400,
        }
    }
}

/// Text models: the AI conversation endpoint and post-call analysis (docs/api.md, "Text AI").
/// Tenants use their own keys; a platform key here serves tenants that have none (its usage
/// is the operator's to pay).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TextAiSettings {
    /// The provider used when a request or an assistant names none.
    pub default_provider: TextProvider,
    /// Anthropic's API origin, without the version segment.
    pub anthropic_base_url: Url,
    /// The platform's Anthropic key, for tenants without their own; empty: none.
    pub anthropic_api_key: Option<SecretString>,
    /// The model used when none is named.
    pub anthropic_model: String,
    /// OpenAI's API base, with the version segment (Responses is `{base}/responses`).
    pub openai_base_url: Url,
    /// The platform's OpenAI key, for tenants without their own; empty: none.
    pub openai_api_key: Option<SecretString>,
    pub openai_model: String,
    /// A platform-wide OpenAI-compatible Chat Completions base (with its version segment,
    /// e.g. `http://vllm.internal:8000/v1`), for tenants that configured none; empty: none.
    pub chat_completions_base_url: Option<Url>,
    pub chat_completions_api_key: Option<SecretString>,
    /// The model for that base; required with it.
    pub chat_completions_model: String,
    /// How long one try may take, answer included.
    pub timeout_ms: u64,
    /// Tries per request in all; only 429 and 5xx answers and connections that never reached
    /// the provider are tried again (not timeouts: the provider may still bill the request).
    pub max_attempts: u32,
    /// The longest wait before a retry; a provider asking for longer (`Retry-After`) fails
    /// the request at once.
    pub max_retry_wait_ms: u64,
    /// How often a tenant may ask `GET /api/ai/status?check=true` to probe its providers.
    pub check_interval_secs: u64,
    /// Conversation requests one tenant may have waiting on a provider at once, per instance;
    /// more are refused (429) rather than held open.
    pub max_concurrent_per_tenant: usize,
}

impl Default for TextAiSettings {
    fn default() -> Self {
        Self {
            default_provider: TextProvider::Anthropic,
            anthropic_base_url: Url::parse("https://api.anthropic.com").expect("valid default URL"),
            anthropic_api_key: None,
            anthropic_model: "claude-sonnet-4-5".to_owned(),
            openai_base_url: Url::parse("https://api.openai.com/v1").expect("valid default URL"),
            openai_api_key: None,
            openai_model: "gpt-5-mini".to_owned(),
            chat_completions_base_url: None,
            chat_completions_api_key: None,
            chat_completions_model: String::new(),
            timeout_ms: 30_000,
            max_attempts: 3,
            max_retry_wait_ms: 20_000,
            check_interval_secs: 60,
            max_concurrent_per_tenant: 10,
        }
    }
}

/// Post-call analysis jobs (docs/api.md, "Post-call analysis").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AnalysisSettings {
    /// How often each instance looks for analyses to run.
    pub poll_interval_ms: u64,
    /// Analyses one instance runs at once.
    pub max_concurrent: usize,
    /// How long a worker holds a job; another instance takes it over after that (a crashed
    /// instance's job is run again, never stored twice). Longer than a request with all its
    /// retries.
    pub lease_secs: u64,
    /// Runs of one job in all when the provider keeps failing in passing ways (rate limits,
    /// outages, timeouts); then the analysis is `failed`.
    pub max_runs: u32,
    /// The wait before such a job is run again.
    pub retry_delay_secs: u64,
    /// Most tokens of an analysis answer.
    pub max_output_tokens: u32,
    /// Longest transcript sent, in characters; longer ones keep their start and end.
    pub max_transcript_chars: usize,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            max_concurrent: 2,
            lease_secs: 300,
            max_runs: 3,
            retry_delay_secs: 60,
            max_output_tokens: 2_048,
            max_transcript_chars: 60_000,
        }
    }
}

/// Request limits, per instance. Each credential (tenant API key, admin token, FreJun URL
/// key) has its own quota, spent before the credential is looked up; each client has a quota
/// of failed authentications, and a client that exhausts it is refused before any lookup
/// until the quota refills. See docs/operations.md, "Rate limits".
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Off only for benchmarks and tests that say so.
    pub enabled: bool,
    /// Sustained requests per second per tenant API key (and for the admin token).
    pub api_key_per_second: u32,
    /// Requests a tenant API key may make at once above the sustained rate.
    pub api_key_burst: u32,
    /// Sustained requests per second per FreJun URL key (one tenant's flows and webhooks).
    pub frejun_key_per_second: u32,
    /// Requests a FreJun URL key may make at once above the sustained rate.
    pub frejun_key_burst: u32,
    /// Failed authentications per minute per client (address, or IPv6 /64).
    pub failed_auth_per_minute: u32,
    /// Failed authentications a client may make at once before it is refused.
    pub failed_auth_burst: u32,
    /// Reverse proxies in front of voxbridge that append to `X-Forwarded-For`; 0 uses the
    /// TCP peer's address. With N, the client is the N-th address from the right.
    pub trusted_proxy_hops: u8,
    /// Exempts clients on the loopback interface (a test harness on one host).
    pub exempt_loopback: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            api_key_per_second: 20,
            api_key_burst: 100,
            frejun_key_per_second: 50,
            frejun_key_burst: 200,
            failed_auth_per_minute: 10,
            failed_auth_burst: 20,
            trusted_proxy_hops: 0,
            exempt_loopback: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter: a level (`info`) or per-module directives (`info,voxbridge=debug`).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

/// `GET /metrics` (docs/operations.md, "Metrics").
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// The bearer token a Prometheus scraper sends (`Authorization: Bearer <token>`); unset:
    /// `/metrics` is off and answers 404 like an unknown route.
    pub token: Option<SecretString>,
}

/// Several instances over one MongoDB: who this instance is, how long a control request waits
/// for the instance bridging the call, and how a deploy drains (docs/operations.md, "Running
/// several instances").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ClusterSettings {
    /// This instance's name in call logs' `owner` and in control commands; unique among the
    /// instances sharing a database. Unset: `<hostname>-<pid>-<random>`, fresh at every start,
    /// which is what a restarted process must be (its calls did not survive it).
    pub instance_id: Option<String>,
    /// How long a control request answered by another instance waits for the instance
    /// bridging the call before answering 504 `owner_not_responding`.
    pub command_timeout_ms: u64,
    /// How long a drained instance keeps its live calls after SIGTERM before it ends them
    /// with the closing line. Orchestrators must wait longer than this plus
    /// `server.shutdown_timeout_secs` (Kubernetes: `terminationGracePeriodSeconds`).
    pub drain_timeout_secs: u64,
    /// How long a call ended by the drain deadline may take to say the closing line.
    pub drain_closing_secs: u64,
}

impl ClusterSettings {
    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    pub(crate) fn drain_closing(&self) -> Duration {
        Duration::from_secs(self.drain_closing_secs)
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            instance_id: None,
            command_timeout_ms: 3_000,
            drain_timeout_secs: 15 * 60,
            drain_closing_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DevSettings {
    /// Where development state lives: generated secrets, the local MongoDB's data and the cached
    /// `mongod` binary. Ignored by git.
    pub state_dir: PathBuf,
}

impl Default for DevSettings {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(".voxbridge"),
        }
    }
}

impl Settings {
    /// The public origin FreJun uses to reach us.
    pub(crate) fn public_base_url(&self) -> Url {
        if let Some(url) = &self.server.public_base_url {
            return url.clone();
        }
        let host = if self.server.host.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            self.server.host
        };
        let authority = match host {
            IpAddr::V4(v4) => format!("{v4}:{}", self.server.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.server.port),
        };
        Url::parse(&format!("http://{authority}")).expect("an IP and a port form a valid URL")
    }

    /// An absolute URL under the public origin, keeping any path the base has
    /// (`https://host/voxbridge` + `api/frejun/flow` = `https://host/voxbridge/api/frejun/flow`).
    pub fn public_url(&self, relative_path: &str) -> Url {
        let mut base = self.public_base_url();
        if !base.path().ends_with('/') {
            let with_slash = format!("{}/", base.path());
            base.set_path(&with_slash);
        }
        base.join(relative_path.trim_start_matches('/'))
            .expect("a relative path joins an http(s) base URL")
    }

    /// Settings for tests and tools that build the application in-process: development rules,
    /// fixed throwaway secrets, logs as configured by the caller.
    pub fn for_tests(mongodb_uri: &str, database: &str) -> Self {
        Self {
            environment: Environment::Development,
            server: ServerSettings {
                port: 0,
                workers: Some(1),
                ..ServerSettings::default()
            },
            mongodb: MongoSettings {
                uri: Some(SecretString::new(mongodb_uri)),
                database: database.to_owned(),
                ..MongoSettings::default()
            },
            security: SecuritySettings {
                admin_token: SecretString::new("test-admin-token-0123456789abcdef0123"),
                master_key: MasterKey::from_bytes([42; MasterKey::LEN]),
                url_signing_key: SecretString::new("test-url-signing-key-0123456789abcdef"),
                master_key_version: 1,
                previous_master_keys: PreviousMasterKeys::default(),
                allow_insecure_provider_urls: false,
            },
            frejun: FrejunSettings {
                // Nothing listens on the discard port: a test that reaches Teler without
                // pointing this at a fake fails fast instead of calling FreJun.
                api_base_url: Url::parse("http://127.0.0.1:9/api/v1/").expect("a valid URL"),
                ..FrejunSettings::default()
            },
            bridge: BridgeSettings::default(),
            openai: OpenAiSettings::default(),
            elevenlabs: ElevenLabsSettings::default(),
            rate_limit: RateLimitSettings::default(),
            outbound: OutboundSettings::default(),
            tools: ToolSettings::default(),
            webhooks: WebhookSettings::default(),
            text_ai: TextAiSettings::default(),
            analysis: AnalysisSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            cluster: ClusterSettings::default(),
            dev: DevSettings::default(),
        }
    }
}
