//! A tenant's FreJun URL secret can be rotated: the new URLs work at once, the old ones keep
//! working for the overlap window and then stop, and a second rotation ends the first overlap.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_status, flow_body};

/// The `key` of a FreJun URL.
fn key_of(url: &Value) -> String {
    let url = url::Url::parse(url.as_str().unwrap()).unwrap();
    url.query_pairs()
        .find(|(name, _)| name == "key")
        .unwrap()
        .1
        .into_owned()
}

async fn flow_status(app: &TestApp, key: &str, number: &str, id: &str) -> StatusCode {
    app.post_flow(Some(key), None, &flow_body(id, "+14155550100", number))
        .await
        .status()
}

#[tokio::test]
async fn rotated_urls_work_at_once_and_the_old_ones_only_during_the_overlap() {
    let app = TestApp::spawn().await;
    let tenant = app.calling_tenant("Rotate", "+14155550470", 5).await;
    let old_key = tenant.key.clone();

    let rotated = expect_status(
        app.post_as(
            "/api/me/frejun-url-secret/rotate",
            &tenant.tenant.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_key = key_of(&rotated["data"]["frejun"]["incoming_call_url"]);
    assert_ne!(new_key, old_key);
    assert_eq!(
        key_of(&rotated["data"]["frejun"]["status_callback_url"]),
        new_key
    );
    assert!(rotated["data"]["previous_urls_valid_until"].is_string());
    let me = expect_status(
        app.get_as("/api/me", &tenant.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(key_of(&me["data"]["frejun"]["incoming_call_url"]), new_key);

    // Both work during the overlap.
    for (key, id) in [(&new_key, "fj-rot-1"), (&old_key, "fj-rot-2")] {
        assert_eq!(
            flow_status(&app, key, &tenant.number, id).await,
            StatusCode::OK
        );
    }

    // A second rotation: the first secret is gone at once, the second now overlaps.
    let again = expect_status(
        app.post_as(
            "/api/me/frejun-url-secret/rotate",
            &tenant.tenant.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let newest = key_of(&again["data"]["frejun"]["incoming_call_url"]);
    assert_eq!(
        flow_status(&app, &old_key, &tenant.number, "fj-rot-3").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        flow_status(&app, &new_key, &tenant.number, "fj-rot-4").await,
        StatusCode::OK
    );

    // Once the overlap has passed, only the newest works.
    app.storage
        .collection::<bson::Document>("users")
        .update_one(
            bson::doc! { "_id": tenant.tenant.object_id() },
            bson::doc! { "$set": {
                "secrets.previous_frejun_url_secret_expires_at": bson::DateTime::now(),
            } },
        )
        .await
        .unwrap();
    assert_eq!(
        flow_status(&app, &new_key, &tenant.number, "fj-rot-5").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        flow_status(&app, &newest, &tenant.number, "fj-rot-6").await,
        StatusCode::OK
    );
}
