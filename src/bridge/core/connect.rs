//! The AI connection: once the socket is open, open the session and send the caller audio that
//! waited (or keep it until the AI announces its formats); the formats it announces; and when
//! the connection fails to open or closes, the [`Ending`] it means for the call.

use super::{AiPhase, BridgeCore, Effects, Ending};
use crate::audio::resample::Resampler;
use crate::bridge::playback::OUTBOUND_RATE;
use crate::domain::call::EndReason;
use crate::providers::realtime::{AiAudio, ConnectFailure};

impl BridgeCore {
    // ----- AI connection ---------------------------------------------------------------------

    /// The AI socket is open (at `now_wall`): open the session, send the buffered audio unless
    /// the formats are still to be announced, and assume the session's expiry until the AI
    /// announces it.
    pub fn ai_connected(&mut self, now_wall: std::time::SystemTime, fx: &mut Effects) {
        self.protocol.opening(&mut fx.to_ai);
        fx.to_ai.append(&mut self.pending_context);
        self.phase = AiPhase::Configuring;
        if !self.capabilities.announces_formats {
            self.send_early_audio(fx);
        }
        if self.capabilities.session_expires {
            self.assume_session_expiry(now_wall, fx);
        }
    }

    pub(crate) fn ai_connect_failed(&self, err: &ConnectFailure) -> Ending {
        Ending::failed(EndReason::AiConnectFailed, err.code, err.message.clone())
    }

    /// The AI socket closed (or broke: `code` None) at `now`. After the AI ended the
    /// conversation itself, the call ends once the caller has heard the goodbye (`None` until
    /// then: [`BridgeCore::closing_done`] ends it); otherwise it is a failure.
    pub(crate) fn ai_socket_closed(
        &mut self,
        code: Option<u16>,
        reason: &str,
        now: std::time::Instant,
    ) -> Option<Ending> {
        if !self.agent_ended {
            return Some(self.ai_closed(code, reason));
        }
        if self.playback.has_unplayed(now) {
            self.closing = super::session_end::Closing::Goodbye;
            return None;
        }
        Some(Ending::new(EndReason::AssistantEndedCall))
    }

    /// The Ending for the AI socket closing (or breaking: `code` None) unasked.
    pub(crate) fn ai_closed(&self, code: Option<u16>, reason: &str) -> Ending {
        let name = self.protocol.display_name();
        let message = match code {
            Some(code) => format!("{name} closed the session ({code} {reason})"),
            None => format!("the {name} connection was lost"),
        };
        Ending::failed(
            self.ai_failure_reason(),
            self.protocol.close_error_code(code, reason),
            message,
        )
    }

    /// The AI went quiet for longer than a peer may.
    pub(crate) fn ai_silent(&self, seconds: u64) -> Ending {
        let mut ending = self.ai_closed(None, "");
        if let Some(error) = ending.error.as_mut() {
            error.code = format!("{}_silent", self.protocol.code_prefix());
            error.message = format!(
                "{} sent nothing for {seconds} s",
                self.protocol.display_name()
            );
        }
        ending
    }

    /// A failure before the session is ready means it never became usable.
    pub(super) fn ai_failure_reason(&self) -> EndReason {
        if self.phase == AiPhase::Ready {
            EndReason::AiError
        } else {
            EndReason::AiConnectFailed
        }
    }

    /// The AI announced the formats it really uses (ElevenLabs: the agent's settings). Caller
    /// audio waited for this, so the conversions are chosen now: none where the rates match
    /// FreJun's, a resampler where they do not.
    pub(super) fn use_formats(&mut self, input: AiAudio, output: AiAudio) -> Option<Ending> {
        let convertible = |from: u32, to: u32| Resampler::new(from, to).is_ok();
        if !convertible(self.inbound_rate, input.rate())
            || !convertible(output.rate(), OUTBOUND_RATE)
        {
            return Some(Ending::failed(
                EndReason::AiConnectFailed,
                &format!("{}_unsupported_format", self.protocol.code_prefix()),
                format!(
                    "{} announced audio formats the bridge cannot convert ({input:?} in, \
                     {output:?} out)",
                    self.protocol.display_name()
                ),
            ));
        }
        if input.rate() != self.inbound_rate || output != AiAudio::Pcm(OUTBOUND_RATE) {
            tracing::info!(
                ?input,
                ?output,
                inbound_rate = self.inbound_rate,
                "the voice AI's formats need resampling; an agent set to FreJun's rates would not"
            );
        }
        if self.inbound.is_some() && input != self.input {
            tracing::warn!("the input format changed after audio was converted; keeping the first");
        } else {
            self.input = input;
        }
        if output != self.output {
            self.output = output;
            self.outbound = None;
        }
        None
    }
}
