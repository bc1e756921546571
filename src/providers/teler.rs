//! The FreJun Teler REST client: start an outbound call, hang a call up
//! (docs/frejun-setup.md).
//!
//! Neither request is retried here. Initiating a call is not idempotent (a retry after a lost
//! answer could ring the callee twice), and whether to retry a hangup is the caller's decision:
//! each [`TelerError`] variant says what FreJun answered so the caller can choose.
//!
//! FreJun's error bodies come in several shapes (its envelope, FastAPI's `detail`, proxies' HTML),
//! so every error body is parsed tolerantly and never trusted for size: bodies are read up to
//! [`MAX_BODY_BYTES`] and any message taken from them is cut to [`MAX_MESSAGE_CHARS`]. The API key
//! is only ever written into the `x-api-key` header, marked sensitive, and is scrubbed from any
//! message FreJun might echo back.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::domain::error_chain::ErrorChain;
use crate::domain::secret::redact_url_keys;
use crate::domain::secret::{REDACTED, SecretString};
use crate::telemetry::metrics;

/// The connect phase never waits longer than this, even with a long overall timeout: a host that
/// does not accept a TCP connection within 5 s is down, and failing fast lets the caller report
/// it while the tenant is still waiting.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body we read. FreJun's answers are a few hundred bytes; the cap protects us
/// from a misbehaving proxy streaming an endless page.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest message taken from a response body, in characters. Messages end up in logs and in our
/// own API's errors, so they are kept to a readable size.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// At most this many validation details are kept; FreJun reports one per field, so more would
/// only mean a runaway body.
const MAX_DETAILS: usize = 20;

/// Longest call id we accept. FreJun's ids are 29 (`cs_` + ULID) or 36 (UUID) characters; the
/// limit only keeps a garbage answer out of our database.
const MAX_ID_CHARS: usize = 256;

/// The header FreJun reads the API key from. It is sent bare, without a `Bearer` prefix.
const API_KEY_HEADER: &str = "x-api-key";

/// Client of FreJun's Teler REST API. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct TelerClient {
    http: reqwest::Client,
    /// Always ends with '/', so that endpoint paths are appended to it rather than replacing its
    /// last segment.
    base: Url,
}

/// The body of `POST /voice/calls/initiate`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct InitiateCall {
    /// E.164 with '+'; must be a number provisioned on the FreJun account.
    pub from_number: String,
    /// E.164 with '+'.
    pub to_number: String,
    /// FreJun POSTs here when the call connects, to fetch the call flow.
    pub flow_url: String,
    /// FreJun POSTs the call's lifecycle webhooks here.
    pub status_callback_url: String,
    /// Whether FreJun records the call.
    pub record: bool,
}

/// What FreJun answered to a successful initiate. The call is only queued at this point; nobody
/// has answered yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InitiatedCall {
    /// FreJun's call id: an opaque string (a UUID or `cs_` + ULID; a numeric id is stringified).
    pub id: String,
    /// FreJun's top-level `message` (e.g. "Call initiated successfully"). The answer carries
    /// no call state (`data` is `{id, from_number, to_number, status_callback_url, record}`),
    /// so none is read.
    pub message: Option<String>,
}

/// FreJun's view of a call (`GET /voice/calls/{id}`): the parts voxbridge uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TelerCall {
    /// `initiated`, `ringing`, `answered`, `completed` or `failed` (FreJun's enum; anything else
    /// is kept as sent, bounded).
    pub state: String,
    /// FreJun's free-text reason the call ended, if it ended.
    pub reason: Option<String>,
    /// Whether FreJun says the call was answered (`answered_at` set).
    pub answered: bool,
}

impl TelerCall {
    /// Whether FreJun says the call is over.
    pub(crate) fn ended(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed")
    }
}

