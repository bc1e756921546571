//! What a fake OpenAI Realtime session does: its [`Mode`] (what the "model" says), the function
//! calls it makes ([`ScriptedFunctionCall`]), what its out-of-band responses say (`filler`), an
//! optional injected [`Failure`], how fast it streams audio ([`Pace`]) and how much it records.
//!
//! A [`Behaviour`] is read once when a session opens, so
//! [`FakeOpenAi::set_behaviour`](super::FakeOpenAi::set_behaviour) only affects later sessions.

use std::sync::Arc;
use std::time::Duration;

/// Everything that decides how the sessions opened from now on behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// What the model answers.
    pub mode: Mode,
    /// A failure to inject into every session opened with this behaviour.
    pub failure: Option<Failure>,
    /// How fast response audio is streamed (except [`Mode::EchoStream`], which answers each
    /// append at once).
    pub pace: Pace,
    /// Audio per `response.output_audio.delta`, in milliseconds (at least one sample is sent).
    pub delta_ms: u32,
    /// Keep the appended audio (`SessionRecord::input_audio_24k`) and every append event in
    /// `SessionRecord::events`. Turn it off for load tests: appends are then only counted, so a
    /// session's record stays a few kilobytes however long it runs.
    pub record_audio: bool,
    /// Keep `SessionRecord::append_timings` and `delta_timings` (24 bytes per append and per
    /// delta) for latency measurements.
    pub record_timings: bool,
    /// What the fake's input transcription reports the caller said, one entry per committed user
    /// turn in order (when the session asked for transcription). Turns beyond the list are
    /// transcribed as `<n> ms of audio`.
    pub user_transcripts: Vec<String>,
    /// Function calls the model makes instead of answering some user turns (default: none).
    /// Works in every mode that answers user turns ([`Mode::Echo`], [`Mode::Scripted`],
    /// [`Mode::BargeIn`]); see [`ScriptedFunctionCall`].
    pub function_calls: Vec<ScriptedFunctionCall>,
    /// What every out-of-band response (`response.create` with `response.conversation:
    /// "none"`) says. Default: [`FILLER_MS`] of a tone with the transcript `one moment`.
    pub filler: ScriptedTurn,
}

impl Default for Behaviour {
    /// Echo, no failure, audio at 4× real time in 100 ms deltas, audio recorded, no timings,
    /// transcripts giving the length of each user turn, no function calls, the default filler.
    fn default() -> Self {
        Behaviour {
            mode: Mode::Echo,
            failure: None,
            pace: Pace::Realtime(4.0),
            delta_ms: 100,
            record_audio: true,
            record_timings: false,
            user_transcripts: Vec::new(),
            function_calls: Vec::new(),
            filler: ScriptedTurn::tone(FILLER_TRANSCRIPT, FILLER_HZ, FILLER_MS),
        }
    }
}

impl Behaviour {
    /// The default behaviour with another mode.
    pub fn with_mode(mode: Mode) -> Behaviour {
        Behaviour {
            mode,
            ..Behaviour::default()
        }
    }
}

/// What the fake model says.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The caller's audio comes back as the model's audio: when a user turn is committed (by
    /// server VAD or `input_audio_buffer.commit`), the next response's audio is exactly that
    /// turn's audio (from `speech_started.audio_start_ms` to `speech_stopped.audio_end_ms`),
    /// converted to the output format if it differs, with the transcript `echo: <n> ms`. A
    /// `response.create` with no unanswered turn (the greeting) plays a short tone
    /// ([`ECHO_GREETING_MS`] of [`ECHO_GREETING_HZ`]) with the transcript `echo: greeting`.
    Echo,
    /// Like Echo but continuous, for load tests: every append is answered at once by a delta
    /// with the same audio inside one long-lived response (`response.created` at the first
    /// append). The response is done after `turn_ms` of audio (`0`: never), and the next append
    /// starts a new one. No VAD runs in this mode.
    EchoStream {
        /// Audio per response, in milliseconds; `0` keeps one response for the whole session.
        turn_ms: u32,
    },
    /// Speaks the given turns in order: turn k is the audio of the k-th response (greeting
    /// included), cycling when exhausted. With no turns, responses have no audio. Responses
    /// that make [`ScriptedFunctionCall`]s, their follow-ups and out-of-band responses do not
    /// count.
    Scripted {
        /// The model's turns.
        turns: Vec<ScriptedTurn>,
    },
    /// Like Scripted, but while one of the first `times` responses is playing, once `after_ms`
    /// of its audio has been sent, the fake emits `input_audio_buffer.speech_started` as if the
    /// caller talked over it. It then keeps streaming until the client sends `response.cancel`
    /// (or cancels by itself when the session has `interrupt_response: true`), and emits
    /// `speech_stopped` (and commits a 300 ms user turn) about 300 ms later.
    BargeIn {
        /// The model's turns.
        turns: Vec<ScriptedTurn>,
        /// Audio of the response sent before the caller "talks".
        after_ms: u32,
        /// How many responses (counting from the first, the greeting included) are barged in on.
        times: u32,
    },
}

