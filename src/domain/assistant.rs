//! The configuration of an AI assistant: what the OpenAI Realtime session is told (model, voice,
//! instructions, turn detection, transcription) and how audio is exchanged with FreJun.
//!
//! Three shapes, one set of rules:
//! - [`AssistantSpec`]: the complete, validated configuration, as stored and returned.
//! - [`NewAssistant`]: the create request; only `name` is required, [`AssistantSpec::from_new`]
//!   fills in the defaults.
//! - [`AssistantPatch`]: the update request; [`AssistantSpec::apply`] replaces the fields it
//!   names. Nullable fields tell "absent" (keep) from `null` (clear).
//!
//! The JSON field names are a public contract (the API, the stored documents, and, for `audio`,
//! the FreJun flow answer, which copies them as FreJun spells them). Request bodies reject
//! unknown fields, including inside nested objects, so a misspelt option fails loudly instead of
//! being silently ignored; a nested object must be given whole, so there is never a question of
//! which missing fields are defaulted and which kept.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::analysis::AnalysisSpec;
use super::tenant::check_call_seconds;
use super::validation::{ValidationError, check_chars, check_name, check_range, check_token};

pub mod backend;
pub mod tools;

use backend::Backend;
use tools::{Tool, ToolChoice, normalize_tools};

/// Characters allowed in model names: OpenAI's are ASCII letters, digits, `.`, `_` and `-`.
fn is_model_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

const MODEL_CHARS: &str = "ASCII letters, digits, '.', '_' and '-'";

fn check_model(field: &str, model: &str) -> Result<(), ValidationError> {
    check_token(
        field,
        model,
        1,
        AssistantSpec::MODEL_MAX_CHARS,
        is_model_char,
        MODEL_CHARS,
    )
}

/// Languages are BCP 47-style tags ("en", "pt-BR"); we check the alphabet and the length, not
/// the registry, because OpenAI's list changes faster than we release.
fn check_language(field: &str, language: &str) -> Result<(), ValidationError> {
    check_token(
        field,
        language,
        AssistantSpec::LANGUAGE_MIN_CHARS,
        AssistantSpec::LANGUAGE_MAX_CHARS,
        |c| c.is_ascii_alphanumeric() || c == '-',
        "ASCII letters, digits and '-', such as en or pt-BR",
    )
}

/// The voice of the assistant: the OpenAI Realtime GA voices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Voice {
    Alloy,
    Ash,
    Ballad,
    Coral,
    Echo,
    Sage,
    Shimmer,
    Verse,
    /// The default: one of the two voices OpenAI recommends for the GA model.
    #[default]
    Marin,
    Cedar,
}

/// How OpenAI decides that the caller has finished speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetectionType {
    /// Voice activity detection on silence: predictable latency, the default.
    #[default]
    ServerVad,
    /// A model judges whether the utterance is complete: fewer interruptions, more latency.
    SemanticVad,
}

/// Turn detection settings, passed to the Realtime session as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnDetection {
    #[serde(rename = "type")]
    pub kind: TurnDetectionType,
    /// Speech probability above which audio counts as speech, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub threshold: f64,
    /// Audio kept from before speech was detected, in milliseconds (0 to 5000).
    #[schema(minimum = 0, maximum = 5_000)]
    pub prefix_padding_ms: u32,
    /// Silence that ends a turn, in milliseconds (0 to 10 000).
    #[schema(minimum = 0, maximum = 10_000)]
    pub silence_duration_ms: u32,
}

impl TurnDetection {
    pub const MAX_PREFIX_PADDING_MS: u32 = 5_000;
    pub const MAX_SILENCE_DURATION_MS: u32 = 10_000;

    /// Checks every rule. Errors name the field as it appears in an assistant, e.g.
    /// "turn_detection.threshold".
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return Err(ValidationError::new(
                "turn_detection.threshold",
                "must be a number between 0.0 and 1.0",
            ));
        }
        check_range(
            "turn_detection.prefix_padding_ms",
            self.prefix_padding_ms,
            0..=Self::MAX_PREFIX_PADDING_MS,
        )?;
        check_range(
            "turn_detection.silence_duration_ms",
            self.silence_duration_ms,
            0..=Self::MAX_SILENCE_DURATION_MS,
        )
    }
}