/// Reads a call from `{"data": {...}}` or the bare object.
pub(crate) fn parse_call(body: &[u8]) -> Result<TelerCall, &'static str> {
    let root: Value = serde_json::from_slice(body).map_err(|_| "the answer is not JSON")?;
    let root = root.as_object().ok_or("the answer is not a JSON object")?;
    let record: &Map<String, Value> = root.get("data").and_then(Value::as_object).unwrap_or(root);
    let state = record
        .get("state")
        .and_then(Value::as_str)
        .map(|state| clip(&state.trim().to_ascii_lowercase()))
        .filter(|state| !state.is_empty())
        .ok_or("no call state")?;
    Ok(TelerCall {
        state,
        reason: record.get("reason").and_then(Value::as_str).map(clip),
        answered: record.get("answered_at").is_some_and(|at| !at.is_null()),
    })
}

/// Why a Teler request failed. Messages come from FreJun's answer, cut to
/// [`MAX_MESSAGE_CHARS`], and never contain the API key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TelerError {
    /// 401 or 403: FreJun refused the API key. Also returned without a request when the key
    /// contains characters an HTTP header cannot carry (FreJun would refuse such a key with 403).
    #[error("Teler refused the API key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// FreJun answered a 4xx with code `from_number_not_provisioned`: the caller id is not a
    /// number of this FreJun account.
    #[error("the from number is not provisioned on the FreJun account: {message}")]
    NumberNotProvisioned { message: String },
    /// 400 (other codes) or 422. `details` are one line per problem, `"<field path>: <problem>"`.
    #[error(
        "Teler rejected the request (HTTP {status}): {}",
        with_details(message, details)
    )]
    Validation {
        status: u16,
        message: String,
        details: Vec<String>,
    },
    /// 429. `retry_after` comes from a `Retry-After` header given in seconds.
    #[error("Teler rate limit reached: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 404, e.g. hanging up a call FreJun does not know. Also returned without a request for a
    /// call id that cannot name a path segment (empty, "." or "..").
    #[error("not found at Teler: {message}")]
    NotFound { message: String },
    /// 409: the request does not fit the call's current state (e.g. `call_not_live`).
    #[error("Teler refused the request in the call's current state: {message}")]
    Conflict {
        code: Option<String>,
        message: String,
    },
    /// 5xx (`status` is set), or no HTTP answer at all: connection refused or reset, DNS failure,
    /// TLS failure (`status` is `None`). Worth retrying later for idempotent requests.
    #[error("Teler is unavailable: {message}")]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// No complete answer within the client's timeout. For an initiate the outcome is unknown:
    /// FreJun may have queued the call.
    #[error("Teler did not answer in time")]
    Timeout,
    /// A 2xx we cannot understand (no call id), or a status with no meaning here (3xx, 410, ...).
    #[error("unexpected answer from Teler (HTTP {status}): {message}")]
    InvalidResponse { status: u16, message: String },
}

impl TelerError {
    /// The failure's kind in one word (`unavailable`, `timeout`, …), for metrics and logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::NumberNotProvisioned { .. } => "number_not_provisioned",
            Self::Validation { .. } => "validation",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout => "timeout",
            Self::InvalidResponse { .. } => "invalid_response",
        }
    }

    #[cfg(test)]
    /// The HTTP status FreJun answered with, if there was an answer. For
    /// [`TelerError::NumberNotProvisioned`], [`TelerError::NotFound`],
    /// [`TelerError::Conflict`] and [`TelerError::RateLimited`] this is the status that variant
    /// stands for (400, 404, 409, 429).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Validation { status, .. }
            | Self::InvalidResponse { status, .. } => Some(*status),
            Self::NumberNotProvisioned { .. } => Some(400),
            Self::RateLimited { .. } => Some(429),
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::Unavailable { status, .. } => *status,
            Self::Timeout => None,
        }
    }

    /// Replaces `secret` wherever it appears in the error's text, in case FreJun echoes the key
    /// back ("Invalid API key abc…"): errors are logged and may be shown to tenants.
    fn redact(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        // FreJun echoes what it was sent: the API key, and our flow URLs with their `key=`.
        let scrub = |text: &mut String| {
            if text.contains(secret) {
                *text = text.replace(secret, REDACTED);
            }
            if text.contains("key=") {
                *text = redact_url_keys(text);
            }
        };
        match &mut self {
            Self::Unauthorized { message, .. }
            | Self::NumberNotProvisioned { message }
            | Self::RateLimited { message, .. }
            | Self::NotFound { message }
            | Self::Conflict { message, .. }
            | Self::Unavailable { message, .. }
            | Self::InvalidResponse { message, .. } => scrub(message),
            Self::Validation {
                message, details, ..
            } => {
                scrub(message);
                details.iter_mut().for_each(scrub);
            }
            Self::Timeout => {}
        }
        self
    }
}

