//! Tenants' webhook endpoints: create (the signing secret is shown once), list, get, update,
//! delete, rotate the secret, and send a test `ping`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::{ApiError, not_found_as};
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, InvalidQuery, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::{Json, ListQuery, Query, parse_id};
use super::views::Deleted;
use crate::calls::webhook_endpoints::EndpointError;
use crate::domain::webhook::{EndpointPatch, EndpointSpec, EventType, NewEndpoint};
use crate::outbound::delivery::{Attempt, Verdict};
use crate::storage::webhook_endpoints::WebhookEndpointRecord;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/api/webhook-endpoints")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/api/webhook-endpoints/{endpoint_id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/api/webhook-endpoints/{endpoint_id}/rotate-secret")
            .route(web::post().to(rotate_secret)),
    )
    .service(resource("/api/webhook-endpoints/{endpoint_id}/test").route(web::post().to(test)));
}

impl From<EndpointError> for ApiError {
    fn from(err: EndpointError) -> Self {
        match err {
            EndpointError::Invalid(err) => err.into(),
            EndpointError::Storage(err) => err.into(),
        }
    }
}

/// A webhook endpoint. Its signing secret is shown only when made (creation, rotation).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub(crate) struct EndpointView {
    pub id: String,
    pub url: String,
    /// The event types it receives; `[]`: all of them.
    pub event_types: Vec<EventType>,
    pub description: String,
    pub enabled: bool,
    /// Why voxbridge disabled it (a 410, or failing for too long); `null` otherwise.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookEndpointRecord> for EndpointView {
    fn from(endpoint: &WebhookEndpointRecord) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.spec.url.clone(),
            event_types: endpoint.spec.event_types.clone(),
            description: endpoint.spec.description.clone(),
            enabled: endpoint.spec.enabled,
            disabled_reason: endpoint.disabled_reason.clone(),
            created_at: endpoint.created_at.to_chrono(),
            updated_at: endpoint.updated_at.to_chrono(),
        }
    }
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Shown once.
    pub signing_secret: String,
}

