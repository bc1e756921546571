//! Shape checks of client messages against docs/protocols.md §5.3 and §5.7, from the raw
//! JSON, so that our client is tested against the contract rather than against its own types.
//!
//! [`parse`] turns one text frame into a [`ClientMessage`] the conversation acts on (when it
//! can be acted on) and a list of problems, each a sentence naming the field. Problems do not
//! stop a message that can still be understood: a `user_message` with an extra field is still
//! a user turn, a `client_tool_result` whose `result` is not a string still answers its call.
//! What ElevenLabs would do with such a message is not documented; the point is the record.
//! Checks that need the conversation's state (order, outstanding calls and pings) are made by
//! the conversation.

use serde_json::{Map, Value};

use super::audio::AudioFormat;
use crate::audio::pcm;

/// The `type`s a client may send.
pub(super) const CLIENT_TYPES: [&str; 8] = [
    "conversation_initiation_client_data",
    "pong",
    "client_tool_result",
    "contextual_update",
    "user_message",
    "user_activity",
    "multimodal_message",
    "feedback",
];

/// Prefix of the dynamic variables ElevenLabs sets itself.
const SYSTEM_PREFIX: &str = "system__";

/// One understood client message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ClientMessage {
    /// `{"user_audio_chunk": …}`, decoded (a trailing odd PCM byte kept; decoding drops it).
    Audio(Vec<u8>),
    /// `conversation_initiation_client_data`.
    Initiation(Box<Initiation>),
    /// `pong`.
    Pong {
        /// The ping it answers.
        event_id: u64,
    },
    /// `client_tool_result`.
    ToolResult {
        /// The call it answers.
        tool_call_id: String,
        /// `result` (its JSON text when it was not a string).
        result: String,
        /// `is_error` (false when it was not a boolean).
        is_error: bool,
    },
    /// `contextual_update`.
    ContextualUpdate(String),
    /// `user_message`, or the text of a `multimodal_message`.
    UserMessage(String),
    /// `user_activity`.
    UserActivity,
    /// A `multimodal_message` with a file only.
    FileMessage,
    /// `feedback`, raw.
    Feedback(Value),
}

impl ClientMessage {
    /// The message's name for sentences about it.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Audio(_) => "user_audio_chunk",
            ClientMessage::Initiation(_) => "conversation_initiation_client_data",
            ClientMessage::Pong { .. } => "pong",
            ClientMessage::ToolResult { .. } => "client_tool_result",
            ClientMessage::ContextualUpdate(_) => "contextual_update",
            ClientMessage::UserMessage(_) => "user_message",
            ClientMessage::UserActivity => "user_activity",
            ClientMessage::FileMessage => "multimodal_message",
            ClientMessage::Feedback(_) => "feedback",
        }
    }
}

/// The parts of `conversation_initiation_client_data` the conversation uses.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Initiation {
    /// The message as it arrived.
    pub raw: Value,
    /// `conversation_config_override` when it is an object.
    pub config_override: Option<Value>,
    /// Whether `custom_llm_extra_body` was sent.
    pub custom_llm_extra_body: bool,
    /// The valid dynamic variables.
    pub dynamic_variables: Map<String, Value>,
    /// `starting_workflow_node_id`.
    pub starting_workflow_node_id: Option<String>,
}

/// The result of checking one frame.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// What to act on; `None` when the frame cannot be understood.
    pub message: Option<ClientMessage>,
    /// What is wrong with it.
    pub problems: Vec<String>,
}

