//! The demo's calls, played the way FreJun plays them: the lifecycle webhooks, the flow fetch,
//! the media stream with a caller who talks over the greeting (inbound) or waits for it
//! (outbound), or asks about an order that the assistant looks up with an HTTP tool before it
//! ends the call itself, or talks over an ElevenLabs agent's answer; and the hang-up.
//! Everything the caller sent and heard is kept for the account and the WAV files.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};

use crate::sim::caller::{CallSummary, ReceivedEvent, SimulatedCaller};
use crate::sim::fake_elevenlabs;
use crate::sim::fake_openai::{
    Behaviour, Mode, Pace, ScriptedFunctionCall, ScriptedTurn, SessionRecord,
};
use crate::sim::frejun_requests::{
    FlowRequest, StreamFlow, frejun_http_client, request_stream_flow,
};
use crate::sim::phone_call::{Direction, Lifecycle, voxbridge_call_id, wait_for_call_log};
use crate::sim::provision::ProvisionedTenant;
use crate::sim::voices::Voice;

use super::elevenlabs;
use super::narrate::Narrator;
use super::stack::{DemoStack, script};

/// The caller on the inbound call, and the customer the outbound call dials.
pub(crate) const CALLER_NUMBER: &str = "+14155550100";
pub(crate) const CUSTOMER_NUMBER: &str = "+14155550199";
/// The demo tenant's FreJun API key (the fake Teler accepts any).
pub(crate) const DEMO_FREJUN_KEY: &str = "frejun-demo-key";

/// How long the caller listens to the greeting before talking over it.
const BARGE_IN_AFTER_MS: u64 = 1_200;
/// How long the caller listens to an answer before talking over it (the ElevenLabs call).
const TALK_OVER_AFTER_MS: u64 = 300;
/// How much of the recorded caller line stands for the words said over an answer.
const TALK_OVER_MS: usize = 1_000;
/// Longest wait for the assistant to start speaking.
const FIRST_AUDIO_TIMEOUT: Duration = Duration::from_secs(8);
/// Longest wait for the answer to be heard to its end after the caller spoke.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the bridge to write the call's end to its log.
const CALL_LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet kept after the assistant's last word before hanging up.
const TRAILING_SILENCE_MS: u64 = 500;

/// One finished call, for the account and the WAV files.
pub(crate) struct PlayedCall {
    /// Names the call's WAV files: `inbound`, `outbound`, `order` or `elevenlabs`.
    pub label: &'static str,
    pub frejun_call_id: String,
    pub voxbridge_call_id: String,
    /// When the media stream opened; every mark is relative to it.
    pub opened_at: Instant,
    /// What happened when, as the caller saw it.
    pub marks: Vec<(Instant, String)>,
    /// Everything the caller sent, 8 kHz.
    pub sent: Vec<i16>,
    pub summary: CallSummary,
    /// The fake OpenAI's record of the session (what the model was sent and did).
    pub session: Option<SessionRecord>,
    /// The fake ElevenLabs' record of the conversation, when an agent took the call.
    pub agent_session: Option<fake_elevenlabs::SessionRecord>,
    /// The call log as the tenant API shows it once the bridge has written the end.
    pub call_log: Value,
}

/// An inbound call to `number`: the caller talks over the greeting, then hears the answer.
pub(crate) async fn inbound(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    number: &str,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    stack
        .fake_openai
        .set_behaviour(script(&Voice::greeting()?)?);
    let frejun_call_id = format!("demo-in-{:08x}", rand::random::<u32>());
    let (flow, lifecycle) = ring_in(tenant, number, frejun_call_id, narrator).await?;
    play(stack, tenant, flow, lifecycle, Plan::BargeIn, narrator).await
}

