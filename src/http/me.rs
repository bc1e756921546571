//! The tenant's own account: `GET /api/me` and the write-only `PUT /api/me/credentials`
//! (provider keys, and the tenant's own Chat Completions server for text AI).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope};
use super::error::ApiError;
use super::error::credentials_unreadable;
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::Json;
use super::views::{CredentialsView, UserView};
use crate::calls::CredentialProblem;
use crate::crypto::TenantSecret;
use crate::domain::credential::Credential;
use crate::domain::secret::PROVIDER_KEY_MAX_CHARS;
use crate::domain::secret::SecretString;
use crate::domain::validation::ValidationError;
use crate::storage::users::StoredCredential;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/me").route(web::get().to(me)))
        .service(resource("/api/me/credentials").route(web::put().to(put_credentials)))
        .service(
            resource("/api/me/frejun-url-secret/rotate").route(web::post().to(rotate_url_secret)),
        );
}

/// The tenant's account and its FreJun URLs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MeView {
    #[serde(flatten)]
    pub user: UserView,
    pub frejun: FrejunUrls,
}

/// The URLs to paste into the tenant's FreJun app. They carry the tenant's URL secret (`key`),
/// which is how voxbridge knows a FreJun request is for this tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FrejunUrls {
    /// FreJun's "incoming call" URL (`/api/frejun/flow?key=…`).
    #[schema(format = "uri")]
    pub incoming_call_url: String,
    /// FreJun's "status callback" URL (`/api/frejun/webhook?key=…`).
    #[schema(format = "uri")]
    pub status_callback_url: String,
}

/// The calling tenant's account, with the URLs to configure in its FreJun app.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "account",
    operation_id = "get_me",
    summary = "The calling tenant",
    responses(
        (status = 200, description = "The tenant", body = Envelope<MeView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 500, description = "The stored URL secret cannot be decrypted with the configured master key (`credentials_unreadable`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn me(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user = &tenant.user;
    let secret = state
        .calls
        .url_secret(user)
        .map_err(|problem| match problem {
            CredentialProblem::Missing => {
                ApiError::internal(format!("tenant {} has no FreJun URL secret", user.id))
            }
            CredentialProblem::Unreadable => credentials_unreadable(format!(
                "tenant {}: the FreJun URL secret does not decrypt with the configured master keys",
                user.id
            )),
        })?;
    Ok(envelope::ok(MeView {
        user: UserView::from(user),
        frejun: FrejunUrls::with_secret(&state, &secret),
    }))
}

impl FrejunUrls {
    fn with_secret(state: &AppState, secret: &SecretString) -> Self {
        let url = |path: &str| state.calls.frejun_url(path, secret, None).to_string();
        Self {
            incoming_call_url: url("api/frejun/flow"),
            status_callback_url: url("api/frejun/webhook"),
        }
    }
}

/// The answer to a URL-secret rotation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RotatedUrlSecret {
    /// The new URLs: put them in the tenant's FreJun app now.
    pub frejun: FrejunUrls,
    /// Until when the previous URLs keep working (`frejun.url_secret_overlap_secs` from now).
    pub previous_urls_valid_until: DateTime<Utc>,
}

