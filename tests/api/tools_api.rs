//! The tools API end to end: the tenant's named secrets (write-only, encrypted at rest, one
//! tenant's invisible to another), the tool signing secret and its rotation, assistants' tool
//! configuration checked against the account and the operator's address policy, a test run of
//! an HTTP tool against the fake tenant endpoint (signed, secrets substituted but shown
//! redacted, redirects, timeouts and loopback refused), and a manual transfer to one of the
//! assistant's destinations through the fake Teler.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::outbound::signing::{SigningSecret, verify};
use voxbridge::sim::fake_teler::FakeTeler;
use voxbridge::sim::fake_tool_server::FakeToolServer;

use crate::helpers::{
    TestApp, TestTenant, call_record, error_message, expect_error, expect_status, json_body, oid,
};

/// The value of the tenant's `crm_token` secret: it must never appear in an answer.
const CRM_TOKEN: &str = "crm-live-token-7Qz9Xw2Lp4Vb";
const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

async fn put_secret(app: &TestApp, tenant: &TestTenant, name: &str, value: &str) -> Value {
    let path = format!("/api/me/secrets/{name}");
    let answer = app
        .put_as(&path, &tenant.api_key, &json!({ "value": value }))
        .await;
    expect_status(answer, StatusCode::OK).await["data"].take()
}

/// `POST /api/me/tool-signing-secret/rotate`; answers `data`.
async fn rotate(app: &TestApp, tenant: &TestTenant) -> Value {
    let path = "/api/me/tool-signing-secret/rotate";
    let answer = app.post_as(path, &tenant.api_key, &json!({})).await;
    expect_status(answer, StatusCode::OK).await["data"].take()
}

fn signing_secret(rotated: &Value) -> SigningSecret {
    SigningSecret::parse(rotated["signing_secret"].as_str().expect("a secret")).expect("whsec_")
}

/// A tenant with the secret `crm_token` stored and a tool signing secret made.
async fn tool_tenant(app: &TestApp, name: &str) -> (TestTenant, SigningSecret) {
    let email = format!("{}@tools.example", name.to_lowercase());
    let tenant = app.create_tenant(name, &email).await;
    put_secret(app, &tenant, "crm_token", CRM_TOKEN).await;
    let secret = signing_secret(&rotate(app, &tenant).await);
    (tenant, secret)
}

/// An `http` tool named `name` calling `url` with the `crm_token` secret as bearer token.
fn http_tool(name: &str, url: &str) -> Value {
    json!({
        "type": "http", "name": name, "description": "Looks up an order", "url": url,
        "headers": { "Authorization": "Bearer {{secret.crm_token}}", "X-Source": "voxbridge-test" },
        "parameters": { "type": "object", "properties": { "order_id": { "type": "string" } } },
    })
}

/// Creates an assistant with `tools`; answers its id.
async fn assistant_with(app: &TestApp, tenant: &TestTenant, tools: Value) -> String {
    let body = json!({ "name": "Support", "tools": tools });
    let created = app.create_assistant(tenant, body).await;
    created["id"].as_str().expect("id").to_owned()
}

/// `POST /api/assistants` with `tools`, whatever the answer.
async fn create_assistant(app: &TestApp, tenant: &TestTenant, tools: Value) -> reqwest::Response {
    let body = json!({ "name": "Support", "tools": tools });
    app.post_as("/api/assistants", &tenant.api_key, &body).await
}

/// `POST /api/assistants/{id}/tools/{tool}/test` with `arguments`.
async fn test_tool(
    app: &TestApp,
    tenant: &TestTenant,
    assistant_id: &str,
    tool: &str,
    arguments: Value,
) -> reqwest::Response {
    let path = format!("/api/assistants/{assistant_id}/tools/{tool}/test");
    app.post_as(&path, &tenant.api_key, &json!({ "arguments": arguments }))
        .await
}

/// Like [`test_tool`], expecting 200; answers `data`.
async fn tool_run(app: &TestApp, tenant: &TestTenant, assistant_id: &str, tool: &str) -> Value {
    let order = json!({"order_id": "A-1001"});
    let answer = test_tool(app, tenant, assistant_id, tool, order).await;
    expect_status(answer, StatusCode::OK).await["data"].take()
}

