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

use super::tenant::Limits;
use super::validation::{ValidationError, check_chars, check_range, check_token};

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

impl Voice {
    /// The serialized name, which is also OpenAI's.
    pub fn as_str(self) -> &'static str {
        match self {
            Voice::Alloy => "alloy",
            Voice::Ash => "ash",
            Voice::Ballad => "ballad",
            Voice::Coral => "coral",
            Voice::Echo => "echo",
            Voice::Sage => "sage",
            Voice::Shimmer => "shimmer",
            Voice::Verse => "verse",
            Voice::Marin => "marin",
            Voice::Cedar => "cedar",
        }
    }
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
    /// The OpenAI transcription model, such as `gpt-4o-mini-transcribe` or `whisper-1`.
    #[schema(min_length = 1, max_length = 100)]
    pub model: String,
    /// Language hint for the transcriber; absent or `null` lets it detect the language.
    #[serde(default)]
    #[schema(min_length = 2, max_length = 35)]
    pub language: Option<String>,
}

impl Transcription {
    pub const DEFAULT_MODEL: &str = "gpt-4o-mini-transcribe";

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
    #[schema(minimum = 1, maximum = 86_400)]
    pub max_call_seconds: Option<u32>,
}

impl AssistantSpec {
    pub const NAME_MAX_CHARS: usize = 200;
    pub const INSTRUCTIONS_MAX_CHARS: usize = 20_000;
    pub const GREETING_MAX_CHARS: usize = 2_000;
    pub const MODEL_MAX_CHARS: usize = 100;
    pub const LANGUAGE_MIN_CHARS: usize = 2;
    pub const LANGUAGE_MAX_CHARS: usize = 35;

    /// Checks every rule, in field order, and reports the first broken one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_chars("name", self.name.trim(), 1, Self::NAME_MAX_CHARS)?;
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
            check_range(
                "max_call_seconds",
                seconds,
                Limits::MIN_CALL_SECONDS..=Limits::MAX_CALL_SECONDS,
            )?;
        }
        Ok(())
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
        };
        spec.validate()?;
        Ok(spec)
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
        spec.validate()?;
        Ok(spec)
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
    #[schema(minimum = 1, maximum = 86_400)]
    pub max_call_seconds: Option<u32>,
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
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 86_400)]
    pub max_call_seconds: Option<Option<u32>>,
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
            }
        );
        assert_eq!(
            Transcription::default(),
            Transcription {
                model: "gpt-4o-mini-transcribe".to_owned(),
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
                "transcription": {"model": "gpt-4o-mini-transcribe", "language": null},
                "audio": {
                    "codec": "pcm24k",
                    "inbound_rate": "8k",
                    "inbound_chunk_ms": 100,
                    "outbound_chunk_ms": 100
                },
                "max_call_seconds": null
            })
        );
        let back: AssistantSpec =
            serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
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
            assert_eq!(voice.as_str(), name);
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
                    model: "whisper-1".to_owned(),
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
                        model: "whisper-1".to_owned(),
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
        accepted(|s| s.max_call_seconds = Some(86_400));
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
            "transcription": {"model": "whisper-1", "language": "en"},
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

        let err = new_from(json!({"name": "a", "transcription": {"model": "whisper-1", "language": null, "prompt": "x"}}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `prompt`"), "{err}");

        // Nested objects are given whole.
        let err = new_from(json!({"name": "a", "audio": {"codec": "pcmu"}})).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        let err =
            new_from(json!({"name": "a", "turn_detection": {"type": "server_vad"}})).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        // Except the transcription language, a hint that may be left out.
        let spec = new_from(json!({"name": "a", "transcription": {"model": "whisper-1"}})).unwrap();
        assert_eq!(spec.transcription.unwrap().language, None);
        assert!(
            new_from(
                json!({"name": "a", "transcription": {"model": "whisper-1", "language": null}})
            )
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
}
