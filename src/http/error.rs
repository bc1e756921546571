//! [`ApiError`]: the one error type of the HTTP layer. It carries a stable snake_case code and a
//! client-safe message, and builds its own response body (actix's default would print the
//! error's `Display`, which may hold internal detail). The underlying cause goes to the log only.

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::envelope::{ErrorEnvelope, error_body};
pub use super::error_code::ErrorCode;
use utoipa::ToResponse;

use crate::bridge::control::RouteError;
use crate::calls::CredentialProblem;
use crate::calls::analysis::ReanalyzeRefusal;
use crate::calls::outbound::OutboundError;
use crate::calls::text_ai::Unavailable;
use crate::calls::tool_secrets::ToolsProblem;
use crate::domain::error_chain::ErrorChain;
use crate::domain::validation::ValidationError;
use crate::providers::teler::TelerError;
use crate::providers::text::{TextError, TextErrorCode};
use crate::storage::StorageError;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// For the log, never for the client.
    cause: Option<Cause>,
    /// Whole seconds for a `Retry-After` header (rate-limited answers).
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
            retry_after_secs: None,
        }
    }

    /// 429 `rate_limited`, with `Retry-After` rounded up to whole seconds (at least 1).
    pub(crate) fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut error = Self::new(ErrorCode::RateLimited, message);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        error.retry_after_secs = Some(secs.max(1));
        error
    }

    /// Attaches the underlying error, which is logged (for 5xx answers) but not shown.
    pub(crate) fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this method is not allowed on this path",
        )
    }

    /// 503 `draining`, with `Retry-After: 1`: another instance admits the call.
    pub(crate) fn draining() -> Self {
        let mut error = Self::new(
            ErrorCode::Draining,
            "this instance is draining and admits no new calls; retry, another instance will",
        );
        error.retry_after_secs = Some(1);
        error
    }

    pub(crate) fn database_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DatabaseUnavailable, message)
    }

    pub(crate) fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(
            ErrorCode::InternalError,
            "internal error; the request id in the x-request-id header identifies it in our logs",
        )
        .with_cause(cause)
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code.as_str();
        // A draining or stopping instance says so to every probe and refused call: expected,
        // and logged by the drain itself, not once per answer.
        let expected = matches!(self.code, ErrorCode::Draining | ErrorCode::ShuttingDown);
        if self.code == ErrorCode::OwnerNotResponding {
            // Another instance is slow or gone (its calls are the reaper's once its lease ends):
            // worth a look when it repeats, not a fault of this one.
            tracing::warn!(code, detail = %self.message, "request failed");
        } else if self.code.status().is_server_error() && !expected {
            match &self.cause {
                Some(cause) => {
                    tracing::error!(code, error = %ErrorChain(cause.as_ref()), "request failed")
                }
                None => {
                    // `detail`, not `message`: a second `message` key would replace the line's
                    // own in JSON logs.
                    tracing::error!(code, detail = %self.message, "request failed")
                }
            }
        }
        let mut response = HttpResponse::build(self.code.status());
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs));
        }
        response.json(error_body(code, &self.message))
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => ApiError::not_found("not found"),
            StorageError::Conflict => {
                ApiError::new(ErrorCode::Conflict, "conflicts with an existing resource")
            }
            StorageError::Unavailable(_) => {
                ApiError::database_unavailable("the database is unavailable; try again shortly")
                    .with_cause(err)
            }
            StorageError::Backend(_) => ApiError::internal(err),
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::NotFound => ApiError::not_found("call not found"),
            RouteError::NotLive => ApiError::new(
                ErrorCode::CallNotLive,
                "the call is not being bridged by any instance",
            ),
            RouteError::OwnerSilent(_) => {
                ApiError::new(ErrorCode::OwnerNotResponding, err.to_string())
            }
            RouteError::Storage(err) => err.into(),
        }
    }
}

/// Maps a storage error, naming the missing resource: `.map_err(not_found_as("assistant"))`
/// answers 404 "assistant not found" (for a foreign id too), anything else as usual.
pub(crate) fn not_found_as(what: &'static str) -> impl Fn(StorageError) -> ApiError {
    move |err| match err {
        StorageError::NotFound => ApiError::not_found(format!("{what} not found")),
        other => other.into(),
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::new(ErrorCode::ValidationFailed, err.to_string())
    }
}

impl From<ToolsProblem> for ApiError {
    fn from(problem: ToolsProblem) -> Self {
        match problem {
            ToolsProblem::Invalid(err) => err.into(),
            ToolsProblem::SigningSecretRequired => {
                ApiError::new(ErrorCode::SigningSecretRequired, problem.to_string())
            }
        }
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => payload_too_large(limit),
            JsonPayloadError::ContentType => ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON (Content-Type: application/json)",
            ),
            JsonPayloadError::Deserialize(err) if err.is_data() => ApiError::new(
                ErrorCode::InvalidBody,
                format!("the request body does not match the expected fields: {err}"),
            ),
            JsonPayloadError::Deserialize(err) => ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body is not valid JSON: {err}"),
            ),
            JsonPayloadError::Payload(PayloadError::Overflow) => {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            }
            JsonPayloadError::Payload(_) => {
                ApiError::new(ErrorCode::InvalidBody, "the request body could not be read")
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

impl From<QueryPayloadError> for ApiError {
    fn from(err: QueryPayloadError) -> Self {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("invalid query string: {err}"),
        )
    }
}