/// A header of a tool test's `request`, by name (case-insensitive).
fn sent_header<'a>(run: &'a Value, name: &str) -> &'a str {
    run["request"]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|header| header["name"].as_str().unwrap().eq_ignore_ascii_case(name))
        .and_then(|header| header["value"].as_str())
        .unwrap_or_else(|| panic!("no {name} header: {run}"))
}

/// Whether `secret` verifies the request a tool test shows, as the tenant's server would.
fn shown_request_verifies(run: &Value, secret: &SigningSecret) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let body = run["request"]["body"].as_str().expect("body");
    let header = |name| sent_header(run, name);
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let signature = header("webhook-signature");
    let now = now.as_secs() as i64;
    verify(secret, id, timestamp, body.as_bytes(), signature, now).is_ok()
}

/// An app whose operator allow-list is `allow`, and the tenant's endpoint (given no secret
/// yet: it refuses every request until the test hands it one).
async fn app_with_fake(allow: &str) -> (TestApp, FakeToolServer) {
    let allow = allow.to_owned();
    let app = TestApp::spawn_with(|settings| settings.outbound.allow = allow).await;
    let fake = FakeToolServer::start().await.unwrap();
    (app, fake)
}

/// Asserts 422 `validation_failed`; answers the message (`field: problem`).
async fn invalid(answer: reqwest::Response) -> String {
    let body = expect_error(answer, UNPROCESSABLE, "validation_failed").await;
    error_message(&body).to_owned()
}

/// `GET /api/me/secrets`; answers the whole body.
async fn list_secrets(app: &TestApp, tenant: &TestTenant) -> Value {
    let answer = app.get_as("/api/me/secrets", &tenant.api_key).await;
    expect_status(answer, StatusCode::OK).await
}

#[tokio::test]
async fn named_secrets_are_listed_by_their_last_four_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;

    let stored = put_secret(&app, &acme, "crm_token", CRM_TOKEN).await;
    assert_eq!(stored["name"], "crm_token");
    assert_eq!(stored["last4"], "p4Vb");
    assert_eq!(stored.as_object().unwrap().len(), 3, "{stored}");
    put_secret(&app, &acme, "mcp-token", "mcp-value-0001").await;

    let listed = list_secrets(&app, &acme).await;
    let secrets = listed["data"]["secrets"].as_array().unwrap().clone();
    assert_eq!(secrets[0]["name"], "crm_token");
    assert_eq!(secrets[1]["name"], "mcp-token");
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[1]["last4"], "0001");
    assert!(!listed.to_string().contains(CRM_TOKEN), "{listed}");

    let replaced = put_secret(&app, &acme, "crm_token", "rotated-token-WXYZ").await;
    assert_eq!(replaced["last4"], "WXYZ");
    assert!(replaced["updated_at"].as_str() >= stored["updated_at"].as_str());
    let deleted = app.delete_as("/api/me/secrets/mcp-token", &acme.api_key);
    let remaining = expect_status(deleted.await, StatusCode::OK).await;
    assert_eq!(
        remaining["data"]["secrets"],
        json!([{"name": "crm_token", "last4": "WXYZ", "updated_at": replaced["updated_at"]}])
    );
    assert!(!remaining.to_string().contains("rotated"), "{remaining}");

    for unknown in ["mcp-token", "never_stored", "not.a.name"] {
        let path = format!("/api/me/secrets/{unknown}");
        let answer = app.delete_as(&path, &acme.api_key).await;
        expect_error(answer, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn bad_secret_names_and_values_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let long_name = "n".repeat(65);
    let long_value = "v".repeat(4_097);
    let cases = [
        ("bad.name", "fine-value", "name:"),
        (long_name.as_str(), "fine-value", "name:"),
        ("line_break", "first\nsecond-line-value", "value:"),
        ("empty", "", "value:"),
        ("too_long", long_value.as_str(), "value:"),
    ];
    for (name, value, field) in cases {
        let path = format!("/api/me/secrets/{name}");
        let body = json!({ "value": value });
        let message = invalid(app.put_as(&path, &acme.api_key, &body).await).await;
        assert!(message.starts_with(field), "{name}: {message}");
        assert!(value.is_empty() || !message.contains(value), "{message}");
    }
    let listed = list_secrets(&app, &acme).await;
    assert_eq!(listed["data"]["secrets"], json!([]), "nothing stored");
}

#[tokio::test]
async fn another_tenant_neither_sees_nor_deletes_the_secrets() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let beta = app.create_tenant("Beta", "ops@beta.example").await;
    put_secret(&app, &acme, "crm_token", CRM_TOKEN).await;

    let seen = list_secrets(&app, &beta).await;
    assert_eq!(seen["data"]["secrets"], json!([]));
    let deleted = app.delete_as("/api/me/secrets/crm_token", &beta.api_key);
    expect_error(deleted.await, StatusCode::NOT_FOUND, "not_found").await;
    put_secret(&app, &beta, "crm_token", "beta-own-token-BETA").await;

    let own = list_secrets(&app, &acme).await;
    assert_eq!(own["data"]["secrets"][0]["last4"], "p4Vb", "untouched");
}

