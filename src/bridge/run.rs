//! A session's event loop: FreJun's socket (actix-ws), OpenAI's socket (tokio-tungstenite),
//! the live-control mailbox and the timers, in one `select!`. Decisions are the core's; this
//! module moves bytes, keeps time and watches both peers' health.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use bson::DateTime;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message as AiMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tracing::Instrument as _;

use super::Bridge;
use super::admission::Admitted;
use super::audio_budget::BudgetLimits;
use super::backend::Connecting;
use super::call_log_keeper::{KeeperConfig, KeeperEnd, KeeperMessage, spawn_keeper};
use super::core::{
    BridgeCore, ClosingCause, CoreConfig, Effects, Ending, SessionEndConfig, ToolsConfig,
};
use super::loop_timers::LoopTimers;
use super::registry::{ControlCommand, StreamFacts, StreamStartFacts};
use super::tool_runner::{ToolContext, ToolRunner};
use crate::domain::assistant::tools::Tool;
use crate::domain::call::status::MEDIA_ENDED;
use crate::domain::call::status::MEDIA_STARTED;
use crate::domain::call::status::{ReportSource, StatusReport};
use crate::domain::call::{CallStatus, EndReason};
use crate::domain::control::{ControlOutcome, ControlRequest};
use crate::domain::credential::Credential;
use crate::outbound::http_tool::CallContext;
use crate::providers::openai::{RealtimeSocket, SessionConfig};
use crate::providers::realtime::ConnectFailure;
use crate::telemetry::call_span;
use crate::telemetry::metrics;
use crate::telemetry::record_frejun_call_id;

/// How long closing a socket may take at the end of a call.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// OpenAI's or ElevenLabs' socket, boxed: its TLS state is over a kilobyte, and a session's
/// state machine holds a copy of it at more than one await.
type AiSocket = Box<RealtimeSocket>;

