//! What the API shows of an assistant.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{id, time};
use crate::domain::assistant::AssistantSpec;
use crate::storage::assistants::AssistantRecord;

/// An assistant: its id, its whole configuration and its timestamps.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantView {
    /// The assistant's id.
    pub id: String,
    #[serde(flatten)]
    pub spec: AssistantSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AssistantRecord> for AssistantView {
    fn from(record: AssistantRecord) -> Self {
        Self {
            id: id(record.id),
            spec: record.spec,
            created_at: time(record.created_at),
            updated_at: time(record.updated_at),
        }
    }
}
