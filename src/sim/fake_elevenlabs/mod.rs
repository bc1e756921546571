//! A fake of the ElevenLabs Conversational AI (Agents) WebSocket API, speaking the protocol of
//! docs/protocols.md §5, for the integration tests, the demo and the load generator.
//!
//! One actix-web server on `127.0.0.1` (a port the OS picks, a few workers) serves both the
//! REST endpoint that signs URLs and the conversation WebSocket; one handler routes by path, so
//! every request is answered (and the ones that matter recorded), wrong paths included. Agents
//! are configured on the fake ([`AgentConfig`]: public or private, input and output formats,
//! first message, enabled overrides), as they would be on ElevenLabs.
//!
//! | Route | Behaviour |
//! |---|---|
//! | `GET /v1/convai/conversation/get-signed-url?agent_id=…` | `xi-api-key` must be the fake's key ([`FakeElevenLabs::set_api_key`], default [`DEFAULT_API_KEY`]), else 401 `{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}`; unknown agent 404; else 200 `{"signed_url":"ws://127.0.0.1:<port>/v1/convai/conversation?agent_id=…&conversation_signature=…"}` (single-use, bound to the agent, valid [`SIGNED_URL_TTL`]). Recorded: [`FakeElevenLabs::signed_url_requests`]. |
//! | `GET /v1/convai/conversation?agent_id=…[&conversation_signature=…]` (upgrade) | unknown agent 404; bad, used or expired signature 403; private agent without one 403; public agents need nothing. Recorded: [`FakeElevenLabs::upgrades`]. |
//! | anything else | 404 `{"detail":"Not Found"}` |
//!
//! | Conversation stage | What the fake does |
//! |---|---|
//! | upgraded | waits for the client's first message; a message other than `conversation_initiation_client_data` first is a violation and starts the conversation with the agent's own settings |
//! | initiation | applies the `conversation_config_override` fields the agent enables and drops the rest silently (listed in `dropped_overrides`); keeps valid `dynamic_variables`; `starting_workflow_node_id` without its enablement closes 1008 |
//! | metadata | `conversation_initiation_metadata` with `conversation_id` and the agent's `user_input_audio_format` / `agent_output_audio_format` |
//! | first message | the override (if enabled) or the agent's, `{{placeholders}}` filled, spoken when non-empty: `agent_response` then `audio` |
//! | [`Mode::Echo`] | each caller chunk comes back at once as one `audio` event in the output format |
//! | [`Mode::Scripted`] | per caller turn ([`TurnDetection`]): `user_transcript`, `agent_response` with the first `audio` event, the rest of the reply paced ([`Pace`]) in [`Behaviour::chunk_ms`] events |
//! | [`InterruptionScript`] | `interruption{event_id: K}`, stale audio with ids ≤ K, `agent_response_correction`, then the next turn with ids > K |
//! | [`ScriptedToolCall`] | `client_tool_call` after the first user turn; the reply waits for `client_tool_result` (recorded with its latency) |
//! | pings | `ping{event_id, ping_ms}` every [`Behaviour::ping_interval`]; no `pong` within [`Behaviour::pong_deadline`]: `missed_pong`, close 1008 `pong timeout` |
//! | [`Failure`] | refuse upgrades, close 1011 or drop mid-reply, close after initiation, stay silent |
//!
//! Every client frame is checked against the protocol (see `validate`): JSON object text
//! frames only; bare `{"user_audio_chunk": "<base64>"}` with whole samples; typed messages with
//! exactly their documented fields and types; the initiation once and first; pongs and tool
//! results matching what is outstanding. Each problem is recorded as a sentence naming the
//! field, in `SessionRecord::violations` and, prefixed with the conversation, in
//! [`FakeElevenLabs::violations`]. ElevenLabs sends no error events for these, so neither does
//! the fake; a test asserts on the violations.
//!
//! With [`Behaviour::record_timings`] each record also keeps a per-chunk timeline
//! (`SessionRecord::append_timings` for caller chunks, `delta_timings` for audio events, as
//! cumulative sample counts with the instant), from which the load generator measures the
//! bridge's latency each way, as it does with the fake OpenAI's.
//!
//! The fake never sends `vad_score`, `agent_chat_response_part`,
//! `internal_tentative_agent_response` or `agent_tool_response`, nor `alignment` in audio
//! events.
//!
//! [`FakeElevenLabs::stop`] closes open conversations with 1001 and stops the server; dropping
//! the fake does the same without waiting.
//!
//! Layout:
//! - `behaviour`: modes, turn detection, pacing, interruption, tool calls and failures.
//! - `agent`: agent settings, override enablement and placeholders.
//! - `audio`: the wire formats, echo conversion and rendered speech.
//! - `signed_url`: the REST endpoint and the signature store.
//! - `connection`: the upgrade checks and one conversation's socket loop.
//! - `conversation`: one conversation's state machine.
//! - `turns`: caller turn detection.
//! - `validate`: shape checks of client messages.
//! - `events`: the server messages.
//! - `record`: what each conversation, upgrade and signing request saw.

