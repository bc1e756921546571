//! Live control from any instance. A request for a call bridged here goes to its session's
//! mailbox ([`LiveCalls::control`]); for a call another instance owns (its call log's `owner`,
//! with a lease that still runs), it becomes a command document addressed to that instance
//! (`storage::call_commands`), and the requester waits, bounded by
//! `cluster.command_timeout_ms`, for the outcome.
//!
//! Each instance runs one change stream ([`ControlRouter::run`]) carrying both directions: the
//! commands addressed to it, which it runs through the same mailbox local control uses, and
//! the answers to the commands it issued, which wake their waiters. After the stream breaks it
//! resumes from its last token; when that token is no longer usable it starts afresh. Either
//! way it then re-reads what it may have missed: pending commands addressed to it, and the
//! commands its waiters still wait on. A command runs at most once (the owner claims it), so
//! reading one twice is harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::DateTime;
use futures_util::TryStreamExt as _;
use mongodb::change_stream::event::{OperationType, ResumeToken};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::registry::{ControlError, LiveCalls};
use crate::domain::control::{ControlOutcome, ControlRequest};
use crate::domain::ids::{CallId, CommandId, TenantId};
use crate::domain::time::after;
use crate::shared::Shared;
use crate::storage::StorageError;
use crate::storage::call_commands::{CallCommandRecord, CommandChange, CommandStatus};
use crate::storage::error::server_error_code;
use crate::telemetry::metrics;

/// Why a control request did not reach a call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteError {
    /// The tenant has no such call.
    #[error("no such call")]
    NotFound,
    /// The call is not being bridged by any instance.
    #[error("the call is not live")]
    NotLive,
    /// The instance bridging the call did not answer in time.
    #[error("the instance bridging the call did not answer within {} ms", .0.as_millis())]
    OwnerSilent(Duration),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// MongoDB's `ChangeStreamHistoryLost`: the resume token is older than the oplog.
const HISTORY_LOST: i32 = 286;
/// MongoDB's `ChangeStreamFatalError`: the stream cannot be resumed.
const STREAM_FATAL: i32 = 280;
/// MongoDB's `InvalidResumeToken`.
const INVALID_RESUME_TOKEN: i32 = 260;

/// How long the stream waits before opening again after a failure: doubling from the first
/// to the last while failures repeat.
const MIN_REOPEN_DELAY: Duration = Duration::from_millis(100);
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(5);
/// A stream that lived this long before failing was working: the next wait starts short again.
const STABLE_STREAM: Duration = Duration::from_secs(30);

/// Routes control requests to the instance bridging the call; see the module docs.
#[derive(Clone)]
pub(crate) struct ControlRouter {
    shared: Arc<Shared>,
    live: LiveCalls,
    /// Requests this instance issued to others, by command, waiting for their answer.
    waiters: Arc<Mutex<HashMap<CommandId, oneshot::Sender<CallCommandRecord>>>>,
}

impl ControlRouter {
    pub(crate) fn new(shared: Arc<Shared>, live: LiveCalls) -> Self {
        Self {
            shared,
            live,
            waiters: Arc::default(),
        }
    }

