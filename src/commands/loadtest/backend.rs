//! The voice AI behind the bridge in a load test (`--backend`), and the in-crate fake that plays
//! it: OpenAI Realtime (the fake OpenAI in `EchoStream`) or an ElevenLabs Conversational AI agent
//! (the fake ElevenLabs in `Echo`). Either way every caller chunk comes straight back, and the
//! fake keeps per-chunk timings in the same shape, so the rest of the load test (latency, the
//! report) does not care which one ran.
//!
//! The ElevenLabs fake has one public agent, [`AGENT_ID`], in FreJun's own formats (`pcm_8000`
//! both ways for 8 kHz flows, `pcm_16000` in and `pcm_8000` out for 16 kHz ones), so the bridge
//! resamples nothing; no first message, so the echo starts with the caller; the prompt override
//! enabled, because the prompt (the assistant's instructions) is how a conversation is matched
//! to its call; and pings every [`PING_INTERVAL`], so the bridge's pongs are part of the load.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::latency::Timing;
use crate::domain::assistant::Codec;
use crate::sim::fake_elevenlabs::{self, AgentConfig, AudioFormat, FakeElevenLabs};
use crate::sim::fake_openai::{self, FakeOpenAi};

/// The fake ElevenLabs agent every assistant of an `elevenlabs` run talks to.
pub(crate) const AGENT_ID: &str = "loadtest_echo";

/// How often the fake ElevenLabs pings each conversation. ElevenLabs documents no interval;
/// a few seconds makes pongs a steady part of the load without dominating it.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// How long a pong may take before the fake ElevenLabs ends the conversation (1008), failing
/// the call. Twice the fake's default: a pong already waiting in the socket counts anyway, so
/// only a bridge lagging by seconds fails, and a bridge that never answers fails any call longer
/// than [`PING_INTERVAL`] plus this (the API test's 5 s calls included).
const PONG_DEADLINE: Duration = Duration::from_secs(2);

/// The overridable field that carries the assistant's instructions to ElevenLabs.
const PROMPT_OVERRIDE: &str = "agent.prompt.prompt";

/// `--backend`: which voice AI the assistants use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// OpenAI Realtime (`backend.type` `openai_realtime`).
    #[default]
    OpenAi,
    /// An ElevenLabs agent (`backend.type` `elevenlabs_convai`).
    ElevenLabs,
}

impl Backend {
    /// `openai` or `elevenlabs`, for the command line.
    pub(crate) fn parse(text: &str) -> Result<Backend, String> {
        match text {
            "openai" => Ok(Backend::OpenAi),
            "elevenlabs" => Ok(Backend::ElevenLabs),
            other => Err(format!(
                "unknown backend {other:?}: use openai or elevenlabs"
            )),
        }
    }

    /// The command-line (and report) name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::OpenAi => "openai",
            Backend::ElevenLabs => "elevenlabs",
        }
    }

    /// The flag naming where this backend's fake listens for an external server.
    pub(crate) fn listen_flag(self) -> &'static str {
        match self {
            Backend::OpenAi => "--openai-listen",
            Backend::ElevenLabs => "--elevenlabs-listen",
        }
    }
}

/// The fake agent's input and output formats for a flow at `inbound_rate_hz`: FreJun's own.
pub(crate) fn agent_formats(inbound_rate_hz: u32) -> (AudioFormat, AudioFormat) {
    let input = if inbound_rate_hz == 16_000 {
        AudioFormat::Pcm(16_000)
    } else {
        AudioFormat::Pcm(8_000)
    };
    (input, AudioFormat::Pcm(8_000))
}

/// The rates the fake counts its input and its output samples in: the fake OpenAI's codec rate
/// (24 kHz `audio/pcm`, 8 kHz `audio/pcmu`) both ways; the agent's formats for ElevenLabs.
pub(crate) fn fake_rates(backend: Backend, codec: Codec, inbound_rate_hz: u32) -> (u32, u32) {
    match (backend, codec) {
        (Backend::OpenAi, Codec::Pcm24k) => (24_000, 24_000),
        (Backend::OpenAi, Codec::Pcmu) => (8_000, 8_000),
        (Backend::ElevenLabs, _) => {
            let (input, output) = agent_formats(inbound_rate_hz);
            (input.rate_hz(), output.rate_hz())
        }
    }
}

