//! What assistants' tools need from the API: the tenant's named secrets (referenced by tools
//! as `{{secret.NAME}}`), the secret that signs requests to its HTTP tools, and a test run of an
//! HTTP tool.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope};
use super::error::{ApiError, ErrorCode, not_found_as};
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::{Json, parse_id};
use crate::calls::tool_secrets::{MAX_NAMED_SECRETS, ToolsProblem};
use crate::domain::assistant::tools::{Tool, is_valid_name};
use crate::domain::secret::SecretString;
use crate::domain::validation::ValidationError;
use crate::outbound::http_tool::{self, CallContext, HttpToolCall, SentRequest};
use crate::storage::users::UserRecord;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/me/secrets").route(web::get().to(list_secrets)))
        .service(
            resource("/api/me/secrets/{name}")
                .route(web::put().to(put_secret))
                .route(web::delete().to(delete_secret)),
        )
        .service(
            resource("/api/me/tool-signing-secret/rotate")
                .route(web::post().to(rotate_signing_secret)),
        )
        .service(
            resource("/api/assistants/{assistant_id}/tools/{name}/test")
                .route(web::post().to(test_tool)),
        );
}

/// Longest named secret value.
const SECRET_MAX_CHARS: usize = 4_096;

fn signing_secret_required() -> ApiError {
    ToolsProblem::SigningSecretRequired.into()
}

/// A named secret, as reads show it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretView {
    pub name: String,
    /// The last four characters.
    pub last4: String,
    pub updated_at: DateTime<Utc>,
}

/// The tenant's named secrets, by name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretList {
    pub secrets: Vec<SecretView>,
}

fn secret_views(user: &UserRecord) -> Vec<SecretView> {
    user.secrets
        .named
        .iter()
        .map(|(name, stored)| SecretView {
            name: name.clone(),
            last4: stored.last4.clone(),
            updated_at: stored.updated_at.to_chrono(),
        })
        .collect()
}

fn secret_list(user: &UserRecord) -> SecretList {
    SecretList {
        secrets: secret_views(user),
    }
}

/// Lists the tenant's named secrets (names and last four characters; never the values).
#[utoipa::path(
    get,
    path = "/api/me/secrets",
    tag = "tools",
    operation_id = "list_secrets",
    summary = "List the tenant's named secrets",
    responses(
        (status = 200, description = "The secrets, by name", body = Envelope<SecretList>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn list_secrets(tenant: Tenant) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(secret_list(&tenant.user)))
}

/// Body of `PUT /api/me/secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSecretRequest {
    /// 1 to 4096 visible ASCII characters or spaces (it is sent in HTTP headers).
    #[schema(value_type = String, write_only, min_length = 1, max_length = 4_096)]
    pub value: SecretString,
}

/// Stores a named secret (encrypted at rest, write-only) for tools to reference as
/// `{{secret.NAME}}`; replaces one of the same name.
#[utoipa::path(
    put,
    path = "/api/me/secrets/{name}",
    tag = "tools",
    operation_id = "put_secret",
    summary = "Store a named secret",
    params(("name" = String, Path, description = "1 to 64 ASCII letters, digits, '_' or '-'")),
    request_body = PutSecretRequest,
    responses(
        (status = 200, description = "The secret as reads show it", body = Envelope<SecretView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 409, description = "The tenant already stores 50 secrets (`too_many_secrets`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn put_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<PutSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if !is_valid_name(&name) {
        return Err(ValidationError::new(
            "name",
            "must be 1 to 64 ASCII letters, digits, '_' or '-'",
        )
        .into());
    }
    let value = body.into_inner()?.value;
    let plain = value.expose();
    if plain.is_empty()
        || plain.chars().count() > SECRET_MAX_CHARS
        || !plain.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(ValidationError::new(
            "value",
            "must be 1 to 4096 visible ASCII characters or spaces",
        )
        .into());
    }
    let secrets = &tenant.user.secrets.named;
    if !secrets.contains_key(&name) && secrets.len() >= MAX_NAMED_SECRETS {
        return Err(ApiError::new(
            ErrorCode::TooManySecrets,
            format!("at most {MAX_NAMED_SECRETS} named secrets; delete one first"),
        ));
    }
    let user = state
        .calls
        .store_named_secret(&tenant.user, &name, &value)
        .await?;
    tracing::info!(tenant_id = %user.id, secret = name, "named secret stored");
    let view = secret_views(&user)
        .into_iter()
        .find(|view| view.name == name)
        .ok_or_else(|| ApiError::internal("a stored secret is missing"))?;
    Ok(envelope::ok(view))
}

