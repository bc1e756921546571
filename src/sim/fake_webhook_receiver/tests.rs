//! The fake against webhooks signed the way voxbridge signs them: accepted ones, refused ones
//! (wrong key, stale, unsigned), secret rotation on both sides, every kind of scripted reply,
//! and the shape checks.

use super::*;
use crate::outbound::signing::{TOLERANCE_SECS, signature_header};

const EVENT_ID: &str = "msg_fake_webhook_1";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Redirects are the sender's business; here they are asserted on.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A well-formed `call.ended` event with id `id`.
fn event(id: &str) -> Value {
    json!({
        "id": id,
        "type": "call.ended",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"call_id": "vb_call_1", "end_reason": "caller_hung_up", "duration_s": 42},
    })
}

/// POSTs `body` to `url` with the Standard Webhooks headers: `webhook-id` [`EVENT_ID`],
/// `webhook-timestamp` `timestamp`, and `webhook-signature` `signature` (when given).
async fn post(
    url: &str,
    body: &[u8],
    timestamp: i64,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", EVENT_ID)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(signature) = signature {
        request = request.header("webhook-signature", signature);
    }
    request.body(body.to_vec()).send().await.unwrap()
}

/// POSTs `body` to `path`, signed now with each of `secrets` (one entry each, as during a
/// rotation).
async fn post_signed(
    fake: &FakeWebhookReceiver,
    secrets: &[&SigningSecret],
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let body = serde_json::to_vec(body).unwrap();
    let now = unix_now();
    let signature = signature_header(secrets, EVENT_ID, now, &body);
    post(&fake.url(path), &body, now, Some(&signature)).await
}

/// A fake with one fresh secret, as a test has after registering the tenant's endpoint.
async fn started() -> (FakeWebhookReceiver, SigningSecret) {
    let fake = FakeWebhookReceiver::start().await.unwrap();
    let secret = SigningSecret::generate();
    fake.set_secret_text(secret.expose()).unwrap();
    (fake, secret)
}

#[tokio::test]
async fn a_signed_webhook_is_answered_ok_and_recorded_as_valid() {
    let (fake, secret) = started().await;
    let body = event(EVENT_ID);
    let raw = serde_json::to_vec(&body).unwrap();
    let now = unix_now();

    let response = post(
        &fake.url("hooks/voxbridge"),
        &raw,
        now,
        Some(&secret.sign(EVENT_ID, now, &raw)),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"ok": true}));
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let record = &received[0];
    assert!(record.signature_valid, "{record:?}");
    assert_eq!(record.signature_error, None);
    assert_eq!(record.shape_errors, Vec::<String>::new());
    assert_eq!(record.path, "/hooks/voxbridge");
    assert_eq!(record.id.as_deref(), Some(EVENT_ID));
    assert_eq!(record.timestamp, Some(now.to_string()));
    assert_eq!(record.signature, Some(secret.sign(EVENT_ID, now, &raw)));
    assert_eq!(record.body, body);
    assert_eq!(record.raw_body, raw, "the exact bytes, as signed");
    assert_eq!(record.status_sent, 200);
    fake.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_401_without_using_the_script() {
    let (fake, secret) = started().await;
    fake.script("/hooks", vec![Reply::Status(500)]);
    let stranger = SigningSecret::generate();

    let refused = post_signed(&fake, &[&stranger], "/hooks", &event(EVENT_ID)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": "invalid signature"})
    );
    // The scripted 500 is still there for the first delivery that authenticates.
    let accepted = post_signed(&fake, &[&secret], "/hooks", &event(EVENT_ID)).await;
    assert_eq!(accepted.status(), 500);

    let received = fake.received();
    assert_eq!(received.len(), 2, "refused requests are recorded too");
    assert!(!received[0].signature_valid);
    assert_eq!(
        received[0].signature_error.as_deref(),
        Some("no v1 signature matches")
    );
    assert_eq!(received[0].status_sent, 401);
    assert!(received[1].signature_valid);
    assert_eq!(received[1].status_sent, 500);
}

