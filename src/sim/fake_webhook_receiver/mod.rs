//! A fake of a tenant's webhook receiver: the endpoint a tenant registers for event webhooks
//! (`call.started`, `call.ended`, `ping` …), which voxbridge POSTs to after the fact and retries
//! until it answers 2xx.
//!
//! voxbridge sends `{"id", "type", "timestamp", "data"}` as `application/json`, signed with
//! Standard Webhooks (`webhook-id`: the event's id, the same on every retry; `webhook-timestamp`:
//! unix seconds of this attempt; `webhook-signature`: `v1,<base64>` entries, one per secret,
//! space-separated during a rotation). This fake receives them the way a careful tenant would,
//! so that the sender is tested against the contract rather than against a server that accepts
//! anything:
//!
//! - Any path takes `POST`; other methods get 405 (with `Allow: POST`).
//! - The signature is checked with [`verify`] against every secret the test configured
//!   ([`FakeWebhookReceiver::set_secrets`]), within
//!   [`TOLERANCE_SECS`](crate::outbound::signing::TOLERANCE_SECS) of the wall clock; any match
//!   will do, as for a receiver rolling its secret over. A refused signature is answered 401
//!   whatever the script says. With no secret configured nothing is refused: the request is
//!   recorded as unverified ("no secret configured") and answered from the script, so that
//!   tests of unsigned deliveries can see what arrived.
//! - The body's shape is checked and each problem recorded as a sentence naming the field, but
//!   not enforced: a receiver's answer to a malformed event is the script's business.
//! - The answer comes from the path's script ([`FakeWebhookReceiver::script`]: a status, a
//!   status with `Retry-After`, a hang, a redirect), one reply per request, then 200
//!   `{"ok":true}` once the script is used up. That is what a retrying sender must cope with.
//!
//! Every request is recorded before it is answered (refused ones included), so a test can
//! assert on exactly what was sent and wait for it with [`FakeWebhookReceiver::wait_for`].

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::loopback_server::LoopbackServer;
use crate::outbound::signing::{SigningSecret, verify};

/// Largest request body the fake reads (the spec asks senders to keep events under ~20 KB);
/// larger ones are recorded without their body and answered 413, as a receiver's framework
/// would.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The error recorded for every request while no secret is configured.
pub const NO_SECRET: &str = "no secret configured";

/// A running fake webhook receiver on `127.0.0.1` (random port). Dropping it stops the server.
pub struct FakeWebhookReceiver {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

/// How the fake answers one delivery to a scripted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This status (200 to 999); a 2xx carries `{"ok":true}`, anything else
    /// `{"error":"status <code>"}` (except 204, 205 and 304, which have no body).
    Status(u16),
    /// This status with `Retry-After: <secs>` (what a throttling receiver sends with 429 or
    /// 503).
    RetryAfter {
        /// The status, as for [`Reply::Status`].
        status: u16,
        /// The `Retry-After` value, in seconds.
        secs: u64,
    },
    /// Sleeps this long, then answers 200 `{"ok":true}`: for the sender's per-attempt timeout.
    /// The sleep is real time (the server runs on its own threads), not a paused test clock.
    Hang(Duration),
    /// 307 with this `Location` (a sender must treat a redirect as a failure, not follow it).
    Redirect(String),
}

impl Reply {
    /// The status this reply answers with.
    fn status(&self) -> u16 {
        match self {
            Reply::Status(status) | Reply::RetryAfter { status, .. } => *status,
            Reply::Hang(_) => 200,
            Reply::Redirect(_) => 307,
        }
    }

    /// Panics (in the test that wrote the script, where the mistake is) if this reply cannot be
    /// sent: a 1xx or out-of-range status, or a `Location` that is not a header value.
    fn check(&self) {
        let status = self.status();
        assert!(
            (200..=999).contains(&status),
            "a scripted reply's status must be 200 to 999, not {status}"
        );
        if let Reply::Redirect(location) = self {
            assert!(
                HeaderValue::from_str(location).is_ok(),
                "a redirect's Location must be a valid header value, not {location:?}"
            );
        }
    }
}

