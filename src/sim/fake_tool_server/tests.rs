//! The fake against requests signed the way voxbridge signs them: accepted ones, refused ones
//! (tampered, stale, wrong key, unsigned, no secret), the published test vector, shape checks
//! and every route's answer.

use super::*;
use crate::outbound::signing::{TOLERANCE_SECS, signature_header};

/// The worked example of docs/protocols.md §6.4.
const VECTOR_SECRET: &str = "whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMSE=";
const VECTOR_SECOND_SECRET: &str = "whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMiE=";
const VECTOR_ID: &str = "msg_2vXbT9kQ4mZ7pL1cR8sN3wY6hJd";
const VECTOR_TIMESTAMP: i64 = 1_767_225_600;
const VECTOR_BODY: &[u8] = br#"{"type":"call.ended","timestamp":"2026-01-01T00:00:00Z","data":{"call_id":"call_7f3a9c","end_reason":"caller_hung_up","duration_s":42}}"#;
const VECTOR_SIGNATURE: &str = "v1,Z7Sb6aQxw5D4n3LpxHgacLweeRQejZm9qqlMmawIcA0=";

const MESSAGE_ID: &str = "msg_fake_tool_1";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Redirects are the code under test's business; here they are asserted on.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A well-formed tool request body, as voxbridge sends during an inbound call.
fn tool_body(tool: &str, arguments: Value) -> Value {
    json!({
        "tool": tool,
        "arguments": arguments,
        "tool_call_id": "call_abc123",
        "call": {
            "id": "vb_call_1",
            "assistant_id": "asst_1",
            "from": "+14155550123",
            "to": "+918000000001",
            "direction": "inbound",
        },
    })
}

/// POSTs `body` to `url` signed with `secret` at `timestamp`; `sent` replaces the body after
/// signing (to tamper with it) when given.
async fn post_signed(
    url: &str,
    secret: &SigningSecret,
    body: &[u8],
    timestamp: i64,
    sent: Option<&[u8]>,
) -> reqwest::Response {
    client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", MESSAGE_ID)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            secret.sign(MESSAGE_ID, timestamp, body),
        )
        .body(sent.unwrap_or(body).to_vec())
        .send()
        .await
        .unwrap()
}

/// POSTs `body` as JSON to `path`, correctly signed now.
async fn post_json(
    fake: &FakeToolServer,
    secret: &SigningSecret,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let body = serde_json::to_vec(body).unwrap();
    post_signed(&fake.url(path), secret, &body, unix_now(), None).await
}

/// A fake with a fresh secret set, as a test has after creating the tenant's tool.
async fn started() -> (FakeToolServer, SigningSecret) {
    let fake = FakeToolServer::start().await.unwrap();
    let secret = SigningSecret::generate();
    fake.set_secret(Some(secret.clone()));
    (fake, secret)
}

#[tokio::test]
async fn a_signed_request_is_answered_and_recorded_as_valid() {
    let (fake, secret) = started().await;
    let body = tool_body("lookup_order", json!({"order_id": "A-1001"}));

    let response = post_json(&fake, &secret, "/orders/lookup", &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"order_id": "A-1001", "status": "shipped", "carrier": "DHL", "eta": "2026-12-09"})
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let record = &requests[0];
    assert!(record.signature_valid, "{record:?}");
    assert_eq!(record.signature_error, None);
    assert_eq!(record.shape_errors, Vec::<String>::new());
    assert_eq!(record.method, "POST");
    assert_eq!(record.path, "/orders/lookup");
    assert_eq!(record.body, body);
    assert_eq!(record.header("Webhook-Id"), Some(MESSAGE_ID));
    assert!(record.headers.contains_key("webhook-signature"));
    assert!(record.headers.contains_key("host"), "all headers are kept");
    fake.stop().await;
}

#[tokio::test]
async fn orders_come_from_the_table_and_unknown_ones_are_404() {
    let (fake, secret) = started().await;
    let lookup = |id: &str| tool_body("lookup_order", json!({ "order_id": id }));

    let processing = post_json(&fake, &secret, "/orders/lookup", &lookup("A-1002")).await;
    assert_eq!(processing.status(), 200);
    assert_eq!(
        processing.json::<Value>().await.unwrap()["status"],
        "processing"
    );

    let unknown = post_json(&fake, &secret, "/orders/lookup", &lookup("B-7")).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap(),
        json!({"error": "no such order"})
    );

    fake.add_order("B-7", "delivered");
    let added = post_json(&fake, &secret, "/orders/lookup", &lookup("B-7")).await;
    assert_eq!(added.status(), 200);
    assert_eq!(
        added.json::<Value>().await.unwrap(),
        json!({"order_id": "B-7", "status": "delivered", "carrier": "DHL", "eta": "2026-12-09"})
    );

    let no_id = tool_body("lookup_order", json!({}));
    let refused = post_json(&fake, &secret, "/orders/lookup", &no_id).await;
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn tampered_stale_and_wrongly_keyed_requests_are_refused_and_recorded() {
    let (fake, secret) = started().await;
    let url = fake.url("/echo");
    let body = serde_json::to_vec(&tool_body("echo", json!({"n": 1}))).unwrap();
    let tampered = serde_json::to_vec(&tool_body("echo", json!({"n": 2}))).unwrap();
    let now = unix_now();

    let responses = [
        post_signed(&url, &secret, &body, now, Some(&tampered)).await,
        post_signed(&url, &secret, &body, now - TOLERANCE_SECS - 60, None).await,
        post_signed(&url, &SigningSecret::generate(), &body, now, None).await,
        // No signature headers at all.
        client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    ];

    for response in responses {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"error": "invalid signature"})
        );
    }
    let requests = fake.requests();
    let reasons: Vec<_> = requests
        .iter()
        .map(|record| {
            assert!(!record.signature_valid, "{record:?}");
            record.signature_error.clone().unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "no v1 signature matches",
            "the webhook-timestamp is more than five minutes from now",
            "no v1 signature matches",
            "the webhook-id header is missing",
        ]
    );
    // Refused requests are recorded as sent, tampered body included.
    assert_eq!(
        requests[0].body,
        serde_json::from_slice::<Value>(&tampered).unwrap()
    );
}

