//! OpenAI models with a shutdown date: new assistants get current models, naming a retiring one
//! answers a warning and marks the assistant, naming a retired one is refused, and
//! `voxbridge upgrade-models` moves assistants to the replacements (a dry run by default).

use bson::doc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::commands::upgrade_models;

use crate::helpers::{TestApp, TestTenant, expect_error, expect_status, oid};

async fn create(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    expect_status(
        app.post_as("/api/assistants", &tenant.api_key, &body).await,
        StatusCode::CREATED,
    )
    .await
}

#[tokio::test]
async fn new_assistants_get_current_models_and_no_warnings() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let answer = create(&app, &tenant, json!({ "name": "Default" })).await;
    assert!(answer.get("warnings").is_none(), "{answer}");
    assert_eq!(answer["data"]["model"], "gpt-realtime-2.1");
    assert_eq!(answer["data"]["model_notices"], json!([]));
}

#[tokio::test]
async fn a_retiring_model_answers_warnings_and_marks_the_assistant() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let answer = create(
        &app,
        &tenant,
        json!({
            "name": "Old",
            "model": "gpt-realtime",
            "transcription": { "model": "gpt-4o-mini-transcribe" },
        }),
    )
    .await;
    let warnings = answer["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{answer}");
    assert_eq!(warnings[0]["code"], "model_retiring");
    assert_eq!(warnings[0]["field"], "model");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("2027-01-20") && message.contains("gpt-realtime-2.1"),
        "{message}"
    );
    assert_eq!(warnings[1]["field"], "transcription.model");

    let id = answer["data"]["id"].as_str().unwrap().to_owned();
    let listed = expect_status(
        app.get_as("/api/assistants", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let notices = &listed["data"][0]["model_notices"];
    assert_eq!(
        notices[0],
        json!({
            "field": "model",
            "model": "gpt-realtime",
            "shutdown_date": "2027-01-20",
            "replacement": "gpt-realtime-2.1",
            "retired": false,
        })
    );
    assert_eq!(notices[1]["shutdown_date"], "2027-02-26");
    assert_eq!(notices[1]["replacement"], "gpt-live-transcribe");

    // Moving to the replacement clears both.
    let fixed = expect_status(
        app.patch_as(
            &format!("/api/assistants/{id}"),
            &tenant.api_key,
            &json!({ "model": "gpt-realtime-2.1", "transcription": { "model": "gpt-live-transcribe" } }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(fixed.get("warnings").is_none(), "{fixed}");
    assert_eq!(fixed["data"]["model_notices"], json!([]));
}

#[tokio::test]
async fn a_retired_model_is_refused_when_named_and_only_flagged_when_not() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let body = expect_error(
        app.post_as(
            "/api/assistants",
            &tenant.api_key,
            &json!({ "name": "Preview", "model": "gpt-4o-realtime-preview" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("model:"), "{message}");
    assert!(message.contains("was shut down"), "{message}");
    assert_eq!(app.count("assistants").await, 0);

    // An assistant stored before its model was retired: renaming it still works (with a
    // warning), choosing the retired model again does not.
    let answer = create(&app, &tenant, json!({ "name": "Kept" })).await;
    let id = answer["data"]["id"].as_str().unwrap().to_owned();
    app.storage
        .collection::<bson::Document>("assistants")
        .update_one(
            doc! { "_id": oid::<bson::oid::ObjectId>(&id) },
            doc! { "$set": { "model": "gpt-4o-realtime-preview" } },
        )
        .await
        .unwrap();
    let path = format!("/api/assistants/{id}");
    let renamed = expect_status(
        app.patch_as(&path, &tenant.api_key, &json!({ "name": "Renamed" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["warnings"][0]["code"], "model_retired");
    assert_eq!(renamed["data"]["model_notices"][0]["retired"], true);
    expect_error(
        app.patch_as(
            &path,
            &tenant.api_key,
            &json!({ "model": "gpt-4o-realtime-preview" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn upgrade_models_is_a_dry_run_until_applied() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    for (tenant, model) in [
        (&acme, "gpt-realtime"),
        (&acme, "gpt-realtime-mini"),
        (&beta, "gpt-realtime"),
        (&beta, "gpt-realtime-2.1"),
    ] {
        create(&app, tenant, json!({ "name": model, "model": model })).await;
    }

    let plan = upgrade_models::plan_and_apply(&app.storage, false)
        .await
        .unwrap();
    assert!(
        plan.contains(&"model: gpt-realtime → gpt-realtime-2.1 (shuts down 2027-01-20): 2 assistant(s) would change".to_owned()),
        "{plan:#?}"
    );
    assert!(
        plan.iter().any(|line| line.starts_with("dry run")),
        "{plan:#?}"
    );
    let models = |app: &TestApp| {
        let storage = app.storage.clone();
        async move {
            let mut models: Vec<String> = storage
                .collection::<bson::Document>("assistants")
                .distinct("model", doc! {})
                .await
                .unwrap()
                .into_iter()
                .map(|model| model.as_str().unwrap().to_owned())
                .collect();
            models.sort();
            models
        }
    };
    assert_eq!(
        models(&app).await,
        ["gpt-realtime", "gpt-realtime-2.1", "gpt-realtime-mini"],
        "a dry run changes nothing"
    );

    let applied = upgrade_models::plan_and_apply(&app.storage, true)
        .await
        .unwrap();
    assert_eq!(
        applied.last().unwrap(),
        "3 assistant(s) moved to current models"
    );
    assert_eq!(
        models(&app).await,
        ["gpt-realtime-2.1", "gpt-realtime-2.1-mini"]
    );
    let again = upgrade_models::plan_and_apply(&app.storage, true)
        .await
        .unwrap();
    assert_eq!(
        again,
        ["no assistant uses a model with an announced shutdown"]
    );
}

#[tokio::test]
async fn serve_warns_at_startup_about_assistants_on_models_shutting_down_soon() {
    crate::logs::capture();
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    create(
        &app,
        &tenant,
        json!({ "name": "Old", "model": "gpt-realtime" }),
    )
    .await;
    create(&app, &tenant, json!({ "name": "New" })).await;

    let day = |text| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    // 45 days before gpt-realtime's shutdown: one assistant to warn about.
    upgrade_models::warn_at_startup(&app.storage, &app.settings, day("2026-12-06")).await;
    let warned = crate::logs::lines_with_message(
        "assistants use an OpenAI model that shuts down soon; `voxbridge upgrade-models` moves \
         them to the replacements",
    );
    assert!(
        warned
            .iter()
            .any(|line| line["assistants"] == 1 && line["within_days"] == 60),
        "{warned:?}"
    );
}
