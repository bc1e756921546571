//! Text models: the providers a tenant can use, a conversation's messages, what every reply
//! carries whatever the provider, and the rules of `POST /api/ai/conversation`.
//!
//! The providers' wire formats live in [`crate::providers::text`]; this module only knows
//! what they have in common (docs/api.md, "Text AI").

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::validation::{ValidationError, check_chars};

/// Who answers a text request.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TextProvider {
    /// Anthropic's Messages API (`POST /v1/messages`).
    Anthropic,
    /// OpenAI's Responses API (`POST /v1/responses`), with the tenant's OpenAI key.
    OpenaiResponses,
    /// Any OpenAI-compatible Chat Completions server (`POST {base}/chat/completions`): OpenAI,
    /// Azure OpenAI, OpenRouter, vLLM, Ollama…
    ChatCompletions,
}

impl TextProvider {
    pub const ALL: [TextProvider; 3] = [
        TextProvider::Anthropic,
        TextProvider::OpenaiResponses,
        TextProvider::ChatCompletions,
    ];

    /// The serialized name, e.g. `openai_responses`.
    pub fn as_str(self) -> &'static str {
        match self {
            TextProvider::Anthropic => "anthropic",
            TextProvider::OpenaiResponses => "openai_responses",
            TextProvider::ChatCompletions => "chat_completions",
        }
    }
}

/// Who said a message of a text conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    User,
    Assistant,
}

impl ChatRole {
    /// The role's name in every provider's API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a text conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: ChatRole,
    #[schema(min_length = 1, max_length = 16_000)]
    pub content: String,
}

/// Tokens a reply cost, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TextUsage {
    /// Every input token, cached ones included.
    pub input_tokens: u64,
    /// Every output token, reasoning included (what is billed).
    pub output_tokens: u64,
}

/// How a reply ended, the same for every provider (the provider's own word is kept beside it,
/// in [`TextReply::stop_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model finished its answer.
    Complete,
    /// The answer was cut at the token cap.
    Truncated,
    /// The model refused; the text is its explanation.
    Refused,
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TextReply {
    pub text: String,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// The provider's own reason, e.g. `end_turn`, `completed`, `stop`, `length`.
    pub stop_reason: String,
    pub finish: Finish,
    pub usage: TextUsage,
}

/// A model id as a provider takes it: 1 to 200 characters out of letters, digits and
/// `. _ - : / @` (Azure deployments, OpenRouter's `vendor/model`, Ollama's `name:tag`).
pub fn check_text_model(field: &str, model: &str) -> Result<(), ValidationError> {
    check_chars(field, model, 1, 200)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:/@".contains(c);
    if !model.chars().all(allowed) {
        return Err(ValidationError::new(
            field,
            "may contain only letters, digits and . _ - : / @",
        ));
    }
    Ok(())
}

/// The body of `POST /api/ai/conversation`: the Teler backend's request, plus the choice of
/// assistant, provider, model and output cap.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    /// The conversation so far, oldest first (at most 100 messages).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub history: Vec<ChatMessage>,
    /// What the user says now.
    #[schema(min_length = 1, max_length = 16_000)]
    pub current_input: String,
    /// A call of the tenant's this conversation is about: its assistant's instructions are
    /// used when `assistant_id` is absent.
    #[serde(default)]
    pub call_id: Option<String>,
    /// Extra facts for the model (a string or a JSON object, at most 16 KiB as JSON), added to
    /// the system prompt.
    #[serde(default)]
    pub context: Option<Value>,
    /// Use this assistant's instructions as the system prompt.
    #[serde(default)]
    pub assistant_id: Option<String>,
    /// Default: `text_ai.default_provider`.
    #[serde(default)]
    pub provider: Option<TextProvider>,
    /// Default: the provider's configured model.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub model: Option<String>,
    /// Most tokens of the reply; default 1024.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8_192)]
    pub max_tokens: Option<u32>,
}

impl ConversationRequest {
    pub const MAX_HISTORY: usize = 100;
    pub const MAX_MESSAGE_CHARS: usize = 16_000;
    pub const MAX_CONTEXT_BYTES: usize = 16 * 1024;
    pub const MAX_TOKENS: u32 = 8_192;
    pub const DEFAULT_MAX_TOKENS: u32 = 1_024;

