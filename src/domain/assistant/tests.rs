//! The assistant rules: defaults, bounds and enum names of every field, the create and patch
//! bodies (absent versus null, nested objects replaced whole) and the public JSON shape.

use serde_json::json;

use super::tools::ToolChoice;
use super::*;

const MODEL: &str = "gpt-realtime";

fn spec() -> AssistantSpec {
    AssistantSpec::from_new(
        NewAssistant {
            name: "Front desk".to_owned(),
            ..NewAssistant::default()
        },
        MODEL,
    )
    .unwrap()
}

/// The field a modified default spec is rejected for.
fn rejected_field(change: impl FnOnce(&mut AssistantSpec)) -> String {
    let mut spec = spec();
    change(&mut spec);
    spec.validate().expect_err("should be rejected").field
}

fn accepted(change: impl FnOnce(&mut AssistantSpec)) {
    let mut spec = spec();
    change(&mut spec);
    if let Err(err) = spec.validate() {
        panic!("should be accepted: {err}");
    }
}

fn new_from(body: serde_json::Value) -> Result<NewAssistant, serde_json::Error> {
    serde_json::from_value(body)
}

fn patch_from(body: serde_json::Value) -> Result<AssistantPatch, serde_json::Error> {
    serde_json::from_value(body)
}

#[test]
fn from_new_fills_the_documented_defaults() {
    let spec = spec();
    assert_eq!(
        spec,
        AssistantSpec {
            name: "Front desk".to_owned(),
            instructions: String::new(),
            greeting: None,
            model: MODEL.to_owned(),
            voice: Voice::Marin,
            language: None,
            turn_detection: TurnDetection {
                kind: TurnDetectionType::ServerVad,
                threshold: 0.5,
                prefix_padding_ms: 300,
                silence_duration_ms: 500,
            },
            transcription: None,
            audio: AudioConfig {
                codec: Codec::Pcm24k,
                inbound_rate: InboundRate::Khz8,
                inbound_chunk_ms: 100,
                outbound_chunk_ms: 100,
            },
            max_call_seconds: None,
            record: true,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            tool_filler: Some("One moment, please.".to_owned()),
            analysis: None,
            backend: backend::Backend::default(),
        }
    );
    assert_eq!(
        Transcription::default(),
        Transcription {
            model: "gpt-live-transcribe".to_owned(),
            language: None
        }
    );
}

#[test]
fn json_shape_is_the_public_contract() {
    let mut spec = spec();
    spec.transcription = Some(Transcription::default());
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({
            "name": "Front desk",
            "instructions": "",
            "greeting": null,
            "model": "gpt-realtime",
            "voice": "marin",
            "language": null,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500
            },
            "transcription": {"model": "gpt-live-transcribe", "language": null},
            "audio": {
                "codec": "pcm24k",
                "inbound_rate": "8k",
                "inbound_chunk_ms": 100,
                "outbound_chunk_ms": 100
            },
            "max_call_seconds": null,
            "record": true,
            "tools": [],
            "tool_choice": "auto",
            "tool_filler": "One moment, please.",
            "analysis": null,
            "backend": {"type": "openai_realtime"}
        })
    );
    let back: AssistantSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn enum_names() {
    for (voice, name) in [
        (Voice::Alloy, "alloy"),
        (Voice::Ash, "ash"),
        (Voice::Ballad, "ballad"),
        (Voice::Coral, "coral"),
        (Voice::Echo, "echo"),
        (Voice::Sage, "sage"),
        (Voice::Shimmer, "shimmer"),
        (Voice::Verse, "verse"),
        (Voice::Marin, "marin"),
        (Voice::Cedar, "cedar"),
    ] {
        assert_eq!(serde_json::to_value(voice).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<Voice>(json!(name)).unwrap(), voice);
    }
    assert_eq!(Voice::default(), Voice::Marin);
    assert!(serde_json::from_value::<Voice>(json!("Marin")).is_err());
    assert!(serde_json::from_value::<Voice>(json!("nova")).is_err());

    assert_eq!(
        serde_json::to_value(TurnDetectionType::SemanticVad).unwrap(),
        json!("semantic_vad")
    );
    assert_eq!(serde_json::to_value(Codec::Pcmu).unwrap(), json!("pcmu"));
    assert_eq!(
        serde_json::to_value(InboundRate::Khz16).unwrap(),
        json!("16k")
    );
    assert_eq!(
        serde_json::from_value::<InboundRate>(json!("8k")).unwrap(),
        InboundRate::Khz8
    );
    assert!(serde_json::from_value::<InboundRate>(json!("8000")).is_err());
    assert_eq!(
        (InboundRate::Khz8.hz(), InboundRate::Khz8.as_str()),
        (8_000, "8k")
    );
    assert_eq!(
        (InboundRate::Khz16.hz(), InboundRate::Khz16.as_str()),
        (16_000, "16k")
    );
}

