//! Tenants' assistants: create with defaults, list, get, partial update, delete (refused while a
//! number routes calls to the assistant).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_error, expect_status};

fn default_turn_detection() -> Value {
    json!({ "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500 })
}

fn default_audio() -> Value {
    json!({ "codec": "pcm24k", "inbound_rate": "8k", "inbound_chunk_ms": 100, "outbound_chunk_ms": 100 })
}

#[tokio::test]
async fn an_assistant_gets_the_documented_defaults() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let response = app
        .post_as(
            "/api/assistants",
            &tenant.api_key,
            &json!({ "name": "  Front desk  " }),
        )
        .await;
    let body = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(body["success"], true);
    let data = &body["data"];
    let id = data["id"].as_str().unwrap();
    assert_eq!(data["name"], "Front desk", "trimmed");
    assert_eq!(data["model"], app.settings.openai.default_model.as_str());
    assert_eq!(data["model"], "gpt-realtime-2.1");
    assert_eq!(data["voice"], "marin");
    assert_eq!(data["instructions"], "");
    assert_eq!(data["greeting"], Value::Null);
    assert_eq!(data["language"], Value::Null);
    assert_eq!(data["transcription"], Value::Null);
    assert_eq!(data["max_call_seconds"], Value::Null);
    assert_eq!(data["turn_detection"], default_turn_detection());
    assert_eq!(data["audio"], default_audio());
    assert!(data.get("user_id").is_none() && data.get("schema_version").is_none());

    // Stored with the tenant's id, the configuration at the top level.
    let stored = app.raw_document("assistants", id).await;
    assert_eq!(
        stored.get_object_id("user_id"),
        Ok(tenant.object_id().object_id())
    );
    assert_eq!(stored.get_str("voice"), Ok("marin"));
    assert_eq!(
        stored.get_document("audio").unwrap().get_str("codec"),
        Ok("pcm24k")
    );

    let got = expect_status(
        app.get_as(&format!("/api/assistants/{id}"), &tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["data"], *data);

    // The default model follows the settings.
    let other = TestApp::spawn_with(|settings| {
        settings.openai.default_model = "gpt-realtime-mini".to_owned()
    })
    .await;
    let tenant = other.create_tenant("Acme", "ops@acme.example").await;
    let created = other
        .create_assistant(&tenant, json!({ "name": "Mini" }))
        .await;
    assert_eq!(created["model"], "gpt-realtime-mini");
}

fn full_assistant() -> Value {
    json!({
        "name": "Clinic",
        "instructions": "You book appointments.",
        "greeting": "Hello, this is the clinic.",
        "model": "gpt-realtime-2025-08-28",
        "voice": "cedar",
        "language": "pt-BR",
        "turn_detection": { "type": "semantic_vad", "threshold": 0.7, "prefix_padding_ms": 200, "silence_duration_ms": 800 },
        "transcription": { "model": "gpt-4o-transcribe", "language": "pt" },
        "audio": { "codec": "pcmu", "inbound_rate": "8k", "inbound_chunk_ms": 40, "outbound_chunk_ms": 60 },
        "max_call_seconds": 900,
    })
}

#[tokio::test]
async fn every_field_round_trips() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let created = app.create_assistant(&tenant, full_assistant()).await;
    for (field, value) in full_assistant().as_object().unwrap() {
        assert_eq!(&created[field], value, "{field}");
    }
    let listed = expect_status(
        app.get_as("/api/assistants", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["data"][0], created);
    assert_eq!(listed["next_cursor"], Value::Null);
}

#[tokio::test]
async fn assistants_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let other = app.create_tenant("Beta", "ops@beta.example").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = app
            .create_assistant(&tenant, json!({ "name": format!("Assistant {n}") }))
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    app.create_assistant(&other, json!({ "name": "Not yours" }))
        .await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/assistants?limit=2&cursor={cursor}"),
            None => "/api/assistants?limit=2".to_owned(),
        };
        let page = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
        let items = page["data"].as_array().unwrap();
        assert_eq!(page["count"], items.len());
        seen.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn patch_replaces_what_it_names_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let created = app.create_assistant(&tenant, full_assistant()).await;
    let path = format!("/api/assistants/{}", created["id"].as_str().unwrap());

    // A nested object is replaced whole; everything else stays.
    let new_audio = json!({ "codec": "pcm24k", "inbound_rate": "16k", "inbound_chunk_ms": 20, "outbound_chunk_ms": 2000 });
    let patched = expect_status(
        app.patch_as(
            &path,
            &tenant.api_key,
            &json!({ "audio": new_audio, "voice": "alloy" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let data = &patched["data"];
    assert_eq!(data["audio"], new_audio);
    assert_eq!(data["voice"], "alloy");
    for field in [
        "name",
        "instructions",
        "greeting",
        "model",
        "language",
        "turn_detection",
        "transcription",
        "max_call_seconds",
        "created_at",
        "id",
    ] {
        assert_eq!(data[field], created[field], "{field} kept");
    }
    assert!(
        data["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap(),
        "{data}"
    );

    // Stored too.
    let got = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(got["data"], *data);

    // `null` clears a nullable field; the others stay.
    let cleared = expect_status(
        app.patch_as(
            &path,
            &tenant.api_key,
            &json!({ "greeting": null, "transcription": null }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["data"]["greeting"], Value::Null);
    assert_eq!(cleared["data"]["transcription"], Value::Null);
    assert_eq!(cleared["data"]["language"], "pt-BR");
    assert_eq!(cleared["data"]["max_call_seconds"], 900);
    assert_eq!(cleared["data"]["audio"], new_audio);
    let got = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(got["data"]["greeting"], Value::Null);

    let cleared = expect_status(
        app.patch_as(
            &path,
            &tenant.api_key,
            &json!({ "language": null, "max_call_seconds": null }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["data"]["language"], Value::Null);
    assert_eq!(cleared["data"]["max_call_seconds"], Value::Null);
    assert_eq!(cleared["data"]["voice"], "alloy");

    // And can be set again.
    let greeted = expect_status(
        app.patch_as(&path, &tenant.api_key, &json!({ "greeting": "Hi!" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(greeted["data"]["greeting"], "Hi!");

    // A field that cannot be cleared refuses null, naming it, and changes nothing.
    let before = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    let body = expect_error(
        app.patch_as(&path, &tenant.api_key, &json!({ "name": null }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );
    // An empty patch changes nothing either.
    let same = expect_status(
        app.patch_as(&path, &tenant.api_key, &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(same["data"], before["data"]);
    let after = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(after["data"], before["data"]);

    // A patch that breaks a rule changes nothing.
    expect_error(
        app.patch_as(
            &path,
            &tenant.api_key,
            &json!({ "name": "Renamed", "turn_detection": { "type": "server_vad", "threshold": 2.0, "prefix_padding_ms": 300, "silence_duration_ms": 500 } }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let after = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(after["data"], before["data"]);

    // Combining with the current values is validated too: pcmu cannot take 16k audio.
    let pcmu = json!({ "codec": "pcmu", "inbound_rate": "16k", "inbound_chunk_ms": 20, "outbound_chunk_ms": 20 });
    let body = expect_error(
        app.patch_as(&path, &tenant.api_key, &json!({ "audio": pcmu }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("audio.inbound_rate:"),
        "{body}"
    );
}

#[tokio::test]
async fn an_assigned_assistant_cannot_be_deleted_until_unassigned() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let assistant = app
        .create_assistant(&tenant, json!({ "name": "Front desk" }))
        .await;
    let assistant_id = assistant["id"].as_str().unwrap();
    let number = app
        .create_phone_number(
            &tenant,
            json!({ "phone_number": "+14155550100", "assistant_id": assistant_id }),
        )
        .await;
    let number_id = number["id"].as_str().unwrap();
    let path = format!("/api/assistants/{assistant_id}");

    let body = expect_error(
        app.delete_as(&path, &tenant.api_key).await,
        StatusCode::CONFLICT,
        "assistant_in_use",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1"),
        "says how many: {body}"
    );
    assert_eq!(app.count("assistants").await, 1, "not deleted");

    expect_status(
        app.post_as(
            &format!("/api/phone-numbers/{number_id}/unassign"),
            &tenant.api_key,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let deleted = expect_status(app.delete_as(&path, &tenant.api_key).await, StatusCode::OK).await;
    assert_eq!(
        deleted["data"],
        json!({ "id": assistant_id, "deleted": true })
    );
    assert_eq!(app.count("assistants").await, 0);
    expect_error(
        app.get_as(&path, &tenant.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete_as(&path, &tenant.api_key).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The number is still there, unassigned.
    let number = expect_status(
        app.get_as(&format!("/api/phone-numbers/{number_id}"), &tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(number["data"]["assigned_assistant_id"], Value::Null);
}

#[tokio::test]
async fn unknown_assistants_are_not_found() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let ghost = bson::oid::ObjectId::new().to_hex();
    for response in [
        app.get_as(&format!("/api/assistants/{ghost}"), &tenant.api_key)
            .await,
        app.patch_as(
            &format!("/api/assistants/{ghost}"),
            &tenant.api_key,
            &json!({ "name": "x" }),
        )
        .await,
        app.delete_as(&format!("/api/assistants/{ghost}"), &tenant.api_key)
            .await,
        app.get_as("/api/assistants/nope", &tenant.api_key).await,
    ] {
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

/// Deleting an assistant and assigning it to a number at the same moment must not leave the
/// number routing calls to an assistant that no longer exists: either the deletion is refused
/// (409) or the assignment is (404).
#[tokio::test]
async fn a_concurrent_assignment_and_deletion_leave_no_dangling_assignment() {
    // Many rounds of requests with one key as fast as they go: the race, not the rate limit,
    // is under test.
    let app = TestApp::spawn_with(|settings| settings.rate_limit.exempt_loopback = true).await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let number = app
        .create_phone_number(&tenant, json!({ "phone_number": "+14155550100" }))
        .await;
    let number_id = number["id"].as_str().unwrap().to_owned();
    let assign_path = format!("/api/phone-numbers/{number_id}/assign");
    let mut dangling = Vec::new();
    for round in 0..20 {
        let assistant = app
            .create_assistant(&tenant, json!({ "name": format!("Round {round}") }))
            .await;
        let assistant_id = assistant["id"].as_str().unwrap().to_owned();
        let assign_body = json!({ "assistant_id": assistant_id });
        let delete_path = format!("/api/assistants/{assistant_id}");
        let (assigned, deleted) = tokio::join!(
            app.post_as(&assign_path, &tenant.api_key, &assign_body),
            app.delete_as(&delete_path, &tenant.api_key),
        );
        let (assigned, deleted) = (assigned.status(), deleted.status());
        let number = expect_status(
            app.get_as(&format!("/api/phone-numbers/{number_id}"), &tenant.api_key)
                .await,
            StatusCode::OK,
        )
        .await;
        let exists = app.get_as(&delete_path, &tenant.api_key).await.status() == StatusCode::OK;
        if number["data"]["assigned_assistant_id"] == assistant_id.as_str() && !exists {
            dangling.push(format!(
                "round {round}: assign {assigned}, delete {deleted}: the number routes to a deleted assistant"
            ));
        }
        // Start the next round unassigned.
        expect_status(
            app.post_as(
                &format!("/api/phone-numbers/{number_id}/unassign"),
                &tenant.api_key,
                &json!({}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    assert!(dangling.is_empty(), "{}", dangling.join("\n"));
}
