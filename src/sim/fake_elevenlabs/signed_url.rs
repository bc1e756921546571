//! Signed URLs for private agents (docs/protocols.md §5.2): the REST endpoint
//! `GET /v1/convai/conversation/get-signed-url` and the store of the signatures it issued.
//!
//! Checks run in this order, the first failure answering: method (405 for anything but GET),
//! `xi-api-key` (401 `invalid_api_key` when missing or not the fake's key), `agent_id` (422 when
//! missing, as FastAPI answers a missing query parameter; 404 `agent_not_found` when unknown).
//! A signature is bound to its agent, valid for [`SIGNED_URL_TTL`] (or what
//! [`FakeElevenLabs::set_signed_url_ttl`](super::FakeElevenLabs::set_signed_url_ttl) sets) and
//! single-use.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::record::SignedUrlRequest;
use super::{CONVERSATION_PATH, Shared, error_response, lock, random_tag};

/// How long a signed URL can be used to connect (ElevenLabs: about 15 minutes).
pub const SIGNED_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// The path of the REST endpoint.
pub(super) const SIGNED_URL_PATH: &str = "/v1/convai/conversation/get-signed-url";

/// Every signature issued, by signature.
#[derive(Default)]
pub(super) struct Signatures {
    issued: HashMap<String, Issued>,
}

struct Issued {
    agent_id: String,
    issued_at: Instant,
    used: bool,
}

impl Signatures {
    /// A new single-use signature for `agent_id`.
    pub(super) fn issue(&mut self, agent_id: &str, now: Instant) -> String {
        let signature = random_tag(40);
        self.issued.insert(
            signature.clone(),
            Issued {
                agent_id: agent_id.to_owned(),
                issued_at: now,
                used: false,
            },
        );
        signature
    }

    /// Uses up `signature` for a connection to `agent_id`; why not, when it cannot be used.
    pub(super) fn redeem(
        &mut self,
        signature: &str,
        agent_id: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), String> {
        let Some(issued) = self.issued.get_mut(signature) else {
            return Err("conversation_signature was never issued".to_owned());
        };
        if issued.agent_id != agent_id {
            return Err(format!(
                "conversation_signature was issued for agent {}, not {agent_id}",
                issued.agent_id
            ));
        }
        if issued.used {
            return Err(
                "conversation_signature was already used (signed URLs are single-use)".to_owned(),
            );
        }
        if now.duration_since(issued.issued_at) > ttl {
            return Err(format!(
                "conversation_signature expired ({} ms after it was issued)",
                ttl.as_millis()
            ));
        }
        issued.used = true;
        Ok(())
    }
}

/// Answers one request to [`SIGNED_URL_PATH`] and records it.
pub(super) fn handle(req: &HttpRequest, shared: &Shared) -> HttpResponse {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let agent_id = query
        .iter()
        .find(|(name, _)| name == "agent_id")
        .map(|(_, value)| value.clone());
    let api_key = req
        .headers()
        .get("xi-api-key")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let mut record = SignedUrlRequest {
        agent_id: agent_id.clone(),
        api_key: api_key.clone(),
        query,
        status: 200,
        signature: None,
    };
    let response = answer(
        req,
        shared,
        agent_id.as_deref(),
        api_key.as_deref(),
        &mut record,
    );
    record.status = response.status().as_u16();
    lock(&shared.signed_url_requests).push(record);
    shared.changed();
    response
}

fn answer(
    req: &HttpRequest,
    shared: &Shared,
    agent_id: Option<&str>,
    api_key: Option<&str>,
    record: &mut SignedUrlRequest,
) -> HttpResponse {
    if req.method() != Method::GET {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .json(json!({"detail": "Method Not Allowed"}));
    }
    let valid_key = lock(&shared.api_key).clone();
    if api_key.is_none() || api_key != Some(valid_key.as_str()) {
        return error_response(401, "invalid_api_key", "Invalid API key");
    }
    let Some(agent_id) = agent_id else {
        return HttpResponse::UnprocessableEntity().json(json!({"detail": [{
            "type": "missing",
            "loc": ["query", "agent_id"],
            "msg": "Field required",
            "input": null,
        }]}));
    };
    if !lock(&shared.agents).contains_key(agent_id) {
        return error_response(
            404,
            "agent_not_found",
            &format!("Agent {agent_id} was not found"),
        );
    }
    let signature = lock(&shared.signatures).issue(agent_id, Instant::now());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("agent_id", agent_id)
        .append_pair("conversation_signature", &signature)
        .finish();
    record.signature = Some(signature);
    HttpResponse::Ok().json(json!({
        "signed_url": format!("ws://{}{CONVERSATION_PATH}?{query}", shared.address),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_single_use_bound_to_their_agent_and_expire() {
        let mut signatures = Signatures::default();
        let start = Instant::now();
        let ttl = Duration::from_secs(60);
        let first = signatures.issue("agent_a", start);
        assert!(
            signatures
                .redeem(&first, "agent_b", ttl, start)
                .unwrap_err()
                .contains("issued for agent agent_a")
        );
        assert_eq!(signatures.redeem(&first, "agent_a", ttl, start), Ok(()));
        assert!(
            signatures
                .redeem(&first, "agent_a", ttl, start)
                .unwrap_err()
                .contains("already used")
        );
        let second = signatures.issue("agent_a", start);
        assert!(
            signatures
                .redeem(&second, "agent_a", ttl, start + Duration::from_secs(61))
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            signatures
                .redeem("nope", "agent_a", ttl, start)
                .unwrap_err()
                .contains("never issued")
        );
    }
}