/// FreJun's side of an inbound call up to the media stream: the webhooks before the flow, the
/// flow request (answered "stream") and the webhooks after it.
async fn ring_in(
    tenant: &ProvisionedTenant,
    number: &str,
    frejun_call_id: String,
    narrator: &Narrator,
) -> anyhow::Result<(StreamFlow, Lifecycle)> {
    let http = frejun_http_client();
    let mut lifecycle = Lifecycle::new(
        http.clone(),
        Some(tenant.webhook_url.to_string()),
        frejun_call_id.clone(),
        CALLER_NUMBER,
        number,
    );
    narrator.step(&format!(
        "FreJun: {CALLER_NUMBER} is calling {number} (FreJun call id {frejun_call_id})"
    ));
    lifecycle.before_flow(Direction::Inbound).await;
    let request = FlowRequest {
        call_id: frejun_call_id,
        from: CALLER_NUMBER.to_owned(),
        to: number.to_owned(),
        direction: Direction::Inbound.as_str().to_owned(),
    };
    let flow = request_stream_flow(&http, tenant.flow_url.as_str(), &request)
        .await
        .context("the flow request failed")?;
    narrate_flow(narrator, &flow);
    lifecycle.after_flow(Direction::Inbound).await;
    Ok((flow, lifecycle))
}

/// What the caller asks about on the order call, and what the order system answers.
const ORDER_QUESTION: &str = "Hi, where is my order A-1001?";
const ORDER_ANSWER: &str = "Your order A-1001 has shipped with DHL and arrives on December 9th.";
const CALLER_GOODBYE: &str = "Great, thanks. Bye!";
const ASSISTANT_GOODBYE: &str = "Thanks for calling Acme Bistro. Goodbye!";

/// The fake model on the order call: the greeting; after the caller's question, a call of
/// `lookup_order`, then the answer; after the caller's goodbye, its own goodbye and `end_call`.
/// The recorded voices do not say these lines, so the tool turns are tones with the words as
/// their transcripts.
fn order_script(greeting: &Voice) -> Behaviour {
    Behaviour {
        pace: Pace::Realtime(4.0),
        user_transcripts: vec![ORDER_QUESTION.to_owned(), CALLER_GOODBYE.to_owned()],
        function_calls: vec![
            ScriptedFunctionCall::single(
                1,
                "lookup_order",
                r#"{"order_id":"A-1001"}"#,
                ScriptedTurn::tone(ORDER_ANSWER, 523.0, 2_400),
            ),
            ScriptedFunctionCall {
                after_user_turn: 2,
                preamble: Some(ScriptedTurn::tone(ASSISTANT_GOODBYE, 440.0, 1_600)),
                calls: vec![(
                    "hang_up".to_owned(),
                    r#"{"reason":"the caller said goodbye"}"#.to_owned(),
                )],
                follow_up: ScriptedTurn::tone("(never spoken: the call has ended)", 440.0, 100),
            },
        ],
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::samples(
                greeting.text,
                std::sync::Arc::clone(&greeting.samples_24k),
            )],
        })
    }
}

/// An inbound call to `number`, whose assistant has an order-lookup tool and `end_call`: the
/// caller asks about an order, the assistant looks it up in the tenant's order system (the
/// fake), answers, and hangs up after saying goodbye.
pub(crate) async fn order_lookup(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    number: &str,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    stack
        .fake_openai
        .set_behaviour(order_script(&Voice::greeting()?));
    // FreJun knows the call (the fake Teler API, with the tenant's FreJun key), so the
    // assistant's hang-up through Teler finds it.
    let frejun_call_id = stack
        .fake_teler
        .receive_call(DEMO_FREJUN_KEY, CALLER_NUMBER, number)
        .id;
    let (flow, lifecycle) = ring_in(tenant, number, frejun_call_id, narrator).await?;
    let played = play(stack, tenant, flow, lifecycle, Plan::OrderLookup, narrator).await?;
    for request in stack.fake_tools.requests() {
        narrator.step(&format!(
            "order system: {} {} signed by voxbridge (signature {}), arguments {}",
            request.method,
            request.path,
            if request.signature_valid {
                "valid"
            } else {
                "INVALID"
            },
            request.body["arguments"]
        ));
    }
    Ok(played)
}

