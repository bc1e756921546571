//! Tenants ("users") and their encrypted credentials.
//!
//! The tenant *is* the user, so these methods take the tenant's own id; the admin API reaches
//! every tenant, a tenant only itself (the `Tenant` extractor supplies its id).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use bson::{DateTime, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::collections::USERS;
use super::error::to_bson;
use super::pagination::{Cursor, Page, PageRequest, fetch_page};
use super::{Storage, StorageError};
use crate::crypto::TenantSecret;
use crate::crypto::{CryptoError, EncryptedSecret, Keyring, named_secret_context};
use crate::domain::credential::Credential;
use crate::domain::ids::TenantId;
use crate::domain::tenant::{Limits, TenantStatus};
use crate::domain::text_ai::TextProvider;

/// Version of the document layout; bump with a migration when it changes.
pub(crate) const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    #[serde(rename = "_id")]
    pub id: TenantId,
    pub name: String,
    /// Lowercased; unique across the platform.
    pub email: String,
    pub status: TenantStatus,
    pub limits: Limits,
    #[serde(default)]
    pub secrets: UserSecrets,
    /// The tenant's text-AI settings besides its keys, and how its providers last answered.
    #[serde(default)]
    pub text_ai: TenantTextAi,
    /// The tenant's OpenAI-compatible realtime endpoint (`wss://…`), for assistants whose
    /// backend is `openai_compatible_realtime`; its key is `secrets.realtime_api_key`.
    #[serde(default)]
    pub realtime_base_url: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub schema_version: i32,
}

/// Secrets never leave the server: no view type exposes these fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UserSecrets {
    pub openai_api_key: Option<StoredCredential>,
    pub frejun_api_key: Option<StoredCredential>,
    #[serde(default)]
    pub anthropic_api_key: Option<StoredCredential>,
    #[serde(default)]
    pub chat_completions_api_key: Option<StoredCredential>,
    /// The tenant's ElevenLabs key (private ElevenLabs agents).
    #[serde(default)]
    pub elevenlabs_api_key: Option<StoredCredential>,
    /// The key of the tenant's OpenAI-compatible realtime endpoint.
    #[serde(default)]
    pub realtime_api_key: Option<StoredCredential>,
    /// The tenant's FreJun URL secret (`key=` in the flow and status URLs it pastes into
    /// FreJun). Encrypted rather than hashed because `/api/me` shows the URLs.
    pub frejun_url_secret: Option<EncryptedSecret>,
    /// SHA-256 (hex) of the URL secret: finds the tenant a FreJun request's `key` belongs to
    /// with one indexed read. Unique.
    #[serde(default)]
    pub frejun_url_secret_hash: Option<String>,
    /// After a rotation, the hash of the URL secret it replaced, accepted until
    /// `previous_frejun_url_secret_expires_at` so FreJun can be moved over without dropping calls.
    #[serde(default)]
    pub previous_frejun_url_secret_hash: Option<String>,
    #[serde(default)]
    pub previous_frejun_url_secret_expires_at: Option<DateTime>,
    /// Signs requests to the tenant's HTTP tools (`whsec_…`), shown once when made.
    #[serde(default)]
    pub tool_signing_secret: Option<StoredCredential>,
    /// After a rotation, the secret it replaced: requests carry both signatures until
    /// `previous_tool_signing_secret_expires_at`, so the tenant's servers can roll over.
    #[serde(default)]
    pub previous_tool_signing_secret: Option<StoredCredential>,
    #[serde(default)]
    pub previous_tool_signing_secret_expires_at: Option<DateTime>,
    /// The tenant's named secrets that HTTP tool headers (`{{secret.NAME}}`) and MCP servers
    /// reference; names follow the tool-name rule, so they are safe as document keys.
    #[serde(default)]
    pub named: BTreeMap<String, StoredCredential>,
}

/// A tenant's text-AI settings (its keys are in [`UserSecrets`]) and what its providers last
/// did, for `GET /api/ai/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TenantTextAi {
    /// The tenant's OpenAI-compatible Chat Completions server, with its version segment.
    #[serde(default)]
    pub chat_completions_base_url: Option<String>,
    #[serde(default)]
    pub chat_completions_model: Option<String>,
    /// By provider name: the last request's outcome.
    #[serde(default)]
    pub last_calls: BTreeMap<String, ProviderCallRecord>,
    /// The last `?check=true` probe, which is rate-limited across instances through it.
    #[serde(default)]
    pub checked_at: Option<DateTime>,
}

