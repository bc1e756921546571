//! One conversation's state machine: initiation and overrides, caller audio (echo or turns),
//! replies and their pacing, the scripted barge-in, client tool calls and pings. It never
//! touches the socket: the connection task feeds it frames and timer ticks
//! ([`Conversation::handle_text`], [`Conversation::on_tick`]), writes what it queued in its
//! outbox and ends the socket as [`Conversation::take_ending`] says.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::agent::{self, AgentConfig, CUSTOM_LLM_EXTRA_BODY, STARTING_WORKFLOW_NODE};
use super::audio::{self, EchoConverter};
use super::behaviour::{Behaviour, Failure, InterruptionScript, Mode, Speech};
use super::events;
use super::record::{SessionRecord, ToolCallRecord, ToolResultRecord};
use super::turns::TurnDetector;
use super::validate::{self, ClientMessage, Initiation};
use super::{Shared, lock};

/// How the fake ends the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// A close frame with this code and reason.
    Close(u16, String),
    /// Drop the connection without a close frame.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Upgraded; waiting for `conversation_initiation_client_data`.
    AwaitingInitiation,
    /// Metadata sent: the agent talks.
    Started,
    /// [`Failure::Silent`]: started, but the agent never sends anything.
    Silent,
}

/// How a queued caller turn came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnKind {
    /// Speech: the reply is preceded by a `user_transcript`.
    Spoken,
    /// A `user_message`: no transcript.
    Typed,
}

/// The reply being streamed.
struct Reply {
    text: String,
    audio: Vec<u8>,
    /// Bytes per audio event.
    chunk: usize,
    /// Audio events in the whole reply.
    total: usize,
    /// The next event to produce.
    next: usize,
    started: Instant,
    /// The scripted barge-in, when it applies to this reply.
    cut: Option<Cut>,
    /// Events produced but held back to arrive after the interruption: (event id, index).
    held: Vec<(u64, usize)>,
    /// The id of the last event produced.
    last_id: u64,
}

/// Where a reply is interrupted: after event `at` (a count), the last `stale` of them held.
struct Cut {
    at: usize,
    stale: usize,
    corrected: Option<String>,
}

impl Reply {
    fn bytes(&self, index: usize) -> &[u8] {
        let start = index * self.chunk;
        &self.audio[start..(start + self.chunk).min(self.audio.len())]
    }
}

/// Client tool calls in flight.
#[derive(Default)]
struct Tools {
    sent: bool,
    /// tool_call_id → (tool name, when it was sent).
    outstanding: HashMap<String, (String, Instant)>,
    answered: HashSet<String>,
    deadline: Option<Instant>,
    /// The scripted turn whose reply waits for the results.
    blocked_turn: Option<usize>,
}

/// Pings in flight.
#[derive(Default)]
struct Pings {
    next_at: Option<Instant>,
    counter: u64,
    /// event_id → when it was sent.
    outstanding: BTreeMap<u64, Instant>,
    last_rtt_ms: Option<u64>,
}

/// One conversation's state machine.
pub(super) struct Conversation {
    shared: Arc<Shared>,
    record: Arc<Mutex<SessionRecord>>,
    behaviour: Arc<Behaviour>,
    agent: Arc<AgentConfig>,
    conversation_id: String,
    phase: Phase,
    outbox: Vec<String>,
    ending: Option<Ending>,
    /// Dynamic variables plus the `system__` ones the fake sets, for placeholders.
    variables: Map<String, Value>,
    last_audio_id: u64,
    echo: EchoConverter,
    detector: TurnDetector,
    /// Scratch for decoded caller audio.
    samples: Vec<i16>,
    /// The next entry of [`Mode::Scripted`] to play.
    script_next: usize,
    pending_turns: VecDeque<TurnKind>,
    reply: Option<Reply>,
    tools: Tools,
    pings: Pings,
    /// Counts `client_tool_call`s for their ids.
    tool_counter: u32,
    /// Caller samples decoded so far (input rate), for `SessionRecord::append_timings`.
    input_samples: u64,
    /// Agent samples in audio events so far (output rate), for `SessionRecord::delta_timings`.
    output_samples: u64,
}

