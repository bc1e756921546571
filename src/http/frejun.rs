//! FreJun's side of the HTTP surface: the flow URL, the status webhook, and the tenant's
//! outbound-call request that makes FreJun dial.
//!
//! FreJun signs nothing, so the flow and webhook carry the tenant's URL secret as `key` (and,
//! for calls we placed, our call id as `call`). Their bodies are read raw and parsed tolerantly
//! (`crate::frejun`); their answers are bare JSON, as FreJun expects, except errors, which use
//! the envelope like every other endpoint.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Tenant;
use super::error::ApiError;
use super::error::ErrorCode;
use super::error::{
    DatabaseUnavailable, InvalidJson, PayloadTooLarge, TenantSuspended, TenantUnauthorized,
    UnsupportedMediaType,
};
use super::extract::Json;
use super::rate_limit::Credential;
use super::views::CallDetail;
use crate::calls::flow::FlowError;
use crate::calls::outbound::OutboundRequest;
use crate::calls::tenant_key::KeyError;
use crate::calls::webhook::{WebhookError, WebhookOutcome};
use crate::frejun::flow::FlowRequest;
use crate::storage::users::UserRecord;
use crate::telemetry::metrics;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/frejun/flow").route(web::post().to(flow)))
        .service(resource("/api/frejun/webhook").route(web::post().to(webhook)))
        .service(resource("/api/frejun/initiate-call").route(web::post().to(initiate_call)));
}

/// The query parameters of the URLs we give FreJun.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FrejunQuery {
    /// The tenant's FreJun URL secret, as in the URLs shown by `GET /api/me`.
    pub key: Option<String>,
    /// Our call id: present in the URLs of outbound calls placed through voxbridge.
    pub call: Option<String>,
}

impl FrejunQuery {
    /// Read leniently: FreJun may add parameters of its own, and a repeated one keeps its
    /// first value.
    fn from_request(req: &HttpRequest) -> Self {
        let mut query = Self::default();
        for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            match name.as_ref() {
                "key" if query.key.is_none() => query.key = Some(value.into_owned()),
                "call" if query.call.is_none() => query.call = Some(value.into_owned()),
                _ => {}
            }
        }
        query
    }
}

/// Reads a FreJun body once its key is accepted: at most `server.json_body_limit_bytes`, and
/// all of it within `server.body_read_timeout_ms` (a body trickled a byte at a time would
/// otherwise hold a worker's connection open indefinitely).
async fn read_body(mut payload: web::Payload, state: &AppState) -> Result<web::Bytes, ApiError> {
    let server = &state.shared.settings.server;
    let limit = server.json_body_limit_bytes;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| {
                ApiError::new(
                    ErrorCode::UnreadableBody,
                    "the request body could not be read",
                )
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the request body is larger than the limit of {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(server.body_read_timeout(), read)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    server.body_read_timeout_ms
                ),
            )
        })?
}

/// The tenant whose URL key `key` is, within the key's and the client's rate limits.
async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    key: Option<&str>,
) -> Result<UserRecord, ApiError> {
    if let Some(key) = key {
        state.rate_limits.admit(req, Credential::FrejunKey(key))?;
    }
    state.calls.tenant_for_key(key).await.map_err(|err| {
        if matches!(err, KeyError::Unknown) {
            state.rate_limits.record_failure(req);
        }
        key_refused(err)
    })
}

fn key_refused(err: KeyError) -> ApiError {
    match err {
        KeyError::Storage(err) => err.into(),
        KeyError::Missing | KeyError::Unknown => frejun_unauthorized(),
    }
}

fn frejun_unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidFrejunKey,
        "the `key` query parameter is missing or does not belong to this number's tenant; \
         use the URLs shown by GET /api/me",
    )
}

