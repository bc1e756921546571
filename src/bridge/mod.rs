//! The media bridge: one session per live call between FreJun's media stream and the OpenAI
//! Realtime API, with the tenant's own key.
//!
//! Layout:
//! - [`admission`]: the checks before the WebSocket upgrade (token, call, tenant, assistant,
//!   key, concurrency slot).
//! - [`run`]: the session's event loop: owns both sockets, the timers and the heartbeats.
//! - [`core`]: every decision of a session, without I/O (audio conversion, playback, barge-in,
//!   transcript, usage, metrics), so tests drive it directly.
//! - [`teler_media`]: FreJun's media-stream messages.
//! - [`playback`]: outbound chunking and the estimate of what the caller has heard.
//! - [`latency`]: the per-frame latency histogram.
//! - [`call_log_keeper`]: the per-call task that owns the call's MongoDB writes.
//! - [`registry`]: this instance's live calls, for the live-control API.

pub mod admission;
pub mod call_log_keeper;
pub mod core;
pub mod latency;
pub mod playback;
pub mod registry;
pub mod run;
pub mod teler_media;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::crypto::Keyring;
use crate::frejun::media_token::MediaTokens;
use crate::providers::openai::RealtimeClient;
use crate::settings::Settings;
use crate::storage::Storage;
use registry::LiveCalls;

/// What every media-stream session shares.
#[derive(Clone)]
pub struct Bridge {
    pub settings: Arc<Settings>,
    pub storage: Storage,
    pub keyring: Arc<Keyring>,
    pub media_tokens: MediaTokens,
    pub openai: RealtimeClient,
    pub live: LiveCalls,
    /// Cancelled at shutdown: every live call ends with `shutdown`.
    pub shutdown: CancellationToken,
    /// The call-log keepers; a shutdown waits for them to finish their final writes.
    pub keepers: TaskTracker,
    /// The runtime the keepers run on: the process's main runtime, which outlives the HTTP
    /// workers that run the sessions.
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("live", &self.live).finish()
    }
}

impl Bridge {
    /// Call from the main runtime (the keepers are spawned on it).
    pub fn new(
        settings: Arc<Settings>,
        storage: Storage,
        keyring: Arc<Keyring>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            media_tokens: MediaTokens::new(settings.security.url_signing_key.clone()),
            openai: RealtimeClient::new(
                settings.openai.realtime_url.clone(),
                settings.openai.connect_timeout(),
            ),
            settings,
            storage,
            keyring,
            live: LiveCalls::default(),
            shutdown,
            keepers: TaskTracker::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current)
    }
}
