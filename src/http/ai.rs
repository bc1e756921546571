//! Text AI for tenants (docs/api.md, "Text AI" and "Post-call analysis"):
//! `POST /api/ai/conversation` (the Teler backend's chat endpoint: a history and the current
//! input in, the model's reply out), `GET /api/ai/status` (each provider's configuration and
//! last outcome, and a rate-limited live probe), and `POST /api/calls/{id}/analyze` (run a
//! call's post-call analysis again).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope};
use super::error::{ApiError, not_found_as};
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::{Json, Query, parse_id};
use crate::calls::call_view::AnalysisView;
use crate::calls::text_ai::{Purpose, Unavailable};
use crate::domain::ids::{AssistantId, CallId};
use crate::domain::text_ai::{ConversationRequest, Finish, TextProvider, TextUsage};
use crate::providers::text::TextRequest;
use crate::storage::users::UserRecord;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/api/ai/conversation").route(web::post().to(conversation)))
        .service(resource("/api/ai/status").route(web::get().to(status)))
        .service(resource("/api/calls/{call_id}/analyze").route(web::post().to(analyze)));
}

/// The model's reply.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationReply {
    /// The reply's text (for a refusal, the model's explanation).
    pub reply: String,
    pub provider: TextProvider,
    /// The model that answered, as the provider names it.
    pub model: String,
    pub usage: TextUsage,
    /// The provider's own reason, e.g. `end_turn` (Anthropic), `completed` (Responses),
    /// `stop` or `length` (Chat Completions), `refusal`.
    pub stop_reason: String,
    /// The same for every provider: `complete`, `truncated` (at `max_tokens`) or `refused`.
    pub finish: Finish,
}

/// Answers a conversation: the history and the current input go to the text provider, with
/// the assistant's instructions (of `assistant_id`, else of the call's assistant) and the
/// context as the system prompt.
#[utoipa::path(
    post,
    path = "/api/ai/conversation",
    tag = "text ai",
    operation_id = "ai_conversation",
    summary = "Reply to a conversation",
    request_body = ConversationRequest,
    responses(
        (status = 200, description = "The model's reply", body = Envelope<ConversationReply>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant or call (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The provider has no key or model (`text_ai_not_configured`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 429, description = "More than `text_ai.max_concurrent_per_tenant` requests of the tenant are waiting on a provider (`rate_limited`), or the key's rate limit", body = ErrorEnvelope),
        (status = 502, description = "The provider refused the key (`ai_provider_auth_failed`) or the request (`ai_provider_rejected`)", body = ErrorEnvelope),
        (status = 503, description = "The provider kept failing (`ai_provider_unavailable`), or the database is unavailable (`database_unavailable`)", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time (`ai_provider_timeout`)", body = ErrorEnvelope),
    ),
    security(("api_key" = [])),
)]
async fn conversation(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: Json<ConversationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    body.validate()?;
    let calls = &state.calls;
    let limit = state.shared.settings.text_ai.max_concurrent_per_tenant;
    let Some(_pass) = calls.text_gate.enter(tenant.id(), limit) else {
        return Err(ApiError::rate_limited(
            format!(
                "at most {limit} conversation requests may wait on a provider at once; retry \
                 when one has answered"
            ),
            Duration::from_secs(1),
        ));
    };
    let instructions = instructions_for(&state, &tenant, &body).await?;
    let resolved =
        calls.resolve_text_provider(&tenant.user, body.provider, body.model.as_deref())?;
    let request = TextRequest {
        model: resolved.model.clone(),
        system: body.system_prompt(instructions.as_deref()),
        messages: body.messages(),
        max_tokens: body
            .max_tokens
            .unwrap_or(ConversationRequest::DEFAULT_MAX_TOKENS),
        json_schema: None,
    };
    let reply = calls
        .complete_text(&tenant.user, &resolved, &request, Purpose::Conversation)
        .await?;
    Ok(envelope::ok(ConversationReply {
        reply: reply.text,
        provider: resolved.endpoint.provider,
        model: if reply.model.is_empty() {
            resolved.model
        } else {
            reply.model
        },
        usage: reply.usage,
        stop_reason: reply.stop_reason,
        finish: reply.finish,
    }))
}

/// The system prompt's instructions: the named assistant's, else the named call's assistant's.
/// A foreign or unknown id answers 404.
async fn instructions_for(
    state: &AppState,
    tenant: &Tenant,
    body: &ConversationRequest,
) -> Result<Option<String>, ApiError> {
    let storage = &state.shared.storage;
    // A call named is always checked, even when the assistant is named too.
    let call_assistant = match &body.call_id {
        Some(call) => {
            let call_id = parse_id::<CallId>(call, "call")?;
            storage
                .call_logs()
                .get(tenant.id(), call_id)
                .await
                .map_err(not_found_as("call"))?
                .assistant_id
        }
        None => None,
    };
    let assistant_id = match &body.assistant_id {
        Some(assistant) => Some(parse_id::<AssistantId>(assistant, "assistant")?),
        None => call_assistant,
    };
    let Some(assistant_id) = assistant_id else {
        return Ok(None);
    };
    let assistant = storage.assistants().get(tenant.id(), assistant_id).await;
    match (assistant, &body.assistant_id) {
        (Ok(assistant), _) => Ok(Some(assistant.spec.instructions)),
        // The named assistant must exist; a call's deleted assistant just has no prompt.
        (Err(err), Some(_)) => Err(not_found_as("assistant")(err)),
        (Err(crate::storage::StorageError::NotFound), None) => Ok(None),
        (Err(err), None) => Err(err.into()),
    }
}

/// `?check=true` probes the providers (rate-limited).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusQuery {
    /// `true`: also send each configured provider a one-word request now. Allowed once per
    /// `text_ai.check_interval_secs` (60 s by default) per tenant; sooner answers 429.
    #[param(value_type = Option<bool>)]
    pub check: Option<String>,
}

