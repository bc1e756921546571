//! Builds the HTTP server on a bound listener (port 0 in tests: the real port is reported) and
//! runs it until the shutdown token is cancelled.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::bridge::Bridge;
use crate::calls::CallService;
use crate::http::rate_limit::RateLimits;
use crate::http::{self, AppState};
use crate::settings::Settings;
use crate::storage::Storage;
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

/// Resolves when the process receives SIGTERM or SIGINT, and cancels `token`.
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        _ = token.cancelled() => return,
    }
    token.cancel();
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