impl Bridge {
    /// Runs one call from the upgrade to the final call-log write (which continues in the
    /// keeper after this returns), inside the call's span.
    ///
    /// Not an `async fn`, and the bridge and the admission boxed: an `async fn` keeps its
    /// arguments in its state machine beside the copies its body moves them into, so a wrapper
    /// around [`Self::session`] held the call's documents four times and made each live
    /// call's task 22 KiB (docs/benchmarks.md, "Memory per live call").
    pub(crate) fn run_session(
        self,
        admitted: Admitted,
        teler: actix_ws::Session,
        stream: actix_ws::MessageStream,
    ) -> impl Future<Output = ()> + 'static {
        let call = &admitted.call;
        let span = call_span(
            call.id,
            call.user_id,
            Some(admitted.assistant.id),
            call.frejun_call_id.as_deref(),
        );
        Box::new(self)
            .session(Box::new(admitted), teler, stream)
            .instrument(span)
    }

    async fn session(
        self: Box<Self>,
        admitted: Box<Admitted>,
        mut teler: actix_ws::Session,
        stream: actix_ws::MessageStream,
    ) {
        let settings = self.shared.settings.bridge.clone();
        let started = Instant::now();
        let call_id = admitted.call.id;
        let user_id = admitted.user.id;
        let spec = &admitted.assistant.spec;
        let model = if spec.model.trim().is_empty() {
            self.shared.settings.openai.default_model.clone()
        } else {
            spec.model.clone()
        };
        let tool_settings = &self.shared.settings.tools;
        let (session, mut tools) = self.prepare_tools(&admitted);
        let voice_ai = self.voice_ai(&admitted, session, model);
        let model = voice_ai.model;
        let mut core = BridgeCore::new(
            CoreConfig {
                model: model.clone(),
                inbound_rate: spec.audio.inbound_rate.hz(),
                outbound_chunk_ms: spec.audio.outbound_chunk_ms,
                playback_chunk_ms: settings.playback_chunk_ms,
                audio_message_shape: self.shared.settings.frejun.media_message_shape,
                greeting: spec.greeting.clone(),
                interrupt_response: false,
                playout_latency: Duration::from_millis(settings.playout_latency_ms),
                early_audio_max_ms: settings.early_audio_max_ms,
                inbound_budget: BudgetLimits::inbound(&settings),
                ai_budget: CoreConfig::GENERATED_AI_AUDIO,
                max_bad_frames: settings.max_bad_frames,
                fault_log_interval: settings.fault_log_interval(),
                session_end: SessionEndConfig::new(&settings, &self.shared.settings.openai),
                tools: ToolsConfig::new(
                    &spec.tools,
                    spec.tool_filler.clone(),
                    Duration::from_millis(tool_settings.filler_delay_ms),
                    tool_settings.max_concurrent_per_call,
                ),
            },
            voice_ai.protocol,
            started.into_std(),
        );

        let facts = Arc::new(StreamFacts {
            call_id,
            user_id,
            assistant_id: admitted.assistant.id,
            backend: spec.backend.kind.as_str(),
            started_at: DateTime::now(),
            stream: Mutex::new(StreamStartFacts {
                ai_codec: core.ai_audio_label(),
                ..StreamStartFacts::default()
            }),
            audio_in_ms: AtomicU64::new(0),
            audio_out_ms: AtomicU64::new(0),
        });
        let (control_tx, mut control_rx) = mpsc::channel(8);
        let Some(_registration) = self.live.register(facts.clone(), control_tx) else {
            tracing::warn!(%call_id, "a second media stream for a live call; closing it");
            let _ = teler
                .close(Some(close(CloseCode::Policy, "duplicate stream")))
                .await;
            return;
        };
        // The call's own token, a child of the process-wide shutdown one, which the keeper
        // also cancels when the call must end (see `KeeperEnd`): the loop waits on one token.
        // Its own rather than the process's: polling a registered waiter takes its token's
        // lock, and this one is the call's, not one every call's frames contend for.
        let session_end = self.shutdown.child_token();
        let keeper = spawn_keeper(
            self.shared.storage.clone(),
            KeeperConfig {
                user_id,
                call_id,
                slot_lease: settings.slot_lease(),
                max_concurrent_calls: admitted.user.limits.max_concurrent_calls,
                progress: self.progress.clone(),
                leases: self.leases.clone(),
            },
            session_end.clone(),
            &self.runtime(),
            &self.keepers,
        );
        keeper.send(KeeperMessage::Status(StatusReport::new(
            CallStatus::InProgress,
            facts.started_at,
            ReportSource::Bridge,
            MEDIA_STARTED,
        )));
        tracing::info!(%call_id, %user_id, model, "media stream started");

        let mut connecting: Option<Connecting> = Some(voice_ai.connecting);
        let mut ai: Option<AiSocket> = None;
        let mut stream = stream
            .max_frame_size(settings.max_message_bytes)
            .aggregate_continuations()
            .max_continuation_size(settings.max_message_bytes);

        // Turns and other news reach the call log at every flush; the running counters alone
        // only every `metrics_flush_interval_secs` (see `BridgeCore::take_progress`).
        let counters_interval = settings.metrics_flush_interval();
        let mut counters_written = Instant::now();
        let mut timers = LoopTimers::new(
            started,
            settings.heartbeat_interval(),
            settings.log_flush_interval(),
            admitted.max_call,
            settings.start_timeout(),
        );
        let wake = sleep_until(started);
        tokio::pin!(wake);
        // When the OpenAI session expires (the core says, once connected): the closing starts
        // `session_closing_secs` before it, and the call ends a second before it regardless.
        let closing_lead = Duration::from_secs(settings.session_closing_secs);
        let mut session_hard_end: Option<Instant> = None;
        let send_limits = SendLimits {
            timeout: settings.send_timeout(),
            call_deadline: started + admitted.max_call,
        };
        // Created once: a fresh `cancelled()` future per frame would register and unregister a
        // waiter, under its token's lock, 50 times a second per call.
        let ended = session_end.cancelled();
        tokio::pin!(ended);
        let mut start_recorded = false;
        let mut last_teler = Instant::now();
        let mut last_ai = Instant::now();
        // How FreJun closed its side, if it did: echoed back to complete the close handshake.
        let mut teler_closed: Option<Option<CloseReason>> = None;
        // Taken once per call: recording a frame through it builds no key or label (a couple of
        // atomic operations, and a new block of the recorder's bucket every 64 samples).
        let frame_latency = metrics::frame_latency();

        let ending: Ending = loop {
            let mut fx = Effects::default();
            let mut frame_at: Option<Instant> = None;
            let core_timer = core.next_timer().map(Instant::from_std);
            let wake_at = timers.next(core_timer);
            if wake.deadline() != wake_at {
                wake.as_mut().reset(wake_at);
            }
            let ending = tokio::select! {
                () = &mut ended => Some(match keeper.end() {
                    Some(KeeperEnd::TenantSuspended) => Ending::new(EndReason::TenantSuspended),
                    Some(KeeperEnd::SlotLost) => Ending::failed(
                        EndReason::ConcurrencyLimit,
                        "concurrency_slot_lost",
                        "the call lost its concurrency slot and the tenant is at its limit",
                    ),
                    None => Ending::new(EndReason::Shutdown),
                }),
                result = poll_connect(&mut connecting) => {
                    connecting = None;
                    match result {
                        Ok(socket) => {
                            last_ai = Instant::now();
                            ai = Some(Box::new(socket));
                            core.ai_connected(SystemTime::now(), &mut fx);
                            None
                        }
                        Err(err) => {
                            tracing::warn!(%call_id, code = err.code, error = %err, backend = core.backend_name(), "cannot open the voice AI session");
                            Some(core.ai_connect_failed(&err))
                        }
                    }
                }
                frame = stream.recv() => {
                    let now = Instant::now();
                    last_teler = now;
                    match frame {
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            frame_at = Some(now);
                            core.teler_text(&text, now.into_std(), &mut fx)
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => core.teler_binary(now.into_std()),
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            let _ = tokio::time::timeout(settings.send_timeout(), teler.pong(&bytes)).await;
                            None
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => None,
                        Some(Ok(AggregatedMessage::Close(reason))) => {
                            teler_closed = Some(reason);
                            Some(Ending::new(EndReason::CallerHungUp))
                        }
                        None => {
                            teler_closed = Some(None);
                            Some(Ending::new(EndReason::CallerHungUp))
                        }
                        Some(Err(err)) => Some(Ending::failed(
                            EndReason::TelephonyError,
                            "media_stream_protocol_error",
                            format!("FreJun's media stream broke the WebSocket protocol: {err}"),
                        )),
                    }
                }
                message = next_ai(&mut ai) => {
                    let now = Instant::now();
                    last_ai = now;
                    match message {
                        Some(Ok(AiMessage::Text(text))) => {
                            frame_at = Some(now);
                            core.ai_text(text.as_str(), now.into_std(), &mut fx)
                        }
                        Some(Ok(AiMessage::Ping(_))) => {
                            // tungstenite queued the pong; send it now.
                            if let Some(socket) = ai.as_mut() {
                                let _ = tokio::time::timeout(settings.send_timeout(), socket.flush()).await;
                            }
                            None
                        }
                        Some(Ok(AiMessage::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            ai = None;
                            core.ai_socket_closed(Some(code), &reason, now.into_std())
                        }
                        Some(Ok(_)) => None,
                        Some(Err(_)) | None => {
                            ai = None;
                            core.ai_socket_closed(None, "", now.into_std())
                        }
                    }
                }
                Some(ControlCommand { request, reply }) = control_rx.recv() => {
                    let now = Instant::now().into_std();
                    let (outcome, ending) = match request {
                        ControlRequest::Interrupt => (core.barge_in(now, &mut fx), None),
                        ControlRequest::AddContext { text } => (core.add_context(text, &mut fx), None),
                        ControlRequest::Clear => (core.clear_playback(&mut fx), None),
                        // An unknown chunk id is answered with nothing sent.
                        ControlRequest::InterruptChunk { chunk_id } => (
                            core.interrupt_chunk(chunk_id, &mut fx)
                                .unwrap_or_else(|_| ControlOutcome::nothing()),
                            None,
                        ),
                        // The tenant asked FreJun to hang up; the stream need not wait for it.
                        ControlRequest::HangUp => (
                            ControlOutcome { session_ended: true, ..ControlOutcome::nothing() },
                            Some(Ending::new(EndReason::HungUpByApi)),
                        ),
                    };
                    let _ = reply.send(outcome);
                    ending
                }
                // Guarded so that a call without tools never polls the runner.
                result = tools.next(), if tools.is_busy() => core.tool_finished(result, Instant::now().into_std(), &mut fx),
                () = &mut wake => {
                    let now = Instant::now();
                    let due = timers.due(now, core_timer);
                    if due.max_duration {
                        Some(Ending::new(EndReason::MaxDuration))
                    } else if due.start_missing && core.start().is_none() {
                        Some(Ending::failed(
                            EndReason::TelephonyError,
                            "media_stream_no_start",
                            format!("FreJun sent no start message within {} s", settings.start_timeout_secs),
                        ))
                    } else {
                        let mut ending = None;
                        if due.closing {
                            ending = match session_hard_end {
                                Some(hard_end) if !core.closing_started() => {
                                    timers.set_closing(hard_end);
                                    core.begin_closing(now.into_std(), ClosingCause::SessionLimit, &mut fx)
                                }
                                _ => Some(Ending::new(core.closing_reason())),
                            };
                        }
                        if ending.is_none() && due.heartbeat {
                            let timeout = settings.peer_timeout();
                            if last_teler.elapsed() > timeout {
                                ending = Some(Ending::failed(
                                    EndReason::TelephonyError,
                                    "media_stream_silent",
                                    format!("FreJun's media stream sent nothing for {} s", timeout.as_secs()),
                                ));
                            } else if ai.is_some() && last_ai.elapsed() > timeout {
                                ending = Some(core.ai_silent(timeout.as_secs()));
                            } else {
                                // Bounded like every send: a peer that stopped reading is caught
                                // by the next round of sends or by its silence, not waited for.
                                let _ = tokio::time::timeout(settings.send_timeout(), teler.ping(b"")).await;
                                if let Some(socket) = ai.as_mut() {
                                    let ping = socket.send(AiMessage::Ping(Vec::new().into()));
                                    let _ = tokio::time::timeout(settings.send_timeout(), ping).await;
                                }
                            }
                        }
                        if ending.is_none() && due.flush {
                            facts.audio_in_ms.store(core.audio_in_ms(), Ordering::Relaxed);
                            facts.audio_out_ms.store(core.audio_out_ms(), Ordering::Relaxed);
                            let counters_due = counters_written.elapsed() >= counters_interval;
                            if let Some(progress) = core.take_progress(counters_due) {
                                counters_written = Instant::now();
                                keeper.send(KeeperMessage::Progress(progress));
                            }
                            // The AI may announce its formats only once connected (ElevenLabs).
                            let label = core.ai_audio_label();
                            let mut stream_facts = facts.stream.lock().unwrap_or_else(|p| p.into_inner());
                            if stream_facts.ai_codec != label {
                                stream_facts.ai_codec = label;
                            }
                            drop(stream_facts);
                            // The drain's deadline, looked at here rather than awaited per frame
                            // (a flush interval is nothing against a drain's minutes): the call
                            // says the closing line and ends with `shutdown`, never past the AI
                            // session's end.
                            ending = if self.shared.drain.past_deadline() && !core.closing_started() {
                                let now = Instant::now();
                                let drain_end = now + self.shared.settings.cluster.drain_closing();
                                let hard_end = session_hard_end.map_or(drain_end, |end| end.min(drain_end));
                                session_hard_end = Some(hard_end);
                                timers.set_closing(hard_end);
                                core.begin_closing(now.into_std(), ClosingCause::Drain, &mut fx)
                            } else {
                                // The closing line has been heard: the call can end.
                                core.closing_done(Instant::now().into_std())
                            };
                        }
                        if ending.is_none() && due.core {
                            core.timer_fired(Instant::now().into_std(), &mut fx);
                        }
                        ending
                    }
                }
            };
            if !start_recorded {
                if let Some(start) = core.start() {
                    start_recorded = true;
                    timers.started();
                    let mut stream_facts = facts.stream.lock().unwrap_or_else(|p| p.into_inner());
                    stream_facts.frejun_call_id = start.call_id.clone();
                    if let Some(frejun_call_id) = &start.call_id {
                        record_frejun_call_id(&tracing::Span::current(), frejun_call_id);
                    }
                    stream_facts.stream_id = start.stream_id.clone();
                    stream_facts.encoding = start.encoding.clone();
                    stream_facts.sample_rate = start.sample_rate;
                }
            }
            if let Some(ending) = ending {
                break ending;
            }
            // FreJun's id is looked up only when a tool starts: this runs for every frame.
            for request in fx.tool_calls.drain(..) {
                let frejun_call_id = core
                    .start()
                    .and_then(|start| start.call_id.clone())
                    .or_else(|| admitted.call.frejun_call_id.clone());
                tools.start(request, frejun_call_id);
            }
            for call_id in fx.cancel_tools.drain(..) {
                tools.cancel(&call_id);
            }
            if let Some(ends_at) = fx.session_ends_at.take() {
                let left = ends_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                let now = Instant::now();
                let hard_end = now + left.saturating_sub(Duration::from_secs(1));
                session_hard_end = Some(hard_end);
                if !core.closing_started() {
                    timers.set_closing(now + left.saturating_sub(closing_lead));
                }
            }
            if let Some(ending) =
                send_effects(&mut core, fx, &mut teler, &mut ai, send_limits).await
            {
                break ending;
            }
            if let Some(at) = frame_at {
                let elapsed = at.elapsed();
                core.record_frame_latency(elapsed);
                metrics::record_frame(&frame_latency, elapsed);
            }
        };

        // A transfer took the caller elsewhere: however the stream then closed, that is why
        // the call left us.
        let ending = if core.transferred() && ending.reason == EndReason::CallerHungUp {
            Ending::new(EndReason::Transferred)
        } else {
            ending
        };
        drop(tools);
        core.cancel_running_tools(Instant::now().into_std());
        core.ai_finished(Instant::now().into_std());
        let reason = ending.reason;
        record_ending(&ending, &core);
        tracing::info!(%call_id, reason = reason.as_str(), error = ?ending.error, anomalies = ?core.anomalies(), "media stream ended");
        // We close first unless FreJun did: a clone keeps our side of the connection open
        // until FreJun's close frame comes back (see `await_close_reply`).
        let close_handshake = teler_closed.is_none().then(|| teler.clone());
        let close_reason = match teler_closed {
            // FreJun closed: answer its close frame, as the protocol requires.
            Some(theirs) => theirs,
            None => {
                let code = match reason {
                    EndReason::Shutdown => CloseCode::Away,
                    EndReason::TelephonyError => CloseCode::Policy,
                    _ => CloseCode::Normal,
                };
                Some(close(code, reason.as_str()))
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, teler.close(close_reason)).await;
        if let Some(mut socket) = ai.take() {
            let frame = CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "call ended".into(),
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, (*socket).close(Some(frame))).await;
        }
        let now = DateTime::now();
        let mut status = StatusReport::new(ending.status(), now, ReportSource::Bridge, MEDIA_ENDED)
            .ending(reason, ending.error);
        status.duration = Some(started.elapsed().as_secs_f64().round());
        keeper.send(KeeperMessage::Finish {
            progress: core.final_progress(),
            status,
        });
        self.hang_up_at_frejun(
            user_id,
            call_id,
            admitted.call.frejun_call_id.clone(),
            reason,
        );
        if let Some(open_side) = close_handshake {
            await_close_reply(&mut stream, open_side).await;
        }
    }
}