#[tokio::test]
async fn a_tenant_stores_at_most_fifty_secrets() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    for index in 0..50 {
        put_secret(&app, &acme, &format!("secret_{index:02}"), "some-value").await;
    }
    let one_more = json!({"value": "x-value"});
    let path = "/api/me/secrets/one_more";
    let answer = app.put_as(path, &acme.api_key, &one_more).await;
    expect_error(answer, StatusCode::CONFLICT, "too_many_secrets").await;
    let replaced = put_secret(&app, &acme, "secret_07", "replacement-7777").await;
    assert_eq!(replaced["last4"], "7777", "replacing one is still allowed");
}

#[tokio::test]
async fn secrets_are_encrypted_in_the_stored_user_document() {
    let app = TestApp::spawn().await;
    let (acme, signing) = tool_tenant(&app, "Acme").await;

    let document = app.raw_document("users", &acme.id).await;
    let stored = document.get_document("secrets").unwrap();
    let named = stored.get_document("named").unwrap();
    assert_eq!(
        named.get_document("crm_token").unwrap().get_str("last4"),
        Ok("p4Vb")
    );
    let mut raw = Vec::new();
    document.to_writer(&mut raw).unwrap();
    for clear in [CRM_TOKEN, &signing.expose()["whsec_".len()..]] {
        let found = raw.windows(clear.len()).any(|b| b == clear.as_bytes());
        assert!(!found, "{clear} is stored in clear: {document}");
    }
}

#[tokio::test]
async fn the_signing_secret_is_shown_once_and_rotations_keep_the_old_one_for_a_while() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;

    let first = rotate(&app, &acme).await;
    let text = first["signing_secret"].as_str().unwrap().to_owned();
    assert!(text.starts_with("whsec_"), "{first}");
    signing_secret(&first);
    assert_eq!(first["previous_valid_until"], Value::Null, "{first}");
    let me = json_body(app.get_as("/api/me", &acme.api_key).await).await;
    assert!(!me.to_string().contains(&text["whsec_".len()..]), "{me}");

    let second = rotate(&app, &acme).await;
    assert_ne!(second["signing_secret"], first["signing_secret"]);
    let until = second["previous_valid_until"].as_str().expect("a time");
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let tomorrow = chrono::Utc::now() + chrono::Duration::hours(23);
    assert!(until > tomorrow, "the default overlap is a day: {until}");
}

