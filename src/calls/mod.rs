//! The call control plane: deciding what FreJun should do with a call, placing outbound calls,
//! applying status webhooks, and closing calls whose slot lease ran out.
//!
//! Layout:
//! - [`call_view`]: a call as the API and the `call.ended` event show it.
//! - [`tenant_key`]: finding the tenant a FreJun request's `key` belongs to.
//! - [`flow`]: the answer to FreJun's flow request, inbound and outbound.
//! - [`webhook`]: status webhooks merged into call logs.
//! - [`outbound`]: placing calls through Teler, and the tenant's hang-up request.
//! - [`hangup`]: hanging up at FreJun the calls voxbridge ends itself, recorded on the call log.
//! - [`reaper`]: the background task that closes calls whose slot lease expired.
//! - [`recordings`]: a fresh signed URL of a call's recording from FreJun.
//! - [`transfer`]: cold transfers of a live call through Teler (the tenant's, and the
//!   assistant's `transfer_call` tool).
//! - [`tool_secrets`]: the tenant's named secrets for tools and the secret that signs requests
//!   to its HTTP tools.
//! - [`webhook_endpoints`]: the tenant's webhook endpoints, their signing secrets and a test
//!   `ping`.
//! - [`text_ai`]: a tenant's text providers (its keys, else the platform's), requests with
//!   their outcome recorded, and the rate-limited probe.
//! - [`analysis`]: post-call analysis: queued when a call ends, run by a leased worker on any
//!   instance, stored with its `call.analyzed` event; re-run on request.
//! - [`webhook_delivery`]: events from call logs' outboxes to deliveries, and the worker that
//!   delivers and retries them.
//!
//! Everything here is independent of HTTP: handlers in `http::frejun` parse requests, call into
//! [`CallService`] and turn its outcomes into responses.

pub(crate) mod analysis;
pub mod call_view;
pub(crate) mod flow;
pub mod hangup;
pub(crate) mod outbound;
pub(crate) mod reaper;
pub(crate) mod recordings;
pub(crate) mod tenant_key;
pub(crate) mod text_ai;
pub(crate) mod tool_secrets;
pub(crate) mod transfer;
pub(crate) mod webhook;
pub(crate) mod webhook_delivery;
pub(crate) mod webhook_endpoints;

use std::sync::Arc;

use url::Url;

use crate::crypto::{Keyring, TenantSecret};
use crate::domain::credential::Credential;
use crate::domain::ids::CallId;
use crate::domain::secret::SecretString;
use crate::providers::teler::TelerClient;
use crate::shared::Shared;
use crate::storage::users::UserRecord;

/// What the control plane needs: what the service shares (storage, secrets, the media-token
/// signer) and Teler.
#[derive(Clone, Debug)]
pub struct CallService {
    pub shared: Arc<Shared>,
    pub teler: TelerClient,
    /// For the text providers the operator configured (tenants' own base URLs go through
    /// the SSRF-safe `shared.outbound` client instead).
    pub text_http: reqwest::Client,
    /// Conversation requests under way, per tenant (`text_ai.max_concurrent_per_tenant`).
    pub(crate) text_gate: text_ai::TenantGate,
}

impl CallService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            teler: TelerClient::new(
                shared.settings.frejun.api_base_url.clone(),
                shared.settings.frejun.api_timeout(),
            ),
            text_http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("a client without TLS customisation builds"),
            text_gate: text_ai::TenantGate::default(),
            shared,
        }
    }

    /// What hangs up at FreJun the calls voxbridge ends (the bridge holds one too).
    pub fn hangups(&self) -> hangup::FrejunHangup {
        hangup::FrejunHangup::new(self.shared.clone(), self.teler.clone())
    }

    /// The tenant's FreJun URL secret in clear, to put in URLs we hand to FreJun.
    pub(crate) fn url_secret(&self, user: &UserRecord) -> Result<SecretString, CredentialProblem> {
        let encrypted = user
            .secrets
            .frejun_url_secret
            .as_ref()
            .ok_or(CredentialProblem::Missing)?;
        self.shared
            .keyring
            .decrypt_tenant_secret(user.id, TenantSecret::FrejunUrlSecret, encrypted)
            .map_err(|_| CredentialProblem::Unreadable)
    }

    /// `path` under the public base URL with the tenant's `key` and, for a call we place, our
    /// call id: the URLs `GET /api/me` shows and the `flow_url` of an outbound call.
    pub(crate) fn frejun_url(
        &self,
        path: &str,
        secret: &SecretString,
        call_id: Option<CallId>,
    ) -> Url {
        let mut url = self.shared.settings.public_url(path);
        url.query_pairs_mut().append_pair("key", secret.expose());
        if let Some(call_id) = call_id {
            url.query_pairs_mut().append_pair("call", &call_id.to_hex());
        }
        url
    }
}

/// A provider key of the tenant, decrypted, or why it cannot be: the one place a stored
/// credential is looked up and decrypted (the control plane, the bridge's admission and
/// FreJun hang-ups all come here).
pub(crate) fn decrypt_credential(
    keyring: &Keyring,
    tenant: &UserRecord,
    credential: Credential,
) -> Result<SecretString, CredentialProblem> {
    let stored = tenant
        .secrets
        .credential(credential)
        .ok_or(CredentialProblem::Missing)?;
    keyring
        .decrypt_tenant_secret(tenant.id, TenantSecret::of(credential), &stored.encrypted())
        .map_err(|_| CredentialProblem::Unreadable)
}

/// Why a stored secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialProblem {
    /// The tenant never stored it.
    Missing,
    /// It does not decrypt with the configured master keys.
    Unreadable,
}
