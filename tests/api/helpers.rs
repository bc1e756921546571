//! `TestApp`: the application served on a random port with its own database, which is dropped
//! when the `TestApp` is.

use std::time::Duration;

use mongodb::Client;
use tokio_util::sync::CancellationToken;
use voxbridge::settings::Settings;
use voxbridge::startup::Application;
use voxbridge::storage::{Storage, migrations};

pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").expect(
        "MONGODB_URI is not set: run the tests with scripts/test.sh (see README), \
         which starts a local MongoDB for them",
    )
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// A database of one test's own, dropped when the guard is.
pub struct TestDatabase {
    pub storage: Storage,
    pub settings: Settings,
}

impl TestDatabase {
    /// A fresh, empty database.
    pub async fn new() -> Self {
        let settings = Settings::for_tests(&mongodb_uri(), &unique_database());
        Self {
            storage: connect(&settings).await,
            settings,
        }
    }

    /// A fresh database with every migration applied.
    pub async fn migrated() -> Self {
        let database = Self::new().await;
        migrations::run(&database.storage)
            .await
            .expect("migrations apply");
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let uri = mongodb_uri();
        let name = self.settings.mongodb.database.clone();
        // Drop is synchronous and may run while the test's runtime is shutting down: use a
        // thread with a runtime and client of its own, and wait for it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = Client::with_uri_str(&uri)
                    .await
                    .map_err(std::io::Error::other)?;
                let result = client.database(&name).drop().await;
                client.shutdown().await;
                result.map_err(std::io::Error::other)
            })
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    /// Declared last: dropped after the server has been told to stop.
    _database: Option<TestDatabase>,
}

impl TestApp {
    /// The app on a fresh, migrated database.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], after letting the test adjust the settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let database = TestDatabase::migrated().await;
        let mut settings = database.settings.clone();
        adjust(&mut settings);
        let mut app = Self::spawn_with_storage(settings, database.storage.clone()).await;
        app._database = Some(database);
        app
    }

    /// The app on whatever the settings point at, without migrating (for outage tests).
    pub async fn spawn_with_storage(settings: Settings, storage: Storage) -> Self {
        let shutdown = CancellationToken::new();
        let application =
            Application::build(settings, storage, shutdown.clone()).expect("app builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        tokio::spawn(application.run_until_stopped());
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            shutdown,
            _database: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn connect(settings: &Settings) -> Storage {
    let uri = settings.mongodb.uri.as_ref().expect("tests set a URI");
    Storage::connect(uri, &settings.mongodb)
        .await
        .expect("client builds")
}

/// Reads a response body as JSON, failing the test with the body text when it is not JSON.
pub async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Asserts the error envelope `{"success":false,"error":{"code","message"}}` with `code`.
pub fn assert_error_envelope(body: &serde_json::Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error message present: {body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only success and error: {body}"
    );
    assert_eq!(
        body["error"].as_object().unwrap().len(),
        2,
        "only code and message: {body}"
    );
}
