//! OpenAI models with an announced shutdown, and what they mean for an assistant.
//!
//! The table is OpenAI's own: the deprecation notes on the `model` enums of the `openai` 3.63.0
//! SDK and the deprecations page (see docs/protocols.md §2.9). Each retiring model names the
//! current model that replaces it, which is also what `voxbridge upgrade-models` moves
//! assistants to. Before its shutdown date a retiring model is
//! a warning (the assistant still works); on and after it, naming the model is refused, because
//! every call to it would fail at the handshake.
//!
//! Dates are UTC calendar days; a model is retired from the first moment of its shutdown day.

use chrono::NaiveDate;

use super::assistant::AssistantSpec;
use super::validation::ValidationError;

/// Which of an assistant's models a retirement concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The speech-to-speech model of the Realtime session (`model`).
    Realtime,
    /// The transcriber of the caller's speech (`transcription.model`).
    Transcription,
}

impl ModelKind {
    /// The assistant field that names a model of this kind.
    pub fn field(self) -> &'static str {
        match self {
            ModelKind::Realtime => "model",
            ModelKind::Transcription => "transcription.model",
        }
    }
}

/// One model with an announced shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirement {
    pub model: &'static str,
    pub kind: ModelKind,
    /// `YYYY-MM-DD`, the first day the model no longer answers.
    shutdown: &'static str,
    /// The current model an assistant moves to.
    pub replacement: &'static str,
}

impl Retirement {
    /// The first day the model no longer answers.
    pub fn shutdown(&self) -> NaiveDate {
        NaiveDate::parse_from_str(self.shutdown, "%Y-%m-%d")
            .expect("every shutdown date in RETIREMENTS is a valid date (checked by a test)")
    }

    pub fn is_retired_on(&self, today: NaiveDate) -> bool {
        today >= self.shutdown()
    }
}

/// The realtime default of new assistants (`openai.default_model`): the current full model,
/// the replacement OpenAI's successor table gives `gpt-realtime`.
pub const DEFAULT_REALTIME_MODEL: &str = "gpt-realtime-2.1";

/// The transcription default: the streaming transcriber for live audio (it takes `keywords`
/// and `languages`), which the retiring `gpt-4o-mini-transcribe` and `whisper-1` give way to.
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-live-transcribe";

const REALTIME_2027_01_20: &str = "2027-01-20";
const TRANSCRIPTION_2027_02_26: &str = "2027-02-26";
/// The beta's preview models went with the beta; the earliest shutdown cited for them.
const PREVIEW_RETIRED: &str = "2026-02-27";

const fn realtime(
    model: &'static str,
    shutdown: &'static str,
    replacement: &'static str,
) -> Retirement {
    Retirement {
        model,
        kind: ModelKind::Realtime,
        shutdown,
        replacement,
    }
}

const fn transcription(model: &'static str) -> Retirement {
    Retirement {
        model,
        kind: ModelKind::Transcription,
        shutdown: TRANSCRIPTION_2027_02_26,
        replacement: DEFAULT_TRANSCRIPTION_MODEL,
    }
}

/// Every model with an announced shutdown.
pub const RETIREMENTS: &[Retirement] = &[
    realtime("gpt-realtime", REALTIME_2027_01_20, "gpt-realtime-2.1"),
    realtime(
        "gpt-realtime-2025-08-28",
        REALTIME_2027_01_20,
        "gpt-realtime-2.1",
    ),
    realtime(
        "gpt-realtime-mini",
        REALTIME_2027_01_20,
        "gpt-realtime-2.1-mini",
    ),
    realtime(
        "gpt-realtime-mini-2025-12-15",
        REALTIME_2027_01_20,
        "gpt-realtime-2.1-mini",
    ),
    realtime(
        "gpt-audio-mini",
        REALTIME_2027_01_20,
        "gpt-realtime-2.1-mini",
    ),
    realtime(
        "gpt-audio-mini-2025-12-15",
        REALTIME_2027_01_20,
        "gpt-realtime-2.1-mini",
    ),
    realtime(
        "gpt-4o-realtime-preview",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1",
    ),
    realtime(
        "gpt-4o-realtime-preview-2024-10-01",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1",
    ),
    realtime(
        "gpt-4o-realtime-preview-2024-12-17",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1",
    ),
    realtime(
        "gpt-4o-realtime-preview-2025-06-03",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1",
    ),
    realtime(
        "gpt-4o-mini-realtime-preview",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1-mini",
    ),
    realtime(
        "gpt-4o-mini-realtime-preview-2024-12-17",
        PREVIEW_RETIRED,
        "gpt-realtime-2.1-mini",
    ),
    transcription("whisper-1"),
    transcription("gpt-4o-mini-transcribe"),
    transcription("gpt-4o-mini-transcribe-2025-12-15"),
    transcription("gpt-4o-transcribe"),
    transcription("gpt-4o-transcribe-diarize"),
];