#[tokio::test]
async fn assistants_take_every_kind_of_tool_and_show_them_normalised() {
    let app = TestApp::spawn().await;
    let (acme, _) = tool_tenant(&app, "Acme").await;
    put_secret(&app, &acme, "mcp_token", "mcp-secret-value").await;
    let tools = json!([
        {"type": "end_call", "name": "hang_up", "description": "When the caller is done"},
        {"type": "transfer_call", "name": "transfer", "description": "To a human", "destinations": [
            {"id": "sales", "number": "+1 (415) 555-0177", "description": "Sales"},
            {"id": "desk", "sip_uri": "sip:desk@pbx.example.com", "description": "Front desk"}]},
        {"type": "send_dtmf", "name": "press", "description": "Phone menus"},
        http_tool("lookup_order", "https://crm.example.com/orders"),
        {"type": "mcp", "name": "docs", "description": "Docs", "server_url": "https://mcp.example.com/sse",
         "allowed_tools": ["search"], "authorization_secret": "mcp_token"},
    ]);
    let body =
        json!({"name": "Support", "tools": tools, "tool_choice": "required", "tool_filler": null});
    let created = app.create_assistant(&acme, body).await;

    let shown = &created["tools"];
    assert_eq!(shown.as_array().unwrap().len(), 5, "{created}");
    assert_eq!(shown[1]["destinations"][0]["number"], "+14155550177");
    assert_eq!(shown[1]["destinations"][1], tools[1]["destinations"][1]);
    assert_eq!(
        shown[3]["headers"], tools[3]["headers"],
        "secret references"
    );
    assert_eq!(shown[3]["method"], "POST");
    assert_eq!(shown[3]["timeout_ms"], 5_000);
    assert_eq!(shown[3]["max_response_bytes"], 16_384);
    assert_eq!(shown[3]["cancel_on_barge_in"], false);
    assert_eq!(shown[4], tools[4]);
    assert_eq!(created["tool_choice"], "required");
    assert_eq!(created["tool_filler"], Value::Null);
    assert!(!created.to_string().contains(CRM_TOKEN), "{created}");
    let path = format!("/api/assistants/{}", created["id"].as_str().unwrap());
    let read = expect_status(app.get_as(&path, &acme.api_key).await, StatusCode::OK).await;
    assert_eq!(read["data"]["tools"], created["tools"]);
}

#[tokio::test]
async fn tools_that_do_not_fit_the_account_or_the_address_policy_are_refused() {
    let app = TestApp::spawn().await;
    let acme = app.create_tenant("Acme", "ops@acme.example").await;
    let create = |tools: Value| create_assistant(&app, &acme, tools);
    let plain =
        json!({"type": "http", "name": "h", "description": "", "url": "https://crm.example.com/"});
    let unsigned = create(json!([plain])).await;
    expect_error(unsigned, StatusCode::CONFLICT, "signing_secret_required").await;

    rotate(&app, &acme).await;
    let unknown_mcp_secret = json!([plain, {"type": "mcp", "name": "m", "description": "",
        "server_url": "https://mcp.example.com", "allowed_tools": ["a"], "authorization_secret": "nope"}]);
    let at = |url: &str| json!([{"type": "http", "name": "h", "description": "", "url": url}]);
    let cases = [
        (
            json!([http_tool("h", "https://a.example/")]),
            "tools[0].headers:",
        ),
        (unknown_mcp_secret, "tools[1].authorization_secret:"),
        (at("http://crm.example.com/"), "tools[0].url:"),
        (at("https://127.0.0.1:8443/"), "tools[0].url:"),
    ];
    for (tools, field) in cases {
        let message = invalid(create(tools.clone()).await).await;
        assert!(message.starts_with(field), "{tools}: {message}");
    }
    // A PATCH naming tools is checked the same way.
    let id = assistant_with(&app, &acme, json!([plain])).await;
    let patch = json!({"tools": [http_tool("h", "https://crm.example.com/")]});
    let path = format!("/api/assistants/{id}");
    let message = invalid(app.patch_as(&path, &acme.api_key, &patch).await).await;
    assert!(message.starts_with("tools[0].headers:"), "{message}");
}

#[tokio::test]
async fn a_tool_test_sends_a_signed_request_with_the_secret_and_shows_it_redacted() {
    let (app, fake) = app_with_fake("127.0.0.1").await;
    let (acme, signing) = tool_tenant(&app, "Acme").await;
    fake.set_secret(Some(signing.clone()));
    let tool = http_tool("lookup_order", &fake.url("/orders/lookup"));
    let id = assistant_with(&app, &acme, json!([tool])).await;

    let run = tool_run(&app, &acme, &id, "lookup_order").await;
    assert!(run["status"].is_u64(), "the endpoint answered: {run}");
    assert_eq!(run["request"]["method"], "POST");
    assert!(sent_header(&run, "webhook-id").starts_with("test_"));
    assert!(sent_header(&run, "webhook-signature").starts_with("v1,"));
    assert_eq!(sent_header(&run, "Authorization"), "[redacted]");
    assert_eq!(sent_header(&run, "X-Source"), "voxbridge-test");
    assert!(shown_request_verifies(&run, &signing), "{run}");
    assert!(!run.to_string().contains(CRM_TOKEN), "{run}");

    let received = fake.requests();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert!(request.signature_valid, "{:?}", request.signature_error);
    let bearer = format!("Bearer {CRM_TOKEN}");
    assert_eq!(request.header("authorization"), Some(bearer.as_str()));
    let id_header = sent_header(&run, "webhook-id");
    assert_eq!(request.header("webhook-id"), Some(id_header));
    assert_eq!(request.body["arguments"], json!({"order_id": "A-1001"}));
    assert_eq!(request.body["call"]["id"], Value::Null, "no call");
}

