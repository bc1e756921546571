//! A fake FreJun Teler REST API for integration tests, the demo and the load generator, plus the
//! requests FreJun itself makes (the flow fetch and the lifecycle webhooks).
//!
//! It answers the way docs/frejun-setup.md says FreJun does: `POST
//! /api/v1/voice/calls/initiate` (and the deprecated `/api/v1/calls/initiate`) validates the body
//! and answers 202 with a `cs_` + ULID call id; `POST /api/v1/voice/calls/{id}/hangup` answers 202,
//! 404 or 409 `call_not_live`. Errors use FreJun's envelope. Every request is recorded before it
//! is answered, including refused and malformed ones, so tests can assert on exactly what our
//! client sent. [`FakeTeler::fail_with`] makes it misbehave the ways the real service can.
//!
//! Checks run in FreJun's order: API key first (a gateway concern), then the injected
//! [`Failure`], then body validation.

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

/// The `account_id` the fake puts in flow fetches and webhooks.
pub const FAKE_ACCOUNT_ID: &str = "acc_01JQ8Z0000FAKEACC0UNT0000";

/// The `call_app_id` the fake puts in webhooks.
pub const FAKE_CALL_APP_ID: &str = "va_01JQ8Z0000FAKEVAPP0000000";

/// Largest request body the fake reads; larger ones are answered 413 (after being recorded).
pub const BODY_LIMIT: usize = 64 * 1024;

/// FreJun's phone-number pattern for initiate (APIEV), quoted in validation messages.
const NUMBER_PATTERN: &str = r"^\+\d{7,15}$";

