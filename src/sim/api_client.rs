//! A small client for voxbridge's own JSON API, as a tenant's software or an admin would use it:
//! for `voxbridge call`, the demo and the load generator, which drive a server (local or remote)
//! only through its public HTTP surface.
//!
//! Every answer is checked against the envelope (`{"success":true,"data":…}` or
//! `{"success":false,"error":{"code","message"}}`), and the three ways a request can fail
//! (server unreachable, an error answer, an answer that is not the API's) are kept apart so the
//! commands can say which one happened.

use std::time::Duration;

use crate::domain::error_chain::ErrorChain;
use reqwest::Method;
use serde_json::Value;
use url::Url;

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No HTTP answer: refused, unresolvable, timed out, TLS failure.
    #[error("cannot reach voxbridge at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An error answer in the API's envelope (or a bare status without one).
    #[error("{method} {path} answered HTTP {status} {code}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        code: String,
        message: String,
    },
    /// A 2xx answer that is not the API's JSON.
    #[error("{method} {path} gave an answer that is not voxbridge's API: {reason}")]
    BadAnswer {
        method: String,
        path: String,
        reason: String,
    },
}

/// A client for one server and one bearer token (an admin token or a tenant API key).
#[derive(Clone)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base_url: Url,
    bearer: String,
}

impl ApiClient {
    /// `base_url` is the server's origin (a path prefix is kept: `https://host/voxbridge`).
    pub(crate) fn new(base_url: &Url, bearer: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("voxbridge-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building only fails when TLS cannot initialise, which rustls always can.
            .unwrap_or_default();
        let mut base_url = base_url.clone();
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        ApiClient {
            http,
            base_url,
            bearer: bearer.into(),
        }
    }

    /// The same server with another bearer token.
    pub(crate) fn with_bearer(&self, bearer: impl Into<String>) -> Self {
        ApiClient {
            http: self.http.clone(),
            base_url: self.base_url.clone(),
            bearer: bearer.into(),
        }
    }

    /// `path` (without a leading `/`, may carry a query) resolved against the base URL.
    pub(crate) fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base_url
            .join(path.trim_start_matches('/'))
            .map_err(|error| ApiError::BadAnswer {
                method: "-".into(),
                path: path.into(),
                reason: format!("not a valid path: {error}"),
            })
    }

    /// GET `path`; the whole answer body (envelope included).
    pub(crate) async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(Method::GET, path, None).await
    }

    /// POST `body` as JSON to `path`; the whole answer body.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// PUT `body` as JSON to `path`; the whole answer body.
    pub(crate) async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// GET `path` and return the envelope's `data`.
    pub(crate) async fn get_data(&self, path: &str) -> Result<Value, ApiError> {
        let answer = self.get(path).await?;
        data_of(answer, "GET", path)
    }

    /// POST to `path` and return the envelope's `data`.
    pub(crate) async fn post_data(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let answer = self.post(path, body).await?;
        data_of(answer, "POST", path)
    }

    /// Waits until `GET /ready` answers 200 (MongoDB reachable), polling every 100 ms, for at
    /// most `timeout`. The last failure is returned when it never does.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let outcome = self.get("ready").await;
            match outcome {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(path)?;
        let unreachable = |error: reqwest::Error| ApiError::Unreachable {
            url: url.to_string(),
            // `url` names it once; reqwest's own message would repeat it.
            reason: ErrorChain(&error.without_url()).to_string(),
        };
        let mut attempt = 1;
        let (status, bytes) = loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.bearer);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let wait = rate_limit_wait(&response);
            let bytes = response.bytes().await.map_err(unreachable)?;
            // The server's rate limit refused the request before doing anything: waiting as
            // told and sending it again is safe, even for a POST.
            match wait {
                Some(wait) if attempt < RATE_LIMIT_ATTEMPTS && is_rate_limited(&bytes) => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => break (status, bytes),
            }
        };
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let error = parsed.as_ref().and_then(|body| body.get("error"));
            let text = |field: &str| {
                error
                    .and_then(|error| error.get(field))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            return Err(ApiError::Status {
                method: method.to_string(),
                path: path.to_owned(),
                status: status.as_u16(),
                code: text("code").unwrap_or_else(|| "-".into()),
                message: text("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect()),
            });
        }
        parsed.ok_or_else(|| ApiError::BadAnswer {
            method: method.to_string(),
            path: path.to_owned(),
            reason: "the body is not JSON".into(),
        })
    }
}

