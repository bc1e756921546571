//! Hanging up at FreJun the calls voxbridge ends itself.
//!
//! Closing FreJun's media stream is not documented to end the phone call, so a call voxbridge
//! ends (maximum duration, an AI failure, a stuck or flooding stream, a refused upgrade, a
//! suspended tenant, a shutdown, the reaper's lost calls) is also hung up through Teler: `POST
//! /voice/calls/{id}/hangup` with the end reason in FreJun's spelling (`MAX_DURATION`) and an
//! `Idempotency-Key` that is the same for every attempt and every instance
//! (`voxbridge-hangup-<call id>`), with the tenant's own FreJun key. A 5xx, a 429 or no answer
//! is retried after [`RETRY_DELAYS`]; a 404 or a 409 `call_not_live` means FreJun had already
//! ended the call. How it went is recorded on the call log (`hangup`), including why nothing
//! could be sent (no FreJun key stored, or FreJun never named the call).

use std::sync::Arc;
use std::time::Duration;

use bson::DateTime;

use super::CredentialProblem;
use crate::domain::call::EndReason;
use crate::domain::call::record::{HangupRecord, HangupResult};
use crate::domain::credential::Credential;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::secret::SecretString;
use crate::providers::teler::{TelerClient, TelerError};
use crate::shared::Shared;
use crate::storage::StorageError;

/// Waits before the second, third and fourth attempt.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Hangs up calls at FreJun; cheap to clone.
#[derive(Clone, Debug)]
pub struct FrejunHangup {
    shared: Arc<Shared>,
    teler: TelerClient,
}

impl FrejunHangup {
    pub(crate) fn new(shared: Arc<Shared>, teler: TelerClient) -> Self {
        Self { shared, teler }
    }

    /// Hangs up the tenant's call `call_id` (FreJun's id `frejun_call_id`) for `reason`, and
    /// records how it went on the call log. Never fails: what went wrong is in the record.
    pub async fn hang_up(
        &self,
        tenant: TenantId,
        call_id: CallId,
        frejun_call_id: Option<&str>,
        reason: EndReason,
    ) -> HangupRecord {
        let requested_at = DateTime::now();
        let sent_reason = reason.frejun_hangup_reason();
        let (result, attempts, detail) = self
            .attempt(tenant, call_id, frejun_call_id, &sent_reason)
            .await;
        let record = HangupRecord {
            requested_at,
            reason: sent_reason,
            result,
            attempts,
            detail,
        };
        match result {
            HangupResult::HungUp | HangupResult::AlreadyEnded => {
                tracing::info!(result = result.as_str(), attempts, "call hung up at FreJun");
            }
            _ => tracing::warn!(
                result = result.as_str(),
                attempts,
                detail = record.detail.as_deref().unwrap_or_default(),
                "cannot hang up the call at FreJun"
            ),
        }
        if let Err(err) = self
            .shared
            .storage
            .call_logs()
            .record_hangup(tenant, call_id, &record)
            .await
        {
            tracing::warn!(error = %err, "cannot record the hang-up on the call log");
        }
        record
    }

    async fn attempt(
        &self,
        tenant: TenantId,
        call_id: CallId,
        frejun_call_id: Option<&str>,
        reason: &str,
    ) -> (HangupResult, u32, Option<String>) {
        // A call transferred elsewhere is not ours to end, whatever our session did after.
        if let Ok(call) = self.shared.storage.call_logs().get(tenant, call_id).await {
            if call.end_reason == Some(EndReason::Transferred) {
                return (
                    HangupResult::AlreadyEnded,
                    0,
                    Some("the call was transferred; it is no longer voxbridge's".to_owned()),
                );
            }
        }
        let Some(frejun_call_id) = frejun_call_id else {
            return (
                HangupResult::NoFrejunCallId,
                0,
                Some("FreJun never told us its id for this call".to_owned()),
            );
        };
        let key = match tenant_frejun_key(&self.shared, tenant).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                return (
                    HangupResult::NoFrejunKey,
                    0,
                    Some(
                        "the tenant has no FreJun API key stored (PUT /api/me/credentials), so \
                         the call could not be hung up at FreJun"
                            .to_owned(),
                    ),
                );
            }
            Err(problem) => return (HangupResult::Failed, 0, Some(problem)),
        };
        let idempotency_key = format!("voxbridge-hangup-{}", call_id.to_hex());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self
                .teler
                .hangup(&key, frejun_call_id, Some(reason), &idempotency_key)
                .await
            {
                Ok(()) => return (HangupResult::HungUp, attempts, None),
                Err(error) => error,
            };
            let retry = matches!(
                error,
                TelerError::Unavailable { .. }
                    | TelerError::Timeout
                    | TelerError::RateLimited { .. }
            );
            match error {
                TelerError::NotFound { .. } => {
                    return (
                        HangupResult::AlreadyEnded,
                        attempts,
                        Some(error.to_string()),
                    );
                }
                TelerError::Conflict { ref code, .. }
                    if code.as_deref() == Some("call_not_live") =>
                {
                    return (
                        HangupResult::AlreadyEnded,
                        attempts,
                        Some(error.to_string()),
                    );
                }
                _ => {}
            }
            // The call was still up and FreJun did not end it (the failure is counted in the
            // Teler-errors metric by the client, like every failed Teler request).
            match RETRY_DELAYS.get(attempts as usize - 1) {
                Some(delay) if retry => tokio::time::sleep(*delay).await,
                _ => return (HangupResult::Failed, attempts, Some(error.to_string())),
            }
        }
    }
}

/// The tenant's FreJun API key in clear; `None` when none is stored (or the tenant is gone).
pub(crate) async fn tenant_frejun_key(
    shared: &Shared,
    tenant: TenantId,
) -> Result<Option<SecretString>, String> {
    let user = match shared.storage.users().get(tenant).await {
        Ok(user) => user,
        Err(StorageError::NotFound) => return Ok(None),
        Err(err) => return Err(format!("cannot read the tenant: {err}")),
    };
    match super::decrypt_credential(&shared.keyring, &user, Credential::FrejunApiKey) {
        Ok(key) => Ok(Some(key)),
        Err(CredentialProblem::Missing) => Ok(None),
        Err(CredentialProblem::Unreadable) => {
            Err("the tenant's FreJun key does not decrypt with the master keys".to_owned())
        }
    }
}
