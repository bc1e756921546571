//! What the API returns for stored records. Views are separate from storage records so that no
//! secret, hash or internal field can reach a response by accident: a view lists exactly what is
//! shown. Ids are strings; times are RFC 3339 in UTC.

mod assistant;
mod call;
mod phone_number;

pub use assistant::AssistantView;
pub(crate) use call::TelerInitiatedView;
pub use call::{CallDetail, CallStatusView, CallSummary, LiveStreamView, StatsView};
pub use phone_number::PhoneNumberView;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::credential::Credential;
use crate::domain::tenant::{Limits, TenantStatus};
use crate::storage::api_keys::ApiKeyRecord;
use crate::storage::users::UserRecord;

pub(crate) fn time(value: bson::DateTime) -> DateTime<Utc> {
    value.to_chrono()
}

/// An id as the API shows it: 24 hexadecimal digits.
pub(crate) fn id(value: impl fmt::Display) -> String {
    value.to_string()
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    /// The tenant's id (24 hex digits).
    pub id: String,
    pub name: String,
    pub email: String,
    pub status: TenantStatus,
    pub limits: Limits,
    pub credentials: CredentialsView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether each provider key is set, and its last four characters: never more.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialsView {
    pub openai_api_key: CredentialStatus,
    pub frejun_api_key: CredentialStatus,
    pub anthropic_api_key: CredentialStatus,
    pub chat_completions_api_key: CredentialStatus,
    pub elevenlabs_api_key: CredentialStatus,
    pub realtime_api_key: CredentialStatus,
    /// The tenant's OpenAI-compatible realtime endpoint (not a secret); `null`: none.
    pub realtime_base_url: Option<String>,
    /// The tenant's OpenAI-compatible Chat Completions server (not a secret); `null`: none.
    pub chat_completions_base_url: Option<String>,
    pub chat_completions_model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialStatus {
    /// Whether the key is stored.
    pub set: bool,
    /// The key's last four characters; `null` when not set.
    pub last4: Option<String>,
    /// When the key was last stored; `null` when not set.
    pub updated_at: Option<DateTime<Utc>>,
}

impl CredentialsView {
    pub(crate) fn of(user: &UserRecord) -> Self {
        let status = |credential: Credential| {
            let stored = user.secrets.credential(credential);
            CredentialStatus {
                set: stored.is_some(),
                last4: stored.map(|stored| stored.last4.clone()),
                updated_at: stored.map(|stored| time(stored.updated_at)),
            }
        };
        Self {
            openai_api_key: status(Credential::OpenAiApiKey),
            frejun_api_key: status(Credential::FrejunApiKey),
            anthropic_api_key: status(Credential::AnthropicApiKey),
            chat_completions_api_key: status(Credential::ChatCompletionsApiKey),
            elevenlabs_api_key: status(Credential::ElevenLabsApiKey),
            realtime_api_key: status(Credential::RealtimeApiKey),
            realtime_base_url: user.realtime_base_url.clone(),
            chat_completions_base_url: user.text_ai.chat_completions_base_url.clone(),
            chat_completions_model: user.text_ai.chat_completions_model.clone(),
        }
    }
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: id(user.id),
            name: user.name.clone(),
            email: user.email.clone(),
            status: user.status,
            limits: user.limits.clone(),
            credentials: CredentialsView::of(user),
            created_at: time(user.created_at),
            updated_at: time(user.updated_at),
        }
    }
}

/// A tenant API key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    pub id: String,
    /// The tenant the key belongs to.
    pub user_id: String,
    /// The visible start of the key, to tell keys apart.
    pub prefix: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Last use, to within a minute; `null` if never used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked; a revoked key is refused with 401 `api_key_revoked`.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(key: &ApiKeyRecord) -> Self {
        Self {
            id: id(key.id),
            user_id: id(key.user_id),
            prefix: key.prefix.clone(),
            name: key.name.clone(),
            created_at: time(key.created_at),
            last_used_at: key.last_used_at.map(time),
            revoked_at: key.revoked_at.map(time),
        }
    }
}

/// The answer to a successful delete.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    /// The id of the deleted record.
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

impl Deleted {
    pub(crate) fn of(value: impl fmt::Display) -> Self {
        Self {
            id: id(value),
            deleted: true,
        }
    }
}
