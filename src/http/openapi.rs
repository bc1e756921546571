//! The OpenAPI 3 document of the HTTP API, generated from the code with utoipa and served at
//! `GET /api/openapi.json`.
//!
//! Every handler registered in [`super::app`] carries a `#[utoipa::path]` attribute and is listed
//! in [`ApiDoc`]; request and response types derive `ToSchema`. The drift tests in
//! `openapi/tests.rs` keep the document and the app in step: every documented operation must be served by the
//! app, and every route the app serves must be documented.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::error::{
    AdminUnauthorized, CallNotLive, DatabaseUnavailable, InvalidBody, InvalidJson, InvalidQuery,
    OwnerNotResponding, PayloadTooLarge, TenantSuspended, TenantUnauthorized, UnsupportedMediaType,
};
use super::{
    admin, ai, assistants, calls, frejun, health, live_calls, me, media_stream, metrics,
    phone_numbers, tools, webhook_endpoints, webhook_events,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voxbridge",
        version = env!("CARGO_PKG_VERSION"),
        description = "Multi-tenant voice-AI service: bridges FreJun (Teler) phone calls to the \
OpenAI Realtime API, with call logs in MongoDB.\n\n\
Answers use a JSON envelope: `{\"success\":true,\"data\":…}` (lists add `count` and \
`next_cursor`), errors `{\"success\":false,\"error\":{\"code\",\"message\"}}`. Besides the \
errors listed per operation, any request may answer 404 `not_found` (no such route), \
405 `method_not_allowed` or 500 `internal_error`, in the same envelope. Every answer carries \
an `x-request-id` header.\n\n\
The admin API takes `Authorization: Bearer <admin token>`; the tenant API takes \
`Authorization: Bearer <tenant API key>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
        health::frejun_health,
        openapi_json,
        admin::create_user,
        admin::list_users,
        admin::get_user,
        admin::update_user,
        admin::suspend_user,
        admin::reactivate_user,
        admin::create_api_key,
        admin::list_api_keys,
        admin::revoke_api_key,
        calls::admin_list,
        me::me,
        me::put_credentials,
        me::rotate_url_secret,
        assistants::create,
        assistants::list,
        assistants::get,
        assistants::update,
        assistants::delete,
        tools::list_secrets,
        tools::put_secret,
        tools::delete_secret,
        tools::rotate_signing_secret,
        tools::test_tool,
        webhook_endpoints::create,
        webhook_endpoints::list,
        webhook_endpoints::get,
        webhook_endpoints::update,
        webhook_endpoints::delete,
        webhook_endpoints::rotate_secret,
        webhook_endpoints::test,
        webhook_events::list,
        webhook_events::get,
        webhook_events::redeliver,
        phone_numbers::create,
        phone_numbers::list,
        phone_numbers::get,
        phone_numbers::update,
        phone_numbers::delete,
        phone_numbers::assign,
        phone_numbers::unassign,
        calls::list,
        calls::initiate,
        calls::active,
        calls::history,
        calls::stats,
        calls::get,
        calls::status,
        calls::hangup,
        calls::recording,
        calls::transfer,
        ai::analyze,
        ai::conversation,
        ai::status,
        live_calls::interrupt,
        live_calls::clear,
        live_calls::add_context,
        live_calls::streams,
        live_calls::interrupt_alias,
        live_calls::clear_alias,
        frejun::flow,
        frejun::webhook,
        frejun::initiate_call,
        media_stream::media_stream,
        metrics::scrape,
    ),
    components(responses(
        AdminUnauthorized,
        TenantUnauthorized,
        TenantSuspended,
        DatabaseUnavailable,
        InvalidQuery,
        InvalidJson,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidBody,
        CallNotLive,
        OwnerNotResponding,
    )),
    modifiers(&SecuritySchemes, &ReferenceEnvelopeData),
    tags(
        (name = "health", description = "Liveness, readiness and the FreJun integration health check. No credentials."),
        (name = "openapi", description = "This document. No credentials."),
        (name = "metrics", description = "Prometheus metrics of the instance (docs/operations.md, \"Metrics\"). Metrics token."),
        (name = "admin", description = "The platform administrator: tenants, their API keys, and calls across tenants. Admin token."),
        (name = "account", description = "The tenant's own account and provider credentials. Tenant API key."),
        (name = "assistants", description = "The tenant's AI assistants. Tenant API key."),
        (name = "webhooks", description = "The tenant's webhook endpoints: where voxbridge sends signed events, their secrets, and test pings. Tenant API key."),
        (name = "tools", description = "What assistants' tools need: named secrets, the tool signing secret, and test runs of HTTP tools. Tenant API key."),
        (name = "phone-numbers", description = "The tenant's phone numbers and which assistant answers each. Tenant API key."),
        (name = "calls", description = "The tenant's call logs and statistics. Tenant API key."),
        (name = "text ai", description = "Text models: the conversation endpoint and the providers' status (docs/api.md, \"Text AI\"). Tenant API key."),
    ),
)]
pub(crate) struct ApiDoc;

/// Adds the security schemes that operations name in their `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The platform's admin token (setting `security.admin_token`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The metrics scraper's token (setting `metrics.token`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "frejun_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Query(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "key",
                    "The tenant's FreJun URL secret, in the URLs shown by `GET /api/me`.",
                ),
            )),
        );
        components.add_security_scheme(
            "media_token",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Query(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "token",
                    "The signed, expiring token in a stream flow's `ws_url` (with `call_id`).",
                ),
            )),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant API key, as returned once when the tenant or key was created.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Names of the schemas utoipa composes for `Envelope<T>` and `ListEnvelope<T>`: `Envelope_T`,
/// `ListEnvelope_T`.
const ENVELOPE_PREFIXES: [&str; 2] = ["Envelope_", "ListEnvelope_"];

/// utoipa 5 inlines the schema of a generic argument (juhaku/utoipa#1586): `Envelope_UserView`
/// would hold a copy of `UserView` as its `data`. This replaces each such copy (for lists, the
/// copy in `data.items`) with a reference to the named schema, and only where the copy is
/// identical to it, so the document says the same thing, once.
struct ReferenceEnvelopeData;

impl Modify for ReferenceEnvelopeData {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let named = components.schemas.clone();
        for (name, schema) in components.schemas.iter_mut() {
            let Some(argument) = ENVELOPE_PREFIXES
                .iter()
                .find_map(|prefix| name.strip_prefix(prefix))
            else {
                continue;
            };
            let (Some(target), RefOr::T(Schema::Object(envelope))) = (named.get(argument), schema)
            else {
                continue;
            };
            let Some(data) = envelope.properties.get_mut("data") else {
                continue;
            };
            let slot = match data {
                RefOr::T(Schema::Array(array)) => match &mut array.items {
                    ArrayItems::RefOrSchema(items) => items.as_mut(),
                    ArrayItems::False => continue,
                },
                other => other,
            };
            if slot == target {
                *slot = RefOr::Ref(Ref::from_schema_name(argument));
            }
        }
    }
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /api/openapi.json`: this API's OpenAPI document (bare JSON, not in the envelope).
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "openapi",
    operation_id = "openapi_json",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI document (bare JSON, not in the envelope)", body = Object, content_type = "application/json"),
    ),
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(DOCUMENT.as_str())
}

#[cfg(test)]
mod tests;
