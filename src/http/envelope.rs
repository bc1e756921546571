//! The JSON envelope of the product's API: `{"success":true,"data":…}` for answers (lists add
//! `count` and `next_cursor`) and `{"success":false,"error":{"code","message"}}` for errors.
//! FreJun-facing answers (flow, webhook acknowledgement, FreJun health) are bare JSON and do not
//! use it.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

/// 200 with `{"success":true,"data":data}`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::OK, data)
}

/// 201 with `{"success":true,"data":data}`.
pub fn created<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::CREATED, data)
}

/// 200 with a page of a list: `{"success":true,"data":[…],"count":n,"next_cursor":…}`.
/// `next_cursor` is `null` on the last page.
pub fn list<T: Serialize>(items: Vec<T>, next_cursor: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "success": true,
        "count": items.len(),
        "data": items,
        "next_cursor": next_cursor,
    }))
}

fn with_status<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "success": true, "data": data }))
}

/// The error body. Kept in one place so every error path writes the same shape.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "success": false, "error": { "code": code, "message": message } })
}
