//! Liveness, readiness and the FreJun integration health check.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::envelope::{self, Envelope, ErrorEnvelope};
use super::error::ApiError;
use super::error::ErrorCode;
use crate::domain::error_chain::ErrorChain;
use crate::storage::{PingFailure, StorageError};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/ready").route(web::get().to(ready)))
        .service(resource("/api/frejun/health").route(web::get().to(frejun_health)));
}

/// The answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthView {
    /// Always `alive`.
    #[schema(example = "alive")]
    pub status: &'static str,
    /// The running voxbridge version.
    pub version: &'static str,
}

/// The answer of `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReadyView {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadyChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReadyChecks {
    /// Always `ok` (a failed check answers 503 instead).
    #[schema(example = "ok")]
    pub database: &'static str,
}

/// The answer of `GET /api/frejun/health`: bare JSON, not in the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FrejunHealth {
    /// Always `healthy`.
    #[schema(example = "healthy")]
    pub status: &'static str,
    /// Always `frejun-integration`.
    #[schema(example = "frejun-integration")]
    pub service: &'static str,
    /// The running voxbridge version.
    pub version: &'static str,
}

/// `GET /health`: the process is up and serving HTTP. Touches nothing else, so an orchestrator
/// does not restart the service because the database is down.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process is serving HTTP", body = Envelope<HealthView>),
    ),
)]
pub(crate) async fn health() -> HttpResponse {
    envelope::ok(HealthView {
        status: "alive",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /ready`: whether this instance should receive traffic: MongoDB answers a ping and the
/// instance is not shutting down.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    operation_id = "ready",
    summary = "Readiness",
    responses(
        (status = 200, description = "MongoDB answers and the instance is not shutting down", body = Envelope<ReadyView>),
        (status = 503, description = "`database_unavailable` (MongoDB did not answer a ping), `draining` (SIGTERM received: live calls continue, new ones go elsewhere) or `shutting_down`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "this instance is shutting down",
        ));
    }
    if state.shared.drain.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Draining,
            "this instance is draining: it finishes its live calls and admits no new ones",
        ));
    }
    let timeout = state.shared.settings.mongodb.ping_timeout();
    match state.shared.storage.ping(timeout).await {
        Ok(()) => Ok(envelope::ok(ReadyView {
            status: "ready",
            checks: ReadyChecks { database: "ok" },
        })),
        Err(failure) => {
            tracing::warn!(error = %ErrorChain(&failure), "readiness check failed");
            let reason = match failure {
                PingFailure::TimedOut(timeout) => {
                    format!(
                        "MongoDB did not answer a ping within {} ms",
                        timeout.as_millis()
                    )
                }
                PingFailure::Failed(StorageError::Unavailable(_)) => {
                    "MongoDB is unreachable".to_owned()
                }
                PingFailure::Failed(_) => "MongoDB answered the ping with an error".to_owned(),
            };
            Err(ApiError::database_unavailable(reason))
        }
    }
}

/// `GET /api/frejun/health`: the FreJun integration's own health shape (bare JSON, as FreJun
/// and the Teler backend this grew from expect).
#[utoipa::path(
    get,
    path = "/api/frejun/health",
    tag = "health",
    operation_id = "frejun_health",
    summary = "FreJun integration health (bare JSON)",
    responses(
        (status = 200, description = "The FreJun integration is up; bare JSON, not in the envelope", body = FrejunHealth),
    ),
)]
pub(crate) async fn frejun_health() -> HttpResponse {
    HttpResponse::Ok().json(FrejunHealth {
        status: "healthy",
        service: "frejun-integration",
        version: env!("CARGO_PKG_VERSION"),
    })
}