/// An inbound call to `number`, answered by an ElevenLabs agent (the fake's behaviour is set
/// when the demo starts): the caller hears the agent's first message, asks a question, talks
/// over the answer and hears the answer to what they said instead.
pub(crate) async fn to_agent(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    number: &str,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    let frejun_call_id = format!("demo-el-{:08x}", rand::random::<u32>());
    let (flow, lifecycle) = ring_in(tenant, number, frejun_call_id, narrator).await?;
    play(
        stack,
        tenant,
        flow,
        lifecycle,
        Plan::TalkOverAgent,
        narrator,
    )
    .await
}

/// An outbound call the tenant places through the API; the customer waits for the greeting,
/// then answers.
pub(crate) async fn outbound(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    assistant_id: &str,
    from_number: &str,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    stack
        .fake_openai
        .set_behaviour(script(&Voice::outbound_greeting()?)?);
    let answer = tenant
        .api
        .post(
            "api/frejun/initiate-call",
            &json!({
                "assistant_id": assistant_id,
                "from_number": from_number,
                "to_number": CUSTOMER_NUMBER,
            }),
        )
        .await
        .context("POST /api/frejun/initiate-call failed")?;
    let frejun_call_id = answer["call_id"]
        .as_str()
        .ok_or_else(|| anyhow!("initiate-call answered without call_id: {answer}"))?
        .to_owned();
    narrator.step(&format!(
        "Tenant: POST /api/frejun/initiate-call → voxbridge asked FreJun (the fake Teler API) to \
         dial {CUSTOMER_NUMBER} from {from_number}; FreJun call id {frejun_call_id}"
    ));
    let placed = stack
        .fake_teler
        .calls()
        .into_iter()
        .find(|call| call.id == frejun_call_id)
        .ok_or_else(|| anyhow!("the fake Teler API never received call {frejun_call_id}"))?;
    let http = frejun_http_client();
    let mut lifecycle = Lifecycle::new(
        http.clone(),
        Some(placed.status_callback_url.clone()),
        frejun_call_id.clone(),
        from_number,
        CUSTOMER_NUMBER,
    );
    // FreJun records the call (the assistant's `record` is on by default).
    if placed.record {
        lifecycle.recorded_as(stack.fake_teler.add_recording(&placed.id));
    }
    narrator.step("FreJun: the customer's phone rings, and they pick up");
    lifecycle.before_flow(Direction::Outbound).await;
    let request = FlowRequest {
        call_id: frejun_call_id,
        from: from_number.to_owned(),
        to: CUSTOMER_NUMBER.to_owned(),
        direction: Direction::Outbound.as_str().to_owned(),
    };
    let flow = request_stream_flow(&http, &placed.flow_url, &request)
        .await
        .context("the flow request failed")?;
    narrate_flow(narrator, &flow);
    lifecycle.after_flow(Direction::Outbound).await;
    play(
        stack,
        tenant,
        flow,
        lifecycle,
        Plan::WaitForGreeting,
        narrator,
    )
    .await
}

/// How the caller behaves on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Inbound: talks over the greeting, hears the answer, hangs up.
    BargeIn,
    /// Outbound: lets the greeting finish, speaks, hears the answer, hangs up.
    WaitForGreeting,
    /// Inbound: lets the greeting finish, asks about an order, hears the answer, says goodbye,
    /// and the assistant hangs up.
    OrderLookup,
    /// Inbound to an ElevenLabs agent: lets its first message finish, asks, talks over the
    /// answer, hears the answer to that, hangs up.
    TalkOverAgent,
}

impl Plan {
    fn label(self) -> &'static str {
        match self {
            Plan::BargeIn => "inbound",
            Plan::WaitForGreeting => "outbound",
            Plan::OrderLookup => "order",
            Plan::TalkOverAgent => "elevenlabs",
        }
    }
}

fn narrate_flow(narrator: &Narrator, flow: &StreamFlow) {
    narrator.step(&format!(
        "FreJun: POST /api/frejun/flow → voxbridge answers \"stream\": {} Hz, {} ms chunks, \
         media WebSocket at /api/frejun/media-stream/…",
        flow.caller.sample_rate, flow.caller.chunk_ms
    ));
}

