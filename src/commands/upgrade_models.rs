//! `voxbridge upgrade-models [--apply]`: moves every assistant off OpenAI models with an
//! announced shutdown, to each model's replacement (the table in
//! [`crate::domain::model_retirement`]). A dry run by default: it prints what would change.
//!
//! Also the startup check of `voxbridge serve`: one warning naming how many assistants use a
//! model that shuts down within [`STARTUP_WARNING_DAYS`].

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::domain::model_retirement::{ModelKind, RETIREMENTS, Retirement, retirement};
use crate::settings::Settings;
use crate::startup::STORAGE_SHUTDOWN_TIMEOUT;
use crate::storage::{Storage, StorageError};

/// `voxbridge serve` warns about models shutting down within this many days.
pub const STARTUP_WARNING_DAYS: i64 = 60;

/// How many assistants name one retiring model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    pub retirement: &'static Retirement,
    pub assistants: u64,
}

/// Every retiring model some assistant names, with how many do, in table order.
pub async fn usage(storage: &Storage) -> Result<Vec<ModelUsage>, StorageError> {
    let mut found = Vec::new();
    for kind in [ModelKind::Realtime, ModelKind::Transcription] {
        let models: Vec<&str> = RETIREMENTS
            .iter()
            .filter(|retirement| retirement.kind == kind)
            .map(|retirement| retirement.model)
            .collect();
        let counts = storage.assistants().count_naming(kind, &models).await?;
        found.extend(
            RETIREMENTS
                .iter()
                .filter(|r| r.kind == kind)
                .filter_map(|retirement| {
                    counts.get(retirement.model).map(|&assistants| ModelUsage {
                        retirement,
                        assistants,
                    })
                }),
        );
    }
    Ok(found)
}

/// Moves every assistant named in `usage` to its model's replacement. Answers how many
/// changed per model (an assistant changed meanwhile by its tenant is left as it is now).
pub async fn apply(
    storage: &Storage,
    usage: &[ModelUsage],
) -> Result<Vec<(ModelUsage, u64)>, StorageError> {
    let now = bson::DateTime::now();
    let mut changed = Vec::new();
    for entry in usage {
        let retirement = entry.retirement;
        let count = storage
            .assistants()
            .replace_model(
                retirement.kind,
                retirement.model,
                retirement.replacement,
                now,
            )
            .await?;
        changed.push((entry.clone(), count));
    }
    Ok(changed)
}

/// The assistants whose model shuts down within [`STARTUP_WARNING_DAYS`] of `today` (or has).
pub fn due_soon(usage: &[ModelUsage], today: NaiveDate) -> u64 {
    usage
        .iter()
        .filter(|entry| (entry.retirement.shutdown() - today).num_days() <= STARTUP_WARNING_DAYS)
        .map(|entry| entry.assistants)
        .sum()
}

/// `voxbridge serve`'s check: one warning if assistants (or the default model) use a model that
/// shuts down soon. A failure to count is logged and does not stop the server.
pub async fn warn_at_startup(storage: &Storage, settings: &Settings, today: NaiveDate) {
    let default_model = &settings.openai.default_model;
    if let Some(retiring) = retirement(ModelKind::Realtime, default_model) {
        tracing::warn!(
            model = %default_model,
            shutdown_date = %retiring.shutdown(),
            replacement = retiring.replacement,
            "openai.default_model shuts down; new assistants should not get it"
        );
    }
    match usage(storage).await {
        Ok(usage) => {
            let assistants = due_soon(&usage, today);
            if assistants > 0 {
                tracing::warn!(
                    assistants,
                    within_days = STARTUP_WARNING_DAYS,
                    "assistants use an OpenAI model that shuts down soon; `voxbridge upgrade-models` moves them to the replacements"
                );
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot count assistants on retiring models"),
    }
}

/// The command: prints the plan, and with `apply` carries it out.
pub async fn run(settings: Settings, apply_changes: bool) -> anyhow::Result<()> {
    let (storage, local_server) = super::open_storage(&settings).await?;
    let result = plan_and_apply(&storage, apply_changes).await;
    storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
    if let Some(server) = local_server {
        server.stop().await;
    }
    for line in result? {
        println!("{line}");
    }
    Ok(())
}

/// What the command prints, one line per retiring model in use, then a summary.
pub async fn plan_and_apply(storage: &Storage, apply_changes: bool) -> anyhow::Result<Vec<String>> {
    let usage = usage(storage)
        .await
        .context("cannot count assistants on retiring models")?;
    if usage.is_empty() {
        return Ok(vec![
            "no assistant uses a model with an announced shutdown".to_owned(),
        ]);
    }
    let describe = |entry: &ModelUsage, verb: &str, count: u64| {
        let r = entry.retirement;
        format!(
            "{}: {} → {} (shuts down {}): {count} assistant(s) {verb}",
            r.kind.field(),
            r.model,
            r.replacement,
            r.shutdown()
        )
    };
    if !apply_changes {
        let mut lines: Vec<String> = usage
            .iter()
            .map(|entry| describe(entry, "would change", entry.assistants))
            .collect();
        lines.push("dry run: nothing changed; run again with --apply to change them".to_owned());
        return Ok(lines);
    }
    let changed = apply(storage, &usage)
        .await
        .context("cannot update assistants")?;
    let total: u64 = changed.iter().map(|(_, count)| count).sum();
    let mut lines: Vec<String> = changed
        .iter()
        .map(|(entry, count)| describe(entry, "changed", *count))
        .collect();
    lines.push(format!("{total} assistant(s) moved to current models"));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_soon_counts_models_within_sixty_days_and_past_ones() {
        let realtime = retirement(ModelKind::Realtime, "gpt-realtime").unwrap();
        let whisper = retirement(ModelKind::Transcription, "whisper-1").unwrap();
        let usage = [
            ModelUsage {
                retirement: realtime,
                assistants: 3,
            },
            ModelUsage {
                retirement: whisper,
                assistants: 5,
            },
        ];
        let day = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        // 2027-01-20 is 45 days after 2026-12-06; 2027-02-26 is 82.
        assert_eq!(due_soon(&usage, day("2026-12-06")), 3);
        assert_eq!(due_soon(&usage, day("2026-12-29")), 8);
        assert_eq!(due_soon(&usage, day("2026-10-01")), 0);
        assert_eq!(
            due_soon(&usage, day("2027-06-01")),
            8,
            "past shutdowns count too"
        );
    }
}
