//! Who may call what: every tenant route refuses missing, unknown and revoked keys and suspended
//! tenants; a tenant never reaches another tenant's data (another tenant's ids are simply not
//! found); the admin sees every tenant; admin and tenant credentials are not interchangeable.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use voxbridge::domain::call::CallStatus;

use crate::helpers::{TestApp, TestTenant, call_record, expect_error, expect_status, json_body};

/// One route of the tenant API with a body that is valid for it.
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Route {
    fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            path: path.into(),
            body,
        }
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the path names one of the tenant's resources by id.
    fn names_an_id(&self, ids: &Ids) -> bool {
        [&ids.assistant, &ids.number, &ids.call]
            .iter()
            .any(|id| self.path.contains(id.as_str()))
    }
}

/// Ids of one tenant's resources, used to fill in the routes' paths.
#[derive(Clone)]
struct Ids {
    assistant: String,
    number: String,
    call: String,
}

/// Every route of the tenant API, each with a valid body.
fn tenant_routes(ids: &Ids) -> Vec<Route> {
    let Ids {
        assistant,
        number,
        call,
    } = ids;
    vec![
        Route::new(Method::GET, "/api/me", None),
        Route::new(
            Method::PUT,
            "/api/me/credentials",
            Some(json!({ "openai_api_key": "sk-route-check-000000000001" })),
        ),
        Route::new(
            Method::POST,
            "/api/assistants",
            Some(json!({ "name": "Route check" })),
        ),
        Route::new(Method::GET, "/api/assistants", None),
        Route::new(Method::GET, format!("/api/assistants/{assistant}"), None),
        Route::new(
            Method::PATCH,
            format!("/api/assistants/{assistant}"),
            Some(json!({ "name": "Renamed by route check" })),
        ),
        Route::new(Method::DELETE, format!("/api/assistants/{assistant}"), None),
        Route::new(
            Method::POST,
            "/api/phone-numbers",
            Some(json!({ "phone_number": "+14155550177" })),
        ),
        Route::new(Method::GET, "/api/phone-numbers", None),
        Route::new(Method::GET, format!("/api/phone-numbers/{number}"), None),
        Route::new(
            Method::PATCH,
            format!("/api/phone-numbers/{number}"),
            Some(json!({ "status": "inactive" })),
        ),
        Route::new(Method::DELETE, format!("/api/phone-numbers/{number}"), None),
        Route::new(
            Method::POST,
            format!("/api/phone-numbers/{number}/assign"),
            Some(json!({ "assistant_id": assistant })),
        ),
        Route::new(
            Method::POST,
            format!("/api/phone-numbers/{number}/unassign"),
            None,
        ),
        Route::new(Method::GET, "/api/calls", None),
        Route::new(Method::GET, "/api/calls/active", None),
        Route::new(Method::GET, "/api/calls/history", None),
        Route::new(Method::GET, "/api/calls/stats", None),
        Route::new(Method::GET, format!("/api/calls/{call}"), None),
        Route::new(Method::GET, format!("/api/calls/{call}/status"), None),
    ]
}

/// Every route of the admin API.
fn admin_routes(user_id: &str, key_id: &str) -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Intruder", "email": "intruder@example.com" })),
        ),
        Route::new(Method::GET, "/api/admin/users", None),
        Route::new(Method::GET, format!("/api/admin/users/{user_id}"), None),
        Route::new(
            Method::PATCH,
            format!("/api/admin/users/{user_id}"),
            Some(json!({ "max_concurrent_calls": 500 })),
        ),
        Route::new(
            Method::POST,
            format!("/api/admin/users/{user_id}/suspend"),
            None,
        ),
        Route::new(
            Method::POST,
            format!("/api/admin/users/{user_id}/reactivate"),
            None,
        ),
        Route::new(
            Method::POST,
            format!("/api/admin/users/{user_id}/api-keys"),
            Some(json!({ "name": "stolen" })),
        ),
        Route::new(
            Method::GET,
            format!("/api/admin/users/{user_id}/api-keys"),
            None,
        ),
        Route::new(
            Method::DELETE,
            format!("/api/admin/users/{user_id}/api-keys/{key_id}"),
            None,
        ),
        Route::new(Method::GET, "/api/admin/calls", None),
    ]
}