impl Bridge {
    /// The session configuration with the tools declared (MCP servers given their tokens),
    /// and the runner for the tools' calls, with the tenant's secrets they need.
    fn prepare_tools(&self, admitted: &Admitted) -> (SessionConfig, ToolRunner) {
        let spec = &admitted.assistant.spec;
        let user = &admitted.user;
        let names: Vec<&str> = spec.tools.iter().flat_map(Tool::secret_names).collect();
        let secrets = self.calls.named_secrets(user, names);
        let mut session = SessionConfig::for_assistant(spec, false);
        for tool in &spec.tools {
            if let Tool::Mcp(mcp) = tool {
                if let Some(token) = mcp
                    .authorization_secret
                    .as_deref()
                    .and_then(|name| secrets.get(name))
                {
                    session.authorize_mcp(&mcp.name, token.clone());
                }
            }
        }
        let needs_frejun = spec
            .tools
            .iter()
            .any(|tool| matches!(tool, Tool::TransferCall(_) | Tool::SendDtmf(_)));
        let frejun_key = needs_frejun
            .then(|| {
                self.calls
                    .decrypt_credential(user, Credential::FrejunApiKey)
                    .ok()
            })
            .flatten();
        let call = &admitted.call;
        let runner = ToolRunner::new(ToolContext {
            calls: self.calls.clone(),
            tenant_id: user.id,
            call_id: call.id,
            tools: spec
                .tools
                .iter()
                .map(|tool| (tool.name().to_owned(), tool.clone()))
                .collect(),
            secrets,
            signer: self.calls.tool_signer(user),
            frejun_key,
            call: CallContext {
                id: Some(call.id.to_string()),
                assistant_id: Some(admitted.assistant.id.to_string()),
                from: call.from_number.clone(),
                to: call.to_number.clone(),
                direction: Some(call.call_type.as_str()),
            },
            max_speech_wait: Duration::from_millis(self.shared.settings.tools.max_speech_wait_ms),
        });
        (session, runner)
    }
}

