//! The `session` object of `session.update`, built from a stored assistant, in the GA shape only.
//!
//! The GA server closes the socket (code 4000) on beta-shaped sessions, so the types here can
//! only express GA fields: the session `type` and the output modalities are fixed private
//! fields, the voice and turn detection live under `audio`, and the PCM format always carries
//! the one rate GA supports. The bridge sends its own `response.cancel` on barge-in, so
//! `interrupt_response` is a parameter; `create_response` is always on (the server answers when
//! the caller stops speaking).

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::domain::assistant::tools::Tool;
use crate::domain::assistant::{AssistantSpec, Codec, TurnDetectionType, Voice};
use crate::domain::secret::SecretString;

/// The only sample rate GA accepts for `audio/pcm`.
pub(crate) const PCM_RATE_HZ: u32 = 24_000;

/// The `session` of a `session.update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionConfig {
    /// Always `realtime`: the speech-to-speech session kind (GA requires it).
    #[serde(rename = "type")]
    session_type: &'static str,
    /// Cannot change after the first update; it must match the `model` of the socket's URL.
    pub model: String,
    /// Always `["audio"]`: audio plus its transcript. GA takes audio or text, never both.
    output_modalities: [&'static str; 1],
    /// The system prompt; may be empty.
    pub instructions: String,
    pub audio: SessionAudio,
    /// The assistant's tools; absent when it has none (GA keeps the server's empty default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<SessionTool>,
    /// `auto`, `none` or `required`; sent only with tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
}

/// One entry of `session.tools`: a function we execute, or a remote MCP server OpenAI calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionTool {
    Function {
        name: String,
        description: String,
        parameters: serde_json::Value,
    },
    Mcp {
        server_label: String,
        server_url: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        server_description: String,
        allowed_tools: Vec<String>,
        /// Always `never`: nobody can approve a tool call in the middle of a phone call.
        require_approval: &'static str,
        /// The OAuth access token for the server, from the tenant's stored secret; filled in by
        /// [`SessionConfig::authorize_mcp`] just before the session is configured.
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "expose_authorization"
        )]
        authorization: Option<SecretString>,
    },
}

/// The MCP token goes to OpenAI in plain text; everywhere else (`Debug`) it stays redacted.
fn expose_authorization<S: Serializer>(
    token: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match token {
        Some(token) => serializer.serialize_str(token.expose()),
        None => serializer.serialize_none(),
    }
}

impl SessionTool {
    fn for_tool(tool: &Tool) -> SessionTool {
        match tool {
            Tool::Mcp(mcp) => SessionTool::Mcp {
                server_label: mcp.name.clone(),
                server_url: mcp.server_url.clone(),
                server_description: mcp.description.clone(),
                allowed_tools: mcp.allowed_tools.clone(),
                require_approval: "never",
                authorization: None,
            },
            other => SessionTool::Function {
                name: other.name().to_owned(),
                description: other.description().to_owned(),
                parameters: other
                    .parameters()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            },
        }
    }
}

impl SessionConfig {
    /// From the stored assistant. `model` is the assistant's model (the caller resolves
    /// defaults). `interrupt_response` is passed explicitly (the bridge sends its own
    /// `response.cancel`, so it passes false); `create_response` is always true.
    ///
    /// The assistant's `language` is not sent: GA has no such session field, and rewriting the
    /// tenant's instructions would surprise them. The transcription language is sent when set.
    pub fn for_assistant(spec: &AssistantSpec, interrupt_response: bool) -> Self {
        let format = AudioFormat::from(spec.audio.codec);
        let turn = &spec.turn_detection;
        let turn_detection = match turn.kind {
            TurnDetectionType::ServerVad => TurnDetectionConfig::ServerVad {
                threshold: turn.threshold,
                prefix_padding_ms: turn.prefix_padding_ms,
                silence_duration_ms: turn.silence_duration_ms,
                create_response: true,
                interrupt_response,
            },
            // The threshold and durations are server-VAD settings; semantic VAD rejects them.
            TurnDetectionType::SemanticVad => TurnDetectionConfig::SemanticVad {
                create_response: true,
                interrupt_response,
            },
        };
        let transcription = spec
            .transcription
            .as_ref()
            .map(|transcription| InputTranscription {
                model: transcription.model.clone(),
                language: transcription.language.clone(),
            });
        let tools: Vec<SessionTool> = spec.tools.iter().map(SessionTool::for_tool).collect();
        let tool_choice = (!tools.is_empty()).then(|| spec.tool_choice.as_str());
        Self {
            session_type: "realtime",
            model: spec.model.clone(),
            output_modalities: ["audio"],
            instructions: spec.instructions.clone(),
            tools,
            tool_choice,
            audio: SessionAudio {
                input: AudioInput {
                    format,
                    transcription,
                    turn_detection,
                },
                output: AudioOutput {
                    format,
                    voice: spec.voice,
                },
            },
        }
    }

