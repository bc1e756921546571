//! The core's handling of the model's tool calls: which run, one output each, one
//! continuation per batch, the active-response rule, barge-in, `end_call`, the filler.

use std::time::{Duration, Instant};

use super::*;
use crate::domain::assistant::tools::Tool;
use crate::domain::call::record::ToolOutcome;
use crate::providers::realtime::FunctionCall;

fn tools_config(filler: Option<&str>) -> ToolsConfig {
    let tools: Vec<Tool> = serde_json::from_value(serde_json::json!([
        {"type": "end_call", "name": "hang_up", "description": ""},
        {"type": "http", "name": "lookup", "description": "", "url": "https://crm.example.com/"},
        {"type": "http", "name": "slow_search", "description": "", "url": "https://crm.example.com/s",
         "cancel_on_barge_in": true}
    ]))
    .unwrap();
    ToolsConfig::new(
        &tools,
        filler.map(str::to_owned),
        Duration::from_millis(1_200),
        4,
    )
}

fn with_tools(filler: Option<&str>) -> BridgeCore {
    ready_with(core_with_tools(Codec::Pcm24k, tools_config(filler)))
}

fn call(call_id: &str, name: &str, arguments: &str) -> FunctionCall {
    FunctionCall {
        call_id: call_id.into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn created(core: &mut BridgeCore, response: &str, purpose: Option<&str>) -> Effects {
    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::ResponseCreated {
            response_id: response.into(),
            purpose: purpose.map(str::to_owned),
        },
        Instant::now(),
        &mut fx,
    );
    fx
}

fn done(
    core: &mut BridgeCore,
    response: &str,
    status: ResponseStatus,
    calls: Vec<FunctionCall>,
) -> Effects {
    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::ResponseDone {
            response: ResponseSummary {
                id: response.into(),
                status,
                function_calls: calls,
                ..ResponseSummary::default()
            },
        },
        Instant::now(),
        &mut fx,
    );
    fx
}

fn finished(core: &mut BridgeCore, call_id: &str, output: &str) -> (Effects, Option<Ending>) {
    let mut fx = Effects::default();
    let ending = core.tool_finished(
        ToolResult {
            call_id: call_id.into(),
            output: output.into(),
            outcome: ToolOutcome::Ok,
            error_code: None,
            http_status: Some(200),
            effect: ToolEffect::None,
        },
        Instant::now(),
        &mut fx,
    );
    (fx, ending)
}

fn tool_turns(core: &mut BridgeCore) -> Vec<(String, ToolOutcome)> {
    core.final_progress()
        .new_turns
        .into_iter()
        .filter_map(|turn| turn.tool)
        .map(|tool| (tool.call_id, tool.outcome))
        .collect()
}

