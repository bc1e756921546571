//! `TestApp`: the application served on a random port with its own database, which is dropped
//! when the `TestApp` is.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use voxbridge::domain::call::status::{ReportSource, StatusEvent};
use voxbridge::domain::call::{CallStatus, CallType};
use voxbridge::domain::ids::{CallId, TenantId};
use voxbridge::settings::Settings;
use voxbridge::startup::Application;
use voxbridge::storage::call_logs::CallLogRecord;
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
    /// The database the app serves, for tests that read or write it directly.
    pub storage: Storage,
    /// The settings the app was started with.
    pub settings: Settings,
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
    pub async fn spawn_with_storage(mut settings: Settings, storage: Storage) -> Self {
        // Always a fresh port: tests start a second app from the first one's settings.
        settings.server.port = 0;
        let shutdown = CancellationToken::new();
        let application = Application::build(settings.clone(), storage.clone(), shutdown.clone())
            .expect("app builds");
        let address = format!("http://127.0.0.1:{}", application.port());
        // As the app itself does: its public URLs use the port it really listens on.
        settings.server.port = application.port();
        tokio::spawn(application.run_until_stopped());
        Self {
            address,
            client: http_client(),
            storage,
            settings,
            shutdown,
            _database: None,
        }
    }

    /// A handle on a server running elsewhere (another process) over `database`: for tests
    /// that need the real binary, such as signal handling.
    pub fn for_external_server(
        address: String,
        settings: Settings,
        database: TestDatabase,
    ) -> Self {
        Self {
            address,
            client: http_client(),
            storage: database.storage.clone(),
            settings,
            shutdown: CancellationToken::new(),
            _database: Some(database),
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

    /// A request to `path`, to finish with `.bearer_auth(..)`, `.json(..)` and `.send()`.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends `method path` with an optional bearer token and an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// The admin API's bearer token, as configured.
    pub fn admin_token(&self) -> String {
        self.settings.security.admin_token.expose().to_owned()
    }

    /// Creates a tenant through `POST /api/admin/users`; returns its id and first API key.
    pub async fn create_tenant(&self, name: &str, email: &str) -> TestTenant {
        let response = self
            .post_as(
                "/api/admin/users",
                &self.admin_token(),
                &json!({ "name": name, "email": email }),
            )
            .await;
        let body = expect_status(response, StatusCode::CREATED).await;
        let data = &body["data"];
        TestTenant {
            id: data["id"].as_str().expect("id").to_owned(),
            api_key: data["api_key"].as_str().expect("api_key").to_owned(),
            api_key_id: data["api_key_id"].as_str().expect("api_key_id").to_owned(),
            name: data["name"].as_str().expect("name").to_owned(),
            email: data["email"].as_str().expect("email").to_owned(),
        }
    }

    /// Creates an assistant for `tenant` with `body`; returns the created assistant (`data`).
    pub async fn create_assistant(&self, tenant: &TestTenant, body: Value) -> Value {
        let response = self
            .post_as("/api/assistants", &tenant.api_key, &body)
            .await;
        expect_status(response, StatusCode::CREATED).await["data"].take()
    }

    /// Adds a phone number for `tenant`; returns the created number (`data`).
    pub async fn create_phone_number(&self, tenant: &TestTenant, body: Value) -> Value {
        let response = self
            .post_as("/api/phone-numbers", &tenant.api_key, &body)
            .await;
        expect_status(response, StatusCode::CREATED).await["data"].take()
    }

    /// Stores a call log directly (tests that need a call in a given state).
    pub async fn insert_call(&self, call: &CallLogRecord) {
        self.storage
            .call_logs()
            .insert(call)
            .await
            .expect("call log inserted");
    }

    /// A new tenant with `count` calls in progress, stored directly.
    pub async fn tenant_with_live_calls(&self, count: usize) -> (TenantId, Vec<CallId>) {
        let user_id: TenantId = self
            .create_tenant(
                "Live calls",
                &format!("live-calls-{}@example.com", bson::oid::ObjectId::new()),
            )
            .await
            .id
            .parse()
            .expect("tenant id");
        let mut ids = Vec::new();
        for _ in 0..count {
            let call = call_record(user_id, bson::DateTime::now(), CallStatus::InProgress);
            self.insert_call(&call).await;
            ids.push(call.id);
        }
        (user_id, ids)
    }

    /// How many documents `collection` holds.
    pub async fn count(&self, collection: &str) -> u64 {
        self.storage
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .expect("count")
    }

    /// A raw document of `collection` by `_id`.
    pub async fn raw_document(&self, collection: &str, id: &str) -> Document {
        self.storage
            .collection::<Document>(collection)
            .find_one(doc! { "_id": oid::<bson::oid::ObjectId>(id) })
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("{collection} {id} exists"))
    }
}

