//! The end of the OpenAI session's life: OpenAI closes a Realtime session after a fixed time (60
//! minutes today, announced as `session.expires_at`), mid-sentence if need be. Shortly before
//! that, the call ends on purpose instead: the assistant is asked to say the deployment's
//! closing line (a `system` message and a plain `response.create`, so it speaks in the
//! assistant's own persona and language), the line is played out to the caller, and the call
//! ends with `ai_session_limit`. If the line is not done by one second before the expiry, the
//! call ends anyway.
//!
//! The runner owns the clock: it learns when the session ends from [`Effects::session_ends_at`]
//! and calls [`BridgeCore::begin_closing`] at [`SessionEndConfig::closing`] before it, then
//! [`BridgeCore::closing_done`] on each flush tick, and ends the call at the hard deadline.

use std::time::{Duration, Instant, SystemTime};

use super::{AiPhase, BridgeCore, Effects, Ending};
use crate::domain::call::EndReason;
use crate::settings::{BridgeSettings, OpenAiSettings};

/// How a session's end is handled.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEndConfig {
    /// How long before the session's expiry the closing starts.
    pub closing: Duration,
    /// What the assistant says before the call ends.
    pub closing_line: String,
    /// The session's life when OpenAI does not announce `expires_at`.
    pub fallback_limit: Duration,
}

impl SessionEndConfig {
    /// From the deployment's settings.
    pub fn new(bridge: &BridgeSettings, openai: &OpenAiSettings) -> Self {
        Self {
            closing: Duration::from_secs(bridge.session_closing_secs),
            closing_line: bridge.session_closing_line.clone(),
            fallback_limit: Duration::from_secs(openai.session_limit_secs),
        }
    }
}

/// Why the call is being wound down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClosingCause {
    /// The AI session is about to expire (`ai_session_limit`).
    #[default]
    SessionLimit,
    /// The instance is draining and its drain time is up (`shutdown`).
    Drain,
}

impl ClosingCause {
    /// The end reason the call gets.
    pub fn reason(self) -> EndReason {
        match self {
            Self::SessionLimit => EndReason::AiSessionLimit,
            Self::Drain => EndReason::Shutdown,
        }
    }

    /// What the assistant is told of the situation before being given the line.
    fn situation(self) -> &'static str {
        match self {
            Self::SessionLimit => "The call has reached its time limit and must end now.",
            Self::Drain => {
                "The service handling this call is restarting and the call must end now."
            }
        }
    }
}

/// Where the closing is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Closing {
    #[default]
    NotStarted,
    /// The closing line was asked for; its response has not started.
    Asked,
    /// The closing line's response is running.
    Speaking { response_id: String },
    /// The closing line was generated; the call ends once the caller has heard it.
    Spoken,
    /// The AI ended the conversation (and closed its socket); the call ends once the caller
    /// has heard its goodbye.
    Goodbye,
}

impl BridgeCore {
    /// When the session ends, if the AI said; announced to the runner through `fx`.
    pub(super) fn learn_session_expiry(
        &mut self,
        expires_at: Option<SystemTime>,
        fx: &mut Effects,
    ) {
        let Some(ends_at) = expires_at else {
            return;
        };
        if self.session_ends_at != Some(ends_at) {
            self.session_ends_at = Some(ends_at);
            fx.session_ends_at = Some(ends_at);
        }
    }

    /// The session opened at `now_wall`: until OpenAI says otherwise, it ends after the
    /// configured fallback limit.
    pub(super) fn assume_session_expiry(&mut self, now_wall: SystemTime, fx: &mut Effects) {
        let ends_at = now_wall + self.config.session_end.fallback_limit;
        self.session_ends_at = Some(ends_at);
        fx.session_ends_at = Some(ends_at);
    }

    /// Time to wind down for `cause`: the closing line is asked for (after cancelling whatever
    /// the assistant is saying). A session that is not ready to speak ends the call at once.
    pub fn begin_closing(
        &mut self,
        now: Instant,
        cause: ClosingCause,
        fx: &mut Effects,
    ) -> Option<Ending> {
        if self.closing != Closing::NotStarted {
            return None;
        }
        self.closing_cause = cause;
        if self.phase != AiPhase::Ready {
            return Some(Ending::new(cause.reason()));
        }
        tracing::info!(?cause, "winding the call down; saying the closing line");
        // The caller hears the closing line instead of the rest of any answer in progress.
        self.stop_assistant(now, fx);
        let line = &self.config.session_end.closing_line;
        let instruction = format!(
            "{} Say exactly this to the caller, then nothing else: \"{line}\"",
            cause.situation()
        );
        self.protocol.say(instruction, &mut fx.to_ai);
        self.closing = Closing::Asked;
        None
    }

    /// Whether the call can end now: the closing line was generated and the caller has heard
    /// it.
    pub fn closing_done(&self, now: Instant) -> Option<Ending> {
        if self.playback.has_unplayed(now) {
            return None;
        }
        match self.closing {
            Closing::Spoken => Some(Ending::new(self.closing_cause.reason())),
            Closing::Goodbye => Some(Ending::new(EndReason::AssistantEndedCall)),
            _ => None,
        }
    }

    /// Why the call is being wound down (the end reason at the hard deadline).
    pub fn closing_reason(&self) -> EndReason {
        self.closing_cause.reason()
    }

    /// Whether the closing has started (the runner then ends the call at the hard deadline).
    pub fn closing_started(&self) -> bool {
        self.closing != Closing::NotStarted
    }

    /// A response was created: the first one after the closing was asked for speaks the line.
    pub(super) fn closing_response_created(&mut self, response_id: &str) {
        if self.closing == Closing::Asked {
            self.closing = Closing::Speaking {
                response_id: response_id.to_owned(),
            };
        }
    }

    /// A response ended: if it spoke the closing line, the call ends once it is heard.
    pub(super) fn closing_response_done(&mut self, response_id: &str) {
        if matches!(&self.closing, Closing::Speaking { response_id: closing } if closing == response_id)
        {
            self.closing = Closing::Spoken;
        }
    }
}