#[tokio::test]
async fn without_a_secret_every_request_is_refused() {
    let fake = FakeToolServer::start().await.unwrap();
    let secret = SigningSecret::generate();
    let body = tool_body("lookup_order", json!({"order_id": "A-1001"}));

    let before = post_json(&fake, &secret, "/orders/lookup", &body).await;
    fake.set_secret(Some(secret.clone()));
    let accepted = post_json(&fake, &secret, "/orders/lookup", &body).await;
    fake.set_secret(None);
    let after = post_json(&fake, &secret, "/orders/lookup", &body).await;

    assert_eq!(
        [before.status(), accepted.status(), after.status()],
        [401, 200, 401]
    );
    let requests = fake.requests();
    assert_eq!(
        requests[0].signature_error.as_deref(),
        Some("no signing secret is set on the fake")
    );
    assert_eq!(
        requests
            .iter()
            .map(|record| record.signature_valid)
            .collect::<Vec<_>>(),
        [false, true, false]
    );
}

#[test]
fn the_verifier_accepts_the_published_worked_example() {
    let secret = SigningSecret::parse(VECTOR_SECRET).unwrap();
    let second = SigningSecret::parse(VECTOR_SECOND_SECRET).unwrap();
    let headers = |signature: &str| -> BTreeMap<String, String> {
        [
            ("webhook-id", VECTOR_ID),
            ("webhook-timestamp", "1767225600"),
            ("webhook-signature", signature),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    };

    assert_eq!(
        check_signature(
            Some(&secret),
            &headers(VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TIMESTAMP
        ),
        Ok(())
    );
    // During a rotation the header carries both entries; the tenant's old secret still matches.
    let rotation = signature_header(
        &[&second, &secret],
        VECTOR_ID,
        VECTOR_TIMESTAMP,
        VECTOR_BODY,
    );
    assert_eq!(
        check_signature(
            Some(&secret),
            &headers(&rotation),
            VECTOR_BODY,
            VECTOR_TIMESTAMP + 10
        ),
        Ok(())
    );
    // The same vector checked at a later time is stale, and the classic bug (HMAC keyed with
    // the literal `whsec_…` text) does not verify.
    assert!(
        check_signature(
            Some(&secret),
            &headers(VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TIMESTAMP + TOLERANCE_SECS + 1
        )
        .unwrap_err()
        .contains("five minutes")
    );
    let literal_key = "v1,i+h274qnFARutJ/nGB/U+MnMJ1GCYfwvDovzd5y5cf8=";
    assert_eq!(
        check_signature(
            Some(&secret),
            &headers(literal_key),
            VECTOR_BODY,
            VECTOR_TIMESTAMP
        ),
        Err("no v1 signature matches".to_owned())
    );
}

#[tokio::test]
async fn redirect_answers_302_to_the_order_lookup() {
    let (fake, secret) = started().await;

    let response = post_json(
        &fake,
        &secret,
        "/redirect",
        &tool_body("lookup_order", json!({})),
    )
    .await;

    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/orders/lookup");
    assert_eq!(fake.requests().len(), 1, "the client did not follow it");
}

#[tokio::test]
async fn slow_sleeps_at_least_the_requested_time() {
    let (fake, secret) = started().await;
    let started_at = Instant::now();

    let response = post_json(
        &fake,
        &secret,
        "/slow?ms=200",
        &tool_body("wait", json!({})),
    )
    .await;

    assert!(started_at.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": true, "slept_ms": 200})
    );
    let record = &fake.requests()[0];
    assert_eq!(
        (record.path.as_str(), record.query.as_str()),
        ("/slow", "ms=200")
    );
}

#[tokio::test]
async fn a_body_without_tool_call_id_is_reported_and_refused() {
    let (fake, secret) = started().await;
    let mut body = tool_body("lookup_order", json!({"order_id": "A-1001"}));
    body.as_object_mut().unwrap().remove("tool_call_id");

    let response = post_json(&fake, &secret, "/orders/lookup", &body).await;

    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "malformed tool request", "problems": ["`tool_call_id` is missing"]})
    );
    let record = &fake.requests()[0];
    assert!(record.signature_valid);
    assert_eq!(record.shape_errors, ["`tool_call_id` is missing"]);
}