/// How many times a request refused by the server's rate limit is sent in all.
const RATE_LIMIT_ATTEMPTS: u32 = 6;

/// The longest `Retry-After` waited out; a longer one is reported as the error it is.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

/// For a 429 with `Retry-After` (whole seconds), how long to wait before sending again.
fn rate_limit_wait(response: &reqwest::Response) -> Option<Duration> {
    if response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let secs: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs)).filter(|wait| *wait <= MAX_RATE_LIMIT_WAIT)
}

/// Whether a 429's body is the rate limit's (`concurrency_limit` is also a 429, and waiting a
/// second does not end a call).
fn is_rate_limited(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|body| body["error"]["code"] == "rate_limited")
}

/// The `data` of a success envelope.
fn data_of(mut answer: Value, method: &str, path: &str) -> Result<Value, ApiError> {
    let success = answer.get("success") == Some(&Value::Bool(true));
    match answer.get_mut("data") {
        Some(data) if success => Ok(data.take()),
        _ => Err(ApiError::BadAnswer {
            method: method.into(),
            path: path.into(),
            reason: "no {\"success\":true,\"data\":…} envelope".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn data_of_takes_the_envelope_data() {
        let answer = json!({"success": true, "data": {"id": "x"}});
        assert_eq!(data_of(answer, "GET", "p").unwrap(), json!({"id": "x"}));
    }

    #[test]
    fn data_of_refuses_a_foreign_answer() {
        let error = data_of(json!({"id": "x"}), "GET", "p").unwrap_err();
        assert!(matches!(error, ApiError::BadAnswer { .. }), "{error}");
    }

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let client = ApiClient::new(&Url::parse("http://h:1/voxbridge").unwrap(), "t");
        assert_eq!(
            client.url("/api/me").unwrap().as_str(),
            "http://h:1/voxbridge/api/me"
        );
    }

    /// A server whose first `refusals` answers are the rate limit's 429, then a success.
    async fn limited_server(refusals: usize, code: &'static str) -> (Url, Arc<AtomicUsize>) {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let server = HttpServer::new(move || {
            let hits = counted.clone();
            App::new().default_service(web::to(move || {
                let hit = hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    if hit < refusals {
                        HttpResponse::TooManyRequests()
                            .insert_header(("retry-after", "1"))
                            .json(json!({"success": false, "error": {"code": code, "message": "slow down"}}))
                    } else {
                        HttpResponse::Ok().json(json!({"success": true, "data": {"hit": hit}}))
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let url = Url::parse(&format!("http://{}", server.addrs()[0])).unwrap();
        tokio::spawn(server.run());
        (url, hits)
    }

    #[tokio::test]
    async fn a_rate_limited_request_is_sent_again_after_retry_after() {
        let (url, hits) = limited_server(1, "rate_limited").await;
        let client = ApiClient::new(&url, "t");
        let data = client
            .post_data("api/assistants", &json!({}))
            .await
            .unwrap();
        assert_eq!(data, json!({"hit": 1}));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_concurrency_limit_is_not_retried() {
        let (url, hits) = limited_server(1, "concurrency_limit").await;
        let client = ApiClient::new(&url, "t");
        let error = client.post_data("api/calls", &json!({})).await.unwrap_err();
        assert!(
            matches!(error, ApiError::Status { status: 429, .. }),
            "{error}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        let port = crate::local_mongodb::free_port().unwrap();
        let client = ApiClient::new(
            &Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            "t",
        );
        let error = client.get("health").await.unwrap_err();
        let ApiError::Unreachable { url, reason } = &error else {
            panic!("expected Unreachable, got {error}");
        };
        assert!(url.contains(&port.to_string()));
        assert!(reason.to_lowercase().contains("connect"), "{reason}");
    }
}
