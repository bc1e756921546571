//! MongoDB storage: one [`mongodb::Client`] for the process, typed collections, and the mapping
//! of driver errors to [`StorageError`].
//!
//! Layout:
//! - [`error`]: `StorageError { NotFound, Conflict, Backend }`.
//! - [`collections`]: collection names, in one place.
//! - [`migrations`]: the runner for the ordered files in `migrations/`.
//! - [`assignments`]: number ⇄ assistant links, changed in transactions (no dangling links).
//! - [`pagination`]: cursor pagination in a stable `(created_at, _id)` order.
//! - [`users`], [`api_keys`], [`assistants`], [`phone_numbers`], [`call_logs`],
//!   [`frejun_events`], [`webhook_endpoints`], [`webhook_deliveries`]: repositories, one per
//!   collection. Methods on tenant data take the
//!   tenant's id and filter by it, so a foreign id is simply not found.
//! - [`call_status`]: status reports merged into call logs so that order does not matter.
//! - [`call_analysis`]: post-call analysis jobs kept on the call log: queued, leased, finished
//!   (only by the run that holds the lease), postponed.
//! - [`call_slots`]: per-tenant concurrency slots, counted atomically across instances.
//! - [`call_ownership`]: the instance bridging a live call (its lease on the call log), and a
//!   tenant's live calls on every instance.
//! - [`call_commands`]: live-control requests addressed to the instance bridging a call, and
//!   the one change stream each instance reads them from.
//!
//! Driver futures are never dropped half-way (the driver's own guidance: dropping one can leave
//! a connection in an unknown state). Where a caller needs a deadline, the operation runs in its
//! own task and the caller stops waiting on the task's handle instead.

pub(crate) mod api_keys;
pub(crate) mod assignments;
pub(crate) mod assistants;
pub(crate) mod call_analysis;
pub(crate) mod call_commands;
pub mod call_logs;
pub(crate) mod call_ownership;
pub(crate) mod call_progress;
pub mod call_slots;
pub(crate) mod call_status;
pub mod collections;
pub mod error;
pub(crate) mod frejun_events;
pub mod migrations;
pub(crate) mod pagination;
pub(crate) mod phone_numbers;
pub mod users;
pub(crate) mod webhook_deliveries;
pub(crate) mod webhook_endpoints;

use std::time::Duration;

use bson::doc;
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::domain::secret::SecretString;
use crate::settings::MongoSettings;
use crate::telemetry::metrics;

pub use error::StorageError;

/// Why a [`Storage::ping`] did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PingFailure {
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
    #[error(transparent)]
    Failed(StorageError),
}

/// Times every command for `voxbridge_mongodb_command_duration_seconds`, from the driver's
/// command monitoring (the duration the driver measured, round trip included). A callback runs
/// on the driver's task: this one only records into a histogram. With a handler installed the
/// driver builds each event, copying the command and reply documents: a cost per operation
/// that is small next to the round trip.
fn command_metrics() -> EventHandler<CommandEvent> {
    EventHandler::callback(|event: CommandEvent| match event {
        CommandEvent::Succeeded(done) => {
            metrics::mongodb_command(&done.command_name, true, done.duration)
        }
        CommandEvent::Failed(failed) => {
            metrics::mongodb_command(&failed.command_name, false, failed.duration)
        }
        _ => {}
    })
}

/// Name reported to MongoDB (visible in `db.currentOp()` and server logs).
const APP_NAME: &str = "voxbridge";

/// Shared handle to the database. Cheap to clone: the driver's client is reference counted.
#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    database: Database,
}

impl Storage {
    /// Parses the URI and builds the client. Connections are opened lazily, so this succeeds
    /// while the database is down; [`Storage::ping`] tells whether it is reachable.
    pub async fn connect(
        uri: &SecretString,
        settings: &MongoSettings,
    ) -> Result<Self, StorageError> {
        let mut options = ClientOptions::parse(uri.expose()).await?;
        options.app_name = Some(APP_NAME.to_owned());
        options.server_selection_timeout = Some(settings.server_selection_timeout());
        options.connect_timeout = Some(settings.connect_timeout());
        // The recorder first, so that the commands of startup (migrations) are timed too.
        metrics::install();
        options.command_event_handler = Some(command_metrics());
        let client = Client::with_options(options)?;
        let database = client.database(&settings.database);
        Ok(Self { client, database })
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.database.collection(name)
    }

    /// Runs `ping` against the database, giving up waiting after `timeout`. The ping itself
    /// finishes in its own task (bounded by the server selection timeout).
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), PingFailure> {
        let database = self.database.clone();
        let task = tokio::spawn(async move { database.run_command(doc! { "ping": 1 }).await });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(err))) => Err(PingFailure::Failed(err.into())),
            Ok(Err(join_error)) => Err(PingFailure::Failed(StorageError::Unavailable(format!(
                "ping task failed: {join_error}"
            )))),
            Err(_) => Err(PingFailure::TimedOut(timeout)),
        }
    }

    /// Closes the client's connections. Call it last on shutdown, after everything that uses
    /// the database has stopped; gives up after `timeout` rather than hang the exit.
    pub async fn shutdown(self, timeout: Duration) {
        let client = self.client;
        let task = tokio::spawn(async move { client.shutdown().await });
        if tokio::time::timeout(timeout, task).await.is_err() {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "MongoDB client did not shut down in time"
            );
        }
    }
}
