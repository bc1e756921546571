//! Request body and query extractors for the product's API.
//!
//! Two differences from actix's `web::Json` and `web::Query`:
//! - **They never fail during extraction.** actix polls all of a handler's extractors together
//!   and answers with the first failure, so a body error would beat the `Tenant` check that is
//!   still waiting on the database. These hold their outcome instead, and the handler takes the
//!   value with `into_inner()?`, which runs only after every extractor (authentication
//!   included) succeeded.
//! - **Errors name the field**, also for wrong types and unknown enum values (through
//!   `serde_path_to_error`): `audio.codec: unknown variant "opus", expected pcm24k or pcmu`.
//!
//! Bodies: JSON `Content-Type` (415 otherwise), at most `server.json_body_limit_bytes` (413),
//! valid JSON (400 `invalid_json`), the right shape (422 `invalid_body`). An empty body is read
//! as `null`, so `Json<Option<T>>` accepts a request without a body.

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::error::ErrorCode;
use crate::storage::pagination::PageRequest;
use std::str::FromStr;

use crate::domain::ids::ParseIdError;

/// A JSON request body; see the module documentation.
pub struct Json<T>(Result<T, ApiError>);

impl<T> Json<T> {
    /// The parsed body, or the error to answer with.
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(1024 * 1024, |state| {
                state.shared.settings.server.json_body_limit_bytes
            });
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        let declared_length = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let outcome = async {
                if declared_length.is_some_and(|length| length > limit) {
                    return Err(payload_too_large(limit));
                }
                let mut body = web::BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|_| {
                        ApiError::new(
                            ErrorCode::UnreadableBody,
                            "the request body could not be read",
                        )
                    })?;
                    if body.len() + chunk.len() > limit {
                        return Err(payload_too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                if body.is_empty() {
                    return parse_json(b"null").map_err(|_| {
                        ApiError::new(
                            ErrorCode::InvalidJson,
                            "the request body is empty; send a JSON object",
                        )
                    });
                }
                if is_json != Some(true) {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        "the request body must be JSON (Content-Type: application/json)",
                    ));
                }
                parse_json(&body)
            }
            .await;
            Ok(Json(outcome))
        })
    }
}

fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// Parses JSON into `T`; on failure the message carries the path of the offending field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid_json = |err: serde_json::Error| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body is not valid JSON: {err}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            ApiError::new(ErrorCode::InvalidBody, with_path(&path, &inner.to_string()))
        } else {
            invalid_json(inner)
        }
    })?;
    // Anything after the value (`{…} extra`) makes the body invalid JSON.
    deserializer.end().map_err(invalid_json)?;
    Ok(value)
}

/// Query-string parameters; see the module documentation.
pub(crate) struct Query<T>(Result<T, ApiError>);

impl<T> Query<T> {
    pub(crate) fn into_inner(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = web::Query::<T>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .map_err(|err| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("invalid query string: {err}"),
                )
            });
        std::future::ready(Ok(Query(parsed)))
    }
}

/// `audio.codec: unknown variant …`; no prefix for the top level, nor when the message already
/// starts with the path (the domain's own messages do).
fn with_path(path: &str, message: &str) -> String {
    if path == "." || path.is_empty() || message.starts_with(&format!("{path}:")) {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// Path ids that do not parse name nothing that exists: 404, like any unknown id.
pub(crate) fn parse_id<Id>(text: &str, what: &str) -> Result<Id, ApiError>
where
    Id: FromStr<Err = ParseIdError>,
{
    text.parse()
        .map_err(|_| ApiError::not_found(format!("{what} not found")))
}

/// Pagination of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Items per page: default 50; values outside 1 to 200 are clamped.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

impl ListQuery {
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        PageRequest::new(self.limit, self.cursor.as_deref()).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "cursor is not one this API returned",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Fields are read by the deserializer only.
    struct Outer {
        name: String,
        audio: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        codec: Codec,
        chunk_ms: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Codec {
        Pcmu,
    }

    fn message(json: &str) -> (String, String) {
        let err = parse_json::<Outer>(json.as_bytes()).unwrap_err();
        (err.code().as_str().to_owned(), err.to_string())
    }

    #[test]
    fn shape_errors_name_the_field() {
        let (code, text) = message(r#"{"name":"a","audio":{"codec":"opus","chunk_ms":20}}"#);
        assert_eq!(code, "invalid_body");
        assert!(
            text.contains("audio.codec: unknown variant `opus`"),
            "{text}"
        );

        let (_, text) = message(r#"{"name":5,"audio":{"codec":"pcmu","chunk_ms":20}}"#);
        assert!(text.contains("name: invalid type"), "{text}");

        let (_, text) = message(r#"{"name":"a","audio":{"codec":"pcmu","chunk_ms":-1}}"#);
        assert!(text.contains("audio.chunk_ms: invalid value"), "{text}");

        let (_, text) = message(r#"{"name":"a","audio":{"codec":"pcmu","chunk_ms":20,"x":1}}"#);
        assert!(text.contains("audio.x: unknown field `x`"), "{text}");
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_invalid_json() {
        assert_eq!(message(r#"{"name":"#).0, "invalid_json");
        assert_eq!(
            message(r#"{"name":"a","audio":{"codec":"pcmu","chunk_ms":20}} extra"#).0,
            "invalid_json"
        );
    }
}
