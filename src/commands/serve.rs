//! `voxbridge serve`: connect (starting a local MongoDB in development when none is
//! configured), migrate, serve; on SIGTERM/SIGINT drain (no new calls, live ones finish, up to
//! `cluster.drain_timeout_secs`), then shut down in order: stop accepting, let requests finish,
//! close the MongoDB client last. A second signal skips the rest of the drain.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::startup::{Application, STORAGE_SHUTDOWN_TIMEOUT};
use crate::storage::migrations;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (storage, local_server) = super::open_storage(&settings).await?;
    let result = serve(settings, storage.clone()).await;
    storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
    if let Some(server) = local_server {
        server.stop().await;
    }
    result
}

async fn serve(settings: Settings, storage: crate::storage::Storage) -> anyhow::Result<()> {
    let report = migrations::run(&storage)
        .await
        .context("cannot apply database migrations")?;
    tracing::info!(
        applied = report.applied.len(),
        already_applied = report.already_applied.len(),
        "database schema is up to date"
    );

    super::upgrade_models::warn_at_startup(&storage, &settings, chrono::Utc::now().date_naive())
        .await;

    let shutdown = CancellationToken::new();
    let public_base_url = settings.public_base_url();
    let app = Application::build(settings, storage, shutdown.clone())
        .context("cannot bind the HTTP listener")?;
    // Tenants created before URL secrets had a lookup hash get one, so their FreJun URLs work.
    // With the service's own keyring; connections wait in the listener's backlog meanwhile
    // (nothing is accepted before `run_until_stopped`).
    let filled = app
        .backfill_url_secret_hashes()
        .await
        .context("cannot index tenants' FreJun URL secrets")?;
    if filled > 0 {
        tracing::info!(tenants = filled, "indexed FreJun URL secrets");
    }
    tracing::info!(address = %app.address(), %public_base_url, "voxbridge is serving");
    tokio::spawn(app.drainer().run_on_signals());
    app.run_until_stopped()
        .await
        .context("HTTP server failed")?;
    tracing::info!("HTTP server stopped");
    Ok(())
}
