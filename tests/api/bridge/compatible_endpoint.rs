//! A tenant's own OpenAI-compatible realtime endpoint (`backend.type` =
//! `openai_compatible_realtime`): calls go to the tenant's URL with the tenant's realtime key,
//! not to the platform's OpenAI, and the URL obeys the rules of every address a tenant
//! controls, when saved and at every connect.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use voxbridge::domain::call::EndReason;
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi, Mode};

use super::{assert_slots_freed, bridge_app_with, ended_call, place_call, tone_then_hear_echo};
use crate::helpers::{CallingTenant, TestApp, expect_status};

const REALTIME_KEY: &str = "rt-tenant-key-0001";

/// Points the tenant's assistant at its own endpoint `url` with [`REALTIME_KEY`].
async fn use_own_endpoint(app: &TestApp, tenant: &CallingTenant, url: &str) {
    let body = json!({"realtime_base_url": url, "realtime_api_key": REALTIME_KEY});
    let answer = expect_status(
        app.put_as("/api/me/credentials", &tenant.tenant.api_key, &body)
            .await,
        StatusCode::OK,
    )
    .await;
    let credentials = &answer["data"]["credentials"];
    assert_eq!(credentials["realtime_api_key"]["set"], true);
    assert_eq!(credentials["realtime_base_url"], url);
    use_compatible_backend(app, tenant).await;
}

/// Switches the tenant's assistant to the `openai_compatible_realtime` backend.
async fn use_compatible_backend(app: &TestApp, tenant: &CallingTenant) {
    let path = format!("/api/assistants/{}", tenant.assistant_id);
    let body = json!({"backend": {"type": "openai_compatible_realtime"}});
    expect_status(
        app.patch_as(&path, &tenant.tenant.api_key, &body).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn calls_go_to_the_tenants_endpoint_with_its_own_key() {
    // The tenant's server: a second fake, on loopback, which the operator allow-listed.
    let own = FakeOpenAi::start(Behaviour::with_mode(Mode::Echo))
        .await
        .unwrap();
    let (app, platform) = bridge_app_with(Behaviour::with_mode(Mode::Echo), |settings| {
        settings.outbound.allow = "127.0.0.1".into();
    })
    .await;
    let tenant = app.calling_tenant("Azure", "+14155550301", 2).await;
    use_own_endpoint(&app, &tenant, own.url().as_str()).await;

    let (call_id, mut caller) = place_call(&app, &tenant, "fj-compatible-1").await;
    assert!(
        tone_then_hear_echo(&mut caller, 16_000, 4_000).await,
        "the tenant's endpoint answered through the bridge"
    );
    caller.hang_up().await.unwrap();
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));

    let sessions = own.sessions();
    assert_eq!(sessions.len(), 1, "one session at the tenant's endpoint");
    assert_eq!(sessions[0].api_key, REALTIME_KEY);
    assert!(
        platform.sessions().is_empty(),
        "nothing went to the platform's OpenAI"
    );
    assert!(own.violations().is_empty(), "{:?}", own.violations());
    assert_slots_freed(&app, &tenant).await;
}

#[tokio::test]
async fn an_endpoint_on_an_internal_address_is_refused_when_saved_and_when_called() {
    let (app, _platform) = bridge_app_with(Behaviour::with_mode(Mode::Echo), |_| {}).await;
    let tenant = app.calling_tenant("Internal", "+14155550302", 2).await;
    for url in [
        "wss://127.0.0.1/v1/realtime",
        "wss://10.1.2.3/v1/realtime",
        "ws://realtime.example.com/v1/realtime",
        "https://realtime.example.com/v1/realtime",
        "wss://user:pw@realtime.example.com/v1/realtime",
    ] {
        let body = json!({"realtime_base_url": url});
        let answer = expect_status(
            app.put_as("/api/me/credentials", &tenant.tenant.api_key, &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("realtime_base_url"),
            "{url}: {answer}"
        );
    }

    // A name is checked when it is resolved, at every connect (it could resolve elsewhere
    // since it was saved): `localhost` is accepted when saved, refused when called, and the
    // call ends saying why.
    use_own_endpoint(&app, &tenant, "wss://localhost:9/v1/realtime").await;
    let (call_id, _caller) = place_call(&app, &tenant, "fj-compatible-2").await;
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::AiConnectFailed));
    let error = call.error.expect("the call log says why");
    assert_eq!(error.code, "realtime_endpoint_refused", "{error:?}");
    assert_slots_freed(&app, &tenant).await;
}

#[tokio::test]
async fn without_an_endpoint_the_flow_hangs_up_for_missing_credentials() {
    let (app, _platform) = bridge_app_with(Behaviour::with_mode(Mode::Echo), |_| {}).await;
    let tenant = app.calling_tenant("NoEndpoint", "+14155550303", 2).await;
    use_compatible_backend(&app, &tenant).await;
    let flow_body =
        crate::helpers::flow_body("fj-compatible-3", super::CALLER_NUMBER, &tenant.number);
    let flow = expect_status(
        app.post_flow(Some(&tenant.key), None, &flow_body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "hangup", "{flow}");
}
