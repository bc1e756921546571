//! The vocabulary of a phone call: its status as FreJun reports it, its direction, and why it
//! ended; with [`status`], the merge of status reports, and [`record`], the rest of what a
//! call log records.
//!
//! The serialized names are stored in `call_logs` and returned by the API, so they are a public
//! contract: `call_status` uses FreJun's own spelling ("in-progress", "no-answer").

pub mod record;
pub mod status;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A call's status. Statuses only move forward ([`CallStatus::rank`]); a late or repeated
/// webhook carrying an earlier status must not undo a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    /// The call log exists; the call is being set up (outbound: before Teler dials).
    Initiated,
    /// The far end is ringing.
    Ringing,
    /// The call was answered and audio flows.
    InProgress,
    /// The call was answered and has ended.
    Completed,
    /// The callee was busy.
    Busy,
    /// The call could not be placed or broke down.
    Failed,
    /// Nobody answered.
    NoAnswer,
}

impl CallStatus {
    /// Every status, in rank order.
    pub(crate) const ALL: [CallStatus; 7] = [
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::NoAnswer,
    ];

    /// Position in the lifecycle: initiated 0 < ringing 1 < in-progress 2 < any terminal
    /// status 3. An update is applied only when it does not lower the rank; the terminal
    /// statuses share a rank because none of them follows another.
    pub(crate) fn rank(self) -> u8 {
        match self {
            CallStatus::Initiated => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            CallStatus::Completed
            | CallStatus::Busy
            | CallStatus::Failed
            | CallStatus::NoAnswer => 3,
        }
    }

    /// Whether the call is over (completed, busy, failed or no-answer).
    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }

    /// The status as a metric label (snake_case, like the end reasons it stands beside).
    pub fn metric_label(self) -> &'static str {
        match self {
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no_answer",
        }
    }

    /// The serialized name, as stored and as FreJun spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no-answer",
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the serialized call status names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be one of: initiated, ringing, in-progress, completed, busy, failed, no-answer")]
pub struct ParseCallStatusError;

impl FromStr for CallStatus {
    type Err = ParseCallStatusError;

    /// Accepts exactly the serialized names (case-sensitive), e.g. for a `?status=` filter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(ParseCallStatusError)
    }
}

/// The direction of a call, seen from the tenant's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallType {
    /// Someone called one of the tenant's numbers.
    Inbound,
    /// The tenant asked the API to place the call.
    Outbound,
}

impl CallType {
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Inbound => "inbound",
            CallType::Outbound => "outbound",
        }
    }
}

impl fmt::Display for CallType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not "inbound" or "outbound".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be one of: inbound, outbound")]
pub struct ParseCallTypeError;

impl FromStr for CallType {
    type Err = ParseCallTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(CallType::Inbound),
            "outbound" => Ok(CallType::Outbound),
            _ => Err(ParseCallTypeError),
        }
    }
}

/// Why a call ended (or was refused), recorded in the call log's `end_reason`. A closed set, so
/// that tenants can count and alert on the values; free-text detail goes to our logs instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The call was transferred elsewhere through Teler (cold): it left voxbridge. Declared
    /// first so that it wins over the stream closing that follows.
    Transferred,
    /// The person on the phone hung up (FreJun closed the media stream or reported the end).
    CallerHungUp,
    /// The assistant ended the call with its `end_call` tool, once its goodbye was heard.
    AssistantEndedCall,
    /// The call reached its `max_call_seconds` (the assistant's, else the tenant's limit).
    MaxDuration,
    /// The OpenAI Realtime session could not be opened (network, refused key, bad model).
    AiConnectFailed,
    /// The OpenAI Realtime session failed during the call (error event or lost connection).
    AiError,
    /// The FreJun side failed: the media stream broke or sent something we could not handle.
    TelephonyError,
    /// FreJun's media stream sent audio much faster than real time, for long enough that it
    /// was not a burst: the call ended rather than forward (and bill) the excess.
    MediaFlood,
    /// The OpenAI Realtime session was about to reach its maximum life (60 minutes today): the
    /// assistant said the closing line and the call ended before OpenAI cut it off.
    AiSessionLimit,
    /// This instance shut down and the call did not finish within the grace period.
    Shutdown,
    /// The instance bridging the call disappeared; another instance closed the orphaned log.
    InstanceLost,
    /// The flow was answered but FreJun never opened the media stream in time.
    MediaNeverArrived,
    /// Inbound call to a number that is not registered on the platform.
    UnknownNumber,
    /// Inbound call to a registered number whose status is `inactive`.
    NumberInactive,
    /// Inbound call to a number that has no assistant assigned.
    NumberUnassigned,
    /// The tenant owning the number or placing the call is suspended.
    TenantSuspended,
    /// The tenant has not stored the provider key the call needs (OpenAI, or FreJun to dial).
    MissingCredentials,
    /// The tenant already had `max_concurrent_calls` live calls.
    ConcurrencyLimit,
    /// Teler refused the request to place an outbound call.
    TelerRejected,
    /// The call's assistant was deleted before the call connected.
    AssistantDeleted,
    /// The tenant ended the call through `POST /api/calls/{id}/hangup`.
    HungUpByApi,
    /// FreJun reported the call over and no more specific reason was recorded first.
    Completed,
}