#[tokio::test]
async fn unsigned_and_stale_webhooks_are_refused_whatever_the_script() {
    let (fake, secret) = started().await;
    fake.script("/hooks", vec![Reply::Status(200), Reply::Status(200)]);
    let raw = serde_json::to_vec(&event(EVENT_ID)).unwrap();

    let unsigned = post(&fake.url("/hooks"), &raw, unix_now(), None).await;
    let stale_at = unix_now() - TOLERANCE_SECS - 60;
    let stale_signature = secret.sign(EVENT_ID, stale_at, &raw);
    let stale = post(&fake.url("/hooks"), &raw, stale_at, Some(&stale_signature)).await;

    assert_eq!([unsigned.status(), stale.status()], [401, 401]);
    let errors: Vec<_> = fake
        .received()
        .into_iter()
        .map(|record| record.signature_error)
        .collect();
    assert_eq!(
        errors,
        [
            Some("the webhook-signature header is missing".to_owned()),
            Some("the webhook-timestamp is more than five minutes from now".to_owned()),
        ]
    );
}

#[tokio::test]
async fn with_two_secrets_configured_either_one_verifies() {
    let fake = FakeWebhookReceiver::start().await.unwrap();
    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    fake.set_secrets(vec![old.clone(), new.clone()]);

    let by_old = post_signed(&fake, &[&old], "/hooks", &event(EVENT_ID)).await;
    let by_new = post_signed(&fake, &[&new], "/hooks", &event(EVENT_ID)).await;
    let by_neither = post_signed(
        &fake,
        &[&SigningSecret::generate()],
        "/hooks",
        &event(EVENT_ID),
    )
    .await;

    assert_eq!(
        [by_old.status(), by_new.status(), by_neither.status()],
        [200, 200, 401]
    );
    let valid: Vec<bool> = fake
        .received()
        .iter()
        .map(|record| record.signature_valid)
        .collect();
    assert_eq!(valid, [true, true, false]);
}

#[tokio::test]
async fn a_rotation_header_verifies_when_only_its_second_entry_matches() {
    let (fake, secret) = started().await;
    // The sender signs with its new secret first, which this receiver does not know yet.
    let unknown = SigningSecret::generate();

    let response = post_signed(&fake, &[&unknown, &secret], "/hooks", &event(EVENT_ID)).await;

    assert_eq!(response.status(), 200);
    let record = &fake.received()[0];
    let signature = record.signature.as_deref().unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(record.signature_valid, "{record:?}");
}

#[tokio::test]
async fn without_a_secret_nothing_is_refused_but_nothing_is_verified() {
    let fake = FakeWebhookReceiver::start().await.unwrap();
    fake.script("hooks", vec![Reply::Status(503)]);
    let raw = serde_json::to_vec(&event(EVENT_ID)).unwrap();

    let unsigned = post(&fake.url("/hooks"), &raw, unix_now(), None).await;

    assert_eq!(unsigned.status(), 503, "the script is followed");
    let record = &fake.received()[0];
    assert!(!record.signature_valid);
    assert_eq!(record.signature_error.as_deref(), Some(NO_SECRET));
    assert_eq!(record.signature, None);
    assert_eq!(record.status_sent, 503);
}

#[tokio::test]
async fn the_script_is_used_in_order_then_200() {
    let (fake, secret) = started().await;
    fake.script("/hooks", vec![Reply::Status(500), Reply::Status(500)]);

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = post_signed(&fake, &[&secret], "/hooks", &event(EVENT_ID)).await;
        statuses.push(response.status().as_u16());
        if statuses.len() == 1 {
            assert_eq!(
                response.json::<Value>().await.unwrap(),
                json!({"error": "status 500"})
            );
        }
    }
    // Another path was never scripted.
    let other = post_signed(&fake, &[&secret], "/other", &event(EVENT_ID)).await;

    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(other.status(), 200);
    let sent: Vec<u16> = fake
        .received()
        .iter()
        .map(|record| record.status_sent)
        .collect();
    assert_eq!(sent, [500, 500, 200, 200]);
}

