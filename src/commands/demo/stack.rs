//! Everything the demo runs, on loopback and in this process: the development MongoDB (started,
//! or reused when `voxbridge serve` already runs one), a voxbridge server on a free port with
//! its own database, the fake OpenAI Realtime server speaking the recorded voices, the fake
//! FreJun Teler REST API that outbound calls are placed through, a fake of the tenant's order
//! system that the assistant's HTTP tool calls, and the fake ElevenLabs whose agent takes the
//! last call.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::local_mongodb::LocalMongod;
use crate::settings::{Environment, Settings};
use crate::sim::api_client::ApiClient;
use crate::sim::fake_elevenlabs::FakeElevenLabs;
use crate::sim::fake_openai::{Behaviour, FakeOpenAi, Mode, Pace, ScriptedTurn};
use crate::sim::fake_teler::FakeTeler;
use crate::sim::fake_text_ai::{FakeAnthropic, Scripted};
use crate::sim::fake_tool_server::FakeToolServer;
use crate::sim::fake_webhook_receiver::FakeWebhookReceiver;
use crate::sim::voices;
use crate::startup::{Application, STORAGE_SHUTDOWN_TIMEOUT};
use crate::storage::{Storage, migrations};

/// The demo's own database, emptied at the start of every run so each run tells the same story.
pub(crate) const DEMO_DATABASE: &str = "voxbridge_demo";

/// The running pieces.
pub(crate) struct DemoStack {
    pub storage: Storage,
    /// The MongoDB this process started (stopped at the end), if it did not reuse one.
    local_mongod: Option<LocalMongod>,
    pub mongodb_note: String,
    pub fake_openai: FakeOpenAi,
    pub fake_teler: FakeTeler,
    /// The tenant's order system, on loopback (allow-listed for the demo's server).
    pub fake_tools: FakeToolServer,
    /// The fake Anthropic Messages API that post-call analysis asks.
    pub fake_anthropic: FakeAnthropic,
    /// The fake ElevenLabs (signed URLs and conversations), with the demo's agent script.
    pub fake_elevenlabs: FakeElevenLabs,
    /// The tenant's webhook receiver (its CRM), on loopback too.
    pub webhooks: FakeWebhookReceiver,
    /// `http://127.0.0.1:<port>/`.
    pub base_url: Url,
    /// The admin API, with the development admin token.
    pub admin: ApiClient,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

/// What the fake Anthropic model answers to each call's post-call analysis, in call order:
/// scripted like the fake Realtime model's speech, and checked by voxbridge against each
/// assistant's schema before it is stored, as any model's answer would be.
fn analysis_script() -> Vec<String> {
    let booking = |summary: &str| {
        serde_json::json!({
            "summary": summary,
            "success": true,
            "success_reason": "The table was booked while the caller was on the line.",
            "sentiment": "positive",
            "data": {"request": "booking", "party_size": 2, "time": "20:00"}
        })
        .to_string()
    };
    vec![
        booking(
            "The caller asked for a table for two tonight, talking over the greeting; the \
             assistant booked eight o'clock.",
        ),
        booking(
            "Acme Bistro returned the caller's call; they asked for a table for two tonight \
             and got eight o'clock.",
        ),
        serde_json::json!({
            "summary": "The caller asked where order A-1001 is; it has shipped, and the \
                        assistant said goodbye and ended the call.",
            "success": true,
            "success_reason": "The caller learned the order's status.",
            "sentiment": "positive",
            "data": {"order_id": "A-1001", "order_status": "shipped", "needs_follow_up": false}
        })
        .to_string(),
        super::elevenlabs::analysis_answer(),
    ]
}

/// What the fake model says on every call: greeting, then the answer. Inbound and outbound
/// greet differently; the fake reads its behaviour when a session opens, so the demo switches
/// it between calls.
pub(crate) fn script(greeting: &voices::Voice) -> anyhow::Result<Behaviour> {
    let answer = voices::Voice::answer()?;
    Ok(Behaviour {
        pace: Pace::Realtime(4.0),
        user_transcripts: vec![voices::CALLER_TEXT.to_owned()],
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![
                ScriptedTurn::samples(greeting.text, Arc::clone(&greeting.samples_24k)),
                ScriptedTurn::samples(answer.text, Arc::clone(&answer.samples_24k)),
            ],
        })
    })
}

