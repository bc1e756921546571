//! Tenants' provider credentials: write-only, encrypted at rest, shown by their last four
//! characters; re-encrypted by a master-key rotation; unreadable (and refused, without leaking)
//! under a wrong master key.

use std::collections::BTreeMap;

use bson::{Bson, Document};
use reqwest::StatusCode;
use serde_json::json;
use voxbridge::crypto::{EncryptedSecret, Keyring};
use voxbridge::crypto::{TenantSecret, tenant_context};
use voxbridge::domain::secret::MasterKey;
use voxbridge::storage::users::RotationReport;

use crate::helpers::{TestApp, TestTenant, error_message, expect_error, expect_status};

const OPENAI_KEY: &str = "sk-proj-Zx81TqLmN4vB7cWd2EfGhJ9kPqRsTuVwXyZa0123abcd";
const FREJUN_KEY: &str = "fj_live_6f1e2d3c4b5a69788796a5b4c3d2e1f0WXYZ";

async fn users_document(app: &TestApp, tenant: &TestTenant) -> Document {
    app.raw_document("users", &tenant.id).await
}

/// Every way the plaintext could show up in a stored document.
fn assert_not_in_document(document: &Document, secret: &str) {
    let json = Bson::Document(document.clone())
        .into_relaxed_extjson()
        .to_string();
    let canonical = Bson::Document(document.clone())
        .into_canonical_extjson()
        .to_string();
    let raw = bson::to_vec(document).unwrap();
    let long_part = &secret[4..secret.len() - 4];
    for needle in [secret, long_part] {
        assert!(!json.contains(needle), "plaintext stored: {json}");
        assert!(!canonical.contains(needle), "plaintext stored: {canonical}");
        assert!(
            !raw.windows(needle.len())
                .any(|window| window == needle.as_bytes()),
            "plaintext bytes stored"
        );
    }
}

fn binary<'a>(document: &'a Document, field: &str) -> &'a [u8] {
    match document.get(field) {
        Some(Bson::Binary(binary)) => &binary.bytes,
        other => panic!("{field} is not binary: {other:?}"),
    }
}

fn integer(document: &Document, field: &str) -> i64 {
    match document.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => panic!("{field} is not an integer: {other:?}"),
    }
}

fn encrypted(document: &Document) -> EncryptedSecret {
    EncryptedSecret {
        key_version: integer(document, "key_version") as u32,
        nonce: binary(document, "nonce").to_vec(),
        ciphertext: binary(document, "ciphertext").to_vec(),
    }
}

fn secrets(document: &Document) -> &Document {
    document.get_document("secrets").expect("secrets")
}

