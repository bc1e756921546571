//! The assistant's tools in real calls: a simulated caller speaks, the fake OpenAI calls a
//! function after that turn, voxbridge runs it (against the fake Teler or the fake tenant tool
//! endpoint) and hands back exactly one output per call, then asks once for the follow-up.
//! Outcomes are checked at every fake and in the call log.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxbridge::audio::tone::sine;
use voxbridge::domain::call::EndReason;
use voxbridge::domain::call::record::{ToolCallRecord, ToolOutcome};
use voxbridge::outbound::signing::SigningSecret;
use voxbridge::sim::caller::{CallerConfig, SimulatedCaller};
use voxbridge::sim::fake_openai::{
    Behaviour, FakeOpenAi, Mode, ScriptedFunctionCall, ScriptedTurn, SessionRecord,
};
use voxbridge::sim::fake_teler::FakeTeler;
use voxbridge::sim::fake_tool_server::FakeToolServer;
use voxbridge::storage::call_logs::CallLogRecord;

use super::{CALLER_NUMBER, call_id_of, configure_assistant, ended_call, stream_flow};
use crate::helpers::{CallingTenant, TestApp, expect_status};

/// The FreJun key `calling_tenant` stores.
const FREJUN_KEY: &str = "fj-test-key-0001";
/// The CRM token the tenant stores as a named secret.
pub(super) const CRM_TOKEN: &str = "crm-token-7f3a9c21";

/// Checks the one request of the `lookup_order` tool at the tenant's endpoint: signed, in the
/// documented shape, the secret filled in, the arguments and the call described.
pub(super) fn assert_signed_lookup(
    request: &voxbridge::sim::fake_tool_server::ToolRequestRecord,
    call_id: &str,
) {
    assert!(request.signature_valid, "{:?}", request.signature_error);
    assert!(
        request.shape_errors.is_empty(),
        "{:?}",
        request.shape_errors
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {CRM_TOKEN}").as_str())
    );
    assert_eq!(request.body["tool"], "lookup_order");
    assert_eq!(request.body["arguments"]["order_id"], "A-1001");
    assert_eq!(request.body["call"]["id"], call_id);
    assert_eq!(request.body["call"]["from"], CALLER_NUMBER);
}

/// Everything a tools call talks to.
struct World {
    app: TestApp,
    openai: FakeOpenAi,
    teler: FakeTeler,
    tools: FakeToolServer,
    tenant: CallingTenant,
}