/// How a request to a text provider went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProviderCallRecord {
    pub ok: bool,
    pub at: DateTime,
    pub latency_ms: u64,
    pub model: String,
    /// What asked: `conversation`, `analysis` or `check`.
    pub purpose: String,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A provider key as stored: the encrypted envelope plus its last four characters, which is all
/// any read shows.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredCredential {
    pub key_version: u32,
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    pub last4: String,
    pub updated_at: DateTime,
}

impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("key_version", &self.key_version)
            .field("last4", &self.last4)
            .finish_non_exhaustive()
    }
}

impl StoredCredential {
    pub(crate) fn new(encrypted: EncryptedSecret, last4: String, now: DateTime) -> Self {
        Self {
            key_version: encrypted.key_version,
            nonce: encrypted.nonce,
            ciphertext: encrypted.ciphertext,
            last4,
            updated_at: now,
        }
    }

    pub(crate) fn encrypted(&self) -> EncryptedSecret {
        EncryptedSecret {
            key_version: self.key_version,
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

impl UserSecrets {
    /// Where `credential` is stored; `None` when the tenant has not stored it.
    pub(crate) fn credential(&self, credential: Credential) -> Option<&StoredCredential> {
        match credential {
            Credential::OpenAiApiKey => self.openai_api_key.as_ref(),
            Credential::FrejunApiKey => self.frejun_api_key.as_ref(),
            Credential::AnthropicApiKey => self.anthropic_api_key.as_ref(),
            Credential::ChatCompletionsApiKey => self.chat_completions_api_key.as_ref(),
            Credential::ElevenLabsApiKey => self.elevenlabs_api_key.as_ref(),
            Credential::RealtimeApiKey => self.realtime_api_key.as_ref(),
        }
    }

    /// The field that holds `credential`, to replace what it holds.
    fn credential_mut(&mut self, credential: Credential) -> &mut Option<StoredCredential> {
        match credential {
            Credential::OpenAiApiKey => &mut self.openai_api_key,
            Credential::FrejunApiKey => &mut self.frejun_api_key,
            Credential::AnthropicApiKey => &mut self.anthropic_api_key,
            Credential::ChatCompletionsApiKey => &mut self.chat_completions_api_key,
            Credential::ElevenLabsApiKey => &mut self.elevenlabs_api_key,
            Credential::RealtimeApiKey => &mut self.realtime_api_key,
        }
    }
}

/// Changes to a tenant's profile and limits; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub max_concurrent_calls: Option<u32>,
    pub max_call_seconds: Option<u32>,
}

/// Counts from a master-key rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub tenants: u64,
    pub reencrypted: u64,
    pub already_current: u64,
}

/// A tenant's id alone, for reads that need no more.
#[derive(Debug, Deserialize)]
struct IdOnly {
    #[serde(rename = "_id")]
    id: TenantId,
}

#[derive(Clone, Debug)]
pub struct Users {
    collection: Collection<UserRecord>,
}

impl Storage {
    pub fn users(&self) -> Users {
        Users {
            collection: self.collection(USERS),
        }
    }
}

impl Users {
    pub(crate) async fn insert(&self, user: &UserRecord) -> Result<(), StorageError> {
        self.collection.insert_one(user).await?;
        Ok(())
    }

    pub(crate) async fn get(&self, id: TenantId) -> Result<UserRecord, StorageError> {
        self.collection
            .find_one(doc! { "_id": id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Which of `ids` are suspended, in one read.
    pub(crate) async fn suspended_among(
        &self,
        ids: &[TenantId],
    ) -> Result<HashSet<TenantId>, StorageError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let suspended = to_bson(&TenantStatus::Suspended)?;
        let mut cursor = self
            .collection
            .clone_with_type::<IdOnly>()
            .find(doc! { "_id": { "$in": ids }, "status": suspended })
            .projection(doc! { "_id": 1 })
            .await?;
        let mut found = HashSet::new();
        while let Some(tenant) = cursor.try_next().await? {
            found.insert(tenant.id);
        }
        Ok(found)
    }

    /// The tenant whose FreJun URL secret hashes to `hash` (see [`crate::auth::hash_url_secret`]).
    pub(crate) async fn find_by_url_secret_hash(
        &self,
        hash: &str,
    ) -> Result<Option<UserRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(url_secret_hash_filter(hash))
            .await?)
    }