/// Renders a validation message and its details on one line, without repeating a lone detail
/// that is the message itself (FastAPI's `{"detail": "..."}` gives both).
fn with_details<'a>(message: &'a str, details: &'a [String]) -> impl fmt::Display + 'a {
    struct Render<'a>(&'a str, &'a [String]);
    impl fmt::Display for Render<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let (message, details) = (self.0, self.1);
            f.write_str(message)?;
            if details.is_empty() || (details.len() == 1 && details[0] == message) {
                return Ok(());
            }
            write!(f, ": {}", details.join("; "))
        }
    }
    Render(message, details)
}

impl TelerClient {
    /// `base_url` like `https://api.frejun.ai/api/v1`, with or without a trailing '/'. `timeout`
    /// bounds each whole request (connect, send, answer); the connect phase alone is also capped
    /// at 5 s.
    pub(crate) fn new(base_url: Url, timeout: Duration) -> Self {
        let mut base = base_url;
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            // A redirect would carry the x-api-key header (reqwest only strips the standard
            // credential headers) to wherever it points, and FreJun's API never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // Only fails if the TLS backend cannot initialise, which is a broken build, not a
            // runtime condition (`reqwest::Client::new` panics in the same case).
            .expect("the HTTP client must build: the TLS backend failed to initialise");
        Self { http, base }
    }

    /// Starts an outbound call: `POST {base}/voice/calls/initiate`. Never retried: FreJun has no
    /// idempotency key for initiate, so a retry after a lost answer could place a second call.
    #[tracing::instrument(name = "teler.initiate_call", skip_all)]
    pub(crate) async fn initiate_call(
        &self,
        api_key: &SecretString,
        request: &InitiateCall,
    ) -> Result<InitiatedCall, TelerError> {
        let url = self.endpoint(&["voice", "calls", "initiate"])?;
        let answer = self
            .post(url, api_key, None, request)
            .await
            .map_err(|err| err.redact(api_key.expose()))?;
        // The 2xx status arrived, so FreJun queued the call: a body we cannot read or understand
        // is an invalid answer (the caller must not place the call again), not a timeout.
        let parsed = match &answer.body {
            Ok(body) => parse_initiated(body).map_err(str::to_owned),
            Err(problem) => Err(clip(&format!("the answer could not be read: {problem}"))),
        };
        parsed
            .map_err(|message| TelerError::InvalidResponse {
                status: answer.status,
                message,
            })
            .map_err(|err| err.redact(api_key.expose()))
    }

    /// Hangs up the whole call: `POST {base}/voice/calls/{call_id}/hangup` with body `{}` or
    /// `{"reason": ...}` (FreJun expects `^[A-Z0-9_]+$`). Any 2xx is success. Sent with
    /// `idempotency_key` (1–255 characters; the same key on a retry, so FreJun can recognise
    /// it), but not retried here.
    #[tracing::instrument(name = "teler.hangup", skip_all, fields(call_id = frejun_call_id))]
    pub(crate) async fn hangup(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
        reason: Option<&str>,
        idempotency_key: &str,
    ) -> Result<(), TelerError> {
        if matches!(frejun_call_id, "" | "." | "..") {
            // The URL parser would drop such a segment and post to another path.
            return Err(TelerError::NotFound {
                message: format!("{frejun_call_id:?} is not a call id"),
            });
        }
        let url = self.endpoint(&["voice", "calls", frejun_call_id, "hangup"])?;
        let body = HangupBody { reason };
        self.post(url, api_key, Some(idempotency_key.to_owned()), &body)
            .await
            .map(|_| ())
            .map_err(|err| err.redact(api_key.expose()))
    }

