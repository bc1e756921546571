//! A fake FreJun Teler REST API for integration tests, the demo and the load generator, plus the
//! requests FreJun itself makes (the flow fetch and the lifecycle webhooks).
//!
//! It answers the way docs/frejun-setup.md says FreJun does: `POST
//! /api/v1/voice/calls/initiate` (and the deprecated `/api/v1/calls/initiate`) validates the body
//! and answers 202 with a `cs_` + ULID call id; `POST /api/v1/voice/calls/{id}/hangup` checks the
//! `reason` against `^[A-Z0-9_]+$` and requires an `Idempotency-Key` (422 otherwise), then
//! answers 202, 404 or 409 `call_not_live` (a repeat with the key that hung up gets 202 again).
//! `GET /api/v1/voice/calls/{id}` answers the call's `state`. [`FakeTeler::receive_call`] creates
//! a live inbound call, as a call to a FreJun number would; [`FakeTeler::end_call`] ends one as
//! the caller hanging up would.
//! Errors use FreJun's envelope. Every request is recorded before it is answered, including
//! refused and malformed ones, so tests can assert on exactly what our client sent. [`FakeTeler::fail_with`] makes it misbehave the ways the real service can.
//!
//! Checks run in FreJun's order: API key first (a gateway concern), then the injected
//! [`Failure`], then body validation.
//!
//! Layout:
//! - this module: the fake server (its state, the request handlers, injected failures), the
//!   requests it makes as FreJun, and FreJun's call ids.
//! - `validation`: FreJun's checks of initiate and hangup bodies (E.164 numbers, URLs) and its
//!   422 error body for them, and the decoding of path segments.
//!
//! The webhook bodies FreJun posts are built by [`frejun_payloads`](super::frejun_payloads).

mod validation;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::frejun_requests::{self, FlowRequest};
use validation::{
    NUMBER_PATTERN, Operation, OperationRefusal, percent_decode, validate_hangup,
    validate_idempotency_key, validate_initiate, validate_operation, validation_error,
};

/// Largest request body the fake reads; larger ones are answered 413 (after being recorded).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// How long [`FakeTeler::send_webhook`] and [`FakeTeler::fetch_flow`] wait for an answer.
const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(10);

/// A running fake Teler API on `127.0.0.1` (random port). Dropping it stops the server.
pub struct FakeTeler {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
    /// The server future, spawned on the caller's runtime; awaited by [`FakeTeler::stop`].
    server: Option<JoinHandle<io::Result<()>>>,
    /// For the requests the fake makes as FreJun (webhooks, flow fetch).
    http: reqwest::Client,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Uppercase, e.g. `POST`.
    pub method: String,
    /// The path as sent, still percent-encoded (e.g. `/api/v1/voice/calls/a%2Fb/hangup`).
    pub path: String,
    /// Every header in the order the server saw them; names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` if it was empty, not JSON or over [`BODY_LIMIT`].
    pub body: Value,
    /// When it arrived (to compare with what a caller had heard by then).
    pub at: std::time::Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A call created by a successful initiate.
#[derive(Debug, Clone)]
pub struct FakeCall {
    /// `cs_` + 26 Crockford base32 characters (a ULID), as FreJun's current API issues.
    pub id: String,
    /// The initiate body's fields, as sent (`record` defaults to `true` when left out).
    pub from_number: String,
    /// See `from_number`.
    pub to_number: String,
    /// Where a test or the demo should [`FakeTeler::fetch_flow`] for this call.
    pub flow_url: String,
    /// Where a test or the demo should [`FakeTeler::send_webhook`] this call's events.
    pub status_callback_url: String,
    /// See `from_number`.
    pub record: bool,
    /// Set by a successful hangup; a second hangup then answers 409 `call_not_live`.
    pub hung_up: bool,
    /// The key that created the call: only that key can hang it up (others get 404, as a call
    /// of another FreJun account would).
    pub api_key: String,
    /// `inbound` for calls made with [`FakeTeler::receive_call`], else `outbound`.
    pub direction: &'static str,
    /// The `reason` and `Idempotency-Key` of the hang-up that ended the call.
    pub hangup_reason: Option<String>,
    pub hangup_key: Option<String>,
    /// The in-call operations FreJun accepted, in order (`transfer:<target>`, `dtmf:<digits>`,
    /// `play:<url>`).
    pub operations: Vec<String>,
}

/// How the fake misbehaves on initiate and hangup requests (with an accepted key) until
/// [`FakeTeler::clear_failure`].
#[derive(Debug, Clone)]
pub enum Failure {
    /// 401 `{"success":false,"message":"Invalid API Key."}` (the SDKs' other mapping).
    InvalidKey401,
    /// 403 `{"success":false,"message":"Invalid API Key."}` (what FreJun documents).
    InvalidKey403,
    /// 400 with code `from_number_not_provisioned`, type `invalid_request`.
    NumberNotProvisioned,
    /// 422 in FreJun's envelope: `{"success":false,"message":"Validation Error","errors":[...]}`.
    ValidationErrors,
    /// 422 in FastAPI's shape: `{"detail":[{"loc","msg","type"}]}`.
    ValidationDetail,
    /// 429 with `Retry-After: <retry_after_secs>`.
    RateLimited { retry_after_secs: u64 },
    /// This status (e.g. 500, 502, 503) with an error envelope.
    ServerError(u16),
    /// Sleeps this long, then handles the request normally (a slow but working FreJun).
    Stall(Duration),
    /// 202 with the plain-text body `ok`, and no state change.
    MalformedSuccess,
}

/// Everything the handlers share with the test.
#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    calls: Vec<FakeCall>,
    /// `None`: any non-empty key is accepted.
    accepted_keys: Option<Vec<String>>,
    failure: Option<Failure>,
    /// How many more answers `failure` applies to (`None`: until cleared).
    failures_left: Option<u32>,
    /// Recordings: id → the call they belong to.
    recordings: Vec<(String, String)>,
}

