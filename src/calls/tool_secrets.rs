//! The tenant's secrets for its tools: named secrets that HTTP tool headers and MCP servers
//! reference (`{{secret.NAME}}`), and the Standard Webhooks secret that signs requests to its
//! HTTP tools. All are encrypted at rest, bound to the tenant and the name, and never returned:
//! a read shows names and last four characters; the signing secret is shown once, when made.

use std::collections::HashMap;
use std::time::Duration;

use bson::DateTime;

use super::CallService;
use crate::crypto::{CryptoError, EncryptedSecret, TenantSecret, named_secret_context};
use crate::domain::assistant::AssistantSpec;
use crate::domain::assistant::tools::Tool;
use crate::domain::secret::{SecretString, last4};
use crate::domain::time::after;
use crate::domain::validation::ValidationError;
use crate::outbound::signing::Signer;
use crate::outbound::signing::SigningSecret;
use crate::storage::StorageError;
use crate::storage::users::{StoredCredential, UserRecord};

/// Most named secrets one tenant may store.
pub const MAX_NAMED_SECRETS: usize = 50;

/// Why an assistant's tools do not fit the tenant's account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ToolsProblem {
    /// A referenced secret is not stored, or a URL is one the operator's policy refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An `http` tool, and the tenant has no tool signing secret.
    #[error(
        "requests to HTTP tools are signed: make the tool signing secret first with POST /api/me/tool-signing-secret/rotate"
    )]
    SigningSecretRequired,
}

impl CallService {
    /// Checks an assistant's tools against the tenant's account: every referenced secret is
    /// stored, every HTTP tool's URL is one the operator's policy lets us reach, and the tenant
    /// can sign its requests.
    pub(crate) fn check_tools(
        &self,
        tenant: &UserRecord,
        spec: &AssistantSpec,
    ) -> Result<(), ToolsProblem> {
        for (index, tool) in spec.tools.iter().enumerate() {
            for name in tool.secret_names() {
                if !tenant.secrets.named.contains_key(name) {
                    let field = match tool {
                        Tool::Mcp(_) => format!("tools[{index}].authorization_secret"),
                        _ => format!("tools[{index}].headers"),
                    };
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "references the secret '{name}', which is not stored \
                             (PUT /api/me/secrets/{name})"
                        ),
                    )
                    .into());
                }
            }
            if let Tool::Http(http) = tool {
                let field = format!("tools[{index}].url");
                let url = url::Url::parse(&http.url)
                    .map_err(|_| ValidationError::new(&field, "is invalid"))?;
                if let Err(refusal) = self.shared.outbound.allow.check_url(&url) {
                    return Err(ValidationError::new(field, refusal.to_string()).into());
                }
                if tenant.secrets.tool_signing_secret.is_none() {
                    return Err(ToolsProblem::SigningSecretRequired);
                }
            }
        }
        Ok(())
    }

    /// Stores (or replaces) the tenant's named secret `name` (already validated).
    pub(crate) async fn store_named_secret(
        &self,
        tenant: &UserRecord,
        name: &str,
        value: &SecretString,
    ) -> Result<UserRecord, StorageError> {
        let encrypted = self
            .shared
            .keyring
            .encrypt(value.expose(), &named_secret_context(tenant.id, name));
        let now = DateTime::now();
        let stored = StoredCredential::new(encrypted, last4(value.expose()), now);
        self.shared
            .storage
            .users()
            .set_named_secret(tenant.id, name, &stored, now)
            .await
    }

    /// The tenant's named secrets among `names` that are stored and decrypt; a missing or
    /// unreadable one is left out (the tool then reports `missing_secret`).
    pub(crate) fn named_secrets<'a>(
        &self,
        tenant: &UserRecord,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, SecretString> {
        let mut found = HashMap::new();
        for name in names {
            let Some(stored) = tenant.secrets.named.get(name) else {
                continue;
            };
            match self
                .shared
                .keyring
                .decrypt(&stored.encrypted(), &named_secret_context(tenant.id, name))
            {
                Ok(value) => {
                    found.insert(name.to_owned(), value);
                }
                Err(_) => tracing::warn!(
                    tenant_id = %tenant.id,
                    secret = name,
                    "a stored tool secret does not decrypt with the configured master keys"
                ),
            }
        }
        found
    }

    /// The secrets that sign the tenant's tool requests now: the current one, and the previous
    /// one while its overlap lasts. `None` when the tenant has never made one.
    pub(crate) fn tool_signer(&self, tenant: &UserRecord) -> Option<Signer> {
        let secrets = &tenant.secrets;
        self.signer(
            |encrypted| {
                self.shared.keyring.decrypt_tenant_secret(
                    tenant.id,
                    TenantSecret::ToolSigningSecret,
                    encrypted,
                )
            },
            secrets.tool_signing_secret.as_ref()?,
            secrets.previous_tool_signing_secret.as_ref(),
            secrets.previous_tool_signing_secret_expires_at,
        )
    }

    /// The secrets that sign now: `current`, and `previous` while `previous_until` is ahead
    /// (a rotation's overlap). `None` when `current` does not decrypt with `decrypt` (the
    /// keyring bound to the secret's owner and purpose).
    pub(super) fn signer(
        &self,
        decrypt: impl Fn(&EncryptedSecret) -> Result<SecretString, CryptoError>,
        current: &StoredCredential,
        previous: Option<&StoredCredential>,
        previous_until: Option<DateTime>,
    ) -> Option<Signer> {
        let decrypt = |stored: &StoredCredential| {
            let text = decrypt(&stored.encrypted()).ok()?;
            SigningSecret::parse(text.expose()).ok()
        };
        let mut secrets = vec![decrypt(current)?];
        let overlapping = previous_until.is_some_and(|until| until > DateTime::now());
        if let Some(previous) = previous.filter(|_| overlapping).and_then(decrypt) {
            secrets.push(previous);
        }
        Some(Signer { secrets })
    }

    /// Makes a new tool signing secret; the old one (if any) keeps signing for
    /// `tools.signing_secret_overlap_secs`. Answers the new secret, to show once, and when the
    /// old one stops.
    pub(crate) async fn rotate_tool_signing_secret(
        &self,
        tenant: &UserRecord,
    ) -> Result<(SigningSecret, Option<DateTime>), StorageError> {
        let secret = SigningSecret::generate();
        let encrypted = self.shared.keyring.encrypt_tenant_secret(
            tenant.id,
            TenantSecret::ToolSigningSecret,
            secret.expose(),
        );
        let now = DateTime::now();
        let overlap = Duration::from_secs(self.shared.settings.tools.signing_secret_overlap_secs);
        let previous_until = after(now, overlap);
        let stored = StoredCredential::new(encrypted, last4(secret.expose()), now);
        self.shared
            .storage
            .users()
            .rotate_tool_signing_secret(tenant, &stored, previous_until, now)
            .await?;
        let had_one = tenant.secrets.tool_signing_secret.is_some();
        Ok((secret, had_one.then_some(previous_until)))
    }
}
