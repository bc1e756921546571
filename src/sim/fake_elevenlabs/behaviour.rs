//! What a fake ElevenLabs conversation does: its [`Mode`] (what the agent says and when), how
//! it decides that the caller finished a turn ([`TurnDetection`]), how fast it streams
//! ([`Pace`]), its pings, a scripted barge-in ([`InterruptionScript`]), client tool calls
//! ([`ScriptedToolCall`]) and an injected [`Failure`].
//!
//! A [`Behaviour`] is read once, when a conversation's upgrade arrives, so
//! [`FakeElevenLabs::set_behaviour`](super::FakeElevenLabs::set_behaviour) only affects later
//! conversations.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// Everything that decides how the conversations opened from now on behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// What the agent answers.
    pub mode: Mode,
    /// Send a `ping` this often once the conversation started (after
    /// `conversation_initiation_metadata`); `None`: never.
    pub ping_interval: Option<Duration>,
    /// How long the client has to answer a `ping` with its `pong`. A ping still unanswered when
    /// the fake's timer fires sets `SessionRecord::missed_pong` and closes the socket with 1008
    /// `pong timeout`. Frames are read before timers, so a pong already waiting in the socket
    /// counts as answered: an overloaded test process does not fail a client for the fake's
    /// own lag (`SessionRecord::pongs` has the measured latency).
    pub pong_deadline: Duration,
    /// A scripted barge-in during one reply ([`Mode::Scripted`] only).
    pub interruption: Option<InterruptionScript>,
    /// Client tools the agent calls after the first user turn (see [`ScriptedToolCall`]).
    pub tool_calls: Vec<ScriptedToolCall>,
    /// How long the agent waits for every `client_tool_result` before it gives up (a
    /// violation per unanswered call) and answers anyway.
    pub tool_result_timeout: Duration,
    /// A failure to inject into every conversation opened with this behaviour.
    pub failure: Option<Failure>,
    /// How a caller turn ends ([`Mode::Scripted`] only).
    pub turn_detection: TurnDetection,
    /// Audio per `audio` event of a reply, in milliseconds (at least one sample). Echoed audio
    /// keeps the caller's chunking instead.
    pub chunk_ms: u32,
    /// How fast reply audio goes out.
    pub pace: Pace,
    /// What the first message sounds like (its text is the agent's `first_message` or the
    /// conversation's override).
    pub first_message_audio: Speech,
    /// Keep the caller's decoded audio in `SessionRecord::audio_in`. Turn it off for load
    /// tests: chunks are then only counted, so a record stays small however long the call.
    pub record_audio: bool,
    /// Keep `SessionRecord::append_timings` and `delta_timings` (24 bytes per caller chunk and
    /// per audio event), the per-chunk timeline the load generator matches against the
    /// caller's to measure the bridge's latency each way.
    pub record_timings: bool,
}