/// One fake session's timeline, whichever fake kept it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeSession {
    /// The instructions the bridge gave it (OpenAI's `session.instructions`, ElevenLabs'
    /// prompt override): they name the call (`accounts::instructions_for`).
    pub instructions: Option<String>,
    /// `(cumulative input samples, when each chunk of caller audio arrived)`.
    pub append_timings: Vec<Timing>,
    /// `(cumulative output samples, when each chunk of AI audio was produced)`: one per audio
    /// frame the fake sent.
    pub delta_timings: Vec<Timing>,
    /// Responses the fake OpenAI started (0 for ElevenLabs): each adds lifecycle events
    /// around its deltas, frames the bridge reads too (the metrics check allows for them).
    pub responses: u64,
    /// Pings the fake ElevenLabs sent (0 for OpenAI), likewise.
    pub pings: u64,
}

/// The running fake.
pub(crate) enum AiFake {
    OpenAi(FakeOpenAi),
    ElevenLabs(FakeElevenLabs),
}

impl AiFake {
    /// Starts `backend`'s fake in echo mode, recording timings only, on `listen` (a free
    /// loopback port without one). `turn_ms` ends the fake OpenAI's responses (the ElevenLabs
    /// echo has no turns); `inbound_rate_hz` picks the agent's formats.
    pub(crate) async fn start(
        backend: Backend,
        listen: Option<SocketAddr>,
        turn_ms: u32,
        inbound_rate_hz: u32,
    ) -> anyhow::Result<AiFake> {
        let at = listen.map_or_else(String::new, |address| format!(" on {address}"));
        match backend {
            Backend::OpenAi => {
                let behaviour = fake_openai::Behaviour {
                    mode: fake_openai::Mode::EchoStream { turn_ms },
                    failure: None,
                    record_audio: false,
                    record_timings: true,
                    ..fake_openai::Behaviour::default()
                };
                let fake = match listen {
                    Some(address) => FakeOpenAi::start_on(address, behaviour).await,
                    None => FakeOpenAi::start(behaviour).await,
                };
                let fake = fake.with_context(|| format!("cannot start the fake OpenAI{at}"))?;
                Ok(AiFake::OpenAi(fake))
            }
            Backend::ElevenLabs => {
                let behaviour = fake_elevenlabs::Behaviour {
                    mode: fake_elevenlabs::Mode::Echo,
                    ping_interval: Some(PING_INTERVAL),
                    pong_deadline: PONG_DEADLINE,
                    failure: None,
                    record_audio: false,
                    record_timings: true,
                    ..fake_elevenlabs::Behaviour::default()
                };
                let fake = match listen {
                    Some(address) => FakeElevenLabs::start_on(address, behaviour).await,
                    None => FakeElevenLabs::start(behaviour).await,
                };
                let fake = fake.with_context(|| format!("cannot start the fake ElevenLabs{at}"))?;
                let (input, output) = agent_formats(inbound_rate_hz);
                fake.add_agent(
                    AgentConfig::new(AGENT_ID)
                        .formats(input, output)
                        .enable(&[PROMPT_OVERRIDE]),
                );
                Ok(AiFake::ElevenLabs(fake))
            }
        }
    }

    /// The settings (environment overrides) that point a started server at this fake.
    pub(crate) fn server_env(&self) -> Vec<(&'static str, String)> {
        match self {
            AiFake::OpenAi(fake) => vec![("VOXBRIDGE__OPENAI__REALTIME_URL", fake.url().into())],
            AiFake::ElevenLabs(fake) => vec![
                ("VOXBRIDGE__ELEVENLABS__API_BASE_URL", fake.base_url()),
                (
                    "VOXBRIDGE__ELEVENLABS__CONVERSATION_URL",
                    fake.conversation_url(),
                ),
            ],
        }
    }