    /// Gives the MCP server labelled `label` its access token.
    pub(crate) fn authorize_mcp(&mut self, label: &str, token: SecretString) {
        for tool in &mut self.tools {
            if let SessionTool::Mcp {
                server_label,
                authorization,
                ..
            } = tool
            {
                if server_label == label {
                    *authorization = Some(token.clone());
                }
            }
        }
    }

    /// The codec of the audio exchanged with OpenAI (input and output always match).
    pub(crate) fn codec(&self) -> Codec {
        self.audio.input.format.codec()
    }
}

/// `session.audio`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionAudio {
    pub input: AudioInput,
    pub output: AudioOutput,
}

/// `session.audio.input`: the caller's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioInput {
    pub format: AudioFormat,
    /// Absent: the caller's speech is not transcribed (and not billed for transcription).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<InputTranscription>,
    pub turn_detection: TurnDetectionConfig,
}

/// `session.audio.output`: the assistant's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioOutput {
    pub format: AudioFormat,
    /// Serialized under OpenAI's name for it.
    pub voice: Voice,
}

/// An audio format of the GA protocol: `{"type":"audio/pcm","rate":24000}` or
/// `{"type":"audio/pcmu"}` (μ-law has no rate field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// 16-bit little-endian mono PCM at 24 kHz.
    Pcm24k,
    /// G.711 μ-law at 8 kHz.
    Pcmu,
}

impl AudioFormat {
    pub(crate) fn codec(self) -> Codec {
        match self {
            AudioFormat::Pcm24k => Codec::Pcm24k,
            AudioFormat::Pcmu => Codec::Pcmu,
        }
    }
}

impl From<Codec> for AudioFormat {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::Pcm24k => AudioFormat::Pcm24k,
            Codec::Pcmu => AudioFormat::Pcmu,
        }
    }
}

impl Serialize for AudioFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AudioFormat::Pcm24k => {
                let mut format = serializer.serialize_struct("AudioFormat", 2)?;
                format.serialize_field("type", "audio/pcm")?;
                format.serialize_field("rate", &PCM_RATE_HZ)?;
                format.end()
            }
            AudioFormat::Pcmu => {
                let mut format = serializer.serialize_struct("AudioFormat", 1)?;
                format.serialize_field("type", "audio/pcmu")?;
                format.end()
            }
        }
    }
}

/// `session.audio.input.transcription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputTranscription {
    pub model: String,
    /// Absent: the transcriber detects the language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `session.audio.input.turn_detection`. Both flags are always sent, because the server's
