//! The assistant's tools, called by an ElevenLabs agent as client tools of the same name:
//! voxbridge runs an http tool against the fake tenant endpoint (signed, its secret filled
//! in) and hands the endpoint's answer back as the `client_tool_result`; a name the assistant
//! does not have is answered at once as an error. The agent's reply waits for both.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::domain::call::record::{ToolCallRecord, ToolOutcome};
use voxbridge::outbound::signing::SigningSecret;
use voxbridge::sim::fake_elevenlabs::{
    AgentConfig, Behaviour, Mode, ScriptedToolCall, ScriptedTurn,
};
use voxbridge::sim::fake_tool_server::FakeToolServer;

use super::{WAIT, public_agent, speak, use_agent, world_with};
use crate::bridge::tools::{CRM_TOKEN, assert_signed_lookup};
use crate::bridge::{ended_call, place_call};
use crate::helpers::expect_status;

/// What the agent says once it has the tools' results.
const REPLY: &str = "Your order A-1001 has shipped.";

#[tokio::test]
async fn an_http_client_tool_is_answered_with_its_output_and_an_unknown_one_with_an_error() {
    let behaviour = Behaviour {
        tool_calls: vec![
            ScriptedToolCall {
                tool_name: "lookup_order".into(),
                parameters: json!({"order_id": "A-1001"}),
            },
            ScriptedToolCall {
                tool_name: "teleport".into(),
                parameters: json!({"to": "mars"}),
            },
        ],
        ..Behaviour::with_mode(Mode::Scripted(vec![ScriptedTurn::tone(
            "Where is my order A-1001?",
            REPLY,
            500.0,
            600,
        )]))
    };
    // The fake endpoint (on 127.0.0.1) is reachable because the operator allow-listed
    // `localhost`, as in the OpenAI tool tests.
    let w = world_with(behaviour, |settings| {
        settings.outbound.allow = "localhost".into();
    })
    .await;
    let endpoint = FakeToolServer::start().await.unwrap();
    w.elevenlabs.add_agent(AgentConfig::new("agent_tools"));
    let tenant = w.app.calling_tenant("ElevenTools", "+14155550831", 5).await;
    let key = &tenant.tenant.api_key;
    expect_status(
        w.app
            .put_as(
                "/api/me/secrets/crm_token",
                key,
                &json!({"value": CRM_TOKEN}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let rotated = expect_status(
        w.app
            .post_as("/api/me/tool-signing-secret/rotate", key, &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let secret = rotated["data"]["signing_secret"].as_str().unwrap();
    endpoint.set_secret(Some(SigningSecret::parse(secret).unwrap()));
    let tool = json!({
        "type": "http", "name": "lookup_order", "description": "Looks up an order by its id.",
        "url": endpoint.url("/orders/lookup").replace("127.0.0.1", "localhost"),
        "headers": {"Authorization": "Bearer {{secret.crm_token}}"},
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    });
    use_agent(
        &w.app,
        &tenant,
        "8k",
        public_agent("agent_tools"),
        json!({"tools": [tool], "tool_filler": null}),
    )
    .await;

    let (call_id, mut caller) = place_call(&w.app, &tenant, "fj-el-tools").await;
    w.conversation().await;
    speak(&mut caller, 8_000).await;
    let session = w
        .wait_for("both client tool results", |s| s.tool_results.len() >= 2)
        .await;

    // At the tenant's endpoint: one signed request, the secret filled in, the call described.
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1, "only the known tool ran");
    let request = &requests[0];
    assert_signed_lookup(request, &call_id);
    let lookup_call = session
        .tool_calls
        .iter()
        .find(|call| call.tool_name == "lookup_order")
        .unwrap();
    assert_eq!(
        request.body["tool_call_id"],
        lookup_call.tool_call_id.as_str()
    );

    // At the agent: exactly one result per call, matched by id.
    let result_of = |name: &str| {
        let results: Vec<_> = session
            .tool_results
            .iter()
            .filter(|result| result.tool_name == name)
            .collect();
        assert_eq!(results.len(), 1, "one result for {name}");
        results[0].clone()
    };
    let lookup = result_of("lookup_order");
    assert_eq!(lookup.tool_call_id, lookup_call.tool_call_id);
    assert!(!lookup.is_error, "{lookup:?}");
    let output: Value = serde_json::from_str(&lookup.result).unwrap();
    assert_eq!(
        output["status"], "shipped",
        "the endpoint's answer: {output}"
    );
    let unknown = result_of("teleport");
    assert!(unknown.is_error, "{unknown:?}");
    let output: Value = serde_json::from_str(&unknown.result).unwrap();
    assert_eq!(output["error"], "unknown_tool", "{output}");

    // The reply the agent held back until both results came is spoken.
    assert!(
        caller.wait_until(WAIT, |r| r.audio_samples >= 4_800).await,
        "the reply was heard"
    );
    let summary = caller.hang_up().await.unwrap();
    w.assert_clean(&summary.received);
    assert_eq!(w.elevenlabs.sessions()[0].agent_responses, [REPLY]);

    let call = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    let records: Vec<ToolCallRecord> = call
        .transcript
        .iter()
        .filter_map(|turn| turn.tool.clone())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let record_of = |name: &str| records.iter().find(|r| r.name == name).unwrap();
    let lookup = record_of("lookup_order");
    assert_eq!(lookup.outcome, ToolOutcome::Ok);
    assert_eq!(lookup.http_status, Some(200));
    assert_eq!(lookup.call_id, lookup_call.tool_call_id);
    let unknown = record_of("teleport");
    assert_eq!(unknown.kind, None);
    assert_eq!(unknown.error_code.as_deref(), Some("unknown_tool"));
    let metrics = call.metrics.expect("metrics");
    assert_eq!((metrics.tool_calls, metrics.tool_errors), (2, 1));
    let roles: Vec<&str> = call.transcript.iter().map(|t| t.role.as_str()).collect();
    assert_eq!(roles.first(), Some(&"user"), "{roles:?}");
    assert_eq!(roles.last(), Some(&"assistant"), "{roles:?}");
    assert!(
        !serde_json::to_string(&call.transcript)
            .unwrap()
            .contains(CRM_TOKEN),
        "the secret never reaches the call log"
    );
}
