//! The admin API (admin token): tenants, their API keys, and call logs across tenants.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::ErrorCode;
use super::error::{
    AdminUnauthorized, DatabaseUnavailable, InvalidBody, InvalidJson, InvalidQuery,
    PayloadTooLarge, UnsupportedMediaType,
};
use super::error::{ApiError, not_found_as};
use super::extract::ListQuery;
use super::extract::parse_id;
use super::extract::{Json, Query};
use super::views::{ApiKeyView, UserView};
use crate::auth::{generate_api_key, hash_url_secret, random_url_secret};
use crate::crypto::TenantSecret;
use crate::domain::email::Email;
use crate::domain::ids::ApiKeyId;
use crate::domain::ids::TenantId;
use crate::domain::tenant::{Limits, TenantStatus, validate_api_key_name, validate_tenant_name};
use crate::storage::api_keys::{self, ApiKeyRecord};
use crate::storage::users::{self, UserRecord, UserSecrets, UserUpdate};
use crate::storage::{Storage, StorageError};

/// Name of the key created with a tenant.
const FIRST_KEY_NAME: &str = "default";
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/api/admin/users")
            .route(web::post().to(create_user))
            .route(web::get().to(list_users)),
    )
    .service(
        resource("/api/admin/users/{user_id}")
            .route(web::get().to(get_user))
            .route(web::patch().to(update_user)),
    )
    .service(resource("/api/admin/users/{user_id}/suspend").route(web::post().to(suspend_user)))
    .service(
        resource("/api/admin/users/{user_id}/reactivate").route(web::post().to(reactivate_user)),
    )
    .service(
        resource("/api/admin/users/{user_id}/api-keys")
            .route(web::post().to(create_api_key))
            .route(web::get().to(list_api_keys)),
    )
    .service(
        resource("/api/admin/users/{user_id}/api-keys/{key_id}")
            .route(web::delete().to(revoke_api_key)),
    );
}

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    /// 1 to 200 characters; trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Unique across tenants; trimmed and lowercased.
    #[schema(format = "email")]
    pub email: String,
    /// Default 10.
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_concurrent_calls: Option<u32>,
    /// Default 3600.
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_call_seconds: Option<u32>,
}

/// The created tenant and its first API key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    /// The tenant's first API key. Shown once: only its hash is stored.
    pub api_key: String,
    pub api_key_id: String,
}

/// Creates a tenant with a first API key (named `default`), shown once in the answer.
#[utoipa::path(
    post,
    path = "/api/admin/users",
    tag = "admin",
    operation_id = "create_user",
    summary = "Create a tenant",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The tenant, with its first API key", body = Envelope<CreatedUser>),
        (status = 400, response = InvalidJson),
        (status = 401, response = AdminUnauthorized),
        (status = 409, description = "A tenant with this email already exists (`email_taken`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn create_user(
    _: Admin,
    state: web::Data<AppState>,
    body: Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let name = validate_tenant_name(&body.name)?;
    let email = Email::parse(&body.email)?;
    let defaults = Limits::default();
    let limits = Limits {
        max_concurrent_calls: body
            .max_concurrent_calls
            .unwrap_or(defaults.max_concurrent_calls),
        max_call_seconds: body.max_call_seconds.unwrap_or(defaults.max_call_seconds),
        monthly_budget_usd: None,
    };
    limits.validate()?;

    let now = bson::DateTime::now();
    let id = TenantId::new();
    let url_secret = random_url_secret();
    let user = UserRecord {
        id,
        name,
        email: email.as_str().to_owned(),
        status: TenantStatus::Active,
        limits,
        secrets: UserSecrets {
            frejun_url_secret: Some(state.shared.keyring.encrypt_tenant_secret(
                id,
                TenantSecret::FrejunUrlSecret,
                url_secret.expose(),
            )),
            frejun_url_secret_hash: Some(hash_url_secret(url_secret.expose())),
            ..UserSecrets::default()
        },
        text_ai: Default::default(),
        realtime_base_url: None,
        created_at: now,
        updated_at: now,
        schema_version: users::SCHEMA_VERSION,
    };
    state
        .shared
        .storage
        .users()
        .insert(&user)
        .await
        .map_err(email_conflict)?;
    let (key, secret) = issue_api_key(&state.shared.storage, id, FIRST_KEY_NAME).await?;
    tracing::info!(user_id = %id, "tenant created");
    Ok(envelope::created(CreatedUser {
        user: UserView::from(&user),
        api_key: secret,
        api_key_id: key.id.to_hex(),
    }))
}