/// The greeting [`Mode::Echo`] plays on a `response.create` with nothing to echo: this many ms of
/// a 440 Hz tone at [`ECHO_GREETING_AMPLITUDE`].
pub(crate) const ECHO_GREETING_MS: u32 = 400;

/// Peak amplitude (sample units) of the Echo greeting, about -12 dBFS.
pub(crate) const ECHO_GREETING_AMPLITUDE: f64 = 8_000.0;

/// Frequency of the Echo greeting.
pub(crate) const ECHO_GREETING_HZ: f64 = 440.0;

/// Length of the default [`Behaviour::filler`].
pub const FILLER_MS: u32 = 600;

/// Transcript of the default [`Behaviour::filler`].
pub const FILLER_TRANSCRIPT: &str = "one moment";

/// Frequency of the default [`Behaviour::filler`].
const FILLER_HZ: f64 = 523.25;

/// Function calls the model makes in its response to one user turn.
///
/// The response to committed user turn `after_user_turn` (counting audio turns committed by
/// server VAD or `input_audio_buffer.commit`, from 1) is replaced by: `response.created`, the
/// `preamble` as a normal spoken (or, in a text-only response, written) message item, then for
/// each entry of `calls` a `function_call` item (`output_item.added`, at least two
/// `function_call_arguments.delta`s when the arguments have two characters or more,
/// `function_call_arguments.done`, `output_item.done`), then `response.done` listing every item.
/// The entry is used up by that response, even if it is cancelled during the preamble (then no
/// call is emitted). In [`Mode::Echo`] the turn is not echoed; in [`Mode::Scripted`] and
/// [`Mode::BargeIn`] no scripted turn is consumed.
///
/// The fake then expects one `function_call_output` per call and one plain `response.create`
/// for the batch, which it answers with `follow_up`.
#[derive(Debug, Clone)]
pub struct ScriptedFunctionCall {
    /// The 1-based committed user turn whose response makes the calls.
    pub after_user_turn: u32,
    /// Spoken first in the same response ("let me check").
    pub preamble: Option<ScriptedTurn>,
    /// `(name, arguments as JSON text)`; several are parallel calls in one response.
    pub calls: Vec<(String, String)>,
    /// What the model says in the response after it got the outputs.
    pub follow_up: ScriptedTurn,
}

impl ScriptedFunctionCall {
    /// One call of `name` with `arguments` (JSON text), no preamble.
    pub fn single(
        after_user_turn: u32,
        name: &str,
        arguments: &str,
        follow_up: ScriptedTurn,
    ) -> ScriptedFunctionCall {
        ScriptedFunctionCall {
            after_user_turn,
            preamble: None,
            calls: vec![(name.to_owned(), arguments.to_owned())],
            follow_up,
        }
    }
}

/// One scripted turn of the model.
#[derive(Debug, Clone)]
pub struct ScriptedTurn {
    /// The transcript sent in `response.output_audio_transcript.delta`/`.done`.
    pub transcript: String,
    /// The audio.
    pub audio: ScriptAudio,
}

impl ScriptedTurn {
    /// A turn of `ms` of a `freq_hz` tone at about -12 dBFS.
    pub fn tone(transcript: &str, freq_hz: f64, ms: u32) -> ScriptedTurn {
        ScriptedTurn {
            transcript: transcript.to_owned(),
            audio: ScriptAudio::Tone {
                freq_hz,
                ms,
                amplitude: 8_000.0,
            },
        }
    }

    /// A turn of recorded 24 kHz audio (e.g. read from a WAV file).
    pub(crate) fn samples(transcript: &str, samples_24k: Arc<Vec<i16>>) -> ScriptedTurn {
        ScriptedTurn {
            transcript: transcript.to_owned(),
            audio: ScriptAudio::Samples24k(samples_24k),
        }
    }
}