    /// FreJun's view of a call: `GET {base}/voice/calls/{call_id}`. A 404 means the call is not
    /// this account's (or unknown).
    #[tracing::instrument(name = "teler.get_call", skip_all, fields(call_id = frejun_call_id))]
    pub(crate) async fn get_call(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
    ) -> Result<TelerCall, TelerError> {
        if matches!(frejun_call_id, "" | "." | "..") {
            return Err(TelerError::NotFound {
                message: format!("{frejun_call_id:?} is not a call id"),
            });
        }
        let url = self.endpoint(&["voice", "calls", frejun_call_id])?;
        let answer = self
            .send::<()>(Method::GET, url, api_key, None, None)
            .await
            .map_err(|err| err.redact(api_key.expose()))?;
        match &answer.body {
            Ok(body) => parse_call(body),
            Err(_) => Err("the answer could not be read"),
        }
        .map_err(|message| TelerError::InvalidResponse {
            status: answer.status,
            message: message.to_owned(),
        })
    }

    /// A fresh, short-lived signed URL of a recording: `GET {base}/recordings?recording_id=…&
    /// expires_in=…` answers a redirect (302 or 307) whose `Location` is it; a JSON `{url}`
    /// (optionally in `data`) is accepted too, as FreJun's SDK does. The redirect is never
    /// followed: it would carry our API key to the storage host.
    #[tracing::instrument(name = "teler.recording_url", skip_all)]
    pub(crate) async fn recording_url(
        &self,
        api_key: &SecretString,
        recording_id: &str,
        expires_in: Duration,
    ) -> Result<Url, TelerError> {
        let answer = self
            .recording_url_uncounted(api_key, recording_id, expires_in)
            .await;
        if let Err(err) = &answer {
            metrics::teler_error(err.kind());
        }
        answer
    }

    async fn recording_url_uncounted(
        &self,
        api_key: &SecretString,
        recording_id: &str,
        expires_in: Duration,
    ) -> Result<Url, TelerError> {
        // Exactly `/recordings`: with a trailing slash FreJun's framework redirects to itself.
        let mut url = self.endpoint(&["recordings"])?;
        url.query_pairs_mut()
            .append_pair("recording_id", recording_id)
            .append_pair(
                "expires_in",
                &expires_in.as_secs().clamp(60, 86_400).to_string(),
            );
        let mut key =
            HeaderValue::from_str(api_key.expose()).map_err(|_| TelerError::Unauthorized {
                status: 403,
                message: "the API key contains characters that cannot be sent in an HTTP header"
                    .to_owned(),
            })?;
        key.set_sensitive(true);
        let response = self
            .http
            .get(url)
            .header(API_KEY_HEADER, key)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| transport_error(&err))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| Url::parse(value).ok())
                .filter(|url| url.scheme() == "https" || url.scheme() == "http");
            return location.ok_or(TelerError::InvalidResponse {
                status: status.as_u16(),
                message: "a redirect without a usable Location".to_owned(),
            });
        }
        let body = read_capped(response).await.unwrap_or_default();
        if !status.is_success() {
            return Err(error_from_response(status.as_u16(), None, &body).redact(api_key.expose()));
        }
        let root: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let record = root
            .get("data")
            .filter(|data| data.is_object())
            .unwrap_or(&root);
        record
            .get("url")
            .and_then(Value::as_str)
            .and_then(|url| Url::parse(url).ok())
            .ok_or(TelerError::InvalidResponse {
                status: status.as_u16(),
                message: "no recording URL in the answer".to_owned(),
            })
    }

    /// `base` + `segments`, each segment percent-encoded (a '/' in a call id cannot change the
    /// path).
    fn endpoint(&self, segments: &[&str]) -> Result<Url, TelerError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| TelerError::Unavailable {
                status: None,
                message: format!("the Teler base URL {} cannot take a path", self.base),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// POSTs `body` as JSON and returns a 2xx answer; any other answer or failure becomes a
    /// [`TelerError`].
    async fn post(
        &self,
        url: Url,
        api_key: &SecretString,
        idempotency_key: Option<String>,
        body: &impl Serialize,
    ) -> Result<Success, TelerError> {
        self.send(Method::POST, url, api_key, idempotency_key, Some(body))
            .await
    }

    /// Sends one request (a JSON body when given) and returns a 2xx answer; any other answer
    /// or failure becomes a [`TelerError`], counted in the Teler-errors metric by its kind.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        api_key: &SecretString,
        idempotency_key: Option<String>,
        body: Option<&B>,
    ) -> Result<Success, TelerError> {
        let answer = self
            .send_uncounted(method, url, api_key, idempotency_key, body)
            .await;
        if let Err(err) = &answer {
            metrics::teler_error(err.kind());
        }
        answer
    }

    async fn send_uncounted<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        api_key: &SecretString,
        idempotency_key: Option<String>,
        body: Option<&B>,
    ) -> Result<Success, TelerError> {
        let mut key =
            HeaderValue::from_str(api_key.expose()).map_err(|_| TelerError::Unauthorized {
                status: 403,
                message: "the API key contains characters that cannot be sent in an HTTP header"
                    .to_owned(),
            })?;
        // Keeps the key out of any Debug output of the request or its headers.
        key.set_sensitive(true);

        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method, url)
            .header(API_KEY_HEADER, key)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").json(body);
        }
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }

        let started = Instant::now();
        let response = request.send().await.map_err(|err| {
            let err = transport_error(&err);
            tracing::debug!(%path, error = %err, "Teler request failed");
            err
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(%path, status = status.as_u16(), elapsed_ms, "Teler answered");

        if status.is_success() {
            let body = read_capped(response)
                .await
                .map_err(|err| ErrorChain(&err).to_string());
            return Ok(Success {
                status: status.as_u16(),
                body,
            });
        }
        // The status says more than the body; if the body cannot be read, map the status alone.
        let body = read_capped(response).await.unwrap_or_default();
        Err(error_from_response(
            status.as_u16(),
            retry_after.as_deref(),
            &body,
        ))
    }
}