    /// The tenant whose previous URL secret (still inside its overlap window at `now`) hashes
    /// to `hash`.
    pub(crate) async fn find_by_previous_url_secret_hash(
        &self,
        hash: &str,
        now: DateTime,
    ) -> Result<Option<UserRecord>, StorageError> {
        Ok(self
            .collection
            .find_one(doc! {
                "secrets.previous_frejun_url_secret_hash": { "$eq": hash, "$type": "string" },
                "secrets.previous_frejun_url_secret_expires_at": { "$gt": now },
            })
            .await?)
    }

    /// Replaces the tenant's URL secret, keeping the current one's hash as the previous one
    /// until `previous_until`. Conditional on the current hash, so two rotations at once cannot
    /// both win (the loser gets `Conflict`). Answers the tenant as stored afterwards.
    pub(crate) async fn rotate_url_secret(
        &self,
        user: &UserRecord,
        encrypted: &EncryptedSecret,
        hash: &str,
        previous_until: DateTime,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let current = user.secrets.frejun_url_secret_hash.clone();
        let updated = self
            .collection
            .find_one_and_update(
                doc! { "_id": user.id, "secrets.frejun_url_secret_hash": current.clone() },
                doc! { "$set": {
                    "secrets.frejun_url_secret": bson::to_bson(encrypted).map_err(|err| {
                        StorageError::Unavailable(format!("cannot encode a URL secret: {err}"))
                    })?,
                    "secrets.frejun_url_secret_hash": hash,
                    "secrets.previous_frejun_url_secret_hash": current,
                    "secrets.previous_frejun_url_secret_expires_at": previous_until,
                    "updated_at": now,
                } },
            )
            .return_document(ReturnDocument::After)
            .await?;
        updated.ok_or(StorageError::Conflict)
    }

    /// Stores the lookup hash of every tenant's URL secret that lacks one (tenants created
    /// before the hash existed). Idempotent; run at startup. Answers how many were filled in.
    pub async fn backfill_url_secret_hashes(
        &self,
        keyring: &Keyring,
    ) -> Result<u64, RotationError> {
        let mut filled = 0;
        let mut cursor = self
            .collection
            .find(doc! {
                "secrets.frejun_url_secret": { "$type": "object" },
                "secrets.frejun_url_secret_hash": null,
            })
            .await
            .map_err(StorageError::from)?;
        while let Some(user) = cursor.try_next().await.map_err(StorageError::from)? {
            let Some(encrypted) = &user.secrets.frejun_url_secret else {
                continue;
            };
            let secret = keyring
                .decrypt_tenant_secret(user.id, TenantSecret::FrejunUrlSecret, encrypted)
                .map_err(|source| RotationError::Crypto {
                    user_id: user.id,
                    source,
                })?;
            self.collection
                .update_one(
                    doc! { "_id": user.id, "secrets.frejun_url_secret_hash": null },
                    doc! { "$set": {
                        "secrets.frejun_url_secret_hash": crate::auth::hash_url_secret(secret.expose()),
                    } },
                )
                .await
                .map_err(StorageError::from)?;
            filled += 1;
        }
        Ok(filled)
    }

    pub(crate) async fn list(&self, page: &PageRequest) -> Result<Page<UserRecord>, StorageError> {
        fetch_page(&self.collection, doc! {}, page, |user| Cursor {
            created_at: user.created_at,
            id: user.id.object_id(),
        })
        .await
    }

    pub(crate) async fn update(
        &self,
        id: TenantId,
        update: &UserUpdate,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let mut set = doc! { "updated_at": now };
        if let Some(name) = &update.name {
            set.insert("name", name);
        }
        if let Some(email) = &update.email {
            set.insert("email", email);
        }
        if let Some(max) = update.max_concurrent_calls {
            set.insert("limits.max_concurrent_calls", i64::from(max));
        }
        if let Some(max) = update.max_call_seconds {
            set.insert("limits.max_call_seconds", i64::from(max));
        }
        self.update_one(id, doc! { "$set": set }).await
    }

    pub(crate) async fn set_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let status =
            bson::to_bson(&status).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        self.update_one(id, doc! { "$set": { "status": status, "updated_at": now } })
            .await
    }

    pub(crate) async fn set_credential(
        &self,
        id: TenantId,
        credential: Credential,
        value: &StoredCredential,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let value =
            bson::to_bson(value).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        let field = format!("secrets.{}", credential.name());
        self.update_one(id, doc! { "$set": { field: value, "updated_at": now } })
            .await
    }