async fn put_credentials(app: &TestApp, tenant: &TestTenant, body: serde_json::Value) {
    expect_status(
        app.put_as("/api/me/credentials", &tenant.api_key, &body)
            .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn credentials_are_stored_encrypted_and_shown_by_their_last_four_only() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;

    let response = app
        .put_as(
            "/api/me/credentials",
            &tenant.api_key,
            &json!({ "openai_api_key": OPENAI_KEY }),
        )
        .await;
    let body = expect_status(response, StatusCode::OK).await;
    let credentials = &body["data"]["credentials"];
    assert_eq!(credentials["openai_api_key"]["set"], true);
    assert_eq!(credentials["openai_api_key"]["last4"], "abcd");
    assert!(credentials["openai_api_key"]["updated_at"].is_string());
    assert_eq!(
        credentials["frejun_api_key"],
        json!({ "set": false, "last4": null, "updated_at": null })
    );
    assert!(
        !body
            .to_string()
            .contains(&OPENAI_KEY[..OPENAI_KEY.len() - 4])
    );

    // The stored document holds only the encrypted value and the last four characters.
    let document = users_document(&app, &tenant).await;
    assert_not_in_document(&document, OPENAI_KEY);
    let stored = secrets(&document)
        .get_document("openai_api_key")
        .expect("secrets.openai_api_key");
    assert_eq!(integer(stored, "key_version"), 1);
    assert_eq!(binary(stored, "nonce").len(), 12);
    assert_eq!(
        binary(stored, "ciphertext").len(),
        OPENAI_KEY.len() + 16,
        "ciphertext and tag"
    );
    assert_eq!(stored.get_str("last4"), Ok("abcd"));
    assert!(matches!(stored.get("updated_at"), Some(Bson::DateTime(_))));
    // It is the key, encrypted for this tenant and this field.
    let keyring = app.settings.security.keyring();
    let context = tenant_context(tenant.object_id(), TenantSecret::OpenAiApiKey);
    assert_eq!(
        keyring
            .decrypt(&encrypted(stored), &context)
            .unwrap()
            .expose(),
        OPENAI_KEY
    );
    let other_field = tenant_context(tenant.object_id(), TenantSecret::FrejunApiKey);
    assert!(keyring.decrypt(&encrypted(stored), &other_field).is_err());

    // The second credential, on its own, leaves the first as it is.
    put_credentials(&app, &tenant, json!({ "frejun_api_key": FREJUN_KEY })).await;
    let document = users_document(&app, &tenant).await;
    assert_not_in_document(&document, OPENAI_KEY);
    assert_not_in_document(&document, FREJUN_KEY);
    let frejun = secrets(&document).get_document("frejun_api_key").unwrap();
    assert_eq!(frejun.get_str("last4"), Ok("WXYZ"));
    assert_eq!(
        keyring
            .decrypt(&encrypted(frejun), &other_field)
            .unwrap()
            .expose(),
        FREJUN_KEY
    );
    assert_eq!(
        secrets(&document)
            .get_document("openai_api_key")
            .unwrap()
            .get_str("last4"),
        Ok("abcd")
    );

    // Reads show "set" and the last four only.
    let me = expect_status(app.get_as("/api/me", &tenant.api_key).await, StatusCode::OK).await;
    let text = me.to_string();
    for secret in [OPENAI_KEY, FREJUN_KEY] {
        assert!(!text.contains(&secret[..secret.len() - 4]), "{text}");
    }
    assert_eq!(me["data"]["credentials"]["openai_api_key"]["set"], true);
    assert_eq!(me["data"]["credentials"]["openai_api_key"]["last4"], "abcd");
    assert_eq!(me["data"]["credentials"]["frejun_api_key"]["set"], true);
    assert_eq!(me["data"]["credentials"]["frejun_api_key"]["last4"], "WXYZ");
    assert!(me["data"].get("secrets").is_none());
    let admin_view = expect_status(
        app.get_as(
            &format!("/api/admin/users/{}", tenant.id),
            &app.admin_token(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        admin_view["data"]["credentials"], me["data"]["credentials"],
        "the admin sees the same, no more"
    );
    assert!(!admin_view.to_string().contains(&OPENAI_KEY[..20]));

    // The FreJun URLs carry the tenant's URL secret.
    let incoming = me["data"]["frejun"]["incoming_call_url"].as_str().unwrap();
    let status = me["data"]["frejun"]["status_callback_url"]
        .as_str()
        .unwrap();
    let incoming = url::Url::parse(incoming).unwrap();
    let status = url::Url::parse(status).unwrap();
    assert_eq!(incoming.path(), "/api/frejun/flow");
    assert_eq!(status.path(), "/api/frejun/webhook");
    let key = |url: &url::Url| {
        url.query_pairs()
            .find(|(name, _)| name == "key")
            .map(|(_, value)| value.into_owned())
            .expect("key=")
    };
    assert_eq!(key(&incoming), key(&status));
    assert!(key(&incoming).len() >= 32);
    let url_secret = secrets(&document)
        .get_document("frejun_url_secret")
        .unwrap();
    assert_eq!(
        keyring
            .decrypt(
                &encrypted(url_secret),
                &tenant_context(tenant.object_id(), TenantSecret::FrejunUrlSecret)
            )
            .unwrap()
            .expose(),
        key(&incoming)
    );
    assert_not_in_document(&document, &key(&incoming));

    // Replacing a credential re-encrypts it with a fresh nonce.
    let before = encrypted(secrets(&document).get_document("openai_api_key").unwrap());
    let replacement = "sk-proj-replacement-key-0000000000009876";
    put_credentials(&app, &tenant, json!({ "openai_api_key": replacement })).await;
    let document = users_document(&app, &tenant).await;
    let after = encrypted(secrets(&document).get_document("openai_api_key").unwrap());
    assert_ne!(before.nonce, after.nonce);
    assert_eq!(
        keyring.decrypt(&after, &context).unwrap().expose(),
        replacement
    );
    assert_not_in_document(&document, replacement);
}

#[tokio::test]
async fn credentials_are_checked_before_they_are_stored() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let cases = [
        (json!({}), "openai_api_key"),
        (json!({ "openai_api_key": "short" }), "openai_api_key"),
        (
            json!({ "frejun_api_key": "has spaces in it 1234" }),
            "frejun_api_key",
        ),
        (
            json!({ "openai_api_key": "x".repeat(513) }),
            "openai_api_key",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .put_as("/api/me/credentials", &tenant.api_key, &body)
            .await;
        let answer = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(
            error_message(&answer).starts_with(&format!("{field}:")),
            "{body}: {answer}"
        );
        if let Some(value) = body.get(field).and_then(|value| value.as_str()) {
            assert!(
                !answer.to_string().contains(value),
                "value echoed: {answer}"
            );
        }
    }
    let document = users_document(&app, &tenant).await;
    let secrets = secrets(&document);
    assert!(matches!(
        secrets.get("openai_api_key"),
        None | Some(Bson::Null)
    ));
    assert!(matches!(
        secrets.get("frejun_api_key"),
        None | Some(Bson::Null)
    ));
}

fn new_master_key() -> MasterKey {
    MasterKey::from_bytes([7; MasterKey::LEN])
}

#[tokio::test]
async fn rotation_re_encrypts_every_secret_under_the_new_key() {
    let app = TestApp::spawn().await;
    let both = app.create_tenant("Both", "both@example.com").await;
    let openai_only = app.create_tenant("OpenAI only", "openai@example.com").await;
    let none = app.create_tenant("None", "none@example.com").await;
    put_credentials(
        &app,
        &both,
        json!({ "openai_api_key": OPENAI_KEY, "frejun_api_key": FREJUN_KEY }),
    )
    .await;
    let other_openai = "sk-other-tenant-key-00000000000000000042";
    put_credentials(
        &app,
        &openai_only,
        json!({ "openai_api_key": other_openai }),
    )
    .await;

    // What every tenant sees before the rotation.
    let mut views = Vec::new();
    for tenant in [&both, &openai_only, &none] {
        let me = expect_status(app.get_as("/api/me", &tenant.api_key).await, StatusCode::OK).await;
        views.push(me["data"].clone());
    }
    let stored_before = users_document(&app, &both).await;

    let old = app.settings.security.master_key.clone();
    assert_eq!(old, MasterKey::from_bytes([42; MasterKey::LEN]));
    let rotating = Keyring::new(2, new_master_key(), BTreeMap::from([(1, old)]));
    let report = app
        .storage
        .users()
        .rotate_secrets(&rotating)
        .await
        .expect("rotation succeeds");
    // Three URL secrets, two OpenAI keys, one FreJun key.
    assert_eq!(
        report,
        RotationReport {
            tenants: 3,
            reencrypted: 6,
            already_current: 0,
        }
    );

    // Every stored secret is now under version 2 and decrypts with the new key alone.
    let only_new = Keyring::new(2, new_master_key(), BTreeMap::new());
    let expected_plaintexts = [
        (&both, TenantSecret::OpenAiApiKey, Some(OPENAI_KEY)),
        (&both, TenantSecret::FrejunApiKey, Some(FREJUN_KEY)),
        (&openai_only, TenantSecret::OpenAiApiKey, Some(other_openai)),
    ];
    for (tenant, secret, plaintext) in expected_plaintexts {
        let field = secret.name();
        let document = users_document(&app, tenant).await;
        let stored = secrets(&document).get_document(field).unwrap();
        assert_eq!(integer(stored, "key_version"), 2, "{} {field}", tenant.name);
        let context = tenant_context(tenant.object_id(), secret);
        assert_eq!(
            only_new
                .decrypt(&encrypted(stored), &context)
                .unwrap()
                .expose(),
            plaintext.unwrap()
        );
        assert_not_in_document(&document, plaintext.unwrap());
    }
    for tenant in [&both, &openai_only, &none] {
        let document = users_document(&app, tenant).await;
        let url_secret = secrets(&document)
            .get_document("frejun_url_secret")
            .unwrap();
        assert_eq!(integer(url_secret, "key_version"), 2, "{}", tenant.name);
        let context = tenant_context(tenant.object_id(), TenantSecret::FrejunUrlSecret);
        only_new
            .decrypt(&encrypted(url_secret), &context)
            .expect("the URL secret decrypts with the new key");
        if tenant.id == none.id {
            for field in ["openai_api_key", "frejun_api_key"] {
                assert!(
                    matches!(secrets(&document).get(field), None | Some(Bson::Null)),
                    "no credential appears from nowhere"
                );
            }
        }
    }
    // last4 and the credential's own updated_at are kept.
    let stored_after = users_document(&app, &both).await;
    for field in ["openai_api_key", "frejun_api_key"] {
        let before = secrets(&stored_before).get_document(field).unwrap();
        let after = secrets(&stored_after).get_document(field).unwrap();
        assert_eq!(before.get("last4"), after.get("last4"));
        assert_eq!(before.get("updated_at"), after.get("updated_at"));
        assert_ne!(binary(before, "nonce"), binary(after, "nonce"));
    }

    // A second rotation has nothing to do.
    let again = app.storage.users().rotate_secrets(&rotating).await.unwrap();
    assert_eq!(
        again,
        RotationReport {
            tenants: 3,
            reencrypted: 0,
            already_current: 6,
        }
    );
    assert_eq!(
        users_document(&app, &both).await.get("secrets"),
        stored_after.get("secrets"),
        "untouched"
    );

    // An app configured with the new key only serves every tenant as before.
    let mut settings = app.settings.clone();
    settings.security.master_key = new_master_key();
    settings.security.master_key_version = 2;
    let rotated = TestApp::spawn_with_storage(settings, app.storage.clone()).await;
    for (tenant, before) in [&both, &openai_only, &none].into_iter().zip(&views) {
        let me = expect_status(
            rotated.get_as("/api/me", &tenant.api_key).await,
            StatusCode::OK,
        )
        .await;
        // The same URL secret (the second app listens on another port, so compare the key).
        let key = |urls: &serde_json::Value| {
            let url = url::Url::parse(urls["incoming_call_url"].as_str().unwrap()).unwrap();
            url.query_pairs()
                .find(|(name, _)| name == "key")
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(
            key(&me["data"]["frejun"]),
            key(&before["frejun"]),
            "same URL secret"
        );
        assert!(key(&before["frejun"]).is_some());
        assert_eq!(&me["data"]["credentials"], &before["credentials"]);
    }
    // New writes use the new version.
    expect_status(
        rotated
            .put_as(
                "/api/me/credentials",
                &none.api_key,
                &json!({ "openai_api_key": "sk-written-after-rotation-0001" }),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let document = users_document(&app, &none).await;
    assert_eq!(
        integer(
            secrets(&document).get_document("openai_api_key").unwrap(),
            "key_version"
        ),
        2
    );

    // The old configuration (version 1 only) can no longer read them: it fails closed.
    let body = expect_error(
        app.get_as("/api/me", &both.api_key).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "credentials_unreadable",
    )
    .await;
    assert!(!body.to_string().contains(&OPENAI_KEY[..20]));
}

#[tokio::test]
async fn a_wrong_master_key_fails_closed_without_leaking() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    put_credentials(
        &app,
        &tenant,
        json!({ "openai_api_key": OPENAI_KEY, "frejun_api_key": FREJUN_KEY }),
    )
    .await;
    let me = expect_status(app.get_as("/api/me", &tenant.api_key).await, StatusCode::OK).await;
    let url = me["data"]["frejun"]["incoming_call_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let url_secret = url.split("key=").nth(1).unwrap().to_owned();
    let stored_before = users_document(&app, &tenant).await;

    let mut settings = app.settings.clone();
    settings.security.master_key = MasterKey::from_bytes([43; MasterKey::LEN]);
    assert_eq!(settings.security.master_key_version, 1, "same version");
    let wrong = TestApp::spawn_with_storage(settings, app.storage.clone()).await;

    let response = wrong.get_as("/api/me", &tenant.api_key).await;
    let body = expect_error(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "credentials_unreadable",
    )
    .await;
    let text = body.to_string();
    for secret in [
        OPENAI_KEY,
        FREJUN_KEY,
        url_secret.as_str(),
        &OPENAI_KEY[4..24],
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!text.contains("frejun_url_secret") && !text.contains(&tenant.id));

    // Nothing was rewritten, and the right key still reads everything.
    assert_eq!(
        users_document(&app, &tenant).await.get("secrets"),
        stored_before.get("secrets")
    );
    assert_eq!(
        app.get_as("/api/me", &tenant.api_key).await.status(),
        StatusCode::OK
    );
}