impl From<PathError> for ApiError {
    fn from(err: PathError) -> Self {
        ApiError::new(
            ErrorCode::InvalidPath,
            format!("invalid path parameter: {err}"),
        )
    }
}

/// A stored secret that does not decrypt: fail closed, say so plainly, log the detail.
pub(crate) fn credentials_unreadable(cause: String) -> ApiError {
    ApiError::new(
        ErrorCode::CredentialsUnreadable,
        "stored credentials cannot be decrypted with the configured master key",
    )
    .with_cause(cause)
}

/// The API error for a failed outbound request or hang-up.
impl From<OutboundError> for ApiError {
    fn from(err: OutboundError) -> Self {
        match err {
            OutboundError::Invalid(err) => err.into(),
            OutboundError::AssistantNotFound => ApiError::not_found("assistant not found"),
            OutboundError::Credential {
                credential,
                problem: CredentialProblem::Missing,
            } => ApiError::new(
                ErrorCode::MissingCredentials,
                format!("store your {credential} with PUT /api/me/credentials first"),
            ),
            OutboundError::Credential { credential, .. } => credentials_unreadable(format!(
                "{credential} does not decrypt with the configured master keys"
            )),
            OutboundError::ConcurrencyLimit { call_id, limit } => ApiError::new(
                ErrorCode::ConcurrencyLimit,
                format!(
                    "you already have {limit} live calls, your limit; call {} records the refusal",
                    call_id.to_hex()
                ),
            ),
            OutboundError::Teler { call_id, source } => {
                let (code, detail) = teler_error(&source);
                ApiError::new(
                    code,
                    format!("{detail}; call {} is marked failed", call_id.to_hex()),
                )
            }
            OutboundError::NotLive { status } => ApiError::new(
                ErrorCode::CallNotLive,
                format!("the call is {status}, not live"),
            ),
            OutboundError::NotPlacedYet => ApiError::new(
                ErrorCode::CallNotPlaced,
                "FreJun has not reported this call's id yet; try again in a moment",
            ),
            OutboundError::Storage(err) => err.into(),
        }
    }
}

impl From<TextError> for ApiError {
    fn from(error: TextError) -> Self {
        let code = match error.code {
            TextErrorCode::AuthFailed => ErrorCode::AiProviderAuthFailed,
            TextErrorCode::RateLimited
            | TextErrorCode::Unavailable
            | TextErrorCode::ConnectFailed => ErrorCode::AiProviderUnavailable,
            TextErrorCode::Timeout => ErrorCode::AiProviderTimeout,
            TextErrorCode::Rejected
            | TextErrorCode::InvalidResponse
            | TextErrorCode::RefusedAddress => ErrorCode::AiProviderRejected,
        };
        let mut api = ApiError::new(
            code,
            format!(
                "{} ({}, after {} attempt(s))",
                error.message,
                error.code.as_str(),
                error.attempts
            ),
        );
        if code == ErrorCode::AiProviderUnavailable {
            api.retry_after_secs = error.retry_after.map(|wait| wait.as_secs().max(1));
        }
        api
    }
}

impl From<Unavailable> for ApiError {
    fn from(problem: Unavailable) -> Self {
        match problem {
            Unavailable::NotConfigured(what) => ApiError::new(ErrorCode::TextAiNotConfigured, what),
            Unavailable::Unreadable => credentials_unreadable(
                "the text provider's key does not decrypt with the configured master keys"
                    .to_owned(),
            ),
        }
    }
}

impl From<ReanalyzeRefusal> for ApiError {
    fn from(refusal: ReanalyzeRefusal) -> Self {
        match refusal {
            ReanalyzeRefusal::NotFound => ApiError::not_found("call not found"),
            ReanalyzeRefusal::CallLive => ApiError::new(
                ErrorCode::CallStillLive,
                "the call has not ended; it is analysed when it does",
            ),
            ReanalyzeRefusal::NotEnabled => ApiError::new(
                ErrorCode::AnalysisNotEnabled,
                "the call's assistant has no analysis enabled: set its `analysis` first",
            ),
            ReanalyzeRefusal::Storage(err) => err.into(),
        }
    }
}

