//! The call control plane: deciding what FreJun should do with a call, placing outbound calls,
//! applying status webhooks, and closing calls whose slot lease ran out.
//!
//! Layout:
//! - [`tenant_key`]: finding the tenant a FreJun request's `key` belongs to.
//! - [`flow`]: the answer to FreJun's flow request, inbound and outbound.
//! - [`webhook`]: status webhooks merged into call logs.
//! - [`outbound`]: placing and hanging up calls through Teler.
//! - [`reaper`]: the background task that closes calls whose slot lease expired.
//!
//! Everything here is independent of HTTP: handlers in `http::frejun` parse requests, call into
//! [`CallService`] and turn its outcomes into responses.

pub mod flow;
pub mod outbound;
pub mod reaper;
pub mod tenant_key;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use bson::DateTime;
use url::Url;

use crate::crypto::Keyring;
use crate::domain::ids::CallId;
use crate::domain::secret::SecretString;
use crate::frejun::media_token::MediaTokens;
use crate::providers::teler::TelerClient;
use crate::settings::Settings;
use crate::storage::Storage;
use crate::storage::users::{FREJUN_URL_SECRET, UserRecord, encryption_context};

/// What the control plane needs: storage, secrets, the media-token signer and Teler.
#[derive(Clone, Debug)]
pub struct CallService {
    pub settings: Arc<Settings>,
    pub storage: Storage,
    pub keyring: Arc<Keyring>,
    pub media_tokens: MediaTokens,
    pub teler: TelerClient,
}

impl CallService {
    pub fn new(settings: Arc<Settings>, storage: Storage, keyring: Arc<Keyring>) -> Self {
        Self {
            media_tokens: MediaTokens::new(settings.security.url_signing_key.clone()),
            teler: TelerClient::new(
                settings.frejun.api_base_url.clone(),
                settings.frejun.api_timeout(),
            ),
            settings,
            storage,
            keyring,
        }
    }

    /// The tenant's FreJun URL secret in clear, to put in URLs we hand to FreJun.
    pub fn url_secret(&self, user: &UserRecord) -> Result<SecretString, CredentialProblem> {
        let encrypted = user
            .secrets
            .frejun_url_secret
            .as_ref()
            .ok_or(CredentialProblem::Missing)?;
        self.keyring
            .decrypt(encrypted, &encryption_context(user.id, FREJUN_URL_SECRET))
            .map_err(|_| CredentialProblem::Unreadable)
    }

    /// `path` under the public base URL with the tenant's `key` and, for a call we place, our
    /// call id: the URLs `GET /api/me` shows and the `flow_url` of an outbound call.
    pub fn frejun_url(&self, path: &str, secret: &SecretString, call_id: Option<CallId>) -> Url {
        let mut url = self.settings.public_url(path);
        url.query_pairs_mut().append_pair("key", secret.expose());
        if let Some(call_id) = call_id {
            url.query_pairs_mut().append_pair("call", &call_id.to_hex());
        }
        url
    }
}

/// Why a stored secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialProblem {
    /// The tenant never stored it.
    Missing,
    /// It does not decrypt with the configured master keys.
    Unreadable,
}

/// `now + duration` as a BSON date.
pub(crate) fn after(now: DateTime, duration: Duration) -> DateTime {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(now.timestamp_millis().saturating_add(millis))
}