#[test]
fn parallel_calls_get_one_output_each_then_one_continuation() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    let fx = done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![
            call("call_a", "lookup", r#"{"id":1}"#),
            call("call_b", "lookup", r#"{"id":2}"#),
        ],
    );
    assert!(fx.to_ai.is_empty(), "nothing goes back before a result");
    let started: Vec<&str> = fx.tool_calls.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(started, ["call_a", "call_b"]);
    assert_eq!(fx.tool_calls[0].arguments, r#"{"id":1}"#);

    let (fx, ending) = finished(&mut core, "call_b", r#"{"found":2}"#);
    assert!(ending.is_none());
    assert_eq!(types(&fx.to_ai), ["conversation.item.create"]);
    assert!(fx.to_ai[0].contains(r#""type":"function_call_output","call_id":"call_b""#));

    let (fx, _) = finished(&mut core, "call_a", r#"{"found":1}"#);
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create", "response.create"],
        "the continuation follows the batch's last output"
    );
    // A result that arrives twice (or for a call never started) sends nothing.
    let (fx, _) = finished(&mut core, "call_a", "again");
    assert!(fx.to_ai.is_empty());
    // The same call in a later response.done is not run again.
    created(&mut core, "resp_2", None);
    let fx = done(
        &mut core,
        "resp_2",
        ResponseStatus::Completed,
        vec![call("call_a", "lookup", "{}")],
    );
    assert!(fx.tool_calls.is_empty() && fx.to_ai.is_empty());
    assert_eq!(
        tool_turns(&mut core),
        [
            ("call_b".to_owned(), ToolOutcome::Ok),
            ("call_a".to_owned(), ToolOutcome::Ok)
        ]
    );
    assert_eq!(core.metrics().tool_calls, 2);
    assert_eq!(core.metrics().tool_errors, 0);
}

#[test]
fn a_response_that_starts_after_the_output_has_seen_it() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![call("call_a", "lookup", "{}")],
    );
    // The caller speaks; server VAD starts a response while the tool runs.
    created(&mut core, "resp_vad", None);
    let (fx, _) = finished(&mut core, "call_a", "{}");
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create"],
        "no response.create while one is active"
    );
    let fx = done(&mut core, "resp_vad", ResponseStatus::Completed, vec![]);
    assert_eq!(
        types(&fx.to_ai),
        ["response.create"],
        "once the active response is done, the output is answered"
    );

    // Had a response started after the output, it would have consumed it.
    created(&mut core, "resp_2", None);
    done(
        &mut core,
        "resp_2",
        ResponseStatus::Completed,
        vec![call("call_b", "lookup", "{}")],
    );
    let (fx, _) = finished(&mut core, "call_b", "{}");
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create", "response.create"]
    );
    created(&mut core, "resp_3", None);
    let fx = done(&mut core, "resp_3", ResponseStatus::Completed, vec![]);
    assert!(fx.to_ai.is_empty(), "one continuation per batch");
}

#[test]
fn calls_that_may_not_run_are_answered_at_once() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    let fx = done(
        &mut core,
        "resp_1",
        ResponseStatus::Cancelled,
        vec![call("call_x", "lookup", "{}")],
    );
    assert!(
        fx.tool_calls.is_empty(),
        "a cancelled response's calls do not run"
    );
    assert_eq!(types(&fx.to_ai), ["conversation.item.create"]);
    assert!(fx.to_ai[0].contains("response_not_completed"));

    created(&mut core, "resp_2", None);
    let fx = done(
        &mut core,
        "resp_2",
        ResponseStatus::Completed,
        vec![call("call_y", "launch_rocket", "{}")],
    );
    assert!(fx.tool_calls.is_empty());
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create", "response.create"],
        "the model is told and goes on"
    );
    assert!(fx.to_ai[0].contains("unknown_tool"));
    assert_eq!(
        tool_turns(&mut core),
        [
            ("call_x".to_owned(), ToolOutcome::Refused),
            ("call_y".to_owned(), ToolOutcome::Refused)
        ]
    );
    assert_eq!(core.metrics().tool_errors, 2);
}

