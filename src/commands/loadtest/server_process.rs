//! The voxbridge under test: either a `voxbridge serve` this command starts (and stops), or a
//! server someone else started, given by URL.
//!
//! A started server is this very binary (`std::env::current_exe()`), optionally under
//! `taskset -c <cpus>`, configured entirely through environment overrides: loopback on a free
//! port, random admin token, keys and metrics token (so the load test can scrape its `GET
//! /metrics`), a fresh database `voxbridge_loadtest_<unix time>_<tag>`
//! (dropped afterwards unless kept), the voice AI's URLs (OpenAI Realtime's, or ElevenLabs' API
//! and conversation URLs) pointed at the load test's fake, log level `warn`, and its output in a
//! log file whose path is reported. Other `VOXBRIDGE__…` variables in the environment still
//! apply, so server settings can be tuned for a run. It is stopped the way an operator would:
//! SIGTERM (through `kill`), then a wait for its graceful shutdown.
//!
//! MongoDB for a started server: the given URI, else the local development MongoDB that
//! `voxbridge serve` would use (`<state dir>/mongodb`, started or reused; stopped at the end
//! only if this command started it).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::distr::Alphanumeric;
use rand::{Rng as _, RngCore as _};
use tokio::process::{Child, Command};
use url::Url;

use crate::domain::secret::SecretString;
use crate::local_mongodb::{self as local, LocalMongod};
use crate::sim::api_client::ApiClient;

/// Per-key quotas of a started server: far above what a run of thousands of calls needs.
const LOADTEST_RATE_LIMITS: [(&str, &str); 4] = [
    ("VOXBRIDGE__RATE_LIMIT__API_KEY_PER_SECOND", "100000"),
    ("VOXBRIDGE__RATE_LIMIT__API_KEY_BURST", "1000000"),
    ("VOXBRIDGE__RATE_LIMIT__FREJUN_KEY_PER_SECOND", "100000"),
    ("VOXBRIDGE__RATE_LIMIT__FREJUN_KEY_BURST", "1000000"),
];

/// How long a started server may take to answer `GET /ready` (migrations on a fresh database
/// included).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a stopping server may take: its own shutdown timeout (30 s by default) plus the
/// call-log keepers' final writes.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of the server log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// `taskset -c` CPU list to pin the server to (e.g. `0`).
    pub cpus: Option<String>,
    /// MongoDB connection string; `None` uses the local development MongoDB.
    pub mongodb_uri: Option<String>,
    /// Keep the run's database instead of dropping it.
    pub keep_database: bool,
    /// Development state directory (local MongoDB, run directories with the server log).
    pub state_dir: PathBuf,
}

/// A server started elsewhere.
#[derive(Debug, Clone)]
pub struct ExternalServer {
    pub url: Url,
    pub admin_token: String,
    /// For CPU and memory figures; without it they are left out.
    pub pid: Option<u32>,
    /// Its `metrics.token`, to scrape `GET /metrics` for the metrics check; without it the
    /// check is skipped.
    pub metrics_token: Option<SecretString>,
}

/// The server under test.
pub(crate) struct Server {
    pub base_url: Url,
    pub admin_token: String,
    pub pid: Option<u32>,
    /// The bearer token of its `GET /metrics`, when known.
    pub metrics_token: Option<SecretString>,
    /// The server's stdout and stderr (started servers only).
    pub log_file: Option<PathBuf>,
    started: Option<Started>,
}

/// What a started server owns.
struct Started {
    child: Child,
    mongodb_uri: String,
    database: String,
    keep_database: bool,
    /// The local MongoDB, when this command started it.
    mongod: Option<LocalMongod>,
}

impl Server {
    /// A server started elsewhere.
    pub(crate) fn external(server: ExternalServer) -> Server {
        Server {
            base_url: server.url,
            admin_token: server.admin_token,
            pid: server.pid,
            metrics_token: server.metrics_token,
            log_file: None,
            started: None,
        }
    }

