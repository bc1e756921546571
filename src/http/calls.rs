//! Call logs: the tenant's list (filters, cursor pagination), one call with its history and
//! transcript, its status, active calls, finished calls, statistics; and the admin's list across
//! tenants (`GET /api/admin/calls`, the same filters plus `user_id`).

use std::str::FromStr as _;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Admin, Tenant};
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::ErrorCode;
use super::error::teler_error;
use super::error::{
    AdminUnauthorized, DatabaseUnavailable, InvalidJson, InvalidQuery, TenantSuspended,
    TenantUnauthorized,
};
use super::error::{ApiError, not_found_as};
use super::extract::{Json, Query};
use super::extract::{ListQuery, parse_id};
use super::views::CallDetail;
use super::views::CallStatusView;
use super::views::CallSummary;
use super::views::LiveStreamView;
use super::views::StatsView;
use super::views::TelerInitiatedView;
use crate::calls::CredentialProblem;
use crate::calls::outbound::{OutboundError, OutboundRequest};
use crate::calls::recordings::RecordingError;
use crate::calls::transfer::TransferTo;
use crate::domain::call::{CallStatus, CallType};
use crate::domain::control::ControlRequest;
use crate::domain::ids::AssistantId;
use crate::domain::ids::TenantId;
use crate::domain::phone::PhoneNumber;
use crate::domain::validation::ValidationError;
use crate::providers::teler::TelerError;
use crate::storage::StorageError;
use crate::storage::call_logs::CallFilter;
use crate::storage::pagination::PageRequest;

/// Longest period one stats request may cover.
const MAX_STATS_DAYS: i64 = 366;
/// Period of a stats request that names no start.
const DEFAULT_STATS_DAYS: i64 = 30;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    // The fixed paths come before `{call_id}`, which would match them too.
    cfg.service(resource("/api/calls").route(web::get().to(list)))
        .service(resource("/api/calls/initiate").route(web::post().to(initiate)))
        .service(resource("/api/calls/active").route(web::get().to(active)))
        .service(resource("/api/calls/history").route(web::get().to(history)))
        .service(resource("/api/calls/stats").route(web::get().to(stats)))
        .service(resource("/api/calls/{call_id}").route(web::get().to(get)))
        .service(resource("/api/calls/{call_id}/status").route(web::get().to(status)))
        .service(resource("/api/calls/{call_id}/hangup").route(web::post().to(hangup)))
        .service(resource("/api/calls/{call_id}/recording").route(web::get().to(recording)))
        .service(resource("/api/calls/{call_id}/transfer").route(web::post().to(transfer)))
        .service(resource("/api/admin/calls").route(web::get().to(admin_list)));
}

/// Query parameters of the call lists. Values are parsed here, not by serde, so that an error
/// names the parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsQuery {
    /// Only calls with this status.
    #[param(value_type = Option<CallStatus>)]
    pub status: Option<String>,
    /// Only calls in this direction.
    #[param(value_type = Option<CallType>)]
    pub call_type: Option<String>,
    /// Only calls handled by this assistant (its id).
    pub assistant_id: Option<String>,
    /// Only calls from or to this number (E.164 or a common way of writing it).
    pub phone_number: Option<String>,
    /// Only calls from this number.
    pub from: Option<String>,
    /// Only calls to this number.
    pub to: Option<String>,
    /// Only calls created at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub created_after: Option<String>,
    /// Only calls created before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub created_before: Option<String>,
    /// Only analysed calls whose analysis judged them a success (`true`) or not (`false`).
    #[param(value_type = Option<bool>)]
    pub analysis_success: Option<String>,
    /// Items per page: default 50; values outside 1 to 200 are clamped.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Admin API only: only calls of this tenant (its id). Refused (422) on the tenant API.
    pub user_id: Option<String>,
}

