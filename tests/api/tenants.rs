//! The admin API for tenants and their API keys: create, list, get, update, suspend and
//! reactivate tenants; issue, list and revoke keys.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::auth::hash_api_key;

use crate::helpers::{TestApp, error_message, expect_error, expect_status, oid};

#[tokio::test]
async fn the_admin_creates_a_tenant_with_a_first_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let response = app
        .post_as(
            "/api/admin/users",
            &admin,
            &json!({
                "name": "  Acme Corp  ",
                "email": "  Ops@Acme.Example ",
                "max_concurrent_calls": 5,
            }),
        )
        .await;
    let body = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(body["success"], true);
    let data = &body["data"];
    let id = data["id"].as_str().unwrap();
    oid::<voxbridge::domain::ids::TenantId>(id);
    assert_eq!(data["name"], "Acme Corp", "trimmed");
    assert_eq!(data["email"], "ops@acme.example", "trimmed and lowercased");
    assert_eq!(data["status"], "active");
    assert_eq!(
        data["limits"],
        json!({ "max_concurrent_calls": 5, "max_call_seconds": 3600, "monthly_budget_usd": null })
    );
    for credential in ["openai_api_key", "frejun_api_key"] {
        assert_eq!(
            data["credentials"][credential],
            json!({ "set": false, "last4": null, "updated_at": null }),
            "{credential}"
        );
    }
    let api_key = data["api_key"].as_str().unwrap();
    assert!(api_key.starts_with("vxb_"), "{api_key}");
    oid::<voxbridge::domain::ids::ApiKeyId>(data["api_key_id"].as_str().unwrap());
    assert!(data["created_at"].is_string() && data["updated_at"].is_string());
    assert!(
        data.get("secrets").is_none() && !body.to_string().contains("frejun_url_secret"),
        "no secrets in the view: {body}"
    );

    // Stored normalised; the key is stored as a hash only.
    let stored = app.raw_document("users", id).await;
    assert_eq!(stored.get_str("email"), Ok("ops@acme.example"));
    let key = app
        .raw_document("api_keys", data["api_key_id"].as_str().unwrap())
        .await;
    assert_eq!(key.get_str("key_hash"), Ok(hash_api_key(api_key).as_str()));
    assert_eq!(key.get_str("name"), Ok("default"));
    let key_text = bson::Bson::Document(key).into_relaxed_extjson().to_string();
    assert!(!key_text.contains(api_key), "the secret is not stored");

    // The key works at once.
    let me = expect_status(app.get_as("/api/me", api_key).await, StatusCode::OK).await;
    assert_eq!(me["data"]["id"], id);
    assert_eq!(me["data"]["email"], "ops@acme.example");
}

#[tokio::test]
async fn a_taken_email_answers_409_whatever_its_case() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let first = app.create_tenant("Acme", "ops@acme.example").await;
    let users_before = app.count("users").await;
    let keys_before = app.count("api_keys").await;
    for email in [
        "ops@acme.example",
        "OPS@Acme.Example",
        "  ops@acme.example  ",
    ] {
        let body = expect_error(
            app.post_as(
                "/api/admin/users",
                &admin,
                &json!({ "name": "Copycat", "email": email }),
            )
            .await,
            StatusCode::CONFLICT,
            "email_taken",
        )
        .await;
        assert!(!body.to_string().contains(&first.id), "{body}");
    }
    assert_eq!(app.count("users").await, users_before);
    assert_eq!(app.count("api_keys").await, keys_before, "no orphan keys");
}