#[test]
fn name_is_trimmed_and_bounded() {
    let new = NewAssistant {
        name: "  Sales  ".to_owned(),
        ..NewAssistant::default()
    };
    assert_eq!(AssistantSpec::from_new(new, MODEL).unwrap().name, "Sales");
    accepted(|s| s.name = "n".repeat(200));
    assert_eq!(rejected_field(|s| s.name = "n".repeat(201)), "name");
    assert_eq!(rejected_field(|s| s.name = "   ".to_owned()), "name");
    assert_eq!(rejected_field(|s| s.name = String::new()), "name");
}

#[test]
fn text_lengths_at_their_bounds() {
    accepted(|s| s.instructions = "i".repeat(20_000));
    assert_eq!(
        rejected_field(|s| s.instructions = "i".repeat(20_001)),
        "instructions"
    );
    accepted(|s| s.greeting = Some("g".repeat(2_000)));
    assert_eq!(
        rejected_field(|s| s.greeting = Some("g".repeat(2_001))),
        "greeting"
    );
}

#[test]
fn model_names() {
    accepted(|s| s.model = "gpt-4o-realtime-preview-2024_12.17".to_owned());
    accepted(|s| s.model = "m".repeat(100));
    for bad in [
        String::new(),
        "m".repeat(101),
        "gpt realtime".to_owned(),
        "gpt/rt".to_owned(),
    ] {
        assert_eq!(rejected_field(|s| s.model = bad), "model");
    }
    let err = AssistantSpec::from_new(
        NewAssistant {
            name: "x".to_owned(),
            ..NewAssistant::default()
        },
        "",
    )
    .unwrap_err();
    assert_eq!(err.field, "model");
}

#[test]
fn language_tags() {
    for good in ["en", "pt-BR", "zh-Hant-TW", &"a".repeat(35)] {
        accepted(|s| s.language = Some(good.to_owned()));
        accepted(|s| {
            s.transcription = Some(Transcription {
                model: "gpt-live-transcribe".to_owned(),
                language: Some(good.to_owned()),
            })
        });
    }
    for bad in ["e", "en_US", "en US", "", &"a".repeat(36)] {
        assert_eq!(
            rejected_field(|s| s.language = Some(bad.to_owned())),
            "language"
        );
        assert_eq!(
            rejected_field(|s| {
                s.transcription = Some(Transcription {
                    model: "gpt-live-transcribe".to_owned(),
                    language: Some(bad.to_owned()),
                })
            }),
            "transcription.language"
        );
    }
    assert_eq!(
        rejected_field(|s| {
            s.transcription = Some(Transcription {
                model: String::new(),
                language: None,
            })
        }),
        "transcription.model"
    );
}

#[test]
fn max_call_seconds_bounds() {
    accepted(|s| s.max_call_seconds = Some(1));
    accepted(|s| s.max_call_seconds = Some(3_600));
    assert_eq!(
        rejected_field(|s| s.max_call_seconds = Some(0)),
        "max_call_seconds"
    );
    assert_eq!(
        rejected_field(|s| s.max_call_seconds = Some(86_401)),
        "max_call_seconds"
    );
}