/// A tenant with one assistant, one number assigned to it and one call.
struct Seeded {
    tenant: TestTenant,
    ids: Ids,
    assistant_name: String,
    phone_number: String,
}

async fn seed(app: &TestApp, name: &str, email: &str, phone: &str) -> Seeded {
    let tenant = app.create_tenant(name, email).await;
    let assistant_name = format!("{name} receptionist");
    let assistant = app
        .create_assistant(&tenant, json!({ "name": assistant_name }))
        .await;
    let assistant_id = assistant["id"].as_str().unwrap().to_owned();
    let number = app
        .create_phone_number(
            &tenant,
            json!({ "phone_number": phone, "assistant_id": assistant_id }),
        )
        .await;
    let mut call = call_record(
        tenant.object_id(),
        bson::DateTime::now(),
        CallStatus::Completed,
    );
    call.assistant_id = Some(crate::helpers::oid(&assistant_id));
    // A caller of this tenant's own, so that no number is shared between tenants' data.
    call.from_number = Some(format!("{}9", &phone[..phone.len() - 1]));
    call.to_number = Some(phone.to_owned());
    app.insert_call(&call).await;
    Seeded {
        ids: Ids {
            assistant: assistant_id,
            number: number["id"].as_str().unwrap().to_owned(),
            call: call.id.to_hex(),
        },
        tenant,
        assistant_name,
        phone_number: phone.to_owned(),
    }
}

/// Counts of the tenant data collections, to show that refused requests wrote nothing.
async fn data_counts(app: &TestApp) -> Vec<u64> {
    let mut counts = Vec::new();
    for collection in [
        "users",
        "api_keys",
        "assistants",
        "phone_numbers",
        "call_logs",
    ] {
        counts.push(app.count(collection).await);
    }
    counts
}

/// Sends every route with `token` and checks each answers `status` with `code`; collects every
/// mismatch so that one run reports all of them.
async fn expect_everywhere(
    app: &TestApp,
    routes: &[Route],
    token: Option<&str>,
    status: StatusCode,
    codes: &[&str],
) {
    let mut failures = Vec::new();
    for route in routes {
        let response = app
            .send(
                route.method.clone(),
                &route.path,
                token,
                route.body.as_ref(),
            )
            .await;
        let actual = response.status();
        let body = json_body(response).await;
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if actual != status || !codes.contains(&code.as_str()) || body["success"] != false {
            failures.push(format!("{}: {actual} {body}", route.label()));
        }
    }
    assert!(
        failures.is_empty(),
        "expected {status} {codes:?} on every route, got:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_tenant_route_refuses_missing_malformed_and_unknown_credentials() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let routes = tenant_routes(&a.ids);
    assert_eq!(routes.len(), 20, "every tenant route is in the table");
    let before = data_counts(&app).await;

    expect_everywhere(
        &app,
        &routes,
        None,
        StatusCode::UNAUTHORIZED,
        &["unauthorized"],
    )
    .await;

    // Malformed headers.
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        &a.tenant.api_key,
    ] {
        for route in &routes {
            let mut request = app
                .request(route.method.clone(), &route.path)
                .header("authorization", header);
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let body = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
            assert!(
                !body.to_string().contains(&a.tenant.api_key),
                "{header:?} {}: {body}",
                route.label()
            );
        }
    }

    // A well-formed key nobody was given.
    let unknown = format!("{}x", a.tenant.api_key);
    expect_everywhere(
        &app,
        &routes,
        Some(&unknown),
        StatusCode::UNAUTHORIZED,
        &["invalid_api_key"],
    )
    .await;

    assert_eq!(
        data_counts(&app).await,
        before,
        "refused requests wrote nothing"
    );
}