/// Longest `flow_url` FreJun accepts (APIEV: URI, ≤ 2083 characters).
const MAX_URL_CHARS: usize = 2083;

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
    pub async fn start_on(address: SocketAddr) -> io::Result<FakeTeler> {
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

    /// The address the fake listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Calls created by successful initiates, in creation order.
    pub fn calls(&self) -> Vec<FakeCall> {
        lock(&self.state).calls.clone()
    }

    /// Accepts only these API keys from now on; others get 403
    /// `{"success":false,"message":"Invalid API Key."}`. By default any non-empty key is
    /// accepted. A missing or empty `x-api-key` is always refused.
    pub fn accept_only_keys(&self, keys: &[&str]) {
        lock(&self.state).accepted_keys = Some(keys.iter().map(|&key| key.to_owned()).collect());
    }

    /// Goes back to accepting any non-empty key.
    pub fn accept_any_key(&self) {
        lock(&self.state).accepted_keys = None;
    }

    /// Makes every following initiate and hangup (with an accepted key) fail this way, until
    /// [`FakeTeler::clear_failure`].
    pub fn fail_with(&self, failure: Failure) {
        lock(&self.state).failure = Some(failure);
    }

    /// Back to normal answers.
    pub fn clear_failure(&self) {
        lock(&self.state).failure = None;
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
    });
    if too_large {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
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
        ["voice", "calls", "initiate"]
        | ["calls", "initiate"]
        | ["voice", "calls", _, "hangup"] => {
            envelope(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
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
    if let Err(errors) = validate_hangup(body) {
        return validation_error(errors);
    }
    let mut state = lock(state);
    let Some(call) = state
        .calls
        .iter_mut()
        .find(|call| call.id == call_id && call.api_key == api_key)
    else {
        return envelope(StatusCode::NOT_FOUND, "Call not found");
    };
    if call.hung_up {
        return HttpResponse::Conflict().json(json!({
            "success": false,
            "message": "Call is not live",
            "code": "call_not_live",
            "type": "invalid_state",
        }));
    }
    call.hung_up = true;
    HttpResponse::Accepted().json(json!({ "request_id": format!("req_{}", ulid()) }))
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
        let state = lock(state);
        let accepted = !api_key.is_empty()
            && state
                .accepted_keys
                .as_ref()
                .is_none_or(|keys| keys.contains(&api_key));
        if !accepted {
            return Err(envelope(StatusCode::FORBIDDEN, "Invalid API Key."));
        }
        state.failure.clone()
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

/// 422 in FreJun's documented envelope.
fn validation_error(errors: Vec<Value>) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(json!({
        "success": false,
        "message": "Validation Error",
        "errors": errors,
    }))
}

/// One validation problem in pydantic's shape.
fn problem(field: &str, msg: &str, kind: &str) -> Value {
    let loc = if field.is_empty() {
        json!(["body"])
    } else {
        json!(["body", field])
    };
    json!({"loc": loc, "msg": msg, "type": kind})
}

/// Checks an initiate body the way FreJun's OpenAPI describes it, reporting every problem at
/// once. The returned call has no id or key yet.
fn validate_initiate(body: &[u8]) -> Result<FakeCall, Vec<Value>> {
    let root = parse_object(body)?;
    let mut errors = Vec::new();
    let mut number = |field: &str| match root.get(field) {
        None | Some(Value::Null) => {
            errors.push(problem(field, "Field required", "missing"));
            String::new()
        }
        Some(Value::String(text)) if is_e164(text) => text.clone(),
        Some(Value::String(_)) => {
            errors.push(problem(
                field,
                &format!("String should match pattern '{NUMBER_PATTERN}'"),
                "string_pattern_mismatch",
            ));
            String::new()
        }
        Some(_) => {
            errors.push(problem(
                field,
                "Input should be a valid string",
                "string_type",
            ));
            String::new()
        }
    };
    let from_number = number("from_number");
    let to_number = number("to_number");
    let mut url = |field: &str| match root.get(field) {
        None | Some(Value::Null) => {
            errors.push(problem(field, "Field required", "missing"));
            String::new()
        }
        Some(Value::String(text)) => match url_problem(text) {
            None => text.clone(),
            Some((msg, kind)) => {
                errors.push(problem(field, msg, kind));
                String::new()
            }
        },
        Some(_) => {
            errors.push(problem(
                field,
                "Input should be a valid string",
                "string_type",
            ));
            String::new()
        }
    };
    let flow_url = url("flow_url");
    let status_callback_url = url("status_callback_url");
    // FreJun records by default.
    let record = match root.get("record") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(record)) => *record,
        Some(_) => {
            errors.push(problem(
                "record",
                "Input should be a valid boolean",
                "bool_parsing",
            ));
            true
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(FakeCall {
        id: String::new(),
        from_number,
        to_number,
        flow_url,
        status_callback_url,
        record,
        hung_up: false,
        api_key: String::new(),
    })
}

/// A hangup body is empty, `{}`, or has string `reason` / `leg_id` fields.
fn validate_hangup(body: &[u8]) -> Result<(), Vec<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let root = parse_object(body)?;
    let errors: Vec<Value> = ["reason", "leg_id"]
        .into_iter()
        .filter(|field| root.get(*field).is_some_and(|value| !value.is_string()))
        .map(|field| problem(field, "Input should be a valid string", "string_type"))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The body as a JSON object, or pydantic's error for it.
fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Vec<Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(vec![problem(
            "",
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )]),
        Err(_) => Err(vec![problem("", "JSON decode error", "json_invalid")]),
    }
}