impl Default for Behaviour {
    /// Echo; no pings (a 1 s pong deadline once an interval is set); no interruption, tool
    /// calls or failure; a 5 s tool timeout; energy turn detection (-40 dBFS, 500 ms of
    /// silence); 100 ms audio events at 4× real time; a 300 ms 660 Hz first message; audio
    /// recorded, timings not.
    fn default() -> Self {
        Behaviour {
            mode: Mode::Echo,
            ping_interval: None,
            pong_deadline: Duration::from_secs(1),
            interruption: None,
            tool_calls: Vec::new(),
            tool_result_timeout: Duration::from_secs(5),
            failure: None,
            turn_detection: TurnDetection::default(),
            chunk_ms: 100,
            pace: Pace::Realtime(4.0),
            first_message_audio: Speech::Tone { hz: 660.0, ms: 300 },
            record_audio: true,
            record_timings: false,
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

/// What the fake agent says.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every caller audio chunk comes straight back, converted to the agent's output format,
    /// as one `audio` event (increasing `event_id`; a chunk too small to yield a sample after
    /// resampling yields no event). No turns, no transcripts, no `agent_response` (except for
    /// the first message, which is spoken as in every mode).
    Echo,
    /// Conversation turns, one per entry. When the caller finishes a turn (see
    /// [`TurnDetection`]), or sends a `user_message` (or a `multimodal_message` with text), the
    /// next entry is played: `user_transcript` with its text (not for typed turns), then
    /// `agent_response` with its text immediately followed by the first `audio` event, then
    /// the rest of its audio in [`Behaviour::chunk_ms`] events at [`Behaviour::pace`]. Turns
    /// that end while a reply is playing are answered after it, in order; once the entries
    /// are used up, further turns are only counted (`SessionRecord::user_turns`).
    Scripted(Vec<ScriptedTurn>),
}

/// One exchange of [`Mode::Scripted`].
#[derive(Debug, Clone)]
pub struct ScriptedTurn {
    /// What the fake transcribes the caller as saying.
    pub user_transcript: String,
    /// The agent's reply text; `{{name}}` placeholders are filled from the conversation's
    /// dynamic variables.
    pub agent_response: String,
    /// What the reply sounds like.
    pub audio: Speech,
}

impl ScriptedTurn {
    /// A turn whose reply is a tone of `ms` milliseconds at `hz`.
    pub fn tone(user_transcript: &str, agent_response: &str, hz: f64, ms: u32) -> ScriptedTurn {
        ScriptedTurn {
            user_transcript: user_transcript.to_owned(),
            agent_response: agent_response.to_owned(),
            audio: Speech::Tone { hz, ms },
        }
    }
}

/// The sound of an agent utterance, rendered in the agent's output format.
#[derive(Debug, Clone)]
pub enum Speech {
    /// A sine at `hz` for `ms` milliseconds, at -12 dBFS.
    Tone {
        /// Frequency in Hz.
        hz: f64,
        /// Length in milliseconds.
        ms: u32,
    },
    /// Recorded samples, resampled to the output rate when it differs.
    Samples {
        /// The rate the samples were recorded at.
        rate_hz: u32,
        /// 16-bit mono samples (shared: a load test plays the same clip thousands of times).
        samples: Arc<[i16]>,
    },
}

/// How [`Mode::Scripted`] decides that the caller finished a turn. Both measure caller audio
/// time (samples received), not wall-clock time, so a client that sends faster than real time
/// gets the same turns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnDetection {
    /// Energy VAD on 10 ms frames: a frame whose RMS is above `threshold_dbfs` is speech; a
    /// turn ends once `silence_ms` of frames at or below it follow speech.
    Energy {
        /// Speech threshold in dBFS (e.g. -40).
        threshold_dbfs: f64,
        /// Silence that ends a turn, in milliseconds (e.g. 500).
        silence_ms: u32,
    },
    /// A turn ends after every `ms` milliseconds of caller audio, whatever it contains.
    AfterAudioMs(u32),
}

impl Default for TurnDetection {
    /// Energy VAD, -40 dBFS, 500 ms of silence.
    fn default() -> Self {
        TurnDetection::Energy {
            threshold_dbfs: -40.0,
            silence_ms: 500,
        }
    }
}

/// How fast reply audio goes out. ElevenLabs, like other voice AIs, sends faster than real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Every event as fast as the socket takes it.
    Unpaced,
    /// Event k of a reply (its audio starting at `k × chunk_ms`) goes out `k × chunk_ms /
    /// factor` after the reply started: `4.0` is four times real time. A factor that is not a
    /// positive number means unpaced.
    Realtime(f32),
}

impl Pace {
    /// How long after a reply started the audio that starts at `audio_ms` is due.
    pub(super) fn due_after(self, audio_ms: u64) -> Duration {
        match self {
            Pace::Realtime(factor) if factor.is_finite() && factor > 0.0 => {
                // Capped at a day so that an absurdly small factor cannot overflow an Instant.
                let seconds = (audio_ms as f64 / 1_000.0 / f64::from(factor)).clamp(0.0, 86_400.0);
                Duration::from_secs_f64(seconds)
            }
            _ => Duration::ZERO,
        }
    }
}