/// Replaces the tenant's FreJun URL secret. The previous URLs keep working until
/// `previous_urls_valid_until`, so FreJun's app can be updated without refusing calls; a second
/// rotation ends the first one's overlap.
#[utoipa::path(
    post,
    path = "/api/me/frejun-url-secret/rotate",
    tag = "account",
    operation_id = "rotate_frejun_url_secret",
    summary = "Rotate the FreJun URL secret",
    responses(
        (status = 200, description = "The new URLs and the end of the old ones' overlap", body = Envelope<RotatedUrlSecret>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 409, description = "Another rotation changed the secret at the same moment (`conflict`); try again", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn rotate_url_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (secret, previous_until) = state.calls.rotate_url_secret(&tenant.user).await?;
    tracing::info!(tenant_id = %tenant.id(), "FreJun URL secret rotated");
    Ok(envelope::ok(RotatedUrlSecret {
        frejun: FrejunUrls::with_secret(&state, &secret),
        previous_urls_valid_until: previous_until.to_chrono(),
    }))
}

/// Provider keys to store (encrypted), and the tenant's own Chat Completions server. Give at
/// least one field; an absent one is kept. Keys are write-only: they are never returned, only
/// whether each is set and its last four characters.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutCredentialsRequest {
    /// The tenant's OpenAI API key: 8 to 512 characters, no spaces or control characters.
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub openai_api_key: Option<SecretString>,
    /// The tenant's FreJun API key: 8 to 512 characters, no spaces or control characters.
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub frejun_api_key: Option<SecretString>,
    /// The tenant's Anthropic API key (text AI): 8 to 512 characters.
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub anthropic_api_key: Option<SecretString>,
    /// The key of the tenant's OpenAI-compatible Chat Completions server (text AI): 8 to 512
    /// characters (servers that ignore keys take any value).
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub chat_completions_api_key: Option<SecretString>,
    /// The tenant's ElevenLabs API key (`xi-api-key`), needed for private ElevenLabs agents:
    /// 8 to 512 characters.
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub elevenlabs_api_key: Option<SecretString>,
    /// The key of the tenant's OpenAI-compatible realtime endpoint: 8 to 512 characters.
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 512)]
    pub realtime_api_key: Option<SecretString>,
    /// The tenant's OpenAI-compatible realtime endpoint, for assistants whose backend is
    /// `openai_compatible_realtime` (`wss://my-resource.openai.azure.com/openai/v1/realtime`);
    /// `wss` and a public address, like tools' URLs; `model=` is added per call. `null` removes
    /// it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, max_length = 2_048)]
    pub realtime_base_url: Option<Option<String>>,
    /// The tenant's OpenAI-compatible Chat Completions server, with its version segment
    /// (`https://openrouter.ai/api/v1`, `https://my-vllm.example.com/v1`); `https` and a
    /// public address, like tools' URLs. `null` removes it (with its model).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, max_length = 2_048)]
    pub chat_completions_base_url: Option<Option<String>>,
    /// The model on that server, used when a request names none.
    #[schema(max_length = 200)]
    pub chat_completions_model: Option<String>,
}

/// `null` → `Some(None)`, absent → `None` (with `#[serde(default)]`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The credentials' status after the update.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialsAnswer {
    pub credentials: CredentialsView,
}

