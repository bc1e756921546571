//! A fake of a tenant's HTTP tool endpoint: the server an assistant's HTTP "tool" points at,
//! which voxbridge POSTs to in the middle of a phone call.
//!
//! voxbridge sends `{"tool", "arguments", "tool_call_id", "call": {"id", "assistant_id", "from",
//! "to", "direction"}}` signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`). This fake checks every request the way a careful tenant would, so that
//! our client is tested against the contract rather than against a server that accepts anything:
//!
//! - the signature, with [`verify`] and the secret the test
//!   hands over with [`FakeToolServer::set_secret`] (no secret: every request is refused), within
//!   [`TOLERANCE_SECS`](crate::outbound::signing::TOLERANCE_SECS) of the wall clock;
//! - the body's shape, each problem recorded as a sentence naming the field.
//!
//! Every request is recorded before it is answered, refused ones included, so a test can assert
//! on exactly what voxbridge sent ([`FakeToolServer::requests`]).
//!
//! Checks run in a web framework's order: routing (404, then 405 for anything but `POST`), then
//! the signature (401 `{"error":"invalid signature"}`), then the body's shape (400), then the
//! route itself. The routes cover what a tool client must cope with:
//!
//! | route | answer |
//! |---|---|
//! | `/orders/lookup` | `{"order_id","status","carrier","eta"}` for `arguments.order_id` in the order table ([`FakeToolServer::add_order`]), 404 `{"error":"no such order"}` otherwise |
//! | `/slow?ms=N` | sleeps N ms (at most [`MAX_SLEEP_MS`]), then `{"ok":true,"slept_ms":N}` |
//! | `/redirect` | 302 to `/orders/lookup` |
//! | `/text` | `text/plain` `plain text answer` |
//! | `/big?bytes=N` | a JSON string of exactly N bytes (at most [`MAX_BIG_BYTES`]) |
//! | `/status/{code}` | that status with `{"error":"status <code>"}` |
//! | `/echo` | `{"arguments", "headers"}`: the arguments and every non-signature header, to check the tenant's secret headers were substituted |

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::loopback_server::LoopbackServer;
use crate::outbound::signing::{SigningSecret, verify};

/// Largest request body the fake reads (a tool request is a few hundred bytes); larger ones are
/// recorded without their body and answered 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Longest `/slow` sleep, so that a mistaken `ms` cannot hang a test run.
pub const MAX_SLEEP_MS: u64 = 60_000;
/// Largest `/big` body (10 MiB): enough to exceed any response limit voxbridge should have.
pub const MAX_BIG_BYTES: u64 = 10 * 1024 * 1024;

/// The Standard Webhooks headers: checked, and left out of `/echo`'s answer (which is about the
/// headers a tenant configured).
const SIGNATURE_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// Orders every fake starts with.
const SEEDED_ORDERS: [(&str, &str); 2] = [("A-1001", "shipped"), ("A-1002", "processing")];

/// A running fake tool server on `127.0.0.1` (random port). Dropping it stops the server.
pub struct FakeToolServer {
    server: LoopbackServer,
    state: Arc<Mutex<State>>,
}

/// One request the fake received, whether or not it was accepted.
#[derive(Debug, Clone)]
pub struct ToolRequestRecord {
    /// The path without the query string, e.g. `/slow`.
    pub path: String,
    /// The query string without the `?` (empty when there was none), e.g. `ms=200`.
    pub query: String,
    /// Uppercase, e.g. `POST`.
    pub method: String,
    /// Every header, by lowercase name; a header sent several times has its values joined with
    /// `, ` (as HTTP allows).
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, or the raw text (as a JSON string) when it is not JSON.
    pub body: Value,
    /// Whether the signature headers verified against the secret set at the time.
    pub signature_valid: bool,
    /// Why the signature was refused (a missing header, a stale timestamp, no match, no secret).
    pub signature_error: Option<String>,
    /// What is wrong with the body's shape (or its `content-type`), one sentence each, naming
    /// the field; empty when the request is well formed.
    pub shape_errors: Vec<String>,
    /// When the request arrived (before its body was read).
    pub received_at: Instant,
}

