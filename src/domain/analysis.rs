//! Post-call analysis: what an assistant asks of it, the question put to a text model once a
//! call has ended, the JSON Schema its answer must satisfy, how that answer is judged, and
//! what the call log keeps (docs/api.md, "Post-call analysis").
//!
//! The answer is one JSON object, `{summary, success, success_reason, sentiment, data?}`, asked
//! for with the provider's structured output and validated here against the same schema
//! before anything is stored: an answer that does not fit is a failure with the reason, never
//! a default value.

use bson::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::call::record::{TranscriptRole, TranscriptTurn};
use super::text_ai::{TextProvider, TextUsage, check_text_model};
use super::validation::{ValidationError, check_chars};

/// What an assistant's calls are analysed for. Absent or `enabled: false`: not analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    pub enabled: bool,
    /// Default: `text_ai.default_provider`.
    #[serde(default)]
    pub provider: Option<TextProvider>,
    /// Default: the provider's configured model.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub model: Option<String>,
    /// How to summarise; default: why the caller called, what was done and how it ended, in
    /// two to four sentences.
    #[serde(default)]
    #[schema(max_length = 4_000)]
    pub summary_prompt: Option<String>,
    /// A JSON Schema for the data to extract from the call (`data` of the analysis); at most
    /// 16 KiB, local `$ref`s only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub structured_data_schema: Option<Value>,
    /// What makes a call a success; default: the caller's goal was met.
    #[serde(default)]
    #[schema(max_length = 4_000)]
    pub success_criteria: Option<String>,
    /// Calls where the caller said fewer things than this are `skipped`; default 1.
    #[serde(default = "default_min_user_turns")]
    #[schema(minimum = 0, maximum = 100)]
    pub min_user_turns: u32,
}

fn default_min_user_turns() -> u32 {
    1
}

impl AnalysisSpec {
    pub const PROMPT_MAX_CHARS: usize = 4_000;
    pub const SCHEMA_MAX_BYTES: usize = 16 * 1024;
    pub const MAX_MIN_USER_TURNS: u32 = 100;
    pub const DEFAULT_SUMMARY_PROMPT: &str = "Summarise the call in two to four sentences: why \
        the caller called, what was done, and how the call ended.";
    pub const DEFAULT_SUCCESS_CRITERIA: &str = "The caller's goal was met, or they were told \
        clearly what happens next.";

    /// Checks every rule; errors name the field below `analysis`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(model) = &self.model {
            check_text_model("analysis.model", model)?;
        }
        if let Some(prompt) = &self.summary_prompt {
            check_chars("analysis.summary_prompt", prompt, 1, Self::PROMPT_MAX_CHARS)?;
        }
        if let Some(criteria) = &self.success_criteria {
            check_chars(
                "analysis.success_criteria",
                criteria,
                1,
                Self::PROMPT_MAX_CHARS,
            )?;
        }
        if self.min_user_turns > Self::MAX_MIN_USER_TURNS {
            return Err(ValidationError::new(
                "analysis.min_user_turns",
                format!("must be at most {}", Self::MAX_MIN_USER_TURNS),
            ));
        }
        if let Some(schema) = &self.structured_data_schema {
            check_schema("analysis.structured_data_schema", schema)?;
        }
        Ok(())
    }

    /// Whether calls are analysed.
    pub fn is_enabled(spec: Option<&AnalysisSpec>) -> bool {
        spec.is_some_and(|spec| spec.enabled)
    }
}

/// A tenant's JSON Schema: an object, small, valid against its meta-schema, and compilable
/// without fetching anything (remote `$ref`s are refused: the validator has no network).
fn check_schema(field: &str, schema: &Value) -> Result<(), ValidationError> {
    if !schema.is_object() {
        return Err(ValidationError::new(field, "must be a JSON Schema object"));
    }
    if schema.to_string().len() > AnalysisSpec::SCHEMA_MAX_BYTES {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {} bytes as JSON",
                AnalysisSpec::SCHEMA_MAX_BYTES
            ),
        ));
    }
    if let Some(reference) = references(schema)
        .into_iter()
        .find(|reference| !is_definition_reference(reference))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "may only reference its own #/$defs/… or #/definitions/… (found {:?})",
                one_line(&reference)
            ),
        ));
    }
    if let Err(error) = jsonschema::meta::validate(schema) {
        return Err(ValidationError::new(
            field,
            format!(
                "is not a valid JSON Schema: {}",
                one_line(&error.to_string())
            ),
        ));
    }
    if let Err(error) = jsonschema::validator_for(schema) {
        return Err(ValidationError::new(
            field,
            format!(
                "cannot be used (only local $ref are supported): {}",
                one_line(&error.to_string())
            ),
        ));
    }
    Ok(())
}

