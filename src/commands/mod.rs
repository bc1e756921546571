//! The `voxbridge` subcommands. `main.rs` parses the command line and calls into these.
//!
//! Layout:
//! - [`serve`]: migrate, then serve HTTP until SIGTERM/SIGINT.
//! - [`migrate`]: apply pending migrations and exit.
//! - [`rotate_master_key`]: re-encrypt tenants' secrets under the current master key.
//! - [`upgrade_models`]: move assistants off OpenAI models with an announced shutdown (and the
//!   startup warning about them).
//! - [`demo`]: the one-command tour: a server, fake FreJun, OpenAI, ElevenLabs and text AI,
//!   four calls.
//! - [`local_mongodb`]: run a throwaway local MongoDB, alone or around another command (tests).
//! - [`call`]: play FreJun against a running voxbridge: one inbound or outbound call.
//! - [`loadtest`]: simulated calls against a voxbridge with a fake OpenAI or ElevenLabs; latency,
//!   CPU, memory.

pub mod call;
pub mod demo;
pub mod loadtest;
pub mod local_mongodb;
pub mod migrate;
pub mod rotate_master_key;
pub mod serve;
pub mod upgrade_models;

use crate::domain::secret::SecretString;
use crate::local_mongodb::{self as local, LocalMongod};
use crate::settings::Settings;
use crate::storage::Storage;

/// The database the settings point at. In development without `mongodb.uri`, a local `mongod`
/// under the state directory is started (or reused); the caller stops it when done.
pub(crate) async fn open_storage(
    settings: &Settings,
) -> anyhow::Result<(Storage, Option<LocalMongod>)> {
    let (uri, local_server) = match &settings.mongodb.uri {
        Some(uri) => (uri.clone(), None),
        None => {
            // Settings loading refuses production without a URI, so this is development.
            let dir = settings.dev.state_dir.join("mongodb");
            let server =
                LocalMongod::start_or_reuse(&dir, &local::cache_dir(&settings.dev.state_dir))
                    .await?;
            tracing::info!(uri = %server.uri(), "no mongodb.uri configured: using the local development MongoDB");
            (SecretString::new(server.uri()), Some(server))
        }
    };
    let storage = Storage::connect(&uri, &settings.mongodb).await?;
    Ok((storage, local_server))
}