/// FreJun's flow request (its "incoming call URL", and the `flow_url` of outbound calls).
#[utoipa::path(
    post,
    path = "/api/frejun/flow",
    tag = "frejun",
    operation_id = "frejun_flow",
    summary = "What FreJun should do with a connecting call",
    description = "Called by FreJun, not by tenants. Body: `{call_id, account_id, from_number, \
        to_number, direction}` (JSON or form-encoded; unknown keys ignored). Answers a stream \
        flow `{\"action\":\"stream\",\"ws_url\",\"chunk_size\",\"sample_rate\",\"record\"}` \
        or, when the call may not proceed (unknown, inactive or unassigned number, suspended \
        tenant, missing OpenAI key, concurrent-call limit), `{\"action\":\"hangup\"}` with \
        the reason in the call log.",
    params(FrejunQuery),
    request_body(content = Object, description = "FreJun's flow request", content_type = "application/json"),
    responses(
        (status = 200, description = "The flow (bare JSON)", body = Object),
        (status = 400, description = "The body is neither JSON nor form-encoded (`invalid_body`)", body = super::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or wrong `key` (`invalid_frejun_key`); nothing is written", body = super::envelope::ErrorEnvelope),
        (status = 408, description = "The body did not arrive within `server.body_read_timeout_ms` of the key being accepted (`request_timeout`)", body = super::envelope::ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 503, description = "`database_unavailable`, or `draining` (this instance is draining; `Retry-After: 1`, another instance admits the call)", body = super::envelope::ErrorEnvelope),
    ),
    security(("frejun_key" = [])),
)]
pub(crate) async fn flow(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A draining instance admits no call: refused before anything is read or written, so a
    // retry (FreJun's, or the load balancer's on a 503) can take it to another instance.
    if state.shared.drain.is_draining() {
        metrics::admission_refused("flow", "draining");
        return Err(ApiError::draining());
    }
    let query = FrejunQuery::from_request(&req);
    // The key first: an unauthenticated caller costs one indexed read, and its body is never
    // read (nor can it hold the connection open by trickling one).
    let tenant = authenticate(&req, &state, query.key.as_deref()).await?;
    let body = read_body(body, &state).await?;
    let request = FlowRequest::parse(&body).map_err(|err| {
        ApiError::new(
            ErrorCode::UnreadableBody,
            format!("the flow request is neither JSON nor form-encoded: {err}"),
        )
    })?;
    let outcome = state
        .calls
        .answer_flow(&tenant, query.call.as_deref(), &request)
        .await
        .map_err(|err| match err {
            FlowError::Key(err) => key_refused(err),
            FlowError::ForeignNumber => {
                // A real tenant's key on another tenant's number: probing, not a typo.
                state.rate_limits.record_failure(&req);
                frejun_unauthorized()
            }
            FlowError::Storage(err) => err.into(),
        })?;
    Ok(HttpResponse::Ok().json(outcome.response()))
}

/// FreJun's status webhook (its "status callback URL", and the `status_callback_url` of
/// outbound calls).
#[utoipa::path(
    post,
    path = "/api/frejun/webhook",
    tag = "frejun",
    operation_id = "frejun_webhook",
    summary = "A call status event from FreJun",
    description = "Called by FreJun, not by tenants. Accepts the documented envelope \
        `{event, account_id, call_app_id, data:{call_id, from, to, ...}}` and the flat \
        `{call_id, status, duration}` shape. Statuses only move forward; duplicates and \
        out-of-order deliveries converge. Events for unknown calls are kept for 30 days and \
        acknowledged.",
    params(FrejunQuery),
    request_body(content = Object, description = "A FreJun webhook event", content_type = "application/json"),
    responses(
        (status = 200, description = "Acknowledged: `{\"status\":\"received\",\"call_status\"}` or `{\"status\":\"ignored\",\"reason\"}`", body = Object),
        (status = 400, description = "The body is not a JSON object (`invalid_json`); kept for diagnosis", body = super::envelope::ErrorEnvelope),
        (status = 401, description = "Missing or wrong `key` (`invalid_frejun_key`); nothing is written", body = super::envelope::ErrorEnvelope),
        (status = 408, description = "The body did not arrive within `server.body_read_timeout_ms` of the key being accepted (`request_timeout`)", body = super::envelope::ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("frejun_key" = [])),
)]
pub(crate) async fn webhook(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = FrejunQuery::from_request(&req);
    let tenant = authenticate(&req, &state, query.key.as_deref()).await?;
    let body = read_body(body, &state).await?;
    let outcome = state
        .calls
        .apply_webhook(&tenant, query.call.as_deref(), &body)
        .await
        .map_err(|err| match err {
            WebhookError::Key(err) => key_refused(err),
            WebhookError::Invalid(err) => ApiError::new(
                ErrorCode::InvalidJson,
                format!("the webhook body is not a JSON object: {err}"),
            ),
            WebhookError::Storage(err) => err.into(),
        })?;
    Ok(HttpResponse::Ok().json(match outcome {
        WebhookOutcome::Applied { call_id, status } => json!({
            "status": "received",
            "call_id": call_id.to_hex(),
            "call_status": status,
        }),
        WebhookOutcome::Unmatched { reason } => json!({ "status": "ignored", "reason": reason }),
    }))
}