/// The media stream, from `start` to the hang-up, then the closing webhooks and the call log.
async fn play(
    stack: &DemoStack,
    tenant: &ProvisionedTenant,
    flow: StreamFlow,
    mut lifecycle: Lifecycle,
    plan: Plan,
    narrator: &Narrator,
) -> anyhow::Result<PlayedCall> {
    let voxbridge_call_id = voxbridge_call_id(&flow.caller.ws_url)
        .ok_or_else(|| anyhow!("the ws_url carries no call_id"))?;
    let frejun_call_id = flow.caller.frejun_call_id.clone();
    let stream_id = flow.caller.stream_id.clone();
    let sessions_before = stack.fake_openai.sessions().len();
    let agent_sessions_before = stack.fake_elevenlabs.sessions().len();
    let mut caller = SimulatedCaller::connect(flow.caller, Duration::from_secs(5))
        .await
        .context("the media WebSocket did not open")?;
    let opened_at = Instant::now();
    caller.send_start().await.context("sending start")?;
    let voice_ai = if plan == Plan::TalkOverAgent {
        "fetches a signed URL with the tenant's ElevenLabs key and opens the agent's conversation"
    } else {
        "opens OpenAI Realtime"
    };
    narrator.step(&format!(
        "FreJun: media stream open, `start` sent; voxbridge {voice_ai} for call {voxbridge_call_id}"
    ));
    lifecycle.stream_initiated(&stream_id).await;

    let mut conversation = Conversation::new(caller);
    match plan {
        // Inbound, the caller talks over the greeting; outbound, the customer lets it finish.
        Plan::BargeIn => conversation.run(true, None).await?,
        Plan::WaitForGreeting => conversation.run(false, None).await?,
        Plan::OrderLookup => {
            conversation.run(false, Some(ORDER_QUESTION)).await?;
            conversation.say_goodbye().await?;
        }
        Plan::TalkOverAgent => {
            conversation
                .talk_over_answer(elevenlabs::QUESTION, elevenlabs::INTERJECTION)
                .await?;
        }
    }
    let Conversation {
        caller,
        sent,
        marks,
        ..
    } = conversation;
    let summary = if plan == Plan::OrderLookup {
        let summary = caller
            .wait_closed(CALL_LOG_TIMEOUT)
            .await
            .context("waiting for the assistant to hang up")?;
        narrator.step(
            "voxbridge: the assistant called end_call; once its goodbye was heard, voxbridge \
             closed the media stream and hung up through Teler",
        );
        summary
    } else {
        let summary = caller.hang_up().await.context("hanging up")?;
        narrator.step("FreJun: the caller hangs up (close frame 1000)");
        summary
    };
    lifecycle.stream_completed(&stream_id).await;
    lifecycle.completed(summary.duration).await;
    for warning in lifecycle.warnings() {
        // An inbound call.initiated precedes the flow, so voxbridge does not know the call
        // yet and keeps the event aside: expected, not worth a warning.
        if !warning.contains("unknown_call") {
            narrator.step(&format!("warning: {warning}"));
        }
    }

    let call_log = wait_for_call_log(&tenant.api, &voxbridge_call_id, CALL_LOG_TIMEOUT)
        .await
        .context("reading the call log")?;
    let session = stack
        .fake_openai
        .sessions()
        .into_iter()
        .nth(sessions_before);
    // The bridge closes the agent's socket as the call ends; the record is final once the
    // fake has seen that.
    stack
        .fake_elevenlabs
        .wait_until(CALL_LOG_TIMEOUT, |sessions| {
            sessions
                .get(agent_sessions_before)
                .is_none_or(fake_elevenlabs::SessionRecord::is_closed)
        })
        .await;
    let agent_session = stack
        .fake_elevenlabs
        .sessions()
        .into_iter()
        .nth(agent_sessions_before);
    Ok(PlayedCall {
        label: plan.label(),
        frejun_call_id,
        voxbridge_call_id,
        opened_at,
        marks,
        sent,
        summary,
        session,
        agent_session,
        call_log,
    })
}