#[test]
fn shape_problems_name_the_field() {
    let json = Some("application/json; charset=utf-8");
    let check = |body: &Value| check_shape(json, &serde_json::to_vec(body).unwrap());

    // A test run from the API belongs to no call and may not know the numbers.
    let mut test_run = tool_body("lookup_order", json!({}));
    test_run["call"] = json!({
        "id": null, "assistant_id": "asst_1", "from": null, "to": null, "direction": null,
    });
    assert_eq!(check(&test_run), Vec::<String>::new());

    let mut wrong = tool_body("", json!([1]));
    wrong["call"]["direction"] = json!("sideways");
    wrong["call"]["from"] = json!("4155550123");
    wrong["call"]["id"] = json!(7);
    wrong["call"].as_object_mut().unwrap().remove("to");
    wrong["extra"] = json!(true);
    assert_eq!(
        check(&wrong),
        [
            "`tool` is an empty string",
            "`arguments` is an array, not an object",
            "`extra` is not a field of a tool request",
            "`call.id` is a number, not a string or null",
            "`call.from` is `4155550123`, not an E.164 number (+ and digits)",
            "`call.to` is missing",
            "`call.direction` is `sideways`, not `inbound` or `outbound`",
        ]
    );

    assert_eq!(
        check_shape(Some("text/plain"), b"[]"),
        [
            "content-type is `text/plain`, not application/json",
            "the body is an array, not an object",
        ]
    );
    let not_json = check_shape(None, b"order A-1001");
    assert_eq!(not_json[0], "the content-type header is missing");
    assert!(
        not_json[1].starts_with("the body is not JSON"),
        "{not_json:?}"
    );
}

#[tokio::test]
async fn text_big_status_and_echo_answer_as_documented() {
    let (fake, secret) = started().await;
    let body = tool_body("anything", json!({"q": "where is my order"}));

    let text = post_json(&fake, &secret, "/text", &body).await;
    assert_eq!(text.status(), 200);
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(text.text().await.unwrap(), "plain text answer");

    let big = post_json(&fake, &secret, "/big?bytes=1000", &body).await;
    let big = big.bytes().await.unwrap();
    assert_eq!(big.len(), 1000);
    assert_eq!(
        serde_json::from_slice::<Value>(&big).unwrap(),
        Value::String("x".repeat(998))
    );

    let unavailable = post_json(&fake, &secret, "/status/503", &body).await;
    assert_eq!(unavailable.status(), 503);
    assert_eq!(
        unavailable.json::<Value>().await.unwrap(),
        json!({"error": "status 503"})
    );

    // The tenant's secret headers, as voxbridge substitutes them into the tool's headers.
    let payload = serde_json::to_vec(&body).unwrap();
    let timestamp = unix_now();
    let echo = client()
        .post(fake.url("echo"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer tenant-token")
        .header("x-api-key", "tenant-key")
        .header("webhook-id", MESSAGE_ID)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            secret.sign(MESSAGE_ID, timestamp, &payload),
        )
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    let echo = echo.json::<Value>().await.unwrap();
    assert_eq!(echo["arguments"], json!({"q": "where is my order"}));
    assert_eq!(echo["headers"]["authorization"], "Bearer tenant-token");
    assert_eq!(echo["headers"]["x-api-key"], "tenant-key");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert!(
        SIGNATURE_HEADERS
            .iter()
            .all(|name| echo["headers"].get(name).is_none()),
        "{echo}"
    );
}

#[tokio::test]
async fn wrong_methods_unknown_paths_and_non_json_bodies() {
    let (fake, secret) = started().await;

    let get = client()
        .get(fake.url("/orders/lookup"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let unknown = post_json(&fake, &secret, "/nowhere", &tool_body("x", json!({}))).await;
    assert_eq!(unknown.status(), 404);
    let not_json = post_signed(
        &fake.url("/echo"),
        &secret,
        b"order A-1001",
        unix_now(),
        None,
    )
    .await;
    assert_eq!(not_json.status(), 400);

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "every request is recorded");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[2].body, Value::String("order A-1001".to_owned()));
    assert!(requests[2].signature_valid, "the text itself was signed");
    assert!(!requests[2].shape_errors.is_empty());
}

#[tokio::test]
async fn stop_closes_the_port() {
    let (fake, secret) = started().await;
    let url = fake.url("/text");
    fake.stop().await;

    let body = serde_json::to_vec(&tool_body("x", json!({}))).unwrap();
    let refused = client()
        .post(&url)
        .header(
            "webhook-signature",
            secret.sign(MESSAGE_ID, unix_now(), &body),
        )
        .body(body)
        .send()
        .await;
    assert!(refused.is_err_and(|error| error.is_connect()));
}
