//! The HTTP side of the WebSocket upgrade: the checks OpenAI makes before it answers 101, in
//! this order: path (`/v1/realtime`, else 404), `Authorization: Bearer <key>` (else 401
//! `invalid_api_key`), an injected [`Failure::RejectKey`], then the query (`model` required;
//! `call_id` and `intent` sessions are not served by the fake: 400). Refusals carry an
//! OpenAI-style JSON error body. An `OpenAI-Beta` header is accepted here and dealt with after
//! the upgrade (close 4000), as OpenAI does.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};

use super::behaviour::Failure;
use super::record::RejectedHandshake;

/// The only path the fake serves.
pub(crate) const REALTIME_PATH: &str = "/v1/realtime";

/// What an accepted upgrade asked for.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The `model` query parameter.
    pub model: String,
    /// The bearer token.
    pub api_key: String,
    /// Whether an `OpenAI-Beta` header was sent.
    pub beta_header: bool,
}

/// Decides an upgrade request.
pub(crate) fn check(
    request: &Request,
    failure: Option<&Failure>,
) -> Result<Accepted, RejectedHandshake> {
    let path_and_query = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let reject = |status: u16, body: Value| RejectedHandshake {
        status,
        path_and_query: path_and_query.clone(),
        authorization: authorization.clone(),
        body: body.to_string(),
    };

    if request.uri().path() != REALTIME_PATH {
        return Err(reject(
            404,
            error_body(
                "invalid_request_error",
                None,
                &format!("Invalid URL (GET {})", request.uri().path()),
                None,
            ),
        ));
    }
    let Some(api_key) = authorization.as_deref().and_then(bearer_token) else {
        let message = match &authorization {
            None => "You didn't provide an API key. You need to provide your API key in an \
                     Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .to_owned(),
            Some(_) => "Incorrect API key provided: the Authorization header must be \
                        'Bearer <key>'."
                .to_owned(),
        };
        return Err(reject(
            401,
            error_body(
                "invalid_request_error",
                Some("invalid_api_key"),
                &message,
                None,
            ),
        ));
    };
    if let Some(Failure::RejectKey { status }) = failure {
        return Err(reject(*status, refusal_body(*status, api_key)));
    }

    let mut model = None;
    for (name, value) in url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
    {
        match name.as_ref() {
            "model" => model = Some(value.into_owned()),
            "call_id" | "intent" => {
                return Err(reject(
                    400,
                    error_body(
                        "invalid_request_error",
                        Some("invalid_value"),
                        &format!("The fake serves only model sessions, not '{name}' sessions."),
                        Some(&name),
                    ),
                ));
            }
            _ => {}
        }
    }
    let Some(model) = model.filter(|model| !model.is_empty()) else {
        return Err(reject(
            400,
            error_body(
                "invalid_request_error",
                Some("missing_required_parameter"),
                "Missing required parameter: 'model'.",
                Some("model"),
            ),
        ));
    };
    let beta_header = request.headers().contains_key("openai-beta");
    Ok(Accepted {
        model,
        api_key: api_key.to_owned(),
        beta_header,
    })
}

/// The HTTP response for a refusal.
pub(crate) fn error_response(rejected: &RejectedHandshake) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(rejected.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(rejected.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"error":{"message","type","param","code"}}`, OpenAI's error envelope.
pub(crate) fn error_body(
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The token of `Bearer <token>`; `None` for another scheme or an empty or spaced token.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The body OpenAI sends for an injected refusal with this status.
fn refusal_body(status: u16, api_key: &str) -> Value {
    match status {
        401 => error_body(
            "invalid_request_error",
            Some("invalid_api_key"),
            &format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                redact(api_key)
            ),
            None,
        ),
        403 => error_body(
            "invalid_request_error",
            Some("model_not_found"),
            "Your project does not have access to this model or feature.",
            None,
        ),
        429 => error_body(
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
            None,
        ),
        500..=599 => error_body(
            "server_error",
            None,
            "The server had an error while processing your request.",
            None,
        ),
        _ => error_body("invalid_request_error", None, "Request refused.", None),
    }
}

/// `sk-ab***********wxyz`: enough to recognise a key in a log, not to use it.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars.iter().take(5).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, authorization: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(value) = authorization {
            builder = builder.header("Authorization", value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_checks_run_in_openais_order() {
        let missing_all = check(&request("/v1/other", None), None).unwrap_err();
        assert_eq!(missing_all.status, 404);
        let no_key = check(&request("/v1/realtime", None), None).unwrap_err();
        assert_eq!(no_key.status, 401);
        assert!(no_key.body.contains("invalid_api_key"));
        let no_model = check(&request("/v1/realtime", Some("Bearer sk-1")), None).unwrap_err();
        assert_eq!(no_model.status, 400);
        let refused = check(
            &request("/v1/realtime", Some("Bearer sk-1")),
            Some(&Failure::RejectKey { status: 403 }),
        )
        .unwrap_err();
        assert_eq!(
            refused.status, 403,
            "the injected refusal comes before the model check"
        );
        let accepted = check(
            &request("/v1/realtime?model=gpt-realtime", Some("Bearer sk-test-1")),
            None,
        )
        .unwrap();
        assert_eq!(accepted.model, "gpt-realtime");
        assert_eq!(accepted.api_key, "sk-test-1");
        assert!(!accepted.beta_header);
    }

    #[test]
    fn only_well_formed_bearer_tokens_pass() {
        assert_eq!(bearer_token("Bearer sk-1"), Some("sk-1"));
        assert_eq!(bearer_token("bearer sk-1"), Some("sk-1"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }

    #[test]
    fn keys_are_redacted_in_messages() {
        assert_eq!(redact("sk-abcdefghijkl"), "sk-ab******ijkl");
        assert_eq!(redact("short"), "*****");
    }
}
