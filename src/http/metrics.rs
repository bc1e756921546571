//! `GET /metrics`: the process's Prometheus metrics in the text exposition format, for a
//! scraper holding `metrics.token` (docs/operations.md, "Metrics"). Without that setting the
//! route answers 404 like an unknown one.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::MetricsScraper;
use crate::telemetry::metrics;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/metrics").route(web::get().to(scrape)));
}

/// `GET /metrics`: every metric of this instance (live calls, calls ended, latencies, errors,
/// MongoDB, drain state); no label names a tenant or a call.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format)",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format (not the envelope)", body = String, content_type = "text/plain"),
        (status = 401, description = "`unauthorized`: missing, malformed or wrong metrics token", body = super::envelope::ErrorEnvelope),
        (status = 404, description = "`not_found`: `metrics.token` is not set, so the endpoint is off", body = super::envelope::ErrorEnvelope),
    ),
)]
pub(crate) async fn scrape(_: MetricsScraper, state: web::Data<AppState>) -> HttpResponse {
    let text = metrics::render(
        state.bridge.live.backends_and_codecs(),
        state.shared.drain.is_draining(),
    );
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(text)
}