fn email_conflict(err: StorageError) -> ApiError {
    match err {
        StorageError::Conflict => ApiError::new(
            ErrorCode::EmailTaken,
            "a tenant with this email already exists",
        ),
        other => other.into(),
    }
}

/// Creates and stores a key; returns the record and the secret (to show once).
async fn issue_api_key(
    storage: &Storage,
    user_id: TenantId,
    name: &str,
) -> Result<(ApiKeyRecord, String), ApiError> {
    let generated = generate_api_key();
    let key = ApiKeyRecord {
        id: ApiKeyId::new(),
        user_id,
        prefix: generated.prefix,
        key_hash: generated.hash,
        name: name.to_owned(),
        created_at: bson::DateTime::now(),
        last_used_at: None,
        revoked_at: None,
        schema_version: api_keys::SCHEMA_VERSION,
    };
    storage.api_keys().insert(&key).await?;
    Ok((key, generated.secret.expose().to_owned()))
}

/// Lists tenants, newest first.
#[utoipa::path(
    get,
    path = "/api/admin/users",
    tag = "admin",
    operation_id = "list_users",
    summary = "List tenants",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tenants", body = ListEnvelope<UserView>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = AdminUnauthorized),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn list_users(
    _: Admin,
    state: web::Data<AppState>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .shared
        .storage
        .users()
        .list(&query.into_inner()?.page()?)
        .await?;
    let page = page.map(|user| UserView::from(&user));
    Ok(envelope::list(page.items, page.next_cursor))
}

#[utoipa::path(
    get,
    path = "/api/admin/users/{user_id}",
    tag = "admin",
    operation_id = "get_user",
    summary = "Get a tenant",
    params(("user_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The tenant", body = Envelope<UserView>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn get_user(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "user")?;
    let user = state
        .shared
        .storage
        .users()
        .get(id)
        .await
        .map_err(not_found_as("user"))?;
    Ok(envelope::ok(UserView::from(&user)))
}

/// Changes to a tenant; absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    /// 1 to 200 characters; trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Unique across tenants; trimmed and lowercased.
    #[schema(format = "email")]
    pub email: Option<String>,
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_concurrent_calls: Option<u32>,
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_call_seconds: Option<u32>,
}

