//! Text models behind one call: [`complete`] sends a conversation to Anthropic Messages, OpenAI
//! Responses or any OpenAI-compatible Chat Completions server and answers the same
//! [`TextReply`] (text, the provider's stop reason, token usage) or a [`TextError`] with a
//! stable code.
//!
//! Each provider module is a pure translation (request body out, reply or error in); this
//! module owns the I/O: one attempt per try with a timeout, retries only for 429 and 5xx
//! answers and connections that never reached the provider, with exponential backoff that
//! honours `Retry-After`, and keys kept out of every message.
//!
//! Layout:
//! - [`anthropic`]: `POST {base}/v1/messages`, `x-api-key`, `anthropic-version`.
//! - [`openai_responses`]: `POST {base}/responses`, `Authorization: Bearer`.
//! - [`chat_completions`]: `POST {base}/chat/completions`, `Authorization: Bearer`.

pub mod anthropic;
pub mod chat_completions;
pub mod openai_responses;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use rand::Rng as _;
use serde_json::Value;
use url::Url;

use crate::domain::secret::SecretString;
use crate::domain::text_ai::{ChatMessage, TextProvider, TextReply};

/// Largest answer read from a provider; a text reply is far smaller.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// First backoff wait; it doubles per retry up to [`MAX_BACKOFF`] (as the providers' own
/// SDKs do).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Where a request goes and with which key.
#[derive(Clone)]
pub struct Endpoint {
    pub provider: TextProvider,
    /// Anthropic: without the version segment (`https://api.anthropic.com`); OpenAI and
    /// compatible servers: with it (`https://api.openai.com/v1`).
    pub base_url: Url,
    pub api_key: SecretString,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The URL of the provider's operation, joined without doubling slashes.
    pub fn url(&self) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        let path = match self.provider {
            TextProvider::Anthropic => "v1/messages",
            TextProvider::OpenaiResponses => "responses",
            TextProvider::ChatCompletions => "chat/completions",
        };
        format!("{base}/{path}")
    }
}

/// What to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    pub model: String,
    pub system: Option<String>,
    /// Oldest first; the last one is the user's.
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// Ask for JSON that follows this schema, with the provider's structured output.
    pub json_schema: Option<JsonOutput>,
}

/// A structured-output request: a name (OpenAI wants one) and the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonOutput {
    /// `[a-zA-Z0-9_-]`, at most 64 characters.
    pub name: String,
    pub schema: Value,
}

/// How many tries and how long each may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1: no retry).
    pub max_attempts: u32,
    /// One try, answer included.
    pub attempt_timeout: Duration,
    /// The longest wait before a retry; a provider asking (`Retry-After`) for longer gets its
    /// error returned at once rather than a request held open.
    pub max_wait: Duration,
}

/// Why a request failed, with a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextErrorCode {
    /// The provider refused the key (401, 403).
    AuthFailed,
    /// 429, after the retries.
    RateLimited,
    /// 5xx (Anthropic's 529 "overloaded" included), after the retries.
    Unavailable,
    /// No answer within the attempt's time, after the retries.
    Timeout,
    /// No connection (refused, DNS, TLS), after the retries.
    ConnectFailed,
    /// Any other 4xx: a bad model name, a schema the provider does not support…
    Rejected,
    /// A 2xx answer we cannot read.
    InvalidResponse,
    /// The base URL (a tenant's) points where voxbridge may not go: nothing was sent.
    RefusedAddress,
}

impl TextErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            TextErrorCode::AuthFailed => "auth_failed",
            TextErrorCode::RateLimited => "rate_limited",
            TextErrorCode::Unavailable => "unavailable",
            TextErrorCode::Timeout => "timeout",
            TextErrorCode::ConnectFailed => "connect_failed",
            TextErrorCode::Rejected => "rejected",
            TextErrorCode::InvalidResponse => "invalid_response",
            TextErrorCode::RefusedAddress => "refused_address",
        }
    }

    /// Whether the same request is sent again at once (after a backoff): only when the
    /// provider said "later" (429, 5xx) or the request never reached it (no connection). A
    /// timeout is not retried here: the provider may still be working on (and billing for)
    /// the request; a job that can wait (post-call analysis) runs again later instead.
    pub fn is_retried(self) -> bool {
        matches!(
            self,
            TextErrorCode::RateLimited | TextErrorCode::Unavailable | TextErrorCode::ConnectFailed
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            TextErrorCode::RateLimited
                | TextErrorCode::Unavailable
                | TextErrorCode::Timeout
                | TextErrorCode::ConnectFailed
        )
    }
}

/// A failed request: the code, a message safe to show the tenant (never the key), the
/// provider's HTTP status and what it asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct TextError {
    pub code: TextErrorCode,
    pub message: String,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// Tries made.
    pub attempts: u32,
}

