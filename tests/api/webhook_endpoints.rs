//! Tenants' webhook endpoints through the API: create (the secret shown once), list, update,
//! delete, tenant isolation, the address rules, secret rotation with an overlap, and the test
//! `ping` delivered to a receiver in the test suite, whose signature is checked by the receiver
//! and, independently, by the Standard Webhooks project's own library.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::sim::fake_webhook_receiver::{FakeWebhookReceiver, Reply};

use crate::helpers::{TestApp, TestTenant, expect_error, expect_status, verified_independently};

/// An app that may reach the receiver on 127.0.0.1, with a short attempt timeout.
async fn app_and_receiver() -> (TestApp, FakeWebhookReceiver) {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.outbound.allow = "127.0.0.1".into();
        settings.webhooks.attempt_timeout_ms = 800;
    })
    .await;
    (app, receiver)
}

async fn tenant(app: &TestApp, name: &str) -> TestTenant {
    app.create_tenant(
        name,
        &format!("{}@hooks.example", uuid::Uuid::new_v4().simple()),
    )
    .await
}

/// Creates an endpoint; answers its data (with the one-time `signing_secret`).
async fn create(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    expect_status(
        app.post_as("/api/webhook-endpoints", &tenant.api_key, &body)
            .await,
        StatusCode::CREATED,
    )
    .await["data"]
        .take()
}