mod agent;
mod audio;
mod behaviour;
mod connection;
mod conversation;
mod events;
mod record;
mod signed_url;
mod turns;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::session_registry::{LiveGuard, SessionRegistry};

pub use agent::{AgentConfig, CUSTOM_LLM_EXTRA_BODY, OVERRIDE_FIELDS, STARTING_WORKFLOW_NODE};
pub use audio::{AudioFormat, PCM_RATES_HZ};
pub use behaviour::{
    Behaviour, Failure, InterruptionScript, Mode, Pace, ScriptedToolCall, ScriptedTurn, Speech,
    TurnDetection,
};
pub use record::{
    SessionRecord, SignedUrlRequest, ToolCallRecord, ToolResultRecord, UpgradeRecord,
};
pub use signed_url::SIGNED_URL_TTL;

/// The `xi-api-key` the REST endpoint accepts until [`FakeElevenLabs::set_api_key`] changes it.
pub const DEFAULT_API_KEY: &str = "sk_fake_elevenlabs_key";

/// The conversation WebSocket's path.
const CONVERSATION_PATH: &str = "/v1/convai/conversation";

/// Most actix workers the fake starts: conversations are spread over them, so a load test's
/// hundreds of sockets do not all share one thread.
const MAX_WORKERS: usize = 4;

/// A running fake on `127.0.0.1`. Not `Clone`: share it in an `Arc` if several tasks need it.
/// [`FakeElevenLabs::stop`] stops it; dropping it stops it too, without waiting.
pub struct FakeElevenLabs {
    shared: Arc<Shared>,
    handle: ServerHandle,
    /// The server future, spawned on the caller's runtime; awaited by [`FakeElevenLabs::stop`].
    server: Option<JoinHandle<io::Result<()>>>,
}

/// State shared by the handlers, the conversation tasks and the handle.
struct Shared {
    address: SocketAddr,
    behaviour: Mutex<Arc<Behaviour>>,
    agents: Mutex<HashMap<String, Arc<AgentConfig>>>,
    api_key: Mutex<String>,
    signatures: Mutex<signed_url::Signatures>,
    signed_url_ttl: Mutex<Duration>,
    signed_url_requests: Mutex<Vec<SignedUrlRequest>>,
    upgrades: Mutex<Vec<UpgradeRecord>>,
    sessions: Arc<SessionRegistry<SessionRecord>>,
    shutdown: CancellationToken,
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding a record must not
/// turn every later call into a second, confusing panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `len` random letters and digits (conversation ids, signatures).
fn random_tag(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// An error in ElevenLabs' envelope, `{"detail": {"status": code, "message": message}}`
/// (a status outside 100–999 answers 500).
fn error_response(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({"detail": {"status": code, "message": message}}))
}

impl Shared {
    fn current_behaviour(&self) -> Arc<Behaviour> {
        Arc::clone(&lock(&self.behaviour))
    }

    /// Wakes [`FakeElevenLabs::wait_until`] callers after a record changed.
    fn changed(&self) {
        self.sessions.changed();
    }

    /// Adds a conversation's record; the guard counts it as live until dropped.
    fn register(&self, record: Arc<Mutex<SessionRecord>>) -> LiveGuard<SessionRecord> {
        self.sessions.register(record)
    }

    fn snapshot(&self) -> Vec<SessionRecord> {
        self.sessions.snapshot()
    }
}

/// The one handler: routes by path.
async fn route(req: HttpRequest, body: web::Payload, shared: web::Data<Shared>) -> HttpResponse {
    match req.path() {
        signed_url::SIGNED_URL_PATH => signed_url::handle(&req, &shared),
        CONVERSATION_PATH => connection::upgrade(&req, body, shared.into_inner()),
        _ => HttpResponse::NotFound().json(json!({"detail": "Not Found"})),
    }
}

impl FakeElevenLabs {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime (workers on their
    /// own threads). The port is known when this returns, so callers never wait for readiness.
    pub async fn start(behaviour: Behaviour) -> io::Result<FakeElevenLabs> {
        FakeElevenLabs::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), behaviour).await
    }

