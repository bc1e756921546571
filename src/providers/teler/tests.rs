//! The Teler client's URL building and its reading of FreJun's answers: initiate answers,
//! every error shape and status, and key redaction in messages.

use super::*;
use serde_json::json;

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn base_url_gets_a_trailing_slash_and_paths_are_appended() {
    for base in [
        "https://api.frejun.ai/api/v1",
        "https://api.frejun.ai/api/v1/",
    ] {
        let client = TelerClient::new(base.parse().unwrap(), Duration::from_secs(10));
        assert_eq!(
            client
                .endpoint(&["voice", "calls", "initiate"])
                .unwrap()
                .as_str(),
            "https://api.frejun.ai/api/v1/voice/calls/initiate"
        );
        assert_eq!(
            client
                .endpoint(&["voice", "calls", "a/b c?", "hangup"])
                .unwrap()
                .as_str(),
            "https://api.frejun.ai/api/v1/voice/calls/a%2Fb%20c%3F/hangup"
        );
    }
}

#[test]
fn initiate_answer_with_data_envelope() {
    let answer = body(json!({
        "message": "Call initiated successfully",
        "data": {"id": "cs_01JQ8Z6YH0A2B3C4D5E6F7G8H9", "from_number": "+14155550100",
                 "to_number": "+14155550199", "record": true}
    }));
    assert_eq!(
        parse_initiated(&answer),
        Ok(InitiatedCall {
            id: "cs_01JQ8Z6YH0A2B3C4D5E6F7G8H9".into(),
            message: Some("Call initiated successfully".into()),
        })
    );
}

#[test]
fn initiate_answer_variants() {
    let top_level = parse_initiated(&body(json!({
        "id": "0b7c3f0e-8d3e-4c55-9a39-6f1f5a0c1d2e", "status": "queued"
    })))
    .unwrap();
    assert_eq!(top_level.id, "0b7c3f0e-8d3e-4c55-9a39-6f1f5a0c1d2e");
    assert_eq!(top_level.message, None);

    let numeric = parse_initiated(&body(json!({"data": {"id": 12345}}))).unwrap();
    assert_eq!(numeric.id, "12345");

    let null_data = parse_initiated(&body(json!({"data": null, "id": "cs_X"}))).unwrap();
    assert_eq!(null_data.id, "cs_X");

    let id_beside_data =
        parse_initiated(&body(json!({"data": {"record": true}, "id": "cs_Y"}))).unwrap();
    assert_eq!(id_beside_data.id, "cs_Y");
}