/// One request the fake received, whether or not it was accepted.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    /// The path without the query string, e.g. `/hooks/voxbridge`.
    pub path: String,
    /// The `webhook-id` header (the event's id), if sent.
    pub id: Option<String>,
    /// The `webhook-timestamp` header (unix seconds of this attempt), if sent.
    pub timestamp: Option<String>,
    /// The `webhook-signature` header, if sent.
    pub signature: Option<String>,
    /// The body parsed as JSON, or the raw text (as a JSON string) when it is not JSON.
    pub body: Value,
    /// The body exactly as received (what the signature covers); empty if it was over
    /// [`BODY_LIMIT`].
    pub raw_body: Vec<u8>,
    /// Whether the signature verified against one of the secrets configured at the time.
    pub signature_valid: bool,
    /// Why it did not (a missing header, a stale timestamp, no match, [`NO_SECRET`]).
    pub signature_error: Option<String>,
    /// What is wrong with the request's method, `content-type` or body, one sentence each,
    /// naming the field; empty when the request is a well-formed webhook.
    pub shape_errors: Vec<String>,
    /// The status the fake chose to answer with. It is recorded before answering, so with
    /// [`Reply::Hang`] the sender may have given up before this status reached it.
    pub status_sent: u16,
    /// When the request arrived (before its body was read).
    pub received_at: Instant,
}

/// Everything the handler shares with the test.
struct Shared {
    state: Mutex<State>,
    /// Woken after every new record, for [`FakeWebhookReceiver::wait_for`].
    changed: Notify,
}

struct State {
    /// The receiver's secrets; empty until the test sets some (then nothing is refused).
    secrets: Vec<SigningSecret>,
    /// Path → the replies still to send there, in order.
    scripts: HashMap<String, VecDeque<Reply>>,
    received: Vec<ReceivedWebhook>,
}

/// Locks the state. A test that panicked while holding the lock must not hide its own failure
/// behind poison errors in every later request, so poisoning is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeWebhookReceiver {
    /// Binds `127.0.0.1:0` and starts serving (call it on a tokio runtime). The port is known
    /// when this returns, so callers never wait for readiness.
    pub async fn start() -> io::Result<FakeWebhookReceiver> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                secrets: Vec::new(),
                scripts: HashMap::new(),
                received: Vec::new(),
            }),
            changed: Notify::new(),
        });
        let server = LoopbackServer::start(web::Data::from(Arc::clone(&shared)), handle)?;
        Ok(FakeWebhookReceiver { server, shared })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The URL of `path` on this fake (the leading `/` is optional), to register as a tenant's
    /// webhook endpoint.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The receiver's secrets, replacing any set before; a request is valid if it verifies
    /// with any of them (a receiver rolling over to a new secret). An empty list means no
    /// secret: nothing is refused and every request is recorded as [`NO_SECRET`].
    pub fn set_secrets(&self, secrets: Vec<SigningSecret>) {
        lock(&self.shared.state).secrets = secrets;
    }

    /// Replaces the secrets with one, from its `whsec_…` text as voxbridge showed it to the
    /// tenant. The error says why the text is not a secret (and leaves the secrets as they
    /// were).
    pub fn set_secret_text(&self, whsec: &str) -> Result<(), String> {
        let secret = SigningSecret::parse(whsec).map_err(|error| error.to_string())?;
        self.set_secrets(vec![secret]);
        Ok(())
    }

    /// Replies for `path` (leading `/` optional, any query string ignored, as requests are
    /// matched by path alone), replacing any left from an earlier script: used in order, one
    /// per accepted request; when used up, 200 `{"ok":true}`. Requests refused before the
    /// script is consulted (401 for a bad signature, 405, 413) do not use a reply.
    ///
    /// Panics if a reply cannot be sent (see [`Reply`]), so the mistake shows in the test that
    /// made it rather than as a puzzling answer later.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        for reply in &replies {
            reply.check();
        }
        let path = path.split('?').next().unwrap_or_default();
        let path = format!("/{}", path.trim_start_matches('/'));
        lock(&self.shared.state)
            .scripts
            .insert(path, replies.into());
    }

    /// Every request received so far, in the order the fake chose their answers (arrival
    /// order, except that two requests racing each other may be recorded either way).
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        lock(&self.shared.state).received.clone()
    }

    /// Waits until `pred` holds for the requests received so far (checked now and after every
    /// new one), up to `timeout`; `false` if it still does not hold then. `pred` sees a
    /// snapshot, so it may call back into the fake.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedWebhook]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            // Registered before checking, so a request recorded between the check and the
            // wait still wakes us.
            changed.as_mut().enable();
            if pred(&self.received()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&self.received());
            }
        }
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// What the handler answers: a scripted reply, or a refusal that overrides the script.
enum Answer {
    Scripted(Reply),
    MethodNotAllowed,
    TooLarge,
    BadSignature,
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Scripted(reply) => reply.status(),
            Answer::MethodNotAllowed => 405,
            Answer::TooLarge => 413,
            Answer::BadSignature => 401,
        }
    }
}

