//! Tenants' assistants: create, list, get, partial update, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope, Warning};
use super::error::ErrorCode;
use super::error::{ApiError, not_found_as};
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, InvalidQuery, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::{Json, Query};
use super::extract::{ListQuery, parse_id};
use super::views::AssistantView;
use super::views::Deleted;
use crate::domain::assistant::{AssistantPatch, AssistantSpec, NewAssistant};
use crate::domain::ids::AssistantId;
use crate::domain::model_retirement::{self, ModelNotice};
use crate::storage::assignments::DeleteOutcome;
use crate::storage::assistants::{self, AssistantRecord};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/api/assistants")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/api/assistants/{assistant_id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

/// Creates an assistant. Only `name` is required; the answer shows every default filled in.
#[utoipa::path(
    post,
    path = "/api/assistants",
    tag = "assistants",
    operation_id = "create_assistant",
    summary = "Create an assistant",
    request_body = NewAssistant,
    responses(
        (status = 201, description = "The assistant", body = Envelope<AssistantView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 413, response = PayloadTooLarge),
        (status = 409, description = "An `http` tool needs the tenant's tool signing secret (`signing_secret_required`)", body = ErrorEnvelope),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn create(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: Json<NewAssistant>,
) -> Result<HttpResponse, ApiError> {
    let spec = AssistantSpec::from_new(
        body.into_inner()?,
        &state.shared.settings.openai.default_model,
    )?;
    state.calls.check_tools(&tenant.user, &spec)?;
    // A new assistant names every model it uses, whether the request did or the default did.
    let warnings = model_warnings(model_retirement::check(&spec, today(), |_| true)?);
    let now = bson::DateTime::now();
    let record = AssistantRecord {
        id: AssistantId::new(),
        user_id: tenant.id(),
        spec,
        created_at: now,
        updated_at: now,
        schema_version: assistants::SCHEMA_VERSION,
    };
    state.shared.storage.assistants().insert(&record).await?;
    Ok(envelope::with_warnings(
        StatusCode::CREATED,
        AssistantView::from(record),
        warnings,
    ))
}

#[utoipa::path(
    get,
    path = "/api/assistants",
    tag = "assistants",
    operation_id = "list_assistants",
    summary = "List assistants",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the tenant's assistants", body = ListEnvelope<AssistantView>),
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
        .assistants()
        .list(tenant.id(), &query.into_inner()?.page()?)
        .await?;
    let page = page.map(AssistantView::from);
    Ok(envelope::list(page.items, page.next_cursor))
}

#[utoipa::path(
    get,
    path = "/api/assistants/{assistant_id}",
    tag = "assistants",
    operation_id = "get_assistant",
    summary = "Get an assistant",
    params(("assistant_id" = String, Path, description = "The assistant's id")),
    responses(
        (status = 200, description = "The assistant", body = Envelope<AssistantView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "assistant")?;
    let record = state
        .shared
        .storage
        .assistants()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("assistant"))?;
    Ok(envelope::ok(AssistantView::from(record)))
}

/// Replaces the fields the body names (nested objects whole); `{}` changes nothing.
#[utoipa::path(
    patch,
    path = "/api/assistants/{assistant_id}",
    tag = "assistants",
    operation_id = "update_assistant",
    summary = "Update an assistant",
    params(("assistant_id" = String, Path, description = "The assistant's id")),
    request_body = AssistantPatch,
    responses(
        (status = 200, description = "The updated assistant", body = Envelope<AssistantView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "An `http` tool needs the tenant's tool signing secret (`signing_secret_required`)", body = ErrorEnvelope),
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
    body: Json<AssistantPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "assistant")?;
    let repository = state.shared.storage.assistants();
    let current = repository
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("assistant"))?;
    let patch = body.into_inner()?;
    if patch.is_empty() {
        return Ok(envelope::ok(AssistantView::from(current)));
    }
    let names_model = patch.model.is_some();
    let names_transcription = patch.transcription.is_some();
    let names_tools = patch.tools.is_some();
    let spec = current.spec.apply(patch)?;
    if names_tools {
        state.calls.check_tools(&tenant.user, &spec)?;
    }
    let notices = model_retirement::check(&spec, today(), |field| match field {
        "model" => names_model,
        _ => names_transcription,
    })?;
    let record = repository
        .replace_spec(tenant.id(), id, &spec, bson::DateTime::now())
        .await
        .map_err(not_found_as("assistant"))?;
    Ok(envelope::with_warnings(
        StatusCode::OK,
        AssistantView::from(record),
        model_warnings(notices),
    ))
}

/// Refused with 409 while a number routes calls to the assistant: unassign it first.
#[utoipa::path(
    delete,
    path = "/api/assistants/{assistant_id}",
    tag = "assistants",
    operation_id = "delete_assistant",
    summary = "Delete an assistant",
    params(("assistant_id" = String, Path, description = "The assistant's id")),
    responses(
        (status = 200, description = "The assistant is deleted", body = Envelope<Deleted>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such assistant for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "Phone numbers are assigned to the assistant; unassign them first (`assistant_in_use`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn delete(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "assistant")?;
    match state
        .shared
        .storage
        .delete_assistant(tenant.id(), id)
        .await?
    {
        DeleteOutcome::Deleted => {}
        DeleteOutcome::NotFound => return Err(ApiError::not_found("assistant not found")),
        DeleteOutcome::InUse(assigned) => {
            return Err(ApiError::new(
                ErrorCode::AssistantInUse,
                format!(
                    "{assigned} phone number(s) are assigned to this assistant; unassign them first"
                ),
            ));
        }
    }
    Ok(envelope::ok(Deleted::of(id)))
}

/// Today's date in UTC, the calendar OpenAI's shutdown dates are in.
fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Each retiring (or retired, untouched) model as a warning of the answer.
fn model_warnings(notices: Vec<ModelNotice>) -> Vec<Warning> {
    notices
        .iter()
        .map(|notice| Warning {
            code: if notice.retired {
                "model_retired"
            } else {
                "model_retiring"
            },
            field: notice.field(),
            message: notice.message(),
        })
        .collect()
}
