//! FreJun's own HTTP requests to voxbridge, played by the simulators: the flow fetch when a call
//! connects (`POST <incoming call URL>`) and the lifecycle webhooks (`POST <status callback
//! URL>`). The fake Teler, `voxbridge call`, the demo and the load generator all send them
//! through here, so they send exactly what FreJun sends (docs/protocols.md §1.2 and §1.7).

use std::time::Duration;

use serde_json::{Value, json};

use super::caller::{CallerConfig, CallerError};
use super::frejun_payloads::FAKE_ACCOUNT_ID;
use crate::domain::error_chain::ErrorChain;

/// How long FreJun waits for a flow or a webhook answer.
pub(crate) const FREJUN_TIMEOUT: Duration = Duration::from_secs(10);

/// A client configured as FreJun's (timeout, user agent).
pub(crate) fn frejun_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(FREJUN_TIMEOUT)
        .user_agent("frejun-sim")
        .build()
        // Building only fails when TLS cannot initialise, which rustls always can.
        .unwrap_or_default()
}

/// The call FreJun asks about.
#[derive(Debug, Clone)]
pub(crate) struct FlowRequest {
    /// FreJun's call id.
    pub call_id: String,
    pub from: String,
    pub to: String,
    /// `inbound` or `outbound`.
    pub direction: String,
}

impl FlowRequest {
    /// `{"call_id","account_id","from_number","to_number","direction"}`, as FreJun posts it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "call_id": self.call_id,
            "account_id": FAKE_ACCOUNT_ID,
            "from_number": self.from,
            "to_number": self.to,
            "direction": self.direction,
        })
    }
}

/// Why a call got no media stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    #[error("cannot reach the flow URL {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// voxbridge answered the flow request with an error status (a wrong `key` is 401).
    #[error("the flow URL answered HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// voxbridge answered `{"action":"hangup"}`: it will not take this call (unknown, inactive
    /// or unassigned number, suspended tenant, no OpenAI key, or the concurrent-call limit);
    /// the call log says which.
    #[error("voxbridge answered the flow with hangup: it refuses this call")]
    HungUp,
    /// A 200 that is not a usable stream flow.
    #[error("the flow answer is not a usable stream flow: {0}")]
    Unusable(String),
}

/// A stream flow answer, ready to dial.
#[derive(Debug, Clone)]
pub(crate) struct StreamFlow {
    /// The caller configuration it implies (`ws_url`, rate, chunk size).
    pub caller: CallerConfig,
}

/// POSTs the flow request to `flow_url`; the status and the body parsed as JSON (`Null` if it
/// is not JSON).
pub(crate) async fn post_flow(
    http: &reqwest::Client,
    flow_url: &str,
    request: &FlowRequest,
) -> Result<(u16, Value), reqwest::Error> {
    let response = http.post(flow_url).json(&request.to_json()).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Asks for the flow and insists on a stream: the caller configuration to open it with.
pub(crate) async fn request_stream_flow(
    http: &reqwest::Client,
    flow_url: &str,
    request: &FlowRequest,
) -> Result<StreamFlow, FlowError> {
    let (status, flow) =
        post_flow(http, flow_url, request)
            .await
            .map_err(|error| FlowError::Unreachable {
                url: redact_key(flow_url),
                // reqwest's message repeats the URL, `key` included: `url` names it redacted.
                reason: ErrorChain(&error.without_url()).to_string(),
            })?;
    if !(200..300).contains(&status) {
        let body = flow
            .get("error")
            .map_or_else(|| flow.to_string(), Value::to_string);
        return Err(FlowError::Refused { status, body });
    }
    match flow.get("action").and_then(Value::as_str) {
        Some("stream") => {}
        Some("hangup") => return Err(FlowError::HungUp),
        _ => return Err(FlowError::Unusable(flow.to_string())),
    }
    let caller =
        CallerConfig::from_flow(&flow, request.call_id.clone()).map_err(|error| match error {
            CallerError::BadFlow(reason) => FlowError::Unusable(reason),
            other => FlowError::Unusable(other.to_string()),
        })?;
    Ok(StreamFlow { caller })
}

/// POSTs one lifecycle webhook (built with `frejun_payloads::events`); the HTTP status.
pub(crate) async fn send_webhook(
    http: &reqwest::Client,
    webhook_url: &str,
    payload: &Value,
) -> Result<u16, reqwest::Error> {
    let response = http.post(webhook_url).json(payload).send().await?;
    Ok(response.status().as_u16())
}

/// POSTs one lifecycle webhook; the HTTP status and voxbridge's answer parsed as JSON (`Null`
/// if it is not JSON), which says whether the event was applied or ignored.
pub(crate) async fn post_webhook(
    http: &reqwest::Client,
    webhook_url: &str,
    payload: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = http.post(webhook_url).json(payload).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The URL with its `key` query value hidden: the tenant's FreJun URL secret must not end up
/// in error messages or logs.
pub(crate) fn redact_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(name, value)| {
                    // Plain ASCII: anything else is percent-encoded in the printed URL.
                    let value = if name == "key" {
                        "redacted".to_owned()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            if pairs.is_empty() {
                return parsed.to_string();
            }
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
            parsed.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_request_has_frejuns_field_names() {
        let request = FlowRequest {
            call_id: "c1".into(),
            from: "+1".into(),
            to: "+2".into(),
            direction: "inbound".into(),
        };
        let body = request.to_json();
        assert_eq!(body["from_number"], "+1");
        assert_eq!(body["to_number"], "+2");
        assert_eq!(body["account_id"], FAKE_ACCOUNT_ID);
    }

    #[test]
    fn the_url_secret_is_redacted() {
        let redacted = redact_key("http://h/api/frejun/flow?key=SECRET&call=7");
        assert!(!redacted.contains("SECRET"), "{redacted}");
        assert!(redacted.contains("call=7"), "{redacted}");
        assert!(redacted.contains("key=redacted"), "{redacted}");
    }
}
