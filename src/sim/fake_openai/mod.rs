//! A fake OpenAI Realtime server speaking the GA WebSocket protocol
//! (docs/protocols.md §2), for the integration tests, `voxbridge demo` and
//! `voxbridge loadtest` (thousands of sessions in one process).
//!
//! It checks the upgrade as OpenAI does (path, bearer key, `model`; an `OpenAI-Beta` header is
//! closed with 4000), sends `session.created`, applies `session.update`s, reads appended audio
//! in the declared format, emulates server VAD on it, and answers with responses whose events
//! follow the GA order. Every client event is checked against the GA shapes from raw JSON
//! (including `session.tools`/`tool_choice`, `function_call_output` items and out-of-band
//! `response.create` parameters) and each breach is recorded as a violation (and answered with
//! an `error`), so tests fail on a malformed event even when our own client types are wrong.
//!
//! A [`Behaviour`] picks what the "model" says ([`Mode`]: Echo, EchoStream, Scripted,
//! BargeIn), which user turns it answers with function calls instead
//! ([`ScriptedFunctionCall`]: a preamble, parallel `function_call` items, then a follow-up once
//! every `function_call_output` and one `response.create` arrived; misuse is recorded in
//! `SessionRecord::tool_violations`), what out-of-band responses (`conversation: "none"`) say
//! (`Behaviour::filler`; they run beside the default response and add nothing to the
//! conversation), how fast it streams ([`Pace`]) and which [`Failure`] to inject.
//!
//! Layout:
//! - [`behaviour`]: modes, failures and pacing.
//! - `handshake`: the HTTP checks of the upgrade.
//! - `connection`: one connection's task: the upgrade and the socket loop.
//! - `session`: one session's state machine (configuration, input and VAD, items, responses,
//!   function calls).
//! - `response`: response events, rendered audio and usage accounting.
//! - `vad`: the energy VAD (and its threshold mapping).
//! - `validate`: GA shape checks of client events.
//! - `audio_format`: `audio/pcm`, `audio/pcmu`, `audio/pcma` and rate conversion.
//! - [`record`]: what each session saw, for assertions.

pub(crate) mod behaviour;
pub(crate) mod record;

mod audio_format;
mod connection;
mod handshake;
mod response;
mod session;
mod vad;
mod validate;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::session_registry::{LiveGuard, SessionRegistry};
use url::Url;

pub use behaviour::{
    Behaviour, FILLER_MS, FILLER_TRANSCRIPT, Failure, Mode, Pace, ScriptAudio,
    ScriptedFunctionCall, ScriptedTurn, Trigger,
};
pub use record::{
    ClosedBy, FunctionCallOutputRecord, FunctionCallRecord, ReceivedEvent, RejectedHandshake,
    ResponseRecord, ResponseStatus, SessionRecord, ToolBatchRecord,
};
pub use vad::threshold_dbfs;

/// A running fake on `127.0.0.1` (random port). Cheap to clone; the server stops when the
/// last clone is dropped or on [`FakeOpenAi::stop`].
#[derive(Clone)]
pub struct FakeOpenAi {
    inner: Arc<Handle>,
}

/// Owned by the [`FakeOpenAi`] clones only (the tasks hold [`Shared`]), so that dropping the
/// last clone stops the server.
struct Handle {
    address: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// State shared by the accept loop, the session tasks and the handles.
pub(crate) struct Shared {
    behaviour: Mutex<Arc<Behaviour>>,
    sessions: Arc<SessionRegistry<SessionRecord>>,
    rejected: Mutex<Vec<RejectedHandshake>>,
    shutdown: CancellationToken,
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding a record must not
/// turn every later call into a second, confusing panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn current_behaviour(&self) -> Arc<Behaviour> {
        Arc::clone(&lock(&self.behaviour))
    }

    /// Wakes [`FakeOpenAi::wait_until`] callers after a record changed.
    fn changed(&self) {
        self.sessions.changed();
    }

    /// Adds a session record; the returned guard counts the session as live until dropped.
    fn register(&self, record: Arc<Mutex<SessionRecord>>) -> LiveGuard<SessionRecord> {
        self.sessions.register(record)
    }

    fn record_rejection(&self, rejected: RejectedHandshake) {
        lock(&self.rejected).push(rejected);
        self.changed();
    }

    fn snapshot(&self) -> Vec<SessionRecord> {
        self.sessions.snapshot()
    }
}

impl FakeOpenAi {
    /// Binds `127.0.0.1:0` and starts accepting on the current tokio runtime; the port is
    /// known when this returns.
    pub async fn start(behaviour: Behaviour) -> io::Result<FakeOpenAi> {
        FakeOpenAi::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), behaviour).await
    }

    /// Like [`FakeOpenAi::start`], on a given address: for a voxbridge started elsewhere whose
    /// `openai.realtime_url` already names it (the load generator's `--openai-listen`).
    pub(crate) async fn start_on(
        address: SocketAddr,
        behaviour: Behaviour,
    ) -> io::Result<FakeOpenAi> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Arc::new(behaviour)),
            sessions: SessionRegistry::new(),
            rejected: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeOpenAi {
            inner: Arc::new(Handle { address, shared }),
        })
    }

    /// `ws://127.0.0.1:<port>/v1/realtime` (add `?model=…`).
    pub fn url(&self) -> Url {
        let text = format!("ws://{}{}", self.inner.address, handshake::REALTIME_PATH);
        Url::parse(&text).expect("a socket address and a fixed path always form a valid URL")
    }

    /// The behaviour of sessions opened after this call (open sessions keep theirs).
    pub(crate) fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.inner.shared.behaviour) = Arc::new(behaviour);
    }

    /// A snapshot of every session so far, in the order their upgrades completed.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.inner.shared.snapshot()
    }

    /// Every session's violations (its shape violations, then its `tool_violations`), each
    /// prefixed with its session id.
    pub fn violations(&self) -> Vec<String> {
        let mut all = Vec::new();
        for record in self.inner.shared.sessions.records() {
            let record = lock(&record);
            all.extend(
                record
                    .violations
                    .iter()
                    .chain(&record.tool_violations)
                    .map(|violation| format!("{}: {violation}", record.id)),
            );
        }
        all
    }

    #[cfg(test)]
    /// Upgrades refused with an HTTP error, in order.
    pub(crate) fn rejected_handshakes(&self) -> Vec<RejectedHandshake> {
        lock(&self.inner.shared.rejected).clone()
    }

    /// Waits until at least `n` sessions have opened; `false` on timeout.
    #[cfg(test)]
    pub(crate) async fn wait_for_sessions(&self, n: usize, timeout: Duration) -> bool {
        self.inner
            .shared
            .sessions
            .wait_for(timeout, || self.inner.shared.sessions.len() >= n)
            .await
    }

    /// Waits until `pred` holds for the session records (evaluated on every change, at most
    /// once per millisecond); `false` if it still does not hold after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[SessionRecord]) -> bool,
    ) -> bool {
        let shared = &self.inner.shared;
        shared
            .sessions
            .wait_for(timeout, || pred(&shared.snapshot()))
            .await
    }

    #[cfg(test)]
    /// Sessions whose task is still running.
    pub(crate) fn live_sessions(&self) -> usize {
        self.inner.shared.sessions.live()
    }

    /// Stops accepting and closes every session with 1001 (stalled ones are dropped).
    pub(crate) fn stop(&self) {
        self.inner.shared.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(connection::serve(stream, Arc::clone(&shared)));
            }
            Err(error) => {
                // Usually out of file descriptors under load: back off instead of spinning.
                tracing::warn!(%error, "fake OpenAI: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
