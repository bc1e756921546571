//! `voxbridge rotate-master-key`: re-encrypts every stored tenant secret under the current
//! master key (`security.master_key` / `security.master_key_version`), reading older ones with
//! `security.previous_master_keys`. Safe to run while the service serves, and to run again.

use anyhow::Context as _;

use crate::settings::Settings;
use crate::startup::STORAGE_SHUTDOWN_TIMEOUT;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let keyring = settings.security.keyring();
    if settings.security.previous_master_keys.0.is_empty() {
        tracing::warn!(
            "security.previous_master_keys is empty: a secret under an older key will stop the rotation"
        );
    }
    let (storage, local_server) = super::open_storage(&settings).await?;
    let result = async {
        let mut report = storage.users().rotate_secrets(&keyring).await?;
        // Webhook endpoints keep their own signing secrets, bound to the endpoint.
        let (reencrypted, current) = storage
            .webhook_endpoints()
            .rotate_master_key(&keyring)
            .await?;
        report.reencrypted += reencrypted;
        report.already_current += current;
        anyhow::Ok(report)
    }
    .await;
    storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
    if let Some(server) = local_server {
        server.stop().await;
    }
    let report = result.context("rotation stopped")?;
    println!(
        "master key version {}: {} tenant(s) checked, {} secret(s) re-encrypted, {} already current",
        keyring.current_version(),
        report.tenants,
        report.reencrypted,
        report.already_current
    );
    Ok(())
}
