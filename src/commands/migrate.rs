//! `voxbridge migrate`: apply pending migrations and print what was done.

use crate::settings::Settings;
use crate::startup::STORAGE_SHUTDOWN_TIMEOUT;
use crate::storage::migrations;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (storage, local_server) = super::open_storage(&settings).await?;
    let result = migrations::run(&storage).await;
    storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
    if let Some(server) = local_server {
        server.stop().await;
    }
    let report = result?;
    for file in &report.applied {
        println!("applied {file}");
    }
    println!(
        "{} migration(s) applied, {} already applied",
        report.applied.len(),
        report.already_applied.len()
    );
    Ok(())
}