impl CallsQuery {
    fn filter(&self) -> Result<CallFilter, ApiError> {
        let mut filter = CallFilter::default();
        if let Some(status) = &self.status {
            filter.statuses = Some(vec![CallStatus::from_str(status).map_err(|_| {
                invalid("status", "must be one of initiated, ringing, in-progress, completed, busy, failed, no-answer")
            })?]);
        }
        if let Some(call_type) = &self.call_type {
            filter.call_type = Some(
                CallType::from_str(call_type)
                    .map_err(|_| invalid("call_type", "must be inbound or outbound"))?,
            );
        }
        if let Some(assistant) = &self.assistant_id {
            filter.assistant_id = Some(
                assistant
                    .parse::<AssistantId>()
                    .map_err(|_| invalid("assistant_id", "is not an id"))?,
            );
        }
        filter.phone_number = number("phone_number", self.phone_number.as_deref())?;
        filter.from_number = number("from", self.from.as_deref())?;
        filter.to_number = number("to", self.to.as_deref())?;
        filter.created_after = timestamp("created_after", self.created_after.as_deref())?;
        filter.created_before = timestamp("created_before", self.created_before.as_deref())?;
        filter.analysis_success = match self.analysis_success.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(invalid("analysis_success", "must be true or false")),
        };
        Ok(filter)
    }

    fn page(&self) -> Result<PageRequest, ApiError> {
        ListQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()
    }

    fn for_tenant(&self, tenant: &Tenant) -> Result<CallFilter, ApiError> {
        if self.user_id.is_some() {
            return Err(invalid("user_id", "is only for the admin API"));
        }
        let mut filter = self.filter()?;
        filter.user_id = Some(tenant.id());
        Ok(filter)
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ValidationError::new(field, message).into()
}

fn number(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    value
        .map(|value| {
            PhoneNumber::parse_field(field, value).map(|number| number.as_str().to_owned())
        })
        .transpose()
        .map_err(ApiError::from)
}

fn timestamp(field: &str, value: Option<&str>) -> Result<Option<bson::DateTime>, ApiError> {
    value
        .map(|value| {
            DateTime::parse_from_rfc3339(value)
                .map(|at| bson::DateTime::from_chrono(at.with_timezone(&Utc)))
                .map_err(|_| {
                    invalid(
                        field,
                        "must be an RFC 3339 time such as 2026-01-31T00:00:00Z",
                    )
                })
        })
        .transpose()
}

async fn page_of(
    state: &AppState,
    filter: &CallFilter,
    page: &PageRequest,
) -> Result<HttpResponse, ApiError> {
    let page = state.shared.storage.call_logs().list(filter, page).await?;
    let items = page.items.iter().map(CallSummary::from).collect();
    Ok(envelope::list(items, page.next_cursor))
}

