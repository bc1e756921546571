//! What the API shows of an assistant.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{id, time};
use crate::domain::assistant::AssistantSpec;
use crate::domain::model_retirement::{self, ModelNotice};
use crate::storage::assistants::AssistantRecord;

/// An assistant: its id, its whole configuration and its timestamps.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantView {
    /// The assistant's id.
    pub id: String,
    #[serde(flatten)]
    pub spec: AssistantSpec,
    /// The models this assistant names that OpenAI shuts down (or has shut down), each with
    /// its replacement; empty when every model is current.
    pub model_notices: Vec<ModelNoticeView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A model of the assistant with an announced shutdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelNoticeView {
    /// `model` or `transcription.model`.
    pub field: &'static str,
    pub model: &'static str,
    /// The first day OpenAI no longer serves the model.
    pub shutdown_date: NaiveDate,
    /// The current model to switch to (what `voxbridge upgrade-models` sets).
    pub replacement: &'static str,
    /// Whether the shutdown date has come: calls with this assistant fail until it is changed.
    pub retired: bool,
}

impl From<&ModelNotice> for ModelNoticeView {
    fn from(notice: &ModelNotice) -> Self {
        Self {
            field: notice.field(),
            model: notice.retirement.model,
            shutdown_date: notice.retirement.shutdown(),
            replacement: notice.retirement.replacement,
            retired: notice.retired,
        }
    }
}

impl From<AssistantRecord> for AssistantView {
    fn from(record: AssistantRecord) -> Self {
        let today = Utc::now().date_naive();
        Self {
            id: id(record.id),
            model_notices: model_retirement::notices(&record.spec, today)
                .iter()
                .map(ModelNoticeView::from)
                .collect(),
            spec: record.spec,
            created_at: time(record.created_at),
            updated_at: time(record.updated_at),
        }
    }
}