#[test]
fn initiate_answers_without_a_usable_id_are_refused() {
    for answer in [
        b"ok".to_vec(),
        Vec::new(),
        body(json!([1, 2])),
        body(json!({"message": "Call initiated successfully"})),
        body(json!({"data": {"id": ""}})),
        body(json!({"data": {"id": null}})),
        body(json!({"data": {"id": "a\nb"}})),
        body(json!({"data": {"id": "x".repeat(MAX_ID_CHARS + 1)}})),
        body(json!({"success": false, "data": {"id": "cs_1"}})),
    ] {
        assert!(
            parse_initiated(&answer).is_err(),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}

#[test]
fn forbidden_envelope_is_unauthorized() {
    let err = error_from_response(
        403,
        None,
        &body(json!({"success": false, "message": "Invalid API Key."})),
    );
    match err {
        TelerError::Unauthorized { status, message } => {
            assert_eq!(status, 403);
            assert_eq!(message, "Invalid API Key.");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        error_from_response(401, None, b""),
        TelerError::Unauthorized { status: 401, .. }
    ));
}

#[test]
fn validation_errors_envelope() {
    let err = error_from_response(
        422,
        None,
        &body(json!({
            "success": false,
            "message": "Validation Error",
            "errors": [
                {"loc": ["body", "to_number"], "msg": "String should match pattern", "type": "value_error"},
                {"loc": ["body", "legs", 0, "id"], "msg": "Field required", "type": "missing"}
            ]
        })),
    );
    match &err {
        TelerError::Validation {
            status,
            message,
            details,
        } => {
            assert_eq!(*status, 422);
            assert_eq!(message, "Validation Error");
            assert_eq!(
                details,
                &[
                    "to_number: String should match pattern".to_owned(),
                    "legs.0.id: Field required".to_owned()
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "Teler rejected the request (HTTP 422): Validation Error: \
         to_number: String should match pattern; legs.0.id: Field required"
    );
}

#[test]
fn validation_fastapi_detail_shapes() {
    let list = error_from_response(
        422,
        None,
        &body(json!({"detail": [
            {"loc": ["body", "from_number"], "msg": "Field required", "type": "missing"},
            {"loc": ["query", "limit"], "msg": "too big", "type": "value_error"},
            {"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}
        ]})),
    );
    match list {
        TelerError::Validation {
            message, details, ..
        } => {
            assert_eq!(message, "HTTP 422 from Teler");
            assert_eq!(
                details,
                [
                    "from_number: Field required",
                    "query.limit: too big",
                    "JSON decode error"
                ]
            );
        }
        other => panic!("{other:?}"),
    }

    let text = error_from_response(422, None, &body(json!({"detail": "Bad body"})));
    match &text {
        TelerError::Validation {
            message, details, ..
        } => {
            assert_eq!(message, "Bad body");
            assert_eq!(details, &["Bad body".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    // A lone detail equal to the message is not repeated.
    assert_eq!(
        text.to_string(),
        "Teler rejected the request (HTTP 422): Bad body"
    );
}

#[test]
fn not_provisioned_code_is_recognised_on_any_4xx() {
    for status in [400, 403, 409, 422] {
        let err = error_from_response(
            status,
            None,
            &body(json!({
                "success": false,
                "message": "The from number is not provisioned",
                "code": "from_number_not_provisioned",
                "type": "invalid_request"
            })),
        );
        assert!(
            matches!(&err, TelerError::NumberNotProvisioned { message } if message == "The from number is not provisioned"),
            "{status}: {err:?}"
        );
    }
    // Not on a 5xx: the server failed, whatever the body says.
    assert!(matches!(
        error_from_response(
            500,
            None,
            &body(json!({"code": "from_number_not_provisioned"}))
        ),
        TelerError::Unavailable {
            status: Some(500),
            ..
        }
    ));
    // Another 400 code is a plain validation error.
    assert!(matches!(
        error_from_response(400, None, &body(json!({"message": "bad", "code": "other"}))),
        TelerError::Validation { status: 400, .. }
    ));
}

#[test]
fn other_statuses() {
    let conflict = error_from_response(
        409,
        None,
        &body(json!({
            "success": false, "message": "Call is not live",
            "code": "call_not_live", "type": "invalid_state"
        })),
    );
    assert!(
        matches!(&conflict, TelerError::Conflict { code: Some(code), message } if code == "call_not_live" && message == "Call is not live")
    );
    assert!(matches!(
        error_from_response(404, None, &body(json!({"message": "Call not found"}))),
        TelerError::NotFound { message } if message == "Call not found"
    ));
    assert!(matches!(
        error_from_response(429, Some(" 7 "), b""),
        TelerError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)
    ));
    assert!(matches!(
        error_from_response(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b""),
        TelerError::RateLimited {
            retry_after: None,
            ..
        }
    ));
    let bad_gateway = error_from_response(502, None, b"<html>Bad Gateway</html>");
    assert!(
        matches!(&bad_gateway, TelerError::Unavailable { status: Some(502), message } if message == "HTTP 502 from Teler")
    );
    assert_eq!(bad_gateway.status(), Some(502));
    assert!(matches!(
        error_from_response(410, None, b""),
        TelerError::InvalidResponse { status: 410, .. }
    ));
    assert!(matches!(
        error_from_response(302, None, b""),
        TelerError::InvalidResponse { status: 302, .. }
    ));
}

#[test]
fn messages_are_clipped_and_single_line() {
    let long = "é".repeat(1000);
    let err = error_from_response(500, None, &body(json!({"message": long})));
    match err {
        TelerError::Unavailable { message, .. } => {
            assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(clip("  a\nb\r\tc  "), "a b  c");
    let many: Vec<Value> = (0..100)
        .map(|i| json!({"loc": ["body", i], "msg": "x"}))
        .collect();
    match error_from_response(422, None, &body(json!({ "errors": many }))) {
        TelerError::Validation { details, .. } => assert_eq!(details.len(), MAX_DETAILS),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nested_error_object_is_read() {
    let err = error_from_response(
        409,
        None,
        &body(json!({"error": {"message": "busy", "code": "transfer_in_progress"}})),
    );
    assert!(
        matches!(&err, TelerError::Conflict { code: Some(code), message } if code == "transfer_in_progress" && message == "busy")
    );
}

#[test]
fn an_echoed_api_key_is_redacted() {
    let key = "tk_live_supersecret";
    let err = error_from_response(
        422,
        None,
        &body(json!({
            "message": format!("Invalid API Key {key}"),
            "errors": [{"loc": ["header"], "msg": format!("bad {key}")}]
        })),
    )
    .redact(key);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains(REDACTED));
}

#[test]
fn status_of_each_variant() {
    assert_eq!(TelerError::Timeout.status(), None);
    assert_eq!(
        TelerError::Unavailable {
            status: None,
            message: String::new()
        }
        .status(),
        None
    );
    assert_eq!(
        TelerError::NumberNotProvisioned {
            message: String::new()
        }
        .status(),
        Some(400)
    );
    assert_eq!(
        TelerError::Conflict {
            code: None,
            message: String::new()
        }
        .status(),
        Some(409)
    );
}

#[test]
fn an_error_echoing_our_flow_url_does_not_carry_the_url_secret() {
    let body = br#"{"detail":[{"loc":["body","flow_url"],"msg":"unreachable: https://vb.example/api/frejun/flow?key=URLSECRET123&call=abc","type":"value_error"}]}"#;
    let err = error_from_response(422, None, body).redact("sk_api_key");
    let text = format!("{err:?} {err}");
    assert!(!text.contains("URLSECRET123"), "{text}");
    assert!(text.contains("key=[redacted]"), "{text}");
}

#[test]
fn a_call_is_read_from_the_envelope_or_bare() {
    let call = parse_call(&body(json!({"data": {
        "id": "cs_1", "state": "Completed", "answered_at": "2026-12-01T10:00:00Z",
        "ended_at": "2026-12-01T10:01:00Z", "reason": "normal_clearing"
    }})))
    .unwrap();
    assert_eq!(call.state, "completed");
    assert!(call.answered && call.ended());
    assert_eq!(call.reason.as_deref(), Some("normal_clearing"));
    let live = parse_call(&body(
        json!({"id": "cs_2", "state": "ringing", "answered_at": null}),
    ))
    .unwrap();
    assert!(!live.answered && !live.ended());
    assert!(parse_call(&body(json!({"data": {"id": "cs_3"}}))).is_err());
    assert!(parse_call(b"not json").is_err());
}
