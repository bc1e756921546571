//! Live control of a call: what a tenant can ask the session bridging it to do, and what it
//! did. The same values travel to a session on this instance (a mailbox) and to one on another
//! instance (a command document), so both paths answer alike.

use serde::{Deserialize, Serialize};

/// What a tenant can ask a live call's session to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Stop the assistant's speech as a barge-in would (clear, cancel, truncate).
    Interrupt,
    /// Ask FreJun to drop one queued chunk.
    InterruptChunk { chunk_id: u64 },
    /// Ask FreJun to drop everything queued.
    Clear,
    /// Tell the AI something mid-call, without asking it to answer.
    AddContext { text: String },
    /// End the session now (`hung_up_by_api`); FreJun is asked to hang up by the requester.
    HangUp,
}

impl ControlRequest {
    /// The request's stable name, for logs and the command document.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::InterruptChunk { .. } => "interrupt_chunk",
            Self::Clear => "clear",
            Self::AddContext { .. } => "add_context",
            Self::HangUp => "hang_up",
        }
    }
}

/// What a control request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ControlOutcome {
    /// The message sent to FreJun (`clear` or `interrupt`), if any.
    pub sent_to_frejun: Option<String>,
    /// Whether the assistant's response was cancelled at the voice AI.
    pub response_cancelled: bool,
    /// The assistant item cut short and where, if any.
    pub truncated_item_id: Option<String>,
    pub truncated_at_ms: Option<u64>,
    /// Whether context was passed to the voice AI (`POST /api/calls/{id}/context`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context_added: bool,
    /// Whether the session was ended (a hang-up).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_ended: bool,
}

impl ControlOutcome {
    /// Nothing was sent anywhere.
    pub fn nothing() -> Self {
        Self {
            sent_to_frejun: None,
            response_cancelled: false,
            truncated_item_id: None,
            truncated_at_ms: None,
            context_added: false,
            session_ended: false,
        }
    }

    /// Only FreJun was sent `message` (`clear` or `interrupt`).
    pub fn sent_to_frejun(message: &str) -> Self {
        Self {
            sent_to_frejun: Some(message.to_owned()),
            ..Self::nothing()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_travel_as_tagged_documents() {
        for request in [
            ControlRequest::Interrupt,
            ControlRequest::InterruptChunk { chunk_id: 7 },
            ControlRequest::Clear,
            ControlRequest::AddContext {
                text: "order shipped".into(),
            },
            ControlRequest::HangUp,
        ] {
            let document = bson::to_document(&request).unwrap();
            assert_eq!(document.get_str("kind").unwrap(), request.kind());
            assert_eq!(
                bson::from_document::<ControlRequest>(document).unwrap(),
                request
            );
        }
    }

    #[test]
    fn outcomes_round_trip_and_omit_what_did_not_happen() {
        let outcome = ControlOutcome::sent_to_frejun("clear");
        let json = serde_json::to_value(&outcome).unwrap();
        assert!(json.get("context_added").is_none());
        assert!(json.get("session_ended").is_none());
        let document = bson::to_document(&outcome).unwrap();
        assert_eq!(
            bson::from_document::<ControlOutcome>(document).unwrap(),
            outcome
        );
    }
}
