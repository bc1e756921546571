//! What the API shows of a phone number.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{id, time};
use crate::domain::phone::{Capabilities, NumberStatus};
use crate::storage::phone_numbers::PhoneNumberRecord;

/// One of the tenant's phone numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberView {
    pub id: String,
    /// E.164, normalised.
    #[schema(example = "+14155550123")]
    pub phone_number: String,
    /// Always `frejun`.
    #[schema(example = "frejun")]
    pub provider: String,
    /// The assistant that answers calls to this number; `null`: calls are refused.
    pub assigned_assistant_id: Option<String>,
    pub status: NumberStatus,
    pub capabilities: Capabilities,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PhoneNumberRecord> for PhoneNumberView {
    fn from(record: PhoneNumberRecord) -> Self {
        Self {
            id: id(record.id),
            phone_number: record.phone_number,
            provider: record.provider,
            assigned_assistant_id: record.assigned_assistant_id.map(id),
            status: record.status,
            capabilities: record.capabilities,
            created_at: time(record.created_at),
            updated_at: time(record.updated_at),
        }
    }
}