/// A scripted barge-in, following docs/protocols.md §5.6. During the reply to scripted turn
/// `turn` (0-based index into [`Mode::Scripted`]), once its `after_audio_events`-th audio event
/// (call its id K) has been produced:
///
/// 1. the reply's audio events up to the one before the last `stale_events` have been sent
///    normally;
/// 2. the fake sends `interruption {event_id: K}`;
/// 3. then the last `stale_events` audio events (ids ≤ K, "already in flight"), which a correct
///    client drops;
/// 4. then `agent_response_correction {original_agent_response, corrected_agent_response}`;
/// 5. the rest of the reply is never sent; the barge-in counts as the caller's next turn, so
///    the next scripted turn follows at once (its `user_transcript`, `agent_response` and audio
///    with ids > K), if there is one.
///
/// A reply with no more than `after_audio_events` audio events is not interrupted.
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptionScript {
    /// Which scripted turn's reply is interrupted.
    pub turn: usize,
    /// K as a count: the interruption's `event_id` is the id of this audio event of the reply
    /// (1-based; 0 is treated as 1).
    pub after_audio_events: u32,
    /// How many of the reply's audio events up to and including the K-th arrive after the
    /// interruption (capped at `after_audio_events`).
    pub stale_events: u32,
    /// `corrected_agent_response`; `None`: the reply's text cut (at a word boundary) in
    /// proportion to the audio events before the interruption.
    pub corrected_response: Option<String>,
}

impl InterruptionScript {
    /// Interrupts the reply to `turn` at its `after_audio_events`-th audio event, with two
    /// stale events and a derived correction.
    pub fn new(turn: usize, after_audio_events: u32) -> InterruptionScript {
        InterruptionScript {
            turn,
            after_audio_events,
            stale_events: 2,
            corrected_response: None,
        }
    }
}

/// A client tool the agent calls (docs/protocols.md §5.7). Every scripted call is sent as a
/// `client_tool_call` (with a fresh `tool_call_id`) right after the first user turn's
/// `user_transcript` in [`Mode::Scripted`], or after the first caller audio chunk in
/// [`Mode::Echo`]. In Scripted mode the reply to that turn waits until every call has its
/// `client_tool_result` (or [`Behaviour::tool_result_timeout`] passed); each result is
/// recorded with its latency (`SessionRecord::tool_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedToolCall {
    /// `client_tool_call.tool_name`.
    pub tool_name: String,
    /// `client_tool_call.parameters` (an object).
    pub parameters: Value,
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Refuse every WebSocket upgrade with this HTTP status (before any other check), with an
    /// ElevenLabs-style `{"detail": {...}}` body. The REST endpoint is unaffected.
    RefuseUpgrade(u16),
    /// Close with 1011 `internal error` once the conversation has sent this many `audio`
    /// events in all (the first message's and echoes included): with a reply longer than
    /// that, the close lands in the middle of it.
    CloseMidResponse {
        /// Audio events sent before the close.
        after_audio_events: u32,
    },
    /// Like [`Failure::CloseMidResponse`] but the TCP connection is dropped without a close
    /// frame (the client sees 1006).
    DropMidResponse {
        /// Audio events sent before the drop.
        after_audio_events: u32,
    },
    /// Close with `code`/`reason` right after `conversation_initiation_client_data` arrives,
    /// before `conversation_initiation_metadata` (as a rejected configuration does).
    CloseAfterInitiation {
        /// Close code, e.g. 1008.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Accept the upgrade and read (and check) every message, but never send anything: no
    /// metadata, no audio, no pings. For the client's own timeouts.
    Silent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_divides_audio_time_and_bad_factors_mean_unpaced() {
        assert_eq!(
            Pace::Realtime(4.0).due_after(1_000),
            Duration::from_millis(250)
        );
        assert_eq!(Pace::Realtime(0.0).due_after(1_000), Duration::ZERO);
        assert_eq!(Pace::Realtime(f32::NAN).due_after(1_000), Duration::ZERO);
        assert_eq!(Pace::Unpaced.due_after(1_000), Duration::ZERO);
        assert_eq!(
            Pace::Realtime(f32::MIN_POSITIVE).due_after(1_000),
            Duration::from_secs(86_400)
        );
    }
}