/// The retirement of `model` as a model of `kind`, if it has one.
pub fn retirement(kind: ModelKind, model: &str) -> Option<&'static Retirement> {
    RETIREMENTS
        .iter()
        .find(|retirement| retirement.kind == kind && retirement.model == model)
}

/// A retiring or retired model an assistant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNotice {
    pub retirement: &'static Retirement,
    /// Whether the shutdown date has come.
    pub retired: bool,
}

impl ModelNotice {
    pub fn field(&self) -> &'static str {
        self.retirement.kind.field()
    }

    /// What to tell the tenant, naming the model, the date and the replacement.
    pub fn message(&self) -> String {
        let Retirement {
            model, replacement, ..
        } = self.retirement;
        let shutdown = self.retirement.shutdown();
        if self.retired {
            format!("{model} was shut down by OpenAI on {shutdown}; use {replacement}")
        } else {
            format!(
                "{model} shuts down on {shutdown} and calls to it will then fail; switch to \
                 {replacement}"
            )
        }
    }
}

/// The retiring and retired models `spec` names, on `today`.
pub fn notices(spec: &AssistantSpec, today: NaiveDate) -> Vec<ModelNotice> {
    let transcription = spec.transcription.as_ref().map(|t| t.model.as_str());
    [
        (ModelKind::Realtime, Some(spec.model.as_str())),
        (ModelKind::Transcription, transcription),
    ]
    .into_iter()
    .filter_map(|(kind, model)| retirement(kind, model?))
    .map(|retirement| ModelNotice {
        retirement,
        retired: retirement.is_retired_on(today),
    })
    .collect()
}

/// The check on a create or update: a retired model the request names is refused (calls to it
/// would fail); everything else the spec names that is retiring comes back as warnings. A
/// retired model the request does not touch (`named` answers false for its field) is only a
/// warning, so that renaming an old assistant still works.
pub fn check(
    spec: &AssistantSpec,
    today: NaiveDate,
    named: impl Fn(&str) -> bool,
) -> Result<Vec<ModelNotice>, ValidationError> {
    let notices = notices(spec, today);
    if let Some(refused) = notices
        .iter()
        .find(|notice| notice.retired && named(notice.field()))
    {
        return Err(ValidationError::new(refused.field(), refused.message()));
    }
    Ok(notices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::assistant::{NewAssistant, Transcription};

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn spec(model: &str, transcription: Option<&str>) -> AssistantSpec {
        let new: NewAssistant = serde_json::from_value(serde_json::json!({ "name": "A" })).unwrap();
        let mut spec = AssistantSpec::from_new(new, model).unwrap();
        spec.transcription = transcription.map(|model| Transcription {
            model: model.to_owned(),
            language: None,
        });
        spec
    }

    #[test]
    fn every_entry_has_a_date_and_a_current_replacement() {
        for entry in RETIREMENTS {
            let _ = entry.shutdown();
            assert!(
                retirement(entry.kind, entry.replacement).is_none(),
                "{} is replaced by a model that is itself retiring",
                entry.model
            );
        }
        assert!(retirement(ModelKind::Realtime, DEFAULT_REALTIME_MODEL).is_none());
        assert!(retirement(ModelKind::Transcription, DEFAULT_TRANSCRIPTION_MODEL).is_none());
    }

    #[test]
    fn a_retiring_model_warns_until_its_shutdown_day_and_is_refused_from_it() {
        let old = spec("gpt-realtime", Some("gpt-4o-mini-transcribe"));
        let before = check(&old, day("2027-01-19"), |_| true).unwrap();
        assert_eq!(before.len(), 2);
        assert!(before[0].message().contains("shuts down on 2027-01-20"));
        assert!(before[0].message().contains("gpt-realtime-2.1"));
        assert_eq!(before[1].field(), "transcription.model");

        let refused = check(&old, day("2027-01-20"), |_| true).unwrap_err();
        assert_eq!(refused.field, "model");
        assert!(
            refused.message.contains("was shut down"),
            "{}",
            refused.message
        );
        // The transcriber is still fine that day: its own date is later.
        let transcriber_only = spec("gpt-realtime-2.1", Some("whisper-1"));
        assert!(check(&transcriber_only, day("2027-01-20"), |_| true).is_ok());
        assert!(check(&transcriber_only, day("2027-02-26"), |_| true).is_err());
    }

    #[test]
    fn a_retired_model_the_request_does_not_name_is_only_a_warning() {
        let old = spec("gpt-4o-realtime-preview", None);
        let notices = check(&old, day("2026-12-06"), |field| field != "model").unwrap();
        assert!(notices[0].retired);
        assert!(check(&old, day("2026-12-06"), |_| true).is_err());
    }

    #[test]
    fn current_models_have_no_notices() {
        let current = spec(DEFAULT_REALTIME_MODEL, Some(DEFAULT_TRANSCRIPTION_MODEL));
        assert!(notices(&current, day("2030-01-01")).is_empty());
        // The kinds are not mixed up: a transcriber's name as the realtime model is unknown,
        // not retiring.
        assert!(notices(&spec("whisper-1", None), day("2030-01-01")).is_empty());
    }
}