/// Sends `request` to `endpoint` with `client`, retrying what may pass. The caller chooses the
/// client: an SSRF-checked one for a URL a tenant gave.
pub async fn complete(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    request: &TextRequest,
    policy: RetryPolicy,
) -> Result<TextReply, TextError> {
    let body = match endpoint.provider {
        TextProvider::Anthropic => anthropic::request_body(request),
        TextProvider::OpenaiResponses => openai_responses::request_body(request),
        TextProvider::ChatCompletions => chat_completions::request_body(request),
    };
    let body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match try_once(client, endpoint, &body, policy.attempt_timeout).await {
            Ok(reply) => return Ok(reply),
            Err(error) => error,
        };
        let error = TextError {
            attempts: attempt,
            ..error.redacted(endpoint.api_key.expose())
        };
        if !error.code.is_retried() || attempt >= policy.max_attempts.max(1) {
            return Err(error);
        }
        let wait = match error.retry_after {
            Some(asked) if asked > policy.max_wait => return Err(error),
            Some(asked) => asked,
            None => backoff(attempt).min(policy.max_wait),
        };
        tracing::debug!(
            provider = endpoint.provider.as_str(),
            code = error.code.as_str(),
            attempt,
            wait_ms = wait.as_millis() as u64,
            "text provider failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

/// The wait before retry `attempt` (1-based): 0.5 s doubling, at most 8 s, jittered down by up
/// to a quarter so that many clients do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let full = FIRST_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.75..=1.0);
    full.mul_f64(jitter)
}

async fn try_once(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    body: &[u8],
    timeout: Duration,
) -> Result<TextReply, TextError> {
    let mut builder = client
        .post(endpoint.url())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    builder = match endpoint.provider {
        TextProvider::Anthropic => builder
            .header("x-api-key", endpoint.api_key.expose())
            .header("anthropic-version", anthropic::VERSION),
        TextProvider::OpenaiResponses | TextProvider::ChatCompletions => {
            builder.bearer_auth(endpoint.api_key.expose())
        }
    };
    let response = builder
        .send()
        .await
        .map_err(|error| transport_error(&error))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = read_capped(response)
        .await
        .map_err(|error| transport_error(&error))?;
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    if (200..300).contains(&status) {
        let Some(value) = parsed else {
            return Err(invalid_response(
                "the answer is not JSON".to_owned(),
                status,
            ));
        };
        let reply = match endpoint.provider {
            TextProvider::Anthropic => anthropic::read_reply(&value),
            TextProvider::OpenaiResponses => openai_responses::read_reply(&value),
            TextProvider::ChatCompletions => chat_completions::read_reply(&value),
        };
        return reply.map_err(|problem| invalid_response(problem, status));
    }
    let detail = parsed
        .as_ref()
        .and_then(|value| match endpoint.provider {
            TextProvider::Anthropic => anthropic::error_detail(value),
            TextProvider::OpenaiResponses | TextProvider::ChatCompletions => {
                openai_responses::error_detail(value)
            }
        })
        .unwrap_or_else(|| format!("HTTP {status}"));
    // Replaced before the message is cut: a key quoted across the cut would keep its first
    // half.
    let detail = redact(&detail, endpoint.api_key.expose());
    Err(TextError {
        code: code_for_status(status),
        message: clip(&detail),
        status: Some(status),
        retry_after,
        attempts: 1,
    })
}

/// The code of an error answer.
fn code_for_status(status: u16) -> TextErrorCode {
    match status {
        401 | 403 => TextErrorCode::AuthFailed,
        429 => TextErrorCode::RateLimited,
        500.. => TextErrorCode::Unavailable,
        _ => TextErrorCode::Rejected,
    }
}

fn invalid_response(problem: String, status: u16) -> TextError {
    TextError {
        code: TextErrorCode::InvalidResponse,
        message: clip(&problem),
        status: Some(status),
        retry_after: None,
        attempts: 1,
    }
}

fn transport_error(error: &reqwest::Error) -> TextError {
    let code = if error.is_timeout() {
        TextErrorCode::Timeout
    } else {
        TextErrorCode::ConnectFailed
    };
    let message = if error.is_timeout() {
        "no answer in time".to_owned()
    } else {
        // The chain names the cause (refused, DNS, TLS) without the URL's query.
        crate::domain::error_chain::ErrorChain(error)
            .to_string()
            .replace(error.url().map(Url::as_str).unwrap_or_default(), "")
    };
    TextError {
        code,
        message: clip(&message),
        status: None,
        retry_after: None,
        attempts: 1,
    }
}

impl TextError {
    /// The same error with every occurrence of `key` replaced: some servers quote the key
    /// they refused.
    fn redacted(mut self, key: &str) -> Self {
        self.message = redact(&self.message, key);
        self
    }
}

/// `text` with every occurrence of `key` replaced by `[redacted]`.
fn redact(text: &str, key: &str) -> String {
    if key.is_empty() {
        return text.to_owned();
    }
    text.replace(key, "[redacted]")
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            break;
        }
    }
    Ok(body)
}

/// `Retry-After` as delay-seconds (what the providers send); the HTTP-date form is ignored.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// At most 500 characters, on one line.
fn clip(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    flat.trim().to_owned()
}

/// Whether OpenAI's strict structured output accepts `schema`: every object lists all its
/// properties in `required` and closes them (`additionalProperties: false`), all the way
/// down. When it does not, the schema is sent non-strict (and still validated by us).
pub fn is_strict_compatible(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            let is_object_schema = map.get("type").is_some_and(|kind| {
                kind == "object"
                    || kind
                        .as_array()
                        .is_some_and(|k| k.contains(&"object".into()))
            }) || map.contains_key("properties");
            if is_object_schema {
                let closed = map.get("additionalProperties") == Some(&Value::Bool(false));
                let properties = map.get("properties").and_then(Value::as_object);
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|items| items.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let all_required = properties
                    .is_none_or(|props| props.keys().all(|key| required.contains(&key.as_str())));
                if !closed || !all_required {
                    return false;
                }
            }
            map.values().all(is_strict_compatible)
        }
        Value::Array(items) => items.iter().all(is_strict_compatible),
        _ => true,
    }
}