/// The caller's side of the conversation: FreJun streams audio all the time (silence
/// included), so every wait below is spent sending silence in real time.
struct Conversation {
    caller: SimulatedCaller,
    sent: Vec<i16>,
    marks: Vec<(Instant, String)>,
    chunk_ms: u32,
}

impl Conversation {
    fn new(caller: SimulatedCaller) -> Self {
        let chunk_ms = caller.config().chunk_ms;
        Conversation {
            caller,
            sent: Vec::new(),
            marks: Vec::new(),
            chunk_ms,
        }
    }

    /// The greeting (talked over when `barge_in`), the caller's turn, the answer. `words` is
    /// what the caller's turn stands for, when not the recording's own text.
    async fn run(&mut self, barge_in: bool, words: Option<&str>) -> anyhow::Result<()> {
        let caller_voice = Voice::caller()?;
        self.hear_greeting(barge_in).await?;
        let words = words.unwrap_or(caller_voice.text);
        let spoke_at = self.say(words, &caller_voice.samples_8k).await?;
        // The answer: audio that arrives after the caller spoke, played to its end.
        self.silence_until(ANSWER_TIMEOUT, |caller| {
            audio_since(caller, spoke_at) && playback_over(caller, TRAILING_SILENCE_MS)
        })
        .await
    }

    /// Waits for the greeting to start, then for `BARGE_IN_AFTER_MS` when the caller will talk
    /// over it, else until it has played to its end at the caller's ear.
    async fn hear_greeting(&mut self, barge_in: bool) -> anyhow::Result<()> {
        self.silence_until(FIRST_AUDIO_TIMEOUT, |caller| {
            caller.received().audio_chunks > 0
        })
        .await?;
        if barge_in {
            self.silence_for(BARGE_IN_AFTER_MS).await
        } else {
            self.silence_until(FIRST_AUDIO_TIMEOUT * 2, |caller| {
                playback_over(caller, TRAILING_SILENCE_MS)
            })
            .await
        }
    }

    /// The caller says `words` (the recording `samples` stands for them); returns when they
    /// stopped.
    async fn say(&mut self, words: &str, samples: &[i16]) -> anyhow::Result<Instant> {
        self.mark(format!("caller speaks: \"{words}\""));
        self.send(samples).await?;
        self.mark("caller stops speaking".into());
        Ok(Instant::now())
    }

    /// The greeting played out, the caller asks `question`, and once the answer starts
    /// arriving talks over it with `interjection` (the start of the recording). The voice AI,
    /// not the caller, decides that it was interrupted and says so; then the answer to the
    /// interjection, which arrives after FreJun's `clear`, is heard to its end.
    async fn talk_over_answer(&mut self, question: &str, interjection: &str) -> anyhow::Result<()> {
        let caller_voice = Voice::caller()?;
        self.hear_greeting(false).await?;
        let asked_at = self.say(question, &caller_voice.samples_8k).await?;
        self.silence_until(ANSWER_TIMEOUT, |caller| audio_since(caller, asked_at))
            .await?;
        self.silence_for(TALK_OVER_AFTER_MS).await?;
        let words = &caller_voice.samples_8k;
        self.say(interjection, &words[..words.len().min(TALK_OVER_MS * 8)])
            .await?;
        self.silence_until(ANSWER_TIMEOUT, |caller| {
            let received = caller.received();
            let cleared_at = received.events.iter().find_map(|event| match event {
                ReceivedEvent::Clear { at } => Some(*at),
                _ => None,
            });
            cleared_at.is_some_and(|cleared_at| audio_since(caller, cleared_at))
                && playback_over(caller, TRAILING_SILENCE_MS)
        })
        .await
    }

