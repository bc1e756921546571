//! `/health`, `/ready` and `/api/frejun/health`.

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::settings::Settings;

use crate::helpers::{TestApp, assert_error_envelope, connect, json_body, unique_database};

#[tokio::test]
async fn health_answers_without_touching_the_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "alive");
}

#[tokio::test]
async fn ready_answers_200_when_mongodb_answers() {
    let app = TestApp::spawn().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["data"]["checks"]["database"], "ok", "{body}");
}

#[tokio::test]
async fn ready_answers_503_database_unavailable_when_mongodb_is_unreachable() {
    // Port 9 (discard) on loopback: nothing listens there, so every connection is refused.
    let mut settings = Settings::for_tests(
        "mongodb://127.0.0.1:9/?connectTimeoutMS=200",
        &unique_database(),
    );
    settings.mongodb.server_selection_timeout_ms = 300;
    settings.mongodb.ping_timeout_ms = 1_000;
    let storage = connect(&settings).await;
    let app = TestApp::spawn_with_storage(settings, storage).await;

    let response = app.get("/ready").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(response).await;
    assert_error_envelope(&body, "database_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("MongoDB"), "names the reason: {message}");
    assert!(
        !message.contains("127.0.0.1:9"),
        "no internal detail: {message}"
    );

    // Liveness does not depend on the database.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn frejun_health_has_the_bare_shape_frejun_expects() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/frejun/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"status": "healthy", "service": "frejun-integration", "version": env!("CARGO_PKG_VERSION")})
    );
}