impl Conversation {
    pub(super) fn new(
        shared: Arc<Shared>,
        record: Arc<Mutex<SessionRecord>>,
        behaviour: Arc<Behaviour>,
        agent: Arc<AgentConfig>,
        conversation_id: String,
    ) -> Conversation {
        let mut variables = Map::new();
        variables.insert(
            "system__conversation_id".into(),
            conversation_id.clone().into(),
        );
        variables.insert("system__agent_id".into(), agent.agent_id.clone().into());
        Conversation {
            echo: EchoConverter::new(agent.input_format, agent.output_format),
            detector: TurnDetector::new(behaviour.turn_detection, agent.input_format.rate_hz()),
            shared,
            record,
            behaviour,
            agent,
            conversation_id,
            phase: Phase::AwaitingInitiation,
            outbox: Vec::new(),
            ending: None,
            variables,
            last_audio_id: 0,
            samples: Vec::new(),
            script_next: 0,
            pending_turns: VecDeque::new(),
            reply: None,
            tools: Tools::default(),
            pings: Pings::default(),
            tool_counter: 0,
            input_samples: 0,
            output_samples: 0,
        }
    }

    /// Messages to send, in order.
    pub(super) fn outbox(&mut self) -> &mut Vec<String> {
        &mut self.outbox
    }

    /// How the fake wants the socket to end, once (after the outbox is flushed).
    pub(super) fn take_ending(&mut self) -> Option<Ending> {
        self.ending.take()
    }