/// What a call's end adds to the metrics: its end reason, its first-response latency and
/// barge-ins, and the code of the AI or telephony failure that ended it.
fn record_ending(ending: &Ending, core: &BridgeCore) {
    metrics::call_ended(ending.reason.as_str());
    let summary = core.metrics();
    metrics::call_summary(summary.first_response_ms, u64::from(summary.barge_ins));
    if let Some(error) = &ending.error {
        match ending.reason {
            EndReason::AiConnectFailed | EndReason::AiError => metrics::ai_error(&error.code),
            EndReason::TelephonyError => metrics::teler_error(&error.code),
            _ => {}
        }
    }
}

/// Waits, briefly, for FreJun to answer our close frame before the connection is dropped.
///
/// actix-ws ends the HTTP response (and so the TCP connection) as soon as every session
/// handle is gone. Dropping it right after our close frame races the peer's last media
/// frames: they meet a closed socket, the peer's TCP stack sees a reset, and a peer whose
/// WebSocket library flushes its writes before reading loses our close frame (and with it
/// the end reason) to "broken pipe". RFC 6455 §7.1.1 has the server wait for the client's
/// close instead; frames that arrive meanwhile are discarded.
async fn await_close_reply(
    stream: &mut actix_ws::AggregatedMessageStream,
    open_side: actix_ws::Session,
) {
    let reply = async {
        while let Some(Ok(message)) = stream.recv().await {
            if matches!(message, AggregatedMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, reply).await;
    drop(open_side);
}

/// Where sent messages go on FreJun's side: the media-stream session (a trait so the deadline
/// logic can be tested with a peer that never reads).
pub(crate) trait TelerSink {
    /// Queues one text frame; `Err` when the peer is gone.
    fn send_text(&mut self, text: String) -> impl Future<Output = Result<(), ()>>;
}

impl TelerSink for actix_ws::Session {
    async fn send_text(&mut self, text: String) -> Result<(), ()> {
        self.text(text).await.map_err(|_| ())
    }
}

/// How long one round of sends may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendLimits {
    /// A peer that does not take our messages within this long is stuck: its call ends.
    pub timeout: Duration,
    /// The call's own end (its maximum duration): a blocked send never outlives it.
    pub call_deadline: Instant,
}

/// Which peer a round of sends was writing to when it ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    Teler,
    Ai,
}