/// `^\+\d{7,15}$`.
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Why `text` is not an absolute http(s) URL of at most [`MAX_URL_CHARS`], as (msg, type).
fn url_problem(text: &str) -> Option<(&'static str, &'static str)> {
    if text.chars().count() > MAX_URL_CHARS {
        return Some(("URL should have at most 2083 characters", "url_too_long"));
    }
    match Url::parse(text) {
        Err(_) => Some((
            "Input should be a valid URL, relative URL without a base",
            "url_parsing",
        )),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(("URL scheme should be 'http' or 'https'", "url_scheme"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(("Input should be a valid URL, empty host", "url_parsing"))
        }
        Ok(_) => None,
    }
}

/// Decodes `%XX` escapes of one path segment; malformed escapes are kept as they are.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A fresh FreJun call id: `cs_` + a ULID, as FreJun's current API issues (for calls the
/// simulators place without this fake, such as `voxbridge call inbound`).
pub fn new_call_id() -> String {
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

/// Builders for FreJun's lifecycle webhooks, in the documented envelope
/// `{"event","account_id","call_app_id","data":{...}}`. Note that `data` names the numbers
/// `from` / `to`, unlike the flow fetch.
pub mod events {
    use serde_json::{Value, json};

    use super::{FAKE_ACCOUNT_ID, FAKE_CALL_APP_ID};

    fn envelope(event: &str, data: Value) -> Value {
        json!({
            "event": event,
            "account_id": FAKE_ACCOUNT_ID,
            "call_app_id": FAKE_CALL_APP_ID,
            "data": data,
        })
    }

    /// `call.initiated`: FreJun has started placing the call.
    pub fn call_initiated(call_id: &str, from: &str, to: &str, start_time: &str) -> Value {
        envelope(
            "call.initiated",
            json!({"call_id": call_id, "from": from, "to": to, "start_time": start_time}),
        )
    }

    /// `call.ringing`: the callee's phone is ringing.
    pub fn call_ringing(call_id: &str, from: &str, to: &str) -> Value {
        envelope(
            "call.ringing",
            json!({"call_id": call_id, "from": from, "to": to}),
        )
    }

    /// `call.answered`: the callee picked up.
    pub fn call_answered(call_id: &str, from: &str, to: &str, answer_time: &str) -> Value {
        envelope(
            "call.answered",
            json!({"call_id": call_id, "from": from, "to": to, "answer_time": answer_time}),
        )
    }

    /// `call.completed`: the call ended (answered or not); `duration` in seconds.
    pub fn call_completed(
        call_id: &str,
        from: &str,
        to: &str,
        duration_secs: u64,
        hangup_time: &str,
    ) -> Value {
        envelope(
            "call.completed",
            json!({
                "call_id": call_id,
                "from": from,
                "to": to,
                "duration": duration_secs,
                "hangup_time": hangup_time,
            }),
        )
    }

    /// `stream.initiated`: FreJun opened the media WebSocket.
    pub fn stream_initiated(call_id: &str, stream_id: &str, start_time: &str) -> Value {
        envelope(
            "stream.initiated",
            json!({"call_id": call_id, "stream_id": stream_id, "start_time": start_time}),
        )
    }

    /// `stream.completed`: the media WebSocket closed.
    pub fn stream_completed(call_id: &str, stream_id: &str, end_time: &str) -> Value {
        envelope(
            "stream.completed",
            json!({"call_id": call_id, "stream_id": stream_id, "end_time": end_time}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::SecretString;
    use crate::providers::teler::{InitiateCall, TelerClient, TelerError};

    const KEY: &str = "teler-key-1";

    fn key(value: &str) -> SecretString {
        SecretString::new(value)
    }

    fn client(fake: &FakeTeler, timeout: Duration) -> TelerClient {
        TelerClient::new(fake.base_url(), timeout)
    }

    fn new_call() -> InitiateCall {
        InitiateCall {
            from_number: "+918000000001".into(),
            to_number: "+14155550123".into(),
            flow_url: "https://voxbridge.example/teler/flow?t=abc".into(),
            status_callback_url: "https://voxbridge.example/teler/webhook?t=abc".into(),
            record: false,
        }
    }

    #[test]
    fn ids_look_like_frejuns() {
        let id = ulid();
        assert_eq!(id.len(), 26);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_ne!(ulid(), ulid());
        assert!(is_e164("+1234567") && is_e164("+123456789012345"));
        assert!(!is_e164("+123456") && !is_e164("+1234567890123456") && !is_e164("12345678"));
        assert_eq!(percent_decode("a%2Fb%20c%zz%4"), "a/b c%zz%4");
    }

    #[tokio::test]
    async fn initiate_happy_path() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client(&fake, Duration::from_secs(5));

        let call = client.initiate_call(&key(KEY), &new_call()).await.unwrap();

        assert!(
            call.id.starts_with("cs_") && call.id.len() == 29,
            "{call:?}"
        );
        assert_eq!(call.message.as_deref(), Some("Call initiated successfully"));
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/api/v1/voice/calls/initiate");
        assert_eq!(request.header("x-api-key"), Some(KEY));
        assert_eq!(request.header("X-Api-Key"), Some(KEY));
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept"), Some("application/json"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(
            request.body,
            json!({
                "from_number": "+918000000001",
                "to_number": "+14155550123",
                "flow_url": "https://voxbridge.example/teler/flow?t=abc",
                "status_callback_url": "https://voxbridge.example/teler/webhook?t=abc",
                "record": false,
            })
        );
        let calls = fake.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, call.id);
        assert_eq!(calls[0].api_key, KEY);
        assert_eq!(calls[0].flow_url, new_call().flow_url);
        assert!(!calls[0].record && !calls[0].hung_up);
    }

    #[tokio::test]
    async fn each_failure_maps_to_its_error() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client(&fake, Duration::from_secs(5));
        type Check = fn(&TelerError) -> bool;
        let cases: Vec<(Failure, Check)> = vec![
            (
                Failure::InvalidKey401,
                |err| matches!(err, TelerError::Unauthorized { status: 401, message } if message == "Invalid API Key."),
            ),
            (Failure::InvalidKey403, |err| {
                matches!(err, TelerError::Unauthorized { status: 403, .. })
            }),
            (
                Failure::NumberNotProvisioned,
                |err| matches!(err, TelerError::NumberNotProvisioned { message } if message.contains("not provisioned")),
            ),
            (Failure::ValidationErrors, |err| {
                matches!(err, TelerError::Validation { status: 422, message, details }
                    if message == "Validation Error"
                        && details.len() == 1
                        && details[0].starts_with("to_number: String should match pattern"))
            }),
            (Failure::ValidationDetail, |err| {
                matches!(err, TelerError::Validation { status: 422, details, .. }
                    if details.len() == 1 && details[0].starts_with("to_number: "))
            }),
            (
                Failure::RateLimited {
                    retry_after_secs: 3,
                },
                |err| matches!(err, TelerError::RateLimited { retry_after: Some(delay), .. } if *delay == Duration::from_secs(3)),
            ),
            (Failure::ServerError(500), |err| {
                matches!(
                    err,
                    TelerError::Unavailable {
                        status: Some(500),
                        ..
                    }
                )
            }),
            (Failure::ServerError(502), |err| {
                matches!(
                    err,
                    TelerError::Unavailable {
                        status: Some(502),
                        ..
                    }
                )
            }),
            (Failure::ServerError(503), |err| {
                matches!(
                    err,
                    TelerError::Unavailable {
                        status: Some(503),
                        ..
                    }
                )
            }),
            (Failure::MalformedSuccess, |err| {
                matches!(err, TelerError::InvalidResponse { status: 202, .. })
            }),
        ];
        for (failure, check) in cases {
            fake.fail_with(failure.clone());
            // Twice: the failure persists until cleared.
            for _ in 0..2 {
                let err = client
                    .initiate_call(&key(KEY), &new_call())
                    .await
                    .unwrap_err();
                assert!(check(&err), "{failure:?} gave {err:?}");
                assert!(!format!("{err} {err:?}").contains(KEY));
            }
        }
        assert!(fake.calls().is_empty());

        fake.clear_failure();
        client.initiate_call(&key(KEY), &new_call()).await.unwrap();
        assert_eq!(fake.calls().len(), 1);
        // Every request was recorded, the failed ones too.
        assert_eq!(fake.requests().len(), 21);
    }

    #[tokio::test]
    async fn only_accepted_keys_get_through() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client(&fake, Duration::from_secs(5));
        fake.accept_only_keys(&["good"]);

        let err = client
            .initiate_call(&key("bad"), &new_call())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TelerError::Unauthorized { status: 403, message } if message == "Invalid API Key."),
            "{err:?}"
        );
        client
            .initiate_call(&key("good"), &new_call())
            .await
            .unwrap();

        fake.accept_any_key();
        let err = client
            .initiate_call(&key(""), &new_call())
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::Unauthorized { status: 403, .. }));

        // A missing header is refused even when a failure is injected.
        fake.fail_with(Failure::ServerError(500));
        let response = reqwest::Client::new()
            .post(fake.base_url().join("voice/calls/initiate").unwrap())
            .json(&new_call())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);

        // A key that cannot be a header value is refused without a request.
        let before = fake.requests().len();
        let err = client
            .initiate_call(&key("bad\nkey"), &new_call())
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::Unauthorized { .. }));
        assert_eq!(fake.requests().len(), before);
    }

    #[tokio::test]
    async fn the_fake_validates_initiate_bodies() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client(&fake, Duration::from_secs(5));
        let bad = InitiateCall {
            to_number: "14155550123".into(),
            flow_url: "ftp://voxbridge.example/flow".into(),
            status_callback_url: "not a url".into(),
            ..new_call()
        };

        let err = client.initiate_call(&key(KEY), &bad).await.unwrap_err();
        match err {
            TelerError::Validation {
                status: 422,
                message,
                details,
            } => {
                assert_eq!(message, "Validation Error");
                assert_eq!(
                    details,
                    [
                        r"to_number: String should match pattern '^\+\d{7,15}$'",
                        "flow_url: URL scheme should be 'http' or 'https'",
                        "status_callback_url: Input should be a valid URL, relative URL without a base",
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(fake.calls().is_empty());

        let raw = reqwest::Client::new();
        let url = fake.base_url().join("voice/calls/initiate").unwrap();
        let response = raw
            .post(url.clone())
            .header("x-api-key", KEY)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 422);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["errors"][0]["type"], "json_invalid");
        assert_eq!(fake.requests().last().unwrap().body, Value::Null);

        let response = raw
            .post(url)
            .header("x-api-key", KEY)
            .json(&json!({"from_number": "+918000000001", "record": "yes"}))
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        let kinds: Vec<&str> = answer["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["missing", "missing", "missing", "bool_parsing"]);
    }

    #[tokio::test]
    async fn the_legacy_path_behaves_the_same() {
        let fake = FakeTeler::start().await.unwrap();
        let response = reqwest::Client::new()
            .post(fake.base_url().join("calls/initiate").unwrap())
            .header("x-api-key", KEY)
            .json(&json!({
                "from_number": "+918000000001",
                "to_number": "+14155550123",
                "flow_url": "http://localhost:8080/flow",
                "status_callback_url": "http://localhost:8080/webhook",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let answer: Value = response.json().await.unwrap();
        let id = answer["data"]["id"].as_str().unwrap();
        assert_eq!(answer["data"]["record"], true);
        let calls = fake.calls();
        assert_eq!(calls[0].id, id);
        assert!(calls[0].record, "record defaults to true");
        assert_eq!(fake.requests()[0].path, "/api/v1/calls/initiate");
    }

    #[tokio::test]
    async fn stall_past_the_timeout_is_a_timeout() {
        let fake = FakeTeler::start().await.unwrap();
        fake.fail_with(Failure::Stall(Duration::from_secs(3)));
        let impatient = client(&fake, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = impatient
            .initiate_call(&key(KEY), &new_call())
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::Timeout), "{err:?}");
        assert_eq!(err.status(), None);
        assert!(started.elapsed() < Duration::from_secs(2));

        // A short stall only delays a normal answer.
        fake.fail_with(Failure::Stall(Duration::from_millis(50)));
        client(&fake, Duration::from_secs(5))
            .initiate_call(&key(KEY), &new_call())
            .await
            .unwrap();
        assert_eq!(fake.calls().len(), 1);
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap().port()
        };
        let base = Url::parse(&format!("http://127.0.0.1:{port}/api/v1")).unwrap();
        let client = TelerClient::new(base, Duration::from_secs(5));
        let err = client
            .initiate_call(&key(KEY), &new_call())
            .await
            .unwrap_err();
        match &err {
            TelerError::Unavailable {
                status: None,
                message,
            } => assert!(message.starts_with("cannot connect to Teler"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{err:?}").contains(KEY));

        // The same after an explicit stop.
        let fake = FakeTeler::start().await.unwrap();
        let client = client_for(&fake);
        fake.stop().await;
        let err = client
            .initiate_call(&key(KEY), &new_call())
            .await
            .unwrap_err();
        assert!(
            matches!(err, TelerError::Unavailable { status: None, .. }),
            "{err:?}"
        );
    }

    fn client_for(fake: &FakeTeler) -> TelerClient {
        client(fake, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn hangup_happy_then_not_live_and_not_found() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client_for(&fake);
        let call = client.initiate_call(&key(KEY), &new_call()).await.unwrap();

        client.hangup(&key(KEY), &call.id, None).await.unwrap();
        assert!(fake.calls()[0].hung_up);
        let request = fake.requests().pop().unwrap();
        assert_eq!(
            request.path,
            format!("/api/v1/voice/calls/{}/hangup", call.id)
        );
        assert_eq!(request.body, json!({}));
        assert_eq!(request.header("x-api-key"), Some(KEY));
        let idempotency_key = request.header("idempotency-key").unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(idempotency_key)
                .unwrap()
                .get_version_num(),
            4
        );

        let err = client
            .hangup(&key(KEY), &call.id, Some("NORMAL_CLEARING"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TelerError::Conflict { code: Some(code), .. } if code == "call_not_live"),
            "{err:?}"
        );
        let request = fake.requests().pop().unwrap();
        assert_eq!(request.body, json!({"reason": "NORMAL_CLEARING"}));
        assert_ne!(request.header("idempotency-key"), Some(idempotency_key));

        let err = client
            .hangup(&key(KEY), "cs_UNKNOWN", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TelerError::NotFound { message } if message == "Call not found"),
            "{err:?}"
        );

        // Another account's key cannot see the call.
        let second = client.initiate_call(&key(KEY), &new_call()).await.unwrap();
        let err = client
            .hangup(&key("other-tenant"), &second.id, None)
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::NotFound { .. }), "{err:?}");
        assert!(!fake.calls()[1].hung_up);

        // Injected failures apply to hangups too.
        fake.fail_with(Failure::ServerError(503));
        let err = client
            .hangup(&key(KEY), &second.id, None)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            TelerError::Unavailable {
                status: Some(503),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn call_ids_are_one_path_segment() {
        let fake = FakeTeler::start().await.unwrap();
        let client = client_for(&fake);
        let err = client.hangup(&key(KEY), "a/b c?d", None).await.unwrap_err();
        assert!(matches!(err, TelerError::NotFound { .. }));
        assert_eq!(
            fake.requests()[0].path,
            "/api/v1/voice/calls/a%2Fb%20c%3Fd/hangup"
        );

        // Ids the URL would swallow are refused without a request.
        for id in ["", ".", ".."] {
            let err = client.hangup(&key(KEY), id, None).await.unwrap_err();
            assert!(matches!(err, TelerError::NotFound { .. }));
        }
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn unknown_paths_wrong_methods_and_big_bodies_are_recorded() {
        let fake = FakeTeler::start().await.unwrap();
        let raw = reqwest::Client::new();
        let base = fake.base_url();

        let status = |response: reqwest::Response| response.status().as_u16();
        let get = raw.get(base.join("voice/calls/initiate").unwrap());
        assert_eq!(status(get.send().await.unwrap()), 405);
        let unknown = raw.post(base.join("voice/apps").unwrap());
        assert_eq!(status(unknown.send().await.unwrap()), 404);
        let big = raw
            .post(base.join("voice/calls/initiate").unwrap())
            .header("x-api-key", KEY)
            .body(vec![b' '; BODY_LIMIT + 1]);
        assert_eq!(status(big.send().await.unwrap()), 413);

        let paths: Vec<(String, String)> = fake
            .requests()
            .into_iter()
            .map(|request| (request.method, request.path))
            .collect();
        assert_eq!(
            paths,
            [
                ("GET".to_owned(), "/api/v1/voice/calls/initiate".to_owned()),
                ("POST".to_owned(), "/api/v1/voice/apps".to_owned()),
                ("POST".to_owned(), "/api/v1/voice/calls/initiate".to_owned()),
            ]
        );
    }

    /// A stand-in for our own webhook and flow endpoints: records what it receives.
    struct Receiver {
        address: SocketAddr,
        received: Arc<Mutex<Vec<(String, Value)>>>,
        handle: ServerHandle,
    }

    impl Receiver {
        async fn start() -> Receiver {
            async fn receive(
                request: HttpRequest,
                body: web::Json<Value>,
                received: web::Data<Mutex<Vec<(String, Value)>>>,
            ) -> HttpResponse {
                received
                    .lock()
                    .unwrap()
                    .push((request.path().to_owned(), body.into_inner()));
                if request.path() == "/flow" {
                    HttpResponse::Ok().json(json!({
                        "action": "stream",
                        "ws_url": "wss://voxbridge.example/teler/ws",
                        "chunk_size": 500,
                        "sample_rate": "8k",
                        "record": true,
                    }))
                } else {
                    HttpResponse::Ok().body("received")
                }
            }
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let address = listener.local_addr().unwrap();
            let received = Arc::new(Mutex::new(Vec::new()));
            let data = web::Data::from(Arc::clone(&received));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/webhook", web::post().to(receive))
                    .route("/flow", web::post().to(receive))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            let handle = server.handle();
            tokio::spawn(server);
            Receiver {
                address,
                received,
                handle,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.address)
        }
    }

    #[tokio::test]
    async fn plays_frejun_webhooks_and_flow_fetch() {
        let fake = FakeTeler::start().await.unwrap();
        let receiver = Receiver::start().await;

        let event = events::call_completed(
            "cs_1",
            "+918000000001",
            "+14155550123",
            42,
            "2026-01-01T00:00:42Z",
        );
        let status = fake
            .send_webhook(&receiver.url("/webhook"), &event)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let (status, flow) = fake
            .fetch_flow(
                &receiver.url("/flow"),
                "cs_1",
                "+918000000001",
                "+14155550123",
                "outbound",
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(flow["action"], "stream");
        // A path the receiver does not serve.
        let status = fake
            .send_webhook(&receiver.url("/nowhere"), &event)
            .await
            .unwrap();
        assert_eq!(status, 404);

        let received = receiver.received.lock().unwrap().clone();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].0, "/webhook");
        assert_eq!(
            received[0].1,
            json!({
                "event": "call.completed",
                "account_id": FAKE_ACCOUNT_ID,
                "call_app_id": FAKE_CALL_APP_ID,
                "data": {
                    "call_id": "cs_1",
                    "from": "+918000000001",
                    "to": "+14155550123",
                    "duration": 42,
                    "hangup_time": "2026-01-01T00:00:42Z",
                }
            })
        );
        assert_eq!(
            received[1],
            (
                "/flow".to_owned(),
                json!({
                    "call_id": "cs_1",
                    "account_id": FAKE_ACCOUNT_ID,
                    "from_number": "+918000000001",
                    "to_number": "+14155550123",
                    "direction": "outbound",
                })
            )
        );
        receiver.handle.stop(false).await;
    }

    #[test]
    fn event_builders_follow_the_documented_envelope() {
        let cases = [
            (
                events::call_initiated("c", "+1", "+2", "t0"),
                "call.initiated",
                json!({"call_id": "c", "from": "+1", "to": "+2", "start_time": "t0"}),
            ),
            (
                events::call_ringing("c", "+1", "+2"),
                "call.ringing",
                json!({"call_id": "c", "from": "+1", "to": "+2"}),
            ),
            (
                events::call_answered("c", "+1", "+2", "t1"),
                "call.answered",
                json!({"call_id": "c", "from": "+1", "to": "+2", "answer_time": "t1"}),
            ),
            (
                events::stream_initiated("c", "s", "t2"),
                "stream.initiated",
                json!({"call_id": "c", "stream_id": "s", "start_time": "t2"}),
            ),
            (
                events::stream_completed("c", "s", "t3"),
                "stream.completed",
                json!({"call_id": "c", "stream_id": "s", "end_time": "t3"}),
            ),
        ];
        for (event, name, data) in cases {
            assert_eq!(event["event"], name);
            assert_eq!(event["account_id"], FAKE_ACCOUNT_ID);
            assert_eq!(event["call_app_id"], FAKE_CALL_APP_ID);
            assert_eq!(event["data"], data);
        }
    }
}
