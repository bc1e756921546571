use serde_json::json;

use super::*;
use crate::domain::assistant::tools::ToolKind;
use crate::domain::call::record::{ToolCallRecord, ToolOutcome};

fn spec(schema: Option<Value>) -> AnalysisSpec {
    AnalysisSpec {
        enabled: true,
        provider: None,
        model: None,
        summary_prompt: None,
        structured_data_schema: schema,
        success_criteria: None,
        min_user_turns: 1,
    }
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": ["string", "null"]},
            "wants_refund": {"type": "boolean"}
        },
        "required": ["order_id", "wants_refund"],
        "additionalProperties": false
    })
}

fn turn(role: TranscriptRole, text: &str) -> TranscriptTurn {
    TranscriptTurn {
        role,
        text: text.to_owned(),
        at: DateTime::from_millis(0),
        item_id: None,
        interrupted: false,
        tool: None,
    }
}

#[test]
fn a_valid_answer_is_read_whole() {
    let spec = spec(Some(order_schema()));
    let answer = json!({
        "summary": "The caller asked where order A-1001 is.",
        "success": true,
        "success_reason": "They were told it shipped.",
        "sentiment": "positive",
        "data": {"order_id": "A-1001", "wants_refund": false}
    });
    let findings = read_answer(&spec, &answer.to_string()).unwrap();
    assert_eq!(findings.summary, "The caller asked where order A-1001 is.");
    assert!(findings.success);
    assert_eq!(findings.sentiment, Sentiment::Positive);
    assert_eq!(
        findings.data,
        Some(json!({"order_id": "A-1001", "wants_refund": false}))
    );
}

#[test]
fn without_a_schema_there_is_no_data() {
    let answer =
        json!({"summary": "s", "success": false, "success_reason": "r", "sentiment": "mixed"});
    let findings = read_answer(&spec(None), &answer.to_string()).unwrap();
    assert_eq!(findings.data, None);
    assert!(!findings.success);
    // `data` is not allowed when no schema asked for it.
    let mut extra = answer.clone();
    extra["data"] = json!({});
    assert_eq!(
        read_answer(&spec(None), &extra.to_string())
            .unwrap_err()
            .code(),
        "schema_mismatch"
    );
}

#[test]
fn an_answer_that_breaks_the_schema_says_where() {
    let spec = spec(Some(order_schema()));
    let answer = json!({
        "summary": "s", "success": "yes", "success_reason": "r", "sentiment": "angry",
        "data": {"order_id": 42}
    });
    let problem = read_answer(&spec, &answer.to_string()).unwrap_err();
    assert_eq!(problem.code(), "schema_mismatch");
    let message = problem.message();
    assert!(message.contains("/success"), "{message}");
    assert!(message.contains("/sentiment"), "{message}");
    assert!(message.contains("/data"), "{message}");
}

#[test]
fn text_that_is_not_json_is_refused_not_defaulted() {
    let problem = read_answer(&spec(None), "Sure! Here is the summary: ...").unwrap_err();
    assert_eq!(problem.code(), "invalid_json");
    assert!(
        problem
            .message()
            .starts_with("the model's answer is not JSON")
    );
}

#[test]
fn the_answer_schema_is_closed_and_requires_every_field() {
    let schema = answer_schema(&spec(Some(order_schema())));
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(
        schema["required"],
        json!(["summary", "success", "success_reason", "sentiment", "data"])
    );
    assert_eq!(schema["properties"]["data"], order_schema());
}

#[test]
fn tenant_schemas_are_checked_when_saved() {
    let field_of = |schema: Value| spec(Some(schema)).validate().unwrap_err().field;
    spec(Some(order_schema())).validate().unwrap();
    assert_eq!(field_of(json!("object")), "analysis.structured_data_schema");
    assert_eq!(
        field_of(json!({"type": "no-such-type"})),
        "analysis.structured_data_schema"
    );
    assert_eq!(
        field_of(json!({"$ref": "https://example.com/schema.json"})),
        "analysis.structured_data_schema"
    );
    let huge: serde_json::Map<String, Value> = (0..2_000)
        .map(|i| (format!("field_{i}"), json!({"type": "string"})))
        .collect();
    assert_eq!(
        field_of(json!({"type": "object", "properties": huge})),
        "analysis.structured_data_schema"
    );
    // References to the schema's own definitions compile; others are refused.
    spec(Some(json!({
        "$defs": {"id": {"type": "string"}},
        "type": "object",
        "properties": {"order": {"$ref": "#/$defs/id"}}
    })))
    .validate()
    .unwrap();
    for reference in ["#", "#/properties/a", "other.json#/$defs/x"] {
        assert_eq!(
            field_of(json!({"type": "object", "properties": {"a": {"$ref": reference}}})),
            "analysis.structured_data_schema",
            "{reference}"
        );
    }
}