/// defaults for them are not documented.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetectionConfig {
    ServerVad {
        threshold: f64,
        prefix_padding_ms: u32,
        silence_duration_ms: u32,
        create_response: bool,
        interrupt_response: bool,
    },
    SemanticVad {
        create_response: bool,
        interrupt_response: bool,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::assistant::{NewAssistant, Transcription, TurnDetection};
    use crate::providers::openai::events::ClientEvent;

    fn default_assistant() -> AssistantSpec {
        AssistantSpec::from_new(
            NewAssistant {
                name: "Front desk".to_owned(),
                instructions: Some("You answer the phone for Acme.".to_owned()),
                ..NewAssistant::default()
            },
            "gpt-realtime",
        )
        .unwrap()
    }

    fn update_json(session: SessionConfig) -> String {
        ClientEvent::SessionUpdate { session }.to_json()
    }

    /// Fails on any field of the retired beta shape, anywhere in the session, and on a PCM
    /// format with a rate other than 24 kHz or a μ-law format with a rate.
    fn assert_ga_only(session: &Value) {
        let mut keys: Vec<&str> = session
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "audio",
                "instructions",
                "model",
                "output_modalities",
                "type"
            ],
            "top-level session keys"
        );
        fn walk(value: &Value) {
            match value {
                Value::Object(map) => {
                    for beta in [
                        "modalities",
                        "input_audio_format",
                        "output_audio_format",
                        "input_audio_transcription",
                        "input_audio_noise_reduction",
                        "temperature",
                        "max_response_output_tokens",
                    ] {
                        assert!(!map.contains_key(beta), "beta field {beta} in {value}");
                    }
                    match map.get("type").and_then(Value::as_str) {
                        Some("audio/pcm") => assert_eq!(map.get("rate"), Some(&json!(24_000))),
                        Some("audio/pcmu") => assert!(!map.contains_key("rate"), "{value}"),
                        _ => {}
                    }
                    map.values().for_each(walk);
                }
                Value::Array(items) => items.iter().for_each(walk),
                _ => {}
            }
        }
        walk(session);
    }

    #[test]
    fn tools_are_declared_with_the_choice_and_the_mcp_token_only_on_the_wire() {
        let mut spec = default_assistant();
        spec.tools = serde_json::from_value(json!([
            {"type": "end_call", "name": "hang_up", "description": "When done"},
            {"type": "http", "name": "lookup", "description": "Orders",
             "url": "https://crm.example.com/", "headers": {"Authorization": "{{secret.crm}}"},
             "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}},
            {"type": "mcp", "name": "docs", "description": "Docs",
             "server_url": "https://mcp.example.com/", "allowed_tools": ["search"],
             "authorization_secret": "tok"}
        ]))
        .unwrap();
        let mut session = SessionConfig::for_assistant(&spec, false);
        session.authorize_mcp("docs", SecretString::new("mcp-token-1234"));
        assert!(!format!("{session:?}").contains("mcp-token-1234"));
        let sent: Value = serde_json::from_str(&update_json(session)).unwrap();
        let session = &sent["session"];
        assert_eq!(session["tool_choice"], "auto");
        assert_eq!(session["tools"][0]["type"], "function");
        assert_eq!(session["tools"][0]["name"], "hang_up");
        assert_eq!(session["tools"][0]["parameters"]["type"], "object");
        assert_eq!(
            session["tools"][1]["parameters"]["properties"]["id"]["type"],
            "string"
        );
        assert!(
            session["tools"][1].get("headers").is_none(),
            "headers stay with us"
        );
        assert!(session["tools"][1].get("url").is_none());
        assert_eq!(
            session["tools"][2],
            json!({"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/",
                   "server_description": "Docs", "allowed_tools": ["search"],
                   "require_approval": "never", "authorization": "mcp-token-1234"})
        );
    }

    #[test]
    fn default_assistant_gets_pcm24k_and_server_vad() {
        let session = SessionConfig::for_assistant(&default_assistant(), false);
        assert_eq!(session.codec(), Codec::Pcm24k);
        let text = update_json(session);
        // Exact text, key order included: this is what goes on the wire.
        assert_eq!(
            text,
            concat!(
                r#"{"type":"session.update","session":{"type":"realtime","model":"gpt-realtime","#,
                r#""output_modalities":["audio"],"instructions":"You answer the phone for Acme.","#,
                r#""audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"#,
                r#""turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"#,
                r#""silence_duration_ms":500,"create_response":true,"interrupt_response":false}},"#,
                r#""output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}}}}"#
            )
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_ga_only(&value["session"]);
        assert!(
            value["session"]["audio"]["input"]
                .get("transcription")
                .is_none()
        );
    }

    #[test]
    fn pcmu_semantic_vad_and_transcription() {
        let mut spec = default_assistant();
        spec.model = "gpt-realtime-mini".to_owned();
        spec.voice = Voice::Cedar;
        spec.language = Some("hi".to_owned());
        spec.audio.codec = Codec::Pcmu;
        spec.turn_detection = TurnDetection {
            kind: TurnDetectionType::SemanticVad,
            threshold: 0.9,
            prefix_padding_ms: 100,
            silence_duration_ms: 900,
        };
        spec.transcription = Some(Transcription {
            model: "gpt-live-transcribe".to_owned(),
            language: Some("hi".to_owned()),
        });
        let session = SessionConfig::for_assistant(&spec, true);
        assert_eq!(session.codec(), Codec::Pcmu);
        let value: Value = serde_json::from_str(&update_json(session)).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "model": "gpt-realtime-mini",
                    "output_modalities": ["audio"],
                    "instructions": "You answer the phone for Acme.",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcmu"},
                            "transcription": {"model": "gpt-live-transcribe", "language": "hi"},
                            "turn_detection": {
                                "type": "semantic_vad",
                                "create_response": true,
                                "interrupt_response": true
                            }
                        },
                        "output": {"format": {"type": "audio/pcmu"}, "voice": "cedar"}
                    }
                }
            })
        );
        assert_ga_only(&value["session"]);
    }

    #[test]
    fn transcription_language_is_omitted_when_unset_and_vad_settings_pass_through() {
        let mut spec = default_assistant();
        spec.transcription = Some(Transcription::default());
        spec.turn_detection.threshold = 0.75;
        spec.turn_detection.prefix_padding_ms = 0;
        spec.turn_detection.silence_duration_ms = 1_200;
        let session = SessionConfig::for_assistant(&spec, false);
        let value = serde_json::to_value(&session).unwrap();
        assert_eq!(
            value["audio"]["input"]["transcription"],
            json!({"model": "gpt-live-transcribe"})
        );
        assert_eq!(
            value["audio"]["input"]["turn_detection"],
            json!({
                "type": "server_vad",
                "threshold": 0.75,
                "prefix_padding_ms": 0,
                "silence_duration_ms": 1200,
                "create_response": true,
                "interrupt_response": false
            })
        );
        assert_ga_only(&value);
    }

    #[test]
    fn formats_follow_the_codec() {
        for codec in [Codec::Pcm24k, Codec::Pcmu] {
            assert_eq!(AudioFormat::from(codec).codec(), codec);
        }
        assert_eq!(
            serde_json::to_value(AudioFormat::Pcm24k).unwrap(),
            json!({"type": "audio/pcm", "rate": 24000})
        );
        assert_eq!(
            serde_json::to_value(AudioFormat::Pcmu).unwrap(),
            json!({"type": "audio/pcmu"})
        );
    }
}