/// The code and message for a Teler failure. The codes are the ones the call log records in
/// `error.code` ([`crate::calls::outbound::teler_failure`]); a test keeps the two in step.
pub(crate) fn teler_error(err: &TelerError) -> (ErrorCode, String) {
    let detail = match err {
        TelerError::Unauthorized { .. } => {
            "FreJun refused your FreJun API key; update it with PUT /api/me/credentials".to_owned()
        }
        TelerError::NumberNotProvisioned { message } => {
            format!("FreJun says the from_number is not provisioned on your account: {message}")
        }
        TelerError::Validation {
            message, details, ..
        } => {
            if details.is_empty() {
                format!("FreJun refused the request: {message}")
            } else {
                format!(
                    "FreJun refused the request: {message} ({})",
                    details.join("; ")
                )
            }
        }
        TelerError::RateLimited { retry_after, .. } => match retry_after {
            Some(after) => format!("FreJun is rate limiting; retry after {} s", after.as_secs()),
            None => "FreJun is rate limiting; retry later".to_owned(),
        },
        TelerError::NotFound { message } | TelerError::Conflict { message, .. } => {
            format!("FreJun refused the request: {message}")
        }
        TelerError::Unavailable { .. } | TelerError::InvalidResponse { .. } => {
            "FreJun is unavailable; try again later".to_owned()
        }
        TelerError::Timeout => {
            "FreJun did not answer in time; if the call connects anyway it is hung up".to_owned()
        }
    };
    let code = match err {
        TelerError::Unauthorized { .. } => ErrorCode::FrejunKeyInvalid,
        TelerError::NumberNotProvisioned { .. } => ErrorCode::FromNumberNotProvisioned,
        TelerError::Validation { .. } => ErrorCode::TelephonyValidationFailed,
        TelerError::RateLimited { .. } => ErrorCode::TelephonyRateLimited,
        TelerError::NotFound { .. } | TelerError::Conflict { .. } => ErrorCode::TelephonyRejected,
        TelerError::Unavailable { .. } | TelerError::InvalidResponse { .. } => {
            ErrorCode::TelephonyUnavailable
        }
        TelerError::Timeout => ErrorCode::TelephonyTimeout,
    };
    (code, detail)
}

pub(crate) fn path_error_handler(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

// Error answers shared by many operations, as reusable responses. Operation-specific ones
// (404, 409, …) are written at the operation with their own description.

/// Missing or invalid admin token (`unauthorized`).
#[derive(ToResponse)]
pub struct AdminUnauthorized(pub ErrorEnvelope);

/// Missing or malformed credentials (`unauthorized`), an unknown API key (`invalid_api_key`) or a
/// revoked one (`api_key_revoked`).
#[derive(ToResponse)]
pub struct TenantUnauthorized(pub ErrorEnvelope);

/// The tenant is suspended (`tenant_suspended`).
#[derive(ToResponse)]
pub struct TenantSuspended(pub ErrorEnvelope);

/// Live control of a call no instance is bridging (`call_not_live`).
#[derive(ToResponse)]
pub struct CallNotLive(pub ErrorEnvelope);

/// Live control of a call whose instance did not answer in time (`owner_not_responding`); the
/// request was withdrawn.
#[derive(ToResponse)]
pub struct OwnerNotResponding(pub ErrorEnvelope);

/// The database is unavailable (`database_unavailable`); try again shortly.
#[derive(ToResponse)]
pub struct DatabaseUnavailable(pub ErrorEnvelope);

/// Unknown or malformed query parameter (`invalid_query`) or a cursor this API did not return
/// (`invalid_cursor`).
#[derive(ToResponse)]
pub struct InvalidQuery(pub ErrorEnvelope);

/// The body is not valid JSON (`invalid_json`) or could not be read (`invalid_body`).
#[derive(ToResponse)]
pub struct InvalidJson(pub ErrorEnvelope);

/// The body is larger than the configured limit (`payload_too_large`).
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorEnvelope);

/// The body is not `application/json` (`unsupported_media_type`).
#[derive(ToResponse)]
pub struct UnsupportedMediaType(pub ErrorEnvelope);

/// The body has an unknown, missing or mistyped field (`invalid_body`), or a value breaks a rule
/// (`validation_failed`; the message starts with the field's name).
#[derive(ToResponse)]
pub struct InvalidBody(pub ErrorEnvelope);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::calls::outbound::teler_failure;

    /// The API answers a Teler failure with the same code the call log records for it.
    #[test]
    fn teler_codes_match_the_call_log_codes() {
        let failures = [
            TelerError::Unauthorized {
                status: 401,
                message: "no".into(),
            },
            TelerError::NumberNotProvisioned {
                message: "no".into(),
            },
            TelerError::Validation {
                status: 422,
                message: "no".into(),
                details: vec![],
            },
            TelerError::RateLimited {
                message: "slow".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
            TelerError::NotFound {
                message: "gone".into(),
            },
            TelerError::Conflict {
                code: None,
                message: "busy".into(),
            },
            TelerError::Unavailable {
                status: Some(503),
                message: "down".into(),
            },
            TelerError::InvalidResponse {
                status: 200,
                message: "odd".into(),
            },
            TelerError::Timeout,
        ];
        for failure in failures {
            let (code, _) = teler_error(&failure);
            assert_eq!(code.as_str(), teler_failure(&failure).1, "{failure:?}");
        }
    }
}