    /// The caller says goodbye and keeps the line open (sending silence) until the assistant
    /// has answered and ended the call.
    async fn say_goodbye(&mut self) -> anyhow::Result<()> {
        let caller_voice = Voice::caller()?;
        self.silence_for(TRAILING_SILENCE_MS).await?;
        self.mark(format!("caller speaks: \"{CALLER_GOODBYE}\""));
        self.send(&caller_voice.samples_8k).await?;
        self.mark("caller stops speaking".into());
        let chunk = vec![0i16; self.caller.config().chunk_samples()];
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.caller.received().closed.is_none() {
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the assistant did not end the call within {} s",
                    ANSWER_TIMEOUT.as_secs()
                ));
            }
            if self.send(&chunk).await.is_err() {
                // The stream closed between the check and the send.
                break;
            }
        }
        self.mark("voxbridge closes the media stream".into());
        Ok(())
    }

    fn mark(&mut self, what: String) {
        self.marks.push((Instant::now(), what));
    }

    async fn send(&mut self, samples: &[i16]) -> anyhow::Result<()> {
        self.caller
            .send_audio(samples, true)
            .await
            .context("sending audio")?;
        self.sent.extend_from_slice(samples);
        Ok(())
    }

    async fn silence_for(&mut self, ms: u64) -> anyhow::Result<()> {
        let chunk = vec![0i16; self.caller.config().chunk_samples()];
        let chunks = ms.div_ceil(u64::from(self.chunk_ms));
        for _ in 0..chunks {
            self.send(&chunk).await?;
        }
        Ok(())
    }

    /// Sends silence chunk by chunk until `done` holds or `timeout` passes (then an error).
    async fn silence_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&SimulatedCaller) -> bool,
    ) -> anyhow::Result<()> {
        let chunk = vec![0i16; self.caller.config().chunk_samples()];
        let deadline = Instant::now() + timeout;
        while !done(&self.caller) {
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "nothing more was heard from the assistant within {} s",
                    timeout.as_secs()
                ));
            }
            self.send(&chunk).await?;
        }
        Ok(())
    }
}

/// Whether assistant audio arrived after `since`.
fn audio_since(caller: &SimulatedCaller, since: Instant) -> bool {
    caller
        .received()
        .events
        .iter()
        .any(|event| matches!(event, ReceivedEvent::Audio { at, .. } if *at > since))
}

/// Whether everything received has played out at the caller (plus `margin_ms`), with FreJun's
/// queue model: chunks play back to back from their arrival, and `clear` empties the queue.
fn playback_over(caller: &SimulatedCaller, margin_ms: u64) -> bool {
    let received = caller.received();
    match playback_end(&received.events) {
        Some(end) => Instant::now() > end + Duration::from_millis(margin_ms),
        None => false,
    }
}

/// When the caller's playback queue runs dry, given what arrived.
pub(crate) fn playback_end(events: &[ReceivedEvent]) -> Option<Instant> {
    let mut end: Option<Instant> = None;
    for event in events {
        match event {
            ReceivedEvent::Audio { samples, at, .. } => {
                let start = end.map_or(*at, |end| end.max(*at));
                end = Some(start + Duration::from_micros(samples * 125));
            }
            ReceivedEvent::Clear { at } => end = end.map(|end| end.min(*at)),
            _ => {}
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_queues_chunks_back_to_back_and_clear_empties_it() {
        let t0 = Instant::now();
        let audio = |ms: u64, samples: u64| ReceivedEvent::Audio {
            chunk_id: None,
            samples,
            at: t0 + Duration::from_millis(ms),
        };
        // Two 100 ms chunks arriving together play one after the other.
        let events = vec![audio(0, 800), audio(0, 800)];
        assert_eq!(playback_end(&events), Some(t0 + Duration::from_millis(200)));
        // A chunk after a gap starts when it arrives.
        let events = vec![audio(0, 800), audio(500, 800)];
        assert_eq!(playback_end(&events), Some(t0 + Duration::from_millis(600)));
        // A clear at 50 ms cuts the queue there.
        let events = vec![
            audio(0, 800),
            audio(0, 800),
            ReceivedEvent::Clear {
                at: t0 + Duration::from_millis(50),
            },
        ];
        assert_eq!(playback_end(&events), Some(t0 + Duration::from_millis(50)));
        assert_eq!(playback_end(&[]), None);
    }
}