/// A 2xx answer.
struct Success {
    status: u16,
    /// Capped at [`MAX_BODY_BYTES`]; `Err` says why it could not be read (e.g. the timeout ran
    /// out after the status line).
    body: Result<Vec<u8>, String>,
}

/// `{}` without a reason; FreJun ends the whole call when `leg_id` is left out.
#[derive(Serialize)]
struct HangupBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Reads at most [`MAX_BODY_BYTES`] of the body; the rest is dropped with the connection.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// A failure without an HTTP answer: a timeout, or an unreachable service.
fn transport_error(err: &reqwest::Error) -> TelerError {
    // Checked first: a connect timeout is both `is_timeout` and `is_connect`, and what the caller
    // needs to know is that the time ran out.
    if err.is_timeout() {
        return TelerError::Timeout;
    }
    let what = if err.is_connect() {
        "cannot connect to Teler"
    } else {
        "the request to Teler failed"
    };
    TelerError::Unavailable {
        status: None,
        message: clip(&format!("{what}: {}", ErrorChain(err))),
    }
}

/// Maps a non-2xx answer to its [`TelerError`].
pub(crate) fn error_from_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> TelerError {
    let parsed = parse_error_body(status, body);
    if (400..500).contains(&status) && parsed.code.as_deref() == Some("from_number_not_provisioned")
    {
        return TelerError::NumberNotProvisioned {
            message: parsed.message,
        };
    }
    match status {
        401 | 403 => TelerError::Unauthorized {
            status,
            message: parsed.message,
        },
        400 | 422 => TelerError::Validation {
            status,
            message: parsed.message,
            details: parsed.details,
        },
        404 => TelerError::NotFound {
            message: parsed.message,
        },
        409 => TelerError::Conflict {
            code: parsed.code,
            message: parsed.message,
        },
        429 => TelerError::RateLimited {
            retry_after: retry_after.and_then(parse_retry_after),
            message: parsed.message,
        },
        500..=599 => TelerError::Unavailable {
            status: Some(status),
            message: parsed.message,
        },
        _ => TelerError::InvalidResponse {
            status,
            message: parsed.message,
        },
    }
}

