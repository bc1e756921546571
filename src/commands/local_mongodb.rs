//! `voxbridge local-mongodb`: a throwaway single-node MongoDB replica set on loopback.
//!
//! `exec -- CMD…` runs CMD with `MONGODB_URI` pointing at a fresh server in a temporary
//! directory and stops and deletes the server afterwards, whatever CMD's outcome (this is how
//! the test suite gets its database). When `MONGODB_URI` is already set, CMD just runs against
//! it. `run` keeps a server up in the foreground until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::Context as _;
use tokio::process::Command;

use crate::local_mongodb::{self as local, LocalMongod};

/// Environment variable the tests (and any wrapped command) read the connection string from.
pub(crate) const URI_ENV: &str = "MONGODB_URI";

/// Runs `command` with a database; returns its exit status.
pub async fn exec(state_dir: &Path, command: &[String]) -> anyhow::Result<ExitStatus> {
    let (program, args) = command.split_first().context("no command given after --")?;
    if std::env::var_os(URI_ENV).is_some() {
        tracing::info!("{URI_ENV} is set: running without starting a local mongod");
        return run_child(program, args, None).await;
    }

    let binary = local::find_or_fetch_binary(&local::cache_dir(state_dir)).await?;
    let data_dir = TempDir::new()?;
    let server = LocalMongod::start(&binary, data_dir.path(), local::free_port()?).await?;
    let status = run_child(program, args, Some((&server.uri(), &binary))).await;
    server.stop().await;
    drop(data_dir);
    status
}

/// Runs a server in `data_dir` (a fresh temporary one when not given) until Ctrl-C or SIGTERM.
pub async fn run(
    state_dir: &Path,
    data_dir: Option<PathBuf>,
    port: Option<u16>,
) -> anyhow::Result<()> {
    let binary = local::find_or_fetch_binary(&local::cache_dir(state_dir)).await?;
    let temp = match data_dir {
        Some(_) => None,
        None => Some(TempDir::new()?),
    };
    let dir = data_dir.unwrap_or_else(|| temp.as_ref().expect("created above").path().to_owned());
    let port = match port {
        Some(port) => port,
        None => local::free_port()?,
    };
    let server = LocalMongod::start(&binary, &dir, port).await?;
    println!("{URI_ENV}={}", server.uri());
    let token = tokio_util::sync::CancellationToken::new();
    crate::startup::cancel_on_signal(token).await;
    server.stop().await;
    Ok(())
}

async fn run_child(
    program: &str,
    args: &[String],
    database: Option<(&str, &Path)>,
) -> anyhow::Result<ExitStatus> {
    let mut child = Command::new(program);
    child.args(args);
    if let Some((uri, binary)) = database {
        child.env(URI_ENV, uri).env(local::MONGOD_ENV, binary);
    }
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    // Ctrl-C reaches the child too (same process group); wait for it to finish either way so the
    // database is stopped only after the command is done with it.
    loop {
        tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; waiting for {program} to exit"),
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("voxbridge-mongodb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