impl ToolRequestRecord {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Everything the handlers share with the test.
struct State {
    /// The tenant's current signing secret; `None` until the test sets it.
    secret: Option<SigningSecret>,
    /// Order id → status, for `/orders/lookup`.
    orders: BTreeMap<String, String>,
    requests: Vec<ToolRequestRecord>,
}

/// Locks the state. A test that panicked while holding the lock must not hide its own failure
/// behind poison errors in every later request, so poisoning is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeToolServer {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime. The port is known
    /// when this returns, so callers never wait for readiness.
    pub async fn start() -> io::Result<FakeToolServer> {
        let state = Arc::new(Mutex::new(State {
            secret: None,
            orders: SEEDED_ORDERS
                .iter()
                .map(|&(id, status)| (id.to_owned(), status.to_owned()))
                .collect(),
            requests: Vec::new(),
        }));
        let server = LoopbackServer::start(web::Data::from(Arc::clone(&state)), handle)?;
        Ok(FakeToolServer { server, state })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The URL of `path` on this fake (`/orders/lookup`, `slow?ms=200`; the leading `/` is
    /// optional), e.g. for an assistant's tool definition.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The tenant's signing secret, as voxbridge showed it to them; requests are verified
    /// against it from now on. `None` refuses every request.
    pub fn set_secret(&self, secret: Option<SigningSecret>) {
        lock(&self.state).secret = secret;
    }

    /// Sets the tenant's secret from its `whsec_…` text, as the API showed it.
    pub fn set_secret_text(&self, whsec: &str) -> Result<(), String> {
        let secret = SigningSecret::parse(whsec).map_err(|error| error.to_string())?;
        self.set_secret(Some(secret));
        Ok(())
    }

    /// Adds (or changes) an order that `/orders/lookup` knows.
    pub fn add_order(&self, id: &str, status: &str) {
        lock(&self.state)
            .orders
            .insert(id.to_owned(), status.to_owned());
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ToolRequestRecord> {
        lock(&self.state).requests.clone()
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// The fake's routes (all `POST`).
enum Route {
    OrdersLookup,
    Slow,
    Redirect,
    Text,
    Big,
    Status(u16),
    Echo,
}

impl Route {
    /// The route for `path`, or `None` (404). `/status/{code}` with a code that is not a number
    /// does not match, as a typed path parameter would not.
    fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/orders/lookup" => Route::OrdersLookup,
            "/slow" => Route::Slow,
            "/redirect" => Route::Redirect,
            "/text" => Route::Text,
            "/big" => Route::Big,
            "/echo" => Route::Echo,
            _ => Route::Status(path.strip_prefix("/status/")?.parse().ok()?),
        })
    }
}

/// The only handler: records the request, then checks and routes it by hand.
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let received_at = Instant::now();
    let (body, too_large) = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => (body, false),
        // The peer went away mid-body; what arrived is not a request we can judge.
        Ok(Err(_)) => (web::Bytes::new(), false),
        Err(_) => (web::Bytes::new(), true),
    };
    let headers = header_map(&request);
    let secret = lock(&state).secret.clone();
    let signature = check_signature(secret.as_ref(), &headers, &body, unix_now());
    let shape_errors = if too_large {
        vec![format!("the body is over {BODY_LIMIT} bytes")]
    } else {
        check_shape(headers.get("content-type").map(String::as_str), &body)
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let arguments = parsed
        .as_ref()
        .and_then(|body| body.get("arguments"))
        .cloned()
        .unwrap_or(Value::Null);
    lock(&state).requests.push(ToolRequestRecord {
        path: request.path().to_owned(),
        query: request.query_string().to_owned(),
        method: request.method().as_str().to_owned(),
        body: parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        signature_valid: signature.is_ok(),
        signature_error: signature.as_ref().err().cloned(),
        shape_errors: shape_errors.clone(),
        headers: headers.clone(),
        received_at,
    });

    let Some(route) = Route::of(request.path()) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    if request.method() != Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(json!({"error": "method not allowed"}));
    }
    if signature.is_err() {
        return error(StatusCode::UNAUTHORIZED, "invalid signature");
    }
    if too_large {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    if !shape_errors.is_empty() {
        return HttpResponse::BadRequest()
            .json(json!({"error": "malformed tool request", "problems": shape_errors}));
    }

    match route {
        Route::OrdersLookup => {
            let Some(order_id) = arguments.get("order_id").and_then(Value::as_str) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "arguments.order_id must be a string",
                );
            };
            let status = lock(&state).orders.get(order_id).cloned();
            match status {
                Some(status) => HttpResponse::Ok().json(json!({
                    "order_id": order_id,
                    "status": status,
                    "carrier": "DHL",
                    "eta": "2026-12-09",
                })),
                None => error(StatusCode::NOT_FOUND, "no such order"),
            }
        }
        Route::Slow => match query_number(&request, "ms") {
            Ok(ms) => {
                let ms = ms.min(MAX_SLEEP_MS);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                HttpResponse::Ok().json(json!({"ok": true, "slept_ms": ms}))
            }
            Err(response) => response,
        },
        Route::Redirect => HttpResponse::Found()
            .insert_header((header::LOCATION, "/orders/lookup"))
            .finish(),
        Route::Text => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("plain text answer"),
        Route::Big => match query_number(&request, "bytes") {
            // The two quotes are part of the count.
            Ok(bytes) if bytes >= 2 => {
                let bytes =
                    usize::try_from(bytes.min(MAX_BIG_BYTES)).expect("10 MiB fits in a usize");
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(format!("\"{}\"", "x".repeat(bytes - 2)))
            }
            Ok(_) => error(
                StatusCode::BAD_REQUEST,
                "bytes must be at least 2 (a JSON string's quotes)",
            ),
            Err(response) => response,
        },
        // 1xx are interim answers, not a final response a server can give.
        Route::Status(code) => match StatusCode::from_u16(code) {
            Ok(status) if code >= 200 => error(status, &format!("status {code}")),
            _ => error(StatusCode::BAD_REQUEST, "status must be 200 to 999"),
        },
        Route::Echo => {
            let echoed: Map<String, Value> = headers
                .into_iter()
                .filter(|(name, _)| !SIGNATURE_HEADERS.contains(&name.as_str()))
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            HttpResponse::Ok().json(json!({"arguments": arguments, "headers": echoed}))
        }
    }
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