    /// When [`Conversation::on_tick`] must run next: the next reply event, ping or deadline.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let reply = self
            .reply
            .as_ref()
            .map(|reply| reply.started + self.due_after(reply.next));
        let pong_deadline = self
            .pings
            .outstanding
            .values()
            .min()
            .map(|sent| *sent + self.behaviour.pong_deadline);
        [
            reply,
            self.pings.next_at,
            pong_deadline,
            self.tools.deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One text frame from the client.
    pub(super) fn handle_text(&mut self, text: &str, now: Instant) {
        let parsed = validate::parse(text, self.agent.input_format);
        for problem in parsed.problems {
            self.violation(problem);
        }
        if let Some(message) = parsed.message {
            self.handle_message(message, now);
        }
        self.shared.changed();
    }

    /// One binary frame: the protocol has none.
    pub(super) fn handle_binary(&mut self, len: usize) {
        self.violation(format!(
            "a binary frame ({len} bytes) arrived; every message must be a JSON text frame"
        ));
        self.shared.changed();
    }

    /// The frame stream failed (a frame over the size limit, a protocol error).
    pub(super) fn stream_failed(&mut self, why: String, code: u16) {
        self.violation(format!("the WebSocket stream failed: {why}"));
        self.ending = Some(Ending::Close(code, "protocol error".to_owned()));
        self.shared.changed();
    }

    /// Timers: reply events, pings, pong and tool deadlines.
    pub(super) fn on_tick(&mut self, now: Instant) {
        self.check_pongs(now);
        if self.ending.is_none() {
            self.send_pings(now);
            self.check_tool_deadline(now);
            self.advance(now);
        }
        self.shared.changed();
    }

    /// Records the close the fake started.
    pub(super) fn record_close(&self, code: u16, reason: &str) {
        lock(&self.record).closed = Some((code, reason.to_owned()));
        self.shared.changed();
    }

    /// Records that the client closed (or dropped) the connection.
    pub(super) fn record_client_close(&self, code: u16, reason: &str) {
        {
            let mut record = lock(&self.record);
            record.client_closed = true;
            record.client_close = Some((code, reason.to_owned()));
        }
        self.shared.changed();
    }

    fn violation(&self, problem: String) {
        lock(&self.record).violations.push(problem);
    }

    fn send(&mut self, text: String) {
        self.outbox.push(text);
    }

    fn due_after(&self, index: usize) -> Duration {
        let audio_ms = index as u64 * u64::from(self.behaviour.chunk_ms);
        self.behaviour.pace.due_after(audio_ms)
    }

    fn handle_message(&mut self, message: ClientMessage, now: Instant) {
        if self.ending.is_some() {
            return;
        }
        if let ClientMessage::Initiation(initiation) = message {
            self.on_initiation(*initiation, now);
            return;
        }
        if self.phase == Phase::AwaitingInitiation {
            self.violation(format!(
                "{} arrived before conversation_initiation_client_data, which must be the first \
                 message; the conversation started with the agent's own configuration",
                message.kind()
            ));
            self.start(None, now);
        }
        match message {
            ClientMessage::Initiation(_) => {}
            ClientMessage::Audio(bytes) => self.on_audio(&bytes, now),
            ClientMessage::Pong { event_id } => self.on_pong(event_id, now),
            ClientMessage::ToolResult {
                tool_call_id,
                result,
                is_error,
            } => self.on_tool_result(tool_call_id, result, is_error, now),
            ClientMessage::ContextualUpdate(text) => {
                lock(&self.record).contextual_updates.push(text);
            }
            ClientMessage::UserMessage(text) => {
                lock(&self.record).user_messages.push(text);
                self.user_turn(TurnKind::Typed, now);
            }
            ClientMessage::UserActivity => lock(&self.record).user_activities += 1,
            ClientMessage::FileMessage => {}
            ClientMessage::Feedback(raw) => lock(&self.record).feedback.push(raw),
        }
    }

    fn on_initiation(&mut self, initiation: Initiation, now: Instant) {
        if self.phase != Phase::AwaitingInitiation {
            let already = lock(&self.record).initiation.is_some();
            self.violation(if already {
                "conversation_initiation_client_data arrived a second time; it is sent once"
                    .to_owned()
            } else {
                "conversation_initiation_client_data arrived after the conversation had started; \
                 it must be the first message, and was ignored"
                    .to_owned()
            });
            return;
        }
        let (applied, mut dropped) = match &initiation.config_override {
            Some(requested) => agent::apply_overrides(&self.agent, requested),
            None => (Value::Object(Map::new()), Vec::new()),
        };
        if initiation.custom_llm_extra_body && !self.agent.allows(CUSTOM_LLM_EXTRA_BODY) {
            dropped.push(CUSTOM_LLM_EXTRA_BODY.to_owned());
        }
        let first_message = agent::lookup(&applied, "agent.first_message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for (name, value) in &initiation.dynamic_variables {
            self.variables.insert(name.clone(), value.clone());
        }
        {
            let mut record = lock(&self.record);
            record.initiation = Some(initiation.raw);
            record.applied_overrides = applied;
            record.dropped_overrides = dropped;
            record.dynamic_variables = initiation.dynamic_variables;
        }
        if initiation.starting_workflow_node_id.is_some()
            && !self.agent.allows(STARTING_WORKFLOW_NODE)
        {
            self.violation(format!(
                "conversation_initiation_client_data.starting_workflow_node_id was sent but the \
                 agent does not enable {STARTING_WORKFLOW_NODE}; the conversation cannot start"
            ));
            self.ending = Some(Ending::Close(
                1008,
                "starting_workflow_node_id is not enabled for this agent".to_owned(),
            ));
            return;
        }
        if let Some(Failure::CloseAfterInitiation { code, reason }) = &self.behaviour.failure {
            self.ending = Some(Ending::Close(*code, reason.clone()));
            return;
        }
        self.start(first_message, now);
    }

    /// Sends the metadata, starts the pings and speaks the first message.
    fn start(&mut self, first_message_override: Option<String>, now: Instant) {
        if matches!(self.behaviour.failure, Some(Failure::Silent)) {
            self.phase = Phase::Silent;
            return;
        }
        self.phase = Phase::Started;
        self.send(events::metadata(
            &self.conversation_id,
            self.agent.input_format,
            self.agent.output_format,
        ));
        lock(&self.record).metadata_sent_at = Some(now);
        self.pings.next_at = self.behaviour.ping_interval.map(|interval| now + interval);
        let text = first_message_override.unwrap_or_else(|| self.agent.first_message.clone());
        let text = agent::fill_placeholders(&text, &self.variables);
        if !text.is_empty() {
            lock(&self.record).first_message = Some(text.clone());
            let speech = self.behaviour.first_message_audio.clone();
            self.start_reply(text, &speech, None, now);
        }
        self.advance(now);
    }

    fn on_audio(&mut self, bytes: &[u8], now: Instant) {
        let format = self.agent.input_format;
        self.samples.clear();
        format.decode(bytes, &mut self.samples);
        self.input_samples += self.samples.len() as u64;
        {
            let mut record = lock(&self.record);
            record.audio_in_chunks += 1;
            if self.behaviour.record_audio {
                record.audio_in.extend_from_slice(&self.samples);
            }
            if self.behaviour.record_timings {
                record.append_timings.push((self.input_samples, now));
            }
        }
        if self.phase != Phase::Started {
            return;
        }
        match &self.behaviour.mode {
            Mode::Echo => {
                let converted = self.echo.convert(bytes);
                if !converted.is_empty() {
                    let id = self.next_audio_id();
                    self.send_audio(id, &converted, now);
                }
                if !self.tools.sent {
                    self.send_tool_calls(now);
                }
            }
            Mode::Scripted(_) => {
                let turns = self.detector.push(&self.samples);
                for _ in 0..turns {
                    self.user_turn(TurnKind::Spoken, now);
                }
            }
        }
    }

    /// A caller turn ended (or was typed): queue it for an answer.
    fn user_turn(&mut self, kind: TurnKind, now: Instant) {
        lock(&self.record).user_turns += 1;
        if self.phase != Phase::Started || matches!(self.behaviour.mode, Mode::Echo) {
            return;
        }
        self.pending_turns.push_back(kind);
        self.start_pending(now);
        self.advance(now);
    }

    /// Answers the oldest queued turn when nothing else is playing or waiting.
    fn start_pending(&mut self, now: Instant) {
        if self.reply.is_some()
            || self.tools.blocked_turn.is_some()
            || self.phase != Phase::Started
            || self.ending.is_some()
        {
            return;
        }
        let Some(kind) = self.pending_turns.pop_front() else {
            return;
        };
        let Mode::Scripted(script) = &self.behaviour.mode else {
            return;
        };
        let Some(turn) = script.get(self.script_next) else {
            // The script is used up: further turns are only counted.
            self.pending_turns.clear();
            return;
        };
        let index = self.script_next;
        self.script_next += 1;
        if kind == TurnKind::Spoken {
            let transcript = turn.user_transcript.clone();
            lock(&self.record).user_transcripts.push(transcript.clone());
            self.send(events::user_transcript(&transcript));
        }
        if !self.tools.sent && !self.behaviour.tool_calls.is_empty() {
            self.send_tool_calls(now);
            self.tools.blocked_turn = Some(index);
            return;
        }
        self.reply_to_turn(index, now);
    }

    fn reply_to_turn(&mut self, index: usize, now: Instant) {
        let Mode::Scripted(script) = &self.behaviour.mode else {
            return;
        };
        let Some(turn) = script.get(index) else {
            return;
        };
        let text = agent::fill_placeholders(&turn.agent_response, &self.variables);
        let speech = turn.audio.clone();
        let cut = self
            .behaviour
            .interruption
            .as_ref()
            .filter(|script| script.turn == index)
            .map(cut_for);
        self.start_reply(text, &speech, cut, now);
    }

    /// Sends `agent_response` and starts streaming the audio (its first event is due now).
    fn start_reply(&mut self, text: String, speech: &Speech, cut: Option<Cut>, now: Instant) {
        lock(&self.record).agent_responses.push(text.clone());
        self.send(events::agent_response(&text));
        let audio = audio::render(speech, self.agent.output_format);
        let chunk = audio::chunk_bytes(self.agent.output_format, self.behaviour.chunk_ms);
        let total = audio.len().div_ceil(chunk);
        if total == 0 {
            return;
        }
        // A reply no longer than the cut point has nothing to interrupt.
        let cut = cut.filter(|cut| cut.at < total);
        self.reply = Some(Reply {
            text,
            audio,
            chunk,
            total,
            next: 0,
            started: now,
            cut,
            held: Vec::new(),
            last_id: 0,
        });
    }

    /// Produces every reply event due by `now`, then moves on to queued turns.
    fn advance(&mut self, now: Instant) {
        loop {
            if self.ending.is_some() {
                return;
            }
            let Some(mut reply) = self.reply.take() else {
                self.start_pending(now);
                if self.reply.is_none() {
                    return;
                }
                continue;
            };
            if reply.next >= reply.total {
                // Finished: the next queued turn (if any) is started above.
                continue;
            }
            if reply.started + self.due_after(reply.next) > now {
                self.reply = Some(reply);
                return;
            }
            let index = reply.next;
            reply.next += 1;
            let id = self.next_audio_id();
            reply.last_id = id;
            let held = reply
                .cut
                .as_ref()
                .is_some_and(|cut| index + cut.stale >= cut.at && index < cut.at);
            if held {
                reply.held.push((id, index));
            } else {
                self.send_audio(id, reply.bytes(index), now);
            }
            if reply.cut.as_ref().is_some_and(|cut| reply.next == cut.at) {
                self.interrupt(reply, now);
                continue;
            }
            self.reply = Some(reply);
        }
    }

    /// The scripted barge-in: `interruption`, the stale events, the correction; the barge-in
    /// is the caller's next turn.
    fn interrupt(&mut self, reply: Reply, now: Instant) {
        let Some(cut) = &reply.cut else {
            return;
        };
        let event_id = reply.last_id;
        self.send(events::interruption(event_id));
        for (id, index) in &reply.held {
            self.send_audio(*id, reply.bytes(*index), now);
        }
        let corrected = cut
            .corrected
            .clone()
            .unwrap_or_else(|| truncate_words(&reply.text, cut.at, reply.total));
        self.send(events::correction(&reply.text, &corrected));
        {
            let mut record = lock(&self.record);
            record.interruption_sent = Some(event_id);
            record.correction = Some((reply.text.clone(), corrected));
            record.user_turns += 1;
        }
        self.pending_turns.push_front(TurnKind::Spoken);
    }

    fn next_audio_id(&mut self) -> u64 {
        self.last_audio_id += 1;
        self.last_audio_id
    }

    /// Queues one `audio` event (produced at `now`) and applies the audio-count failures.
    fn send_audio(&mut self, event_id: u64, bytes: &[u8], now: Instant) {
        if self.ending.is_some() {
            return;
        }
        self.send(events::audio(event_id, bytes));
        self.output_samples += (bytes.len() / self.agent.output_format.bytes_per_sample()) as u64;
        let sent = {
            let mut record = lock(&self.record);
            record.audio_events_sent += 1;
            record.last_audio_event_id = record.last_audio_event_id.max(event_id);
            if self.behaviour.record_timings {
                record.delta_timings.push((self.output_samples, now));
            }
            record.audio_events_sent
        };
        match &self.behaviour.failure {
            Some(Failure::CloseMidResponse { after_audio_events })
                if sent >= *after_audio_events =>
            {
                self.ending = Some(Ending::Close(1011, "internal error".to_owned()));
            }
            Some(Failure::DropMidResponse { after_audio_events })
                if sent >= *after_audio_events =>
            {
                self.ending = Some(Ending::Drop);
            }
            _ => {}
        }
    }

    fn send_tool_calls(&mut self, now: Instant) {
        self.tools.sent = true;
        if self.behaviour.tool_calls.is_empty() {
            return;
        }
        let calls = self.behaviour.tool_calls.clone();
        for call in calls {
            self.tool_counter += 1;
            let id = format!(
                "toolu_{}_{:02}",
                self.conversation_id.trim_start_matches("conv_"),
                self.tool_counter
            );
            self.send(events::client_tool_call(
                &call.tool_name,
                &id,
                &call.parameters,
            ));
            lock(&self.record).tool_calls.push(ToolCallRecord {
                tool_call_id: id.clone(),
                tool_name: call.tool_name.clone(),
                parameters: call.parameters.clone(),
            });
            self.tools.outstanding.insert(id, (call.tool_name, now));
        }
        self.tools.deadline = Some(now + self.behaviour.tool_result_timeout);
    }

    fn on_tool_result(&mut self, id: String, result: String, is_error: bool, now: Instant) {
        let Some((tool_name, sent)) = self.tools.outstanding.remove(&id) else {
            self.violation(if self.tools.answered.contains(&id) {
                format!("client_tool_result.tool_call_id \"{id}\" was already answered")
            } else {
                format!("client_tool_result.tool_call_id \"{id}\" matches no client_tool_call")
            });
            return;
        };
        lock(&self.record).tool_results.push(ToolResultRecord {
            tool_call_id: id.clone(),
            tool_name,
            result,
            is_error,
            latency: now.saturating_duration_since(sent),
        });
        self.tools.answered.insert(id);
        if self.tools.outstanding.is_empty() {
            self.release_tools(now);
        }
    }

    fn check_tool_deadline(&mut self, now: Instant) {
        let Some(deadline) = self.tools.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        let mut late: Vec<_> = self.tools.outstanding.iter().collect();
        late.sort();
        let problems: Vec<String> = late
            .into_iter()
            .map(|(id, (name, _))| {
                format!(
                    "client_tool_call {id} ({name}) got no client_tool_result within {} ms",
                    self.behaviour.tool_result_timeout.as_millis()
                )
            })
            .collect();
        for problem in problems {
            self.violation(problem);
        }
        self.release_tools(now);
    }

    /// Every call answered or timed out: the waiting reply goes ahead.
    fn release_tools(&mut self, now: Instant) {
        self.tools.deadline = None;
        if let Some(index) = self.tools.blocked_turn.take() {
            self.reply_to_turn(index, now);
            self.advance(now);
        }
    }

    fn on_pong(&mut self, event_id: u64, now: Instant) {
        let Some(sent) = self.pings.outstanding.remove(&event_id) else {
            self.violation(format!(
                "pong.event_id {event_id} matches no outstanding ping"
            ));
            return;
        };
        let rtt = now.saturating_duration_since(sent);
        self.pings.last_rtt_ms = Some(u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX));
        lock(&self.record).pongs.push((event_id, rtt));
    }