    /// Like [`FakeElevenLabs::start`], on a given address (for a voxbridge started elsewhere
    /// whose configuration already names it).
    pub async fn start_on(address: SocketAddr, behaviour: Behaviour) -> io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            address,
            behaviour: Mutex::new(Arc::new(behaviour)),
            agents: Mutex::new(HashMap::new()),
            api_key: Mutex::new(DEFAULT_API_KEY.to_owned()),
            signatures: Mutex::new(signed_url::Signatures::default()),
            signed_url_ttl: Mutex::new(SIGNED_URL_TTL),
            signed_url_requests: Mutex::new(Vec::new()),
            upgrades: Mutex::new(Vec::new()),
            sessions: SessionRegistry::new(),
            shutdown: CancellationToken::new(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WORKERS);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(route))
        })
        // Like ElevenLabs' own servers, every event goes out at once (actix leaves Nagle's
        // algorithm on, which held the first audio event for the client's delayed ACK).
        .on_connect(|connection, _| {
            if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = stream.set_nodelay(true);
            }
        })
        .workers(workers)
        // The test owns the process; it stops the fake by dropping it.
        .disable_signals()
        // Conversations close themselves on shutdown; this only bounds a stuck one.
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
        let handle = server.handle();
        Ok(FakeElevenLabs {
            shared,
            handle,
            server: Some(tokio::spawn(server)),
        })
    }

    /// `http://127.0.0.1:<port>`, standing for `https://api.elevenlabs.io` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.address)
    }

    /// `ws://127.0.0.1:<port>/v1/convai/conversation`, standing for
    /// `wss://api.elevenlabs.io/v1/convai/conversation` (add `?agent_id=…`).
    pub fn conversation_url(&self) -> String {
        format!("ws://{}{CONVERSATION_PATH}", self.shared.address)
    }

    /// Adds an agent, replacing one with the same id.
    ///
    /// # Panics
    /// If a format has a PCM rate ElevenLabs does not offer: a mistake in the test.
    pub fn add_agent(&self, agent: AgentConfig) {
        assert!(
            agent.input_format.is_supported() && agent.output_format.is_supported(),
            "agent {}: formats must be pcm_<rate> with a rate from {PCM_RATES_HZ:?} or ulaw_8000",
            agent.agent_id
        );
        lock(&self.shared.agents).insert(agent.agent_id.clone(), Arc::new(agent));
    }

    /// The one `xi-api-key` the REST endpoint accepts from now on.
    pub fn set_api_key(&self, key: &str) {
        *lock(&self.shared.api_key) = key.to_owned();
    }

    /// How long signed URLs issued from now on, and those already issued, stay usable
    /// (default [`SIGNED_URL_TTL`]).
    pub fn set_signed_url_ttl(&self, ttl: Duration) {
        *lock(&self.shared.signed_url_ttl) = ttl;
    }

    /// The behaviour of conversations opened from now on (open ones keep theirs).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = Arc::new(behaviour);
    }

    /// A snapshot of every conversation so far, in the order their upgrades were accepted.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.shared.snapshot()
    }

    /// Every conversation's violations, each as `conversation <id>: <problem>`.
    pub fn violations(&self) -> Vec<String> {
        let mut all = Vec::new();
        for record in self.shared.sessions.records() {
            let record = lock(&record);
            all.extend(
                record
                    .violations
                    .iter()
                    .map(|problem| format!("conversation {}: {problem}", record.conversation_id)),
            );
        }
        all
    }

    /// Every request to the conversation path, upgraded or refused, in order.
    pub fn upgrades(&self) -> Vec<UpgradeRecord> {
        lock(&self.shared.upgrades).clone()
    }

    /// Every call of the signed-URL endpoint, in order.
    pub fn signed_url_requests(&self) -> Vec<SignedUrlRequest> {
        lock(&self.shared.signed_url_requests).clone()
    }

    /// Conversations whose socket task is still running.
    pub fn live_conversations(&self) -> usize {
        self.shared.sessions.live()
    }

    /// Waits until `pred` holds for the conversation records (evaluated on every change, at
    /// most once per millisecond); `false` if it still does not hold after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[SessionRecord]) -> bool,
    ) -> bool {
        let shared = &self.shared;
        shared
            .sessions
            .wait_for(timeout, || pred(&shared.snapshot()))
            .await
    }

    /// Closes every open conversation with 1001 `server shutting down` (waiting up to a
    /// second for each client's close reply), stops the server and waits until it stopped.
    pub async fn stop(mut self) {
        self.shared.shutdown.cancel();
        // Bounded: the graceful part is bounded by the server's shutdown timeout, and a stop
        // was once seen never to complete (on a loaded machine, with no connection left); a
        // test must fail on what it checks, not hang in its teardown.
        let _ = tokio::time::timeout(STOP_TIMEOUT, self.handle.stop(true)).await;
        if let Some(server) = self.server.take() {
            // The server's own result does not matter once it is stopped on purpose.
            if tokio::time::timeout(STOP_TIMEOUT, server).await.is_err() {
                tracing::warn!("the fake ElevenLabs server did not stop in time; left behind");
            }
        }
    }
}

/// The longest [`FakeElevenLabs::stop`] waits for the server (its shutdown timeout is 2 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for FakeElevenLabs {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        // `ServerHandle::stop` sends the stop command when called; the future only waits for
        // completion. Driving it on the runtime when there is one keeps this correct even if
        // that detail changes.
        let stopping = self.handle.stop(false);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(stopping);
        }
    }
}