/// The request's headers by lowercase name (actix already lowercases them).
fn header_map(request: &HttpRequest) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    headers
}

/// The whole-number query parameter `name`, or a 400 saying what is wrong with it.
fn query_number(request: &HttpRequest, name: &str) -> Result<u64, HttpResponse> {
    let value = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    value
        .as_deref()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("query parameter {name} must be a whole number"),
            )
        })
}

/// Seconds since the Unix epoch, the unit of `webhook-timestamp`.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// What a careful tenant checks before trusting a request: a secret to check with, the three
/// Standard Webhooks headers present, then [`verify`] (timestamp within tolerance of `now`,
/// some `v1` entry matching). `now` is a parameter so that the published test vectors, signed
/// long ago, can be checked too. The error says why, for the record.
fn check_signature(
    secret: Option<&SigningSecret>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let secret = secret.ok_or("no signing secret is set on the fake")?;
    let [id, timestamp, signature] = SIGNATURE_HEADERS.map(|name| {
        headers
            .get(name)
            .filter(|value| !value.is_empty())
            .ok_or(format!("the {name} header is missing"))
    });
    verify(secret, id?, timestamp?, body, signature?, now).map_err(|error| error.to_string())
}

/// The problems with a tool request's `content-type` and body, one sentence each, naming the
/// field (`call.direction`). Fields the contract does not have are problems too: the fake is
/// here to notice our client drifting from it.
fn check_shape(content_type: Option<&str>, body: &[u8]) -> Vec<String> {
    let mut errors = Vec::new();
    match content_type {
        Some(value)
            if value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json")) => {}
        Some(value) => errors.push(format!("content-type is `{value}`, not application/json")),
        None => errors.push("the content-type header is missing".to_owned()),
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(parse) => {
            errors.push(format!("the body is not JSON ({parse})"));
            return errors;
        }
    };
    let Some(body) = body.as_object() else {
        errors.push(format!("the body is {}, not an object", kind(&body)));
        return errors;
    };
    check_fields(
        body,
        "",
        &[
            ("tool", Expect::Text),
            ("arguments", Expect::Object),
            ("tool_call_id", Expect::Text),
            ("call", Expect::Object),
        ],
        &mut errors,
    );
    if let Some(call) = body.get("call").and_then(Value::as_object) {
        // A test run from the API belongs to no call, so it has no direction either.
        let test_run = call.get("id").is_some_and(Value::is_null);
        let direction = if test_run {
            Expect::DirectionOrNull
        } else {
            Expect::Direction
        };
        check_fields(
            call,
            "call.",
            &[
                // Null for a test run from the API, which belongs to no call.
                ("id", Expect::TextOrNull),
                ("assistant_id", Expect::Text),
                ("from", Expect::NumberOrNull),
                ("to", Expect::NumberOrNull),
                ("direction", direction),
            ],
            &mut errors,
        );
    }
    errors
}