/// The only handler: reads, checks, picks the answer and records the request, then answers.
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let received_at = Instant::now();
    let (body, read_problem, too_large) = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => (body, None, false),
        // The peer went away mid-body; record what we know.
        Ok(Err(_)) => (
            web::Bytes::new(),
            Some("the body was cut short".to_owned()),
            false,
        ),
        Err(_) => (
            web::Bytes::new(),
            Some(format!("the body is over {BODY_LIMIT} bytes")),
            true,
        ),
    };
    let [id, timestamp, signature] =
        ["webhook-id", "webhook-timestamp", "webhook-signature"].map(|name| {
            request
                .headers()
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        });
    let is_post = request.method() == Method::POST;

    let mut shape_errors = Vec::new();
    if !is_post {
        shape_errors.push(format!("the method is {}, not POST", request.method()));
    }
    match read_problem {
        Some(problem) => shape_errors.push(problem),
        None => shape_errors.extend(check_shape(
            request
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()))
                .as_deref(),
            id.as_deref(),
            &body,
        )),
    }

    let answer = {
        // One lock for verifying, taking the scripted reply and recording, so that the
        // record order is the order replies were handed out.
        let mut state = lock(&shared.state);
        // With no secret configured, that is the whole story whatever the body was.
        let verdict = if too_large && !state.secrets.is_empty() {
            Err(format!(
                "the body is over {BODY_LIMIT} bytes, so it was not verified"
            ))
        } else {
            check_signature(
                &state.secrets,
                id.as_deref(),
                timestamp.as_deref(),
                signature.as_deref(),
                &body,
                unix_now(),
            )
        };
        let answer = if !is_post {
            Answer::MethodNotAllowed
        } else if too_large {
            Answer::TooLarge
        } else if verdict.is_err() && !state.secrets.is_empty() {
            Answer::BadSignature
        } else {
            Answer::Scripted(
                state
                    .scripts
                    .get_mut(request.path())
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(Reply::Status(200)),
            )
        };
        state.received.push(ReceivedWebhook {
            path: request.path().to_owned(),
            id,
            timestamp,
            signature,
            body: serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            raw_body: body.to_vec(),
            signature_valid: verdict.is_ok(),
            signature_error: verdict.err(),
            shape_errors,
            status_sent: answer.status(),
            received_at,
        });
        answer
    };
    shared.changed.notify_waiters();

    match answer {
        Answer::MethodNotAllowed => HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(json!({"error": "method not allowed"})),
        Answer::TooLarge => {
            HttpResponse::PayloadTooLarge().json(json!({"error": "request body too large"}))
        }
        Answer::BadSignature => {
            HttpResponse::Unauthorized().json(json!({"error": "invalid signature"}))
        }
        Answer::Scripted(Reply::Status(status)) => scripted(status, None),
        Answer::Scripted(Reply::RetryAfter { status, secs }) => scripted(status, Some(secs)),
        Answer::Scripted(Reply::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            scripted(200, None)
        }
        Answer::Scripted(Reply::Redirect(location)) => HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, location))
            .finish(),
    }
}