/// What we could read from an error body.
#[derive(Debug, PartialEq)]
struct ErrorBody {
    message: String,
    code: Option<String>,
    details: Vec<String>,
}

/// Reads FreJun's envelope `{"success":false,"message","code","type","errors"}`, FastAPI's
/// `{"detail": [...] | "..."}`, or a nested `{"error": {"message","code"}}`. Anything else
/// (HTML, empty) gives `"HTTP <status> from Teler"`.
fn parse_error_body(status: u16, body: &[u8]) -> ErrorBody {
    let fallback = || format!("HTTP {status} from Teler");
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            message: fallback(),
            code: None,
            details: Vec::new(),
        };
    };
    let nested = root.get("error").and_then(Value::as_object);
    let text_field = |name: &str| {
        root.get(name)
            .or_else(|| nested.and_then(|error| error.get(name)))
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(clip)
    };

    let detail_text = root.get("detail").and_then(Value::as_str).map(clip);
    let message = text_field("message")
        .or_else(|| detail_text.clone())
        .or_else(|| root.get("error").and_then(Value::as_str).map(clip))
        .unwrap_or_else(fallback);
    let code = text_field("code");

    let details = match (root.get("errors"), root.get("detail")) {
        (Some(Value::Array(items)), _) | (_, Some(Value::Array(items))) => items
            .iter()
            .filter_map(detail_line)
            .take(MAX_DETAILS)
            .collect(),
        _ => detail_text.into_iter().collect(),
    };
    ErrorBody {
        message,
        code,
        details,
    }
}

/// One validation problem as `"<loc joined by '.'>: <msg>"`, with the leading "body" element of
/// FastAPI's `loc` left out (the caller knows it sent a body).
fn detail_line(item: &Value) -> Option<String> {
    let item = match item {
        Value::String(text) => return Some(clip(text)),
        Value::Object(item) => item,
        _ => return None,
    };
    let msg = item
        .get("msg")
        .or_else(|| item.get("message"))
        .and_then(Value::as_str)?;
    let loc: Vec<String> = match item.get("loc") {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(text)) => vec![text.clone()],
        _ => Vec::new(),
    };
    let loc = match loc.split_first() {
        Some((first, rest)) if first == "body" => rest,
        _ => &loc[..],
    };
    Some(if loc.is_empty() {
        clip(msg)
    } else {
        clip(&format!("{}: {msg}", loc.join(".")))
    })
}

/// Reads the call id from `{"message", "data": {"id", ...}}`, or from the top level when there
/// is no `data` object (PY 0.3.0 unwraps either way).
pub(crate) fn parse_initiated(body: &[u8]) -> Result<InitiatedCall, &'static str> {
    let root: Value = serde_json::from_slice(body).map_err(|_| "the answer is not JSON")?;
    let root = root.as_object().ok_or("the answer is not a JSON object")?;
    if root.get("success") == Some(&Value::Bool(false)) {
        return Err("the answer says success: false");
    }
    let record: &Map<String, Value> = root.get("data").and_then(Value::as_object).unwrap_or(root);
    let id = match record.get("id").and_then(call_id) {
        Some(id) => id,
        // A `data` object without an id: the id may still be at the top level.
        None => root.get("id").and_then(call_id).ok_or("no call id")?,
    };
    Ok(InitiatedCall {
        id,
        message: root.get("message").and_then(Value::as_str).map(clip),
    })
}

/// An id we can store and put in a URL: a non-empty string (or a number, stringified) without
/// control characters, at most [`MAX_ID_CHARS`] long.
fn call_id(value: &Value) -> Option<String> {
    let id = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let usable = !id.trim().is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && !id.chars().any(char::is_control);
    usable.then_some(id)
}

/// `Retry-After` in delay-seconds form. The HTTP-date form is ignored: FreJun's SDKs do not use
/// it, and a wrong clock would turn it into nonsense.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A body-derived text, cut to [`MAX_MESSAGE_CHARS`] characters, with control characters (line
/// breaks that would split a log line) turned into spaces.
fn clip(text: &str) -> String {
    text.trim()
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(crate) mod operations;

#[cfg(test)]
mod tests;