#[test]
fn a_barge_in_cancels_only_the_tools_configured_for_it() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![
            call("call_keep", "lookup", "{}"),
            call("call_stop", "slow_search", "{}"),
        ],
    );
    let mut fx = Effects::default();
    core.ai_event(
        ServerEvent::SpeechStarted {
            audio_start_ms: 0,
            item_id: None,
        },
        Instant::now(),
        &mut fx,
    );
    assert_eq!(fx.cancel_tools, ["call_stop"]);
    assert_eq!(types(&fx.to_ai), ["conversation.item.create"]);
    assert!(fx.to_ai[0].contains(r#"\"cancelled\":true"#));
    // The kept tool's result still reaches the model.
    let (fx, _) = finished(&mut core, "call_keep", r#"{"ok":1}"#);
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create", "response.create"]
    );
    let (fx, _) = finished(&mut core, "call_stop", "late");
    assert!(fx.to_ai.is_empty(), "a cancelled call was answered already");
}

#[test]
fn end_call_ends_the_call_and_nothing_continues_after_it() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    let fx = done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![
            call("call_end", "hang_up", r#"{"reason":"done"}"#),
            call("call_late", "lookup", "{}"),
        ],
    );
    assert_eq!(
        fx.tool_calls.len(),
        1,
        "nothing new starts once the call is ending"
    );
    assert_eq!(fx.tool_calls[0].call_id, "call_end");
    assert!(
        fx.tool_calls[0].speech_heard_at <= Instant::now(),
        "nothing was playing"
    );
    assert_eq!(types(&fx.to_ai), ["conversation.item.create"]);
    assert!(fx.to_ai[0].contains("call_ending"));
    let mut fx = Effects::default();
    let ending = core.tool_finished(
        ToolResult {
            call_id: "call_end".into(),
            output: r#"{"ok":true}"#.into(),
            outcome: ToolOutcome::Ok,
            error_code: None,
            http_status: None,
            effect: ToolEffect::EndCall,
        },
        Instant::now(),
        &mut fx,
    );
    assert_eq!(
        ending.map(|ending| ending.reason),
        Some(EndReason::AssistantEndedCall)
    );
    assert!(
        !fx.to_ai
            .iter()
            .any(|event| event.contains("response.create"))
    );
}

#[test]
fn the_filler_speaks_out_of_band_once_and_the_continuation_waits_for_it() {
    let mut core = with_tools(Some("One moment."));
    created(&mut core, "resp_1", None);
    let started = Instant::now();
    done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![call("call_a", "lookup", "{}")],
    );
    let due = core.next_tool_timer().expect("a filler is scheduled");
    assert!(due >= started + Duration::from_millis(1_200));
    let mut fx = Effects::default();
    core.tool_timer(due, &mut fx);
    assert_eq!(types(&fx.to_ai), ["response.create"]);
    let request: serde_json::Value = serde_json::from_str(&fx.to_ai[0]).unwrap();
    assert_eq!(request["response"]["conversation"], "none");
    assert_eq!(request["response"]["metadata"]["purpose"], "tool_filler");
    assert!(
        request["response"]["instructions"]
            .as_str()
            .unwrap()
            .contains("One moment.")
    );
    assert_eq!(core.next_tool_timer(), None, "once per wait");

    created(&mut core, "resp_filler", Some("tool_filler"));
    let (fx, _) = finished(&mut core, "call_a", "{}");
    assert_eq!(
        types(&fx.to_ai),
        ["conversation.item.create"],
        "no continuation while the filler speaks"
    );
    let fx = done(&mut core, "resp_filler", ResponseStatus::Completed, vec![]);
    assert_eq!(
        types(&fx.to_ai),
        ["response.create"],
        "the filler did not consume the output"
    );
}

#[test]
fn tools_still_running_when_the_call_ends_are_recorded_cancelled() {
    let mut core = with_tools(None);
    created(&mut core, "resp_1", None);
    done(
        &mut core,
        "resp_1",
        ResponseStatus::Completed,
        vec![call("call_a", "lookup", "{}")],
    );
    core.cancel_running_tools(Instant::now());
    assert_eq!(
        tool_turns(&mut core),
        [("call_a".to_owned(), ToolOutcome::Cancelled)]
    );
}

#[test]
fn a_create_that_meets_a_running_response_is_harmless() {
    let mut core = with_tools(None);
    let mut fx = Effects::default();
    let ending = core.ai_event(
        ServerEvent::Error {
            error: ApiError {
                kind: "invalid_request_error".into(),
                code: Some("conversation_already_has_active_response".into()),
                message: "Conversation already has an active response in progress: resp_1.".into(),
                ..ApiError::default()
            },
        },
        Instant::now(),
        &mut fx,
    );
    assert!(ending.is_none(), "the call goes on");
    assert!(fx.to_ai.is_empty() && fx.to_teler.is_empty());
}