    /// Every session so far with its timeline.
    pub(crate) fn sessions(&self) -> Vec<FakeSession> {
        match self {
            AiFake::OpenAi(fake) => fake
                .sessions()
                .into_iter()
                .map(|session| FakeSession {
                    instructions: text_at(&session.session, &["instructions"]),
                    append_timings: session.append_timings,
                    delta_timings: session.delta_timings,
                    responses: session.responses.len() as u64,
                    pings: 0,
                })
                .collect(),
            AiFake::ElevenLabs(fake) => fake
                .sessions()
                .into_iter()
                .map(|session| FakeSession {
                    // Only what the agent applied: a dropped override would not have reached
                    // the model either, and then the call counts as missing its session.
                    instructions: text_at(
                        &session.applied_overrides,
                        &["agent", "prompt", "prompt"],
                    ),
                    append_timings: session.append_timings,
                    delta_timings: session.delta_timings,
                    responses: 0,
                    pings: u64::from(session.pings_sent),
                })
                .collect(),
        }
    }

    /// The protocol violations the fake recorded, one sentence each.
    pub(crate) fn violations(&self) -> Vec<String> {
        match self {
            AiFake::OpenAi(fake) => fake.violations(),
            AiFake::ElevenLabs(fake) => fake.violations(),
        }
    }

    /// Stops the fake (the ElevenLabs one closes open conversations first).
    pub(crate) async fn stop(self) {
        match self {
            AiFake::OpenAi(fake) => fake.stop(),
            AiFake::ElevenLabs(fake) => fake.stop().await,
        }
    }
}

/// The string at `path` in nested objects.
fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn backends_parse_by_name_and_name_their_listen_flag() {
        assert_eq!(Backend::parse("openai"), Ok(Backend::OpenAi));
        assert_eq!(Backend::parse("elevenlabs"), Ok(Backend::ElevenLabs));
        assert!(Backend::parse("anthropic").is_err());
        assert_eq!(Backend::ElevenLabs.name(), "elevenlabs");
        assert_eq!(Backend::default(), Backend::OpenAi);
        assert_eq!(Backend::ElevenLabs.listen_flag(), "--elevenlabs-listen");
    }

    #[test]
    fn the_agent_speaks_frejuns_rates_so_nothing_is_resampled() {
        assert_eq!(
            agent_formats(8_000),
            (AudioFormat::Pcm(8_000), AudioFormat::Pcm(8_000))
        );
        assert_eq!(
            agent_formats(16_000),
            (AudioFormat::Pcm(16_000), AudioFormat::Pcm(8_000))
        );
        assert_eq!(
            fake_rates(Backend::ElevenLabs, Codec::Pcm24k, 16_000),
            (16_000, 8_000)
        );
        assert_eq!(
            fake_rates(Backend::OpenAi, Codec::Pcm24k, 16_000),
            (24_000, 24_000)
        );
        assert_eq!(
            fake_rates(Backend::OpenAi, Codec::Pcmu, 8_000),
            (8_000, 8_000)
        );
    }

    #[test]
    fn instructions_are_read_from_nested_objects() {
        let applied = json!({"agent": {"prompt": {"prompt": "loadtest call 3"}}});
        assert_eq!(
            text_at(&applied, &["agent", "prompt", "prompt"]).as_deref(),
            Some("loadtest call 3")
        );
        assert_eq!(text_at(&applied, &["agent", "first_message"]), None);
        assert_eq!(text_at(&json!({"agent": 1}), &["agent", "prompt"]), None);
    }

    #[tokio::test]
    async fn the_elevenlabs_fake_has_the_agent_and_points_the_server_at_itself() {
        let fake = AiFake::start(Backend::ElevenLabs, None, 5_000, 16_000)
            .await
            .unwrap();
        let env = fake.server_env();
        assert_eq!(env.len(), 2);
        assert!(env[0].1.starts_with("http://127.0.0.1:"), "{env:?}");
        assert!(
            env[1].1.starts_with("ws://127.0.0.1:")
                && env[1].1.ends_with("/v1/convai/conversation"),
            "{env:?}"
        );
        assert!(fake.sessions().is_empty() && fake.violations().is_empty());
        fake.stop().await;
    }
}