/// Every `$ref` in `schema`, at any depth.
fn references(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// A reference to one of the schema's own definitions. Only these survive the schema being
/// placed under `data` of the answer schema, whose root receives the definitions
/// ([`answer_schema`]).
fn is_definition_reference(reference: &str) -> bool {
    ["#/$defs/", "#/definitions/"]
        .iter()
        .any(|prefix| reference.len() > prefix.len() && reference.starts_with(prefix))
}

/// At most 300 characters of `text`, on one line (validator messages quote values).
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}

/// The caller's overall mood, as the model judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
    Mixed,
}

/// Where a call's analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStatus {
    /// Waiting for a worker, or being run (a lease says by whom until when).
    Pending,
    Done,
    /// The provider failed, or its answer did not fit the schema; `error` says why.
    Failed,
    /// Nothing to analyse (too few caller turns); `error` says why.
    Skipped,
}

impl AnalysisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Pending => "pending",
            AnalysisStatus::Done => "done",
            AnalysisStatus::Failed => "failed",
            AnalysisStatus::Skipped => "skipped",
        }
    }
}

/// Why an analysis failed or was skipped: a stable code and a sentence for the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnalysisError {
    pub code: String,
    pub message: String,
}

/// A call's analysis, as its call log keeps it (`call_logs.analysis`): the job's state while
/// pending, the findings once done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAnalysis {
    pub status: AnalysisStatus,
    /// When the analysis was asked for (the call's end, or `POST /api/calls/{id}/analyze`).
    pub requested_at: DateTime,
    /// Not to be run before (a retry after a provider's passing failure waits).
    pub due_at: DateTime,
    /// Runs started, the current one included.
    #[serde(default)]
    pub attempts: u32,
    /// While a worker runs it: until when no other worker may take it, and which run it is
    /// (only that run may store the result).
    #[serde(default)]
    pub lease_until: Option<DateTime>,
    #[serde(default)]
    pub lease_id: Option<String>,
    #[serde(default)]
    pub finished_at: Option<DateTime>,
    #[serde(default)]
    pub summary: Option<String>,
    /// What was extracted, valid against the assistant's `structured_data_schema`.
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub success_reason: Option<String>,
    #[serde(default)]
    pub sentiment: Option<Sentiment>,
    #[serde(default)]
    pub provider: Option<TextProvider>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<TextUsage>,
    /// Estimated from the provider's list prices; `None` for a model without a known price.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub error: Option<AnalysisError>,
}

impl CallAnalysis {
    /// A new job, due at once.
    pub fn pending(now: DateTime) -> CallAnalysis {
        CallAnalysis {
            status: AnalysisStatus::Pending,
            requested_at: now,
            due_at: now,
            attempts: 0,
            lease_until: None,
            lease_id: None,
            finished_at: None,
            summary: None,
            data: None,
            success: None,
            success_reason: None,
            sentiment: None,
            provider: None,
            model: None,
            usage: None,
            cost_usd: None,
            error: None,
        }
    }
}

/// What a valid answer says.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub summary: String,
    pub success: bool,
    pub success_reason: String,
    pub sentiment: Sentiment,
    pub data: Option<Value>,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerProblem {
    /// The text is not JSON.
    NotJson(String),
    /// It is JSON but breaks the schema: the first few violations, each with its path.
    SchemaMismatch(Vec<String>),
}

impl AnswerProblem {
    /// The stable code stored in `analysis.error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AnswerProblem::NotJson(_) => "invalid_json",
            AnswerProblem::SchemaMismatch(_) => "schema_mismatch",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AnswerProblem::NotJson(error) => format!("the model's answer is not JSON: {error}"),
            AnswerProblem::SchemaMismatch(violations) => format!(
                "the model's answer does not match the schema: {}",
                violations.join("; ")
            ),
        }
    }
}

/// Violations listed in an error message at most.
const MAX_VIOLATIONS: usize = 5;

/// The schema of the whole answer: the fixed findings, plus `data` (the tenant's schema) when
/// there is one. Every object closes its properties and requires them all, as OpenAI's strict
/// mode wants (the tenant's own schema decides for `data`).
pub fn answer_schema(spec: &AnalysisSpec) -> Value {
    let mut properties = json!({
        "summary": {"type": "string", "description": "The summary the instructions ask for."},
        "success": {"type": "boolean", "description": "Whether the call met the success criteria."},
        "success_reason": {"type": "string", "description": "One sentence: why it did or did not."},
        "sentiment": {
            "type": "string",
            "enum": ["positive", "neutral", "negative", "mixed"],
            "description": "The caller's overall sentiment."
        }
    });
    let mut required = vec!["summary", "success", "success_reason", "sentiment"];
    let mut definitions = serde_json::Map::new();
    if let Some(schema) = &spec.structured_data_schema {
        let mut data = schema.clone();
        // The tenant's `#/$defs/…` references point at its schema's root, which is now
        // `data`: its definitions move to the answer's root, where they resolve.
        if let Value::Object(map) = &mut data {
            for keyword in ["$defs", "definitions"] {
                if let Some(Value::Object(defs)) = map.remove(keyword) {
                    definitions.insert(keyword.to_owned(), Value::Object(defs));
                }
            }
            map.remove("$schema");
            map.remove("$id");
        }
        properties["data"] = data;
        required.push("data");
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    });
    if let Value::Object(map) = &mut schema {
        map.extend(definitions);
    }
    schema
}