#[utoipa::path(
    patch,
    path = "/api/admin/users/{user_id}",
    tag = "admin",
    operation_id = "update_user",
    summary = "Update a tenant",
    params(("user_id" = String, Path, description = "The tenant's id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The updated tenant", body = Envelope<UserView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "Another tenant has this email (`email_taken`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn update_user(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "user")?;
    let body = body.into_inner()?;
    let current = state
        .shared
        .storage
        .users()
        .get(id)
        .await
        .map_err(not_found_as("user"))?;
    let update = UserUpdate {
        name: body.name.as_deref().map(validate_tenant_name).transpose()?,
        email: body
            .email
            .as_deref()
            .map(|email| Email::parse(email).map(|email| email.as_str().to_owned()))
            .transpose()?,
        max_concurrent_calls: body.max_concurrent_calls,
        max_call_seconds: body.max_call_seconds,
    };
    Limits {
        max_concurrent_calls: update
            .max_concurrent_calls
            .unwrap_or(current.limits.max_concurrent_calls),
        max_call_seconds: update
            .max_call_seconds
            .unwrap_or(current.limits.max_call_seconds),
        monthly_budget_usd: current.limits.monthly_budget_usd,
    }
    .validate()?;
    let user = state
        .shared
        .storage
        .users()
        .update(id, &update, bson::DateTime::now())
        .await
        .map_err(|err| match err {
            StorageError::Conflict => email_conflict(err),
            other => not_found_as("user")(other),
        })?;
    Ok(envelope::ok(UserView::from(&user)))
}

/// Suspends a tenant: its API keys are refused (403) and its inbound calls rejected; its data is
/// kept.
#[utoipa::path(
    post,
    path = "/api/admin/users/{user_id}/suspend",
    tag = "admin",
    operation_id = "suspend_user",
    summary = "Suspend a tenant",
    params(("user_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The suspended tenant", body = Envelope<UserView>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn suspend_user(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &path, TenantStatus::Suspended).await
}

#[utoipa::path(
    post,
    path = "/api/admin/users/{user_id}/reactivate",
    tag = "admin",
    operation_id = "reactivate_user",
    summary = "Reactivate a suspended tenant",
    params(("user_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The active tenant", body = Envelope<UserView>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn reactivate_user(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &path, TenantStatus::Active).await
}

async fn set_status(
    state: &AppState,
    id: &str,
    status: TenantStatus,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(id, "user")?;
    let user = state
        .shared
        .storage
        .users()
        .set_status(id, status, bson::DateTime::now())
        .await
        .map_err(not_found_as("user"))?;
    tracing::info!(user_id = %id, ?status, "tenant status changed");
    Ok(envelope::ok(UserView::from(&user)))
}

/// A new API key. The whole body is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKeyRequest {
    /// A label to tell keys apart: 1 to 200 characters after trimming; default `unnamed`.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
}

/// The created key, with its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Shown once: only its hash is stored.
    pub api_key: String,
}

/// Issues another API key for a tenant. The secret is in the answer, once. A body that is
/// absent or not valid JSON is treated as `{}`.
#[utoipa::path(
    post,
    path = "/api/admin/users/{user_id}/api-keys",
    tag = "admin",
    operation_id = "create_api_key",
    summary = "Create an API key",
    params(("user_id" = String, Path, description = "The tenant's id")),
    request_body(
        content = Option<CreateApiKeyRequest>,
        content_type = "application/json",
        description = "Optional: an absent body, `null` or a body that is not JSON counts as `{}`",
    ),
    responses(
        (status = 201, description = "The key, with its secret", body = Envelope<CreatedApiKey>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 422, description = "`name` is empty or longer than 200 characters (`validation_failed`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn create_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<Option<CreateApiKeyRequest>>,
) -> Result<HttpResponse, ApiError> {
    let user_id = parse_id(&path, "user")?;
    state
        .shared
        .storage
        .users()
        .get(user_id)
        .await
        .map_err(not_found_as("user"))?;
    let name = body
        .into_inner()?
        .and_then(|body| body.name)
        .unwrap_or_else(|| "unnamed".to_owned());
    let name = validate_api_key_name(&name)?;
    let (key, secret) = issue_api_key(&state.shared.storage, user_id, &name).await?;
    Ok(envelope::created(CreatedApiKey {
        key: ApiKeyView::from(&key),
        api_key: secret,
    }))
}

/// Lists all of a tenant's keys, revoked ones included, in one page (`next_cursor` is `null`).
#[utoipa::path(
    get,
    path = "/api/admin/users/{user_id}/api-keys",
    tag = "admin",
    operation_id = "list_api_keys",
    summary = "List a tenant's API keys",
    params(("user_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "Every key of the tenant", body = ListEnvelope<ApiKeyView>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn list_api_keys(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user_id = parse_id(&path, "user")?;
    state
        .shared
        .storage
        .users()
        .get(user_id)
        .await
        .map_err(not_found_as("user"))?;
    let keys = state.shared.storage.api_keys().list(user_id).await?;
    Ok(envelope::list(
        keys.iter().map(ApiKeyView::from).collect(),
        None,
    ))
}

/// Revokes a key: requests with it are refused with 401 `api_key_revoked` from then on.
/// Revoking twice keeps the first revocation time.
#[utoipa::path(
    delete,
    path = "/api/admin/users/{user_id}/api-keys/{key_id}",
    tag = "admin",
    operation_id = "revoke_api_key",
    summary = "Revoke an API key",
    params(
        ("user_id" = String, Path, description = "The tenant's id"),
        ("key_id" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 200, description = "The revoked key", body = Envelope<ApiKeyView>),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "No such key for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn revoke_api_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user_id = parse_id(&path.0, "user")?;
    let key_id = parse_id(&path.1, "API key")?;
    let key = state
        .shared
        .storage
        .api_keys()
        .revoke(user_id, key_id, bson::DateTime::now())
        .await
        .map_err(|err| match err {
            StorageError::NotFound => ApiError::not_found("API key not found"),
            other => other.into(),
        })?;
    tracing::info!(user_id = %user_id, key_id = %key_id, "API key revoked");
    Ok(envelope::ok(ApiKeyView::from(&key)))
}