/// Deletes a named secret. Tools that reference it then answer the model `missing_secret`.
#[utoipa::path(
    delete,
    path = "/api/me/secrets/{name}",
    tag = "tools",
    operation_id = "delete_secret",
    summary = "Delete a named secret",
    params(("name" = String, Path, description = "The secret's name")),
    responses(
        (status = 200, description = "Deleted; the remaining secrets", body = Envelope<SecretList>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such secret (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn delete_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if !is_valid_name(&name) {
        return Err(ApiError::not_found("secret not found"));
    }
    let users = state.shared.storage.users();
    users
        .delete_named_secret(tenant.id(), &name, bson::DateTime::now())
        .await
        .map_err(not_found_as("secret"))?;
    let user = users.get(tenant.id()).await?;
    Ok(envelope::ok(secret_list(&user)))
}

/// The answer to a signing-secret rotation: the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SigningSecretView {
    /// `whsec_…`: verify requests to your HTTP tools with it (Standard Webhooks). Shown once.
    pub signing_secret: String,
    /// Until when the previous secret also signs (requests then carry two signatures);
    /// `null` for the first secret.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// Makes a new secret for signing requests to the tenant's HTTP tools and shows it once. The
/// previous one keeps signing, beside it, for `tools.signing_secret_overlap_secs`.
#[utoipa::path(
    post,
    path = "/api/me/tool-signing-secret/rotate",
    tag = "tools",
    operation_id = "rotate_tool_signing_secret",
    summary = "Make or rotate the tool signing secret",
    responses(
        (status = 200, description = "The new secret (shown once)", body = Envelope<SigningSecretView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 409, description = "Another rotation changed the secret at the same moment (`conflict`); try again", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn rotate_signing_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (secret, previous_until) = state.calls.rotate_tool_signing_secret(&tenant.user).await?;
    tracing::info!(tenant_id = %tenant.id(), "tool signing secret rotated");
    Ok(envelope::ok(SigningSecretView {
        signing_secret: secret.expose().to_owned(),
        previous_valid_until: previous_until.map(|until| until.to_chrono()),
    }))
}

/// Body of a tool test.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestToolRequest {
    /// The arguments, as the model would pass them. Default `{}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Option<Value>,
}

/// What a tool test did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ToolTestView {
    /// The request as sent (headers built from secrets show `[redacted]`); `null` when it was
    /// refused before sending.
    pub request: Option<SentRequest>,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What the model would be given.
    pub output: String,
    /// `null` when the tool answered 2xx; otherwise why not (`http_status`, `timeout`,
    /// `redirect_refused`, `refused_address`, `connect_failed`, `missing_secret`).
    pub error_code: Option<&'static str>,
    pub latency_ms: u64,
}

/// Runs an assistant's `http` tool once with the given arguments, as a call would (signed,
/// through the same address policy, within its timeout), and shows the request and the answer.
/// The body's `call` names the assistant and has every other field `null` (a test run belongs
/// to no call); `tool_call_id` starts `test_`.
#[utoipa::path(
    post,
    path = "/api/assistants/{assistant_id}/tools/{name}/test",
    tag = "tools",
    operation_id = "test_tool",
    summary = "Run an HTTP tool once",
    params(
        ("assistant_id" = String, Path, description = "The assistant's id"),
        ("name" = String, Path, description = "The tool's name"),
    ),
    request_body = TestToolRequest,
    responses(
        (status = 200, description = "What the request and the answer were (also when the endpoint failed)", body = Envelope<ToolTestView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant for this tenant, or no such tool (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The tenant has no tool signing secret (`signing_secret_required`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "The body's shape (`invalid_body`), or the tool is not an `http` tool (`tool_not_testable`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn test_tool(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<TestToolRequest>,
) -> Result<HttpResponse, ApiError> {
    let (assistant_id, name) = path.into_inner();
    let id = parse_id(&assistant_id, "assistant")?;
    let arguments = body
        .into_inner()?
        .arguments
        .unwrap_or_else(|| Value::Object(Default::default()));
    let assistant = state
        .shared
        .storage
        .assistants()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("assistant"))?;
    let Some(tool) = assistant.spec.tool(&name) else {
        return Err(ApiError::not_found("tool not found"));
    };
    let Tool::Http(http) = tool else {
        return Err(ApiError::new(
            ErrorCode::ToolNotTestable,
            "only http tools can be tested here",
        ));
    };
    let Some(signer) = state.calls.tool_signer(&tenant.user) else {
        return Err(signing_secret_required());
    };
    let secrets = state.calls.named_secrets(&tenant.user, tool.secret_names());
    let lookup = |name: &str| secrets.get(name).cloned();
    let tool_call_id = format!("test_{}", uuid::Uuid::new_v4().simple());
    let outbound = &state.shared.outbound;
    let (request, answer) = http_tool::call(
        http,
        &arguments,
        HttpToolCall {
            client: &outbound.client,
            allow: &outbound.allow,
            signer: &signer,
            secrets: &lookup,
            tool_call_id: &tool_call_id,
            call: &CallContext {
                assistant_id: Some(assistant.id.to_string()),
                ..CallContext::default()
            },
        },
    )
    .await;
    Ok(envelope::ok(ToolTestView {
        request,
        status: answer.status,
        output: answer.output,
        error_code: answer.error_code,
        latency_ms: answer.latency.as_millis() as u64,
    }))
}