/// Locks the state. A test that panicked while holding the lock must not hide its own failure
/// behind poison errors in every later request, so poisoning is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeTeler {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime. The port is known
    /// when this returns, so callers never wait for readiness.
    pub async fn start() -> io::Result<FakeTeler> {
        FakeTeler::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Like [`FakeTeler::start`] on a chosen address, for a voxbridge in another process whose
    /// `VOXBRIDGE__FREJUN__API_BASE_URL` was set before this fake started (`voxbridge call
    /// outbound`).
    pub(crate) async fn start_on(address: SocketAddr) -> io::Result<FakeTeler> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                // One handler for every path, so that even unknown paths and wrong methods are
                // recorded before they are answered.
                .default_service(web::to(handle))
        })
        .workers(1)
        // The test or tool owns the process; it stops the fake by dropping it.
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        let http = reqwest::Client::builder()
            .timeout(OUTBOUND_TIMEOUT)
            .user_agent("fake-teler")
            .build()
            .map_err(io::Error::other)?;
        Ok(FakeTeler {
            address,
            state,
            handle,
            server: Some(server),
            http,
        })
    }

    /// `http://127.0.0.1:<port>/api/v1/`, the value to give `TelerClient::new`.
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}/api/v1/", self.address))
            .expect("a socket address always forms a valid URL")
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Calls created by successful initiates, in creation order.
    pub fn calls(&self) -> Vec<FakeCall> {
        lock(&self.state).calls.clone()
    }

    #[cfg(test)]
    /// Accepts only these API keys from now on; others get 403
    /// `{"success":false,"message":"Invalid API Key."}`. By default any non-empty key is
    /// accepted. A missing or empty `x-api-key` is always refused.
    pub(crate) fn accept_only_keys(&self, keys: &[&str]) {
        lock(&self.state).accepted_keys = Some(keys.iter().map(|&key| key.to_owned()).collect());
    }

    #[cfg(test)]
    /// Goes back to accepting any non-empty key.
    pub(crate) fn accept_any_key(&self) {
        lock(&self.state).accepted_keys = None;
    }

    /// Makes every following initiate and hangup (with an accepted key) fail this way, until
    /// [`FakeTeler::clear_failure`].
    pub fn fail_with(&self, failure: Failure) {
        lock(&self.state).failure = Some(failure);
    }

    /// Like [`FakeTeler::fail_with`] for the next `times` requests only, then normal answers
    /// (a FreJun that recovers).
    pub fn fail_next(&self, times: u32, failure: Failure) {
        let mut state = lock(&self.state);
        state.failure = Some(failure);
        state.failures_left = Some(times);
    }

    /// Back to normal answers.
    pub fn clear_failure(&self) {
        let mut state = lock(&self.state);
        state.failure = None;
        state.failures_left = None;
    }

    /// Plays FreJun recording the call `call_id`: answers the recording's id (`rec_` + ULID),
    /// which FreJun's webhooks then carry. `GET /recordings?recording_id=…` redirects to a
    /// signed URL on this fake that serves [`FAKE_RECORDING_MS`] of a 440 Hz tone as WAV.
    pub fn add_recording(&self, call_id: &str) -> String {
        let id = format!("rec_{}", ulid());
        lock(&self.state)
            .recordings
            .push((id.clone(), call_id.to_owned()));
        id
    }

    /// Plays the caller hanging up at FreJun: the call is over (later hang-ups answer 409), and
    /// `GET /voice/calls/{id}` says `completed`. No webhook is sent.
    pub fn end_call(&self, call_id: &str) {
        if let Some(call) = lock(&self.state)
            .calls
            .iter_mut()
            .find(|call| call.id == call_id)
        {
            call.hung_up = true;
        }
    }

    /// Plays a call arriving at a number of the FreJun account `api_key`: FreJun creates a live
    /// inbound call (which it would then fetch the flow for). Answers it, so that a test can use
    /// its id in the flow and check a later hang-up.
    pub fn receive_call(&self, api_key: &str, from: &str, to: &str) -> FakeCall {
        let call = FakeCall {
            id: new_call_id(),
            from_number: from.to_owned(),
            to_number: to.to_owned(),
            flow_url: String::new(),
            status_callback_url: String::new(),
            record: true,
            hung_up: false,
            api_key: api_key.to_owned(),
            direction: "inbound",
            hangup_reason: None,
            hangup_key: None,
            operations: Vec::new(),
        };
        lock(&self.state).calls.push(call.clone());
        call
    }

    /// Plays FreJun delivering a lifecycle webhook: POSTs `payload` as JSON to `url` and returns
    /// the HTTP status (10 s timeout).
    pub async fn send_webhook(&self, url: &str, payload: &Value) -> Result<u16, reqwest::Error> {
        frejun_requests::send_webhook(&self.http, url, payload).await
    }

    /// Plays FreJun fetching the call flow: POSTs
    /// `{"call_id","account_id","from_number","to_number","direction"}` to `flow_url` and returns
    /// the status and the body parsed as JSON (`Null` if it is not JSON).
    pub async fn fetch_flow(
        &self,
        flow_url: &str,
        call_id: &str,
        from: &str,
        to: &str,
        direction: &str,
    ) -> Result<(u16, Value), reqwest::Error> {
        let request = FlowRequest {
            call_id: call_id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            direction: direction.to_owned(),
        };
        frejun_requests::post_flow(&self.http, flow_url, &request).await
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(server) = self.server.take() {
            // The server's own result does not matter once it is stopped on purpose.
            let _ = server.await;
        }
    }
}