impl EndReason {
    /// The serialized name, as stored in `call_logs.end_reason`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EndReason::Transferred => "transferred",
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::AssistantEndedCall => "assistant_ended_call",
            EndReason::MaxDuration => "max_duration",
            EndReason::AiConnectFailed => "ai_connect_failed",
            EndReason::AiError => "ai_error",
            EndReason::TelephonyError => "telephony_error",
            EndReason::MediaFlood => "media_flood",
            EndReason::AiSessionLimit => "ai_session_limit",
            EndReason::Shutdown => "shutdown",
            EndReason::InstanceLost => "instance_lost",
            EndReason::MediaNeverArrived => "media_never_arrived",
            EndReason::UnknownNumber => "unknown_number",
            EndReason::NumberInactive => "number_inactive",
            EndReason::NumberUnassigned => "number_unassigned",
            EndReason::TenantSuspended => "tenant_suspended",
            EndReason::MissingCredentials => "missing_credentials",
            EndReason::ConcurrencyLimit => "concurrency_limit",
            EndReason::TelerRejected => "teler_rejected",
            EndReason::AssistantDeleted => "assistant_deleted",
            EndReason::HungUpByApi => "hung_up_by_api",
            EndReason::Completed => "completed",
        }
    }

    /// Whether voxbridge ended the call (rather than the caller, FreJun or the tenant's own
    /// hang-up request), so that the phone call must be hung up at FreJun too: closing the
    /// media stream is not documented to end the call, and the caller would sit on dead air.
    pub fn ended_by_voxbridge(self) -> bool {
        !matches!(
            self,
            EndReason::CallerHungUp
                | EndReason::Completed
                | EndReason::HungUpByApi
                | EndReason::Transferred
        )
    }

    /// The `reason` sent with a hang-up through Teler: FreJun expects `^[A-Z0-9_]+$`.
    pub fn frejun_hangup_reason(self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangup_reasons_fit_frejuns_pattern() {
        for reason in [
            EndReason::MaxDuration,
            EndReason::AiConnectFailed,
            EndReason::MediaNeverArrived,
            EndReason::HungUpByApi,
        ] {
            let sent = reason.frejun_hangup_reason();
            assert!(
                !sent.is_empty()
                    && sent
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{sent}"
            );
        }
        assert_eq!(
            EndReason::MaxDuration.frejun_hangup_reason(),
            "MAX_DURATION"
        );
        assert!(EndReason::AiError.ended_by_voxbridge());
        assert!(!EndReason::CallerHungUp.ended_by_voxbridge());
    }

    #[test]
    fn status_ranks_only_move_forward() {
        use CallStatus::*;
        assert!(Initiated.rank() < Ringing.rank());
        assert!(Ringing.rank() < InProgress.rank());
        for terminal in [Completed, Busy, Failed, NoAnswer] {
            assert!(InProgress.rank() < terminal.rank());
            assert_eq!(terminal.rank(), 3);
            assert!(terminal.is_terminal());
        }
        for live in [Initiated, Ringing, InProgress] {
            assert!(!live.is_terminal());
        }
        let ranks: Vec<u8> = CallStatus::ALL.iter().map(|s| s.rank()).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "ALL is in rank order"
        );
    }

    #[test]
    fn status_names_round_trip() {
        let names = [
            "initiated",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "failed",
            "no-answer",
        ];
        for (status, name) in CallStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(name.parse::<CallStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<CallStatus>(&json).unwrap(), status);
        }
        for bad in [
            "",
            "in_progress",
            "InProgress",
            "COMPLETED",
            "no_answer",
            "canceled",
        ] {
            assert_eq!(bad.parse::<CallStatus>(), Err(ParseCallStatusError));
        }
    }

    #[test]
    fn call_type_names_round_trip() {
        for (kind, name) in [
            (CallType::Inbound, "inbound"),
            (CallType::Outbound, "outbound"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(name.parse::<CallType>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        assert_eq!("Inbound".parse::<CallType>(), Err(ParseCallTypeError));
    }

    #[test]
    fn end_reason_as_str_matches_serde() {
        use EndReason::*;
        let all = [
            CallerHungUp,
            AssistantEndedCall,
            MaxDuration,
            AiConnectFailed,
            AiError,
            TelephonyError,
            MediaFlood,
            Shutdown,
            InstanceLost,
            MediaNeverArrived,
            UnknownNumber,
            NumberInactive,
            NumberUnassigned,
            TenantSuspended,
            MissingCredentials,
            ConcurrencyLimit,
            TelerRejected,
            AssistantDeleted,
            HungUpByApi,
            Completed,
        ];
        for reason in all {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(serde_json::from_str::<EndReason>(&json).unwrap(), reason);
        }
        assert_eq!(CallerHungUp.as_str(), "caller_hung_up");
        assert_eq!(AiConnectFailed.as_str(), "ai_connect_failed");
    }
}