/// Checks one text frame; `input` is the agent's input format (the audio's).
pub(super) fn parse(text: &str, input: AudioFormat) -> Parsed {
    let mut check = Checker::default();
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            check.problem(format!("the frame is not valid JSON: {error}"));
            return check.done(None);
        }
    };
    let Some(object) = value.as_object() else {
        check.problem(format!(
            "the frame must be a JSON object, got {}",
            describe(&value)
        ));
        return check.done(None);
    };
    if object.contains_key("user_audio_chunk") {
        let message = check.audio(object, input);
        return check.done(message);
    }
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            check.problem(format!("type must be a string, got {}", describe(other)));
            return check.done(None);
        }
        None => {
            check.problem(
                "the message has neither \"type\" nor \"user_audio_chunk\"; every message but \
                 caller audio needs a type"
                    .to_owned(),
            );
            return check.done(None);
        }
    };
    let message = match kind {
        "conversation_initiation_client_data" => check.initiation(object, &value),
        "pong" => check.pong(object),
        "client_tool_result" => check.tool_result(object),
        "contextual_update" => check
            .text_message(object, kind)
            .map(ClientMessage::ContextualUpdate),
        "user_message" => check
            .text_message(object, kind)
            .map(ClientMessage::UserMessage),
        "user_activity" => {
            check.fields(object, kind, &["type"]);
            Some(ClientMessage::UserActivity)
        }
        "multimodal_message" => check.multimodal(object),
        "feedback" => check.feedback(object, &value),
        other => {
            check.problem(format!(
                "unknown message type \"{other}\" (a client sends only {})",
                CLIENT_TYPES.join(", ")
            ));
            None
        }
    };
    check.done(message)
}

