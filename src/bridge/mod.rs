//! The media bridge: one session per live call between FreJun's media stream and the OpenAI
//! Realtime API, with the tenant's own key.
//!
//! Layout:
//! - [`admission`]: the checks before the WebSocket upgrade (token, call, tenant, assistant,
//!   key, concurrency slot).
//! - [`run`]: the session's event loop: owns both sockets, the timers and the heartbeats.
//! - [`loop_timers`]: that loop's deadlines (heartbeat, flush, maximum duration, closing, start,
//!   the core's timer) kept as one timer.
//! - [`core`]: every decision of a session, without I/O (audio conversion, playback, barge-in,
//!   transcript, usage, metrics), so tests drive it directly.
//! - [`teler_media`]: FreJun's media-stream messages.
//! - [`playback`]: outbound chunking and the estimate of what the caller has heard.
//! - [`latency`]: the per-frame latency histogram.
//! - [`call_log_keeper`]: the per-call task that owns the call's MongoDB writes.
//! - [`progress_writer`]: the keepers' progress batches, many calls in one command.
//! - [`lease_renewer`]: every live call's slot and owner leases renewed, and suspensions
//!   checked, in a few commands per round for the whole instance.
//! - [`registry`]: this instance's live calls, for the live-control API.
//! - [`control`]: live control from any instance: local calls through the registry, others'
//!   through command documents and one change stream per instance.
//! - [`tool_runner`]: the model's tool calls, run off the session loop.

pub(crate) mod admission;
pub mod audio_budget;
mod backend;
pub(crate) mod call_log_keeper;
pub(crate) mod control;
pub mod core;
pub(crate) mod frame_faults;
pub(crate) mod latency;
pub mod lease_renewer;
mod loop_timers;
pub(crate) mod playback;
pub mod progress_writer;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod teler_media;
pub(crate) mod tool_runner;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::calls::CallService;
use crate::calls::hangup::FrejunHangup;
use crate::domain::call::EndReason;
use crate::domain::ids::{CallId, TenantId};
use crate::providers::elevenlabs::ConvaiClient;
use crate::providers::openai::RealtimeClient;
use crate::shared::Shared;
use control::ControlRouter;
use lease_renewer::LeaseRenewer;
use progress_writer::ProgressWriter;
use registry::LiveCalls;

/// What every media-stream session shares.
#[derive(Clone)]
pub struct Bridge {
    pub shared: Arc<Shared>,
    pub openai: RealtimeClient,
    pub elevenlabs: ConvaiClient,
    /// Fetches private ElevenLabs agents' signed URLs (bounded by the connect timeout).
    pub elevenlabs_http: reqwest::Client,
    pub live: LiveCalls,
    /// Live control of calls on any instance.
    pub(crate) control: ControlRouter,
    /// Cancelled at shutdown: every live call ends with `shutdown`.
    pub shutdown: CancellationToken,
    /// The call-log keepers (and hang-ups at FreJun); a shutdown waits for them to finish.
    pub keepers: TaskTracker,
    /// Hangs up at FreJun the calls the bridge ends.
    pub hangups: FrejunHangup,
    /// Transfers, keypad tones and tool secrets, for the assistant's tools.
    pub calls: CallService,
    /// Writes the keepers' progress batches, many calls in one command.
    pub progress: ProgressWriter,
    /// Renews the live calls' leases and checks their tenants' suspension, for all at once.
    pub leases: LeaseRenewer,
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
    pub(crate) fn new(
        shared: Arc<Shared>,
        shutdown: CancellationToken,
        calls: CallService,
    ) -> Self {
        let live = LiveCalls::default();
        Self {
            hangups: calls.hangups(),
            calls,
            openai: RealtimeClient::new(
                shared.settings.openai.realtime_url.clone(),
                shared.settings.openai.connect_timeout(),
            ),
            elevenlabs: ConvaiClient::new(
                shared.settings.elevenlabs.api_base_url.clone(),
                shared.settings.elevenlabs.conversation_url.clone(),
                shared.settings.elevenlabs.connect_timeout(),
            ),
            elevenlabs_http: reqwest::Client::new(),
            progress: ProgressWriter::new(
                shared.storage.clone(),
                shared.settings.bridge.log_batch_window(),
            ),
            leases: LeaseRenewer::new(
                shared.storage.clone(),
                shared.instance_id.clone(),
                shared.settings.bridge.slot_lease(),
            ),
            control: ControlRouter::new(shared.clone(), live.clone()),
            shared,
            live,
            shutdown,
            keepers: TaskTracker::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Hangs up the call at FreJun in the background (on the keepers' runtime and tracker, so
    /// a shutdown waits for it), when voxbridge ended it for `reason`.
    pub(crate) fn hang_up_at_frejun(
        &self,
        tenant: TenantId,
        call_id: CallId,
        frejun_call_id: Option<String>,
        reason: EndReason,
    ) {
        if !reason.ended_by_voxbridge() {
            return;
        }
        let hangups = self.hangups.clone();
        let span = tracing::Span::current();
        self.runtime().spawn(
            self.keepers.track_future(
                async move {
                    hangups
                        .hang_up(tenant, call_id, frejun_call_id.as_deref(), reason)
                        .await;
                }
                .instrument(span),
            ),
        );
    }

    fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current)
    }
}
