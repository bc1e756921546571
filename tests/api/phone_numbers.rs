//! Tenants' phone numbers: E.164 normalisation, uniqueness across the platform (without telling
//! who holds a number), assignment to the tenant's own assistants, status, deletion.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_message, expect_error, expect_status};

#[tokio::test]
async fn numbers_are_normalised_to_e164() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let cases = [
        ("+1 (415) 555-0100", "+14155550100"),
        ("0044 20 7946 0958", "+442079460958"),
        (" +91-98765-43210 ", "+919876543210"),
        ("+1.212.555.0199", "+12125550199"),
    ];
    for (input, expected) in cases {
        let created = app
            .create_phone_number(&tenant, json!({ "phone_number": input }))
            .await;
        assert_eq!(created["phone_number"], expected, "{input:?}");
        assert_eq!(created["provider"], "frejun");
        assert_eq!(created["status"], "active");
        assert_eq!(created["assigned_assistant_id"], Value::Null);
        assert_eq!(
            created["capabilities"],
            json!({ "voice": true, "sms": false })
        );
        let stored = app
            .raw_document("phone_numbers", created["id"].as_str().unwrap())
            .await;
        assert_eq!(stored.get_str("phone_number"), Ok(expected));
        assert_eq!(
            stored.get_object_id("user_id"),
            Ok(tenant.object_id().object_id())
        );
    }
    let list = expect_status(
        app.get_as("/api/phone-numbers", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["count"], 4);
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|number| number["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            "+12125550199",
            "+919876543210",
            "+442079460958",
            "+14155550100"
        ],
        "newest first"
    );
}

#[tokio::test]
async fn a_number_held_by_anyone_is_taken_without_saying_by_whom() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme Holdings", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    let first = app
        .create_phone_number(&acme, json!({ "phone_number": "+14155550100" }))
        .await;
    let count = app.count("phone_numbers").await;

    // Another tenant, in another spelling; and the same tenant again.
    for (tenant, spelling) in [
        (&beta, "+1 (415) 555-0100"),
        (&beta, "001 415 555 0100"),
        (&acme, "+14155550100"),
    ] {
        let body = expect_error(
            app.post_as(
                "/api/phone-numbers",
                &tenant.api_key,
                &json!({ "phone_number": spelling }),
            )
            .await,
            StatusCode::CONFLICT,
            "phone_number_taken",
        )
        .await;
        let text = body.to_string();
        for private in [
            acme.id.as_str(),
            acme.name.as_str(),
            "Acme",
            acme.email.as_str(),
            first["id"].as_str().unwrap(),
        ] {
            assert!(!text.contains(private), "reveals {private:?}: {text}");
        }
    }
    assert_eq!(app.count("phone_numbers").await, count);
    let beta_numbers = expect_status(
        app.get_as("/api/phone-numbers", &beta.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(beta_numbers["count"], 0);

    // Once released, anyone may take it.
    expect_status(
        app.delete_as(
            &format!("/api/phone-numbers/{}", first["id"].as_str().unwrap()),
            &acme.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let taken = app
        .create_phone_number(&beta, json!({ "phone_number": "+14155550100" }))
        .await;
    assert_eq!(taken["phone_number"], "+14155550100");
}

#[tokio::test]
async fn numbers_are_assigned_to_the_tenants_own_assistants_only() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    let mine = app.create_assistant(&acme, json!({ "name": "Mine" })).await;
    let mine_id = mine["id"].as_str().unwrap();
    let second = app
        .create_assistant(&acme, json!({ "name": "Second" }))
        .await;
    let second_id = second["id"].as_str().unwrap();
    let theirs = app
        .create_assistant(&beta, json!({ "name": "Theirs" }))
        .await;
    let theirs_id = theirs["id"].as_str().unwrap();

    // At creation.
    let number = app
        .create_phone_number(
            &acme,
            json!({ "phone_number": "+14155550100", "assistant_id": mine_id }),
        )
        .await;
    assert_eq!(number["assigned_assistant_id"], mine_id);
    let number_id = number["id"].as_str().unwrap();
    let count = app.count("phone_numbers").await;
    for assistant in [theirs_id, "not-an-id", &bson::oid::ObjectId::new().to_hex()] {
        expect_error(
            app.post_as(
                "/api/phone-numbers",
                &acme.api_key,
                &json!({ "phone_number": "+14155550101", "assistant_id": assistant }),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    assert_eq!(app.count("phone_numbers").await, count, "nothing created");

    // Reassigning.
    let assign = format!("/api/phone-numbers/{number_id}/assign");
    let reassigned = expect_status(
        app.post_as(
            &assign,
            &acme.api_key,
            &json!({ "assistant_id": second_id }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reassigned["data"]["assigned_assistant_id"], second_id);
    let body = expect_error(
        app.post_as(
            &assign,
            &acme.api_key,
            &json!({ "assistant_id": theirs_id }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(!body.to_string().contains("Theirs"));
    let got = expect_status(
        app.get_as(&format!("/api/phone-numbers/{number_id}"), &acme.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        got["data"]["assigned_assistant_id"], second_id,
        "unchanged by the refused assignment"
    );

    // Unassigning.
    let unassigned = expect_status(
        app.post_as(
            &format!("/api/phone-numbers/{number_id}/unassign"),
            &acme.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unassigned["data"]["assigned_assistant_id"], Value::Null);
    let stored = app.raw_document("phone_numbers", number_id).await;
    assert!(matches!(
        stored.get("assigned_assistant_id"),
        None | Some(bson::Bson::Null)
    ));

    // Assigning to an unknown number.
    expect_error(
        app.post_as(
            &format!("/api/phone-numbers/{}/assign", bson::oid::ObjectId::new()),
            &acme.api_key,
            &json!({ "assistant_id": mine_id }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn status_updates_and_deletion() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let number = app
        .create_phone_number(&tenant, json!({ "phone_number": "+14155550100" }))
        .await;
    let path = format!("/api/phone-numbers/{}", number["id"].as_str().unwrap());

    let inactive = expect_status(
        app.patch_as(&path, &tenant.api_key, &json!({ "status": "inactive" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(inactive["data"]["status"], "inactive");
    assert_eq!(inactive["data"]["phone_number"], "+14155550100");
    assert!(
        inactive["data"]["updated_at"].as_str().unwrap() >= number["updated_at"].as_str().unwrap()
    );
    let got = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(got["data"]["status"], "inactive");
    let active = expect_status(
        app.patch_as(&path, &tenant.api_key, &json!({ "status": "active" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(active["data"]["status"], "active");

    let body = expect_error(
        app.patch_as(&path, &tenant.api_key, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert!(error_message(&body).contains("status"), "{body}");

    let deleted = expect_status(app.delete_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(deleted["data"]["deleted"], true);
    assert_eq!(deleted["data"]["id"], number["id"]);
    assert_eq!(app.count("phone_numbers").await, 0);
    for response in [
        app.get_as(&path, &tenant.api_key).await,
        app.delete_as(&path, &tenant.api_key).await,
        app.patch_as(&path, &tenant.api_key, &json!({ "status": "active" }))
            .await,
    ] {
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}
