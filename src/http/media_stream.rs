//! `GET /api/frejun/media-stream/{assistant_id}`: FreJun's media WebSocket. The request is
//! checked in full (token, call, tenant, assistant, key, slot) before the upgrade, so a refused
//! stream gets a plain HTTP error and costs no session; an accepted one runs
//! [`crate::bridge::Bridge::run_session`] on this worker.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::envelope::ErrorEnvelope;
use super::error::ApiError;
use super::error::ErrorCode;
use crate::bridge::admission::Refusal;
use crate::domain::call::EndReason;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/api/frejun/media-stream/{assistant_id}")
            .route(web::get().to(media_stream)),
    );
}

/// The query of the `ws_url` handed to FreJun in the stream flow.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MediaStreamQuery {
    /// Our call id.
    pub call_id: Option<String>,
    /// The signed, expiring token bound to the call and the assistant.
    pub token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/frejun/media-stream/{assistant_id}",
    tag = "frejun",
    operation_id = "frejun_media_stream",
    summary = "FreJun's media stream (WebSocket)",
    description = "Opened by FreJun with the `ws_url` of a stream flow, not by tenants. A \
        WebSocket carrying FreJun's media messages: `start`, then `audio` with \
        `data.audio_b64` (s16le mono at the flow's rate); we send `{\"type\":\"audio\",\
        \"audio_b64\",\"chunk_id\"}` (8 kHz s16le), `clear` and `interrupt`. Everything is \
        checked before the upgrade; refusals are plain HTTP answers.",
    params(
        ("assistant_id" = String, Path, description = "The assistant the flow chose"),
        MediaStreamQuery,
    ),
    responses(
        (status = 101, description = "Upgraded: the call is bridged to OpenAI"),
        (status = 400, description = "Not a WebSocket upgrade request (`not_a_websocket`)", body = ErrorEnvelope),
        (status = 401, description = "Missing, malformed, forged or expired token, or a token for another call or assistant (`invalid_media_token`); nothing is read", body = ErrorEnvelope),
        (status = 404, description = "No such call (`not_found`)", body = ErrorEnvelope),
        (status = 409, description = "The call has ended or its stream is already open (`call_not_live`)", body = ErrorEnvelope),
        (status = 422, description = "The call was ended instead: tenant suspended, assistant deleted, OpenAI key unusable (`call_refused`; the reason is in the call log)", body = ErrorEnvelope),
        (status = 429, description = "The tenant is at its concurrent-call limit (`concurrency_limit`); the call was ended", body = ErrorEnvelope),
        (status = 503, description = "`database_unavailable`, or `draining` (this instance is draining; nothing was claimed, another instance can take the stream)", body = ErrorEnvelope),
    ),
    security(("media_token" = [])),
)]
pub(crate) async fn media_stream(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Parsed leniently by hand: a bad query is a refused token, not a 400 naming serde's view.
    let query = web::Query::<MediaStreamQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let (call, token) = (query.call_id.as_deref(), query.token.as_deref());
    // The token (no I/O), then the upgrade headers, before any admission work: a plain GET
    // with a valid token must not claim the call or extend its slot.
    state
        .bridge
        .verify_token(&path, call, token)
        .map_err(refusal)?;
    if !is_websocket_upgrade(&req) {
        return Err(ApiError::new(
            ErrorCode::NotAWebsocket,
            "a WebSocket upgrade is required",
        ));
    }
    let admitted = state
        .bridge
        .admit(&path, call, token)
        .await
        .map_err(refusal)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|err| {
        ApiError::new(
            ErrorCode::NotAWebsocket,
            format!("a WebSocket upgrade is required: {err}"),
        )
    })?;
    let bridge = state.bridge.clone();
    actix_web::rt::spawn(bridge.run_session(admitted, session, stream));
    Ok(response)
}

/// Whether the request asks for a WebSocket upgrade (RFC 6455 §4.2.1: `Upgrade: websocket`,
/// version 13 and a key); the handshake itself is completed by actix-ws after admission.
fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    header(header::UPGRADE).is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
        && header(header::SEC_WEBSOCKET_VERSION).as_deref() == Some("13")
        && header(header::SEC_WEBSOCKET_KEY).is_some()
}

fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Token(why) => ApiError::new(
            ErrorCode::InvalidMediaToken,
            format!("the media token is {why}"),
        ),
        Refusal::UnknownCall => ApiError::not_found("no such call"),
        Refusal::Draining => ApiError::draining(),
        Refusal::NotLive(why) => ApiError::new(ErrorCode::CallNotLive, why),
        Refusal::Ended(EndReason::ConcurrencyLimit) => ApiError::new(
            ErrorCode::ConcurrencyLimit,
            "the tenant is at its concurrent-call limit; the call was ended",
        ),
        Refusal::Ended(reason) => ApiError::new(
            ErrorCode::CallRefused,
            format!("the call was ended: {}", reason.as_str()),
        ),
        Refusal::Storage(cause) => ApiError::database_unavailable("the database is unavailable")
            .with_cause(std::io::Error::other(cause)),
    }
}