#[tokio::test]
async fn the_admin_lists_gets_and_updates_tenants() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;

    let list = expect_status(app.get_as("/api/admin/users", &admin).await, StatusCode::OK).await;
    assert_eq!(list["count"], 2);
    assert_eq!(list["next_cursor"], serde_json::Value::Null);
    assert_eq!(list["data"][0]["id"], beta.id.as_str(), "newest first");
    assert_eq!(list["data"][1]["id"], acme.id.as_str());
    for key in [&acme.api_key, &beta.api_key] {
        assert!(!list.to_string().contains(key.as_str()), "no keys in lists");
    }
    assert!(list["data"][0].get("api_key").is_none());

    let page = expect_status(
        app.get_as("/api/admin/users?limit=1", &admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["count"], 1);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page2 = expect_status(
        app.get_as(&format!("/api/admin/users?limit=1&cursor={cursor}"), &admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page2["data"][0]["id"], acme.id.as_str());
    assert_eq!(page2["next_cursor"], serde_json::Value::Null);

    let got = expect_status(
        app.get_as(&format!("/api/admin/users/{}", acme.id), &admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["data"]["name"], "Acme");
    assert_eq!(got["data"]["email"], "ops@acme.example");
    assert!(got["data"].get("api_key").is_none());
    let created_at = got["data"]["created_at"].as_str().unwrap().to_owned();

    expect_error(
        app.get_as(
            &format!("/api/admin/users/{}", bson::oid::ObjectId::new()),
            &admin,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A partial update changes only what it names.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let patched = expect_status(
        app.patch_as(
            &format!("/api/admin/users/{}", acme.id),
            &admin,
            &json!({ "name": " Acme Inc ", "max_call_seconds": 600 }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let data = &patched["data"];
    assert_eq!(data["name"], "Acme Inc");
    assert_eq!(data["email"], "ops@acme.example");
    assert_eq!(data["limits"]["max_call_seconds"], 600);
    assert_eq!(data["limits"]["max_concurrent_calls"], 10);
    assert_eq!(data["created_at"], created_at.as_str());
    assert!(
        data["updated_at"].as_str().unwrap() > created_at.as_str(),
        "updated_at moves: {data}"
    );

    let patched = expect_status(
        app.patch_as(
            &format!("/api/admin/users/{}", acme.id),
            &admin,
            &json!({ "email": "New@Acme.Example", "max_concurrent_calls": 25 }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["data"]["email"], "new@acme.example");
    assert_eq!(patched["data"]["limits"]["max_concurrent_calls"], 25);
    assert_eq!(patched["data"]["limits"]["max_call_seconds"], 600);
    assert_eq!(patched["data"]["name"], "Acme Inc");

    // Another tenant's email, in any case, is refused and nothing changes.
    expect_error(
        app.patch_as(
            &format!("/api/admin/users/{}", acme.id),
            &admin,
            &json!({ "email": "OPS@beta.example", "name": "Should not stick" }),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let unchanged = expect_status(
        app.get_as(&format!("/api/admin/users/{}", acme.id), &admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged["data"]["email"], "new@acme.example");
    assert_eq!(unchanged["data"]["name"], "Acme Inc");

    // Its own email again is no conflict.
    expect_status(
        app.patch_as(
            &format!("/api/admin/users/{}", acme.id),
            &admin,
            &json!({ "email": "new@acme.example" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    expect_error(
        app.patch_as(
            &format!("/api/admin/users/{}", bson::oid::ObjectId::new()),
            &admin,
            &json!({ "name": "Ghost" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn suspension_blocks_the_tenant_and_reactivation_restores_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;

    let suspended = expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/suspend", acme.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(suspended["data"]["status"], "suspended");
    let got = expect_status(
        app.get_as(&format!("/api/admin/users/{}", acme.id), &admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["data"]["status"], "suspended");
    let body = expect_error(
        app.get_as("/api/me", &acme.api_key).await,
        StatusCode::FORBIDDEN,
        "tenant_suspended",
    )
    .await;
    assert!(!error_message(&body).is_empty());
    assert_eq!(
        app.get_as("/api/me", &beta.api_key).await.status(),
        StatusCode::OK,
        "only the suspended tenant is blocked"
    );

    // Suspending twice is harmless.
    expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/suspend", acme.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    let reactivated = expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/reactivate", acme.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reactivated["data"]["status"], "active");
    let me = expect_status(app.get_as("/api/me", &acme.api_key).await, StatusCode::OK).await;
    assert_eq!(me["data"]["status"], "active");

    for action in ["suspend", "reactivate"] {
        expect_error(
            app.post_as(
                &format!("/api/admin/users/{}/{action}", bson::oid::ObjectId::new()),
                &admin,
                &json!({}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn api_keys_are_issued_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    let keys_path = format!("/api/admin/users/{}/api-keys", acme.id);

    let named = expect_status(
        app.post_as(&keys_path, &admin, &json!({ "name": "  ci  " }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let named = &named["data"];
    let named_secret = named["api_key"].as_str().unwrap().to_owned();
    let named_id = named["id"].as_str().unwrap().to_owned();
    assert_eq!(named["name"], "ci");
    assert_eq!(named["user_id"], acme.id.as_str());
    assert!(named_secret.starts_with(named["prefix"].as_str().unwrap()));
    assert_eq!(named["revoked_at"], serde_json::Value::Null);
    assert_eq!(named["last_used_at"], serde_json::Value::Null);
    assert!(named.get("key_hash").is_none());

    // No body at all: a default name.
    let unnamed = app
        .request(reqwest::Method::POST, &keys_path)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let unnamed = expect_status(unnamed, StatusCode::CREATED).await;
    let unnamed_secret = unnamed["data"]["api_key"].as_str().unwrap().to_owned();
    assert_eq!(unnamed["data"]["name"], "unnamed");

    // Every key works, for its own tenant.
    for secret in [&acme.api_key, &named_secret, &unnamed_secret] {
        let me = expect_status(app.get_as("/api/me", secret).await, StatusCode::OK).await;
        assert_eq!(me["data"]["id"], acme.id.as_str());
    }

    // The list shows the keys newest first, and never a secret or a hash.
    let list = expect_status(app.get_as(&keys_path, &admin).await, StatusCode::OK).await;
    assert_eq!(list["count"], 3);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["unnamed", "ci", "default"]);
    let text = list.to_string();
    for secret in [&acme.api_key, &named_secret, &unnamed_secret] {
        assert!(!text.contains(secret.as_str()), "secret listed: {text}");
        assert!(!text.contains(&hash_api_key(secret)), "hash listed: {text}");
        // Not even the random part on its own (after `vxb_` + 8 hex + `_`).
        let random_part = &secret[13..];
        assert!(!text.contains(random_part), "{text}");
    }
    assert!(!text.contains("key_hash") && !text.contains("\"api_key\""));

    // Revoking: the key stops working, the others do not; a second revocation keeps the first
    // time.
    let revoke_path = format!("{keys_path}/{named_id}");
    let revoked = expect_status(app.delete_as(&revoke_path, &admin).await, StatusCode::OK).await;
    let revoked_at = revoked["data"]["revoked_at"]
        .as_str()
        .expect("revoked_at set")
        .to_owned();
    assert_eq!(revoked["data"]["id"], named_id.as_str());
    expect_error(
        app.get_as("/api/me", &named_secret).await,
        StatusCode::UNAUTHORIZED,
        "api_key_revoked",
    )
    .await;
    assert_eq!(
        app.get_as("/api/me", &acme.api_key).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = expect_status(app.delete_as(&revoke_path, &admin).await, StatusCode::OK).await;
    assert_eq!(again["data"]["revoked_at"], revoked_at.as_str());
    let list = expect_status(app.get_as(&keys_path, &admin).await, StatusCode::OK).await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == named_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["revoked_at"], revoked_at.as_str());

    // Another tenant's key through this tenant's path is not found, and stays valid.
    expect_error(
        app.delete_as(&format!("{keys_path}/{}", beta.api_key_id), &admin)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get_as("/api/me", &beta.api_key).await.status(),
        StatusCode::OK
    );
    let beta_keys = expect_status(
        app.get_as(&format!("/api/admin/users/{}/api-keys", beta.id), &admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(beta_keys["data"][0]["revoked_at"], serde_json::Value::Null);
    assert_eq!(beta_keys["count"], 1, "only Beta's own key: {beta_keys}");

    // Unknown tenants and keys.
    let ghost = bson::oid::ObjectId::new();
    for response in [
        app.post_as(
            &format!("/api/admin/users/{ghost}/api-keys"),
            &admin,
            &json!({}),
        )
        .await,
        app.get_as(&format!("/api/admin/users/{ghost}/api-keys"), &admin)
            .await,
        app.delete_as(&format!("{keys_path}/{ghost}"), &admin).await,
        app.delete_as(&format!("{keys_path}/not-an-id"), &admin)
            .await,
    ] {
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }

    // A blank name is refused.
    let keys_before = app.count("api_keys").await;
    let body = expect_error(
        app.post_as(&keys_path, &admin, &json!({ "name": "   " }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error_message(&body).starts_with("name:"), "{body}");
    assert_eq!(app.count("api_keys").await, keys_before);
}

#[tokio::test]
async fn key_use_is_recorded() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    assert_eq!(
        app.get_as("/api/me", &acme.api_key).await.status(),
        StatusCode::OK
    );
    // Recorded off the request path: wait for it.
    let mut last_used = serde_json::Value::Null;
    for _ in 0..50 {
        let keys = expect_status(
            app.get_as(&format!("/api/admin/users/{}/api-keys", acme.id), &admin)
                .await,
            StatusCode::OK,
        )
        .await;
        last_used = keys["data"][0]["last_used_at"].clone();
        if last_used.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_used.is_string(), "last_used_at recorded: {last_used}");
}

/// `GET /api/me` hands the tenant the URLs to paste into FreJun: under the configured public base
/// URL (including a path prefix, e.g. behind a reverse proxy), with the tenant's own URL secret.
#[tokio::test]
async fn me_shows_the_frejun_urls_under_the_public_base_url() {
    for (base, expected_prefix) in [
        (
            "https://voice.example.com",
            "https://voice.example.com/api/frejun/",
        ),
        (
            "https://voice.example.com/",
            "https://voice.example.com/api/frejun/",
        ),
        (
            "https://example.com/voxbridge/",
            "https://example.com/voxbridge/api/frejun/",
        ),
        (
            "https://example.com/voxbridge",
            "https://example.com/voxbridge/api/frejun/",
        ),
    ] {
        let app = TestApp::spawn_with(|settings| {
            settings.server.public_base_url = Some(url::Url::parse(base).unwrap())
        })
        .await;
        let acme = app.create_tenant("Acme", "ops@acme.example").await;
        let beta = app.create_tenant("Beta", "ops@beta.example").await;
        let urls = |body: &serde_json::Value, field: &str| {
            body["data"]["frejun"][field].as_str().unwrap().to_owned()
        };
        let me = expect_status(app.get_as("/api/me", &acme.api_key).await, StatusCode::OK).await;
        assert_eq!(me["data"]["id"], acme.id.as_str());
        let incoming = urls(&me, "incoming_call_url");
        let status = urls(&me, "status_callback_url");
        assert!(
            incoming.starts_with(&format!("{expected_prefix}flow?key=")),
            "base {base}: {incoming}"
        );
        assert!(
            status.starts_with(&format!("{expected_prefix}webhook?key=")),
            "base {base}: {status}"
        );
        let key = |url: &str| url.split("key=").nth(1).unwrap().to_owned();
        assert_eq!(key(&incoming), key(&status));
        let other = expect_status(app.get_as("/api/me", &beta.api_key).await, StatusCode::OK).await;
        assert_ne!(
            key(&urls(&other, "incoming_call_url")),
            key(&incoming),
            "each tenant has its own secret"
        );
        // The admin's views do not show the URL secret.
        let admin_view = expect_status(
            app.get_as(&format!("/api/admin/users/{}", acme.id), &app.admin_token())
                .await,
            StatusCode::OK,
        )
        .await;
        assert!(!admin_view.to_string().contains(&key(&incoming)));
    }
}