/// A scripted status ([`Reply::check`] vetted it), with `Retry-After` when given:
/// `{"ok":true}` for a 2xx, `{"error":"status <code>"}` otherwise, and no body for the statuses
/// that may not have one.
fn scripted(status: u16, retry_after: Option<u64>) -> HttpResponse {
    let mut builder =
        HttpResponse::build(StatusCode::from_u16(status).expect("scripted statuses are checked"));
    if let Some(secs) = retry_after {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    match status {
        204 | 205 | 304 => builder.finish(),
        200..=299 => builder.json(json!({"ok": true})),
        _ => builder.json(json!({ "error": format!("status {status}") })),
    }
}

/// Seconds since the Unix epoch, the unit of `webhook-timestamp`.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// What a careful receiver checks before trusting a webhook: a secret to check with, the three
/// Standard Webhooks headers present, then [`verify`] with each secret (timestamp within
/// tolerance of `now`, some `v1` entry matching); any secret verifying is enough. `now` is a
/// parameter so that the published test vectors, signed long ago, can be checked too. The
/// error says why, for the record.
fn check_signature(
    secrets: &[SigningSecret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    if secrets.is_empty() {
        return Err(NO_SECRET.to_owned());
    }
    fn present<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("the {name} header is missing"))
    }
    let id = present(id, "webhook-id")?;
    let timestamp = present(timestamp, "webhook-timestamp")?;
    let signature = present(signature, "webhook-signature")?;
    let mut first_error = None;
    for secret in secrets {
        match verify(secret, id, timestamp, body, signature, now) {
            Ok(()) => return Ok(()),
            // The timestamp is checked before any key is used, so every secret fails the
            // same way or with "no match"; the first error is as good as any.
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.map_or_else(String::new, |error| error.to_string()))
}

/// The problems with a webhook's `content-type` and body, one sentence each, naming the field.
/// The body must be an object with exactly `id` (equal to the `webhook-id` header), `type`,
/// `timestamp` (RFC 3339) and `data`: fields the contract does not have are problems too, the
/// fake is here to notice the sender drifting from it.
fn check_shape(content_type: Option<&str>, id_header: Option<&str>, body: &[u8]) -> Vec<String> {
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
    for name in ["id", "type", "timestamp"] {
        let problem = match body.get(name) {
            None => Some("is missing".to_owned()),
            Some(Value::String(text)) if text.is_empty() => Some("is an empty string".to_owned()),
            Some(Value::String(text)) => match name {
                // The id is how a receiver deduplicates retries, so it must be the header's.
                "id" => match id_header {
                    Some(header) if header == text => None,
                    Some(header) => Some(format!(
                        "is `{text}`, not `{header}` (the webhook-id header)"
                    )),
                    None => Some(format!("is `{text}`, but the webhook-id header is missing")),
                },
                "timestamp" if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                    Some(format!("is `{text}`, not an RFC 3339 date-time"))
                }
                _ => None,
            },
            Some(other) => Some(format!("is {}, not a string", kind(other))),
        };
        if let Some(problem) = problem {
            errors.push(format!("`{name}` {problem}"));
        }
    }
    match body.get("data") {
        None => errors.push("`data` is missing".to_owned()),
        Some(Value::Object(_)) => {}
        Some(other) => errors.push(format!("`data` is {}, not an object", kind(other))),
    }
    for name in body.keys() {
        if !["id", "type", "timestamp", "data"].contains(&name.as_str()) {
            errors.push(format!("`{name}` is not a field of a webhook"));
        }
    }
    errors
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