/// The text providers as the tenant can use them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AiStatusView {
    /// The provider used when none is named.
    pub default_provider: TextProvider,
    pub providers: Vec<ProviderStatusView>,
    /// The probe's results, with `?check=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<ProbeView>>,
}

/// One provider.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderStatusView {
    pub provider: TextProvider,
    /// Whether requests can be sent (a key, and a model and base URL where needed).
    pub configured: bool,
    /// Whose key is used: `tenant` or `platform`; `null` when none.
    pub key_source: Option<&'static str>,
    /// The model used when none is named.
    pub model: Option<String>,
    /// The tenant's own Chat Completions server, when requests go there; `null` for the
    /// operator's endpoints (which may be internal proxies, not the tenant's to see).
    pub base_url: Option<String>,
    /// What is missing, when not configured.
    pub problem: Option<String>,
    /// The tenant's last request to this provider (conversation, analysis or probe).
    pub last_call: Option<LastCallView>,
}

/// How the last request went.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LastCallView {
    pub ok: bool,
    pub at: DateTime<Utc>,
    /// From sending to the answer, retries included.
    pub latency_ms: u64,
    pub model: String,
    /// `conversation`, `analysis` or `check`.
    pub purpose: String,
    /// `auth_failed`, `rate_limited`, `unavailable`, `timeout`, `connect_failed`, `rejected`,
    /// `invalid_response` or `refused_address`.
    pub error_code: Option<String>,
    pub error: Option<String>,
}

/// One provider's probe.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeView {
    pub provider: TextProvider,
    pub ok: bool,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

fn provider_views(state: &AppState, user: &UserRecord) -> Vec<ProviderStatusView> {
    TextProvider::ALL
        .into_iter()
        .map(|provider| {
            let last_call =
                user.text_ai
                    .last_calls
                    .get(provider.as_str())
                    .map(|last| LastCallView {
                        ok: last.ok,
                        at: last.at.to_chrono(),
                        latency_ms: last.latency_ms,
                        model: last.model.clone(),
                        purpose: last.purpose.clone(),
                        error_code: last.error_code.clone(),
                        error: last.error.clone(),
                    });
            match state
                .calls
                .resolve_text_provider(user, Some(provider), None)
            {
                Ok(resolved) => ProviderStatusView {
                    provider,
                    configured: true,
                    key_source: Some(resolved.key_source.as_str()),
                    model: Some(resolved.model),
                    base_url: resolved
                        .tenant_url
                        .then(|| resolved.endpoint.base_url.to_string()),
                    problem: None,
                    last_call,
                },
                Err(problem) => ProviderStatusView {
                    provider,
                    configured: false,
                    key_source: None,
                    model: None,
                    base_url: None,
                    problem: Some(match problem {
                        Unavailable::NotConfigured(what) => what,
                        Unavailable::Unreadable => {
                            "the stored key does not decrypt with the configured master keys"
                                .to_owned()
                        }
                    }),
                    last_call,
                },
            }
        })
        .collect()
}