    /// Starts `voxbridge serve` with `fake_env` (the settings that point it at the load test's
    /// fake voice AI), writing its log into `run_dir`, and waits until it is ready.
    pub(crate) async fn spawn(
        options: &SpawnOptions,
        fake_env: &[(&str, String)],
        run_id: &str,
        run_dir: &Path,
    ) -> anyhow::Result<Server> {
        let (mongodb_uri, mongod) = match &options.mongodb_uri {
            Some(uri) => (uri.clone(), None),
            None => {
                let dir = options.state_dir.join("mongodb");
                let server =
                    LocalMongod::start_or_reuse(&dir, &local::cache_dir(&options.state_dir))
                        .await
                        .context("no --mongodb-uri or MONGODB_URI, and the local development MongoDB did not start")?;
                (server.uri(), Some(server))
            }
        };
        let database = format!("voxbridge_loadtest_{run_id}");
        let port = local::free_port().context("cannot find a free port for the server")?;
        let base_url = Url::parse(&format!("http://127.0.0.1:{port}"))?;
        let admin_token = random_text(48);
        let metrics_token = random_text(48);
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        let log_file = run_dir.join("server.log");
        let log = std::fs::File::create(&log_file)
            .with_context(|| format!("cannot create {}", log_file.display()))?;

        let exe = std::env::current_exe().context("cannot find the voxbridge executable")?;
        let mut command = match &options.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        command
            .arg("serve")
            // Settings from a file must not point the server elsewhere; the environment below
            // decides everything this run depends on.
            .env_remove("VOXBRIDGE_CONFIG")
            .env_remove("VOXBRIDGE__SECURITY__PREVIOUS_MASTER_KEYS")
            .env("VOXBRIDGE__ENVIRONMENT", "development")
            .env("VOXBRIDGE__SERVER__HOST", "127.0.0.1")
            .env("VOXBRIDGE__SERVER__PORT", port.to_string())
            .env("VOXBRIDGE__SERVER__PUBLIC_BASE_URL", base_url.as_str())
            .env("VOXBRIDGE__MONGODB__URI", &mongodb_uri)
            .env("VOXBRIDGE__MONGODB__DATABASE", &database)
            .env("VOXBRIDGE__SECURITY__ADMIN_TOKEN", &admin_token)
            .env("VOXBRIDGE__METRICS__TOKEN", &metrics_token)
            .env("VOXBRIDGE__SECURITY__MASTER_KEY", random_master_key())
            .env("VOXBRIDGE__SECURITY__MASTER_KEY_VERSION", "1")
            .env("VOXBRIDGE__SECURITY__URL_SIGNING_KEY", random_text(48))
            .env("VOXBRIDGE__DEV__STATE_DIR", run_dir)
            .env("VOXBRIDGE__LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // A load generator that dies must not leave its server behind.
            .kill_on_drop(true);
        for (name, value) in fake_env {
            command.env(name, value);
        }
        // One tenant sets up and places every call: its quotas are raised so that the limits,
        // still in force, meter rather than refuse the run (unless the environment says
        // otherwise).
        for (name, value) in LOADTEST_RATE_LIMITS {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
        let child = command.spawn().with_context(|| match &options.cpus {
            Some(_) => "cannot run taskset (is util-linux installed?)".to_owned(),
            None => format!("cannot run {}", exe.display()),
        })?;
        let mut server = Server {
            pid: child.id(),
            base_url,
            admin_token,
            metrics_token: Some(SecretString::new(metrics_token)),
            log_file: Some(log_file),
            started: Some(Started {
                child,
                mongodb_uri,
                database,
                keep_database: options.keep_database,
                mongod,
            }),
        };
        if let Err(error) = server.wait_ready().await {
            server.stop().await;
            return Err(error);
        }
        Ok(server)
    }

    /// A client with the admin token.
    pub(crate) fn admin(&self) -> ApiClient {
        ApiClient::new(&self.base_url, self.admin_token.clone())
    }

    /// The MongoDB a started server uses.
    pub(crate) fn mongodb_uri(&self) -> Option<&str> {
        self.started
            .as_ref()
            .map(|started| started.mongodb_uri.as_str())
    }

    /// The run's database, when this command created it.
    pub(crate) fn database(&self) -> Option<&str> {
        self.started
            .as_ref()
            .map(|started| started.database.as_str())
    }

    /// Waits for `GET /ready`, failing early (with the log's tail) if the process exits.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let admin = self.admin();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(started) = self.started.as_mut()
                && let Some(status) = started.child.try_wait()?
            {
                bail!(
                    "the server exited during startup ({status}); last lines of {}:\n{}",
                    self.log_file_text(),
                    self.log_tail()
                );
            }
            match admin.get("ready").await {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    bail!(
                        "the server was not ready after {} s ({error}); last lines of {}:\n{}",
                        READY_TIMEOUT.as_secs(),
                        self.log_file_text(),
                        self.log_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn log_file_text(&self) -> String {
        self.log_file
            .as_ref()
            .map_or_else(|| "-".to_owned(), |path| path.display().to_string())
    }

    fn log_tail(&self) -> String {
        let text = self
            .log_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Stops a started server (SIGTERM, then a wait; killed if it does not exit in time), drops
    /// its database unless kept, and stops the local MongoDB if this command started it.
    /// Problems are reported on stderr: the run's results stand regardless. Does nothing for an
    /// external server.
    pub(crate) async fn stop(mut self) {
        let Some(mut started) = self.started.take() else {
            return;
        };
        match terminate(&mut started.child).await {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!(
                "voxbridge loadtest: the server exited with {status}; see {}",
                self.log_file_text()
            ),
            Err(error) => eprintln!("voxbridge loadtest: stopping the server: {error:#}"),
        }
        if !started.keep_database
            && let Err(error) = drop_database(&started.mongodb_uri, &started.database).await
        {
            eprintln!(
                "voxbridge loadtest: could not drop the database {}: {error:#}",
                started.database
            );
        }
        if let Some(mongod) = started.mongod.take() {
            mongod.stop().await;
        }
    }
}

/// SIGTERM through `kill` (no signal crate needed), then waits; kills after [`STOP_TIMEOUT`].
async fn terminate(child: &mut Child) -> anyhow::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if let Some(pid) = child.id() {
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("cannot run kill")?;
        if !signalled.success() {
            bail!("kill -TERM {pid} failed ({signalled})");
        }
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => {
            child.kill().await?;
            bail!(
                "the server did not stop within {} s of SIGTERM and was killed",
                STOP_TIMEOUT.as_secs()
            )
        }
    }
}

async fn drop_database(uri: &str, database: &str) -> anyhow::Result<()> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let result = client.database(database).drop().await;
    client.shutdown().await;
    Ok(result?)
}

/// Random letters and digits.
fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Base64 of 32 random bytes, as `security.master_key` takes it.
fn random_master_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    BASE64.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_meet_the_settings_rules() {
        let token = random_text(48);
        assert_eq!(token.len(), 48);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(token, random_text(48));
        let key = BASE64.decode(random_master_key()).unwrap();
        assert_eq!(key.len(), 32);
    }
}