/// The tenant's calls, newest first, with optional filters.
#[utoipa::path(
    get,
    path = "/api/calls",
    tag = "calls",
    operation_id = "list_calls",
    summary = "List calls",
    params(CallsQuery),
    responses(
        (status = 200, description = "A page of calls", body = ListEnvelope<CallSummary>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 422, description = "A filter value is invalid (`validation_failed`; the message names the parameter), or `user_id` was given", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<CallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    page_of(&state, &query.for_tenant(&tenant)?, &query.page()?).await
}

/// Calls not yet ended (initiated, ringing, in progress).
#[utoipa::path(
    get,
    path = "/api/calls/active",
    tag = "calls",
    operation_id = "list_active_calls",
    summary = "List live calls",
    params(CallsQuery),
    responses(
        (status = 200, description = "A page of calls not yet ended (a terminal `status` filter matches none), whichever instance handles them; a call whose media stream is live carries `bridged`, and one bridged by the instance that answers also its `stream`", body = ListEnvelope<CallSummary>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 422, description = "A filter value is invalid (`validation_failed`; the message names the parameter), or `user_id` was given", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn active(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<CallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let mut filter = query.for_tenant(&tenant)?;
    filter.statuses = restrict(&filter.statuses, |status| !status.is_terminal());
    let page = state
        .shared
        .storage
        .call_logs()
        .list(&filter, &query.page()?)
        .await?;
    let items = page
        .items
        .iter()
        .map(|call| CallSummary {
            stream: state
                .bridge
                .live
                .get(tenant.user.id, call.id)
                .map(|live| LiveStreamView::from(&live)),
            ..CallSummary::from(call)
        })
        .collect();
    Ok(envelope::list(items, page.next_cursor))
}

/// Ended calls (completed, busy, failed, no-answer).
#[utoipa::path(
    get,
    path = "/api/calls/history",
    tag = "calls",
    operation_id = "list_ended_calls",
    summary = "List ended calls",
    params(CallsQuery),
    responses(
        (status = 200, description = "A page of ended calls (a live `status` filter matches none)", body = ListEnvelope<CallSummary>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 422, description = "A filter value is invalid (`validation_failed`; the message names the parameter), or `user_id` was given", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn history(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<CallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let mut filter = query.for_tenant(&tenant)?;
    filter.statuses = restrict(&filter.statuses, CallStatus::is_terminal);
    page_of(&state, &filter, &query.page()?).await
}

/// The statuses allowed by both the client's `status` (if any) and the view. May be empty
/// (e.g. `active?status=completed`), which matches no call.
fn restrict(
    requested: &Option<Vec<CallStatus>>,
    allowed: impl Fn(CallStatus) -> bool,
) -> Option<Vec<CallStatus>> {
    let candidates = requested
        .clone()
        .unwrap_or_else(|| CallStatus::ALL.to_vec());
    Some(
        candidates
            .into_iter()
            .filter(|status| allowed(*status))
            .collect(),
    )
}

/// One call with its status history and transcript.
#[utoipa::path(
    get,
    path = "/api/calls/{call_id}",
    tag = "calls",
    operation_id = "get_call",
    summary = "Get a call",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "The call", body = Envelope<CallDetail>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "call")?;
    let call = state
        .shared
        .storage
        .call_logs()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("call"))?;
    Ok(envelope::ok(CallDetail::from(&call)))
}

#[utoipa::path(
    get,
    path = "/api/calls/{call_id}/status",
    tag = "calls",
    operation_id = "get_call_status",
    summary = "Get a call's status",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 200, description = "The call's status", body = Envelope<CallStatusView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn status(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "call")?;
    let call = state
        .shared
        .storage
        .call_logs()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("call"))?;
    Ok(envelope::ok(CallStatusView::from(&call)))
}

/// Body of `POST /api/calls/initiate`: the Teler backend's initiate request. `flow_url` and
/// `status_callback_url` are accepted in the schema only to refuse them by name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelerInitiateBody {
    /// One of the tenant's active numbers, E.164.
    #[schema(example = "+919876543210")]
    pub from_number: String,
    /// Who to call, E.164.
    #[schema(example = "+14155550123")]
    pub to_number: String,
    /// The assistant to talk; by default the one assigned to `from_number`.
    pub assistant_id: Option<String>,
    /// Refused (`caller_urls_not_supported`): voxbridge always uses its own flow URL.
    #[schema(value_type = Option<String>)]
    pub flow_url: Option<serde_json::Value>,
    /// Refused (`caller_urls_not_supported`): voxbridge always uses its own status URL.
    #[schema(value_type = Option<String>)]
    pub status_callback_url: Option<serde_json::Value>,
}

