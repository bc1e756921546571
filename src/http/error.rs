//! [`ApiError`]: the one error type of the HTTP layer. It carries a stable snake_case code and a
//! client-safe message, and builds its own response body (actix's default would print the
//! error's `Display`, which may hold internal detail). The underlying cause goes to the log only.

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::envelope::error_body;
use crate::domain::validation::ValidationError;
use crate::storage::StorageError;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For the log, never for the client.
    cause: Option<Cause>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// Attaches the underlying error, which is logged (for 5xx answers) but not shown.
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    pub fn database_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            message,
        )
    }

    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the request id in the x-request-id header identifies it in our logs",
        )
        .with_cause(cause)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => {
                    tracing::error!(code = self.code, error = %ErrorChain(cause.as_ref()), "request failed")
                }
                None => {
                    tracing::error!(code = self.code, message = %self.message, "request failed")
                }
            }
        }
        HttpResponse::build(self.status).json(error_body(self.code, &self.message))
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => ApiError::not_found("not found"),
            StorageError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "conflicts with an existing resource",
            ),
            StorageError::Unavailable(_) => {
                ApiError::database_unavailable("the database is unavailable; try again shortly")
                    .with_cause(err)
            }
            StorageError::Backend(_) => ApiError::internal(err),
        }
    }
}

/// Maps a storage error, naming the missing resource: `.map_err(not_found_as("assistant"))`
/// answers 404 "assistant not found" (for a foreign id too), anything else as usual.
pub fn not_found_as(what: &'static str) -> impl Fn(StorageError) -> ApiError {
    move |err| match err {
        StorageError::NotFound => ApiError::not_found(format!("{what} not found")),
        other => other.into(),
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            err.to_string(),
        )
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => payload_too_large(limit),
            JsonPayloadError::ContentType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ),
            JsonPayloadError::Deserialize(err) if err.is_data() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the request body does not match the expected fields: {err}"),
            ),
            JsonPayloadError::Deserialize(err) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {err}"),
            ),
            JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ),
            JsonPayloadError::Payload(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body could not be read",
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

impl From<QueryPayloadError> for ApiError {
    fn from(err: QueryPayloadError) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("invalid query string: {err}"),
        )
    }
}

impl From<PathError> for ApiError {
    fn from(err: PathError) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("invalid path parameter: {err}"),
        )
    }
}

/// Error handlers for actix's extractor configurations, so extractor failures use the envelope.
pub fn json_error_handler(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

pub fn query_error_handler(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

pub fn path_error_handler(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::from(err).into()
}

/// Displays an error with its whole `source()` chain on one line, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