/// Issues a second key for `a`, checks that it works, revokes it and returns it.
async fn revoked_key(app: &TestApp, a: &Seeded) -> String {
    let admin = app.admin_token();
    let keys = format!("/api/admin/users/{}/api-keys", a.tenant.id);
    let issued = expect_status(
        app.post_as(&keys, &admin, &json!({ "name": "to revoke" }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let key = issued["data"]["api_key"].as_str().unwrap().to_owned();
    let key_id = issued["data"]["id"].as_str().unwrap();
    assert_eq!(
        app.get_as("/api/me", &key).await.status(),
        StatusCode::OK,
        "the new key works before it is revoked"
    );
    expect_status(
        app.delete_as(&format!("{keys}/{key_id}"), &admin).await,
        StatusCode::OK,
    )
    .await;
    key
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_every_tenant_route() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let second_key = revoked_key(&app, &a).await;

    let before = data_counts(&app).await;
    let routes = tenant_routes(&a.ids);
    expect_everywhere(
        &app,
        &routes,
        Some(&second_key),
        StatusCode::UNAUTHORIZED,
        &["api_key_revoked"],
    )
    .await;
    assert_eq!(
        data_counts(&app).await,
        before,
        "refused requests wrote nothing"
    );

    // The tenant's other key is unaffected, and nothing was changed through the revoked one.
    let me = expect_status(
        app.get_as("/api/me", &a.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["data"]["credentials"]["openai_api_key"]["set"], false);
    let assistant = expect_status(
        app.get_as(
            &format!("/api/assistants/{}", a.ids.assistant),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(assistant["data"]["name"], a.assistant_name.as_str());
    let number = expect_status(
        app.get_as(
            &format!("/api/phone-numbers/{}", a.ids.number),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(number["data"]["status"], "active");
    assert_eq!(
        number["data"]["assigned_assistant_id"],
        a.ids.assistant.as_str()
    );
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_everywhere_until_reactivated() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let b = seed(&app, "Beta", "ops@beta.example", "+14155550200").await;
    let admin = app.admin_token();
    let suspended = expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/suspend", a.tenant.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(suspended["data"]["status"], "suspended");

    let before = data_counts(&app).await;
    let routes = tenant_routes(&a.ids);
    expect_everywhere(
        &app,
        &routes,
        Some(&a.tenant.api_key),
        StatusCode::FORBIDDEN,
        &["tenant_suspended"],
    )
    .await;
    assert_eq!(
        data_counts(&app).await,
        before,
        "refused requests wrote nothing"
    );

    // Another tenant is not affected.
    assert_eq!(
        app.get_as("/api/me", &b.tenant.api_key).await.status(),
        StatusCode::OK
    );

    let reactivated = expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/reactivate", a.tenant.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reactivated["data"]["status"], "active");

    // Access is back on every read route, and the refused writes did not happen.
    for route in routes.iter().filter(|route| route.method == Method::GET) {
        let response = app.get_as(&route.path, &a.tenant.api_key).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", route.label());
    }
    let me = expect_status(
        app.get_as("/api/me", &a.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["data"]["status"], "active");
    assert_eq!(me["data"]["credentials"]["openai_api_key"]["set"], false);
    let assistant = expect_status(
        app.get_as(
            &format!("/api/assistants/{}", a.ids.assistant),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(assistant["data"]["name"], a.assistant_name.as_str());
    let number = expect_status(
        app.get_as(
            &format!("/api/phone-numbers/{}", a.ids.number),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(number["data"]["status"], "active");
    // Writes work again.
    expect_status(
        app.patch_as(
            &format!("/api/assistants/{}", a.ids.assistant),
            &a.tenant.api_key,
            &json!({ "name": "Back in business" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let b = seed(&app, "Beta", "ops@beta.example", "+14155550200").await;
    let secrets_of_a = [
        a.tenant.id.as_str(),
        a.tenant.name.as_str(),
        a.tenant.email.as_str(),
        a.ids.assistant.as_str(),
        a.ids.number.as_str(),
        a.ids.call.as_str(),
        a.assistant_name.as_str(),
        a.phone_number.as_str(),
    ];
    let leaks = |body: &Value| -> Vec<&str> {
        let text = body.to_string();
        secrets_of_a
            .iter()
            .copied()
            .filter(|secret| text.contains(secret))
            .collect()
    };

    let mut failures = Vec::new();
    for route in tenant_routes(&a.ids) {
        let response = app
            .send(
                route.method.clone(),
                &route.path,
                Some(&b.tenant.api_key),
                route.body.as_ref(),
            )
            .await;
        let status = response.status();
        let body = json_body(response).await;
        let names_an_id = route.names_an_id(&a.ids);
        if names_an_id && (status != StatusCode::NOT_FOUND || body["error"]["code"] != "not_found")
        {
            failures.push(format!(
                "{}: expected 404, got {status} {body}",
                route.label()
            ));
        }
        if !names_an_id && !status.is_success() {
            failures.push(format!(
                "{}: B's own request failed: {status} {body}",
                route.label()
            ));
        }
        let leaked = leaks(&body);
        if !leaked.is_empty() {
            failures.push(format!("{}: leaks {leaked:?}: {body}", route.label()));
        }
    }

    // A's assistant is not B's to use either: not on B's own number, not on a new number, not
    // as a filter.
    let foreign_assistant = json!({ "assistant_id": a.ids.assistant });
    let cross: Vec<(Method, String, Option<Value>, StatusCode)> = vec![
        (
            Method::POST,
            format!("/api/phone-numbers/{}/assign", b.ids.number),
            Some(foreign_assistant.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/phone-numbers".to_owned(),
            Some(json!({ "phone_number": "+14155550300", "assistant_id": a.ids.assistant })),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/calls?assistant_id={}", a.ids.assistant),
            None,
            StatusCode::OK,
        ),
        (
            Method::GET,
            format!("/api/calls/stats?assistant_id={}", a.ids.assistant),
            None,
            StatusCode::OK,
        ),
    ];
    for (method, path, body, expected) in cross {
        let response = app
            .send(
                method.clone(),
                &path,
                Some(&b.tenant.api_key),
                body.as_ref(),
            )
            .await;
        let status = response.status();
        let body = json_body(response).await;
        if status != expected {
            failures.push(format!(
                "{method} {path}: expected {expected}, got {status} {body}"
            ));
        }
        if status == StatusCode::OK {
            let empty = body["data"] == json!([]) || body["data"]["total_calls"] == 0;
            if !empty {
                failures.push(format!("{method} {path}: shows A's calls: {body}"));
            }
        }
        let leaked: Vec<&str> = leaks(&body)
            .into_iter()
            .filter(|leak| !path.contains(leak))
            .collect();
        if !leaked.is_empty() {
            failures.push(format!("{method} {path}: leaks {leaked:?}: {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing of A's changed through B's requests.
    let assistant = expect_status(
        app.get_as(
            &format!("/api/assistants/{}", a.ids.assistant),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(assistant["data"]["name"], a.assistant_name.as_str());
    let number = expect_status(
        app.get_as(
            &format!("/api/phone-numbers/{}", a.ids.number),
            &a.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(number["data"]["status"], "active");
    assert_eq!(
        number["data"]["assigned_assistant_id"],
        a.ids.assistant.as_str()
    );
    let call = expect_status(
        app.get_as(&format!("/api/calls/{}", a.ids.call), &a.tenant.api_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(call["data"]["user_id"], a.tenant.id.as_str());
    let b_number = expect_status(
        app.get_as(
            &format!("/api/phone-numbers/{}", b.ids.number),
            &b.tenant.api_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        b_number["data"]["assigned_assistant_id"],
        b.ids.assistant.as_str(),
        "B's number was not assigned A's assistant"
    );
    let a_me = expect_status(
        app.get_as("/api/me", &a.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(a_me["data"]["credentials"]["openai_api_key"]["set"], false);
}

#[tokio::test]
async fn malformed_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("Acme", "ops@acme.example").await;
    for path in [
        "/api/assistants/not-an-id",
        "/api/phone-numbers/123",
        "/api/calls/zzzzzzzzzzzzzzzzzzzzzzzz",
        "/api/calls/not-an-id/status",
    ] {
        expect_error(
            app.get_as(path, &a.api_key).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    expect_error(
        app.get_as("/api/admin/users/not-an-id", &app.admin_token())
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_admin_sees_every_tenant() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let b = seed(&app, "Beta", "ops@beta.example", "+14155550200").await;
    let admin = app.admin_token();

    let users = expect_status(app.get_as("/api/admin/users", &admin).await, StatusCode::OK).await;
    let ids: Vec<&str> = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [b.tenant.id.as_str(), a.tenant.id.as_str()],
        "newest first"
    );
    assert_eq!(users["count"], 2);

    let calls = expect_status(app.get_as("/api/admin/calls", &admin).await, StatusCode::OK).await;
    let mut call_ids: Vec<&str> = calls["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| call["id"].as_str().unwrap())
        .collect();
    call_ids.sort();
    let mut expected = vec![a.ids.call.as_str(), b.ids.call.as_str()];
    expected.sort();
    assert_eq!(call_ids, expected, "both tenants' calls");

    for tenant in [&a, &b] {
        let narrowed = expect_status(
            app.get_as(
                &format!("/api/admin/calls?user_id={}", tenant.tenant.id),
                &admin,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let data = narrowed["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{narrowed}");
        assert_eq!(data[0]["id"], tenant.ids.call.as_str());
        assert_eq!(data[0]["user_id"], tenant.tenant.id.as_str());
    }

    // The tenant's own list shows only its own call.
    let own = expect_status(
        app.get_as("/api/calls", &a.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own["count"], 1);
    assert_eq!(own["data"][0]["id"], a.ids.call.as_str());
}

#[tokio::test]
async fn admin_and_tenant_credentials_are_not_interchangeable() {
    // Every route with the wrong kind of credential is far more failed authentications than
    // one client is allowed; the 401 on each route, not the limit, is under test.
    let app = TestApp::spawn_with(|settings| settings.rate_limit.exempt_loopback = true).await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let before = data_counts(&app).await;

    let admin_routes = admin_routes(&a.tenant.id, &a.tenant.api_key_id);
    expect_everywhere(
        &app,
        &admin_routes,
        Some(&a.tenant.api_key),
        StatusCode::UNAUTHORIZED,
        &["unauthorized"],
    )
    .await;
    expect_everywhere(
        &app,
        &admin_routes,
        None,
        StatusCode::UNAUTHORIZED,
        &["unauthorized"],
    )
    .await;
    expect_everywhere(
        &app,
        &admin_routes,
        Some("not-the-admin-token"),
        StatusCode::UNAUTHORIZED,
        &["unauthorized"],
    )
    .await;

    let tenant_routes = tenant_routes(&a.ids);
    expect_everywhere(
        &app,
        &tenant_routes,
        Some(&app.admin_token()),
        StatusCode::UNAUTHORIZED,
        &["unauthorized", "invalid_api_key"],
    )
    .await;

    assert_eq!(
        data_counts(&app).await,
        before,
        "refused requests wrote nothing"
    );
    let me = expect_status(
        app.get_as("/api/me", &a.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        me["data"]["status"], "active",
        "the tenant was not suspended"
    );
    assert_eq!(me["data"]["limits"]["max_concurrent_calls"], 10);
}

/// A caller whose key is refused learns nothing about the request body: the credentials are
/// checked before the body is parsed or validated.
#[tokio::test]
async fn refused_credentials_win_over_a_bad_body() {
    let app = TestApp::spawn().await;
    let a = seed(&app, "Acme", "ops@acme.example", "+14155550100").await;
    let revoked = revoked_key(&app, &a).await;
    let admin = app.admin_token();
    let unknown = format!("{}x", a.tenant.api_key);

    let bad_bodies: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/assistants".to_owned(),
            json!({ "name": "x", "colour": "blue" }),
        ),
        (
            Method::POST,
            "/api/phone-numbers".to_owned(),
            json!({ "phone_number": 42 }),
        ),
        (
            Method::PATCH,
            format!("/api/phone-numbers/{}", a.ids.number),
            json!({ "status": "paused" }),
        ),
        (
            Method::PUT,
            "/api/me/credentials".to_owned(),
            json!({ "openai": "sk-x" }),
        ),
    ];
    let mut failures = Vec::new();
    for (token, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some(unknown.as_str()),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            Some(revoked.as_str()),
            StatusCode::UNAUTHORIZED,
            "api_key_revoked",
        ),
    ] {
        for (method, path, body) in &bad_bodies {
            let response = app.send(method.clone(), path, token, Some(body)).await;
            let actual = response.status();
            let answer = json_body(response).await;
            if actual != status || answer["error"]["code"] != code {
                failures.push(format!(
                    "{method} {path} with {code} credentials: expected {status} {code}, got {actual} {answer}"
                ));
            }
        }
    }
    expect_status(
        app.post_as(
            &format!("/api/admin/users/{}/suspend", a.tenant.id),
            &admin,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for (method, path, body) in &bad_bodies {
        let response = app
            .send(method.clone(), path, Some(&a.tenant.api_key), Some(body))
            .await;
        let actual = response.status();
        let answer = json_body(response).await;
        if actual != StatusCode::FORBIDDEN || answer["error"]["code"] != "tenant_suspended" {
            failures.push(format!(
                "{method} {path} as a suspended tenant: expected 403 tenant_suspended, got {actual} {answer}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "bodies were judged before credentials:\n{}",
        failures.join("\n")
    );
}