/// The system prompt: the task, the summary instructions, the success criteria, and what to
/// extract.
pub fn system_prompt(spec: &AnalysisSpec) -> String {
    let summary = spec
        .summary_prompt
        .as_deref()
        .unwrap_or(AnalysisSpec::DEFAULT_SUMMARY_PROMPT);
    let criteria = spec
        .success_criteria
        .as_deref()
        .unwrap_or(AnalysisSpec::DEFAULT_SUCCESS_CRITERIA);
    let mut prompt = format!(
        "You analyse a finished phone call between a caller and an AI voice assistant. Answer \
         with one JSON object that follows the given schema, and nothing else.\n\n\
         summary: {summary}\n\n\
         success: true when the call met these criteria, false otherwise, with the reason in \
         success_reason: {criteria}\n\n\
         sentiment: the caller's overall sentiment."
    );
    if spec.structured_data_schema.is_some() {
        prompt.push_str(
            "\n\ndata: the facts the schema asks for, as the call stated them. Do not invent \
             values; where the schema allows null, use null for what the call did not say.",
        );
    }
    prompt
}

/// How many times the caller spoke.
pub fn user_turns(transcript: &[TranscriptTurn]) -> usize {
    transcript
        .iter()
        .filter(|turn| turn.role == TranscriptRole::User && !turn.text.trim().is_empty())
        .count()
}

/// The transcript as the model reads it, one line per turn, tool calls with their arguments
/// and results. Longer than `max_chars`: the start and the end are kept (where the call's
/// purpose and its outcome are) and the middle is marked as left out.
pub fn transcript_text(transcript: &[TranscriptTurn], max_chars: usize) -> String {
    let lines: Vec<String> = transcript
        .iter()
        .map(|turn| match (&turn.role, &turn.tool) {
            (TranscriptRole::Tool, Some(tool)) => format!(
                "[Tool {} called with {} -> {}: {}]",
                tool.name,
                tool.arguments,
                tool.outcome.as_str(),
                tool.result
            ),
            (TranscriptRole::Tool, None) => format!("[Tool: {}]", turn.text),
            (TranscriptRole::User, _) => format!("Caller: {}", turn.text),
            (TranscriptRole::Assistant, _) => {
                let cut = if turn.interrupted {
                    " (interrupted by the caller)"
                } else {
                    ""
                };
                format!("Assistant{cut}: {}", turn.text)
            }
        })
        .collect();
    let text = lines.join("\n");
    let total = text.chars().count();
    if total <= max_chars {
        return text;
    }
    let half = max_chars / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(total - half).collect();
    format!(
        "{head}\n[… {} characters of the transcript left out …]\n{tail}",
        total - 2 * half
    )
}

/// The user message: the transcript.
pub fn user_prompt(transcript: &[TranscriptTurn], max_chars: usize) -> String {
    format!(
        "The call's transcript:\n\n{}",
        transcript_text(transcript, max_chars)
    )
}

/// Reads a model's answer: JSON, valid against [`answer_schema`].
pub fn read_answer(spec: &AnalysisSpec, text: &str) -> Result<Findings, AnswerProblem> {
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|error| AnswerProblem::NotJson(error.to_string()))?;
    let schema = answer_schema(spec);
    let validator = jsonschema::validator_for(&schema).map_err(|error| {
        // The tenant's part was checked when saved; a schema that stopped compiling is
        // reported as a mismatch rather than a panic.
        AnswerProblem::SchemaMismatch(vec![format!("the schema does not compile: {error}")])
    })?;
    let violations: Vec<String> = validator
        .iter_errors(&value)
        .take(MAX_VIOLATIONS)
        .map(|error| {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() { "/" } else { &path };
            one_line(&format!("at {at}: {error}"))
        })
        .collect();
    if !violations.is_empty() {
        return Err(AnswerProblem::SchemaMismatch(violations));
    }
    let text_of = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    let sentiment = serde_json::from_value(value["sentiment"].clone())
        .map_err(|error| AnswerProblem::SchemaMismatch(vec![format!("at /sentiment: {error}")]))?;
    Ok(Findings {
        summary: text_of("summary"),
        success: value["success"].as_bool().unwrap_or_default(),
        success_reason: text_of("success_reason"),
        sentiment,
        data: spec
            .structured_data_schema
            .as_ref()
            .map(|_| value["data"].clone()),
    })
}

#[cfg(test)]
mod tests;