/// The audio of a scripted turn. It is rendered in the session's output format when the
/// response starts.
#[derive(Debug, Clone)]
pub enum ScriptAudio {
    /// A sine generated directly at the output rate.
    Tone {
        /// Frequency.
        freq_hz: f64,
        /// Duration.
        ms: u32,
        /// Peak amplitude in sample units, as `crate::audio::tone::sine` takes it (8000 ≈ -12 dBFS).
        amplitude: f64,
    },
    /// Linear samples at 24 kHz, decimated to 8 kHz for `audio/pcmu`/`audio/pcma` output.
    Samples24k(Arc<Vec<i16>>),
}

/// A failure injected into every session opened while it is set.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Refuse the upgrade with this HTTP status (e.g. 401 or 403) and an OpenAI error body.
    /// Checked after the `Authorization` header is found well-formed.
    RejectKey {
        /// HTTP status of the refusal.
        status: u16,
    },
    /// Accept the upgrade (101), then send an `error` with code `invalid_api_key` and close
    /// with 3000 `invalid_request_error.invalid_api_key`, as OpenAI did for revoked keys.
    InvalidKeyAfterOpen,
    /// Send one `error` event when `after` happens. With [`Trigger::OnSessionUpdate`] the error
    /// answers the first valid `session.update` instead of `session.updated` (the update is
    /// rejected and its `event_id` echoed). The error's type is `server_error` when `code`
    /// starts with `server`, otherwise `invalid_request_error`. Real errors leave the session
    /// open; with `close_code` the fake then closes with that code and the reason
    /// `<type>.<code>`.
    ErrorEvent {
        /// When to send it.
        after: Trigger,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// Close the socket after the error with this code.
        close_code: Option<u16>,
    },
    /// Close with `code`/`reason` once a response has sent `after_ms` of audio (checked after
    /// each delta, so the close follows the first delta that reaches it).
    CloseMidResponse {
        /// Close code, e.g. 1011.
        code: u16,
        /// Close reason.
        reason: String,
        /// Audio of the response sent before the close.
        after_ms: u32,
    },
    /// Accept the upgrade, then never send anything and never read again, so pings go
    /// unanswered. The socket stays open until the client gives up or the fake stops.
    Stall,
    /// Close 1001 "Your session hit the maximum duration of 60 minutes." `after_ms` after the
    /// session opened; `session.expires_at` announces it (rounded up to whole seconds).
    SessionCap {
        /// Session lifetime.
        after_ms: u32,
    },
}

/// When a [`Failure::ErrorEvent`] fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// On the first valid `session.update`.
    OnSessionUpdate,
    /// As soon as this much audio has been appended.
    AfterAppendedMs(u32),
}

/// How fast response audio goes out. Real OpenAI sends audio faster than real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Every delta as fast as the socket takes it (incoming events are still read between
    /// deltas, so a cancel can stop a long response).
    Unpaced,
    /// Delta k (carrying audio from `t` ms to `t + delta_ms` ms) is sent `t / factor` ms after
    /// the response started: `2.0` streams twice as fast as real time. A factor that is not a
    /// positive number means unpaced.
    Realtime(f32),
}

impl Pace {
    /// How long after a response started the audio that begins at `audio_ms` is due; `None`
    /// when unpaced (due at once).
    pub(super) fn due_after(self, audio_ms: f64) -> Option<Duration> {
        match self {
            Pace::Realtime(factor) if factor.is_finite() && factor > 0.0 => {
                // Capped at a day so that an absurdly small factor cannot overflow an Instant.
                let seconds = (audio_ms / 1_000.0 / f64::from(factor)).clamp(0.0, 86_400.0);
                Some(Duration::from_secs_f64(seconds))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_pace_divides_audio_time_and_bad_factors_mean_unpaced() {
        assert_eq!(
            Pace::Realtime(2.0).due_after(1_000.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(Pace::Realtime(0.0).due_after(1_000.0), None);
        assert_eq!(Pace::Realtime(f32::NAN).due_after(1_000.0), None);
        assert_eq!(Pace::Unpaced.due_after(1_000.0), None);
        assert_eq!(
            Pace::Realtime(f32::MIN_POSITIVE).due_after(1_000.0),
            Some(Duration::from_secs(86_400))
        );
    }
}