/// Stores the tenant's provider keys, encrypted at rest.
#[utoipa::path(
    put,
    path = "/api/me/credentials",
    tag = "account",
    operation_id = "put_credentials",
    summary = "Store provider keys",
    request_body = PutCredentialsRequest,
    responses(
        (status = 200, description = "Whether each key is now set", body = Envelope<CredentialsAnswer>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn put_credentials(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: Json<PutCredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let endpoint = chat_completions_endpoint(&state, &body)?;
    let given: Vec<(Credential, SecretString)> = [
        (Credential::OpenAiApiKey, body.openai_api_key),
        (Credential::FrejunApiKey, body.frejun_api_key),
        (Credential::AnthropicApiKey, body.anthropic_api_key),
        (
            Credential::ChatCompletionsApiKey,
            body.chat_completions_api_key,
        ),
        (Credential::ElevenLabsApiKey, body.elevenlabs_api_key),
        (Credential::RealtimeApiKey, body.realtime_api_key),
    ]
    .into_iter()
    .filter_map(|(credential, value)| value.map(|value| (credential, value)))
    .collect();
    let realtime_url = realtime_base_url(&state, &body.realtime_base_url)?;
    if given.is_empty() && endpoint.is_none() && realtime_url.is_none() {
        return Err(ValidationError::new(
            "openai_api_key",
            "give at least one of openai_api_key, frejun_api_key, anthropic_api_key, \
             chat_completions_api_key, elevenlabs_api_key, realtime_api_key, \
             chat_completions_base_url, realtime_base_url",
        )
        .into());
    }
    for (credential, value) in &given {
        check_credential(credential.name(), value.expose())?;
    }

    let mut user = tenant.user;
    if let Some((base_url, model)) = endpoint {
        user = state
            .shared
            .storage
            .users()
            .set_chat_completions_endpoint(
                user.id,
                base_url.as_deref(),
                model.as_deref(),
                bson::DateTime::now(),
            )
            .await?;
        tracing::info!(user_id = %user.id, "chat completions endpoint stored");
    }
    if let Some(base_url) = realtime_url {
        user = state
            .shared
            .storage
            .users()
            .set_realtime_base_url(user.id, base_url.as_deref(), bson::DateTime::now())
            .await?;
        tracing::info!(user_id = %user.id, "realtime endpoint stored");
    }
    for (credential, value) in given {
        let plain = value.expose();
        let encrypted = state.shared.keyring.encrypt_tenant_secret(
            user.id,
            TenantSecret::of(credential),
            plain,
        );
        let last4 = crate::domain::secret::last4(plain);
        let now = bson::DateTime::now();
        let stored = StoredCredential::new(encrypted, last4, now);
        user = state
            .shared
            .storage
            .users()
            .set_credential(user.id, credential, &stored, now)
            .await?;
        tracing::info!(user_id = %user.id, credential = credential.name(), "credential stored");
    }
    Ok(envelope::ok(CredentialsAnswer {
        credentials: CredentialsView::of(&user),
    }))
}

/// The Chat Completions base URL and model to store, checked: `None` when the body changes
/// neither, `Some((None, None))` to remove them.
#[allow(clippy::type_complexity)]
fn chat_completions_endpoint(
    state: &AppState,
    body: &PutCredentialsRequest,
) -> Result<Option<(Option<String>, Option<String>)>, ApiError> {
    if let Some(model) = &body.chat_completions_model {
        crate::domain::text_ai::check_text_model("chat_completions_model", model)?;
    }
    match (
        &body.chat_completions_base_url,
        &body.chat_completions_model,
    ) {
        (None, None) => Ok(None),
        (Some(None), _) => Ok(Some((None, None))),
        (None, Some(_)) => Err(ValidationError::new(
            "chat_completions_model",
            "give it with chat_completions_base_url",
        )
        .into()),
        (Some(Some(text)), model) => {
            const FIELD: &str = "chat_completions_base_url";
            if text.chars().count() > 2_048 {
                return Err(ValidationError::new(FIELD, "must be at most 2048 characters").into());
            }
            let url = url::Url::parse(text)
                .map_err(|_| ValidationError::new(FIELD, "must be an absolute URL"))?;
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(ValidationError::new(
                    FIELD,
                    "must not carry a query, a fragment or credentials (the key goes in chat_completions_api_key)",
                )
                .into());
            }
            state
                .shared
                .outbound
                .allow
                .check_url(&url)
                .map_err(|refusal| ValidationError::new(FIELD, refusal.to_string()))?;
            Ok(Some((
                Some(url.as_str().trim_end_matches('/').to_owned()),
                model.clone(),
            )))
        }
    }
}

/// The realtime endpoint to store, checked: `None` when the body does not change it,
/// `Some(None)` to remove it.
fn realtime_base_url(
    state: &AppState,
    given: &Option<Option<String>>,
) -> Result<Option<Option<String>>, ApiError> {
    const FIELD: &str = "realtime_base_url";
    let text = match given {
        None => return Ok(None),
        Some(None) => return Ok(Some(None)),
        Some(Some(text)) => text,
    };
    if text.chars().count() > 2_048 {
        return Err(ValidationError::new(FIELD, "must be at most 2048 characters").into());
    }
    let url = url::Url::parse(text)
        .map_err(|_| ValidationError::new(FIELD, "must be an absolute URL"))?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::new(
            FIELD,
            "must not carry a fragment or credentials (the key goes in realtime_api_key)",
        )
        .into());
    }
    state
        .shared
        .outbound
        .allow
        .check_websocket_url(&url)
        .map_err(|refusal| ValidationError::new(FIELD, refusal.to_string()))?;
    Ok(Some(Some(url.to_string())))
}

fn check_credential(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() < 8 || value.chars().count() > PROVIDER_KEY_MAX_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be 8 to {PROVIDER_KEY_MAX_CHARS} characters"),
        ));
    }
    // Provider keys are printable ASCII: anything else is a paste gone wrong (or an attempt to
    // smuggle bytes into the headers the key is sent in).
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            "must be printable ASCII, without spaces or control characters",
        ));
    }
    Ok(())
}