/// What a field of a tool request must hold.
#[derive(Clone, Copy)]
enum Expect {
    /// A non-empty string.
    Text,
    /// A string or null.
    TextOrNull,
    /// An object.
    Object,
    /// An E.164 phone number (`+` and 7 to 15 digits), or null when unknown.
    NumberOrNull,
    /// `inbound` or `outbound`.
    Direction,
    /// `inbound`, `outbound` or null (a test run).
    DirectionOrNull,
}

/// Checks `object`'s fields against `expected` (each required, even when it may be null: the
/// contract sends null rather than leaving a field out), and that it has no others. `prefix`
/// names the object in the messages (`call.`).
fn check_fields(
    object: &Map<String, Value>,
    prefix: &str,
    expected: &[(&str, Expect)],
    errors: &mut Vec<String>,
) {
    for &(name, expect) in expected {
        let Some(value) = object.get(name) else {
            errors.push(format!("`{prefix}{name}` is missing"));
            continue;
        };
        let problem = match (expect, value) {
            (Expect::Text | Expect::TextOrNull, Value::String(text)) if text.is_empty() => {
                Some("is an empty string".to_owned())
            }
            (Expect::Text | Expect::TextOrNull, Value::String(_))
            | (Expect::TextOrNull | Expect::NumberOrNull, Value::Null)
            | (Expect::Object, Value::Object(_)) => None,
            (Expect::NumberOrNull, Value::String(number)) if is_e164(number) => None,
            (Expect::NumberOrNull, Value::String(number)) => {
                Some(format!("is `{number}`, not an E.164 number (+ and digits)"))
            }
            (Expect::Direction | Expect::DirectionOrNull, Value::String(direction))
                if direction == "inbound" || direction == "outbound" =>
            {
                None
            }
            (Expect::Direction | Expect::DirectionOrNull, Value::String(direction)) => {
                Some(format!("is `{direction}`, not `inbound` or `outbound`"))
            }
            (Expect::DirectionOrNull, Value::Null) => None,
            (Expect::Text | Expect::Direction, other) => {
                Some(format!("is {}, not a string", kind(other)))
            }
            (Expect::TextOrNull | Expect::NumberOrNull | Expect::DirectionOrNull, other) => {
                Some(format!("is {}, not a string or null", kind(other)))
            }
            (Expect::Object, other) => Some(format!("is {}, not an object", kind(other))),
        };
        if let Some(problem) = problem {
            errors.push(format!("`{prefix}{name}` {problem}"));
        }
    }
    for name in object.keys() {
        if !expected.iter().any(|&(known, _)| known == name) {
            errors.push(format!("`{prefix}{name}` is not a field of a tool request"));
        }
    }
}

/// `+` then 7 to 15 digits, the first not 0 (E.164, as FreJun sends numbers).
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|byte| byte.is_ascii_digit())
    })
}

/// A JSON value's kind, for messages ("is a number, not a string").
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
