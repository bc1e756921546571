//! One conversation's socket: the checks of the upgrade on `GET /v1/convai/conversation`, then
//! one task (on the actix worker that accepted it) with one `select!` loop over inbound
//! frames, the [`Conversation`]'s next timer and the fake's shutdown. The loop writes what the
//! conversation queued and ends the socket the way it asks, once.
//!
//! Upgrade checks, in order (the first failure answers, with ElevenLabs' `{"detail": {status,
//! message}}` envelope; the wording is the fake's): a WebSocket upgrade at all (400), an injected
//! [`Failure::RefuseUpgrade`], `agent_id` present (400) and known (404), a
//! `conversation_signature` when present valid for this agent, unused and unexpired (403), and a
//! signature for a private agent (403). Every attempt is recorded as an [`UpgradeRecord`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use tokio_util::sync::CancellationToken;

use super::behaviour::Failure;
use super::conversation::{Conversation, Ending};
use super::record::{SessionRecord, UpgradeRecord};
use super::{LiveGuard, Shared, error_response, lock, random_tag};

/// Largest frame (and message) the fake reads: the Python SDK allows 16 MiB, far above any
/// sensible audio chunk.
const MAX_FRAME_BYTES: usize = 16 << 20;

/// How long the fake waits for the client's close reply after closing.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// The close reason when the fake stops.
const SHUTDOWN_REASON: &str = "server shutting down";

/// Decides one request to the conversation path; on success the conversation runs on this
/// worker until its socket closes.
pub(super) fn upgrade(req: &HttpRequest, body: web::Payload, shared: Arc<Shared>) -> HttpResponse {
    let mut agent_id = None;
    let mut signature = None;
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "agent_id" => agent_id = Some(value.into_owned()),
            "conversation_signature" => signature = Some(value.into_owned()),
            _ => {}
        }
    }
    let mut attempt = UpgradeRecord {
        agent_id: agent_id.clone(),
        signature: signature.clone(),
        status: 101,
        refusal: None,
        conversation_id: None,
    };
    let refuse = |mut attempt: UpgradeRecord, status: u16, code: &str, message: String| {
        let response = error_response(status, code, &message);
        attempt.status = response.status().as_u16();
        attempt.refusal = Some(message);
        lock(&shared.upgrades).push(attempt);
        shared.changed();
        response
    };

    if !is_websocket_upgrade(req) {
        let message = "a WebSocket upgrade is required".to_owned();
        return refuse(attempt, 400, "invalid_request", message);
    }
    let behaviour = shared.current_behaviour();
    if let Some(Failure::RefuseUpgrade(status)) = behaviour.failure {
        let message = format!("injected failure: upgrade refused with {status}");
        return refuse(attempt, status, "injected_failure", message);
    }
    let Some(agent_id) = agent_id else {
        let message = "the agent_id query parameter is required".to_owned();
        return refuse(attempt, 400, "invalid_request", message);
    };
    let Some(agent) = lock(&shared.agents).get(&agent_id).cloned() else {
        let message = format!("Agent {agent_id} was not found");
        return refuse(attempt, 404, "agent_not_found", message);
    };
    let signed = match &signature {
        Some(signature) => {
            let ttl = *lock(&shared.signed_url_ttl);
            let redeemed =
                lock(&shared.signatures).redeem(signature, &agent_id, ttl, Instant::now());
            if let Err(why) = redeemed {
                return refuse(attempt, 403, "invalid_conversation_signature", why);
            }
            true
        }
        None => false,
    };
    if agent.private && !signed {
        let message = format!(
            "agent {agent_id} is private: connect with a signed URL (conversation_signature)"
        );
        return refuse(attempt, 403, "authorization_required", message);
    }
    let (response, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(error) => {
            let message = format!("the WebSocket handshake failed: {error}");
            return refuse(attempt, 400, "invalid_request", message);
        }
    };

    let conversation_id = format!("conv_{}", random_tag(26).to_ascii_lowercase());
    let record = Arc::new(Mutex::new(SessionRecord::new(
        conversation_id.clone(),
        agent_id,
        signed,
        agent.input_format,
        agent.output_format,
    )));
    attempt.conversation_id = Some(conversation_id.clone());
    lock(&shared.upgrades).push(attempt);
    let live = shared.register(Arc::clone(&record));
    let shutdown = shared.shutdown.clone();
    let conversation = Conversation::new(shared, record, behaviour, agent, conversation_id);
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(run(conversation, session, stream, shutdown, live));
    response
}

