//! Cold transfers of a live call through Teler: the tenant's own (`POST /api/calls/{id}/transfer`,
//! to a phone number or to one of the assistant's transfer destinations) and the assistant's
//! `transfer_call` tool. Once FreJun has started the transfer, the call log records at once that
//! the call left voxbridge (`end_reason: transferred`), and nothing later hangs it up.

use bson::DateTime;

use super::CallService;
use super::outbound::{LiveCall, OutboundError};
use crate::domain::assistant::tools::{DestinationTarget, Tool};
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::ids::{CallId, TenantId};
use crate::domain::phone::PhoneNumber;
use crate::domain::secret::SecretString;
use crate::domain::validation::ValidationError;
use crate::domain::webhook::{EventType, OutboxEvent, new_event_id};
use crate::providers::teler::TelerError;
use crate::providers::teler::operations::TransferTarget;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::users::UserRecord;

/// Where the tenant asked a call to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransferTo {
    /// One of the call's assistant's `transfer_call` destinations, by id.
    Destination(String),
    /// A phone number (E.164, or as people write it).
    Number(String),
}

/// The target of the destination `id` among the transfer tools of `tools`.
pub(crate) fn destination_target(tools: &[Tool], id: &str) -> Option<TransferTarget> {
    tools.iter().find_map(|tool| match tool {
        Tool::TransferCall(transfer) => transfer
            .destinations
            .iter()
            .find(|destination| destination.id == id)
            .map(|destination| match destination.target() {
                DestinationTarget::Number(number) => TransferTarget::Pstn(number.to_owned()),
                DestinationTarget::SipUri(uri) => TransferTarget::Sip(uri.to_owned()),
            }),
        _ => None,
    })
}

/// A live call FreJun knows, as a transfer needs it.
pub(crate) struct TransferCall<'a> {
    pub tenant_id: TenantId,
    pub call_id: CallId,
    /// The status the call has now (the transfer does not change it; FreJun reports the rest).
    pub status: CallStatus,
    pub frejun_call_id: &'a str,
    pub frejun_key: &'a SecretString,
}

impl CallService {
    /// Transfers the tenant's live call `call_id` where `to` says.
    pub(crate) async fn transfer(
        &self,
        tenant: &UserRecord,
        call_id: CallId,
        to: TransferTo,
    ) -> Result<CallLogRecord, OutboundError> {
        let LiveCall {
            call,
            frejun_call_id,
            frejun_key,
        } = self.live_call(tenant, call_id).await?;
        let target = match to {
            TransferTo::Number(number) => {
                let number = PhoneNumber::parse(&number).map_err(|_| {
                    ValidationError::new("number", "must be a phone number in E.164")
                })?;
                TransferTarget::Pstn(number.as_str().to_owned())
            }
            TransferTo::Destination(id) => {
                let unknown = || {
                    ValidationError::new(
                        "destination_id",
                        "is not a transfer destination of the call's assistant",
                    )
                };
                let assistant_id = call.assistant_id.ok_or_else(unknown)?;
                let assistant = self
                    .shared
                    .storage
                    .assistants()
                    .find(tenant.id, assistant_id)
                    .await?
                    .ok_or_else(unknown)?;
                destination_target(&assistant.spec.tools, &id).ok_or_else(unknown)?
            }
        };
        let transfer = TransferCall {
            tenant_id: tenant.id,
            call_id,
            status: call.call_status,
            frejun_call_id: &frejun_call_id,
            frejun_key: &frejun_key,
        };
        self.transfer_live(
            &transfer,
            &target,
            &uuid::Uuid::new_v4().to_string(),
            "api.transfer",
        )
        .await
        .map_err(|source| match source {
            TransferFailure::Teler(source) => OutboundError::Teler { call_id, source },
            TransferFailure::Storage(err) => err.into(),
        })
    }

    /// Asks Teler to transfer `call` to `target` (the same `idempotency_key` across retries),
    /// then records on the call log that it left voxbridge (`event` names who asked).
    pub(crate) async fn transfer_live(
        &self,
        call: &TransferCall<'_>,
        target: &TransferTarget,
        idempotency_key: &str,
        event: &'static str,
    ) -> Result<CallLogRecord, TransferFailure> {
        let target_text = match target {
            TransferTarget::Pstn(number) => number.as_str(),
            TransferTarget::Sip(uri) => uri.as_str(),
        };
        let data = serde_json::json!({ "target": target_text, "requested_by": event });
        self.transfer_event(call, EventType::CallTransferStarted, data.clone())
            .await;
        if let Err(err) = self
            .teler
            .transfer(
                call.frejun_key,
                call.frejun_call_id,
                target,
                idempotency_key,
            )
            .await
        {
            let mut data = data;
            data["error"] = serde_json::Value::String(err.to_string());
            self.transfer_event(call, EventType::CallTransferFailed, data)
                .await;
            return Err(TransferFailure::Teler(err));
        }
        let now = DateTime::now();
        let source = if event.starts_with("api.") {
            ReportSource::Api
        } else {
            ReportSource::Bridge
        };
        let left =
            StatusReport::new(call.status, now, source, event).ending(EndReason::Transferred, None);
        self.shared
            .storage
            .call_logs()
            .apply_status(call.tenant_id, call.call_id, &[left], now)
            .await
            .map_err(TransferFailure::Storage)
    }
}

impl CallService {
    /// Puts a transfer event in the call's outbox. Losing it (MongoDB unreachable at that
    /// moment) must not stop the transfer itself, so a failure is only logged.
    async fn transfer_event(
        &self,
        call: &TransferCall<'_>,
        kind: EventType,
        data: serde_json::Value,
    ) {
        let event = OutboxEvent {
            id: new_event_id(),
            kind,
            at: DateTime::now(),
            data,
        };
        if let Err(err) = self
            .shared
            .storage
            .call_logs()
            .push_events(call.tenant_id, call.call_id, &[event])
            .await
        {
            tracing::warn!(error = %err, kind = kind.as_str(), "a transfer event could not be written");
        }
    }
}

/// Why a transfer did not happen (Teler refused or failed) or was not recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransferFailure {
    #[error("FreJun did not start the transfer")]
    Teler(#[source] TelerError),
    #[error("the transfer started but could not be recorded")]
    Storage(#[source] crate::storage::StorageError),
}