/// Whether each text provider is configured for the tenant (its key or the platform's), the
/// model it would use, and how the last request to it went. No request is made unless
/// `?check=true`.
#[utoipa::path(
    get,
    path = "/api/ai/status",
    tag = "text ai",
    operation_id = "ai_status",
    summary = "Text providers' status",
    params(StatusQuery),
    responses(
        (status = 200, description = "Each provider", body = Envelope<AiStatusView>),
        (status = 400, description = "`check` is not `true` or `false` (`invalid_query`)", body = ErrorEnvelope),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 429, description = "A probe was made less than `text_ai.check_interval_secs` ago (`rate_limited`, with `Retry-After`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn status(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner()?;
    let check = match query.check.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::new(
                super::error::ErrorCode::InvalidQuery,
                "check: must be true or false",
            ));
        }
    };
    let mut user = tenant.user;
    let mut probes = None;
    if check {
        let interval = Duration::from_secs(state.shared.settings.text_ai.check_interval_secs);
        let Some(results) = state.calls.check_text_providers(&user).await? else {
            // The wait left since the last probe (as this request read it), else the whole
            // interval.
            let left = user
                .text_ai
                .checked_at
                .map(|at| {
                    let next = at.timestamp_millis() + interval.as_millis() as i64;
                    let left = next - bson::DateTime::now().timestamp_millis();
                    Duration::from_millis(left.clamp(0, interval.as_millis() as i64) as u64)
                })
                .unwrap_or(interval);
            return Err(ApiError::rate_limited(
                format!(
                    "providers may be probed once every {} seconds",
                    interval.as_secs()
                ),
                left,
            ));
        };
        probes = Some(
            results
                .into_iter()
                .map(|result| ProbeView {
                    provider: result.provider,
                    ok: result.outcome.is_ok(),
                    latency_ms: result
                        .outcome
                        .as_ref()
                        .ok()
                        .map(|took| took.as_millis() as u64),
                    error: result.outcome.err(),
                })
                .collect(),
        );
        // The probe recorded its outcomes: show them.
        user = state.shared.storage.users().get(user.id).await?;
    }
    Ok(envelope::ok(AiStatusView {
        default_provider: state.shared.settings.text_ai.default_provider,
        providers: provider_views(&state, &user),
        check: probes,
    }))
}

/// The call's post-call analysis, queued again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnalyzeAnswer {
    pub call_id: String,
    pub analysis: Option<AnalysisView>,
}

/// Runs the call's post-call analysis again (with the assistant's current `analysis`
/// settings), replacing a finished one; a pending one is left to finish. Poll
/// `GET /api/calls/{id}` (or receive `call.analyzed`) for the result.
#[utoipa::path(
    post,
    path = "/api/calls/{call_id}/analyze",
    tag = "calls",
    operation_id = "analyze_call",
    summary = "Analyse a call again",
    params(("call_id" = String, Path, description = "The call's id")),
    responses(
        (status = 202, description = "Queued (or still pending)", body = Envelope<AnalyzeAnswer>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such call (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The call has not ended (`call_still_live`), or its assistant has no analysis enabled (`analysis_not_enabled`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn analyze(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let call_id = parse_id::<CallId>(&path, "call")?;
    let call = state.calls.reanalyze(tenant.id(), call_id).await?;
    tracing::info!(call_id = %call.id, "post-call analysis asked for again");
    Ok(envelope::accepted(AnalyzeAnswer {
        call_id: call.id.to_string(),
        analysis: call.analysis.as_ref().map(AnalysisView::from),
    }))
}