/// Whether the request asks for a WebSocket upgrade (RFC 6455 §4.2.1).
fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    header(header::UPGRADE).is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
        && header(header::SEC_WEBSOCKET_VERSION).as_deref() == Some("13")
        && header(header::SEC_WEBSOCKET_KEY).is_some()
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Frame(Option<Result<AggregatedMessage, ProtocolError>>),
    Tick,
}

/// Runs one conversation until either side closes or the fake stops.
async fn run(
    mut conversation: Conversation,
    mut session: actix_ws::Session,
    mut stream: AggregatedMessageStream,
    shutdown: CancellationToken,
    _live: LiveGuard<SessionRecord>,
) {
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        if !conversation.outbox().is_empty() {
            let flushed = tokio::select! {
                biased;
                _ = &mut cancelled => None,
                sent = flush(&mut session, conversation.outbox()) => Some(sent),
            };
            match flushed {
                None => {
                    close(&conversation, session, &mut stream, 1001, SHUTDOWN_REASON).await;
                    return;
                }
                Some(false) => {
                    conversation.record_client_close(1006, "the connection is gone");
                    return;
                }
                Some(true) => {}
            }
        }
        match conversation.take_ending() {
            Some(Ending::Close(code, reason)) => {
                close(&conversation, session, &mut stream, code, &reason).await;
                return;
            }
            Some(Ending::Drop) => {
                // Dropping the session and the stream ends the response, and with it the TCP
                // connection, without a close frame.
                conversation.record_close(1006, "connection dropped without a close frame");
                return;
            }
            None => {}
        }
        let wake_at = conversation.next_wake();
        let wake = tokio::select! {
            biased;
            _ = &mut cancelled => Wake::Shutdown,
            frame = stream.recv() => Wake::Frame(frame),
            _ = sleep_until_or_never(wake_at) => Wake::Tick,
        };
        let now = Instant::now();
        match wake {
            Wake::Shutdown => {
                close(&conversation, session, &mut stream, 1001, SHUTDOWN_REASON).await;
                return;
            }
            Wake::Frame(None) => {
                conversation.record_client_close(1006, "closed without a close frame");
                return;
            }
            Wake::Frame(Some(Err(error))) => {
                let code = if matches!(error, ProtocolError::Overflow) {
                    1009
                } else {
                    1002
                };
                conversation.stream_failed(error.to_string(), code);
            }
            Wake::Frame(Some(Ok(message))) => match message {
                AggregatedMessage::Text(text) => conversation.handle_text(&text, now),
                AggregatedMessage::Binary(bytes) => conversation.handle_binary(bytes.len()),
                // WebSocket-level pings (some clients' keep-alive) are not the protocol's
                // `ping` messages; actix-ws leaves answering them to us.
                AggregatedMessage::Ping(bytes) => {
                    let _ = session.pong(&bytes).await;
                }
                AggregatedMessage::Pong(_) => {}
                AggregatedMessage::Close(reason) => {
                    let (code, text) = reason.as_ref().map_or((1005, String::new()), |reason| {
                        (
                            u16::from(reason.code),
                            reason.description.clone().unwrap_or_default(),
                        )
                    });
                    conversation.record_client_close(code, &text);
                    // Echo the close, as RFC 6455 §5.5.1 asks.
                    let _ = session.close(reason).await;
                    return;
                }
            },
            Wake::Tick => conversation.on_tick(now),
        }
    }
}

/// Sends every queued message; `false` when the client is gone.
async fn flush(session: &mut actix_ws::Session, outbox: &mut Vec<String>) -> bool {
    for text in outbox.drain(..) {
        if session.text(text).await.is_err() {
            return false;
        }
    }
    true
}

/// Sends a close frame, then waits briefly for the client's reply before the connection ends.
///
/// actix-ws ends the response (and the TCP connection) once every session handle is gone, so a
/// clone is kept until the reply arrived: otherwise the client's last frames meet a reset.
async fn close(
    conversation: &Conversation,
    session: actix_ws::Session,
    stream: &mut AggregatedMessageStream,
    code: u16,
    reason: &str,
) {
    let reason = truncate_reason(reason);
    conversation.record_close(code, reason);
    let open_side = session.clone();
    let frame = CloseReason {
        code: CloseCode::from(code),
        description: Some(reason.to_owned()),
    };
    if session.close(Some(frame)).await.is_ok() {
        let reply = async {
            while let Some(Ok(message)) = stream.recv().await {
                if matches!(message, AggregatedMessage::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_DRAIN, reply).await;
    }
    drop(open_side);
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// A close reason fits in 123 bytes; cut at a character boundary.
fn truncate_reason(reason: &str) -> &str {
    crate::domain::text::prefix_within(reason, 123)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert!(long.starts_with(cut));
        assert_eq!(truncate_reason("pong timeout"), "pong timeout");
    }
}
