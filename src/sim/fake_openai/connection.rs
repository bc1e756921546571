//! One connection: the upgrade, then one task with one `select!` loop over inbound frames, a
//! single re-armed timer (paced deltas, the fake caller's speech, the session cap) and the
//! server's shutdown. The [`Session`] state machine never touches the socket: it queues event
//! texts and may ask for a close, and this loop writes them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, Failure};
use super::handshake::{self, Accepted};
use super::record::{ClosedBy, SessionRecord};
use super::session::Session;
use super::{Shared, lock};

/// Longest an upgrade may take before the fake drops the connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the fake waits for the client's close reply after closing.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// The fake's WebSocket limits. The read buffer is allocated up front for every connection, so
/// it is kept small (tungstenite's default is 128 KiB, 256 MB for 2,000 sessions); it grows for
/// larger messages. Frames and messages may be 32 MiB so that the largest legal append (15 MiB
/// decoded, 20 MiB of base64) reaches the validator instead of failing in the transport.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_frame_size(Some(32 << 20))
        .max_message_size(Some(32 << 20))
}

/// Accepts one TCP connection: runs the upgrade checks, then the session until it closes.
pub(super) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // Deltas are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let behaviour = shared.current_behaviour();
    let mut outcome = None;
    // tungstenite fixes the callback's error type (an HTTP response); it cannot be boxed.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| match handshake::check(
        request,
        behaviour.failure.as_ref(),
    ) {
        Ok(accepted) => {
            outcome = Some(Ok(accepted));
            Ok(response)
        }
        Err(rejected) => {
            let refusal = handshake::error_response(&rejected);
            outcome = Some(Err(rejected));
            Err(refusal)
        }
    };
    let upgraded = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(socket_config())),
    )
    .await;
    match (outcome, upgraded) {
        (Some(Err(rejected)), _) => shared.record_rejection(rejected),
        (Some(Ok(accepted)), Ok(Ok(ws))) => run_session(ws, accepted, behaviour, shared).await,
        _ => tracing::debug!("fake OpenAI: an upgrade failed or timed out"),
    }
}

async fn run_session(
    ws: WebSocketStream<TcpStream>,
    accepted: Accepted,
    behaviour: Arc<Behaviour>,
    shared: Arc<Shared>,
) {
    let tag = random_tag();
    let record = Arc::new(Mutex::new(SessionRecord::new(
        format!("sess_{tag}"),
        accepted.model.clone(),
        accepted.api_key.clone(),
        accepted.beta_header,
    )));
    let _live = shared.register(Arc::clone(&record));
    if matches!(behaviour.failure, Some(Failure::Stall)) && !accepted.beta_header {
        // Hold the socket without reading it, so nothing is sent and pings go unanswered.
        shared.shutdown.cancelled().await;
        {
            let mut record = lock(&record);
            record.closed = Some((1006, "stalled session dropped when the fake stopped".into()));
            record.closed_by = Some(ClosedBy::Server);
        }
        shared.changed();
        drop(ws);
        return;
    }
    let shutdown = shared.shutdown.clone();
    let mut session = Session::new(tag, accepted, behaviour, shared, record);
    session.open();
    run(session, ws, shutdown).await;
}

/// The close reason when the fake stops.
const SHUTDOWN_REASON: &str = "The server is shutting down.";

/// A random tag that makes ids unique across sessions.
fn random_tag() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect()
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Frame(Option<Result<Message, WsError>>),
    Ready,
    Timer,
}

/// Runs a session until either side closes or the fake stops.
async fn run(
    mut session: Session,
    mut ws: WebSocketStream<TcpStream>,
    shutdown: CancellationToken,
) {
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        if !session.outbox().is_empty() {
            let flushed = tokio::select! {
                biased;
                _ = &mut cancelled => None,
                result = flush(&mut ws, session.outbox()) => Some(result),
            };
            match flushed {
                None => {
                    close_from_server(&session, &mut ws, 1001, SHUTDOWN_REASON).await;
                    return;
                }
                Some(Err(error)) => {
                    session.record_close(1006, &error.to_string(), ClosedBy::Client);
                    return;
                }
                Some(Ok(())) => {}
            }
        }
        if let Some((code, reason)) = session.take_close() {
            close_from_server(&session, &mut ws, code, &reason).await;
            return;
        }
        let (ready_now, wake_at) = session.next_wake();
        match wake_at {
            Some(at) if armed != Some(at) => {
                timer.as_mut().reset(tokio::time::Instant::from_std(at));
                armed = Some(at);
            }
            Some(_) => {}
            None => armed = None,
        }
        let wake = tokio::select! {
            biased;
            _ = &mut cancelled => Wake::Shutdown,
            frame = ws.next() => Wake::Frame(frame),
            _ = std::future::ready(()), if ready_now => Wake::Ready,
            _ = &mut timer, if armed.is_some() => Wake::Timer,
        };
        let now = Instant::now();
        match wake {
            Wake::Shutdown => {
                close_from_server(&session, &mut ws, 1001, SHUTDOWN_REASON).await;
                return;
            }
            Wake::Frame(None) => {
                let why = "connection closed without a close frame";
                session.record_close(1006, why, ClosedBy::Client);
                return;
            }
            Wake::Frame(Some(Err(error))) => {
                session.record_close(1006, &error.to_string(), ClosedBy::Client);
                return;
            }
            Wake::Frame(Some(Ok(message))) => match message {
                Message::Text(text) => session.handle_text(text.as_str(), now),
                Message::Binary(bytes) => session.handle_binary(bytes.len(), now),
                Message::Close(frame) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |frame| {
                        (u16::from(frame.code), frame.reason.to_string())
                    });
                    session.record_close(code, &reason, ClosedBy::Client);
                    // Reading on sends tungstenite's close reply and ends the stream.
                    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return;
                }
                // tungstenite answers pings itself while the socket is read.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            },
            Wake::Ready => session.on_tick(now),
            Wake::Timer => {
                armed = None;
                session.on_tick(now);
            }
        }
    }
}

/// Sends a close frame (or, for codes that cannot be sent, such as 1006, just drops the
/// connection) and waits briefly for the client's reply.
async fn close_from_server(
    session: &Session,
    ws: &mut WebSocketStream<TcpStream>,
    code: u16,
    reason: &str,
) {
    let reason = truncate_reason(reason);
    session.record_close(code, reason, ClosedBy::Server);
    if matches!(code, 1005 | 1006 | 1015) {
        return;
    }
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        ws.close(Some(frame)).await?;
        while let Some(message) = ws.next().await {
            message?;
        }
        Ok::<(), WsError>(())
    })
    .await;
}

/// Writes and flushes every queued event.
async fn flush(
    ws: &mut WebSocketStream<TcpStream>,
    outbox: &mut Vec<String>,
) -> Result<(), WsError> {
    for text in outbox.drain(..) {
        ws.feed(Message::text(text)).await?;
    }
    ws.flush().await
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
        assert_eq!(cut.len() % 2, 0);
    }
}