#[tokio::test]
async fn retry_after_sets_the_header() {
    let (fake, secret) = started().await;
    fake.script(
        "/hooks",
        vec![Reply::RetryAfter {
            status: 503,
            secs: 120,
        }],
    );

    let response = post_signed(&fake, &[&secret], "/hooks", &event(EVENT_ID)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "120");
    assert_eq!(fake.received()[0].status_sent, 503);
}

#[tokio::test]
async fn redirect_answers_307_with_location() {
    let (fake, secret) = started().await;
    let elsewhere = fake.url("/moved");
    fake.script("/hooks", vec![Reply::Redirect(elsewhere.clone())]);

    let response = post_signed(&fake, &[&secret], "/hooks", &event(EVENT_ID)).await;

    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], elsewhere.as_str());
    let received = fake.received();
    assert_eq!(received.len(), 1, "the client did not follow it");
    assert_eq!(received[0].status_sent, 307);
}

#[tokio::test]
async fn hang_records_at_once_and_answers_after_the_delay() {
    let (fake, secret) = started().await;
    let hang = Duration::from_secs(2);
    fake.script("/hooks", vec![Reply::Hang(hang)]);
    let started_at = Instant::now();
    let url = fake.url("/hooks");
    let raw = serde_json::to_vec(&event(EVENT_ID)).unwrap();
    let now = unix_now();
    let signature = secret.sign(EVENT_ID, now, &raw);
    let delivery = tokio::spawn(async move { post(&url, &raw, now, Some(&signature)).await });

    // Recorded before answering, so a test can see a delivery its sender is still waiting on.
    assert!(fake.wait_for(hang, |received| received.len() == 1).await);
    assert!(!delivery.is_finished());
    let response = delivery.await.unwrap();

    assert!(started_at.elapsed() >= hang);
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn wait_for_times_out_when_nothing_matches() {
    let (fake, secret) = started().await;
    post_signed(&fake, &[&secret], "/hooks", &event(EVENT_ID)).await;

    let matched = fake
        .wait_for(Duration::from_millis(100), |received| {
            received
                .iter()
                .any(|record| record.body["type"] == "call.ended")
        })
        .await;
    let unmatched = fake
        .wait_for(Duration::from_millis(100), |received| {
            received
                .iter()
                .any(|record| record.body["type"] == "call.started")
        })
        .await;

    assert!(matched);
    assert!(!unmatched);
}

#[tokio::test]
async fn an_id_other_than_the_webhook_id_header_is_a_shape_error_but_still_answered() {
    let (fake, secret) = started().await;

    let response = post_signed(&fake, &[&secret], "/hooks", &event("msg_other")).await;

    assert_eq!(response.status(), 200, "shape is recorded, not enforced");
    let record = &fake.received()[0];
    assert!(record.signature_valid);
    assert_eq!(
        record.shape_errors,
        [format!(
            "`id` is `msg_other`, not `{EVENT_ID}` (the webhook-id header)"
        )]
    );
}

#[tokio::test]
async fn get_is_405_and_recorded() {
    let (fake, _) = started().await;

    let response = client().get(fake.url("/hooks")).send().await.unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let record = &fake.received()[0];
    assert_eq!(record.status_sent, 405);
    assert_eq!(record.shape_errors[0], "the method is GET, not POST");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_recorded_without_it() {
    let (fake, secret) = started().await;
    let raw = vec![b' '; BODY_LIMIT + 1];
    let now = unix_now();

    let response = post(
        &fake.url("/hooks"),
        &raw,
        now,
        Some(&secret.sign(EVENT_ID, now, &raw)),
    )
    .await;

    assert_eq!(response.status(), 413);
    let record = &fake.received()[0];
    assert!(record.raw_body.is_empty());
    assert!(!record.signature_valid);
    assert_eq!(
        record.shape_errors,
        [format!("the body is over {BODY_LIMIT} bytes")]
    );
}

#[tokio::test]
async fn secret_text_must_be_a_whsec_secret() {
    let fake = FakeWebhookReceiver::start().await.unwrap();

    assert!(fake.set_secret_text("not-a-secret").is_err());
    assert_eq!(
        fake.set_secret_text("whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMSE="),
        Ok(())
    );
}

#[tokio::test]
#[should_panic(expected = "200 to 999")]
async fn scripting_a_1xx_status_panics_in_the_test_that_did_it() {
    let fake = FakeWebhookReceiver::start().await.unwrap();
    fake.script("/hooks", vec![Reply::Status(204), Reply::Status(101)]);
}

#[test]
fn the_published_vector_verifies_at_its_own_time_with_either_rotation_secret() {
    // docs/protocols.md §6.4: checked at an injected "now", since it is long stale.
    let first = SigningSecret::parse("whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMSE=").unwrap();
    let body = br#"{"type":"call.ended","timestamp":"2026-01-01T00:00:00Z","data":{"call_id":"call_7f3a9c","end_reason":"caller_hung_up","duration_s":42}}"#;
    let check = |secrets: &[SigningSecret], header: &str| {
        check_signature(
            secrets,
            Some("msg_2vXbT9kQ4mZ7pL1cR8sN3wY6hJd"),
            Some("1767225600"),
            Some(header),
            body,
            1_767_225_600,
        )
    };
    let rotation = "v1,oHe1GYJ3ilNeQGrJlqWmGHN5it1QJGyom9FO2z0m7oM= v1,Z7Sb6aQxw5D4n3LpxHgacLweeRQejZm9qqlMmawIcA0=";

    assert_eq!(check(std::slice::from_ref(&first), rotation), Ok(()));
    assert_eq!(
        check(&[SigningSecret::generate(), first.clone()], rotation),
        Ok(())
    );
    assert_eq!(
        check(&[first], "v1,i+h274qnFARutJ/nGB/U+MnMJ1GCYfwvDovzd5y5cf8="),
        Err("no v1 signature matches".to_owned()),
        "HMAC keyed with the literal whsec_ text is refused"
    );
    assert_eq!(check(&[], rotation), Err(NO_SECRET.to_owned()));
}

#[test]
fn shape_problems_name_the_field() {
    let json = Some("application/json; charset=utf-8");
    let check =
        |body: &Value| check_shape(json, Some(EVENT_ID), &serde_json::to_vec(body).unwrap());

    assert_eq!(check(&event(EVENT_ID)), Vec::<String>::new());
    assert_eq!(
        check(&json!({
            "id": 7,
            "type": "",
            "timestamp": "yesterday",
            "data": [],
            "extra": true,
        })),
        [
            "`id` is a number, not a string",
            "`type` is an empty string",
            "`timestamp` is `yesterday`, not an RFC 3339 date-time",
            "`data` is an array, not an object",
            "`extra` is not a field of a webhook",
        ]
    );
    assert_eq!(
        check(&json!({})),
        [
            "`id` is missing",
            "`type` is missing",
            "`timestamp` is missing",
            "`data` is missing",
        ]
    );
    assert_eq!(
        check_shape(Some("text/plain"), None, b"[1]"),
        [
            "content-type is `text/plain`, not application/json",
            "the body is an array, not an object",
        ]
    );
    assert_eq!(
        check_shape(json, None, &serde_json::to_vec(&event("msg_1")).unwrap()),
        ["`id` is `msg_1`, but the webhook-id header is missing"]
    );
    let not_json = check_shape(None, Some(EVENT_ID), b"id=1");
    assert_eq!(not_json[0], "the content-type header is missing");
    assert!(
        not_json[1].starts_with("the body is not JSON"),
        "{not_json:?}"
    );
}
