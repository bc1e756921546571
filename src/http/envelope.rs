//! The JSON envelope of the product's API: `{"success":true,"data":…}` for answers (lists add
//! `count` and `next_cursor`; an answer with something the client should act on adds
//! `warnings`) and `{"success":false,"error":{"code","message"}}` for errors.
//! FreJun-facing answers (flow, webhook acknowledgement, FreJun health) are bare JSON and do not
//! use it.
//!
//! [`Envelope`], [`ListEnvelope`] and [`ErrorEnvelope`] describe these shapes for the OpenAPI
//! document; the tests below check that they serialize exactly as the functions here write.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// 200 with `{"success":true,"data":data}`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::OK, data)
}

/// 201 with `{"success":true,"data":data}`.
pub(crate) fn created<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::CREATED, data)
}

/// 202 with `{"success":true,"data":data}`: the work is queued.
pub(crate) fn accepted<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::ACCEPTED, data)
}

/// 200 with a page of a list: `{"success":true,"data":[…],"count":n,"next_cursor":…}`.
/// `next_cursor` is `null` on the last page.
pub(crate) fn list<T: Serialize>(items: Vec<T>, next_cursor: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "success": true,
        "count": items.len(),
        "data": items,
        "next_cursor": next_cursor,
    }))
}

/// 200 or 201 (`status`) with `{"success":true,"data":data,"warnings":[…]}`; without warnings
/// it is exactly [`ok`] or [`created`].
pub(crate) fn with_warnings<T: Serialize>(
    status: StatusCode,
    data: T,
    warnings: Vec<Warning>,
) -> HttpResponse {
    if warnings.is_empty() {
        return with_status(status, data);
    }
    HttpResponse::build(status).json(json!({ "success": true, "data": data, "warnings": warnings }))
}

fn with_status<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "success": true, "data": data }))
}

/// Something about a successful answer the client should act on (the request did what it
/// asked). `code` is stable and meant for programs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Warning {
    /// Stable snake_case code, such as `model_retiring`.
    pub code: &'static str,
    /// The request field it concerns, such as `model`.
    pub field: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// The error body. Kept in one place so every error path writes the same shape.
pub(crate) fn error_body(code: &str, message: &str) -> Value {
    json!({ "success": false, "error": { "code": code, "message": message } })
}

/// A successful answer: `data` holds the result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
    /// Present only when there is something to act on (see docs/api.md, "Warnings").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// One page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListEnvelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: Vec<T>,
    /// Number of items in `data` (this page, not the whole list).
    pub count: usize,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An error answer. `code` is stable and meant for programs; `message` is for people.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": false,
    "error": { "code": "not_found", "message": "user not found" }
}))]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, such as `unauthorized`, `not_found` or `validation_failed`.
    pub code: String,
    /// Human-readable detail; for validation errors it starts with the field name.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;

    use super::*;

    fn body_of(response: HttpResponse) -> Value {
        let bytes = response
            .into_body()
            .try_into_bytes()
            .expect("a complete body");
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    fn documented<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).expect("serializable")
    }

    #[test]
    fn documented_envelopes_match_what_is_written() {
        let data = json!({ "id": "x", "n": 1 });

        let written = body_of(ok(data.clone()));
        assert_eq!(
            written,
            documented(&Envelope {
                success: true,
                data: data.clone(),
                warnings: Vec::new(),
            })
        );
        assert_eq!(body_of(created(data.clone())), written);
        assert_eq!(
            body_of(with_warnings(StatusCode::OK, data.clone(), Vec::new())),
            written
        );
        let warning = Warning {
            code: "model_retiring",
            field: "model",
            message: "m".to_owned(),
        };
        assert_eq!(
            body_of(with_warnings(
                StatusCode::CREATED,
                data.clone(),
                vec![warning.clone()]
            )),
            documented(&Envelope {
                success: true,
                data: data.clone(),
                warnings: vec![warning],
            })
        );

        for next_cursor in [None, Some("abc".to_owned())] {
            let written = body_of(list(vec![data.clone(), data.clone()], next_cursor.clone()));
            assert_eq!(
                written,
                documented(&ListEnvelope {
                    success: true,
                    data: vec![data.clone(), data.clone()],
                    count: 2,
                    next_cursor,
                })
            );
        }

        assert_eq!(
            error_body("not_found", "no such route"),
            documented(&ErrorEnvelope {
                success: false,
                error: ErrorBody {
                    code: "not_found".to_owned(),
                    message: "no such route".to_owned(),
                },
            })
        );
    }
}