impl Drop for FakeTeler {
    fn drop(&mut self) {
        // `ServerHandle::stop` sends the stop command when called; the future only waits for
        // completion. Driving it on the runtime when there is one keeps this correct even if
        // that detail changes.
        let stopping = self.handle.stop(false);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(stopping);
        }
    }
}

/// The only handler: records the request, then routes it by hand.
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let (body, too_large) = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => (body, false),
        // The peer went away mid-body; what arrived is not a request we can judge.
        Ok(Err(_)) => (web::Bytes::new(), false),
        Err(_) => (web::Bytes::new(), true),
    };
    lock(&state).requests.push(RecordedRequest {
        method: request.method().as_str().to_owned(),
        path: request.path().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: std::time::Instant::now(),
    });
    if too_large {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    }

    if let Some(file) = request.path().strip_prefix("/storage/") {
        return stored_recording(&request, file, &state);
    }
    let segments: Vec<String> = match request.path().strip_prefix("/api/v1/") {
        Some(rest) => rest.split('/').map(percent_decode).collect(),
        None => Vec::new(),
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_post = request.method() == Method::POST;
    match segments.as_slice() {
        ["voice", "calls", "initiate"] | ["calls", "initiate"] if is_post => {
            initiate(&request, &body, &state).await
        }
        ["voice", "calls", call_id, "hangup"] if is_post => {
            hangup(&request, call_id, &body, &state).await
        }
        [
            "voice",
            "calls",
            call_id,
            kind @ ("transfer" | "dtmf" | "play"),
        ] if is_post => operation(&request, call_id, kind, &body, &state).await,
        ["recordings"] if request.method() == Method::GET => recording(&request, &state).await,
        ["voice", "calls", "initiate"]
        | ["calls", "initiate"]
        | ["voice", "calls", _, "hangup"] => {
            envelope(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        ["voice", "calls", call_id] if request.method() == Method::GET => {
            get_call(&request, call_id, &state).await
        }
        _ => envelope(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `POST /voice/calls/initiate` and the legacy `POST /calls/initiate`.
async fn initiate(request: &HttpRequest, body: &[u8], state: &Mutex<State>) -> HttpResponse {
    let api_key = match admit(request, state).await {
        Ok(api_key) => api_key,
        Err(response) => return response,
    };
    let call = match validate_initiate(body) {
        Ok(call) => call,
        Err(errors) => return validation_error(errors),
    };
    let call = FakeCall {
        id: new_call_id(),
        api_key,
        hung_up: false,
        direction: "outbound",
        hangup_reason: None,
        hangup_key: None,
        operations: Vec::new(),
        ..call
    };
    let answer = json!({
        "message": "Call initiated successfully",
        "data": {
            "id": call.id,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "status_callback_url": call.status_callback_url,
            "record": call.record,
        }
    });
    lock(state).calls.push(call);
    HttpResponse::Accepted().json(answer)
}

/// `POST /voice/calls/{call_id}/hangup`.
async fn hangup(
    request: &HttpRequest,
    call_id: &str,
    body: &[u8],
    state: &Mutex<State>,
) -> HttpResponse {
    let api_key = match admit(request, state).await {
        Ok(api_key) => api_key,
        Err(response) => return response,
    };
    let reason = match validate_hangup(body) {
        Ok(reason) => reason,
        Err(errors) => return validation_error(errors),
    };
    let key = match idempotency_key(request) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let mut state = lock(state);
    let call = match account_call(&mut state, call_id, &api_key) {
        Ok(call) => call,
        Err(response) => return response,
    };
    if call.hung_up {
        // A retry of the request that hung up (same key) gets the same answer; FreJun's own
        // dedupe behaviour is unpublished, so this is the fake's assumption.
        if call.hangup_key.as_deref() == Some(key.as_str()) {
            return HttpResponse::Accepted()
                .json(json!({ "request_id": format!("req_{}", ulid()) }));
        }
        return not_live();
    }
    call.hung_up = true;
    call.hangup_reason = reason;
    call.hangup_key = Some(key);
    HttpResponse::Accepted().json(json!({ "request_id": format!("req_{}", ulid()) }))
}

/// Length of the fake's recordings.
pub const FAKE_RECORDING_MS: u32 = 1_000;

/// `GET /recordings?recording_id=…&expires_in=…`: 307 to a signed storage URL, as FreJun's
/// recordings API does (422 for a malformed id or `expires_in`, 403 for another account's
/// recording, 404 for an unknown one).
async fn recording(request: &HttpRequest, state: &Mutex<State>) -> HttpResponse {
    let api_key = match admit(request, state).await {
        Ok(api_key) => api_key,
        Err(response) => return response,
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let Some(id) = param("recording_id").filter(|id| {
        id.strip_prefix("rec_")
            .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
    }) else {
        return validation_error(vec![
            json!({"loc": ["query", "recording_id"], "msg": "Invalid recording id", "type": "value_error"}),
        ]);
    };
    let expires_in = match param("expires_in").map(|text| text.parse::<u64>()) {
        None => 900,
        Some(Ok(secs)) if (60..=86_400).contains(&secs) => secs,
        Some(_) => {
            return validation_error(vec![
                json!({"loc": ["query", "expires_in"], "msg": "Input should be between 60 and 86400", "type": "value_error"}),
            ]);
        }
    };
    let state = lock(state);
    let Some((_, call_id)) = state.recordings.iter().find(|(known, _)| *known == id) else {
        return envelope(StatusCode::NOT_FOUND, "Recording not found");
    };
    let owner = state.calls.iter().find(|call| call.id == *call_id);
    if owner.is_none_or(|call| call.api_key != api_key) {
        return envelope(
            StatusCode::FORBIDDEN,
            "Recording does not belong to this account",
        );
    }
    let location = format!(
        "http://{}/storage/{id}.wav?expires_in={expires_in}&signature=fake-{}",
        request.connection_info().host(),
        ulid()
    );
    HttpResponse::TemporaryRedirect()
        .insert_header(("Location", location))
        .finish()
}

/// The signed storage URL of a recording: its audio as WAV, no API key needed (a request that
/// carries one is refused, as a presigned URL does not expect it).
fn stored_recording(request: &HttpRequest, file: &str, state: &Mutex<State>) -> HttpResponse {
    if request.headers().contains_key("x-api-key") {
        return envelope(
            StatusCode::BAD_REQUEST,
            "Credentials must not be sent to storage",
        );
    }
    let id = file.strip_suffix(".wav").unwrap_or(file);
    let known = lock(state).recordings.iter().any(|(known, _)| known == id);
    if !known || !request.query_string().contains("signature=") {
        return HttpResponse::Forbidden().body("AccessDenied");
    }
    let rate = 8_000;
    let samples = crate::audio::tone::sine(
        440.0,
        rate,
        (rate * FAKE_RECORDING_MS / 1_000) as usize,
        8_000.0,
    );
    HttpResponse::Ok()
        .content_type("audio/wav")
        .body(crate::sim::wav::encode_wav(rate, &samples))
}

/// `GET /voice/calls/{call_id}`: the call as FreJun sees it (`state` `answered` while an inbound
/// call is live, `initiated` for an outbound one not yet answered, `completed` once over).
async fn get_call(request: &HttpRequest, call_id: &str, state: &Mutex<State>) -> HttpResponse {
    let api_key = match admit(request, state).await {
        Ok(api_key) => api_key,
        Err(response) => return response,
    };
    let state = lock(state);
    let Some(call) = state
        .calls
        .iter()
        .find(|call| call.id == call_id && call.api_key == api_key)
    else {
        return envelope(StatusCode::NOT_FOUND, "Call not found");
    };
    let answered = call.direction == "inbound";
    let (call_state, reason) = match (call.hung_up, answered) {
        (true, _) => ("completed", Some("normal_clearing")),
        (false, true) => ("answered", None),
        (false, false) => ("initiated", None),
    };
    HttpResponse::Ok().json(json!({
        "data": {
            "id": call.id,
            "account_id": "acc_fake",
            "state": call_state,
            "direction": call.direction,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "answered_at": answered.then_some("2026-01-01T00:00:00Z"),
            "ended_at": call.hung_up.then_some("2026-01-01T00:01:00Z"),
            "reason": reason,
            "legs": [],
        }
    }))
}

/// `POST /voice/calls/{call_id}/{transfer|dtmf|play}`: FreJun's validation (422, or 400 for
/// what the live API does not support yet), a required `Idempotency-Key`, 404 for another
/// account's or an unknown call, 409 `call_not_live` once it ended; then 202 as FreJun answers.
/// A transfer ends the call here (the caller leaves us), so a second one answers 409.
async fn operation(
    request: &HttpRequest,
    call_id: &str,
    kind: &str,
    body: &[u8],
    state: &Mutex<State>,
) -> HttpResponse {
    let api_key = match admit(request, state).await {
        Ok(api_key) => api_key,
        Err(response) => return response,
    };
    let operation = match validate_operation(kind, body) {
        Ok(operation) => operation,
        Err(OperationRefusal::Invalid(errors)) => return validation_error(errors),
        Err(OperationRefusal::Unsupported { code, message }) => {
            return HttpResponse::BadRequest().json(json!({
                "success": false,
                "message": message,
                "code": code,
                "type": "invalid_request",
            }));
        }
    };
    if let Err(response) = idempotency_key(request) {
        return response;
    }
    let mut state = lock(state);
    let call = match account_call(&mut state, call_id, &api_key) {
        Ok(call) => call,
        Err(response) => return response,
    };
    if call.hung_up {
        return not_live();
    }
    let request_id = format!("req_{}", ulid());
    match operation {
        Operation::Transfer { target } => {
            let to = target
                .get("number")
                .or_else(|| target.get("uri"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            call.operations.push(format!("transfer:{to}"));
            // The caller is bridged elsewhere: the call is no longer ours to control.
            call.hung_up = true;
            HttpResponse::Accepted().json(json!({
                "id": format!("op_{}", ulid()),
                "call_id": call.id,
                "status": "initiated",
                "target_leg_id": null,
                "mode": "cold",
                "request_id": request_id,
            }))
        }
        Operation::Dtmf { digits } => {
            call.operations.push(format!("dtmf:{digits}"));
            HttpResponse::Accepted().json(json!({ "request_id": request_id, "playback_id": null }))
        }
        Operation::Play { media_url } => {
            call.operations.push(format!("play:{media_url}"));
            HttpResponse::Accepted().json(json!({
                "request_id": request_id,
                "playback_id": format!("pb_{}", ulid()),
            }))
        }
    }
}

/// The request's `Idempotency-Key`, checked (FreJun's SDKs always send one).
fn idempotency_key(request: &HttpRequest) -> Result<String, HttpResponse> {
    validate_idempotency_key(
        request
            .headers()
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok()),
    )
    .map_err(validation_error)
}

/// The account's call `call_id`: 404 when it is unknown or another account's.
fn account_call<'a>(
    state: &'a mut State,
    call_id: &str,
    api_key: &str,
) -> Result<&'a mut FakeCall, HttpResponse> {
    state
        .calls
        .iter_mut()
        .find(|call| call.id == call_id && call.api_key == api_key)
        .ok_or_else(|| envelope(StatusCode::NOT_FOUND, "Call not found"))
}

/// 409 `call_not_live`, FreJun's answer for a call that is over.
fn not_live() -> HttpResponse {
    HttpResponse::Conflict().json(json!({
        "success": false,
        "message": "Call is not live",
        "code": "call_not_live",
        "type": "invalid_state",
    }))
}

/// The checks before a request's own logic: the API key, then the injected failure. Returns the
/// accepted key, or the answer to send instead.
async fn admit(request: &HttpRequest, state: &Mutex<State>) -> Result<String, HttpResponse> {
    let api_key = request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let failure = {
        let mut state = lock(state);
        let accepted = !api_key.is_empty()
            && state
                .accepted_keys
                .as_ref()
                .is_none_or(|keys| keys.contains(&api_key));
        if !accepted {
            return Err(envelope(StatusCode::FORBIDDEN, "Invalid API Key."));
        }
        let failure = state.failure.clone();
        if let (Some(_), Some(left)) = (&failure, state.failures_left) {
            if left <= 1 {
                state.failure = None;
                state.failures_left = None;
            } else {
                state.failures_left = Some(left - 1);
            }
        }
        failure
    };
    match failure {
        None => Ok(api_key),
        Some(Failure::Stall(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(api_key)
        }
        Some(failure) => Err(failure_response(&failure)),
    }
}

/// The answer for an injected failure (other than `Stall`, which only delays).
fn failure_response(failure: &Failure) -> HttpResponse {
    let to_number_error = json!({
        "loc": ["body", "to_number"],
        "msg": format!("String should match pattern '{NUMBER_PATTERN}'"),
        "type": "value_error",
    });
    match failure {
        Failure::InvalidKey401 => envelope(StatusCode::UNAUTHORIZED, "Invalid API Key."),
        Failure::InvalidKey403 => envelope(StatusCode::FORBIDDEN, "Invalid API Key."),
        Failure::NumberNotProvisioned => HttpResponse::BadRequest().json(json!({
            "success": false,
            "message": "The from number is not provisioned on this account",
            "code": "from_number_not_provisioned",
            "type": "invalid_request",
        })),
        Failure::ValidationErrors => validation_error(vec![to_number_error]),
        Failure::ValidationDetail => {
            HttpResponse::UnprocessableEntity().json(json!({ "detail": [to_number_error] }))
        }
        Failure::RateLimited { retry_after_secs } => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .json(json!({"success": false, "message": "Too many requests"})),
        Failure::ServerError(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            envelope(status, &format!("Simulated HTTP {}", status.as_u16()))
        }
        Failure::MalformedSuccess => HttpResponse::Accepted()
            .content_type("text/plain")
            .body("ok"),
        Failure::Stall(_) => HttpResponse::Accepted().finish(),
    }
}

/// FreJun's error envelope without a code.
fn envelope(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"success": false, "message": message}))
}

/// A fresh FreJun call id: `cs_` + a ULID, as FreJun's current API issues (for calls the
/// simulators place without this fake, such as `voxbridge call inbound`).
pub(crate) fn new_call_id() -> String {
    format!("cs_{}", ulid())
}

/// A ULID: 48 bits of milliseconds then 80 random bits, in 26 Crockford base32 characters
/// (uppercase letters and digits), like FreJun's `cs_…` ids. Sortable by creation time, which
/// makes the load generator's logs easier to follow.
fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
        & ((1 << 48) - 1);
    let random = rand::random::<u128>() & ((1 << 80) - 1);
    let value = (millis << 80) | random;
    (0..26)
        .rev()
        .map(|index| char::from(ALPHABET[((value >> (index * 5)) & 31) as usize]))
        .collect()
}
