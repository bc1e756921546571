//! Small input rules that keep what we store and answer safe to show: names without hidden
//! characters, provider keys in printable ASCII, and answers that are never cached or sniffed.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, expect_status};

#[tokio::test]
async fn names_with_control_or_bidi_characters_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Names", "names@example.com").await;
    for name in ["Support\u{202E}gnp.exe", "Two\nLines", "Iso\u{2067}late"] {
        let body = expect_status(
            app.post_as("/api/assistants", &tenant.api_key, &json!({"name": name}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["error"]["code"], "validation_failed", "{name:?}");
        let admin = app.settings.security.admin_token.expose().to_owned();
        let body = expect_status(
            app.post_as(
                "/api/admin/users",
                &admin,
                &json!({"name": name, "email": "hidden@example.com"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["error"]["code"], "validation_failed", "{name:?}");
    }
}

#[tokio::test]
async fn provider_keys_must_be_printable_ascii() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Keys", "keys@example.com").await;
    for key in [
        "sk-prój-0123456789",
        "sk-proj-\u{200B}0123456789",
        "sk-proj-\u{7f}01234567",
    ] {
        let body = expect_status(
            app.put_as(
                "/api/me/credentials",
                &tenant.api_key,
                &json!({"openai_api_key": key}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("printable ASCII"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn answers_are_never_cached_or_sniffed() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Headers", "headers@example.com").await;
    for response in [
        app.get("/health").await,
        app.get_as("/api/me", &tenant.api_key).await,
        app.get("/no/such/route").await,
    ] {
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}
