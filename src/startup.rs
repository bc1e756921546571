//! Builds the HTTP server on a bound listener (port 0 in tests: the real port is reported) and
//! runs it, with the instance's background work (reaper, webhook and analysis workers, the
//! control stream), until the shutdown token is cancelled; and the [`Drainer`] that turns
//! signals into a drain, then that cancellation.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::bridge::Bridge;
use crate::bridge::registry::LiveCalls;
use crate::calls::CallService;
use crate::http::rate_limit::RateLimits;
use crate::http::{self, AppState};
use crate::settings::Settings;
use crate::storage::Storage;
use crate::storage::users::RotationError;
use crate::telemetry::metrics;

pub struct Application {
    address: SocketAddr,
    server: Server,
    shutdown: CancellationToken,
    calls: CallService,
    bridge: Bridge,
    rate_limits: Arc<RateLimits>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Binds `server.host:server.port` and prepares the server. Nothing is served until
    /// [`Application::run_until_stopped`] is awaited.
    pub fn build(
        mut settings: Settings,
        storage: Storage,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind((settings.server.host, settings.server.port))?;
        let address = listener.local_addr()?;
        // Port 0 asks the OS for a free port: record the real one, which the public URLs we hand
        // FreJun are built from when no public base URL is configured.
        settings.server.port = address.port();
        let workers = settings
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let state = AppState::new(settings, storage, shutdown.clone());
        let calls = state.calls.clone();
        let bridge = state.bridge.clone();
        let rate_limits = state.rate_limits.clone();
        let server = HttpServer::new(move || http::app(state.clone()))
            .on_connect(disable_nagle)
            .workers(workers)
            .shutdown_timeout(shutdown_timeout)
            // Signals are handled by the caller, which cancels `shutdown`; live calls observe the
            // same token.
            .disable_signals()
            .listen(listener)?
            .run();
        Ok(Self {
            address,
            server,
            shutdown,
            calls,
            bridge,
            rate_limits,
            shutdown_timeout: Duration::from_secs(shutdown_timeout),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// What stops this application on signals: the first drains, a second stops at once.
    pub fn drainer(&self) -> Drainer {
        Drainer {
            drain: self.bridge.shared.drain.clone(),
            live: self.bridge.live.clone(),
            drain_timeout: self.bridge.shared.settings.cluster.drain_timeout(),
            drain_closing: self.bridge.shared.settings.cluster.drain_closing(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Gives tenants created before URL secrets had a lookup hash one, with the service's own
    /// keyring; answers how many. Run before [`Application::run_until_stopped`] (see `serve`).
    pub async fn backfill_url_secret_hashes(&self) -> Result<u64, RotationError> {
        let shared = &self.calls.shared;
        let users = shared.storage.users();
        users.backfill_url_secret_hashes(&shared.keyring).await
    }

    /// Serves until the shutdown token is cancelled, then stops accepting connections and lets
    /// in-flight requests finish (up to `server.shutdown_timeout_secs`).
    /// Also runs the reaper that closes calls whose slot lease expired, the webhook worker
    /// that hands over and delivers tenants' events and the post-call analysis worker, and at
    /// the end waits
    /// (up to the same timeout) for live calls' final call-log writes.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let reaper = tokio::spawn(
            self.calls
                .clone()
                .run_reaper(self.shutdown.clone())
                .instrument(tracing::info_span!(parent: None, "reaper")),
        );
        let webhooks = tokio::spawn(
            self.calls
                .clone()
                .run_webhook_worker(self.shutdown.clone())
                .instrument(tracing::info_span!(parent: None, "webhooks")),
        );
        let analysis = tokio::spawn(
            self.calls
                .clone()
                .run_analysis_worker(self.shutdown.clone())
                .instrument(tracing::info_span!(parent: None, "analysis_worker")),
        );
        let pruner = tokio::spawn(prune_rate_limits(
            self.rate_limits.clone(),
            self.shutdown.clone(),
        ));
        let metrics_upkeep = tokio::spawn(keep_metrics(self.shutdown.clone()));
        let control = tokio::spawn(
            self.bridge
                .control
                .clone()
                .run(self.shutdown.clone())
                .instrument(tracing::info_span!(parent: None, "control_stream", instance = %self.bridge.shared.instance_id)),
        );
        let handle = self.server.handle();
        let shutdown = self.shutdown.clone();
        let stopper = tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        let result = self.server.await;
        stopper.abort();
        // Stops at the shutdown token; a server that failed on its own stops it too.
        self.shutdown.cancel();
        let _ = reaper.await;
        let _ = webhooks.await;
        let _ = analysis.await;
        let _ = pruner.await;
        let _ = metrics_upkeep.await;
        let _ = control.await;
        // Live calls ended with the shutdown token; wait for their final call-log writes.
        self.bridge.keepers.close();
        if tokio::time::timeout(self.shutdown_timeout, self.bridge.keepers.wait())
            .await
            .is_err()
        {
            tracing::error!(
                pending = self.bridge.keepers.len(),
                "shutting down before every call log was written"
            );
        }
        result
    }
}

/// How often idle rate-limit entries (full buckets, expired blocks) are dropped.
const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Keeps the rate limiters' memory bounded by the clients and keys active in the last minute.
async fn prune_rate_limits(limits: Arc<RateLimits>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RATE_LIMIT_PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => limits.prune(),
        }
    }
}

/// How often histogram samples are folded into their buckets between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps the metrics recorder's memory bounded however rarely `/metrics` is scraped: a busy
/// instance records a frame-latency sample per frame of every call.
async fn keep_metrics(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => metrics::run_upkeep(),
        }
    }
}