impl Default for TurnDetection {
    /// OpenAI's own server VAD defaults.
    fn default() -> Self {
        Self {
            kind: TurnDetectionType::ServerVad,
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

/// Transcription of the caller's speech into the call log. Absent on an assistant: no
/// transcript of the caller (the assistant's own speech is always transcribed by OpenAI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transcription {
    /// The OpenAI transcription model, such as `gpt-live-transcribe` (the default).
    #[schema(min_length = 1, max_length = 100)]
    pub model: String,
    /// Language hint for the transcriber; absent or `null` lets it detect the language.
    #[serde(default)]
    #[schema(min_length = 2, max_length = 35)]
    pub language: Option<String>,
}

impl Transcription {
    pub const DEFAULT_MODEL: &str = super::model_retirement::DEFAULT_TRANSCRIPTION_MODEL;

    /// Checks every rule. Errors name the field as it appears in an assistant, e.g.
    /// "transcription.model".
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_model("transcription.model", &self.model)?;
        if let Some(language) = &self.language {
            check_language("transcription.language", language)?;
        }
        Ok(())
    }
}

impl Default for Transcription {
    fn default() -> Self {
        Self {
            model: Self::DEFAULT_MODEL.to_owned(),
            language: None,
        }
    }
}

/// The audio encoding exchanged with FreJun on the media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// 16-bit little-endian PCM; we resample between the inbound rate and OpenAI's 24 kHz.
    #[default]
    Pcm24k,
    /// G.711 μ-law at 8 kHz, passed to OpenAI as `audio/pcmu` without resampling.
    Pcmu,
}

impl Codec {
    /// The serialized name (`pcm24k`, `pcmu`).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Pcm24k => "pcm24k",
            Codec::Pcmu => "pcmu",
        }
    }
}

/// The sample rate at which FreJun sends the caller's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum InboundRate {
    #[default]
    #[serde(rename = "8k")]
    Khz8,
    #[serde(rename = "16k")]
    Khz16,
}

impl InboundRate {
    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            InboundRate::Khz8 => 8_000,
            InboundRate::Khz16 => 16_000,
        }
    }

    /// The serialized name, as FreJun spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundRate::Khz8 => "8k",
            InboundRate::Khz16 => "16k",
        }
    }
}

/// Audio settings of the media stream. Stored as FreJun spells them, so that the flow answer
/// copies them without translation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    pub codec: Codec,
    pub inbound_rate: InboundRate,
    /// Duration of each audio chunk FreJun sends us, in milliseconds.
    #[schema(minimum = 20, maximum = 2_000, multiple_of = 20)]
    pub inbound_chunk_ms: u32,
    /// Duration of each audio chunk we send FreJun, in milliseconds.
    #[schema(minimum = 20, maximum = 2_000, multiple_of = 20)]
    pub outbound_chunk_ms: u32,
}

impl AudioConfig {
    /// Chunks are whole multiples of 20 ms, the telephony frame size.
    pub const CHUNK_MS_STEP: u32 = 20;
    pub const MIN_CHUNK_MS: u32 = 20;
    /// Two seconds: larger chunks would make the assistant audibly slow to react.
    pub const MAX_CHUNK_MS: u32 = 2_000;

    /// Checks every rule. Errors name the field as it appears in an assistant, e.g.
    /// "audio.inbound_chunk_ms".
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, ms) in [
            ("audio.inbound_chunk_ms", self.inbound_chunk_ms),
            ("audio.outbound_chunk_ms", self.outbound_chunk_ms),
        ] {
            if !(Self::MIN_CHUNK_MS..=Self::MAX_CHUNK_MS).contains(&ms)
                || ms % Self::CHUNK_MS_STEP != 0
            {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "must be a multiple of {} between {} and {}",
                        Self::CHUNK_MS_STEP,
                        Self::MIN_CHUNK_MS,
                        Self::MAX_CHUNK_MS
                    ),
                ));
            }
        }
        if self.codec == Codec::Pcmu && self.inbound_rate != InboundRate::Khz8 {
            // μ-law telephony audio is 8 kHz by definition.
            return Err(ValidationError::new(
                "audio.inbound_rate",
                "must be 8k when codec is pcmu",
            ));
        }
        Ok(())
    }
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            codec: Codec::Pcm24k,
            inbound_rate: InboundRate::Khz8,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
        }
    }
}