/// "a string", "null", … for sentences.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects problems while checking one message.
#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    fn done(self, message: Option<ClientMessage>) -> Parsed {
        Parsed {
            message,
            problems: self.problems,
        }
    }

    /// Reports every field of `object` (at `path`) that is not in `allowed`.
    fn fields(&mut self, object: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(format!("{path}.{key} is not a documented field"));
            }
        }
    }

    /// `object[key]`, checked with `is`; reports a wrong type (`expected` names it) or, when
    /// `required`, absence.
    fn field<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        expected: &str,
        is: fn(&Value) -> bool,
    ) -> Option<&'a Value> {
        match object.get(key) {
            Some(value) if is(value) => Some(value),
            Some(value) => {
                self.problem(format!(
                    "{path}.{key} must be {expected}, got {}",
                    describe(value)
                ));
                None
            }
            None => {
                if required {
                    self.problem(format!("{path}.{key} is required"));
                }
                None
            }
        }
    }

    fn string<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        self.field(object, path, key, required, "a string", Value::is_string)
            .and_then(Value::as_str)
    }

    fn object<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        self.field(object, path, key, false, "an object", Value::is_object)
            .and_then(Value::as_object)
    }

    fn number(&mut self, object: &Map<String, Value>, path: &str, key: &str) {
        self.field(object, path, key, false, "a number", Value::is_number);
    }

    fn boolean(&mut self, object: &Map<String, Value>, path: &str, key: &str) {
        self.field(object, path, key, false, "a boolean", Value::is_boolean);
    }

    /// An array whose items all pass `is` (`item` names their type).
    fn array_of(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        key: &str,
        item: &str,
        is: fn(&Value) -> bool,
    ) {
        let Some(items) = self
            .field(object, path, key, false, "an array", Value::is_array)
            .and_then(Value::as_array)
        else {
            return;
        };
        for (index, value) in items.iter().enumerate() {
            if !is(value) {
                self.problem(format!(
                    "{path}.{key}[{index}] must be {item}, got {}",
                    describe(value)
                ));
            }
        }
    }

    fn audio(&mut self, object: &Map<String, Value>, input: AudioFormat) -> Option<ClientMessage> {
        for key in object.keys().filter(|key| *key != "user_audio_chunk") {
            self.problem(format!(
                "a user_audio_chunk message has no other fields, got \"{key}\""
            ));
        }
        let text = match &object["user_audio_chunk"] {
            Value::String(text) => text,
            other => {
                self.problem(format!(
                    "user_audio_chunk must be a base64 string, got {}",
                    describe(other)
                ));
                return None;
            }
        };
        let mut bytes = Vec::new();
        if let Err(error) = pcm::decode_base64(text, &mut bytes) {
            self.problem(format!("user_audio_chunk is not valid base64: {error}"));
            return None;
        }
        if bytes.is_empty() {
            self.problem("user_audio_chunk is empty".to_owned());
        }
        if input.bytes_per_sample() == 2 && bytes.len() % 2 == 1 {
            self.problem(format!(
                "user_audio_chunk decodes to {} bytes, an odd length for {input} (16-bit samples)",
                bytes.len()
            ));
        }
        Some(ClientMessage::Audio(bytes))
    }

    fn initiation(&mut self, object: &Map<String, Value>, raw: &Value) -> Option<ClientMessage> {
        let path = "conversation_initiation_client_data";
        self.fields(
            object,
            path,
            &[
                "type",
                "conversation_config_override",
                "custom_llm_extra_body",
                "dynamic_variables",
                "user_id",
                "source_info",
                "branch_id",
                "environment",
                "starting_workflow_node_id",
            ],
        );
        let config_override = self
            .object(object, path, "conversation_config_override")
            .map(|config| {
                self.config_override(config, &format!("{path}.conversation_config_override"));
                Value::Object(config.clone())
            });
        let custom_llm_extra_body = self.object(object, path, "custom_llm_extra_body").is_some();
        let dynamic_variables = self
            .object(object, path, "dynamic_variables")
            .map(|variables| {
                self.dynamic_variables(variables, &format!("{path}.dynamic_variables"))
            })
            .unwrap_or_default();
        self.string(object, path, "user_id", false);
        if let Some(source) = self.object(object, path, "source_info") {
            let source_path = format!("{path}.source_info");
            self.fields(source, &source_path, &["source", "version"]);
            self.string(source, &source_path, "source", false);
            self.string(source, &source_path, "version", false);
        }
        self.string(object, path, "branch_id", false);
        self.string(object, path, "environment", false);
        let starting_workflow_node_id = self
            .string(object, path, "starting_workflow_node_id", false)
            .map(str::to_owned);
        Some(ClientMessage::Initiation(Box::new(Initiation {
            raw: raw.clone(),
            config_override,
            custom_llm_extra_body,
            dynamic_variables,
            starting_workflow_node_id,
        })))
    }

    /// `conversation_config_override` (docs/protocols.md §5.7): every known field with its type.
    fn config_override(&mut self, config: &Map<String, Value>, path: &str) {
        self.fields(
            config,
            path,
            &["agent", "tts", "asr", "turn", "conversation"],
        );
        if let Some(agent) = self.object(config, path, "agent") {
            let path = format!("{path}.agent");
            self.fields(
                agent,
                &path,
                &[
                    "prompt",
                    "first_message",
                    "language",
                    "max_conversation_duration_message",
                ],
            );
            if let Some(prompt) = self.object(agent, &path, "prompt") {
                let path = format!("{path}.prompt");
                self.fields(
                    prompt,
                    &path,
                    &[
                        "prompt",
                        "llm",
                        "tool_ids",
                        "native_mcp_server_ids",
                        "knowledge_base",
                    ],
                );
                self.string(prompt, &path, "prompt", false);
                self.string(prompt, &path, "llm", false);
                self.array_of(prompt, &path, "tool_ids", "a string", Value::is_string);
                self.array_of(
                    prompt,
                    &path,
                    "native_mcp_server_ids",
                    "a string",
                    Value::is_string,
                );
                self.array_of(
                    prompt,
                    &path,
                    "knowledge_base",
                    "an object",
                    Value::is_object,
                );
            }
            self.string(agent, &path, "first_message", false);
            self.string(agent, &path, "language", false);
            self.string(agent, &path, "max_conversation_duration_message", false);
        }
        if let Some(tts) = self.object(config, path, "tts") {
            let path = format!("{path}.tts");
            self.fields(
                tts,
                &path,
                &[
                    "voice_id",
                    "model_id",
                    "stability",
                    "speed",
                    "similarity_boost",
                ],
            );
            self.string(tts, &path, "voice_id", false);
            self.string(tts, &path, "model_id", false);
            for key in ["stability", "speed", "similarity_boost"] {
                self.number(tts, &path, key);
            }
        }
        if let Some(asr) = self.object(config, path, "asr") {
            let path = format!("{path}.asr");
            self.fields(asr, &path, &["keywords"]);
            self.array_of(asr, &path, "keywords", "a string", Value::is_string);
        }
        if let Some(turn) = self.object(config, path, "turn") {
            let path = format!("{path}.turn");
            self.fields(turn, &path, &["soft_timeout_config"]);
            self.object(turn, &path, "soft_timeout_config");
        }
        if let Some(conversation) = self.object(config, path, "conversation") {
            let path = format!("{path}.conversation");
            self.fields(conversation, &path, &["text_only"]);
            self.boolean(conversation, &path, "text_only");
        }
    }

    /// docs/protocols.md §5.7: values are strings, numbers or booleans; `system__` names are
    /// ElevenLabs' own.
    /// Returns the valid ones.
    fn dynamic_variables(
        &mut self,
        variables: &Map<String, Value>,
        path: &str,
    ) -> Map<String, Value> {
        let mut valid = Map::new();
        for (name, value) in variables {
            let mut ok = true;
            if name.starts_with(SYSTEM_PREFIX) {
                self.problem(format!(
                    "{path}.{name}: names starting with {SYSTEM_PREFIX} are set by ElevenLabs \
                     and cannot be sent by the client"
                ));
                ok = false;
            }
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                self.problem(format!(
                    "{path}.{name} must be a string, number or boolean, got {}",
                    describe(value)
                ));
                ok = false;
            }
            if ok {
                valid.insert(name.clone(), value.clone());
            }
        }
        valid
    }

    fn pong(&mut self, object: &Map<String, Value>) -> Option<ClientMessage> {
        self.fields(object, "pong", &["type", "event_id"]);
        let event_id = self
            .field(
                object,
                "pong",
                "event_id",
                true,
                "a non-negative integer",
                |value| value.as_u64().is_some(),
            )
            .and_then(Value::as_u64)?;
        Some(ClientMessage::Pong { event_id })
    }

    fn tool_result(&mut self, object: &Map<String, Value>) -> Option<ClientMessage> {
        let path = "client_tool_result";
        self.fields(
            object,
            path,
            &["type", "tool_call_id", "result", "is_error"],
        );
        let tool_call_id = self.string(object, path, "tool_call_id", true);
        let result = match object.get("result") {
            Some(Value::String(result)) => result.clone(),
            Some(other) => {
                self.problem(format!(
                    "{path}.result must be a string, got {}",
                    describe(other)
                ));
                other.to_string()
            }
            None => {
                self.problem(format!("{path}.result is required"));
                String::new()
            }
        };
        let is_error = self
            .field(
                object,
                path,
                "is_error",
                true,
                "a boolean",
                Value::is_boolean,
            )
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Some(ClientMessage::ToolResult {
            tool_call_id: tool_call_id?.to_owned(),
            result,
            is_error,
        })
    }

    /// `contextual_update` and `user_message`: `{type, text}`.
    fn text_message(&mut self, object: &Map<String, Value>, kind: &str) -> Option<String> {
        self.fields(object, kind, &["type", "text"]);
        self.string(object, kind, "text", true).map(str::to_owned)
    }

    fn multimodal(&mut self, object: &Map<String, Value>) -> Option<ClientMessage> {
        let path = "multimodal_message";
        self.fields(object, path, &["type", "text", "file"]);
        let text = self.object(object, path, "text").and_then(|text| {
            let text_path = format!("{path}.text");
            self.fields(text, &text_path, &["type", "text"]);
            if text.get("type").and_then(Value::as_str) != Some("user_message") {
                self.problem(format!("{text_path}.type must be \"user_message\""));
            }
            self.string(text, &text_path, "text", true)
                .map(str::to_owned)
        });
        let file = self.object(object, path, "file");
        if let Some(file) = file {
            let file_path = format!("{path}.file");
            self.fields(file, &file_path, &["type", "file_id"]);
            if file.get("type").and_then(Value::as_str) != Some("file_input") {
                self.problem(format!("{file_path}.type must be \"file_input\""));
            }
            self.string(file, &file_path, "file_id", true);
        }
        match (text, file.is_some()) {
            (Some(text), _) => Some(ClientMessage::UserMessage(text)),
            (None, true) => Some(ClientMessage::FileMessage),
            (None, false) => {
                if !object.contains_key("text") {
                    self.problem(format!("{path} needs a text or a file"));
                }
                None
            }
        }
    }

    /// The SDK enum has `feedback` without fields; ElevenLabs' JavaScript client sends `score`
    /// (`like`/`dislike`) and `event_id`, so those two are checked and anything else reported.
    fn feedback(&mut self, object: &Map<String, Value>, raw: &Value) -> Option<ClientMessage> {
        self.fields(object, "feedback", &["type", "score", "event_id"]);
        if let Some(score) = self.string(object, "feedback", "score", false)
            && !matches!(score, "like" | "dislike")
        {
            self.problem(format!(
                "feedback.score must be \"like\" or \"dislike\", got \"{score}\""
            ));
        }
        self.field(
            object,
            "feedback",
            "event_id",
            false,
            "a non-negative integer",
            |value| value.as_u64().is_some(),
        );
        Some(ClientMessage::Feedback(raw.clone()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PCM16: AudioFormat = AudioFormat::Pcm(16_000);

    fn problems(message: Value) -> Vec<String> {
        parse(&message.to_string(), PCM16).problems
    }

    #[test]
    fn a_well_formed_initiation_has_no_problems() {
        let parsed = parse(
            &json!({
                "type": "conversation_initiation_client_data",
                "conversation_config_override": {
                    "agent": {"prompt": {"prompt": "Be brief", "llm": "gpt-4o", "tool_ids": ["t1"],
                              "native_mcp_server_ids": [], "knowledge_base": [{"id": "kb"}]},
                              "first_message": "Hi", "language": "en",
                              "max_conversation_duration_message": "Bye"},
                    "tts": {"voice_id": "v", "model_id": "m", "stability": 0.5, "speed": 1.0,
                            "similarity_boost": 0.75},
                    "asr": {"keywords": ["Acme"]},
                    "turn": {"soft_timeout_config": {}},
                    "conversation": {"text_only": false}
                },
                "custom_llm_extra_body": {"temperature": 0.2},
                "dynamic_variables": {"caller": "+91", "count": 2, "vip": true},
                "user_id": "u1",
                "source_info": {"source": "voxbridge", "version": "0.1.0"},
                "branch_id": "b", "environment": "production"
            })
            .to_string(),
            PCM16,
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let Some(ClientMessage::Initiation(initiation)) = parsed.message else {
            panic!("not an initiation");
        };
        assert_eq!(initiation.dynamic_variables.len(), 3);
        assert!(initiation.custom_llm_extra_body);
    }

    #[test]
    fn initiation_problems_name_the_field() {
        let found = problems(json!({
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {
                "agent": {"first_message": 5, "voice": "x"},
                "tts": {"speed": "fast"},
                "asr": {"keywords": ["a", 1]},
                "audio": {}
            },
            "dynamic_variables": {"system__caller_id": "1", "nested": {"a": 1}, "fine": "ok"},
            "user_id": null,
            "extra": 1
        }));
        let expected = [
            "conversation_initiation_client_data.extra is not a documented field",
            "conversation_initiation_client_data.conversation_config_override.audio is not a documented field",
            "conversation_initiation_client_data.conversation_config_override.agent.voice is not a documented field",
            "conversation_initiation_client_data.conversation_config_override.agent.first_message must be a string, got a number",
            "conversation_initiation_client_data.conversation_config_override.tts.speed must be a number, got a string",
            "conversation_initiation_client_data.conversation_config_override.asr.keywords[1] must be a string, got a number",
            "conversation_initiation_client_data.dynamic_variables.system__caller_id: names starting with system__ are set by ElevenLabs and cannot be sent by the client",
            "conversation_initiation_client_data.dynamic_variables.nested must be a string, number or boolean, got an object",
            "conversation_initiation_client_data.user_id must be a string, got null",
        ];
        for problem in expected {
            assert!(found.iter().any(|p| p == problem), "{problem}\n{found:#?}");
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn audio_chunks_are_bare_base64_of_whole_samples() {
        let ok = parse(r#"{"user_audio_chunk":"AAA="}"#, PCM16);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.message, Some(ClientMessage::Audio(vec![0, 0])));
        let ulaw = parse(r#"{"user_audio_chunk":"AAAA"}"#, AudioFormat::Ulaw8000);
        assert!(ulaw.problems.is_empty(), "odd lengths are fine for μ-law");

        let odd = parse(r#"{"user_audio_chunk":"AAAA"}"#, PCM16);
        assert_eq!(
            odd.problems,
            ["user_audio_chunk decodes to 3 bytes, an odd length for pcm_16000 (16-bit samples)"]
        );
        assert_eq!(
            odd.message,
            Some(ClientMessage::Audio(vec![0; 3])),
            "still played"
        );
        assert_eq!(
            problems(json!({"user_audio_chunk": "AAA=", "type": "user_audio_chunk"})),
            ["a user_audio_chunk message has no other fields, got \"type\""]
        );
        assert!(problems(json!({"user_audio_chunk": "AAA"}))[0].contains("not valid base64"));
        assert_eq!(
            problems(json!({"user_audio_chunk": 5})),
            ["user_audio_chunk must be a base64 string, got a number"]
        );
        assert_eq!(
            problems(json!({"user_audio_chunk": ""})),
            ["user_audio_chunk is empty"]
        );
    }

    #[test]
    fn typed_messages_have_exactly_their_fields() {
        assert!(problems(json!({"type": "pong", "event_id": 3})).is_empty());
        assert_eq!(
            problems(json!({"type": "pong", "event_id": "3"})),
            ["pong.event_id must be a non-negative integer, got a string"]
        );
        assert_eq!(
            problems(json!({"type": "pong"})),
            ["pong.event_id is required"]
        );
        assert_eq!(
            problems(json!({"type": "user_message", "text": "hi", "role": "user"})),
            ["user_message.role is not a documented field"]
        );
        assert_eq!(
            problems(json!({"type": "contextual_update"})),
            ["contextual_update.text is required"]
        );
        assert_eq!(
            problems(json!({"type": "user_activity", "at": 1})),
            ["user_activity.at is not a documented field"]
        );
        assert_eq!(
            problems(
                json!({"type": "client_tool_result", "tool_call_id": "c1", "result": {"ok": true}, "is_error": "no"})
            ),
            [
                "client_tool_result.result must be a string, got an object",
                "client_tool_result.is_error must be a boolean, got a string"
            ]
        );
        assert_eq!(
            problems(json!({"type": "feedback", "score": "meh", "event_id": 4})),
            ["feedback.score must be \"like\" or \"dislike\", got \"meh\""]
        );
        assert!(
            problems(json!({"type": "multimodal_message", "text": {"type": "user_message", "text": "hi"}}))
                .is_empty()
        );
        assert_eq!(
            problems(
                json!({"type": "multimodal_message", "file": {"type": "file", "file_id": "f"}})
            ),
            ["multimodal_message.file.type must be \"file_input\""]
        );
        assert_eq!(
            problems(json!({"type": "session.update"})),
            [format!(
                "unknown message type \"session.update\" (a client sends only {})",
                CLIENT_TYPES.join(", ")
            )]
        );
        assert_eq!(
            problems(json!({"text": "hi"})),
            [
                "the message has neither \"type\" nor \"user_audio_chunk\"; every message but caller audio needs a type"
            ]
        );
        assert_eq!(
            problems(json!([1])),
            ["the frame must be a JSON object, got an array"]
        );
        assert!(parse("{", PCM16).problems[0].starts_with("the frame is not valid JSON"));
    }
}