/// A tenant created through the admin API.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    /// The first API key (shown once at creation).
    pub api_key: String,
    pub api_key_id: String,
    pub name: String,
    pub email: String,
}

impl TestTenant {
    pub fn object_id(&self) -> TenantId {
        oid(&self.id)
    }
}

/// The typed id (tenant, assistant, call, …) these 24 hex digits name.
pub fn oid<Id: std::str::FromStr>(hex: &str) -> Id {
    hex.parse()
        .unwrap_or_else(|_| panic!("{hex:?} is an ObjectId"))
}

/// Asserts the status (showing the body when it differs) and returns the body as JSON.
pub async fn expect_status(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body read");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Asserts an error answer: status, the envelope and its code. Returns the body.
pub async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    let body = expect_status(response, status).await;
    assert_error_envelope(&body, code);
    body
}

/// The error message of an error body.
pub fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// A call log of `user_id` created at `created_at` whose status is `status`, with the status
/// history that leads there. Tests adjust the other fields.
pub fn call_record(
    user_id: TenantId,
    created_at: bson::DateTime,
    status: CallStatus,
) -> CallLogRecord {
    let millis = created_at.timestamp_millis();
    let mut history = vec![StatusEvent {
        status: CallStatus::Initiated,
        at: created_at,
        source: Some(ReportSource::Flow),
        event: Some("flow.received".to_owned()),
    }];
    let path = match status {
        CallStatus::Initiated => vec![],
        CallStatus::Ringing => vec![CallStatus::Ringing],
        CallStatus::InProgress => vec![CallStatus::Ringing, CallStatus::InProgress],
        CallStatus::Completed => vec![
            CallStatus::Ringing,
            CallStatus::InProgress,
            CallStatus::Completed,
        ],
        terminal => vec![CallStatus::Ringing, terminal],
    };
    for (step, status) in path.into_iter().enumerate() {
        history.push(StatusEvent {
            status,
            at: bson::DateTime::from_millis(millis + 1_000 * (step as i64 + 1)),
            source: Some(ReportSource::Webhook),
            event: Some(format!("status:{status}")),
        });
    }
    CallLogRecord {
        id: CallId::new(),
        user_id,
        assistant_id: None,
        frejun_call_id: None,
        from_number: Some("+14155550100".to_owned()),
        to_number: Some("+14155550199".to_owned()),
        call_type: CallType::Inbound,
        call_status: status,
        platform: "frejun".to_owned(),
        status_history: history,
        started_at: Some(created_at),
        answered_at: None,
        ended_at: None,
        duration: None,
        end_reason: None,
        transcript: Vec::new(),
        usage: None,
        cost_usd: None,
        metrics: None,
        recording_url: None,
        error: None,
        hangup: None,
        other_events: Vec::new(),
        status_revision: 0,
        media_stream_claimed_at: None,
        owner: None,
        outbox: Vec::new(),
        analysis: None,
        recording_url_at: None,
        recording_id: None,
        recording_id_at: None,
        created_at,
        updated_at: created_at,
        schema_version: 1,
    }
}