/// Sends what the core decided, FreJun first (what the caller hears matters most), within
/// `limits`: a failed send means that peer is gone; one that does not finish in time means it
/// stopped reading, and its call ends rather than wait (timers included) behind it.
async fn send_effects(
    core: &mut BridgeCore,
    fx: Effects,
    teler: &mut impl TelerSink,
    ai: &mut Option<AiSocket>,
    limits: SendLimits,
) -> Option<Ending> {
    // Most turns of the loop (a ping, a flush tick, a dropped frame) send nothing: no timer.
    if fx.to_teler.is_empty() && fx.to_ai.is_empty() {
        return None;
    }
    let now = Instant::now();
    let budget = limits
        .timeout
        .min(limits.call_deadline.saturating_duration_since(now));
    let mut sending = Sending::Teler;
    let outcome = tokio::time::timeout(budget, send_all(core, fx, teler, ai, &mut sending)).await;
    match outcome {
        Ok(ending) => ending,
        Err(_) if Instant::now() >= limits.call_deadline => {
            Some(Ending::new(EndReason::MaxDuration))
        }
        Err(_) => Some(match sending {
            Sending::Teler => Ending::failed(
                EndReason::TelephonyError,
                "media_stream_blocked",
                format!(
                    "FreJun's media stream took none of our audio for {} ms",
                    limits.timeout.as_millis()
                ),
            ),
            Sending::Ai => {
                *ai = None;
                let mut ending = core.ai_closed(None, "");
                if let Some(error) = ending.error.as_mut() {
                    error.code = "openai_blocked".into();
                    error.message = format!(
                        "OpenAI took none of our events for {} ms",
                        limits.timeout.as_millis()
                    );
                }
                ending
            }
        }),
    }
}

