//! Live control of a call being bridged: stop the assistant's speech, clear FreJun's playback
//! queue, tell the voice AI something mid-call, and list live media streams. Also the Teler-backend-style aliases
//! (`/api/websocket/...`, where a connection id is our call id) that tools written for FreJun's
//! reference backend call.
//!
//! Any instance answers: a call bridged by another is reached through it (`bridge::control`);
//! see docs/operations.md, "Running several instances".

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::ApiError;
use super::error::ErrorCode;
use super::error::{CallNotLive, OwnerNotResponding, TenantSuspended, TenantUnauthorized};
use super::extract::parse_id;
use super::views::LiveStreamView;
use crate::domain::control::{ControlOutcome, ControlRequest};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/calls/{call_id}/interrupt").route(web::post().to(interrupt)))
        .service(resource("/api/calls/{call_id}/clear").route(web::post().to(clear)))
        .service(resource("/api/calls/{call_id}/context").route(web::post().to(add_context)))
        .service(resource("/api/websocket/streams").route(web::get().to(streams)))
        .service(
            resource("/api/websocket/interrupt/{connection_id}")
                .route(web::post().to(interrupt_alias)),
        )
        .service(
            resource("/api/websocket/clear/{connection_id}").route(web::post().to(clear_alias)),
        );
}

/// Optional body of `POST /api/calls/{call_id}/interrupt`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterruptRequest {
    /// Drop only this chunk (FreJun's `interrupt`), instead of stopping the assistant.
    pub chunk_id: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/interrupt",
    tag = "calls",
    operation_id = "interrupt_call",
    summary = "Stop the assistant's speech",
    description = "Without a body: what a barge-in does: FreJun drops its playback queue \
        (`clear`), OpenAI's response is cancelled, and the assistant's item is truncated to \
        what the caller heard. With `{\"chunk_id\": n}`: FreJun drops that one chunk \
        (`interrupt`).",
    params(("call_id" = String, Path, description = "The call's id")),
    request_body(content = Option<InterruptRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "What was done (nothing, if the assistant was silent)", body = Envelope<ControlOutcome>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, response = CallNotLive),
        (status = 504, response = OwnerNotResponding),
        (status = 422, description = "The body is not `{\"chunk_id\": n}`, or no such chunk was sent (`validation_failed`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn interrupt(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse_interrupt(&body)?;
    control_call(&tenant, &state, &path, "call", request.chunk_id).await
}

#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/clear",
    tag = "calls",
    operation_id = "clear_call_playback",
    summary = "Clear FreJun's playback queue",
    description = "Sends FreJun `clear`: audio already queued for the caller is dropped. \
        OpenAI's response is not cancelled.",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "Sent", body = Envelope<ControlOutcome>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, response = CallNotLive),
        (status = 504, response = OwnerNotResponding),
    ),
    security(("api_key" = [])),
)]
async fn clear(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    clear_call(&tenant, &state, &path, "call").await
}

/// Body of `POST /api/calls/{call_id}/context`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextRequest {
    /// What the assistant should know from now on, e.g. "The caller's order A-1001 shipped
    /// today."
    #[schema(min_length = 1, max_length = 4_000)]
    pub text: String,
}

/// Longest context one request may add, in characters.
const CONTEXT_MAX_CHARS: usize = 4_000;

#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/context",
    tag = "calls",
    operation_id = "add_call_context",
    summary = "Tell the assistant something mid-call",
    description = "Passes `text` to the call's voice AI as context, without interrupting it or \
        asking it to answer: a `system` message to OpenAI, a `contextual_update` to ElevenLabs. \
        The assistant uses it from its next answer.",
    params(("call_id" = String, Path, description = "The call's id")),
    request_body = ContextRequest,
    responses(
        (status = 200, description = "Passed on (`context_added`)", body = Envelope<ControlOutcome>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, response = CallNotLive),
        (status = 504, response = OwnerNotResponding),
        (status = 422, description = "`text` missing, empty or longer than 4,000 characters (`validation_failed`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn add_context(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let call_id = parse_id(&path, "call")?;
    let request: ContextRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("the body must be {{\"text\": \"…\"}}: {err}"),
        )
    })?;
    let text = request.text.trim();
    if text.is_empty() || text.chars().count() > CONTEXT_MAX_CHARS {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("text: must be 1 to {CONTEXT_MAX_CHARS} characters"),
        ));
    }
    let request = ControlRequest::AddContext {
        text: text.to_owned(),
    };
    let outcome = route(&state, &tenant, call_id, request).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "success": true, "data": outcome })))
}

