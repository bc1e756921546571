//! The HTTP surface: one app factory ([`app`]) used by the server and by the tests.
//!
//! Layout:
//! - [`auth`]: the `Admin` and `Tenant` extractors.
//! - [`envelope`]: the `{"success":…}` JSON envelope of the product's API.
//! - [`error`]: [`error::ApiError`], the one error type of the layer, its mappings from the
//!   layers below, the shared error responses of the OpenAPI document, and the path-extractor
//!   error handler.
//! - [`error_code`]: every error code with its status and meaning, the table docs/api.md is
//!   checked against.
//! - [`middleware`]: request id + root span per request; error-shape normalisation; header
//!   size limits.
//! - [`rate_limit`]: per-credential and per-client (failed authentication) request limits.
//! - [`extract`]: `Json` and `Query` extractors: errors name the field and surface only after
//!   authentication.
//! - [`health`]: `/health`, `/ready`, `/api/frejun/health`.
//! - [`admin`]: the admin API (tenants, API keys, calls across tenants).
//! - [`me`]: the tenant's own account and provider credentials.
//! - [`assistants`], [`phone_numbers`]: the tenant's assistants and numbers.
//! - [`webhook_endpoints`]: the tenant's webhook endpoints, their secrets and a test ping.
//! - [`webhook_events`]: the tenant's events' deliveries and attempts, and redelivery.
//! - [`tools`]: what assistants' tools need: named secrets, the tool signing secret, the
//!   account checks of an assistant's tools, and a test run of an HTTP tool.
//! - [`calls`]: call logs for tenants (and across tenants for the admin), and hang-up.
//! - [`ai`]: text AI: the conversation endpoint, the providers' status and probe, and a call's
//!   post-call analysis run again.
//! - [`frejun`]: FreJun's flow URL and status webhook, and the outbound-call request.
//! - [`media_stream`]: FreJun's media WebSocket, handed to the bridge after every check.
//! - [`live_calls`]: live control of bridged calls (interrupt, clear, live streams).
//! - [`metrics`]: `GET /metrics`, the Prometheus scrape, behind `metrics.token`.
//! - [`views`]: response shapes built from stored records (no secret or internal field by
//!   construction; a change to a stored document does not change the API).
//! - [`openapi`]: the OpenAPI 3 document generated from the handlers and types, served at
//!   `/api/openapi.json`; `openapi/tests.rs` keeps it in step with the routes.
//!
//! Handler files (those with a `routes` function) never import each other: what they share is
//! in `error`, `extract`, `views`, `auth` and `envelope`.

pub(crate) mod admin;
pub(crate) mod ai;
pub(crate) mod assistants;
pub(crate) mod auth;
pub(crate) mod calls;
pub mod envelope;
pub mod error;
pub mod error_code;
pub mod extract;
pub(crate) mod frejun;
pub(crate) mod health;
pub(crate) mod live_calls;
pub(crate) mod me;
pub(crate) mod media_stream;
pub(crate) mod metrics;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub(crate) mod phone_numbers;
pub mod rate_limit;
pub(crate) mod tools;
pub(crate) mod views;
pub(crate) mod webhook_endpoints;
pub(crate) mod webhook_events;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpResponse, Resource, web};
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;
use crate::calls::CallService;
use crate::settings::Settings;
use crate::shared::Shared;
use crate::storage::Storage;
use error::ApiError;

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    /// Settings, storage, keyring and media-token signer, owned once for the process.
    pub shared: Arc<Shared>,
    /// Cancelled when the process begins shutting down; long-lived work (live calls) observes it.
    pub shutdown: CancellationToken,
    pub key_usage: Arc<auth::KeyUsageThrottle>,
    /// Request limits of everything that authenticates.
    pub rate_limits: Arc<rate_limit::RateLimits>,
    /// The call control plane (flows, webhooks, outbound calls).
    pub calls: CallService,
    /// The media bridge (live calls).
    pub bridge: Bridge,
}

impl AppState {
    pub fn new(settings: Settings, storage: Storage, shutdown: CancellationToken) -> Self {
        // Once per process; later apps (tests build many) share the recorder.
        crate::telemetry::metrics::install();
        let rate_limits = Arc::new(rate_limit::RateLimits::new(&settings.rate_limit));
        let shared = Shared::new(settings, storage);
        let calls = CallService::new(shared.clone());
        Self {
            rate_limits,
            bridge: Bridge::new(shared.clone(), shutdown.clone(), calls.clone()),
            calls,
            shared,
            shutdown,
            key_usage: Arc::default(),
        }
    }
}

/// Builds the application: routes, shared state, body limits, error handlers and middleware.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.shared.settings.server.json_body_limit_bytes;
    App::new()
        .app_data(web::Data::new(state))
        // Bodies read raw (e.g. FreJun webhooks parsed tolerantly) get the same limit.
        .app_data(web::PayloadConfig::default().limit(json_limit))
        .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
        .configure(health::routes)
        .service(resource("/api/openapi.json").route(web::get().to(openapi::openapi_json)))
        .configure(admin::routes)
        .configure(me::routes)
        .configure(assistants::routes)
        .configure(tools::routes)
        .configure(webhook_endpoints::routes)
        .configure(webhook_events::routes)
        .configure(phone_numbers::routes)
        .configure(calls::routes)
        .configure(ai::routes)
        .configure(frejun::routes)
        .configure(media_stream::routes)
        .configure(live_calls::routes)
        .configure(metrics::routes)
        .default_service(web::to(not_found))
        .wrap(from_fn(middleware::envelope_errors))
        .wrap(from_fn(middleware::limit_headers))
        // Answers may carry secrets (a new API key, the FreJun URLs) and are JSON: nothing is
        // cached, and nothing is sniffed as another type.
        .wrap(
            DefaultHeaders::new()
                .add((header::CACHE_CONTROL, "no-store"))
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
        )
        .wrap(from_fn(middleware::trace_request))
}

/// A resource whose unmatched methods answer 405 in the envelope (actix answers 404 otherwise).
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}