async fn send_all(
    core: &mut BridgeCore,
    fx: Effects,
    teler: &mut impl TelerSink,
    ai: &mut Option<AiSocket>,
    sending: &mut Sending,
) -> Option<Ending> {
    *sending = Sending::Teler;
    for message in fx.to_teler {
        if teler.send_text(message).await.is_err() {
            return Some(Ending::new(EndReason::CallerHungUp));
        }
    }
    if fx.to_ai.is_empty() {
        return None;
    }
    let Some(socket) = ai.as_mut() else {
        // The core only produces OpenAI events once the socket is open.
        return None;
    };
    *sending = Sending::Ai;
    for event in fx.to_ai {
        if socket.feed(AiMessage::Text(event.into())).await.is_err() {
            *ai = None;
            return Some(core.ai_closed(None, ""));
        }
    }
    if socket.flush().await.is_err() {
        *ai = None;
        return Some(core.ai_closed(None, ""));
    }
    None
}

async fn poll_connect(
    connecting: &mut Option<Connecting>,
) -> Result<RealtimeSocket, ConnectFailure> {
    match connecting.as_mut() {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn next_ai(
    ai: &mut Option<AiSocket>,
) -> Option<Result<AiMessage, tokio_tungstenite::tungstenite::Error>> {
    match ai.as_mut() {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

fn close(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::assistant::{AssistantSpec, NewAssistant};
    use crate::providers::openai::OpenAiProtocol;

    /// A FreJun peer that never takes another frame (it stopped reading).
    struct Stuck;

    impl TelerSink for Stuck {
        async fn send_text(&mut self, _text: String) -> Result<(), ()> {
            std::future::pending().await
        }
    }

    fn core() -> BridgeCore {
        let new: NewAssistant = serde_json::from_value(serde_json::json!({"name": "T"})).unwrap();
        let spec = AssistantSpec::from_new(new, "gpt-realtime").unwrap();
        BridgeCore::new(
            CoreConfig {
                model: spec.model.clone(),
                ..CoreConfig::for_tests(ToolsConfig::none())
            },
            Box::new(OpenAiProtocol::new(SessionConfig::for_assistant(
                &spec, false,
            ))),
            std::time::Instant::now(),
        )
    }

    fn audio_for_frejun() -> Effects {
        Effects {
            to_teler: vec![r#"{"type":"audio","audio_b64":"AAAA","chunk_id":1}"#.into()],
            ..Effects::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_ends_its_call_at_the_deadline() {
        let mut core = core();
        let began = Instant::now();
        let limits = SendLimits {
            timeout: Duration::from_secs(5),
            call_deadline: began + Duration::from_secs(3_600),
        };
        let ending = send_effects(&mut core, audio_for_frejun(), &mut Stuck, &mut None, limits)
            .await
            .expect("the call ends");
        assert_eq!(ending.reason, EndReason::TelephonyError);
        assert_eq!(ending.error.unwrap().code, "media_stream_blocked");
        assert_eq!(began.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_send_does_not_outlive_the_calls_maximum_duration() {
        let mut core = core();
        let began = Instant::now();
        let limits = SendLimits {
            timeout: Duration::from_secs(5),
            call_deadline: began + Duration::from_secs(2),
        };
        let ending = send_effects(&mut core, audio_for_frejun(), &mut Stuck, &mut None, limits)
            .await
            .expect("the call ends");
        assert_eq!(ending.reason, EndReason::MaxDuration);
        assert_eq!(began.elapsed(), Duration::from_secs(2));
    }
}