#[utoipa::path(
    get,
    path = "/api/websocket/streams",
    tag = "calls",
    operation_id = "list_live_streams",
    summary = "List live media streams",
    description = "The tenant's media streams bridged by this instance, oldest first. `GET /api/calls/active` lists live calls on every instance.",
    responses(
        (status = 200, description = "The live streams", body = ListEnvelope<LiveStreamView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
    ),
    security(("api_key" = [])),
)]
async fn streams(tenant: Tenant, state: web::Data<AppState>) -> HttpResponse {
    let items: Vec<LiveStreamView> = state
        .bridge
        .live
        .list(tenant.user.id)
        .iter()
        .map(LiveStreamView::from)
        .collect();
    envelope::list(items, None)
}

#[utoipa::path(
    post,
    path = "/api/websocket/interrupt/{connection_id}",
    tag = "calls",
    operation_id = "interrupt_stream",
    summary = "Stop the assistant's speech (alias)",
    description = "The same as `POST /api/calls/{call_id}/interrupt`; `connection_id` is the call id.",
    params(("connection_id" = String, Path, description = "The call's id")),
    request_body(content = Option<InterruptRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "What was done", body = Envelope<ControlOutcome>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such connection for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, response = CallNotLive),
        (status = 504, response = OwnerNotResponding),
        (status = 422, description = "Bad body or unknown chunk (`validation_failed`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn interrupt_alias(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse_interrupt(&body)?;
    control_call(&tenant, &state, &path, "connection", request.chunk_id).await
}

#[utoipa::path(
    post,
    path = "/api/websocket/clear/{connection_id}",
    tag = "calls",
    operation_id = "clear_stream_playback",
    summary = "Clear FreJun's playback queue (alias)",
    description = "The same as `POST /api/calls/{call_id}/clear`; `connection_id` is the call id.",
    params(("connection_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "Sent", body = Envelope<ControlOutcome>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such connection for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, response = CallNotLive),
        (status = 504, response = OwnerNotResponding),
    ),
    security(("api_key" = [])),
)]
async fn clear_alias(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    clear_call(&tenant, &state, &path, "connection").await
}

fn parse_interrupt(body: &[u8]) -> Result<InterruptRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(InterruptRequest::default());
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("the body must be empty or {{\"chunk_id\": <positive integer>}}: {err}"),
        )
    })
}

async fn control_call(
    tenant: &Tenant,
    state: &AppState,
    raw_id: &str,
    what: &'static str,
    chunk_id: Option<u64>,
) -> Result<HttpResponse, ApiError> {
    let call_id = parse_id(raw_id, what)?;
    let request = match chunk_id {
        None => ControlRequest::Interrupt,
        Some(chunk_id) => ControlRequest::InterruptChunk { chunk_id },
    };
    let outcome = route(state, tenant, call_id, request).await?;
    if chunk_id.is_some() && outcome.sent_to_frejun.is_none() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "chunk_id: no chunk with this id was sent on this call",
        ));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "success": true, "data": outcome })))
}

async fn clear_call(
    tenant: &Tenant,
    state: &AppState,
    raw_id: &str,
    what: &'static str,
) -> Result<HttpResponse, ApiError> {
    let call_id = parse_id(raw_id, what)?;
    let outcome = route(state, tenant, call_id, ControlRequest::Clear).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "success": true, "data": outcome })))
}

/// Sends `request` to the tenant's call on whichever instance bridges it.
async fn route(
    state: &AppState,
    tenant: &Tenant,
    call_id: crate::domain::ids::CallId,
    request: ControlRequest,
) -> Result<ControlOutcome, ApiError> {
    state
        .bridge
        .control
        .control(tenant.user.id, call_id, request)
        .await
        .map_err(ApiError::from)
}