/// Percent-encodes a query value (`+` in a phone number would otherwise read as a space).
pub fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The client tests use: no redirects followed, a generous timeout.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestApp {
    /// Tells the server to shut down (as SIGTERM does), keeping its database.
    pub fn shutdown_now(&self) {
        self.shutdown.cancel();
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
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Asserts the error envelope `{"success":false,"error":{"code","message"}}` with `code`.
pub fn assert_error_envelope(body: &Value, code: &str) {
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

/// A tenant ready to take calls: OpenAI and FreJun keys stored, one assistant (16 kHz, 100 ms
/// inbound chunks) and one active number assigned to it.
#[derive(Debug, Clone)]
pub struct CallingTenant {
    pub tenant: TestTenant,
    /// The tenant's FreJun URL secret (`key=` in its FreJun URLs).
    pub key: String,
    pub assistant_id: String,
    pub number_id: String,
    pub number: String,
}

impl TestApp {
    /// Sets up a [`CallingTenant`] owning `number`, with `max_concurrent_calls` of `limit`.
    pub async fn calling_tenant(&self, name: &str, number: &str, limit: u32) -> CallingTenant {
        let email = format!(
            "{}@{}.example",
            uuid::Uuid::new_v4().simple(),
            name.to_lowercase()
        );
        let response = self
            .post_as(
                "/api/admin/users",
                &self.admin_token(),
                &json!({ "name": name, "email": email, "max_concurrent_calls": limit }),
            )
            .await;
        let data = expect_status(response, StatusCode::CREATED).await["data"].take();
        let tenant = TestTenant {
            id: data["id"].as_str().expect("id").to_owned(),
            api_key: data["api_key"].as_str().expect("api_key").to_owned(),
            api_key_id: data["api_key_id"].as_str().expect("api_key_id").to_owned(),
            name: name.to_owned(),
            email,
        };
        let response = self
            .put_as(
                "/api/me/credentials",
                &tenant.api_key,
                &json!({ "openai_api_key": "sk-test-openai-0001", "frejun_api_key": "fj-test-key-0001" }),
            )
            .await;
        expect_status(response, StatusCode::OK).await;
        let assistant = self
            .create_assistant(
                &tenant,
                json!({
                    "name": "Front desk",
                    "audio": { "codec": "pcm24k", "inbound_rate": "16k", "inbound_chunk_ms": 100, "outbound_chunk_ms": 200 },
                }),
            )
            .await;
        let assistant_id = assistant["id"].as_str().expect("id").to_owned();
        let created = self
            .create_phone_number(
                &tenant,
                json!({ "phone_number": number, "assistant_id": assistant_id }),
            )
            .await;
        CallingTenant {
            key: self.frejun_key(&tenant).await,
            tenant,
            assistant_id,
            number_id: created["id"].as_str().expect("id").to_owned(),
            number: created["phone_number"].as_str().expect("number").to_owned(),
        }
    }

    /// The tenant's FreJun URL secret, read from the incoming-call URL `GET /api/me` shows.
    pub async fn frejun_key(&self, tenant: &TestTenant) -> String {
        let me = expect_status(
            self.get_as("/api/me", &tenant.api_key).await,
            StatusCode::OK,
        )
        .await;
        let url = url::Url::parse(me["data"]["frejun"]["incoming_call_url"].as_str().unwrap())
            .expect("a URL");
        url.query_pairs()
            .find(|(name, _)| name == "key")
            .map(|(_, value)| value.into_owned())
            .expect("a key parameter")
    }

    /// POSTs FreJun's flow request with `key` (and `call`, for outbound calls).
    pub async fn post_flow(
        &self,
        key: Option<&str>,
        call: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.post_frejun("/api/frejun/flow", key, call, body).await
    }

    /// POSTs a status webhook with `key` (and `call`).
    pub async fn post_webhook(
        &self,
        key: Option<&str>,
        call: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.post_frejun("/api/frejun/webhook", key, call, body)
            .await
    }

    /// POSTs `body` to one of FreJun's URLs, as FreJun would: `key` and `call` in the query.
    async fn post_frejun(
        &self,
        path: &str,
        key: Option<&str>,
        call: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut url = url::Url::parse(&self.url(path)).unwrap();
        for (name, value) in [("key", key), ("call", call)] {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        self.client
            .post(url)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// The concurrency slots `tenant` holds (expired or not).
    pub async fn held_slots(
        &self,
        tenant: &CallingTenant,
    ) -> Vec<voxbridge::storage::call_slots::SlotLease> {
        self.storage
            .call_slots()
            .held(tenant.tenant.object_id())
            .await
            .expect("slots read")
    }

    /// The stored call log `id`.
    pub async fn call_log(&self, id: &str) -> CallLogRecord {
        self.storage
            .collection::<CallLogRecord>("call_logs")
            .find_one(doc! { "_id": oid::<bson::oid::ObjectId>(id) })
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("call {id} exists"))
    }
}

/// FreJun's flow request body for a call from `from` to `to`.
pub fn flow_body(call_id: &str, from: &str, to: &str) -> Value {
    json!({
        "call_id": call_id,
        "account_id": "acc_test",
        "from_number": from,
        "to_number": to,
        "direction": "inbound",
    })
}

/// Verifies a received webhook with the `standardwebhooks` crate (the Standard Webhooks
/// project's own library), as a tenant would: an independent check of our signatures.
pub fn verified_independently(
    secret: &str,
    received: &voxbridge::sim::fake_webhook_receiver::ReceivedWebhook,
) -> bool {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", &received.id),
        ("webhook-timestamp", &received.timestamp),
        ("webhook-signature", &received.signature),
    ] {
        if let Some(value) = value {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&received.raw_body, &headers)
        .is_ok()
}

/// Calls `read` every 50 ms until `done` holds of what it answers, or `timeout` passes;
/// answers the last reading (for state a background worker is about to write).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = read().await;
        if done(&value) || tokio::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary (`voxbridge serve`) on a free port over `database`, with `env` on top of
/// what it needs to share the tests' secrets; answers the process and a handle once `/ready`
/// answers. The state directory lives as long as the returned guard.
pub async fn serve_binary(
    database: TestDatabase,
    env: &[(&str, &str)],
) -> (std::process::Child, TestApp, tempfile::TempDir) {
    let mut settings = database.settings.clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    settings.server.port = port;
    let state_dir = tempfile::tempdir().unwrap();
    let security = &settings.security;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    command
        .arg("serve")
        .env("VOXBRIDGE__MONGODB__URI", mongodb_uri())
        .env("VOXBRIDGE__MONGODB__DATABASE", &settings.mongodb.database)
        .env("VOXBRIDGE__SERVER__PORT", port.to_string())
        .env(
            "VOXBRIDGE__SECURITY__ADMIN_TOKEN",
            security.admin_token.expose(),
        )
        .env(
            "VOXBRIDGE__SECURITY__MASTER_KEY",
            security.master_key.to_base64().expose(),
        )
        .env(
            "VOXBRIDGE__SECURITY__URL_SIGNING_KEY",
            security.url_signing_key.expose(),
        )
        .env("VOXBRIDGE__DEV__STATE_DIR", state_dir.path())
        .env("VOXBRIDGE__LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let server = command.spawn().expect("voxbridge serve starts");
    let app = TestApp::for_external_server(format!("http://127.0.0.1:{port}"), settings, database);
    let ready = poll_until(
        Duration::from_secs(20),
        || async {
            app.client
                .get(app.url("/ready"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        },
        |ready| *ready,
    )
    .await;
    assert!(ready, "the server became ready");
    (server, app, state_dir)
}

impl TestDatabase {
    /// Another handle on this database, for a second server process over it ([`serve_binary`]
    /// takes a handle of its own). Dropping any handle drops the database, so a test keeps every
    /// handle (every `TestApp` holding one) until it ends.
    pub fn another_handle(&self) -> TestDatabase {
        TestDatabase {
            storage: self.storage.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// Registers `receiver` as the tenant's webhook endpoint for every event type and gives it the
/// endpoint's signing secret, so it verifies what it receives.
pub async fn register_webhook_endpoint(
    app: &TestApp,
    tenant: &CallingTenant,
    receiver: &voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver,
) {
    let endpoint = json!({"url": receiver.url("/hooks")});
    register_webhook_receiver(app, &tenant.tenant.api_key, receiver, endpoint).await;
}

/// Creates the webhook endpoint `body` with the tenant's `api_key` and gives `receiver` its
/// signing secret.
pub async fn register_webhook_receiver(
    app: &TestApp,
    api_key: &str,
    receiver: &voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver,
    body: Value,
) {
    let created = expect_status(
        app.post_as("/api/webhook-endpoints", api_key, &body).await,
        StatusCode::CREATED,
    )
    .await;
    receiver
        .set_secret_text(created["data"]["signing_secret"].as_str().unwrap())
        .unwrap();
}
