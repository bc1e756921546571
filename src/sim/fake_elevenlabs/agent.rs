//! The agents the fake knows ([`AgentConfig`]) and what their settings do to a conversation:
//! which `conversation_config_override` fields they let through and how `{{name}}`
//! placeholders are filled from dynamic variables (docs/protocols.md §5.7).

use serde_json::{Map, Value};

use super::audio::AudioFormat;

/// Every overridable field of `conversation_config_override`, by the dotted path that also
/// names it in [`AgentConfig::enabled_overrides`] (the agent's
/// `platform_settings.overrides.conversation_config_override` booleans).
pub const OVERRIDE_FIELDS: [&str; 16] = [
    "agent.prompt.prompt",
    "agent.prompt.llm",
    "agent.prompt.tool_ids",
    "agent.prompt.native_mcp_server_ids",
    "agent.prompt.knowledge_base",
    "agent.first_message",
    "agent.language",
    "agent.max_conversation_duration_message",
    "tts.voice_id",
    "tts.model_id",
    "tts.stability",
    "tts.speed",
    "tts.similarity_boost",
    "asr.keywords",
    "turn.soft_timeout_config",
    "conversation.text_only",
];

/// The enablement name of the initiation's `custom_llm_extra_body` (dropped unless enabled).
pub const CUSTOM_LLM_EXTRA_BODY: &str = "custom_llm_extra_body";

/// The enablement name of the initiation's `starting_workflow_node_id`. Unlike the other
/// fields, sending it to an agent that does not enable it fails the conversation's start.
pub const STARTING_WORKFLOW_NODE: &str = "enable_starting_workflow_node_id_from_client";

/// One agent as configured on ElevenLabs' side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The id clients pass as `agent_id`.
    pub agent_id: String,
    /// A private agent is reachable only through a signed URL; a public one by its id alone.
    pub private: bool,
    /// `user_input_audio_format` (`asr.user_input_audio_format`).
    pub input_format: AudioFormat,
    /// `agent_output_audio_format` (`tts.agent_output_audio_format`).
    pub output_format: AudioFormat,
    /// Spoken right after the metadata when non-empty (unless overridden); `{{name}}`
    /// placeholders are filled from the dynamic variables.
    pub first_message: String,
    /// The overrides the agent allows: paths from [`OVERRIDE_FIELDS`],
    /// [`CUSTOM_LLM_EXTRA_BODY`] or [`STARTING_WORKFLOW_NODE`].
    pub enabled_overrides: Vec<String>,
}

impl AgentConfig {
    /// A public agent with `pcm_8000` both ways (the setup that needs no resampling
    /// with FreJun, docs/protocols.md §5.5), no first message and no overrides enabled.
    pub fn new(agent_id: &str) -> AgentConfig {
        AgentConfig {
            agent_id: agent_id.to_owned(),
            private: false,
            input_format: AudioFormat::Pcm(8_000),
            output_format: AudioFormat::Pcm(8_000),
            first_message: String::new(),
            enabled_overrides: Vec::new(),
        }
    }

    /// This agent, private.
    pub fn private(mut self) -> AgentConfig {
        self.private = true;
        self
    }

    /// This agent with these input and output formats.
    pub fn formats(mut self, input: AudioFormat, output: AudioFormat) -> AgentConfig {
        self.input_format = input;
        self.output_format = output;
        self
    }

    /// This agent with this first message.
    pub fn first_message(mut self, text: &str) -> AgentConfig {
        self.first_message = text.to_owned();
        self
    }

    /// This agent with these overrides enabled as well.
    pub fn enable(mut self, fields: &[&str]) -> AgentConfig {
        self.enabled_overrides
            .extend(fields.iter().map(|field| (*field).to_owned()));
        self
    }

    /// Whether the agent allows `field`.
    pub fn allows(&self, field: &str) -> bool {
        self.enabled_overrides
            .iter()
            .any(|enabled| enabled == field)
    }
}

/// Splits a conversation's override into what the agent allows and the paths it drops (in
/// [`OVERRIDE_FIELDS`] order), as ElevenLabs does silently. Fields that are not overridable at
/// all are neither: the validator reports them and they are never applied.
pub(super) fn apply_overrides(agent: &AgentConfig, requested: &Value) -> (Value, Vec<String>) {
    let mut applied = Value::Object(Map::new());
    let mut dropped = Vec::new();
    for path in OVERRIDE_FIELDS {
        let Some(value) = lookup(requested, path) else {
            continue;
        };
        if agent.allows(path) {
            insert(&mut applied, path, value.clone());
        } else {
            dropped.push(path.to_owned());
        }
    }
    (applied, dropped)
}

/// The value at a dotted path of nested objects.
pub(super) fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |value, key| value.as_object()?.get(key))
}

/// Sets a dotted path, creating the objects on the way.
fn insert(target: &mut Value, path: &str, value: Value) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop() else {
        return;
    };
    let mut node = target;
    for key in keys {
        let Some(object) = node.as_object_mut() else {
            return;
        };
        node = object
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(object) = node.as_object_mut() {
        object.insert(last.to_owned(), value);
    }
}

/// `text` with every `{{name}}` whose name is a variable replaced by its value (strings as
/// they are, numbers and booleans as JSON writes them); other placeholders stay as written.
pub(super) fn fill_placeholders(text: &str, variables: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match variables.get(name) {
            Some(Value::String(value)) => out.push_str(value),
            Some(value) => out.push_str(&value.to_string()),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_enabled_fields_are_applied_and_the_rest_are_listed_as_dropped() {
        let agent = AgentConfig::new("agent_1").enable(&["agent.first_message", "tts.speed"]);
        let requested = json!({
            "agent": {"first_message": "Hi", "prompt": {"prompt": "Be brief", "llm": "x"}},
            "tts": {"speed": 1.1, "voice_id": "v1"},
        });
        let (applied, dropped) = apply_overrides(&agent, &requested);
        assert_eq!(
            applied,
            json!({"agent": {"first_message": "Hi"}, "tts": {"speed": 1.1}})
        );
        assert_eq!(
            dropped,
            ["agent.prompt.prompt", "agent.prompt.llm", "tts.voice_id"]
        );
    }

    #[test]
    fn placeholders_are_filled_from_variables() {
        let variables = json!({"name": "Asha", "count": 3, "vip": true})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            fill_placeholders("Hi {{name}}, {{ count }} calls, vip={{vip}}", &variables),
            "Hi Asha, 3 calls, vip=true"
        );
        assert_eq!(
            fill_placeholders("{{unknown}} and {{name", &variables),
            "{{unknown}} and {{name"
        );
    }
}