/// Body of `POST /api/frejun/initiate-call`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InitiateCallBody {
    /// The assistant to talk. Optional when the from-number has one assigned.
    pub assistant_id: Option<String>,
    /// One of the tenant's active numbers, E.164.
    #[schema(example = "+919876543210")]
    pub from_number: String,
    /// Who to call, E.164.
    #[schema(example = "+14155550123")]
    pub to_number: String,
}

/// The answer to `POST /api/frejun/initiate-call`: the seed's shape (`success`, FreJun's
/// `call_id`, `message`) plus our call id and the call log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InitiatedCallView {
    /// Always `true`.
    pub success: bool,
    /// FreJun's id for the call.
    pub call_id: String,
    /// voxbridge's id for the call (its call log, `/api/calls/{id}`).
    pub voxbridge_call_id: String,
    pub message: String,
    /// The call log as it stands.
    pub data: CallDetail,
}

/// Places an outbound call from one of the tenant's numbers through FreJun.
#[utoipa::path(
    post,
    path = "/api/frejun/initiate-call",
    tag = "calls",
    operation_id = "initiate_call",
    summary = "Place an outbound call",
    description = "Creates the call log, takes a concurrency slot and asks Teler to dial with \
        the tenant's FreJun key. When FreJun or the limit refuses, the call log is marked \
        failed with the reason and the answer says which.",
    request_body = InitiateCallBody,
    responses(
        (status = 200, description = "Teler accepted the call", body = InitiatedCallView),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant (`not_found`)", body = super::envelope::ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "A field is invalid (`validation_failed`, `invalid_body`), a key the call needs is not stored (`missing_credentials`), FreJun refused the stored FreJun key (`frejun_key_invalid`), the number is not provisioned at FreJun (`from_number_not_provisioned`) or FreJun refused the request (`telephony_validation_failed`)", body = super::envelope::ErrorEnvelope),
        (status = 429, description = "At the concurrent-call limit (`concurrency_limit`), or FreJun is rate limiting (`telephony_rate_limited`)", body = super::envelope::ErrorEnvelope),
        (status = 502, description = "FreJun is unavailable or answered something unexpected (`telephony_unavailable`, `telephony_rejected`)", body = super::envelope::ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
        (status = 504, description = "FreJun did not answer in time (`telephony_timeout`); the call may still be placed, and is hung up if it connects", body = super::envelope::ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn initiate_call(
    tenant: Tenant,
    body: Json<InitiateCallBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let placed = state
        .calls
        .initiate(
            &tenant.user,
            &OutboundRequest {
                assistant_id: body.assistant_id,
                from_number: body.from_number,
                to_number: body.to_number,
            },
        )
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(InitiatedCallView {
        success: true,
        call_id: placed.frejun_call_id,
        voxbridge_call_id: placed.call.id.to_hex(),
        message: placed.message,
        data: CallDetail::from(&placed.call),
    }))
}