    fn check_pongs(&mut self, now: Instant) {
        let deadline = self.behaviour.pong_deadline;
        if self
            .pings
            .outstanding
            .values()
            .any(|sent| now >= *sent + deadline)
        {
            lock(&self.record).missed_pong = true;
            self.ending = Some(Ending::Close(1008, "pong timeout".to_owned()));
        }
    }

    fn send_pings(&mut self, now: Instant) {
        let (Some(next_at), Some(interval)) = (self.pings.next_at, self.behaviour.ping_interval)
        else {
            return;
        };
        if now < next_at {
            return;
        }
        self.pings.counter += 1;
        let id = self.pings.counter;
        self.send(events::ping(id, self.pings.last_rtt_ms));
        self.pings.outstanding.insert(id, now);
        lock(&self.record).pings_sent += 1;
        // A late tick sends one ping, not a burst of catch-up pings.
        self.pings.next_at = Some((next_at + interval).max(now + interval / 2));
    }
}

fn cut_for(script: &InterruptionScript) -> Cut {
    let at = usize::try_from(script.after_audio_events.max(1)).unwrap_or(usize::MAX);
    let stale = usize::try_from(script.stale_events)
        .unwrap_or(usize::MAX)
        .min(at);
    Cut {
        at,
        stale,
        corrected: script.corrected_response.clone(),
    }
}

/// The first `heard / total` of `text`'s characters, cut back to a word boundary.
fn truncate_words(text: &str, heard: usize, total: usize) -> String {
    let chars = text.chars().count();
    let keep = chars * heard / total.max(1);
    let prefix: String = text.chars().take(keep).collect();
    if keep >= chars {
        return prefix;
    }
    // Keep whole words: the word under way when the caller barged in was not heard.
    let next_is_space = text.chars().nth(keep).is_some_and(char::is_whitespace);
    let cut = if next_is_space {
        prefix.as_str()
    } else {
        prefix
            .rfind(char::is_whitespace)
            .map_or("", |space| &prefix[..space])
    };
    cut.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_keep_whole_heard_words() {
        let text = "Our store opens at nine and closes at six.";
        assert_eq!(truncate_words(text, 1, 2), "Our store opens at");
        assert_eq!(truncate_words(text, 0, 2), "");
        assert_eq!(truncate_words(text, 2, 2), text);
        assert_eq!(truncate_words("one two", 3, 7), "one");
        assert_eq!(
            truncate_words("one two", 6, 7),
            "one",
            "a half-heard word is dropped"
        );
        assert_eq!(truncate_words("one two", 1, 7), "");
    }
}