    /// Sets (or, with `None`, clears) the tenant's Chat Completions server and model.
    pub(crate) async fn set_chat_completions_endpoint(
        &self,
        id: TenantId,
        base_url: Option<&str>,
        model: Option<&str>,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        self.update_one(
            id,
            doc! { "$set": {
                "text_ai.chat_completions_base_url": base_url,
                "text_ai.chat_completions_model": model,
                "updated_at": now,
            } },
        )
        .await
    }

    /// Sets (or, with `None`, clears) the tenant's OpenAI-compatible realtime endpoint.
    pub(crate) async fn set_realtime_base_url(
        &self,
        id: TenantId,
        base_url: Option<&str>,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        self.update_one(
            id,
            doc! { "$set": { "realtime_base_url": base_url, "updated_at": now } },
        )
        .await
    }

    /// Records how the tenant's last request to `provider` went.
    pub(crate) async fn record_text_ai_call(
        &self,
        id: TenantId,
        provider: TextProvider,
        record: &ProviderCallRecord,
    ) -> Result<(), StorageError> {
        let value =
            bson::to_bson(record).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        let field = format!("text_ai.last_calls.{}", provider.as_str());
        self.collection
            .update_one(doc! { "_id": id }, doc! { "$set": { field: value } })
            .await?;
        Ok(())
    }

