//! [`Shared`]: what the whole service shares, built once per process. The settings, the MongoDB
//! handle, the keyring that encrypts tenants' secrets and the media-token signer have one owner
//! here; the call control plane, the media bridge and the HTTP layer each hold an `Arc` of it
//! rather than copies of their own.

use std::sync::Arc;

use crate::crypto::Keyring;
use crate::frejun::media_token::MediaTokens;
use crate::outbound::OutboundHttp;
use crate::settings::Settings;
use crate::storage::Storage;

/// See the module docs.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub storage: Storage,
    /// Encrypts and decrypts tenants' credentials (from `security.master_key` and its
    /// predecessors).
    pub keyring: Keyring,
    /// Signs and checks the tokens in the media-stream URLs we give FreJun.
    pub media_tokens: MediaTokens,
    /// The SSRF-safe client for URLs tenants control (HTTP tools, webhooks).
    pub outbound: OutboundHttp,
}

impl Shared {
    /// Derives the keyring and the media-token signer from the settings.
    pub fn new(settings: Settings, storage: Storage) -> Arc<Self> {
        Arc::new(Self {
            keyring: settings.security.keyring(),
            media_tokens: MediaTokens::new(settings.security.url_signing_key.clone()),
            outbound: OutboundHttp::new(&settings.outbound.allow),
            settings,
            storage,
        })
    }
}