/// The validated configuration of an assistant.
///
/// Deserialization does not validate (stored documents were validated when written); build one
/// from a request with [`AssistantSpec::from_new`] or [`AssistantSpec::apply`], which do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantSpec {
    /// Shown to the tenant only; trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The system prompt of the Realtime session; may be empty.
    #[schema(max_length = 20_000)]
    pub instructions: String,
    /// What the assistant says first when the call connects; `None`: it waits for the caller.
    #[schema(max_length = 2_000)]
    pub greeting: Option<String>,
    /// The OpenAI Realtime model.
    #[schema(min_length = 1, max_length = 100)]
    pub model: String,
    pub voice: Voice,
    /// The language the assistant should speak, as a tag such as "en"; `None`: follow the
    /// caller.
    #[schema(min_length = 2, max_length = 35)]
    pub language: Option<String>,
    pub turn_detection: TurnDetection,
    pub transcription: Option<Transcription>,
    pub audio: AudioConfig,
    /// Limit for calls to this assistant; `None`: the tenant's limit. The shorter one applies.
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_call_seconds: Option<u32>,
    /// Whether FreJun records this assistant's outbound calls (`record` of Teler's initiate).
    /// Stored assistants from before the setting existed record, as every call did then.
    #[serde(default = "records_by_default")]
    pub record: bool,
    /// What the assistant may do during a call (see docs/api.md, "Tools").
    #[serde(default)]
    #[schema(max_items = 32)]
    pub tools: Vec<Tool>,
    /// Whether the model may call the tools: `auto` (default), `none` or `required`.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// What the assistant says, out of band, when a tool has kept the caller waiting
    /// (`tools.filler_delay_ms`); `None`: it stays silent.
    #[serde(default = "default_tool_filler")]
    #[schema(max_length = 500)]
    pub tool_filler: Option<String>,
    /// Post-call analysis of this assistant's calls (docs/api.md, "Post-call analysis");
    /// `None`: none.
    #[serde(default)]
    pub analysis: Option<AnalysisSpec>,
    /// The voice AI: OpenAI Realtime (default) or an ElevenLabs agent (docs/api.md,
    /// "Backends").
    #[serde(default)]
    pub backend: Backend,
}

fn records_by_default() -> bool {
    true
}

fn default_tool_filler() -> Option<String> {
    Some(AssistantSpec::DEFAULT_TOOL_FILLER.to_owned())
}

impl AssistantSpec {
    pub const NAME_MAX_CHARS: usize = 200;
    pub const INSTRUCTIONS_MAX_CHARS: usize = 20_000;
    pub const GREETING_MAX_CHARS: usize = 2_000;
    pub const MODEL_MAX_CHARS: usize = 100;
    pub const LANGUAGE_MIN_CHARS: usize = 2;
    pub const LANGUAGE_MAX_CHARS: usize = 35;
    pub const TOOL_FILLER_MAX_CHARS: usize = 500;
    /// Said while a slow tool runs, unless the assistant sets its own (or `null`).
    pub const DEFAULT_TOOL_FILLER: &str = "One moment, please.";