    fn waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CommandId, oneshot::Sender<CallCommandRecord>>> {
        // Every update is one insert or remove: a panic elsewhere cannot leave it half-done.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `request` to the tenant's call wherever it is bridged, and answers what it did.
    pub(crate) async fn control(
        &self,
        user_id: TenantId,
        call_id: CallId,
        request: ControlRequest,
    ) -> Result<ControlOutcome, RouteError> {
        match self.live.control(user_id, call_id, request.clone()).await {
            Ok(outcome) => return Ok(outcome),
            Err(ControlError::Ended) => return Err(RouteError::NotLive),
            Err(ControlError::NotLive) => {}
        }
        let call = match self.shared.storage.call_logs().get(user_id, call_id).await {
            Ok(call) => call,
            Err(StorageError::NotFound) => return Err(RouteError::NotFound),
            Err(err) => return Err(err.into()),
        };
        let now = DateTime::now();
        let owner = match call.owner {
            Some(owner)
                if owner.is_alive(now)
                    && !call.call_status.is_terminal()
                    && owner.instance_id != self.shared.instance_id =>
            {
                owner.instance_id
            }
            // Not streamed, over, presumed lost, or ours and already gone from the registry.
            _ => return Err(RouteError::NotLive),
        };
        self.ask_owner(CallCommandRecord::new(
            user_id,
            call_id,
            owner,
            self.shared.instance_id.clone(),
            request,
            now,
            after(now, self.timeout()),
        ))
        .await
    }

    fn timeout(&self) -> Duration {
        self.shared.settings.cluster.command_timeout()
    }

    /// Writes `command` for its owner and waits for the answer.
    async fn ask_owner(&self, command: CallCommandRecord) -> Result<ControlOutcome, RouteError> {
        let commands = self.shared.storage.call_commands();
        let id = command.id;
        let (answer_tx, answer) = oneshot::channel();
        // Registered before the write: the answer may come back before `insert` returns.
        self.waiters().insert(id, answer_tx);
        let _unregister = Unregister { router: self, id };
        let started = std::time::Instant::now();
        commands.insert(&command).await?;
        tracing::debug!(command_id = %id, owner = %command.owner, kind = command.request.kind(), "control request sent to the call's owner");
        let answered = match tokio::time::timeout(self.timeout(), answer).await {
            Ok(Ok(answered)) => Some(answered),
            // Out of time (or the stream task is gone): withdraw the command unless the owner
            // took it, in which case its answer may already be written.
            _ if commands.expire(id, DateTime::now()).await? => None,
            _ => Some(commands.get(id).await?).filter(|latest| latest.status.is_final()),
        };
        let status = answered
            .as_ref()
            .map_or(CommandStatus::Expired, |answered| answered.status);
        metrics::control_command(status.as_str(), started.elapsed());
        match answered {
            Some(CallCommandRecord {
                status: CommandStatus::Done,
                outcome: Some(outcome),
                ..
            }) => Ok(outcome),
            Some(CallCommandRecord {
                status: CommandStatus::NotLive,
                ..
            }) => Err(RouteError::NotLive),
            _ => Err(RouteError::OwnerSilent(self.timeout())),
        }
    }

    /// Runs this instance's change stream until `shutdown` is cancelled.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut resume: Option<ResumeToken> = None;
        let mut delay = MIN_REOPEN_DELAY;
        loop {
            let opened = std::time::Instant::now();
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                outcome = self.follow(&mut resume) => outcome,
            };
            if opened.elapsed() > STABLE_STREAM {
                // It had been working: this is a new failure, not the same one again.
                delay = MIN_REOPEN_DELAY;
            }
            let Err(err) = outcome else { return };
            if err.code().is_some_and(|code| {
                [HISTORY_LOST, STREAM_FATAL, INVALID_RESUME_TOKEN].contains(&code)
            }) {
                tracing::warn!(error = %err, "the control stream cannot resume; starting afresh");
                resume = None;
            } else {
                tracing::warn!(error = %err, "the control stream broke; resuming");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_REOPEN_DELAY);
        }
    }

    /// Opens the stream (from `resume`), catches up on what it may have missed, then handles
    /// its events, keeping `resume` current. Returns only on an error.
    async fn follow(&self, resume: &mut Option<ResumeToken>) -> Result<(), StreamError> {
        let commands = self.shared.storage.call_commands();
        let mut stream = commands
            .watch(&self.shared.instance_id, resume.clone())
            .await
            .map_err(StreamError::Open)?;
        self.catch_up().await.map_err(StreamError::Read)?;
        loop {
            // `None`: the server closed the stream (it was invalidated or its cursor killed);
            // it yields nothing more, so it is opened again.
            let change = stream
                .try_next()
                .await
                .map_err(StreamError::Next)?
                .ok_or(StreamError::Closed)?;
            self.handle(change);
            if let Some(token) = stream.resume_token() {
                *resume = Some(token);
            }
        }
    }

    /// What a (re)opened stream may have missed: pending commands addressed here, and answers
    /// to the commands still awaited.
    async fn catch_up(&self) -> Result<(), StorageError> {
        let commands = self.shared.storage.call_commands();
        for command in commands
            .pending_for(&self.shared.instance_id, DateTime::now())
            .await?
        {
            self.execute(command.id);
        }
        let awaited: Vec<CommandId> = self.waiters().keys().copied().collect();
        for id in awaited {
            match commands.get(id).await {
                Ok(command) if command.status.is_final() => self.answer(command),
                Ok(_) | Err(StorageError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn handle(&self, change: CommandChange) {
        let Some(command) = change.full_document else {
            return;
        };
        match change.operation_type {
            OperationType::Insert if command.owner == self.shared.instance_id => {
                self.execute(command.id);
            }
            OperationType::Update
                if command.issued_by == self.shared.instance_id && command.status.is_final() =>
            {
                self.answer(command);
            }
            _ => {}
        }
    }

    fn answer(&self, command: CallCommandRecord) {
        if let Some(waiter) = self.waiters().remove(&command.id) {
            let _ = waiter.send(command);
        }
    }

    /// Claims and runs the command `id` addressed here, off the stream's loop (a session slow
    /// to answer holds up no other command).
    fn execute(&self, id: CommandId) {
        let router = self.clone();
        let span = tracing::info_span!("control_command", command_id = %id);
        tokio::spawn(
            async move {
                if let Err(err) = router.run_command(id).await {
                    tracing::warn!(error = %err, "cannot run a control command");
                }
            }
            .instrument(span),
        );
    }

    async fn run_command(&self, id: CommandId) -> Result<(), StorageError> {
        let commands = self.shared.storage.call_commands();
        let Some(command) = commands
            .claim(id, &self.shared.instance_id, DateTime::now())
            .await?
        else {
            // Taken already (seen twice), withdrawn by its requester, or past its time.
            return Ok(());
        };
        let outcome = self
            .live
            .control(command.user_id, command.call_id, command.request.clone())
            .await
            .ok();
        tracing::info!(call_id = %command.call_id, kind = command.request.kind(), from = %command.issued_by, ran = outcome.is_some(), "control request from another instance");
        commands
            .finish(command.id, outcome.as_ref(), DateTime::now())
            .await
    }
}

/// Drops the waiter when the request stops waiting, however it stops.
struct Unregister<'a> {
    router: &'a ControlRouter,
    id: CommandId,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.router.waiters().remove(&self.id);
    }
}

/// Where the stream failed.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("cannot open the control stream: {0}")]
    Open(StorageError),
    #[error("cannot read pending control commands: {0}")]
    Read(StorageError),
    #[error("the control stream failed: {0}")]
    Next(mongodb::error::Error),
    #[error("the server closed the control stream")]
    Closed,
}

impl StreamError {
    /// The server's error code, where it said one.
    fn code(&self) -> Option<i32> {
        match self {
            Self::Next(err) | Self::Open(StorageError::Backend(err)) => server_error_code(err),
            _ => None,
        }
    }
}