#[test]
fn turn_detection_bounds() {
    for good in [0.0, 1.0, 0.5] {
        accepted(|s| s.turn_detection.threshold = good);
    }
    for bad in [1.01, -0.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            rejected_field(|s| s.turn_detection.threshold = bad),
            "turn_detection.threshold"
        );
    }
    accepted(|s| s.turn_detection.prefix_padding_ms = 0);
    accepted(|s| s.turn_detection.prefix_padding_ms = 5_000);
    assert_eq!(
        rejected_field(|s| s.turn_detection.prefix_padding_ms = 5_001),
        "turn_detection.prefix_padding_ms"
    );
    accepted(|s| s.turn_detection.silence_duration_ms = 0);
    accepted(|s| s.turn_detection.silence_duration_ms = 10_000);
    assert_eq!(
        rejected_field(|s| s.turn_detection.silence_duration_ms = 10_001),
        "turn_detection.silence_duration_ms"
    );
    accepted(|s| s.turn_detection.kind = TurnDetectionType::SemanticVad);
}

#[test]
fn chunk_sizes_are_multiples_of_20_within_bounds() {
    for good in [20, 40, 100, 2_000] {
        accepted(|s| s.audio.inbound_chunk_ms = good);
        accepted(|s| s.audio.outbound_chunk_ms = good);
    }
    for bad in [0, 10, 30, 2_020, 1_999, 4_000] {
        assert_eq!(
            rejected_field(|s| s.audio.inbound_chunk_ms = bad),
            "audio.inbound_chunk_ms"
        );
        assert_eq!(
            rejected_field(|s| s.audio.outbound_chunk_ms = bad),
            "audio.outbound_chunk_ms"
        );
    }
}

#[test]
fn pcmu_requires_8k() {
    accepted(|s| {
        s.audio.codec = Codec::Pcmu;
        s.audio.inbound_rate = InboundRate::Khz8;
    });
    accepted(|s| {
        s.audio.codec = Codec::Pcm24k;
        s.audio.inbound_rate = InboundRate::Khz16;
    });
    let mut spec = spec();
    spec.audio.codec = Codec::Pcmu;
    spec.audio.inbound_rate = InboundRate::Khz16;
    let err = spec.validate().unwrap_err();
    assert_eq!(err.field, "audio.inbound_rate");
    assert_eq!(
        err.to_string(),
        "audio.inbound_rate: must be 8k when codec is pcmu"
    );
}

#[test]
fn create_body_accepts_every_field() {
    let body = json!({
        "name": "Support",
        "instructions": "Be brief.",
        "greeting": "Hello!",
        "model": "gpt-realtime-mini",
        "voice": "cedar",
        "language": "en",
        "turn_detection": {
            "type": "semantic_vad",
            "threshold": 0.7,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 800
        },
        "transcription": {"model": "gpt-live-transcribe", "language": "en"},
        "audio": {
            "codec": "pcmu",
            "inbound_rate": "8k",
            "inbound_chunk_ms": 20,
            "outbound_chunk_ms": 40
        },
        "max_call_seconds": 600
    });
    let new = new_from(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&new).unwrap(), body);
    let spec = AssistantSpec::from_new(new, MODEL).unwrap();
    assert_eq!(spec.model, "gpt-realtime-mini");
    assert_eq!(spec.voice, Voice::Cedar);
    assert_eq!(spec.audio.codec, Codec::Pcmu);
    assert_eq!(spec.turn_detection.kind, TurnDetectionType::SemanticVad);
    assert_eq!(spec.max_call_seconds, Some(600));
}

