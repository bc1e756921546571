//! A MongoDB outage under a running service: `/ready` turns 503 while the database is down and
//! back to 200 when it returns, without restarting the service; a live call's progress written
//! meanwhile reports the outage and lands once the database is back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bson::DateTime;
use reqwest::StatusCode;
use voxbridge::bridge::progress_writer::ProgressWriter;
use voxbridge::domain::call::record::{CallProgress, TranscriptRole, TranscriptTurn};
use voxbridge::local_mongodb::{self, LocalMongod};
use voxbridge::settings::Settings;
use voxbridge::storage::StorageError;

use crate::helpers::{TestApp, assert_error_envelope, connect, json_body, unique_database};

/// A `mongod` of the test's own, so stopping it disturbs no other test, and an app on it with
/// fast failure detection (the driver's monitor re-checks the server every 500 ms).
struct OwnMongod {
    binary: PathBuf,
    data_dir: tempfile::TempDir,
    port: u16,
    server: LocalMongod,
}

impl OwnMongod {
    async fn start() -> OwnMongod {
        let binary =
            local_mongodb::find_or_fetch_binary(&local_mongodb::cache_dir(Path::new(".voxbridge")))
                .await
                .expect("a mongod binary");
        let data_dir = tempfile::tempdir().unwrap();
        let port = local_mongodb::free_port().unwrap();
        let server = LocalMongod::start(&binary, data_dir.path(), port)
            .await
            .unwrap();
        OwnMongod {
            binary,
            data_dir,
            port,
            server,
        }
    }

    async fn app(&self) -> TestApp {
        let uri = format!("{}&heartbeatFrequencyMS=500", self.server.uri());
        let mut settings = Settings::for_tests(&uri, &unique_database());
        settings.mongodb.server_selection_timeout_ms = 2_000;
        settings.mongodb.ping_timeout_ms = 4_000;
        let storage = connect(&settings).await;
        TestApp::spawn_with_storage(settings, storage).await
    }

    /// Stops the server and starts it again on the same data once `while_down` is done.
    async fn outage<T>(self, while_down: impl Future<Output = T>) -> (OwnMongod, T) {
        let OwnMongod {
            binary,
            data_dir,
            port,
            server,
        } = self;
        server.stop().await;
        let outcome = while_down.await;
        let server = LocalMongod::start(&binary, data_dir.path(), port)
            .await
            .unwrap();
        let own = OwnMongod {
            binary,
            data_dir,
            port,
            server,
        };
        (own, outcome)
    }
}

#[tokio::test]
async fn ready_follows_the_database_down_and_back_up() {
    let own = OwnMongod::start().await;
    let app = own.app().await;
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK, "up");

    let (own, ()) = own
        .outage(async {
            let response = app.get("/ready").await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "down");
            assert_error_envelope(&json_body(response).await, "database_unavailable");
        })
        .await;
    let response = app.get("/ready").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "back up, same service instance"
    );

    drop(app);
    own.server.stop().await;
}

/// A live call's progress gathered by the instance's writer while MongoDB is down: the write
/// reports the outage (the keeper then retries), and the same batch lands once it is back.
#[tokio::test]
async fn gathered_progress_reports_an_outage_then_lands_when_the_database_returns() {
    let own = OwnMongod::start().await;
    let app = own.app().await;
    let (user_id, calls) = app.tenant_with_live_calls(1).await;
    let call_id = calls[0];
    let writer = ProgressWriter::new(app.storage.clone(), Duration::from_millis(50));
    let progress = Arc::new(CallProgress {
        new_turns: vec![TranscriptTurn {
            role: TranscriptRole::User,
            text: "said while the database was down".to_owned(),
            at: DateTime::now(),
            item_id: None,
            interrupted: false,
            tool: None,
        }],
        ..CallProgress::default()
    });

    let (own, while_down) = own
        .outage(writer.write(user_id, call_id, Arc::clone(&progress)))
        .await;
    assert!(
        matches!(while_down, Err(StorageError::Unavailable(_))),
        "{while_down:?}"
    );
    writer
        .write(user_id, call_id, Arc::clone(&progress))
        .await
        .expect("written once MongoDB is back");
    let stored = app.call_log(&call_id.to_hex()).await;
    let texts: Vec<&str> = stored.transcript.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["said while the database was down"]);

    drop(app);
    own.server.stop().await;
}
