//! Liveness, readiness and the FreJun integration health check.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::envelope;
use super::error::ApiError;
use super::error::ErrorChain;
use crate::storage::{PingFailure, StorageError};

/// `GET /health`: the process is up and serving HTTP. Touches nothing else, so an orchestrator
/// does not restart the service because the database is down.
pub async fn health() -> HttpResponse {
    envelope::ok(json!({ "status": "alive", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /ready`: whether this instance should receive traffic: MongoDB answers a ping and the
/// instance is not shutting down.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this instance is shutting down",
        ));
    }
    let timeout = state.settings.mongodb.ping_timeout();
    match state.storage.ping(timeout).await {
        Ok(()) => Ok(envelope::ok(
            json!({ "status": "ready", "checks": { "database": "ok" } }),
        )),
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
pub async fn frejun_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "service": "frejun-integration",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
