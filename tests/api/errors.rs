//! The error envelope for every kind of bad request, and request ids.
//!
//! Routes of the product answer 404/405 over real HTTP. JSON-body errors are checked in-process
//! on the real application (`voxbridge::http::app`, with its body limits, extractor error
//! handlers and middleware) plus one echo route, since the foundation has no JSON endpoint of
//! its own yet.

use actix_web::http::StatusCode as ActixStatus;
use actix_web::{HttpResponse, test as actix_test, web};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use voxbridge::http::error::ApiError;
use voxbridge::http::extract::Json;
use voxbridge::http::{AppState, app, resource};
use voxbridge::settings::Settings;

use crate::helpers::{
    TestApp, assert_error_envelope, connect, json_body, mongodb_uri, unique_database,
};

#[tokio::test]
async fn unknown_routes_answer_404_in_the_envelope() {
    let app = TestApp::spawn().await;
    for path in ["/nope", "/api/does-not-exist", "/api/frejun/health/extra"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_error_envelope(&json_body(response).await, "not_found");
    }
}

#[tokio::test]
async fn wrong_methods_answer_405_in_the_envelope() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/ready", "/api/frejun/health"] {
        let response = app
            .client
            .post(app.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_error_envelope(&json_body(response).await, "method_not_allowed");
    }
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn request_ids_are_honoured_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "req-123_abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-123_abc");

    let generated = app.get("/nope").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a fresh uuid: {id}");

    let unsafe_id = "x".repeat(500);
    let replaced = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", &unsafe_id)
        .send()
        .await
        .unwrap();
    assert_ne!(
        replaced.headers()["x-request-id"],
        unsafe_id.as_str(),
        "oversized ids are replaced"
    );
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Greeting {
    name: String,
    times: u8,
}

/// A JSON endpoint like the product's: its body read by the extractor every route uses.
async fn echo(body: Json<Greeting>) -> Result<HttpResponse, ApiError> {
    Ok(voxbridge::http::envelope::ok(body.into_inner()?))
}

async fn leaky_failure() -> Result<HttpResponse, actix_web::Error> {
    Err(actix_web::error::ErrorInternalServerError(
        "connection to mongodb://admin:hunter2@db failed",
    ))
}

async fn state(adjust: impl FnOnce(&mut Settings)) -> AppState {
    let mut settings = Settings::for_tests(&mongodb_uri(), &unique_database());
    adjust(&mut settings);
    let storage = connect(&settings).await;
    AppState::new(settings, storage, CancellationToken::new())
}

async fn call(
    state: AppState,
    request: actix_test::TestRequest,
) -> (ActixStatus, serde_json::Value) {
    let service = actix_test::init_service(
        app(state)
            .service(resource("/test/echo").route(web::post().to(echo)))
            .service(resource("/test/leaky").route(web::get().to(leaky_failure))),
    )
    .await;
    let response = actix_test::call_service(&service, request.to_request()).await;
    let status = response.status();
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    (status, body)
}

fn post_echo(body: impl Into<Vec<u8>>) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri("/test/echo")
        .insert_header(("content-type", "application/json"))
        .set_payload(body.into())
}

#[actix_web::test]
async fn a_valid_body_is_accepted() {
    let (status, body) = call(
        state(|_| {}).await,
        post_echo(r#"{"name":"ada","times":2}"#),
    )
    .await;
    assert_eq!(status, ActixStatus::OK);
    assert_eq!(
        body,
        serde_json::json!({"success": true, "data": {"name": "ada", "times": 2}})
    );
}

#[actix_web::test]
async fn malformed_json_answers_400_invalid_json() {
    for payload in [r#"{"name":"ada","#, "not json", ""] {
        let (status, body) = call(state(|_| {}).await, post_echo(payload)).await;
        assert_eq!(status, ActixStatus::BAD_REQUEST, "{payload:?}: {body}");
        assert_error_envelope(&body, "invalid_json");
    }
}

#[actix_web::test]
async fn json_of_the_wrong_shape_answers_422_naming_the_problem() {
    let (status, body) = call(
        state(|_| {}).await,
        post_echo(r#"{"name":"ada","times":"many"}"#),
    )
    .await;
    assert_eq!(status, ActixStatus::UNPROCESSABLE_ENTITY);
    assert_error_envelope(&body, "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{body}"
    );

    let (status, body) = call(state(|_| {}).await, post_echo(r#"{"times":1}"#)).await;
    assert_eq!(status, ActixStatus::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_body_over_the_default_1_mib_limit_answers_413() {
    let just_under = format!(r#"{{"name":"{}","times":1}}"#, "a".repeat(1024 * 1024 - 30));
    let (status, _) = call(state(|_| {}).await, post_echo(just_under)).await;
    assert_eq!(status, ActixStatus::OK, "a body under 1 MiB is read");

    let over = format!(r#"{{"name":"{}","times":1}}"#, "a".repeat(1024 * 1024));
    let (status, body) = call(state(|_| {}).await, post_echo(over)).await;
    assert_eq!(status, ActixStatus::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&body, "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{body}"
    );
}

#[actix_web::test]
async fn the_body_limit_is_configurable() {
    let limited = state(|settings| settings.server.json_body_limit_bytes = 64).await;
    let (status, body) = call(
        limited,
        post_echo(format!(r#"{{"name":"{}","times":1}}"#, "a".repeat(100))),
    )
    .await;
    assert_eq!(status, ActixStatus::PAYLOAD_TOO_LARGE);
    assert_error_envelope(&body, "payload_too_large");
}

#[actix_web::test]
async fn a_body_that_is_not_json_answers_415() {
    let request = actix_test::TestRequest::post()
        .uri("/test/echo")
        .insert_header(("content-type", "text/plain"))
        .set_payload("name=ada");
    let (status, body) = call(state(|_| {}).await, request).await;
    assert_eq!(status, ActixStatus::UNSUPPORTED_MEDIA_TYPE);
    assert_error_envelope(&body, "unsupported_media_type");
}

#[actix_web::test]
async fn internal_error_text_never_reaches_the_client() {
    let request = actix_test::TestRequest::get().uri("/test/leaky");
    let (status, body) = call(state(|_| {}).await, request).await;
    assert_eq!(status, ActixStatus::INTERNAL_SERVER_ERROR);
    assert_error_envelope(&body, "internal_error");
    assert!(!body.to_string().contains("hunter2"), "{body}");
}

#[actix_web::test]
async fn ready_answers_503_shutting_down_once_shutdown_begins() {
    let state = state(|_| {}).await;
    state.shutdown.cancel();
    let (status, body) = call(state, actix_test::TestRequest::get().uri("/ready")).await;
    assert_eq!(status, ActixStatus::SERVICE_UNAVAILABLE);
    assert_error_envelope(&body, "shutting_down");
}