/// Creates an endpoint. Its signing secret is in the answer, and never again.
#[utoipa::path(
    post,
    path = "/api/webhook-endpoints",
    tag = "webhooks",
    operation_id = "create_webhook_endpoint",
    summary = "Create a webhook endpoint",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "The endpoint, with its signing secret (shown once)", body = Envelope<CreatedEndpoint>),
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
async fn create(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: Json<NewEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let spec = EndpointSpec::from_new(body.into_inner()?)?;
    let (record, secret) = state.calls.create_endpoint(&tenant.user, spec).await?;
    tracing::info!(tenant_id = %tenant.id(), endpoint_id = %record.id, "webhook endpoint created");
    Ok(envelope::created(CreatedEndpoint {
        endpoint: EndpointView::from(&record),
        signing_secret: secret.expose().to_owned(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/webhook-endpoints",
    tag = "webhooks",
    operation_id = "list_webhook_endpoints",
    summary = "List webhook endpoints",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the tenant's endpoints", body = ListEnvelope<EndpointView>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .shared
        .storage
        .webhook_endpoints()
        .list(tenant.id(), &query.into_inner()?.page()?)
        .await?;
    let page = page.map(|endpoint| EndpointView::from(&endpoint));
    Ok(envelope::list(page.items, page.next_cursor))
}

async fn endpoint(
    tenant: &Tenant,
    state: &AppState,
    path: &str,
) -> Result<WebhookEndpointRecord, ApiError> {
    let id = parse_id(path, "webhook endpoint")?;
    state
        .shared
        .storage
        .webhook_endpoints()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("webhook endpoint"))
}

#[utoipa::path(
    get,
    path = "/api/webhook-endpoints/{endpoint_id}",
    tag = "webhooks",
    operation_id = "get_webhook_endpoint",
    summary = "Get a webhook endpoint",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<EndpointView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such endpoint for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = endpoint(&tenant, &state, &path).await?;
    Ok(envelope::ok(EndpointView::from(&record)))
}

/// Replaces the fields the body names; enabling an endpoint clears why it was disabled.
#[utoipa::path(
    patch,
    path = "/api/webhook-endpoints/{endpoint_id}",
    tag = "webhooks",
    operation_id = "update_webhook_endpoint",
    summary = "Update a webhook endpoint",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    request_body = EndpointPatch,
    responses(
        (status = 200, description = "The updated endpoint", body = Envelope<EndpointView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such endpoint for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn update(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<EndpointPatch>,
) -> Result<HttpResponse, ApiError> {
    let current = endpoint(&tenant, &state, &path).await?;
    let patch = body.into_inner()?;
    if patch.is_empty() {
        return Ok(envelope::ok(EndpointView::from(&current)));
    }
    let spec = current.spec.apply(patch)?;
    let record = state
        .calls
        .update_endpoint(&tenant.user, current.id, &spec)
        .await?;
    Ok(envelope::ok(EndpointView::from(&record)))
}

#[utoipa::path(
    delete,
    path = "/api/webhook-endpoints/{endpoint_id}",
    tag = "webhooks",
    operation_id = "delete_webhook_endpoint",
    summary = "Delete a webhook endpoint",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint is deleted", body = Envelope<Deleted>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such endpoint for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn delete(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "webhook endpoint")?;
    state
        .shared
        .storage
        .webhook_endpoints()
        .delete(tenant.id(), id)
        .await
        .map_err(not_found_as("webhook endpoint"))?;
    Ok(envelope::ok(Deleted::of(id)))
}

/// A new signing secret, shown once, and until when the previous one still signs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RotatedEndpointSecret {
    /// `whsec_…`. Shown once.
    pub signing_secret: String,
    /// Deliveries carry both signatures until then (`webhooks.secret_overlap_secs`).
    pub previous_valid_until: DateTime<Utc>,
}

/// Makes a new signing secret for the endpoint. Until `previous_valid_until`, deliveries are
/// signed with both, so the receiver can switch without refusing any.
#[utoipa::path(
    post,
    path = "/api/webhook-endpoints/{endpoint_id}/rotate-secret",
    tag = "webhooks",
    operation_id = "rotate_webhook_endpoint_secret",
    summary = "Rotate a webhook endpoint's signing secret",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret (shown once)", body = Envelope<RotatedEndpointSecret>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such endpoint for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "Another rotation changed the secret at the same moment (`conflict`); try again", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn rotate_secret(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "webhook endpoint")?;
    let (secret, previous_until) = state
        .calls
        .rotate_endpoint_secret(&tenant.user, id)
        .await
        .map_err(not_found_as("webhook endpoint"))?;
    tracing::info!(tenant_id = %tenant.id(), endpoint_id = %id, "webhook endpoint secret rotated");
    Ok(envelope::ok(RotatedEndpointSecret {
        signing_secret: secret.expose().to_owned(),
        previous_valid_until: previous_until.to_chrono(),
    }))
}

/// One delivery attempt, as shown to the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptView {
    /// `delivered`, `retry` (it would be tried again), `gone` (410: the endpoint would be
    /// disabled) or `rejected` (any other answer: final).
    pub outcome: &'static str,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// What went wrong; `null` when delivered.
    pub error: Option<String>,
    /// The start of the endpoint's answer (at most 2 KiB).
    pub response: String,
}

impl From<&Attempt> for AttemptView {
    fn from(attempt: &Attempt) -> Self {
        Self {
            outcome: match attempt.verdict {
                Verdict::Delivered => "delivered",
                Verdict::Retry { .. } => "retry",
                Verdict::Gone => "gone",
                Verdict::Rejected => "rejected",
            },
            status: attempt.status,
            latency_ms: attempt.latency.as_millis() as u64,
            error: attempt.error.clone(),
            response: attempt.response.clone(),
        }
    }
}

/// The test event sent and what the endpoint did with it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PingView {
    /// The `ping` event's id (its `webhook-id`).
    pub event_id: String,
    /// The body as sent.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    pub attempt: AttemptView,
}

/// Sends the endpoint a `ping` event now (enabled or not, once, without retries) and shows
/// what it answered.
#[utoipa::path(
    post,
    path = "/api/webhook-endpoints/{endpoint_id}/test",
    tag = "webhooks",
    operation_id = "test_webhook_endpoint",
    summary = "Send a test ping",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The ping and the endpoint's answer (also when it failed)", body = Envelope<PingView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such endpoint for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn test(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = endpoint(&tenant, &state, &path).await?;
    let (event, attempt) = state.calls.ping_endpoint(&record).await?;
    Ok(envelope::ok(PingView {
        event_id: event.id.clone(),
        event: serde_json::to_value(&event).expect("an event serializes"),
        attempt: AttemptView::from(&attempt),
    }))
}