/// Places an outbound call, as the Teler backend this product grew from did: the same request
/// and answer fields, inside our envelope. The same call as `POST /api/frejun/initiate-call`.
#[utoipa::path(
    post,
    path = "/api/calls/initiate",
    tag = "calls",
    operation_id = "initiate_call_teler_style",
    summary = "Place an outbound call (the Teler backend's request)",
    description = "An alias of `POST /api/frejun/initiate-call` for software written against         the Teler backend: `{from_number, to_number, assistant_id?}`. The assistant is the one         assigned to `from_number` unless `assistant_id` is given. `flow_url` and         `status_callback_url` are refused (`caller_urls_not_supported`): voxbridge always uses         its own, so that every call is bridged and logged.",
    request_body = TelerInitiateBody,
    responses(
        (status = 200, description = "Teler accepted the call", body = Envelope<TelerInitiatedView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant (`not_found`)", body = ErrorEnvelope),
        (status = 422, description = "A caller-supplied `flow_url` or `status_callback_url` (`caller_urls_not_supported`), an invalid field (`validation_failed`, `invalid_body`), a missing key (`missing_credentials`) or FreJun's refusal (`frejun_key_invalid`, `from_number_not_provisioned`, `telephony_validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "At the concurrent-call limit (`concurrency_limit`), or FreJun is rate limiting (`telephony_rate_limited`)", body = ErrorEnvelope),
        (status = 502, description = "FreJun is unavailable (`telephony_unavailable`, `telephony_rejected`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
        (status = 504, description = "FreJun did not answer in time (`telephony_timeout`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn initiate(
    tenant: Tenant,
    body: Json<TelerInitiateBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    for (field, value) in [
        ("flow_url", &body.flow_url),
        ("status_callback_url", &body.status_callback_url),
    ] {
        if value.is_some() {
            return Err(ApiError::new(
                ErrorCode::CallerUrlsNotSupported,
                format!(
                    "{field}: voxbridge always uses its own flow and status URLs, so that every \
                     call is bridged and logged; leave {field} out"
                ),
            ));
        }
    }
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
    Ok(envelope::ok(TelerInitiatedView::from(&placed)))
}

/// The call's recording: a redirect to a fresh signed URL from FreJun's recordings API (asked
/// with the tenant's FreJun key), or to the recording URL FreJun reported.
#[utoipa::path(
    get,
    path = "/api/calls/{call_id}/recording",
    tag = "calls",
    operation_id = "get_call_recording",
    summary = "Get a call's recording",
    description = "Answers 302 to the recording: a signed URL from FreJun's recordings API,         valid for 15 minutes (download it without your credentials), when FreJun reported the         recording's id; else the `https` recording URL FreJun reported. 404 `no_recording` when         there is neither.",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 302, description = "`Location` is the recording"),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`), or it has no recording (`no_recording`)", body = ErrorEnvelope),
        (status = 422, description = "No FreJun API key is stored (`missing_credentials`) or FreJun refused it (`frejun_key_invalid`)", body = ErrorEnvelope),
        (status = 502, description = "FreJun is unavailable (`telephony_unavailable`, `telephony_rejected`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
        (status = 504, description = "FreJun did not answer in time (`telephony_timeout`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn recording(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "call")?;
    let call = state
        .shared
        .storage
        .call_logs()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("call"))?;
    let location = match (&call.recording_id, &call.recording_url) {
        (Some(recording_id), _) => state
            .calls
            .recording_url(&tenant.user, recording_id)
            .await
            .map_err(|err| match err {
                RecordingError::Credential(CredentialProblem::Missing) => ApiError::new(
                    ErrorCode::MissingCredentials,
                    "store your FreJun API key with PUT /api/me/credentials first: the \
                     recording is fetched with it",
                ),
                RecordingError::Credential(CredentialProblem::Unreadable) => ApiError::new(
                    ErrorCode::CredentialsUnreadable,
                    "your FreJun API key does not decrypt with the configured master keys",
                ),
                RecordingError::Teler(err) => {
                    let (code, detail) = teler_error(&err);
                    ApiError::new(code, detail)
                }
            })?
            .to_string(),
        (None, Some(url)) => url.clone(),
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::NoRecording,
                "this call has no recording: FreJun reported none (the assistant may have \
                 recording off, or FreJun has not sent it yet)",
            ));
        }
    };
    Ok(HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish())
}

/// Body of `POST /api/calls/{id}/transfer`: exactly one of `destination_id` and `number`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    /// One of the call's assistant's `transfer_call` destinations (a number or a SIP URI).
    #[schema(example = "billing")]
    pub destination_id: Option<String>,
    /// A phone number, E.164.
    #[schema(example = "+14155550199")]
    pub number: Option<String>,
}

/// Transfers a live call (cold) through FreJun, to one of its assistant's transfer
/// destinations or to a phone number. The call leaves voxbridge: the log records `end_reason:
/// transferred` at once, and the bridge does not hang it up.
#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/transfer",
    tag = "calls",
    operation_id = "transfer_call",
    summary = "Transfer a live call",
    params(("call_id" = String, Path, description = "The call's id")),
    request_body = TransferBody,
    responses(
        (status = 202, description = "FreJun started the transfer; the call's status as it stands", body = Envelope<CallStatusView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The call is over (`call_not_live`) or FreJun has not named it yet (`call_not_placed`)", body = ErrorEnvelope),
        (status = 422, description = "Neither or both of `destination_id` and `number`, a `number` that is not a phone number, a `destination_id` the assistant does not have (`validation_failed`), no FreJun API key is stored (`missing_credentials`), or FreJun refused (`frejun_key_invalid`, `telephony_validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "FreJun is rate limiting (`telephony_rate_limited`)", body = ErrorEnvelope),
        (status = 502, description = "FreJun is unavailable or refused the transfer (`telephony_unavailable`, `telephony_rejected`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
        (status = 504, description = "FreJun did not answer in time (`telephony_timeout`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn transfer(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "call")?;
    let body = body.into_inner()?;
    let to = match (body.destination_id, body.number) {
        (Some(destination), None) => TransferTo::Destination(destination),
        (None, Some(number)) => TransferTo::Number(number),
        _ => {
            return Err(ValidationError::new(
                "destination_id",
                "give exactly one of destination_id and number",
            )
            .into());
        }
    };
    let call = state
        .calls
        .transfer(&tenant.user, id, to)
        .await
        .map_err(live_control_error)?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "success": true,
        "data": CallStatusView::from(&call),
    })))
}

/// Ends a live call through FreJun (Teler's hang-up endpoint). The call log records the
/// request at once (`end_reason` `hung_up_by_api`); FreJun's status webhook then closes it.
/// The instance bridging the call, whichever it is, is told too, so the media stream ends now
/// rather than when FreJun gets round to closing it.
#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/hangup",
    tag = "calls",
    operation_id = "hang_up_call",
    summary = "Hang up a live call",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 202, description = "FreJun accepted the hang-up; the call's status as it stands", body = Envelope<CallStatusView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The call is over (`call_not_live`) or FreJun has not named it yet (`call_not_placed`)", body = ErrorEnvelope),
        (status = 422, description = "No FreJun API key is stored (`missing_credentials`) or FreJun refused it (`frejun_key_invalid`)", body = ErrorEnvelope),
        (status = 429, description = "FreJun is rate limiting (`telephony_rate_limited`)", body = ErrorEnvelope),
        (status = 502, description = "FreJun is unavailable (`telephony_unavailable`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
        (status = 504, description = "FreJun did not answer in time (`telephony_timeout`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn hangup(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "call")?;
    let call = state
        .calls
        .hang_up(&tenant.user, id)
        .await
        .map_err(live_control_error)?;
    // FreJun has it; the bridge stopping at once is a courtesy that may find the stream gone.
    if let Err(err) = state
        .bridge
        .control
        .control(tenant.user.id, id, ControlRequest::HangUp)
        .await
    {
        tracing::debug!(call_id = %id, error = %err, "the hung-up call's bridge was not told");
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "success": true,
        "data": CallStatusView::from(&call),
    })))
}

/// The answer when controlling a live call (hang-up, transfer) fails. FreJun not knowing the
/// call, or saying it is not live, is 409 `call_not_live`; any other Teler failure is mapped as
/// usual, without the "marked failed" of a refused dial: the call goes on where it was.
fn live_control_error(err: OutboundError) -> ApiError {
    match err {
        OutboundError::Storage(StorageError::NotFound) => ApiError::not_found("call not found"),
        OutboundError::Teler {
            source: TelerError::NotFound { .. },
            ..
        } => ApiError::new(ErrorCode::CallNotLive, "FreJun says the call is not live"),
        OutboundError::Teler {
            source: TelerError::Conflict { code, message },
            ..
        } if code.as_deref() == Some("call_not_live") => {
            ApiError::new(ErrorCode::CallNotLive, format!("FreJun: {message}"))
        }
        OutboundError::Teler { source, .. } => {
            let (code, detail) = teler_error(&source);
            ApiError::new(code, detail)
        }
        other => other.into(),
    }
}

/// The period and scope of call statistics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    /// Start of the period (RFC 3339, inclusive). Default: 30 days before its end. The period
    /// may cover at most 366 days.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub created_after: Option<String>,
    /// End of the period (RFC 3339, exclusive). Default: now.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub created_before: Option<String>,
    /// Only calls handled by this assistant (its id).
    pub assistant_id: Option<String>,
}

