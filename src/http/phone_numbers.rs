//! Tenants' phone numbers: add (E.164, unique across the platform), list, get, update status,
//! assign or unassign an assistant, delete.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Tenant;
use super::envelope::{self, Envelope, ErrorEnvelope, ListEnvelope};
use super::error::ErrorCode;
use super::error::{ApiError, not_found_as};
use super::error::{
    DatabaseUnavailable, InvalidBody, InvalidJson, InvalidQuery, PayloadTooLarge, TenantSuspended,
    TenantUnauthorized, UnsupportedMediaType,
};
use super::extract::{Json, Query};
use super::extract::{ListQuery, parse_id};
use super::views::Deleted;
use super::views::PhoneNumberView;
use crate::domain::ids::PhoneNumberId;
use crate::domain::phone::PhoneNumber;
use crate::domain::phone::{Capabilities, NumberStatus};
use crate::storage::StorageError;
use crate::storage::assignments::{AssignOutcome, InsertOutcome};
use crate::storage::phone_numbers::{self, PhoneNumberRecord};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/api/phone-numbers")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        resource("/api/phone-numbers/{number_id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(resource("/api/phone-numbers/{number_id}/assign").route(web::post().to(assign)))
    .service(resource("/api/phone-numbers/{number_id}/unassign").route(web::post().to(unassign)));
}

/// A number to add.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PhoneNumberCreate)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    /// The number, E.164 or a common way of writing it; stored normalised to E.164. Unique
    /// across the platform.
    #[schema(example = "+14155550123")]
    pub phone_number: String,
    /// One of the tenant's assistants, to answer calls to the number.
    pub assistant_id: Option<String>,
}

/// Adds a number, optionally with the assistant that answers it.
#[utoipa::path(
    post,
    path = "/api/phone-numbers",
    tag = "phone-numbers",
    operation_id = "create_phone_number",
    summary = "Add a phone number",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "The number", body = Envelope<PhoneNumberView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "`assistant_id` names no assistant of this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The number is already registered, by any tenant (`phone_number_taken`)", body = ErrorEnvelope),
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
    body: Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let number = PhoneNumber::parse_field("phone_number", &body.phone_number)?;
    let assistant_id = body
        .assistant_id
        .as_deref()
        .map(|text| parse_id(text, "assistant"))
        .transpose()?;
    let now = bson::DateTime::now();
    let record = PhoneNumberRecord {
        id: PhoneNumberId::new(),
        phone_number: number.as_str().to_owned(),
        provider: "frejun".to_owned(),
        user_id: tenant.id(),
        assigned_assistant_id: assistant_id,
        status: NumberStatus::Active,
        capabilities: Capabilities {
            voice: true,
            sms: false,
        },
        created_at: now,
        updated_at: now,
        schema_version: phone_numbers::SCHEMA_VERSION,
    };
    let outcome = state
        .shared
        .storage
        .insert_number(&record)
        .await
        .map_err(|err| match err {
            // Whoever holds it, the answer is the same: the owner is not revealed.
            StorageError::Conflict => ApiError::new(
                ErrorCode::PhoneNumberTaken,
                "this phone number is already registered",
            ),
            other => other.into(),
        })?;
    match outcome {
        InsertOutcome::Inserted => Ok(envelope::created(PhoneNumberView::from(record))),
        // Another tenant's assistant is simply not found.
        InsertOutcome::AssistantNotFound => Err(ApiError::not_found("assistant not found")),
    }
}

#[utoipa::path(
    get,
    path = "/api/phone-numbers",
    tag = "phone-numbers",
    operation_id = "list_phone_numbers",
    summary = "List phone numbers",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the tenant's numbers", body = ListEnvelope<PhoneNumberView>),
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
        .phone_numbers()
        .list(tenant.id(), &query.into_inner()?.page()?)
        .await?;
    let page = page.map(PhoneNumberView::from);
    Ok(envelope::list(page.items, page.next_cursor))
}