async fn ping(app: &TestApp, tenant: &TestTenant, id: &str) -> Value {
    expect_status(
        app.post_as(
            &format!("/api/webhook-endpoints/{id}/test"),
            &tenant.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await["data"]
        .take()
}

#[tokio::test]
async fn an_endpoint_is_created_with_its_secret_shown_once_then_listed_updated_and_deleted() {
    let (app, receiver) = app_and_receiver().await;
    let acme = tenant(&app, "Acme").await;
    let created = create(
        &app,
        &acme,
        json!({"url": receiver.url("/hooks"), "event_types": ["call.ended"], "description": "CRM"}),
    )
    .await;
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["event_types"], json!(["call.ended"]));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["disabled_reason"], Value::Null);
    let id = created["id"].as_str().unwrap().to_owned();

    let path = format!("/api/webhook-endpoints/{id}");
    let got = expect_status(app.get_as(&path, &acme.api_key).await, StatusCode::OK).await;
    let listed = expect_status(
        app.get_as("/api/webhook-endpoints", &acme.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    for body in [&got, &listed] {
        let text = body.to_string();
        assert!(
            !text.contains(&secret) && !text.contains("signing_secret"),
            "{text}"
        );
    }
    let stored = app.raw_document("webhook_endpoints", &id).await.to_string();
    assert!(
        !stored.contains(&secret["whsec_".len()..]),
        "encrypted at rest"
    );

    let patched = expect_status(
        app.patch_as(
            &path,
            &acme.api_key,
            &json!({"event_types": [], "enabled": false}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["data"]["event_types"], json!([]));
    assert_eq!(patched["data"]["enabled"], false);

    // Another tenant sees nothing of it.
    let other = tenant(&app, "Other").await;
    expect_error(
        app.get_as(&path, &other.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.post_as(&format!("{path}/test"), &other.api_key, &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete_as(&path, &other.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    expect_status(app.delete_as(&path, &acme.api_key).await, StatusCode::OK).await;
    expect_error(
        app.get_as(&path, &acme.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn endpoints_that_break_a_rule_are_refused_naming_the_field() {
    let (app, receiver) = app_and_receiver().await;
    let acme = tenant(&app, "Acme").await;
    for (body, field) in [
        (json!({"url": "http://hooks.example.com/x"}), "url:"),
        (json!({"url": "https://10.0.0.7/x"}), "url:"),
        (json!({"url": "https://u:p@hooks.example.com/x"}), "url:"),
        (
            json!({"url": receiver.url("/x"), "event_types": ["ping"]}),
            "event_types[0]",
        ),
    ] {
        let error = expect_error(
            app.post_as("/api/webhook-endpoints", &acme.api_key, &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    expect_error(
        app.post_as(
            "/api/webhook-endpoints",
            &acme.api_key,
            &json!({"url": receiver.url("/x"), "event_types": ["call.exploded"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
}

#[tokio::test]
async fn a_test_ping_is_signed_as_standard_webhooks_requires() {
    let (app, receiver) = app_and_receiver().await;
    let acme = tenant(&app, "Acme").await;
    let created = create(&app, &acme, json!({"url": receiver.url("/hooks")})).await;
    let secret = created["signing_secret"].as_str().unwrap();
    receiver.set_secret_text(secret).unwrap();

    let answer = ping(&app, &acme, created["id"].as_str().unwrap()).await;
    assert_eq!(answer["attempt"]["outcome"], "delivered", "{answer}");
    assert_eq!(answer["attempt"]["status"], 200);
    let event_id = answer["event_id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_"));
    assert_eq!(answer["event"]["type"], "ping");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let delivery = &received[0];
    assert!(delivery.signature_valid, "{:?}", delivery.signature_error);
    assert!(
        delivery.shape_errors.is_empty(),
        "{:?}",
        delivery.shape_errors
    );
    assert_eq!(delivery.id.as_deref(), Some(event_id));
    assert_eq!(delivery.body["id"], event_id);
    assert_eq!(delivery.body["type"], "ping");
    assert_eq!(delivery.body["data"]["endpoint_id"], created["id"]);
    assert!(
        verified_independently(secret, delivery),
        "the standardwebhooks library accepts the signature"
    );
    assert!(!verified_independently(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        delivery
    ));
}

#[tokio::test]
async fn after_a_rotation_deliveries_verify_with_the_old_secret_and_the_new_one() {
    let (app, receiver) = app_and_receiver().await;
    let acme = tenant(&app, "Acme").await;
    let created = create(&app, &acme, json!({"url": receiver.url("/hooks")})).await;
    let id = created["id"].as_str().unwrap();
    let old = created["signing_secret"].as_str().unwrap().to_owned();
    let rotated = expect_status(
        app.post_as(
            &format!("/api/webhook-endpoints/{id}/rotate-secret"),
            &acme.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new = rotated["data"]["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert!(rotated["data"]["previous_valid_until"].is_string());

    for secret in [&old, &new] {
        receiver.set_secret_text(secret).unwrap();
        let answer = ping(&app, &acme, id).await;
        assert_eq!(answer["attempt"]["outcome"], "delivered", "{answer}");
        let last = receiver.received().pop().unwrap();
        assert_eq!(
            last.signature.as_deref().unwrap().split(' ').count(),
            2,
            "two signatures during the overlap"
        );
        assert!(verified_independently(secret, &last));
    }
}

#[tokio::test]
async fn a_ping_shows_what_the_endpoint_did_and_what_would_happen_next() {
    let (app, receiver) = app_and_receiver().await;
    let acme = tenant(&app, "Acme").await;
    let created = create(&app, &acme, json!({"url": receiver.url("/hooks")})).await;
    let id = created["id"].as_str().unwrap();
    receiver
        .set_secret_text(created["signing_secret"].as_str().unwrap())
        .unwrap();
    receiver.script(
        "/hooks",
        vec![
            Reply::Status(500),
            Reply::RetryAfter {
                status: 429,
                secs: 30,
            },
            Reply::Status(410),
            Reply::Status(400),
            Reply::Redirect("https://elsewhere.example/".into()),
            Reply::Hang(Duration::from_millis(2_000)),
        ],
    );
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let answer = ping(&app, &acme, id).await;
        outcomes.push((
            answer["attempt"]["outcome"].as_str().unwrap().to_owned(),
            answer["attempt"]["status"].as_u64(),
        ));
        if answer["attempt"]["status"].is_null() {
            let error = answer["attempt"]["error"].as_str().unwrap();
            assert!(error.contains("no answer within 800 ms"), "{error}");
        }
    }
    assert_eq!(
        outcomes,
        [
            ("retry".to_owned(), Some(500)),
            ("retry".to_owned(), Some(429)),
            ("gone".to_owned(), Some(410)),
            ("rejected".to_owned(), Some(400)),
            ("rejected".to_owned(), Some(307)),
            ("retry".to_owned(), None),
        ]
    );
    // The redirect was not followed: only the six pings reached the receiver.
    assert_eq!(receiver.received().len(), 6);
}

#[tokio::test]
async fn an_endpoint_whose_name_resolves_to_loopback_is_refused_unless_allow_listed() {
    let receiver = FakeWebhookReceiver::start().await.unwrap();
    let port = url::Url::parse(&receiver.base_url())
        .unwrap()
        .port()
        .unwrap();
    let app = TestApp::spawn().await;
    let acme = tenant(&app, "Acme").await;
    let created = create(
        &app,
        &acme,
        json!({"url": format!("https://localhost:{port}/hooks")}),
    )
    .await;
    let answer = ping(&app, &acme, created["id"].as_str().unwrap()).await;
    assert_eq!(answer["attempt"]["outcome"], "rejected", "{answer}");
    let error = answer["attempt"]["error"].as_str().unwrap();
    assert!(error.contains("no public address"), "{error}");
    assert!(receiver.received().is_empty());

    let allowed =
        TestApp::spawn_with(|settings| settings.outbound.allow = "localhost".into()).await;
    let acme = tenant(&allowed, "Acme").await;
    let created = create(
        &allowed,
        &acme,
        json!({"url": format!("http://localhost:{port}/hooks")}),
    )
    .await;
    receiver
        .set_secret_text(created["signing_secret"].as_str().unwrap())
        .unwrap();
    let answer = ping(&allowed, &acme, created["id"].as_str().unwrap()).await;
    assert_eq!(answer["attempt"]["outcome"], "delivered", "{answer}");
    assert_eq!(receiver.received().len(), 1);
}
