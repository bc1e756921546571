//! One call of a tenant's `http` tool: the signed request to the tenant's endpoint and what the
//! model is given back.
//!
//! The request is `{method} {url}` with the JSON body
//! `{tool, arguments, tool_call_id, call: {id, assistant_id, from, to, direction}}`, the tool's
//! headers (secret references filled in) and the Standard Webhooks headers (`webhook-id` = the
//! tool call's id, `webhook-timestamp`, `webhook-signature`, one signature per active signing
//! secret). It goes through the checked client (no redirects, no proxy, addresses checked at
//! connect time), within the tool's timeout, and at most `max_response_bytes` of the answer
//! are read. A 2xx body is handed to the model as it is (JSON or text, truncated with a
//! marker); anything else becomes a JSON error the model can explain to the caller.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::address_policy::AllowList;
use super::client::read_limited;
use super::signing::Signer;
use crate::domain::assistant::tools::{HttpTool, SecretTemplate};
use crate::domain::secret::SecretString;

/// The call a tool runs in, as the tenant's endpoint receives it. All `None` for a test run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CallContext {
    pub id: Option<String>,
    pub assistant_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<&'static str>,
}

/// The body every HTTP tool receives.
#[derive(Debug, Serialize)]
struct ToolBody<'a> {
    tool: &'a str,
    arguments: &'a Value,
    tool_call_id: &'a str,
    call: &'a CallContext,
}

/// The request as sent, for `POST /api/assistants/{id}/tools/{name}/test`: headers built from
/// secrets are shown as `[redacted]`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SentRequest {
    pub method: String,
    pub url: String,
    /// `content-type`, the three `webhook-*` headers, then the tool's own.
    pub headers: Vec<SentHeader>,
    /// The JSON body, exactly as signed.
    pub body: String,
}

/// One header of a [`SentRequest`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SentHeader {
    pub name: String,
    pub value: String,
}

/// What the tenant's endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolAnswer {
    /// What the model is given (`function_call_output`).
    pub output: String,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    /// `None` for a 2xx; otherwise a stable code: `http_status`, `redirect_refused`,
    /// `timeout`, `refused_address`, `connect_failed`, `missing_secret`.
    pub error_code: Option<&'static str>,
    pub latency: Duration,
}

impl ToolAnswer {
    pub fn is_timeout(&self) -> bool {
        self.error_code == Some("timeout")
    }

    fn failed(code: &'static str, message: &str, started: Instant) -> Self {
        Self {
            output: serde_json::json!({"error": code, "message": message}).to_string(),
            status: None,
            error_code: Some(code),
            latency: started.elapsed(),
        }
    }
}

/// Everything one call needs besides the tool itself.
pub struct HttpToolCall<'a> {
    pub client: &'a reqwest::Client,
    pub allow: &'a AllowList,
    pub signer: &'a Signer,
    /// The tenant's named secrets the headers may reference.
    pub secrets: &'a (dyn Fn(&str) -> Option<SecretString> + Sync),
    pub tool_call_id: &'a str,
    pub call: &'a CallContext,
}