    /// Checks every bound, naming the offending field (`history[3].content`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.history.len() > Self::MAX_HISTORY {
            return Err(ValidationError::new(
                "history",
                format!("must hold at most {} messages", Self::MAX_HISTORY),
            ));
        }
        for (index, message) in self.history.iter().enumerate() {
            check_chars(
                &format!("history[{index}].content"),
                &message.content,
                1,
                Self::MAX_MESSAGE_CHARS,
            )?;
        }
        check_chars(
            "current_input",
            &self.current_input,
            1,
            Self::MAX_MESSAGE_CHARS,
        )?;
        if self.current_input.trim().is_empty() {
            return Err(ValidationError::new("current_input", "must not be blank"));
        }
        match &self.context {
            None | Some(Value::Null | Value::String(_) | Value::Object(_)) => {}
            Some(_) => {
                return Err(ValidationError::new(
                    "context",
                    "must be a string or a JSON object",
                ));
            }
        }
        if self
            .context_text()
            .is_some_and(|text| text.len() > Self::MAX_CONTEXT_BYTES)
        {
            return Err(ValidationError::new(
                "context",
                format!("must be at most {} bytes as JSON", Self::MAX_CONTEXT_BYTES),
            ));
        }
        if let Some(model) = &self.model {
            check_text_model("model", model)?;
        }
        if let Some(max_tokens) = self.max_tokens
            && !(1..=Self::MAX_TOKENS).contains(&max_tokens)
        {
            return Err(ValidationError::new(
                "max_tokens",
                format!("must be between 1 and {}", Self::MAX_TOKENS),
            ));
        }
        Ok(())
    }

    /// The context as the system prompt shows it: a string as it is, an object as JSON.
    pub fn context_text(&self) -> Option<String> {
        match &self.context {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        }
    }

    /// The messages sent to the model: the history, then the current input.
    pub fn messages(&self) -> Vec<ChatMessage> {
        let mut messages = self.history.clone();
        messages.push(ChatMessage {
            role: ChatRole::User,
            content: self.current_input.clone(),
        });
        messages
    }

    /// The system prompt: the assistant's instructions (when there are some), then the
    /// context.
    pub fn system_prompt(&self, instructions: Option<&str>) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(instructions) = instructions.filter(|text| !text.trim().is_empty()) {
            parts.push(instructions.to_owned());
        }
        if let Some(context) = self.context_text() {
            parts.push(format!("Context for this conversation:\n{context}"));
        }
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<ConversationRequest, String> {
        serde_json::from_value(body).map_err(|err| err.to_string())
    }

    fn field_of(body: Value) -> String {
        request(body)
            .unwrap()
            .validate()
            .expect_err("should be refused")
            .field
    }

    #[test]
    fn the_teler_backend_request_is_accepted() {
        let body = json!({
            "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
            "current_input": "What are your hours?",
            "call_id": "abc",
            "context": {"customer": "Asha"}
        });
        let parsed = request(body).unwrap();
        parsed.validate().unwrap();
        let messages = parsed.messages();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2].role, ChatRole::User);
        let system = parsed.system_prompt(Some("Be brief.")).unwrap();
        assert!(system.starts_with("Be brief."));
        assert!(system.contains(r#"{"customer":"Asha"}"#));
        assert_eq!(
            parsed.system_prompt(None).unwrap(),
            "Context for this conversation:\n{\"customer\":\"Asha\"}"
        );
    }

    #[test]
    fn every_bound_names_its_field() {
        let long = "x".repeat(ConversationRequest::MAX_MESSAGE_CHARS + 1);
        assert_eq!(field_of(json!({"current_input": ""})), "current_input");
        assert_eq!(field_of(json!({"current_input": "  "})), "current_input");
        assert_eq!(field_of(json!({"current_input": long})), "current_input");
        assert_eq!(
            field_of(json!({"current_input": "hi", "history": [{"role": "user", "content": ""}]})),
            "history[0].content"
        );
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"role": "user", "content": "x"}))
            .collect();
        assert_eq!(
            field_of(json!({"current_input": "hi", "history": many})),
            "history"
        );
        assert_eq!(
            field_of(json!({"current_input": "hi", "context": [1, 2]})),
            "context"
        );
        let big = "y".repeat(ConversationRequest::MAX_CONTEXT_BYTES + 1);
        assert_eq!(
            field_of(json!({"current_input": "hi", "context": big})),
            "context"
        );
        assert_eq!(
            field_of(json!({"current_input": "hi", "model": "bad model"})),
            "model"
        );
        assert_eq!(
            field_of(json!({"current_input": "hi", "max_tokens": 0})),
            "max_tokens"
        );
        assert_eq!(
            field_of(json!({"current_input": "hi", "max_tokens": 8193})),
            "max_tokens"
        );
    }

    #[test]
    fn unknown_fields_and_roles_are_refused_by_the_parser() {
        assert!(request(json!({"current_input": "hi", "temperature": 1})).is_err());
        assert!(
            request(
                json!({"current_input": "hi", "history": [{"role": "system", "content": "x"}]})
            )
            .is_err()
        );
        assert!(request(json!({"current_input": "hi", "provider": "gemini"})).is_err());
    }

    #[test]
    fn model_ids_of_every_provider_style_pass() {
        for model in [
            "claude-sonnet-4-5",
            "gpt-5-mini",
            "meta-llama/llama-3.1-8b-instruct",
            "llama3.1:8b",
            "my-azure-deployment",
        ] {
            check_text_model("model", model).unwrap();
        }
        assert!(check_text_model("model", "").is_err());
        assert!(check_text_model("model", "a b").is_err());
    }
}
