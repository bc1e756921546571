//! A MongoDB outage under a running service: `/ready` turns 503 while the database is down and
//! back to 200 when it returns, without restarting the service.

use std::path::Path;

use reqwest::StatusCode;
use voxbridge::local_mongodb::{self, LocalMongod};
use voxbridge::settings::Settings;

use crate::helpers::{TestApp, assert_error_envelope, connect, json_body, unique_database};

#[tokio::test]
async fn ready_follows_the_database_down_and_back_up() {
    // A server of this test's own, so stopping it disturbs no other test.
    let binary =
        local_mongodb::find_or_fetch_binary(&local_mongodb::cache_dir(Path::new(".voxbridge")))
            .await
            .expect("a mongod binary");
    let data_dir = tempfile::tempdir().unwrap();
    let port = local_mongodb::free_port().unwrap();
    let server = LocalMongod::start(&binary, data_dir.path(), port)
        .await
        .unwrap();

    // Fast failure detection; the driver's monitor re-checks the server every 500 ms.
    let uri = format!("{}&heartbeatFrequencyMS=500", server.uri());
    let mut settings = Settings::for_tests(&uri, &unique_database());
    settings.mongodb.server_selection_timeout_ms = 2_000;
    settings.mongodb.ping_timeout_ms = 4_000;
    let storage = connect(&settings).await;
    let app = TestApp::spawn_with_storage(settings, storage).await;

    assert_eq!(app.get("/ready").await.status(), StatusCode::OK, "up");

    server.stop().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "down");
    assert_error_envelope(&json_body(response).await, "database_unavailable");

    let server = LocalMongod::start(&binary, data_dir.path(), port)
        .await
        .unwrap();
    let response = app.get("/ready").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "back up, same service instance"
    );

    drop(app);
    server.stop().await;
}