#[tokio::test]
async fn during_a_rotation_requests_verify_with_the_old_secret_and_the_new_one() {
    let (app, fake) = app_with_fake("127.0.0.1").await;
    let (acme, old) = tool_tenant(&app, "Acme").await;
    let tool = json!([http_tool("lookup", &fake.url("/orders/lookup"))]);
    let id = assistant_with(&app, &acme, tool).await;
    let new = signing_secret(&rotate(&app, &acme).await);

    fake.set_secret(Some(old.clone()));
    let with_old = tool_run(&app, &acme, &id, "lookup").await;
    fake.set_secret(Some(new.clone()));
    let with_new = tool_run(&app, &acme, &id, "lookup").await;

    for run in [&with_old, &with_new] {
        let signatures: Vec<&str> = sent_header(run, "webhook-signature").split(' ').collect();
        assert_eq!(signatures.len(), 2, "{run}");
        assert!(signatures.iter().all(|entry| entry.starts_with("v1,")));
        assert!(shown_request_verifies(run, &old) && shown_request_verifies(run, &new));
    }
    let received = fake.requests();
    assert_eq!(received.len(), 2);
    let errors: Vec<_> = received.iter().map(|r| r.signature_error.clone()).collect();
    assert_eq!(errors, [None, None], "each verified with one secret only");
}

#[tokio::test]
async fn a_tool_test_shows_the_answer_and_refuses_redirects_and_slow_endpoints() {
    let (app, fake) = app_with_fake("127.0.0.1").await;
    let (acme, signing) = tool_tenant(&app, "Acme").await;
    fake.set_secret(Some(signing));
    let mut slow = http_tool("slow", &fake.url("/slow?ms=3000"));
    slow["timeout_ms"] = json!(500);
    let lookup = http_tool("lookup", &fake.url("/orders/lookup"));
    let moved = http_tool("moved", &fake.url("/redirect"));
    let id = assistant_with(&app, &acme, json!([lookup, moved, slow])).await;

    let run = tool_run(&app, &acme, &id, "lookup").await;
    let shape_errors = &fake.requests()[0].shape_errors;
    assert!(
        shape_errors.is_empty(),
        "the body breaks the contract: {shape_errors:?}"
    );
    assert_eq!(
        (&run["status"], &run["error_code"]),
        (&json!(200), &Value::Null)
    );
    assert!(run["output"].as_str().unwrap().contains("shipped"), "{run}");
    let moved = tool_run(&app, &acme, &id, "moved").await;
    assert_eq!(moved["error_code"], "redirect_refused", "{moved}");
    assert_eq!(moved["status"], 302);
    let timed_out = tool_run(&app, &acme, &id, "slow").await;
    assert_eq!(timed_out["error_code"], "timeout", "{timed_out}");
    assert_eq!(timed_out["status"], Value::Null);
    let latency = timed_out["latency_ms"].as_u64().unwrap();
    assert!((500..2_500).contains(&latency), "{timed_out}");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/orders/lookup", "/redirect", "/slow"],
        "no redirect followed"
    );
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_allow_listed() {
    let (app, fake) = app_with_fake("").await;
    let port = url::Url::parse(&fake.base_url()).unwrap().port().unwrap();
    let (acme, signing) = tool_tenant(&app, "Acme").await;
    fake.set_secret(Some(signing));
    let https = format!("https://localhost:{port}/orders/lookup");
    let id = assistant_with(&app, &acme, json!([http_tool("lookup", &https)])).await;

    let refused = tool_run(&app, &acme, &id, "lookup").await;
    assert_eq!(refused["error_code"], "refused_address", "{refused}");
    assert_eq!(refused["status"], Value::Null);
    assert!(fake.requests().is_empty(), "nothing reached the endpoint");

    let listed = TestApp::spawn_with(|settings| settings.outbound.allow = "localhost".into()).await;
    let (beta, signing) = tool_tenant(&listed, "Beta").await;
    fake.set_secret(Some(signing));
    let http = format!("http://localhost:{port}/orders/lookup");
    let id = assistant_with(&listed, &beta, json!([http_tool("lookup", &http)])).await;
    let reached = tool_run(&listed, &beta, &id, "lookup").await;
    assert!(reached["status"].is_u64(), "answered: {reached}");
    let received = fake.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].signature_error, None);
}