    /// Takes the tenant's probe turn: answers `true` (and records `now`) when no probe was made
    /// since `not_before`, on any instance.
    pub(crate) async fn claim_text_ai_check(
        &self,
        id: TenantId,
        now: DateTime,
        not_before: DateTime,
    ) -> Result<bool, StorageError> {
        let result = self
            .collection
            .update_one(
                doc! {
                    "_id": id,
                    "$or": [
                        { "text_ai.checked_at": null },
                        { "text_ai.checked_at": { "$lte": not_before } },
                    ],
                },
                doc! { "$set": { "text_ai.checked_at": now } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Stores (or replaces) the tenant's named secret `name`.
    pub(crate) async fn set_named_secret(
        &self,
        id: TenantId,
        name: &str,
        value: &StoredCredential,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let value =
            bson::to_bson(value).map_err(|err| StorageError::Unavailable(err.to_string()))?;
        self.update_one(
            id,
            doc! { "$set": { format!("secrets.named.{name}"): value, "updated_at": now } },
        )
        .await
    }

    /// Deletes the tenant's named secret `name`; `NotFound` when there is none.
    pub(crate) async fn delete_named_secret(
        &self,
        id: TenantId,
        name: &str,
        now: DateTime,
    ) -> Result<(), StorageError> {
        let field = format!("secrets.named.{name}");
        let result = self
            .collection
            .update_one(
                doc! { "_id": id, field.clone(): { "$exists": true } },
                doc! { "$unset": { field: "" }, "$set": { "updated_at": now } },
            )
            .await?;
        if result.matched_count == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// Replaces the tool signing secret, keeping the current one as the previous one until
    /// `previous_until` (it then still signs, beside the new one).
    pub(crate) async fn rotate_tool_signing_secret(
        &self,
        user: &UserRecord,
        fresh: &StoredCredential,
        previous_until: DateTime,
        now: DateTime,
    ) -> Result<UserRecord, StorageError> {
        let encode = |value: &Option<StoredCredential>| {
            bson::to_bson(value).map_err(|err| StorageError::Unavailable(err.to_string()))
        };
        let current = encode(&user.secrets.tool_signing_secret)?;
        let updated = self
            .collection
            .find_one_and_update(
                // Conditional on the secret read, so two rotations at once cannot both win.
                doc! { "_id": user.id, "secrets.tool_signing_secret": current.clone() },
                doc! { "$set": {
                    "secrets.tool_signing_secret": encode(&Some(fresh.clone()))?,
                    "secrets.previous_tool_signing_secret": current,
                    "secrets.previous_tool_signing_secret_expires_at": previous_until,
                    "updated_at": now,
                } },
            )
            .return_document(ReturnDocument::After)
            .await?;
        updated.ok_or(StorageError::Conflict)
    }

    /// Re-encrypts every stored secret that is not under the keyring's current key. Each
    /// tenant's document is updated only if its secrets are unchanged since they were read, so
    /// a credential written concurrently is never overwritten with an older value.
    pub async fn rotate_secrets(&self, keyring: &Keyring) -> Result<RotationReport, RotationError> {
        let mut report = RotationReport::default();
        let mut cursor = self
            .collection
            .find(doc! {})
            .await
            .map_err(StorageError::from)?;
        while let Some(user) = cursor.try_next().await.map_err(StorageError::from)? {
            report.tenants += 1;
            let mut secrets = user.secrets.clone();
            let mut changed = false;
            for credential in Credential::ALL {
                if let Some(stored) = secrets.credential_mut(credential) {
                    let encrypted = stored.encrypted();
                    if keyring.is_current(&encrypted) {
                        report.already_current += 1;
                        continue;
                    }
                    let fresh = keyring
                        .reencrypt_tenant_secret(user.id, TenantSecret::of(credential), &encrypted)
                        .map_err(|source| RotationError::Crypto {
                            user_id: user.id,
                            source,
                        })?;
                    *stored = StoredCredential::new(fresh, stored.last4.clone(), stored.updated_at);
                    report.reencrypted += 1;
                    changed = true;
                }
            }
            if let Some(url_secret) = &mut secrets.frejun_url_secret {
                if keyring.is_current(url_secret) {
                    report.already_current += 1;
                } else {
                    *url_secret = keyring
                        .reencrypt_tenant_secret(user.id, TenantSecret::FrejunUrlSecret, url_secret)
                        .map_err(|source| RotationError::Crypto {
                            user_id: user.id,
                            source,
                        })?;
                    report.reencrypted += 1;
                    changed = true;
                }
            }
            // The tool signing secrets (`None`) and the named secrets (`Some(name)`).
            let signing = [
                &mut secrets.tool_signing_secret,
                &mut secrets.previous_tool_signing_secret,
            ]
            .into_iter()
            .flatten()
            .map(|stored| (stored, None));
            let named = secrets
                .named
                .iter_mut()
                .map(|(name, stored)| (stored, Some(name.as_str())));
            for (stored, name) in signing.chain(named) {
                let encrypted = stored.encrypted();
                if keyring.is_current(&encrypted) {
                    report.already_current += 1;
                    continue;
                }
                let fresh = match name {
                    None => keyring.reencrypt_tenant_secret(
                        user.id,
                        TenantSecret::ToolSigningSecret,
                        &encrypted,
                    ),
                    Some(name) => {
                        keyring.reencrypt(&encrypted, &named_secret_context(user.id, name))
                    }
                }
                .map_err(|source| RotationError::Crypto {
                    user_id: user.id,
                    source,
                })?;
                *stored = StoredCredential::new(fresh, stored.last4.clone(), stored.updated_at);
                report.reencrypted += 1;
                changed = true;
            }
            if changed {
                let before = bson::to_bson(&user.secrets)
                    .map_err(|err| StorageError::Unavailable(err.to_string()))?;
                let after = bson::to_bson(&secrets)
                    .map_err(|err| StorageError::Unavailable(err.to_string()))?;
                let result = self
                    .collection
                    .update_one(
                        doc! { "_id": user.id, "secrets": before },
                        doc! { "$set": { "secrets": after } },
                    )
                    .await
                    .map_err(StorageError::from)?;
                if result.matched_count == 0 {
                    return Err(RotationError::ChangedConcurrently { user_id: user.id });
                }
            }
        }
        Ok(report)
    }

    async fn update_one(
        &self,
        id: TenantId,
        update: bson::Document,
    ) -> Result<UserRecord, StorageError> {
        self.collection
            .find_one_and_update(doc! { "_id": id }, update)
            .return_document(ReturnDocument::After)
            .await?
            .ok_or(StorageError::NotFound)
    }
}

/// The filter that finds a tenant by the hash of its URL secret; `$type` lets MongoDB use the
/// partial unique index (see `call_logs::frejun_call_id_filter`). Public so that a test can
/// check the plan.
pub fn url_secret_hash_filter(hash: &str) -> bson::Document {
    doc! { "secrets.frejun_url_secret_hash": { "$eq": hash, "$type": "string" } }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("tenant {user_id}: a stored secret does not decrypt with any configured master key")]
    Crypto {
        user_id: TenantId,
        #[source]
        source: CryptoError,
    },
    #[error("tenant {user_id}: credentials changed during the rotation; run it again")]
    ChangedConcurrently { user_id: TenantId },
    #[error("cannot read or write tenants")]
    Storage(#[from] StorageError),
}
