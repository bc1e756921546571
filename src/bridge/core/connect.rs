//! The OpenAI connection: once the socket is open, configure the session and send the caller
//! audio that waited; when it fails to open or closes, the [`Ending`] it means for the call.

use super::{AiPhase, BridgeCore, Effects, Ending};
use crate::domain::call::EndReason;
use crate::providers::openai::{ClientEvent, CloseKind, ConnectError, classify_close};

impl BridgeCore {
    // ----- OpenAI connection -----------------------------------------------------------------

    /// The OpenAI socket is open (at `now_wall`): configure the session, send the buffered
    /// audio, and assume the session's expiry until OpenAI announces it.
    pub fn ai_connected(&mut self, now_wall: std::time::SystemTime, fx: &mut Effects) {
        let update = ClientEvent::SessionUpdate {
            session: self.config.session.clone(),
        };
        fx.to_ai.push(update.to_json());
        fx.to_ai
            .extend(self.early.drain(..).map(|(event, _)| event));
        self.early_ms = 0;
        self.phase = AiPhase::Configuring;
        self.assume_session_expiry(now_wall, fx);
    }

    pub(crate) fn ai_connect_failed(&self, err: &ConnectError) -> Ending {
        Ending::failed(EndReason::AiConnectFailed, err.code(), err.to_string())
    }

    /// OpenAI closed the socket (or it broke: `code` None).
    pub(crate) fn ai_closed(&self, code: Option<u16>, reason: &str) -> Ending {
        let (error_code, message) = match code {
            Some(code) => (
                classify_close(code, reason).error_code(),
                format!("OpenAI closed the session ({code} {reason})"),
            ),
            None => (
                CloseKind::Abnormal.error_code(),
                "the OpenAI connection was lost".to_owned(),
            ),
        };
        Ending::failed(self.ai_failure_reason(), error_code, message)
    }

    /// A failure before `session.updated` means the session never became usable.
    pub(super) fn ai_failure_reason(&self) -> EndReason {
        if self.phase == AiPhase::Ready {
            EndReason::AiError
        } else {
            EndReason::AiConnectFailed
        }
    }
}