#[utoipa::path(
    get,
    path = "/api/phone-numbers/{number_id}",
    tag = "phone-numbers",
    operation_id = "get_phone_number",
    summary = "Get a phone number",
    params(("number_id" = String, Path, description = "The phone number's id (not the number itself)")),
    responses(
        (status = 200, description = "The number", body = Envelope<PhoneNumberView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such phone number for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn get(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "phone number")?;
    let record = state
        .shared
        .storage
        .phone_numbers()
        .get(tenant.id(), id)
        .await
        .map_err(not_found_as("phone number"))?;
    Ok(envelope::ok(PhoneNumberView::from(record)))
}

/// A number's new status.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PhoneNumberUpdate)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRequest {
    pub status: NumberStatus,
}

/// Sets a number's status: an inactive number keeps its assistant but calls to it are refused.
#[utoipa::path(
    patch,
    path = "/api/phone-numbers/{number_id}",
    tag = "phone-numbers",
    operation_id = "update_phone_number",
    summary = "Update a phone number's status",
    params(("number_id" = String, Path, description = "The phone number's id (not the number itself)")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The updated number", body = Envelope<PhoneNumberView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such phone number for this tenant (`not_found`)", body = ErrorEnvelope),
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
    body: Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "phone number")?;
    let record = state
        .shared
        .storage
        .phone_numbers()
        .set_status(
            tenant.id(),
            id,
            body.into_inner()?.status,
            bson::DateTime::now(),
        )
        .await
        .map_err(not_found_as("phone number"))?;
    Ok(envelope::ok(PhoneNumberView::from(record)))
}

/// The assistant to answer calls to a number.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PhoneNumberAssign)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignRequest {
    /// One of the tenant's assistants.
    pub assistant_id: String,
}

#[utoipa::path(
    post,
    path = "/api/phone-numbers/{number_id}/assign",
    tag = "phone-numbers",
    operation_id = "assign_phone_number",
    summary = "Assign an assistant to a phone number",
    params(("number_id" = String, Path, description = "The phone number's id (not the number itself)")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "The number, with its assistant", body = Envelope<PhoneNumberView>),
        (status = 400, response = InvalidJson),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such phone number, or no such assistant, for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidBody),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn assign(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<AssignRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner()?;
    let id = parse_id(&path, "phone number")?;
    let assistant_id = parse_id(&body.assistant_id, "assistant")?;
    // The number is looked at first: a foreign number is 404 whatever the assistant.
    match state
        .shared
        .storage
        .assign_number(tenant.id(), id, assistant_id, bson::DateTime::now())
        .await?
    {
        AssignOutcome::Assigned(record) => Ok(envelope::ok(PhoneNumberView::from(record))),
        AssignOutcome::NumberNotFound => Err(ApiError::not_found("phone number not found")),
        AssignOutcome::AssistantNotFound => Err(ApiError::not_found("assistant not found")),
    }
}

/// Removes the number's assistant: calls to it are refused until one is assigned.
#[utoipa::path(
    post,
    path = "/api/phone-numbers/{number_id}/unassign",
    tag = "phone-numbers",
    operation_id = "unassign_phone_number",
    summary = "Unassign a phone number's assistant",
    params(("number_id" = String, Path, description = "The phone number's id (not the number itself)")),
    responses(
        (status = 200, description = "The number, without an assistant", body = Envelope<PhoneNumberView>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such phone number for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn unassign(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "phone number")?;
    let record = state
        .shared
        .storage
        .phone_numbers()
        .unassign(tenant.id(), id, bson::DateTime::now())
        .await
        .map_err(not_found_as("phone number"))?;
    Ok(envelope::ok(PhoneNumberView::from(record)))
}

#[utoipa::path(
    delete,
    path = "/api/phone-numbers/{number_id}",
    tag = "phone-numbers",
    operation_id = "delete_phone_number",
    summary = "Delete a phone number",
    params(("number_id" = String, Path, description = "The phone number's id (not the number itself)")),
    responses(
        (status = 200, description = "The number is deleted", body = Envelope<Deleted>),
        (status = 401, response = TenantUnauthorized),
        (status = 403, response = TenantSuspended),
        (status = 404, description = "No such phone number for this tenant (`not_found`)", body = ErrorEnvelope),
        (status = 503, response = DatabaseUnavailable),
    ),
    security(("api_key" = [])),
)]
async fn delete(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path, "phone number")?;
    state
        .shared
        .storage
        .phone_numbers()
        .delete(tenant.id(), id)
        .await
        .map_err(not_found_as("phone number"))?;
    Ok(envelope::ok(Deleted::of(id)))
}