#[tokio::test]
async fn only_the_tenants_own_http_tools_can_be_tested_and_only_with_a_signing_secret() {
    let app = TestApp::spawn().await;
    let (acme, _) = tool_tenant(&app, "Acme").await;
    let (beta, _) = tool_tenant(&app, "Beta").await;
    let tools = json!([
        http_tool("lookup", "https://crm.example.com/orders"),
        {"type": "end_call", "name": "hang_up", "description": ""},
    ]);
    let id = assistant_with(&app, &acme, tools).await;
    let missing = "0123456789abcdef01234567";

    for (tenant, assistant, tool) in [
        (&acme, id.as_str(), "nope"),
        (&acme, missing, "lookup"),
        (&beta, id.as_str(), "lookup"),
    ] {
        let answer = test_tool(&app, tenant, assistant, tool, json!({})).await;
        expect_error(answer, StatusCode::NOT_FOUND, "not_found").await;
    }
    let answer = test_tool(&app, &acme, &id, "hang_up", json!({})).await;
    expect_error(answer, UNPROCESSABLE, "tool_not_testable").await;

    // A tenant whose signing secret is gone (as after a restore from an old backup).
    app.storage
        .collection::<bson::Document>("users")
        .update_one(
            bson::doc! { "_id": acme.object_id() },
            bson::doc! { "$unset": { "secrets.tool_signing_secret": "" } },
        )
        .await
        .unwrap();
    let answer = test_tool(&app, &acme, &id, "lookup", json!({})).await;
    expect_error(answer, StatusCode::CONFLICT, "signing_secret_required").await;
}

#[tokio::test]
async fn a_live_call_is_transferred_to_a_destination_of_its_assistant() {
    let teler = FakeTeler::start().await.expect("fake Teler starts");
    let base = teler.base_url();
    let app = TestApp::spawn_with(|settings| settings.frejun.api_base_url = base).await;
    let acme = app.calling_tenant("Acme", "+14155550100", 5).await;
    let transfer = json!({"tools": [{"type": "transfer_call", "name": "transfer", "description": "",
        "destinations": [
            {"id": "sales", "number": "+14155550177", "description": "Sales"},
            {"id": "desk", "sip_uri": "sip:desk@pbx.example.com", "description": "Front desk"}]}]});
    let assistant = format!("/api/assistants/{}", acme.assistant_id);
    let patched = app.patch_as(&assistant, &acme.tenant.api_key, &transfer);
    expect_status(patched.await, StatusCode::OK).await;
    let at_frejun = teler.receive_call("fj-test-key-0001", "+14155550123", &acme.number);
    let now = bson::DateTime::now();
    let mut call = call_record(acme.tenant.object_id(), now, CallStatus::InProgress);
    call.assistant_id = Some(oid(&acme.assistant_id));
    call.frejun_call_id = Some(at_frejun.id.clone());
    app.insert_call(&call).await;
    let path = format!("/api/calls/{}/transfer", call.id);

    for body in [
        json!({"destination_id": "billing"}),
        json!({"destination_id": "desk", "number": "+14155550177"}),
        json!({}),
    ] {
        let message = invalid(app.post_as(&path, &acme.tenant.api_key, &body).await).await;
        assert!(message.starts_with("destination_id:"), "{body}: {message}");
    }
    assert!(teler.requests().is_empty(), "nothing was asked of FreJun");

    let body = json!({"destination_id": "desk"});
    let answer = app.post_as(&path, &acme.tenant.api_key, &body).await;
    let answer = expect_status(answer, StatusCode::ACCEPTED).await;
    assert_eq!(answer["data"]["end_reason"], "transferred", "{answer}");
    let operations = teler.calls()[0].operations.clone();
    assert_eq!(operations, ["transfer:sip:desk@pbx.example.com"]);
    let logged = app.call_log(&call.id.to_string()).await;
    assert_eq!(logged.end_reason, Some(EndReason::Transferred));
}
