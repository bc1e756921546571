//! Rate limits over real HTTP: a credential past its quota, a client guessing credentials
//! (refused at the door once its failures are spent, even with a good key), FreJun limited per
//! tenant rather than per address, and oversized headers answered in the envelope. Clients are
//! told apart by `X-Forwarded-For` behind one trusted proxy, since every test request comes from
//! 127.0.0.1.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error_envelope, expect_error, expect_status, json_body};

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds")
}

/// Sends requests until one is refused, and checks that no more than the burst (plus one per
/// second the loop took, the refill of a 1/s quota on a slow machine) got through.
async fn until_refused<F, Fut>(burst: u64, mut send: F) -> reqwest::Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let started = std::time::Instant::now();
    for accepted in 0.. {
        let response = send().await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let allowed = burst + started.elapsed().as_secs() + 1;
            assert!(
                (burst..=allowed).contains(&accepted),
                "{accepted} accepted before the first refusal (burst {burst})"
            );
            return response;
        }
        assert_eq!(response.status(), StatusCode::OK, "accepted until refused");
        assert!(accepted < 100, "never refused");
    }
    unreachable!()
}

async fn get_me(app: &TestApp, key: &str, client: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/me"))
        .bearer_auth(key)
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("request sent")
}

async fn post_webhook(app: &TestApp, key: &str, client: &str) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/api/frejun/webhook")).unwrap();
    url.query_pairs_mut().append_pair("key", key);
    app.client
        .post(url)
        .header("x-forwarded-for", client)
        .json(&json!({ "event": "call.ringing", "data": { "call_id": "fj-unknown" } }))
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_key_past_its_burst_answers_429_with_retry_after_and_others_go_on() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.api_key_per_second = 1;
        settings.rate_limit.api_key_burst = 5;
    })
    .await;
    let busy = app.create_tenant("Busy", "busy@example.com").await;
    let quiet = app.create_tenant("Quiet", "quiet@example.com").await;

    let refused = until_refused(5, || app.get_as("/api/me", &busy.api_key)).await;
    assert!((1..=2).contains(&retry_after(&refused)));
    let body: Value = json_body(refused).await;
    assert_error_envelope(&body, "rate_limited");

    // Another tenant's key, from the same address, has its own quota.
    expect_status(app.get_as("/api/me", &quiet.api_key).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_client_guessing_keys_is_refused_before_any_lookup_even_with_a_good_one() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.trusted_proxy_hops = 1;
        settings.rate_limit.failed_auth_burst = 3;
        settings.rate_limit.failed_auth_per_minute = 1;
    })
    .await;
    let tenant = app.create_tenant("Guessed", "guessed@example.com").await;
    let frejun_key = app.frejun_key(&tenant).await;
    let attacker = "203.0.113.5";

    // Wrong tenant keys, a wrong admin token and a wrong FreJun URL key all spend the same
    // per-client quota; each is still checked (and refused) while it lasts.
    for _ in 0..2 {
        expect_error(
            get_me(&app, "vbk_not-a-real-key", attacker).await,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        )
        .await;
    }
    let wrong_admin = app
        .client
        .get(app.url("/api/admin/users"))
        .bearer_auth("not-the-admin-token-but-long-enough-0000")
        .header("x-forwarded-for", attacker)
        .send()
        .await
        .unwrap();
    expect_error(wrong_admin, StatusCode::UNAUTHORIZED, "unauthorized").await;
    expect_error(
        post_webhook(&app, "not-the-url-key", attacker).await,
        StatusCode::UNAUTHORIZED,
        "invalid_frejun_key",
    )
    .await;

    // The quota is spent: the client is refused at the door, whatever it presents, so a good
    // key proves nothing was looked up.
    let refused = get_me(&app, &tenant.api_key, attacker).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused) >= 1);
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let refused = post_webhook(&app, &frejun_key, attacker).await;
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Everyone else, the tenant included, is unaffected.
    expect_status(
        get_me(&app, &tenant.api_key, "203.0.113.6").await,
        StatusCode::OK,
    )
    .await;
    expect_status(
        post_webhook(&app, &frejun_key, "198.51.100.1").await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn frejun_is_limited_per_tenant_url_key_not_per_address() {
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit.frejun_key_per_second = 1;
        settings.rate_limit.frejun_key_burst = 3;
    })
    .await;
    let noisy = app.create_tenant("Noisy", "noisy@example.com").await;
    let calm = app.create_tenant("Calm", "calm@example.com").await;
    let (noisy_key, calm_key) = (app.frejun_key(&noisy).await, app.frejun_key(&calm).await);
    // FreJun's one address carries both tenants' webhooks.
    let frejun = "192.0.2.10";

    let refused = until_refused(3, || post_webhook(&app, &noisy_key, frejun)).await;
    assert!(retry_after(&refused) >= 1);
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    expect_status(post_webhook(&app, &calm_key, frejun).await, StatusCode::OK).await;
}

#[tokio::test]
async fn oversized_headers_answer_431_in_the_envelope() {
    let app = TestApp::spawn().await;

    let mut many = app.client.get(app.url("/health"));
    for index in 0..70 {
        many = many.header(format!("x-filler-{index}"), "x");
    }
    let response = many.send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_error_envelope(&json_body(response).await, "headers_too_large");

    let big = app
        .client
        .get(app.url("/health"))
        .header("x-filler", "x".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_error_envelope(&json_body(big).await, "headers_too_large");

    let normal = app
        .client
        .get(app.url("/health"))
        .header("x-filler", "x".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(normal.status(), StatusCode::OK);
}