#[test]
fn the_tenants_definitions_resolve_in_the_answer_schema() {
    let spec = spec(Some(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"order_id": {"type": "string", "pattern": "^A-[0-9]+$"}},
        "definitions": {"flag": {"type": "boolean"}},
        "type": "object",
        "properties": {"order": {"$ref": "#/$defs/order_id"}, "callback": {"$ref": "#/definitions/flag"}},
        "required": ["order", "callback"]
    })));
    let schema = answer_schema(&spec);
    assert!(schema["$defs"]["order_id"].is_object());
    assert!(schema["definitions"]["flag"].is_object());
    assert!(schema["properties"]["data"].get("$defs").is_none());
    assert!(schema["properties"]["data"].get("$schema").is_none());
    let answer = |order: &str, callback: Value| {
        json!({
            "summary": "s", "success": true, "success_reason": "r", "sentiment": "neutral",
            "data": {"order": order, "callback": callback}
        })
        .to_string()
    };
    let findings = read_answer(&spec, &answer("A-1001", json!(true))).unwrap();
    assert_eq!(findings.data.unwrap()["order"], "A-1001");
    let problem = read_answer(&spec, &answer("B-7", json!("yes"))).unwrap_err();
    assert_eq!(problem.code(), "schema_mismatch");
    assert!(
        problem.message().contains("/data/order"),
        "{}",
        problem.message()
    );
    assert!(
        problem.message().contains("/data/callback"),
        "{}",
        problem.message()
    );
}

#[test]
fn other_fields_are_bounded() {
    let mut bad = spec(None);
    bad.min_user_turns = 101;
    assert_eq!(bad.validate().unwrap_err().field, "analysis.min_user_turns");
    let mut bad = spec(None);
    bad.model = Some("two words".to_owned());
    assert_eq!(bad.validate().unwrap_err().field, "analysis.model");
    let mut bad = spec(None);
    bad.summary_prompt = Some(String::new());
    assert_eq!(bad.validate().unwrap_err().field, "analysis.summary_prompt");
    let mut bad = spec(None);
    bad.success_criteria = Some("x".repeat(4_001));
    assert_eq!(
        bad.validate().unwrap_err().field,
        "analysis.success_criteria"
    );
}

#[test]
fn min_user_turns_defaults_to_one() {
    let parsed: AnalysisSpec = serde_json::from_value(json!({"enabled": true})).unwrap();
    assert_eq!(parsed.min_user_turns, 1);
    assert!(serde_json::from_value::<AnalysisSpec>(json!({"enabled": true, "extra": 1})).is_err());
}

#[test]
fn the_transcript_reads_as_a_conversation_with_its_tools() {
    let mut tool = turn(TranscriptRole::Tool, "");
    tool.tool = Some(ToolCallRecord {
        call_id: "c1".to_owned(),
        name: "lookup_order".to_owned(),
        kind: Some(ToolKind::Http),
        arguments: r#"{"order_id":"A-1001"}"#.to_owned(),
        result: r#"{"status":"shipped"}"#.to_owned(),
        outcome: ToolOutcome::Ok,
        error_code: None,
        latency_ms: 40,
        started_at: DateTime::from_millis(0),
        http_status: Some(200),
    });
    let mut cut = turn(TranscriptRole::Assistant, "Your order");
    cut.interrupted = true;
    let transcript = vec![
        turn(TranscriptRole::Assistant, "Hello!"),
        turn(TranscriptRole::User, "Where is A-1001?"),
        tool,
        cut,
        turn(TranscriptRole::User, "  "),
    ];
    assert_eq!(
        transcript_text(&transcript, 10_000),
        "Assistant: Hello!\nCaller: Where is A-1001?\n\
         [Tool lookup_order called with {\"order_id\":\"A-1001\"} -> ok: {\"status\":\"shipped\"}]\n\
         Assistant (interrupted by the caller): Your order\nCaller:   "
    );
    assert_eq!(user_turns(&transcript), 1);
}

#[test]
fn a_long_transcript_keeps_its_start_and_end() {
    let transcript: Vec<TranscriptTurn> = (0..1_000)
        .map(|i| turn(TranscriptRole::User, &format!("turn {i}")))
        .collect();
    let text = transcript_text(&transcript, 200);
    assert!(text.starts_with("Caller: turn 0\n"));
    assert!(text.ends_with("Caller: turn 999"));
    assert!(text.contains("characters of the transcript left out"));
    assert!(text.chars().count() < 300);
}

#[test]
fn the_prompt_names_the_tenants_criteria() {
    let mut custom = spec(Some(order_schema()));
    custom.success_criteria = Some("The order status was given.".to_owned());
    custom.summary_prompt = Some("One sentence.".to_owned());
    let prompt = system_prompt(&custom);
    assert!(prompt.contains("summary: One sentence."));
    assert!(prompt.contains("The order status was given."));
    assert!(prompt.contains("data:"));
    assert!(!system_prompt(&spec(None)).contains("data:"));
}