#[test]
fn create_body_rejects_unknown_and_partial_fields() {
    let err = new_from(json!({"name": "a", "temperature": 0.8})).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `temperature`"),
        "{err}"
    );

    let err = new_from(json!({
        "name": "a",
        "audio": {
            "codec": "pcmu",
            "inbound_rate": "8k",
            "inbound_chunk_ms": 100,
            "outbound_chunk_ms": 100,
            "sample_rate": 8000
        }
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `sample_rate`"),
        "{err}"
    );

    let err = new_from(json!({
        "name": "a",
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "eagerness": "high"
        }
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `eagerness`"),
        "{err}"
    );

    let err = new_from(json!({"name": "a", "transcription": {"model": "gpt-live-transcribe", "language": null, "prompt": "x"}}))
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `prompt`"), "{err}");

    // Nested objects are given whole.
    let err = new_from(json!({"name": "a", "audio": {"codec": "pcmu"}})).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
    let err = new_from(json!({"name": "a", "turn_detection": {"type": "server_vad"}})).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
    // Except the transcription language, a hint that may be left out.
    let spec =
        new_from(json!({"name": "a", "transcription": {"model": "gpt-live-transcribe"}})).unwrap();
    assert_eq!(spec.transcription.unwrap().language, None);
    assert!(
        new_from(json!({"name": "a", "transcription": {"model": "gpt-live-transcribe", "language": null}}))
            .is_ok()
    );

    let err = new_from(json!({"greeting": "hi"})).unwrap_err();
    assert!(err.to_string().contains("missing field `name`"), "{err}");
}

#[test]
fn patch_tells_absent_from_null() {
    let mut base = spec();
    base.greeting = Some("Hello".to_owned());
    base.language = Some("en".to_owned());
    base.transcription = Some(Transcription::default());
    base.max_call_seconds = Some(300);

    let empty = patch_from(json!({})).unwrap();
    assert!(empty.is_empty());
    assert_eq!(base.apply(empty).unwrap(), base);

    // Absent: kept.
    let patch = patch_from(json!({"instructions": "Be kind."})).unwrap();
    assert!(!patch.is_empty());
    let patched = base.apply(patch).unwrap();
    assert_eq!(patched.greeting.as_deref(), Some("Hello"));
    assert_eq!(patched.instructions, "Be kind.");
    assert_eq!(patched.language, base.language);
    assert_eq!(patched.transcription, base.transcription);
    assert_eq!(patched.max_call_seconds, Some(300));

    // Null: cleared.
    let patch = patch_from(json!({
        "greeting": null,
        "language": null,
        "transcription": null,
        "max_call_seconds": null
    }))
    .unwrap();
    assert_eq!(patch.greeting, Some(None));
    assert!(!patch.is_empty());
    let patched = base.apply(patch).unwrap();
    assert_eq!(patched.greeting, None);
    assert_eq!(patched.language, None);
    assert_eq!(patched.transcription, None);
    assert_eq!(patched.max_call_seconds, None);
    assert_eq!(patched.instructions, base.instructions);

    // Value: set.
    let patch = patch_from(json!({"greeting": "Hi there", "max_call_seconds": 60})).unwrap();
    let patched = base.apply(patch).unwrap();
    assert_eq!(patched.greeting.as_deref(), Some("Hi there"));
    assert_eq!(patched.max_call_seconds, Some(60));
}

#[test]
fn patch_replaces_nested_objects_whole() {
    let mut base = spec();
    base.turn_detection.threshold = 0.8;
    let patch = patch_from(json!({
        "audio": {
            "codec": "pcm24k",
            "inbound_rate": "16k",
            "inbound_chunk_ms": 40,
            "outbound_chunk_ms": 60
        }
    }))
    .unwrap();
    let patched = base.apply(patch).unwrap();
    assert_eq!(
        patched.audio,
        AudioConfig {
            codec: Codec::Pcm24k,
            inbound_rate: InboundRate::Khz16,
            inbound_chunk_ms: 40,
            outbound_chunk_ms: 60,
        }
    );
    assert_eq!(patched.turn_detection, base.turn_detection);
    assert_eq!(patched.name, base.name);

    // A partial nested object is refused, not merged.
    let err = patch_from(json!({"audio": {"inbound_chunk_ms": 40}})).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
    let err = patch_from(json!({
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "extra": true
        }
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
}

#[test]
fn patch_refuses_null_for_required_fields() {
    for field in [
        "name",
        "instructions",
        "model",
        "voice",
        "turn_detection",
        "audio",
    ] {
        let err = patch_from(json!({ field: null })).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{field}: must not be null")),
            "{field}: {err}"
        );
    }
    let err = patch_from(json!({"nmae": "typo"})).unwrap_err();
    assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
    assert!(patch_from(json!({"name": 5})).is_err());
}

#[test]
fn patch_result_is_validated_and_trimmed() {
    let base = spec();
    let patched = base
        .apply(patch_from(json!({"name": "  New name "})).unwrap())
        .unwrap();
    assert_eq!(patched.name, "New name");

    let err = base
        .apply(patch_from(json!({"name": "   "})).unwrap())
        .unwrap_err();
    assert_eq!(err.field, "name");

    let patch = patch_from(json!({
        "audio": {"codec": "pcmu", "inbound_rate": "16k", "inbound_chunk_ms": 100, "outbound_chunk_ms": 100}
    }))
    .unwrap();
    assert_eq!(base.apply(patch).unwrap_err().field, "audio.inbound_rate");

    let patch = patch_from(json!({"max_call_seconds": 0})).unwrap();
    assert_eq!(base.apply(patch).unwrap_err().field, "max_call_seconds");
}

#[test]
fn recording_is_on_by_default_and_can_be_turned_off() {
    assert!(spec().record);
    let off = AssistantSpec::from_new(
        new_from(json!({"name": "a", "record": false})).unwrap(),
        MODEL,
    )
    .unwrap();
    assert!(!off.record);
    let patched = off
        .apply(serde_json::from_value(json!({"record": true})).unwrap())
        .unwrap();
    assert!(patched.record);
    let err = serde_json::from_value::<AssistantPatch>(json!({"record": null})).unwrap_err();
    assert!(
        err.to_string().contains("record: must not be null"),
        "{err}"
    );
    // A stored assistant from before the setting records.
    let mut stored = serde_json::to_value(spec()).unwrap();
    stored.as_object_mut().unwrap().remove("record");
    assert!(
        serde_json::from_value::<AssistantSpec>(stored)
            .unwrap()
            .record
    );
}

#[test]
fn tools_are_set_replaced_and_cleared_by_patches() {
    let spec = spec();
    let with_tools = spec
        .apply(
            patch_from(json!({
                "tools": [{"type": "transfer_call", "name": "transfer", "description": "",
                    "destinations": [{"id": "desk", "number": "+1 415 555 0100", "description": ""}]}],
                "tool_choice": "required",
                "tool_filler": null
            }))
            .unwrap(),
        )
        .unwrap();
    assert_eq!(with_tools.tools.len(), 1);
    assert_eq!(with_tools.tool_choice, ToolChoice::Required);
    assert_eq!(with_tools.tool_filler, None);
    let super::tools::Tool::TransferCall(transfer) = &with_tools.tools[0] else {
        panic!("a transfer tool")
    };
    assert_eq!(
        transfer.destinations[0].number.as_deref(),
        Some("+14155550100"),
        "numbers are stored in E.164"
    );
    let cleared = with_tools
        .apply(patch_from(json!({"tools": []})).unwrap())
        .unwrap();
    assert!(cleared.tools.is_empty());
    assert_eq!(cleared.tool_choice, ToolChoice::Required, "untouched");
    let refused = patch_from(json!({"tools": null})).unwrap_err();
    assert!(
        refused.to_string().contains("tools: must not be null"),
        "{refused}"
    );
    let invalid = spec
        .apply(
            patch_from(json!({"tools": [{"type": "end_call", "name": "", "description": ""}]}))
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(invalid.field, "tools[0].name");
}

#[test]
fn analysis_is_validated_and_cleared_by_null() {
    let with_analysis = spec()
        .apply(
            serde_json::from_value(serde_json::json!({
                "analysis": {"enabled": true, "provider": "anthropic", "min_user_turns": 2}
            }))
            .unwrap(),
        )
        .unwrap();
    let analysis = with_analysis.analysis.clone().unwrap();
    assert!(analysis.enabled);
    assert_eq!(analysis.min_user_turns, 2);
    let bad: AssistantPatch = serde_json::from_value(serde_json::json!({
        "analysis": {"enabled": true, "structured_data_schema": {"type": 7}}
    }))
    .unwrap();
    assert_eq!(
        with_analysis.apply(bad).unwrap_err().field,
        "analysis.structured_data_schema"
    );
    let cleared: AssistantPatch =
        serde_json::from_value(serde_json::json!({"analysis": null})).unwrap();
    assert_eq!(with_analysis.apply(cleared).unwrap().analysis, None);
}

/// An assistant on an ElevenLabs agent, with `extra` fields merged into the request.
fn elevenlabs(extra: serde_json::Value) -> Result<AssistantSpec, ValidationError> {
    let mut body = serde_json::json!({
        "name": "Agent",
        "backend": {"type": "elevenlabs_convai", "agent_id": "agent_123", "private": true},
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    AssistantSpec::from_new(serde_json::from_value(body).unwrap(), MODEL)
}

#[test]
fn an_elevenlabs_backend_needs_an_agent_and_round_trips() {
    let spec = elevenlabs(serde_json::json!({})).unwrap();
    assert_eq!(spec.backend.kind, backend::BackendKind::ElevenlabsConvai);
    assert!(spec.backend.private);
    let stored = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        stored["backend"],
        serde_json::json!({"type": "elevenlabs_convai", "agent_id": "agent_123", "private": true})
    );
    let missing = elevenlabs(serde_json::json!({"backend": {"type": "elevenlabs_convai"}}));
    assert_eq!(missing.unwrap_err().field, "backend.agent_id");
    // The default backend is OpenAI's and serializes as such.
    assert_eq!(
        serde_json::to_value(spec_default_backend()).unwrap(),
        serde_json::json!({"type": "openai_realtime"})
    );
}

fn spec_default_backend() -> backend::Backend {
    spec().backend
}

#[test]
fn settings_a_backend_cannot_honour_are_refused_naming_the_field() {
    let cases = [
        (
            serde_json::json!({"backend": {"type": "openai_realtime", "agent_id": "x"}}),
            "backend.agent_id",
        ),
        (
            serde_json::json!({"backend": {"type": "elevenlabs_convai", "agent_id": "bad id!"}}),
            "backend.agent_id",
        ),
        (
            serde_json::json!({"audio": {"codec": "pcmu", "inbound_rate": "8k",
                "inbound_chunk_ms": 100, "outbound_chunk_ms": 100}}),
            "audio.codec",
        ),
        (
            serde_json::json!({"transcription": {"model": "gpt-live-transcribe", "language": null}}),
            "transcription",
        ),
        (
            serde_json::json!({"tool_choice": "required"}),
            "tool_choice",
        ),
        (
            serde_json::json!({"tools": [{"type": "end_call", "name": "bye", "description": ""},
                {"type": "mcp", "name": "crm", "description": "",
                 "server_url": "https://mcp.example.com/sse", "allowed_tools": ["search"]}]}),
            "tools[1]",
        ),
        (
            serde_json::json!({"backend": {"type": "elevenlabs_convai", "agent_id": "a",
                "dynamic_variables": {"system__time": "now"}}}),
            "backend.dynamic_variables.system__time",
        ),
        (
            serde_json::json!({"backend": {"type": "elevenlabs_convai", "agent_id": "a",
                "dynamic_variables": {"caller_number": "+1"}}}),
            "backend.dynamic_variables.caller_number",
        ),
        (
            serde_json::json!({"backend": {"type": "elevenlabs_convai", "agent_id": "a",
                "dynamic_variables": {"plan": {"nested": true}}}}),
            "backend.dynamic_variables.plan",
        ),
    ];
    for (extra, field) in cases {
        let err = elevenlabs(extra.clone()).expect_err(&extra.to_string());
        assert_eq!(err.field, field, "{extra}: {err:?}");
    }
    // Allowed: http tools (client tools of the agent), variables of the three kinds.
    let spec = elevenlabs(serde_json::json!({
        "tools": [{"type": "http", "name": "lookup", "description": "", "url": "https://crm.example.com/"}],
        "backend": {"type": "elevenlabs_convai", "agent_id": "a", "voice_id": "v_1",
            "dynamic_variables": {"plan": "gold", "seats": 3, "vip": true}},
    }))
    .unwrap();
    assert_eq!(spec.backend.dynamic_variables.len(), 3);
}
