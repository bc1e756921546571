//! Middleware applied to every request:
//! - [`trace_request`]: one root span per request with a request id (`x-request-id` honoured when
//!   well-formed, generated otherwise, and echoed on the response); health checks log at DEBUG;
//!   the request is counted in `voxbridge_http_requests_total` by its route template.
//! - [`envelope_errors`]: the last line of defence for the error shape. Any error response that
//!   is not already JSON (actix's own 404/405/400 text, a bare 500) is rewritten into the
//!   envelope with a code derived from the status, so no internal text reaches a client.
//! - [`limit_headers`]: refuses a request whose headers exceed `server.max_header_bytes` or
//!   `server.max_headers` with 431 in the envelope. actix-http's own parser answers a bare 431
//!   only past its fixed limits (128 KiB of head, 96 headers), which ours sit well below, so
//!   everything between gets an answer a client can read.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use tracing::Instrument as _;

use super::envelope::error_body;
use super::error::ErrorCode;
use crate::telemetry::metrics;

pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we accept; longer ones are replaced, not truncated.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Paths polled by load balancers and orchestrators: logged at DEBUG so they do not drown the
/// rest.
const HEALTH_PATHS: &[&str] = &["/health", "/ready", "/api/frejun/health"];

pub(crate) async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    let method = req.method().to_string();
    // The route template, never the path: ids stay out of logs' route field and out of the
    // metrics' labels, and every unknown path shares one label.
    let pattern = req.match_pattern();
    let route = pattern
        .clone()
        .unwrap_or_else(|| metrics::UNMATCHED_ROUTE.to_owned());
    let is_health = HEALTH_PATHS.contains(&req.path());
    let span = if is_health {
        tracing::debug_span!("http_request", %method, %route, %request_id)
    } else {
        tracing::info_span!("http_request", %method, %route, %request_id)
    };

    let started = Instant::now();
    let mut result = next.call(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;

    let _entered = span.enter();
    let status = match &result {
        Ok(response) => response.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    metrics::http_request(&method, pattern, status.as_u16());
    match &mut result {
        Ok(response) => {
            let status = response.status().as_u16();
            if is_health {
                tracing::debug!(status, elapsed_ms, "request finished");
            } else if response.status().is_server_error() {
                tracing::warn!(status, elapsed_ms, "request finished");
            } else {
                tracing::info!(status, elapsed_ms, "request finished");
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
        }
        Err(err) => tracing::warn!(error = %err, elapsed_ms, "request failed in middleware"),
    }
    result
}

/// Ids are copied into logs and headers: accept only short, printable, unambiguous ones.
fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
}

pub(crate) async fn envelope_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let response = next.call(req).await?;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response.map_into_left_body());
    }

    let (request, original) = response.into_parts();
    let mut replacement = HttpResponse::build(status);
    for (name, value) in original.headers() {
        // Keep headers like Allow or Retry-After; the body and its framing are replaced.
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement.insert_header((name.clone(), value.clone()));
        }
    }
    let replacement = replacement.json(error_body(
        ErrorCode::for_framework_status(status.as_u16()).as_str(),
        &message_for_status(status),
    ));
    Ok(ServiceResponse::new(request, replacement).map_into_right_body())
}

pub(crate) async fn limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let limits = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .map(|state| {
            let server = &state.shared.settings.server;
            (server.max_header_bytes, server.max_headers)
        });
    if let Some((max_bytes, max_count)) = limits {
        let headers = req.headers();
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if headers.len() > max_count || bytes > max_bytes {
            let error = super::error::ApiError::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "the request has {} headers of {bytes} bytes; at most {max_count} headers \
                     of {max_bytes} bytes are accepted",
                    headers.len()
                ),
            );
            return Ok(req.error_response(error).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn message_for_status(status: actix_web::http::StatusCode) -> String {
    status
        .canonical_reason()
        .map(|reason| reason.to_lowercase())
        .unwrap_or_else(|| format!("request failed with status {}", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_short_and_plain() {
        assert!(is_acceptable_request_id("3f2a-01_x.y:z"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("has space"));
        assert!(!is_acceptable_request_id("line\nbreak"));
        assert!(!is_acceptable_request_id(
            &"a".repeat(MAX_REQUEST_ID_LEN + 1)
        ));
    }
}