    /// The tool named `name`, if the assistant has one.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name() == name)
    }

    /// Checks every rule, in field order, and reports the first broken one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("name", self.name.trim(), 1, Self::NAME_MAX_CHARS)?;
        check_chars(
            "instructions",
            &self.instructions,
            0,
            Self::INSTRUCTIONS_MAX_CHARS,
        )?;
        if let Some(greeting) = &self.greeting {
            check_chars("greeting", greeting, 0, Self::GREETING_MAX_CHARS)?;
        }
        check_model("model", &self.model)?;
        if let Some(language) = &self.language {
            check_language("language", language)?;
        }
        self.turn_detection.validate()?;
        if let Some(transcription) = &self.transcription {
            transcription.validate()?;
        }
        self.audio.validate()?;
        if let Some(seconds) = self.max_call_seconds {
            check_call_seconds("max_call_seconds", seconds)?;
        }
        normalize_tools(&mut self.tools.clone())?;
        if let Some(filler) = &self.tool_filler {
            check_chars("tool_filler", filler, 1, Self::TOOL_FILLER_MAX_CHARS)?;
        }
        if let Some(analysis) = &self.analysis {
            analysis.validate()?;
        }
        self.backend.validate(self)?;
        Ok(())
    }

    /// Validates, after normalising what has one spelling (tools' phone numbers).
    fn normalized(mut self) -> Result<AssistantSpec, ValidationError> {
        normalize_tools(&mut self.tools)?;
        self.validate()?;
        Ok(self)
    }

    /// Builds the spec of a new assistant: the request's values, defaults for the rest
    /// (`model` = `default_model`, the platform's configured Realtime model), the name trimmed,
    /// then validated.
    pub fn from_new(
        new: NewAssistant,
        default_model: &str,
    ) -> Result<AssistantSpec, ValidationError> {
        // Destructured so that a field added to the request cannot be forgotten here.
        let NewAssistant {
            name,
            instructions,
            greeting,
            model,
            voice,
            language,
            turn_detection,
            transcription,
            audio,
            max_call_seconds,
            record,
            tools,
            tool_choice,
            tool_filler,
            analysis,
            backend,
        } = new;
        let spec = AssistantSpec {
            name: name.trim().to_owned(),
            instructions: instructions.unwrap_or_default(),
            greeting,
            model: model.unwrap_or_else(|| default_model.to_owned()),
            voice: voice.unwrap_or_default(),
            language,
            turn_detection: turn_detection.unwrap_or_default(),
            transcription,
            audio: audio.unwrap_or_default(),
            max_call_seconds,
            record: record.unwrap_or(true),
            tools: tools.unwrap_or_default(),
            tool_choice: tool_choice.unwrap_or_default(),
            tool_filler: tool_filler.unwrap_or_else(default_tool_filler),
            analysis,
            backend: backend.unwrap_or_default(),
        };
        spec.normalized()
    }

    /// Returns a copy with the fields named in `patch` replaced (nested objects whole), the
    /// name trimmed, validated. `self` is left as it is, so a refused patch changes nothing.
    pub fn apply(&self, patch: AssistantPatch) -> Result<AssistantSpec, ValidationError> {
        let AssistantPatch {
            name,
            instructions,
            greeting,
            model,
            voice,
            language,
            turn_detection,
            transcription,
            audio,
            max_call_seconds,
            record,
            tools,
            tool_choice,
            tool_filler,
            analysis,
            backend,
        } = patch;
        let mut spec = self.clone();
        if let Some(name) = name {
            spec.name = name.trim().to_owned();
        }
        if let Some(instructions) = instructions {
            spec.instructions = instructions;
        }
        if let Some(greeting) = greeting {
            spec.greeting = greeting;
        }
        if let Some(model) = model {
            spec.model = model;
        }
        if let Some(voice) = voice {
            spec.voice = voice;
        }
        if let Some(language) = language {
            spec.language = language;
        }
        if let Some(turn_detection) = turn_detection {
            spec.turn_detection = turn_detection;
        }
        if let Some(transcription) = transcription {
            spec.transcription = transcription;
        }
        if let Some(audio) = audio {
            spec.audio = audio;
        }
        if let Some(max_call_seconds) = max_call_seconds {
            spec.max_call_seconds = max_call_seconds;
        }
        if let Some(record) = record {
            spec.record = record;
        }
        if let Some(tools) = tools {
            spec.tools = tools;
        }
        if let Some(tool_choice) = tool_choice {
            spec.tool_choice = tool_choice;
        }
        if let Some(tool_filler) = tool_filler {
            spec.tool_filler = tool_filler;
        }
        if let Some(analysis) = analysis {
            spec.analysis = analysis;
        }
        if let Some(backend) = backend {
            spec.backend = backend;
        }
        spec.normalized()
    }
}

/// The body of a create request. Only `name` is required; see [`AssistantSpec::from_new`] for
/// the defaults. Serializes without the absent fields (for clients and tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssistant {
    /// Shown to the tenant only; trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The system prompt of the Realtime session. Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20_000)]
    pub instructions: Option<String>,
    /// What the assistant says first. Default: none (it waits for the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2_000)]
    pub greeting: Option<String>,
    /// The OpenAI Realtime model. Default: the platform's configured model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100)]
    pub model: Option<String>,
    /// Default: `marin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// Language tag such as `en`. Default: none (follow the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 2, max_length = 35)]
    pub language: Option<String>,
    /// Given whole. Default: server VAD, threshold 0.5, 300 ms padding, 500 ms silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_detection: Option<TurnDetection>,
    /// Default: none (the caller's speech is not transcribed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription: Option<Transcription>,
    /// Given whole. Default: `pcm24k`, `8k`, 100 ms chunks both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Default: none (the tenant's limit applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_call_seconds: Option<u32>,
    /// Default: `true` (FreJun records the assistant's outbound calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 32)]
    pub tools: Option<Vec<Tool>>,
    /// Default: `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Default: "One moment, please."; `null`: silence while a tool runs.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable, max_length = 500)]
    pub tool_filler: Option<Option<String>>,
    /// Default: none (calls are not analysed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// Given whole. Default: `{"type": "openai_realtime"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
}