/// Calls `tool` with `arguments`; never fails: what went wrong is the answer (the model must
/// get an output whatever happens). Also answers the request as sent, when one was built.
pub async fn call(
    tool: &HttpTool,
    arguments: &Value,
    with: HttpToolCall<'_>,
) -> (Option<SentRequest>, ToolAnswer) {
    let started = Instant::now();
    let url = match url::Url::parse(&tool.url) {
        Ok(url) => url,
        Err(_) => {
            return (
                None,
                ToolAnswer::failed("bad_url", "the tool's URL is invalid", started),
            );
        }
    };
    if let Err(refusal) = with.allow.check_url(&url) {
        return (
            None,
            ToolAnswer::failed("refused_address", &refusal.to_string(), started),
        );
    }
    let mut headers: Vec<(String, String, bool)> = Vec::new();
    for (name, value) in &tool.headers {
        let template = match SecretTemplate::parse(name, value) {
            Ok(template) => template,
            Err(err) => {
                return (
                    None,
                    ToolAnswer::failed("bad_header", &err.to_string(), started),
                );
            }
        };
        let uses_secret = template.names().next().is_some();
        match template.render(|secret| (with.secrets)(secret).map(|s| s.expose().to_owned())) {
            Ok(rendered) => headers.push((name.clone(), rendered, uses_secret)),
            Err(missing) => {
                return (
                    None,
                    ToolAnswer::failed(
                        "missing_secret",
                        &format!("the secret '{missing}' is not stored"),
                        started,
                    ),
                );
            }
        }
    }
    let body = serde_json::to_string(&ToolBody {
        tool: &tool.name,
        arguments,
        tool_call_id: with.tool_call_id,
        call: with.call,
    })
    .expect("a tool body serializes");
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let signature = with
        .signer
        .signature_header(with.tool_call_id, timestamp, body.as_bytes());

    let method = reqwest::Method::from_bytes(tool.method.as_str().as_bytes())
        .expect("tool methods are valid HTTP methods");
    let mut request = with
        .client
        .request(method, url.clone())
        .timeout(Duration::from_millis(u64::from(tool.timeout_ms)))
        .header("content-type", "application/json")
        .header("webhook-id", with.tool_call_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", &signature);
    for (name, value, _) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let header = |name: &str, value: &str| SentHeader {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let mut shown = vec![
        header("content-type", "application/json"),
        header("webhook-id", with.tool_call_id),
        header("webhook-timestamp", &timestamp.to_string()),
        header("webhook-signature", &signature),
    ];
    shown.extend(headers.iter().map(|(name, value, uses_secret)| {
        // A header built from a secret is the secret, or most of it.
        let value = if *uses_secret {
            crate::domain::secret::REDACTED
        } else {
            value
        };
        header(name, value)
    }));
    let sent = SentRequest {
        method: tool.method.as_str().to_owned(),
        url: url.to_string(),
        headers: shown,
        body: body.clone(),
    };

    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(err) => return (Some(sent), transport_failure(&err, started)),
    };
    let status = response.status();
    if status.is_redirection() {
        let mut answer = ToolAnswer::failed(
            "redirect_refused",
            "the tool's endpoint answered with a redirect, which is not followed",
            started,
        );
        answer.status = Some(status.as_u16());
        return (Some(sent), answer);
    }
    let (text, truncated) = match read_limited(response, tool.max_response_bytes as usize).await {
        Ok(read) => read,
        Err(err) => return (Some(sent), transport_failure(&err, started)),
    };
    let answer = if status.is_success() {
        ToolAnswer {
            output: if truncated {
                format!("{text}…[truncated]")
            } else {
                text
            },
            status: Some(status.as_u16()),
            error_code: None,
            latency: started.elapsed(),
        }
    } else {
        ToolAnswer {
            output: serde_json::json!({
                "error": "http_status",
                "status": status.as_u16(),
                "body": text,
            })
            .to_string(),
            status: Some(status.as_u16()),
            error_code: Some("http_status"),
            latency: started.elapsed(),
        }
    };
    (Some(sent), answer)
}

/// A request that got no usable answer: timed out, refused by the resolver, or failed to
/// connect.
fn transport_failure(err: &reqwest::Error, started: Instant) -> ToolAnswer {
    if err.is_timeout() {
        return ToolAnswer::failed(
            "timeout",
            "the tool's endpoint did not answer in time",
            started,
        );
    }
    let chain = crate::domain::error_chain::ErrorChain(err).to_string();
    if chain.contains("not a public address") || chain.contains("no public address") {
        return ToolAnswer::failed("refused_address", &chain, started);
    }
    ToolAnswer::failed("connect_failed", &chain, started)
}