/// Drains an instance on the first SIGTERM or SIGINT and stops it when its calls are done
/// (docs/operations.md, "Running several instances"): see [`Drainer::run_on_signals`].
pub struct Drainer {
    drain: crate::shared::Drain,
    live: LiveCalls,
    drain_timeout: Duration,
    drain_closing: Duration,
    shutdown: CancellationToken,
}

/// How often a drain reports its progress.
const DRAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// How often a drain looks whether its calls have ended.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(200);

impl Drainer {
    /// On the first signal: stop admitting calls (`/ready` 503 `draining`, flows and media
    /// streams refused) and keep the live ones until they end, or until the drain time is up,
    /// when they say the closing line and end with `shutdown`; then stop. A second signal
    /// stops at once (live calls end with `shutdown` without a closing line). Returns when the
    /// shutdown token is cancelled.
    pub async fn run_on_signals(self) {
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM; draining is off");
                return;
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => return,
            signal = signals.next() => tracing::info!(signal, "signal received: draining"),
        }
        tokio::select! {
            () = self.drain_then_stop() => {}
            signal = signals.next() => tracing::warn!(signal, "second signal: stopping now, ending live calls"),
        }
        self.shutdown.cancel();
    }

    async fn drain_then_stop(&self) {
        self.drain.start();
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        tracing::info!(
            live_calls = self.live.len(),
            drain_timeout_secs = self.drain_timeout.as_secs(),
            "draining: admitting no new calls, keeping the live ones"
        );
        let mut progress = tokio::time::interval(DRAIN_PROGRESS_INTERVAL);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress.tick().await;
        while !self.live.is_empty() {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(live_calls = self.live.len(), "drain time is up: ending the remaining calls with the closing line");
                    self.drain.reach_deadline();
                    // Each call has `drain_closing` to say its line; then it ends regardless.
                    let closing_deadline = tokio::time::Instant::now() + self.drain_closing + CLOSING_MARGIN;
                    while !self.live.is_empty() && tokio::time::Instant::now() < closing_deadline {
                        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
                    }
                    return;
                }
                _ = progress.tick() => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    tracing::info!(live_calls = self.live.len(), seconds_left = left.as_secs(), "draining");
                }
                () = tokio::time::sleep(DRAIN_POLL_INTERVAL) => {}
            }
        }
        tracing::info!("drained: every call has ended; stopping");
    }
}

/// Past a call's closing time, how long the drain waits for the session to close its sockets.
const CLOSING_MARGIN: Duration = Duration::from_secs(2);

/// Resolves when the process receives SIGTERM or SIGINT, and cancels `token` (commands without
/// calls to drain).
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            return token.cancelled().await;
        }
    };
    tokio::select! {
        signal = signals.next() => tracing::info!(signal, "signal received, shutting down"),
        () = token.cancelled() => return,
    }
    token.cancel();
}

/// SIGTERM and SIGINT, as one stream of signal names.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// How long the MongoDB client may take to close on exit.
pub const STORAGE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends every write at once, as the sockets to the voice AIs do. actix leaves Nagle's
/// algorithm on, under which a small WebSocket message (an audio chunk, a `clear`) written while
/// an earlier one is unacknowledged waits for the peer's delayed ACK, up to 40 ms: what held the
/// fake ElevenLabs' first audio event of every call. FreJun's steady audio usually carries the
/// ACKs back in time, so the load test shows no difference here; nothing is gained by waiting.
fn disable_nagle(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = stream.set_nodelay(true);
    }
}
