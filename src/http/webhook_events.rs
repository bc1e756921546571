//! What became of the tenant's webhook events: each delivery (an event to one endpoint) with
//! every attempt, listed and filtered, and a redelivery on request.

use std::str::FromStr as _;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::ApiError;
use super::error::{DatabaseUnavailable, InvalidQuery, TenantSuspended, TenantUnauthorized};
use super::extract::{ListQuery, Query};
use crate::domain::ids::CallId;
use crate::domain::validation::ValidationError;
use crate::domain::webhook::EventType;
use crate::storage::webhook_deliveries::{
    AttemptRecord, DeliveryFilter, DeliveryStatus, WebhookDeliveryRecord,
};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/webhook-events").route(web::get().to(list)))
        .service(resource("/api/webhook-events/{event_id}").route(web::get().to(get)))
        .service(
            resource("/api/webhook-events/{event_id}/redeliver").route(web::post().to(redeliver)),
        );
}

/// One attempt to deliver an event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub(crate) struct AttemptView {
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<i32>,
    pub latency_ms: i64,
    /// What went wrong; `null` when delivered.
    pub error: Option<String>,
    /// The start of the endpoint's answer (at most 2 KiB).
    pub response: String,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(attempt: &AttemptRecord) -> Self {
        Self {
            at: attempt.at.to_chrono(),
            status: attempt.status,
            latency_ms: attempt.latency_ms,
            error: attempt.error.clone(),
            response: attempt.response.clone(),
        }
    }
}

/// An event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub(crate) struct DeliveryView {
    /// The event's id (`evt_…`, its `webhook-id`).
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub endpoint_id: String,
    pub call_id: Option<String>,
    /// `pending` (due at `next_attempt_at`), `delivered`, or `failed` (given up).
    pub delivery_status: &'static str,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
    pub created_at: DateTime<Utc>,
}

fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

impl From<&WebhookDeliveryRecord> for DeliveryView {
    fn from(delivery: &WebhookDeliveryRecord) -> Self {
        Self {
            event_id: delivery.event_id.clone(),
            kind: delivery.event_type,
            endpoint_id: delivery.endpoint_id.to_string(),
            call_id: delivery.call_id.map(|id| id.to_string()),
            delivery_status: status_name(delivery.status),
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then(|| delivery.next_attempt_at.to_chrono()),
            attempts: delivery.attempts.iter().map(AttemptView::from).collect(),
            created_at: delivery.created_at.to_chrono(),
        }
    }
}

/// An event and its delivery to each endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEvent)]
pub(crate) struct EventView {
    pub event_id: String,
    /// The body every attempt sends: `{id, type, timestamp, data}`.
    #[schema(value_type = Object)]
    pub event: Value,
    pub deliveries: Vec<DeliveryView>,
}

fn event_view(deliveries: &[WebhookDeliveryRecord]) -> EventView {
    EventView {
        event_id: deliveries[0].event_id.clone(),
        event: serde_json::from_str(&deliveries[0].body).unwrap_or(Value::Null),
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
    }
}

/// Filters of the list of deliveries.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Only events of this type, e.g. `call.ended`.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub kind: Option<String>,
    /// Only events about this call (its id).
    pub call_id: Option<String>,
    /// Only deliveries that are `pending`, `delivered` or `failed`.
    pub delivery_status: Option<String>,
    /// Items per page: default 50; values outside 1 to 200 are clamped.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

impl EventsQuery {
    fn filter(&self) -> Result<DeliveryFilter, ApiError> {
        let invalid = |field: &str, message: &str| ValidationError::new(field, message);
        Ok(DeliveryFilter {
            event_type: self
                .kind
                .as_deref()
                .map(|kind| {
                    serde_json::from_value(Value::String(kind.to_owned()))
                        .map_err(|_| invalid("type", "is not an event type"))
                })
                .transpose()?,
            call_id: self
                .call_id
                .as_deref()
                .map(|id| CallId::from_str(id).map_err(|_| invalid("call_id", "is not an id")))
                .transpose()?,
            status: self
                .delivery_status
                .as_deref()
                .map(|status| match status {
                    "pending" => Ok(DeliveryStatus::Pending),
                    "delivered" => Ok(DeliveryStatus::Delivered),
                    "failed" => Ok(DeliveryStatus::Failed),
                    _ => Err(invalid(
                        "delivery_status",
                        "must be pending, delivered or failed",
                    )),
                })
                .transpose()?,
        })
    }
}

/// The tenant's deliveries (an event to one endpoint), newest first, with their attempts.
#[utoipa::path(
    get,
    path = "/api/webhook-events",
    tag = "webhooks",
    operation_id = "list_webhook_events",
    summary = "List webhook deliveries",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = ListEnvelope<DeliveryView>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 422, description = "A filter value is invalid (`validation_failed`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .page()?;
    let page = state
        .shared
        .storage
        .webhook_deliveries()
        .list(tenant.id(), &query.filter()?, &page)
        .await?;
    let page = page.map(|delivery| DeliveryView::from(&delivery));
    Ok(envelope::list(page.items, page.next_cursor))
}

/// An event id as voxbridge makes them (`evt_` and hexadecimal digits); anything else is
/// simply not found.
fn event_id(path: &str) -> Result<&str, ApiError> {
    let well_formed = path.strip_prefix("evt_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if well_formed {
        Ok(path)
    } else {
        Err(ApiError::not_found("webhook event not found"))
    }
}

/// One event, with its delivery to each endpoint and every attempt.
#[utoipa::path(
    get,
    path = "/api/webhook-events/{event_id}",
    tag = "webhooks",
    operation_id = "get_webhook_event",
    summary = "Get a webhook event",
    params(("event_id" = String, Path, description = "The event's id (`evt_…`)")),
    responses(
        (status = 200, description = "The event and its deliveries", body = Envelope<EventView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such event for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let deliveries = state
        .shared
        .storage
        .webhook_deliveries()
        .for_event(tenant.id(), id)
        .await?;
    if deliveries.is_empty() {
        return Err(ApiError::not_found("webhook event not found"));
    }
    Ok(envelope::ok(event_view(&deliveries)))
}

/// Delivers the event again, now, to every endpoint it went to (whatever became of it; its
/// attempts so far are kept). The same `webhook-id`: receivers that deduplicate see a repeat.
#[utoipa::path(
    post,
    path = "/api/webhook-events/{event_id}/redeliver",
    tag = "webhooks",
    operation_id = "redeliver_webhook_event",
    summary = "Redeliver a webhook event",
    params(("event_id" = String, Path, description = "The event's id (`evt_…`)")),
    responses(
        (status = 200, description = "The event, its deliveries due again", body = Envelope<EventView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such event for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn redeliver(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let deliveries = state.shared.storage.webhook_deliveries();
    if deliveries
        .redeliver(tenant.id(), id, bson::DateTime::now())
        .await?
        == 0
    {
        return Err(ApiError::not_found("webhook event not found"));
    }
    let current = deliveries.for_event(tenant.id(), id).await?;
    Ok(envelope::ok(event_view(&current)))
}