/// Counts and totals over `[created_after, created_before)`: the last 30 days by default, at
/// most 366 days.
#[utoipa::path(
    get,
    path = "/api/calls/stats",
    tag = "calls",
    operation_id = "call_stats",
    summary = "Call statistics",
    params(StatsQuery),
    responses(
        (status = 200, description = "Counts and totals over the period", body = Envelope<StatsView>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 422, description = "A time is not RFC 3339, the period is empty or longer than 366 days, or `assistant_id` is not an id (`validation_failed`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn stats(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let before = timestamp("created_before", query.created_before.as_deref())?
        .map(bson::DateTime::to_chrono)
        .unwrap_or_else(Utc::now);
    let after = timestamp("created_after", query.created_after.as_deref())?
        .map(bson::DateTime::to_chrono)
        .unwrap_or(before - Duration::days(DEFAULT_STATS_DAYS));
    if after >= before {
        return Err(invalid("created_after", "must be before created_before"));
    }
    if before - after > Duration::days(MAX_STATS_DAYS) {
        return Err(invalid(
            "created_after",
            "the period may cover at most 366 days",
        ));
    }
    let filter = CallFilter {
        user_id: Some(tenant.id()),
        assistant_id: query
            .assistant_id
            .as_deref()
            .map(|text| {
                text.parse::<AssistantId>()
                    .map_err(|_| invalid("assistant_id", "is not an id"))
            })
            .transpose()?,
        created_after: Some(bson::DateTime::from_chrono(after)),
        created_before: Some(bson::DateTime::from_chrono(before)),
        ..CallFilter::default()
    };
    let stats = state.shared.storage.call_logs().stats(&filter).await?;
    Ok(envelope::ok(StatsView::new(after, before, stats)))
}

/// Calls across tenants, newest first: the tenant list's filters plus `user_id`.
#[utoipa::path(
    get,
    path = "/api/admin/calls",
    tag = "admin",
    operation_id = "admin_list_calls",
    summary = "List calls across tenants",
    params(CallsQuery),
    responses(
        (status = 200, description = "A page of calls", body = ListEnvelope<CallSummary>),
        (status = 400, response = InvalidQuery),
        (status = 401, response = AdminUnauthorized),
        (status = 422, description = "A filter value is invalid (`validation_failed`; the message names the parameter)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("admin_token" = [])),
)]
async fn admin_list(
    _: Admin,
    state: web::Data<AppState>,
    query: Query<CallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let mut filter = query.filter()?;
    if let Some(user) = &query.user_id {
        filter.user_id =
            Some(user.parse::<TenantId>().map_err(|_| {
                ApiError::new(ErrorCode::ValidationFailed, "user_id: is not an id")
            })?);
    }
    page_of(&state, &filter, &query.page()?).await
}
