//! The tenant's manual transfer of a live call (`POST /api/calls/{id}/transfer`): a cold transfer
//! through Teler to a phone number. The call log records at once that the call left voxbridge
//! (`end_reason: transferred`), and nothing later hangs it up.

use bson::DateTime;

use super::CallService;
use super::outbound::{LiveCall, OutboundError};
use crate::domain::call::EndReason;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::ids::CallId;
use crate::domain::phone::PhoneNumber;
use crate::domain::validation::ValidationError;
use crate::providers::teler::operations::TransferTarget;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::users::UserRecord;

impl CallService {
    /// Transfers the tenant's live call `call_id` to `number` (E.164, or as people write it).
    pub(crate) async fn transfer(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
        number: &str,
    ) -> Result<CallLogRecord, OutboundError> {
        let number = PhoneNumber::parse(number)
            .map_err(|_| ValidationError::new("number", "must be a phone number in E.164"))?;
        let LiveCall {
            call,
            frejun_call_id,
            frejun_key,
        } = self.live_call(tenant, call_id).await?;
        self.teler
            .transfer(
                &frejun_key,
                &frejun_call_id,
                &TransferTarget::Pstn(number.as_str().to_owned()),
                &uuid::Uuid::new_v4().to_string(),
            )
            .await
            .map_err(|source| OutboundError::Teler { call_id, source })?;
        let now = DateTime::now();
        let left = StatusReport::new(call.call_status, now, ReportSource::Api, "api.transfer")
            .ending(EndReason::Transferred, None);
        Ok(self
            .shared
            .storage
            .call_logs()
            .apply_status(tenant.id, call_id, &[left], now)
            .await?)
    }
}