/// The body of an update request. Every field is optional; an absent field is left as it is.
///
/// The nullable fields (`greeting`, `language`, `transcription`, `max_call_seconds`) are
/// `Option<Option<T>>`: `None` when absent, `Some(None)` for an explicit `null`, which clears
/// the value. The others cannot be cleared, so `null` for them is refused rather than read as
/// "absent", which would silently ignore what the client probably meant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantPatch {
    /// Trimmed; cannot be `null`.
    #[serde(default, deserialize_with = "non_null_name")]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Cannot be `null`.
    #[serde(default, deserialize_with = "non_null_instructions")]
    #[schema(nullable = false, max_length = 20_000)]
    pub instructions: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, max_length = 2_000)]
    pub greeting: Option<Option<String>>,
    /// Cannot be `null`.
    #[serde(default, deserialize_with = "non_null_model")]
    #[schema(nullable = false, min_length = 1, max_length = 100)]
    pub model: Option<String>,
    /// Cannot be `null`.
    #[serde(default, deserialize_with = "non_null_voice")]
    #[schema(nullable = false)]
    pub voice: Option<Voice>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, min_length = 2, max_length = 35)]
    pub language: Option<Option<String>>,
    /// Given whole; cannot be `null`.
    #[serde(default, deserialize_with = "non_null_turn_detection")]
    #[schema(nullable = false)]
    pub turn_detection: Option<TurnDetection>,
    /// Given whole; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Transcription>, nullable)]
    pub transcription: Option<Option<Transcription>>,
    /// Given whole; cannot be `null`.
    #[serde(default, deserialize_with = "non_null_audio")]
    #[schema(nullable = false)]
    pub audio: Option<AudioConfig>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 3_600)]
    pub max_call_seconds: Option<Option<u32>>,
    /// Cannot be `null`.
    #[serde(default, deserialize_with = "non_null_record")]
    #[schema(nullable = false)]
    pub record: Option<bool>,
    /// Given whole (the list replaces the current one); cannot be `null` (`[]` removes all).
    #[serde(default, deserialize_with = "non_null_tools")]
    #[schema(nullable = false, max_items = 32)]
    pub tools: Option<Vec<Tool>>,
    /// Cannot be `null`.
    #[serde(default, deserialize_with = "non_null_tool_choice")]
    #[schema(nullable = false)]
    pub tool_choice: Option<ToolChoice>,
    /// `null`: silence while a tool runs.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, max_length = 500)]
    pub tool_filler: Option<Option<String>>,
    /// Given whole; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<AnalysisSpec>, nullable)]
    pub analysis: Option<Option<AnalysisSpec>>,
    /// Given whole; cannot be `null`.
    #[serde(default, deserialize_with = "non_null_backend")]
    #[schema(nullable = false)]
    pub backend: Option<Backend>,
}

impl AssistantPatch {
    /// Whether the patch changes nothing (the body was `{}`).
    pub fn is_empty(&self) -> bool {
        *self == AssistantPatch::default()
    }
}

/// For `#[serde(default, deserialize_with = "double_option")]`: the field is only deserialized
/// when present, so `null` becomes `Some(None)` and a value `Some(Some(v))`, while `default`
/// leaves an absent field `None`.
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Defines `$fn`, for `#[serde(default, deserialize_with = "$fn")]` on an optional field that
/// must not be `null`. One function per field so that the error names the field: serde's own
/// "invalid type: null" does not say where.
macro_rules! non_null_field {
    ($($fn:ident => $field:literal),* $(,)?) => {$(
        fn $fn<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
        where
            D: Deserializer<'de>,
            T: Deserialize<'de>,
        {
            match Option::<T>::deserialize(deserializer)? {
                Some(value) => Ok(Some(value)),
                None => Err(D::Error::custom(concat!(
                    $field,
                    ": must not be null (omit the field to keep the current value)"
                ))),
            }
        }
    )*};
}

non_null_field! {
    non_null_name => "name",
    non_null_instructions => "instructions",
    non_null_model => "model",
    non_null_voice => "voice",
    non_null_turn_detection => "turn_detection",
    non_null_audio => "audio",
    non_null_record => "record",
    non_null_tools => "tools",
    non_null_tool_choice => "tool_choice",
    non_null_backend => "backend",
}

#[cfg(test)]
mod tests;