impl DemoStack {
    /// Starts everything; `settings` are the loaded development settings (their secrets are
    /// reused, their addresses replaced by loopback ones).
    pub(crate) async fn start(mut settings: Settings) -> anyhow::Result<DemoStack> {
        if settings.environment == Environment::Production {
            bail!(
                "the demo only runs in development (VOXBRIDGE__ENVIRONMENT is production): it creates \
                 throwaway accounts and talks to fake providers"
            );
        }
        let (storage_uri, local_mongod, mongodb_note) = match &settings.mongodb.uri {
            Some(uri) => (
                uri.clone(),
                None,
                "the configured MongoDB (mongodb.uri)".to_owned(),
            ),
            None => {
                let dir = settings.dev.state_dir.join("mongodb");
                let cache = crate::local_mongodb::cache_dir(&settings.dev.state_dir);
                let server = LocalMongod::start_or_reuse(&dir, &cache)
                    .await
                    .context("cannot start the local development MongoDB")?;
                let note = format!("the local development MongoDB at {}", server.uri());
                (
                    crate::domain::secret::SecretString::new(server.uri()),
                    Some(server),
                    note,
                )
            }
        };
        settings.mongodb.database = DEMO_DATABASE.to_owned();
        let storage = Storage::connect(&storage_uri, &settings.mongodb)
            .await
            .context("cannot connect to MongoDB")?;
        storage
            .database()
            .drop()
            .await
            .context("cannot empty the demo database")?;
        migrations::run(&storage)
            .await
            .context("cannot apply database migrations")?;

        let greeting = voices::Voice::greeting()?;
        let fake_openai = FakeOpenAi::start(script(&greeting)?)
            .await
            .context("cannot start the fake OpenAI server")?;
        let fake_teler = FakeTeler::start()
            .await
            .context("cannot start the fake Teler API")?;
        let fake_tools = FakeToolServer::start()
            .await
            .context("cannot start the fake order system")?;
        let fake_anthropic = FakeAnthropic::start()
            .await
            .context("cannot start the fake Anthropic API")?;
        for answer in analysis_script() {
            fake_anthropic.push(Scripted::Text(answer));
        }
        let webhooks = FakeWebhookReceiver::start()
            .await
            .context("cannot start the fake webhook receiver")?;
        let fake_elevenlabs = FakeElevenLabs::start(super::elevenlabs::behaviour())
            .await
            .context("cannot start the fake ElevenLabs")?;

        settings.server.host = [127, 0, 0, 1].into();
        settings.server.port = 0;
        settings.server.public_base_url = None;
        settings.server.workers = Some(1);
        settings.openai.realtime_url = fake_openai.url();
        settings.frejun.api_base_url = fake_teler.base_url();
        settings.elevenlabs.api_base_url = Url::parse(&fake_elevenlabs.base_url())
            .context("the fake ElevenLabs address is not a URL")?;
        settings.elevenlabs.conversation_url = Url::parse(&fake_elevenlabs.conversation_url())
            .context("the fake ElevenLabs conversation address is not a URL")?;
        settings.text_ai.anthropic_base_url = Url::parse(&fake_anthropic.base_url())
            .context("the fake Anthropic address is not a URL")?;
        settings.analysis.poll_interval_ms = 100;
        // The order system is on loopback, which tenants' tools may not reach unless the
        // operator allows it.
        settings.outbound.allow = "127.0.0.1".to_owned();
        // Events reach the receiver soon after each call, so the account can print them.
        settings.webhooks.poll_interval_ms = 100;
        settings.webhooks.ended_settle_ms = 500;
        // Call logs reach MongoDB every 500 ms, so the printed log is fresh when a call ends.
        settings.bridge.log_flush_interval_ms = 500;
        let admin_token = settings.security.admin_token.expose().to_owned();

        let shutdown = CancellationToken::new();
        let app = Application::build(settings, storage.clone(), shutdown.clone())
            .context("cannot bind the demo server")?;
        let base_url = Url::parse(&format!("http://{}/", app.address()))
            .context("the server address is not a URL")?;
        let server = tokio::spawn(app.run_until_stopped());
        let admin = ApiClient::new(&base_url, admin_token);
        admin
            .wait_ready(Duration::from_secs(10))
            .await
            .context("the demo server did not become ready")?;
        Ok(DemoStack {
            storage,
            local_mongod,
            mongodb_note,
            fake_openai,
            fake_teler,
            fake_tools,
            fake_anthropic,
            fake_elevenlabs,
            webhooks,
            base_url,
            admin,
            shutdown,
            server,
        })
    }

    /// Stops the server (waiting for its call logs to be written), the fakes and, if this
    /// process started it, MongoDB.
    pub(crate) async fn stop(self) {
        // Idle keep-alive connections would hold the graceful shutdown for their keep-alive
        // timeout; dropping the client closes them.
        drop(self.admin);
        self.shutdown.cancel();
        if let Ok(Err(error)) = self.server.await {
            tracing::warn!(%error, "the demo server stopped with an error");
        }
        self.fake_openai.stop();
        self.fake_teler.stop().await;
        self.fake_tools.stop().await;
        self.fake_anthropic.stop().await;
        self.fake_elevenlabs.stop().await;
        self.webhooks.stop().await;
        self.storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
        if let Some(mongod) = self.local_mongod {
            mongod.stop().await;
        }
    }
}