/// An app whose OpenAI, Teler and tenant endpoint are fakes; the fake endpoint (on
/// 127.0.0.1) is reachable because the operator allow-listed `localhost`.
async fn world(behaviour: Behaviour, number: &str) -> World {
    let openai = FakeOpenAi::start(behaviour).await.unwrap();
    let teler = FakeTeler::start().await.unwrap();
    let tools = FakeToolServer::start().await.unwrap();
    let (realtime, teler_url) = (openai.url(), teler.base_url());
    let app = TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = realtime;
        settings.frejun.api_base_url = teler_url;
        settings.bridge.heartbeat_interval_secs = 1;
        settings.bridge.peer_timeout_secs = 5;
        settings.bridge.log_flush_interval_ms = 200;
        settings.outbound.allow = "localhost".into();
    })
    .await;
    let tenant = app.calling_tenant("Tools", number, 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let key = &tenant.tenant.api_key;
    expect_status(
        app.put_as(
            "/api/me/secrets/crm_token",
            key,
            &json!({"value": CRM_TOKEN}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let rotated = expect_status(
        app.post_as("/api/me/tool-signing-secret/rotate", key, &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let secret = rotated["data"]["signing_secret"].as_str().unwrap();
    tools.set_secret(Some(SigningSecret::parse(secret).unwrap()));
    World {
        app,
        openai,
        teler,
        tools,
        tenant,
    }
}

impl World {
    /// Gives the tenant's assistant `tools` (and the rest of `extra`).
    async fn set_tools(&self, tools: Value, extra: Value) {
        let mut body = json!({ "tools": tools });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let path = format!("/api/assistants/{}", self.tenant.assistant_id);
        expect_status(
            self.app
                .patch_as(&path, &self.tenant.tenant.api_key, &body)
                .await,
            StatusCode::OK,
        )
        .await;
    }

    /// An http tool on the fake endpoint's `path`, authorised with the stored CRM token.
    fn http_tool(&self, name: &str, path: &str, extra: Value) -> Value {
        let mut tool = json!({
            "type": "http", "name": name, "description": "Looks up an order by its id.",
            "url": self.tools.url(path).replace("127.0.0.1", "localhost"),
            "headers": {"Authorization": "Bearer {{secret.crm_token}}"},
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        });
        if let (Some(tool), Some(extra)) = (tool.as_object_mut(), extra.as_object()) {
            tool.extend(extra.clone());
        }
        tool
    }

    /// A call FreJun knows, placed inbound, with its media stream open (timings kept).
    async fn call(&self) -> (String, SimulatedCaller) {
        let frejun_call = self
            .teler
            .receive_call(FREJUN_KEY, CALLER_NUMBER, &self.tenant.number);
        let flow = stream_flow(&self.app, &self.tenant, &frejun_call.id).await;
        let mut config = CallerConfig::from_flow(&flow, frejun_call.id.clone()).unwrap();
        config.record_timings = true;
        let mut caller = SimulatedCaller::connect(config, Duration::from_secs(5))
            .await
            .unwrap();
        caller.send_start().await.unwrap();
        (call_id_of(&flow), caller)
    }

    /// Waits until the first session satisfies `pred`.
    async fn wait_for(&self, what: &str, pred: impl Fn(&SessionRecord) -> bool) {
        let met = self
            .openai
            .wait_until(Duration::from_secs(15), |sessions| {
                sessions.first().is_some_and(&pred)
            })
            .await;
        assert!(
            met,
            "{what}: {:#?}",
            self.openai.sessions().first().map(summary)
        );
    }
}

/// What a session did with tools, for failure messages.
fn summary(session: &SessionRecord) -> Value {
    json!({
        "calls": session.function_calls.iter().map(|c| &c.call_id).collect::<Vec<_>>(),
        "outputs": session.function_call_outputs.iter().map(|o| (&o.call_id, &o.output)).collect::<Vec<_>>(),
        "batches": session.tool_batches.iter().map(|b| (b.continuations, b.early_continuations)).collect::<Vec<_>>(),
        "violations": session.tool_violations,
    })
}

/// The caller says something (a short tone), then pauses so the turn ends.
async fn speak(caller: &mut SimulatedCaller) {
    caller
        .send_audio(&sine(440.0, 8_000, 4_800, 8_000.0), false)
        .await
        .unwrap();
    caller.send_silence(900, false).await.unwrap();
}

fn behaviour(calls: Vec<ScriptedFunctionCall>) -> Behaviour {
    Behaviour {
        function_calls: calls,
        ..Behaviour::with_mode(Mode::Echo)
    }
}

fn follow_up(text: &str) -> ScriptedTurn {
    ScriptedTurn::tone(text, 660.0, 400)
}

/// The tool turns of a call log, in order.
fn tool_records(call: &CallLogRecord) -> Vec<ToolCallRecord> {
    call.transcript
        .iter()
        .filter_map(|turn| turn.tool.clone())
        .collect()
}

/// Every output has arrived and the model was asked, once, to go on.
fn continued(session: &SessionRecord, outputs: usize) -> bool {
    session.function_call_outputs.len() >= outputs
        && session
            .tool_batches
            .first()
            .is_some_and(|batch| batch.continuations == 1)
}

#[tokio::test]
async fn an_http_tool_is_signed_answered_and_its_result_spoken_about() {
    let call = ScriptedFunctionCall::single(
        1,
        "lookup_order",
        r#"{"order_id":"A-1001"}"#,
        follow_up("Your order has shipped."),
    );
    let w = world(behaviour(vec![call]), "+14155550601").await;
    w.set_tools(
        json!([w.http_tool("lookup_order", "/orders/lookup", json!({}))]),
        json!({}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    speak(&mut caller).await;
    w.wait_for("the output and one continuation", |s| continued(s, 1))
        .await;
    w.wait_for("the follow-up spoken", |s| {
        s.tool_batches[0].follow_up_response_id.is_some()
    })
    .await;

    // At the tenant's endpoint: one signed request with the secret filled in.
    let requests = w.tools.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_signed_lookup(request, &call_id);
    assert_eq!(request.body["call"]["direction"], "inbound");
    let session = &w.openai.sessions()[0];
    let call = &session.function_calls[0];
    assert_eq!(request.body["tool_call_id"], call.call_id.as_str());
    assert_eq!(request.header("webhook-id"), Some(call.call_id.as_str()));

    // At OpenAI: the tool was declared, its output is the endpoint's answer.
    assert_eq!(session.tools()[0]["name"], "lookup_order");
    assert_eq!(session.tool_choice(), "auto");
    let outputs: Vec<_> = session.outputs_for(&call.call_id).collect();
    assert_eq!(outputs.len(), 1, "exactly one output");
    let output: Value = serde_json::from_str(&outputs[0].output).unwrap();
    assert_eq!(output["status"], "shipped");
    assert!(
        session.tool_violations.is_empty(),
        "{:?}",
        session.tool_violations
    );

    let summary = caller.hang_up().await.unwrap();
    super::assert_no_violations(&w.openai, &summary.received);
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    let records = tool_records(&log);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "lookup_order");
    assert_eq!(records[0].outcome, ToolOutcome::Ok);
    assert_eq!(records[0].http_status, Some(200));
    assert!(records[0].result.contains("shipped"));
    assert_eq!(log.metrics.as_ref().unwrap().tool_calls, 1);
    let stored = serde_json::to_string(&log.transcript).unwrap();
    assert!(
        !stored.contains(CRM_TOKEN),
        "the secret never reaches the call log"
    );
}

#[tokio::test]
async fn a_slow_tool_times_out_the_filler_plays_and_the_call_goes_on() {
    let call = ScriptedFunctionCall::single(
        1,
        "slow_lookup",
        r#"{"order_id":"A-1001"}"#,
        follow_up("Sorry, I could not check that."),
    );
    let w = world(behaviour(vec![call]), "+14155550602").await;
    w.set_tools(
        json!([w.http_tool("slow_lookup", "/slow?ms=6000", json!({"timeout_ms": 2500}))]),
        json!({"tool_filler": "Bear with me."}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    speak(&mut caller).await;
    w.wait_for("the timeout answered and the model asked to go on", |s| {
        continued(s, 1)
    })
    .await;
    let session = &w.openai.sessions()[0];
    let output: Value = serde_json::from_str(&session.function_call_outputs[0].output).unwrap();
    assert_eq!(output["error"], "timeout", "{output}");
    let filler: Vec<_> = session
        .responses
        .iter()
        .filter(|response| response.out_of_band)
        .collect();
    assert_eq!(filler.len(), 1, "one filler while the caller waited");
    assert_eq!(filler[0].metadata["purpose"], "tool_filler");
    w.wait_for("the follow-up spoken", |s| {
        s.tool_batches[0].follow_up_response_id.is_some()
    })
    .await;
    let summary = caller.hang_up().await.unwrap();
    super::assert_no_violations(&w.openai, &summary.received);
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(
        log.end_reason,
        Some(EndReason::CallerHungUp),
        "the call went on"
    );
    let record = &tool_records(&log)[0];
    assert_eq!(record.outcome, ToolOutcome::Timeout);
    assert!(record.latency_ms >= 2_500, "{record:?}");
}

#[tokio::test]
async fn parallel_calls_get_one_output_each_and_a_redirect_is_refused() {
    let call = ScriptedFunctionCall {
        after_user_turn: 1,
        preamble: Some(ScriptedTurn::tone("Let me check.", 330.0, 300)),
        calls: vec![
            ("lookup_order".into(), r#"{"order_id":"A-1001"}"#.into()),
            ("moved".into(), "{}".into()),
        ],
        follow_up: follow_up("Here is what I found."),
    };
    let w = world(behaviour(vec![call]), "+14155550603").await;
    w.set_tools(
        json!([
            w.http_tool("lookup_order", "/orders/lookup", json!({})),
            w.http_tool("moved", "/redirect", json!({})),
        ]),
        json!({}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    speak(&mut caller).await;
    w.wait_for("two outputs and one continuation", |s| continued(s, 2))
        .await;
    let session = &w.openai.sessions()[0];
    for call in &session.function_calls {
        assert_eq!(
            session.outputs_for(&call.call_id).count(),
            1,
            "{}",
            call.name
        );
    }
    let output_of = |name: &str| -> Value {
        let call = session
            .function_calls
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        serde_json::from_str(&session.outputs_for(&call.call_id).next().unwrap().output).unwrap()
    };
    assert_eq!(output_of("lookup_order")["status"], "shipped");
    assert_eq!(output_of("moved")["error"], "redirect_refused");
    let paths: Vec<String> = w.tools.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/orders/lookup").count(),
        1,
        "the redirect was not followed: {paths:?}"
    );

    let summary = caller.hang_up().await.unwrap();
    super::assert_no_violations(&w.openai, &summary.received);
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    let outcomes: Vec<(String, ToolOutcome)> = tool_records(&log)
        .into_iter()
        .map(|record| (record.name, record.outcome))
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.contains(&("lookup_order".into(), ToolOutcome::Ok)));
    assert!(outcomes.contains(&("moved".into(), ToolOutcome::Error)));
    assert_eq!(log.metrics.unwrap().tool_errors, 1);
}

/// When the caller will have heard the last audio received (each chunk plays after the one
/// before it, at 8 kHz).
fn playback_end(caller: &SimulatedCaller) -> Instant {
    let mut clock: Option<Instant> = None;
    let mut previous = 0;
    for (total, at) in caller.received().receive_timings() {
        let duration = Duration::from_micros((total - previous) * 125);
        previous = total;
        let start = clock.map_or(at, |clock| clock.max(at));
        clock = Some(start + duration);
    }
    clock.expect("the caller heard something")
}

#[tokio::test]
async fn end_call_hangs_up_only_after_the_goodbye_was_heard() {
    let call = ScriptedFunctionCall {
        after_user_turn: 1,
        preamble: Some(ScriptedTurn::tone(
            "Thanks for calling, goodbye!",
            550.0,
            2_000,
        )),
        calls: vec![("hang_up".into(), r#"{"reason":"done"}"#.into())],
        follow_up: follow_up("never spoken"),
    };
    let w = world(behaviour(vec![call]), "+14155550604").await;
    w.set_tools(
        json!([{"type": "end_call", "name": "hang_up", "description": "When the caller is done."}]),
        json!({}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    speak(&mut caller).await;
    let ended = caller
        .wait_until(Duration::from_secs(20), |received| {
            received.closed.is_some()
        })
        .await;
    assert!(ended, "voxbridge ended the call");
    let heard_until = playback_end(&caller);
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(log.end_reason, Some(EndReason::AssistantEndedCall));
    let hangup = w
        .teler
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/hangup"))
        .expect("the call was hung up through Teler");
    assert_eq!(hangup.body["reason"], "ASSISTANT_ENDED_CALL");
    assert!(
        hangup.at + Duration::from_millis(100) >= heard_until,
        "hung up {} ms before the goodbye was heard",
        heard_until.saturating_duration_since(hangup.at).as_millis()
    );
    assert!(
        caller.received().audio_samples >= 15_000,
        "the goodbye reached the caller"
    );
    let session = &w.openai.sessions()[0];
    assert_eq!(
        session.tool_batches[0].continuations, 0,
        "no response is asked for after end_call"
    );
    assert_eq!(tool_records(&log)[0].outcome, ToolOutcome::Ok);
}

#[tokio::test]
async fn transfer_call_tells_the_model_of_a_failure_then_moves_the_call() {
    let calls = vec![
        ScriptedFunctionCall::single(
            1,
            "transfer",
            r#"{"destination_id":"billing"}"#,
            follow_up("Sorry, the transfer did not work."),
        ),
        ScriptedFunctionCall::single(
            2,
            "transfer",
            r#"{"destination_id":"desk"}"#,
            follow_up("never spoken"),
        ),
    ];
    let w = world(behaviour(calls), "+14155550605").await;
    w.set_tools(
        json!([{"type": "transfer_call", "name": "transfer", "description": "To a person.",
        "destinations": [
            {"id": "billing", "number": "+14155550177", "description": "Billing"},
            {"id": "desk", "sip_uri": "sip:desk@pbx.example.com", "description": "Front desk"}
        ]}]),
        json!({}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    // FreJun refuses the first transfer (a validation error, not retried).
    w.teler
        .fail_next(1, voxbridge::sim::fake_teler::Failure::ValidationErrors);
    speak(&mut caller).await;
    w.wait_for("the failure answered", |s| continued(s, 1))
        .await;
    let first: Value =
        serde_json::from_str(&w.openai.sessions()[0].function_call_outputs[0].output).unwrap();
    assert_eq!(first["error"], "transfer_failed", "{first}");
    w.wait_for("the apology spoken", |s| {
        s.tool_batches[0].follow_up_response_id.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    speak(&mut caller).await;
    let moved = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let operations = w.teler.calls()[0].operations.clone();
            if operations
                .iter()
                .any(|op| op.contains("sip:desk@pbx.example.com"))
            {
                break true;
            }
            if tokio::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(moved, "{:?}", w.teler.calls()[0].operations);
    // FreJun then closes our media stream: the caller is elsewhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    caller.hang_up().await.unwrap();
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(log.end_reason, Some(EndReason::Transferred));
    let records = tool_records(&log);
    assert_eq!(records[0].outcome, ToolOutcome::Error);
    assert_eq!(records[0].error_code.as_deref(), Some("transfer_failed"));
    assert_eq!(records[1].outcome, ToolOutcome::Ok);
    assert!(log.hangup.is_none(), "a transferred call is not hung up");
}

#[tokio::test]
async fn send_dtmf_presses_keys_and_a_barge_in_keeps_a_tools_result() {
    let calls = vec![ScriptedFunctionCall {
        after_user_turn: 1,
        preamble: None,
        calls: vec![
            ("press".into(), r#"{"digits":"1#"}"#.into()),
            ("kept".into(), r#"{"order_id":"A-1001"}"#.into()),
            ("dropped".into(), "{}".into()),
        ],
        follow_up: follow_up("Done."),
    }];
    let w = world(behaviour(calls), "+14155550606").await;
    w.set_tools(
        json!([
            {"type": "send_dtmf", "name": "press", "description": "Keypad."},
            w.http_tool("kept", "/slow?ms=1500", json!({})),
            w.http_tool("dropped", "/slow?ms=4000", json!({"cancel_on_barge_in": true})),
        ]),
        json!({"tool_filler": null}),
    )
    .await;
    let (call_id, mut caller) = w.call().await;
    speak(&mut caller).await;
    w.wait_for("the keys pressed", |s| !s.function_call_outputs.is_empty())
        .await;
    // The caller talks while the slow tools run.
    caller
        .send_audio(&sine(440.0, 8_000, 4_000, 8_000.0), false)
        .await
        .unwrap();
    caller.send_silence(900, false).await.unwrap();
    w.wait_for("every output", |s| s.function_call_outputs.len() >= 3)
        .await;
    let session = &w.openai.sessions()[0];
    let output_of = |name: &str| -> String {
        let call = session
            .function_calls
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        session
            .outputs_for(&call.call_id)
            .next()
            .unwrap()
            .output
            .clone()
    };
    assert!(output_of("press").contains(r#""digits":"1#""#));
    assert!(
        output_of("kept").contains("slept_ms"),
        "{}",
        output_of("kept")
    );
    assert!(output_of("dropped").contains(r#""cancelled":true"#));
    assert!(
        w.teler.calls()[0]
            .operations
            .contains(&"dtmf:1#".to_owned()),
        "{:?}",
        w.teler.calls()[0].operations
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    caller.hang_up().await.unwrap();
    let log = ended_call(&w.app, &call_id, Duration::from_secs(10)).await;
    let outcomes: Vec<(String, ToolOutcome)> = tool_records(&log)
        .into_iter()
        .map(|record| (record.name, record.outcome))
        .collect();
    assert!(
        outcomes.contains(&("press".into(), ToolOutcome::Ok)),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&("kept".into(), ToolOutcome::Ok)));
    assert!(outcomes.contains(&("dropped".into(), ToolOutcome::Cancelled)));
}
