//! One attempt to deliver an event to a tenant's webhook endpoint, and what it means for the
//! next one.
//!
//! The attempt is a `POST` of the event's body with the Standard Webhooks headers (`webhook-id`
//! = the event's id, the same on every attempt; `webhook-timestamp` = now; `webhook-signature`
//! under every active secret of the endpoint), through the checked client (no redirects, no
//! proxy, addresses checked at connect time), within a timeout, reading at most
//! [`RESPONSE_CAP`] bytes of the answer. The verdict follows Standard Webhooks' guidance:
//! a 2xx is delivered; a network error, a timeout, 408, 429 and 5xx are retried (after
//! `Retry-After` when the endpoint says); 410 means the endpoint is gone; any other answer
//! (4xx, a redirect) is final.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::address_policy::AllowList;
use super::client::read_limited;
use super::signing::Signer;

/// How much of an endpoint's answer is kept: enough to diagnose, never a large download.
pub const RESPONSE_CAP: usize = 2 * 1024;

/// Longest `Retry-After` honoured: a longer one waits this long (the retry schedule goes on).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// What an attempt means for the event at this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint took it (2xx).
    Delivered,
    /// Try again later (network error, timeout, 408, 429, 5xx), no sooner than `after` when
    /// the endpoint said so.
    Retry { after: Option<Duration> },
    /// 410 Gone: the endpoint asked never to be called again.
    Gone,
    /// Any other answer (4xx, a redirect, a refused address): retrying would not help.
    Rejected,
}

/// One attempt, as recorded and shown to the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub verdict: Verdict,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    pub latency: Duration,
    /// What went wrong, in a sentence (`None` when delivered).
    pub error: Option<String>,
    /// The start of the endpoint's answer (at most [`RESPONSE_CAP`] bytes, lossy UTF-8).
    pub response: String,
}

/// What to deliver, and where.
pub struct Delivery<'a> {
    pub client: &'a reqwest::Client,
    pub allow: &'a AllowList,
    pub url: &'a str,
    pub signer: &'a Signer,
    /// The event's id: the `webhook-id` of every attempt.
    pub event_id: &'a str,
    /// The event's JSON body, exactly as signed.
    pub body: &'a [u8],
    pub timeout: Duration,
}

/// Makes one attempt. Never fails: what went wrong is in the [`Attempt`].
pub async fn attempt(delivery: Delivery<'_>) -> Attempt {
    let started = Instant::now();
    let failed = |verdict: Verdict, error: String| Attempt {
        verdict,
        status: None,
        latency: started.elapsed(),
        error: Some(error),
        response: String::new(),
    };
    let url = match url::Url::parse(delivery.url) {
        Ok(url) => url,
        Err(_) => return failed(Verdict::Rejected, "the endpoint's URL is invalid".into()),
    };
    if let Err(refusal) = delivery.allow.check_url(&url) {
        return failed(Verdict::Rejected, refusal.to_string());
    }
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let signature = delivery
        .signer
        .signature_header(delivery.event_id, timestamp, delivery.body);
    let sent = delivery
        .client
        .post(url)
        .timeout(delivery.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.to_vec())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            let chain = crate::domain::error_chain::ErrorChain(&err).to_string();
            // A refused address is the operator's policy, not a passing failure.
            if chain.contains("not a public address") || chain.contains("no public address") {
                return failed(Verdict::Rejected, chain);
            }
            let what = if err.is_timeout() {
                format!("no answer within {} ms", delivery.timeout.as_millis())
            } else {
                chain
            };
            return failed(Verdict::Retry { after: None }, what);
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let (text, _) = read_limited(response, RESPONSE_CAP)
        .await
        .unwrap_or_else(|err| (format!("(the answer could not be read: {err})"), false));
    let code = status.as_u16();
    let (verdict, error) = match code {
        200..=299 => (Verdict::Delivered, None),
        410 => (
            Verdict::Gone,
            Some("410 Gone: the endpoint asked not to be called again".to_owned()),
        ),
        408 | 429 | 500..=599 => (
            Verdict::Retry { after: retry_after },
            Some(format!("answered {code}")),
        ),
        300..=399 => (
            Verdict::Rejected,
            Some(format!("answered {code}: redirects are not followed")),
        ),
        _ => (Verdict::Rejected, Some(format!("answered {code}"))),
    };
    Attempt {
        verdict,
        status: Some(code),
        latency: started.elapsed(),
        error,
        response: text,
    }
}
