//! Which voice AI an assistant talks through: OpenAI Realtime (the default), a server speaking
//! OpenAI's realtime events at the tenant's own endpoint, or an ElevenLabs Conversational AI
//! agent. The assistant's other fields mostly configure OpenAI's session;
//! for an ElevenLabs agent the voice, model and turn detection are the agent's own settings in
//! ElevenLabs, and what the bridge can still send (first message, prompt, language, voice,
//! dynamic variables) goes as overrides the agent must allow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::tools::{Tool, ToolChoice};
use super::{AssistantSpec, Codec};
use crate::domain::validation::{ValidationError, check_chars, check_token};

/// The kind of voice AI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    #[default]
    OpenaiRealtime,
    /// A server that speaks OpenAI's realtime events at the tenant's own endpoint (Azure
    /// OpenAI's realtime deployments, other vendors), with the tenant's key.
    OpenaiCompatibleRealtime,
    ElevenlabsConvai,
}

impl BackendKind {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::OpenaiRealtime => "openai_realtime",
            BackendKind::OpenaiCompatibleRealtime => "openai_compatible_realtime",
            BackendKind::ElevenlabsConvai => "elevenlabs_convai",
        }
    }
}

/// The assistant's voice AI. `{"type": "openai_realtime"}` (the default),
/// `{"type": "openai_compatible_realtime"}` (the tenant's own endpoint) or
/// `{"type": "elevenlabs_convai", "agent_id": "…", "private": true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// The ElevenLabs agent's id (required for `elevenlabs_convai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128)]
    pub agent_id: Option<String>,
    /// A private agent is reached through a signed URL fetched with the tenant's
    /// `elevenlabs_api_key`; a public one by its id alone (anyone with the id can run it up).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// An ElevenLabs voice to use instead of the agent's (the agent must allow the override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub voice_id: Option<String>,
    /// Values for `{{name}}` placeholders in the agent's prompt and messages: strings (up to
    /// 1,000 characters), numbers or booleans, at most 32. voxbridge adds `caller_number`,
    /// `called_number`, `call_id` and `direction` itself.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub dynamic_variables: Map<String, Value>,
}

/// Dynamic variables voxbridge sets on every ElevenLabs conversation.
pub const RESERVED_VARIABLES: [&str; 4] =
    ["caller_number", "called_number", "call_id", "direction"];
const MAX_VARIABLES: usize = 32;
const MAX_VARIABLE_TEXT_CHARS: usize = 1_000;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

impl Backend {
    /// Checks the backend's own fields and that the rest of the assistant asks nothing this
    /// backend cannot do. Errors name the field (`backend.agent_id`, `audio.codec`, `tools[2]`).
    pub(super) fn validate(&self, spec: &AssistantSpec) -> Result<(), ValidationError> {
        match self.kind {
            BackendKind::OpenaiRealtime | BackendKind::OpenaiCompatibleRealtime => {
                self.validate_openai()
            }
            BackendKind::ElevenlabsConvai => self.validate_elevenlabs(spec),
        }
    }

    fn validate_openai(&self) -> Result<(), ValidationError> {
        let only_elevenlabs = "is only for backend type elevenlabs_convai";
        if self.agent_id.is_some() {
            return Err(ValidationError::new("backend.agent_id", only_elevenlabs));
        }
        if self.private {
            return Err(ValidationError::new("backend.private", only_elevenlabs));
        }
        if self.voice_id.is_some() {
            return Err(ValidationError::new("backend.voice_id", only_elevenlabs));
        }
        if !self.dynamic_variables.is_empty() {
            return Err(ValidationError::new(
                "backend.dynamic_variables",
                only_elevenlabs,
            ));
        }
        Ok(())
    }

    fn validate_elevenlabs(&self, spec: &AssistantSpec) -> Result<(), ValidationError> {
        let ids = "ASCII letters, digits, '_' and '-'";
        let Some(agent_id) = &self.agent_id else {
            return Err(ValidationError::new(
                "backend.agent_id",
                "is required for backend type elevenlabs_convai",
            ));
        };
        check_token("backend.agent_id", agent_id, 1, 128, is_id_char, ids)?;
        if let Some(voice_id) = &self.voice_id {
            check_token("backend.voice_id", voice_id, 1, 64, is_id_char, ids)?;
        }
        self.validate_variables()?;
        if spec.audio.codec == Codec::Pcmu {
            return Err(ValidationError::new(
                "audio.codec",
                "pcmu is OpenAI's μ-law; an ElevenLabs agent speaks the formats set on the \
                 agent (pcm_8000 or pcm_16000 spare FreJun's audio any resampling)",
            ));
        }
        if spec.transcription.is_some() {
            return Err(ValidationError::new(
                "transcription",
                "must be null: an ElevenLabs agent transcribes the caller itself",
            ));
        }
        if spec.tool_choice != ToolChoice::Auto {
            return Err(ValidationError::new(
                "tool_choice",
                "must be auto: an ElevenLabs agent decides itself when to call its tools",
            ));
        }
        if let Some(index) = spec
            .tools
            .iter()
            .position(|tool| matches!(tool, Tool::Mcp(_)))
        {
            return Err(ValidationError::new(
                format!("tools[{index}]"),
                "mcp tools run inside OpenAI; an ElevenLabs agent calls voxbridge's tools as \
                 client tools of the same name",
            ));
        }
        Ok(())
    }

    fn validate_variables(&self) -> Result<(), ValidationError> {
        if self.dynamic_variables.len() > MAX_VARIABLES {
            return Err(ValidationError::new(
                "backend.dynamic_variables",
                format!("may hold at most {MAX_VARIABLES} variables"),
            ));
        }
        for (name, value) in &self.dynamic_variables {
            let field = format!("backend.dynamic_variables.{name}");
            check_token(
                &field,
                name,
                1,
                64,
                |c| c.is_ascii_alphanumeric() || c == '_',
                "ASCII letters, digits and '_' in the name",
            )?;
            if name.starts_with("system__") {
                return Err(ValidationError::new(
                    field,
                    "names starting with system__ are ElevenLabs' own",
                ));
            }
            if RESERVED_VARIABLES.contains(&name.as_str()) {
                return Err(ValidationError::new(
                    field,
                    "is set by voxbridge on every call",
                ));
            }
            match value {
                Value::String(text) => check_chars(&field, text, 0, MAX_VARIABLE_TEXT_CHARS)?,
                Value::Number(_) | Value::Bool(_) => {}
                _ => {
                    return Err(ValidationError::new(
                        field,
                        "must be a string, a number or a boolean",
                    ));
                }
            }
        }
        Ok(())
    }
}
