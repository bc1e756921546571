//! One phone call placed the way FreJun places it, against any running voxbridge: the pieces
//! `voxbridge call` is made of, public so that the demo can place its calls with them too.
//!
//! A call, as FreJun makes it: lifecycle webhooks ([`Lifecycle`]), the flow fetch, the media
//! stream opened with `start` ([`open_stream`] after
//! `frejun_requests::request_stream_flow`), audio streamed in real time ([`play_script`], with
//! audio from [`load_audio`]), the hang-up, and then what the caller heard ([`Heard`]) and
//! what voxbridge wrote in its call log ([`wait_for_call_log`], [`describe_call_log`]).
//!
//! Layout:
//! - this module: directions, ids, dialling and streaming a script.
//! - `lifecycle`: FreJun's status webhooks for one call, in FreJun's order.
//! - `audio_source`: what the caller says (a WAV file, a tone, the embedded voice).
//! - `call_log`: reading the call log back through the API, and describing it.
//! - `heard`: a summary of what the caller received.

mod audio_source;
mod call_log;
mod heard;
mod lifecycle;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::caller::{CallerError, SimulatedCaller};
use super::frejun_requests::StreamFlow;
use crate::audio::pcm;

pub use audio_source::{AudioSource, load_audio};
pub use call_log::{
    call_log_is_final, describe_call_log, find_call_by_frejun_id, wait_for_call_log,
};
pub use heard::Heard;
pub use lifecycle::{Lifecycle, WebhookReport};

/// Which way the call goes, as FreJun names it in the flow request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Someone calls the tenant's number.
    Inbound,
    /// voxbridge asked FreJun to dial out (`POST /api/frejun/initiate-call`).
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// voxbridge's call id (its call log's id): the `call_id` query value of a stream flow's
/// `ws_url`.
pub(crate) fn voxbridge_call_id(ws_url: &Url) -> Option<String> {
    ws_url
        .query_pairs()
        .find(|(name, _)| name == "call_id")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The status-webhook URL that goes with a tenant's flow URL: the same origin, path prefix and
/// `key`, with the path's last segment `webhook` instead of `flow` (the two URLs `GET /api/me`
/// shows). `None` when the flow URL does not end in `/flow`.
pub(crate) fn webhook_url_for(flow_url: &Url) -> Option<Url> {
    let prefix = flow_url.path().strip_suffix("/flow")?;
    let mut webhook = flow_url.clone();
    webhook.set_path(&format!("{prefix}/webhook"));
    webhook.set_fragment(None);
    Some(webhook)
}

/// The server's base URL behind a flow URL: its origin and any path prefix before
/// `/api/frejun/flow`. `None` when the path is not voxbridge's flow path.
pub(crate) fn server_url_for(flow_url: &Url) -> Option<Url> {
    let prefix = flow_url.path().strip_suffix("/api/frejun/flow")?;
    let mut server = flow_url.clone();
    server.set_path(&format!("{prefix}/"));
    server.set_query(None);
    server.set_fragment(None);
    Some(server)
}

/// `code: message` from one of voxbridge's error answers: the envelope
/// `{"success":false,"error":{"code","message"}}`, or the bare `error` object
/// (`FlowError::Refused` keeps only that). `None` when the text is neither.
pub(crate) fn api_error_text(body: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    let error = parsed.get("error").unwrap_or(&parsed);
    let code = error.get("code").and_then(Value::as_str)?;
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {message}")
    })
}

/// A media-stream error in words, with voxbridge's error code when it refused the upgrade.
pub(crate) fn describe_media_error(error: &CallerError) -> String {
    match error {
        CallerError::Rejected { status, body } => {
            let detail = api_error_text(body).unwrap_or_else(|| body.trim().to_owned());
            format!("voxbridge refused the media stream: HTTP {status} {detail}")
        }
        other => other.to_string(),
    }
}

/// Opens the flow's media stream and sends FreJun's `start`. A stream voxbridge closes before
/// `start` is out (the voice AI refused the call at once) is not an error here: the caller is
/// returned, and what it received says why, as when the stream closes later.
pub(crate) async fn open_stream(
    flow: &StreamFlow,
    connect_timeout: Duration,
) -> Result<SimulatedCaller, CallerError> {
    let mut caller = SimulatedCaller::connect(flow.caller.clone(), connect_timeout).await?;
    match caller.send_start().await {
        Ok(()) | Err(CallerError::Closed) => Ok(caller),
        Err(other) => Err(other),
    }
}

/// What the caller does once the stream is open. FreJun streams continuously, so every part is
/// audio on the wire: silence while the assistant greets, the speech, then silence while it
/// answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// Silence before speaking.
    pub silence_before_ms: u32,
    /// What the caller says, at the stream's inbound rate.
    pub speech: Vec<i16>,
    /// Silence after speaking, listening to the answer.
    pub listen_ms: u32,
}

/// How much of a [`Script`] was streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Played {
    /// Audio sent, silence included, in milliseconds.
    pub sent_ms: u64,
    /// voxbridge closed the stream before the script was over.
    pub closed_by_server: bool,
}

/// Streams `script` in real time at the flow's chunk size. A stream voxbridge closes part-way
/// is not an error (the caller reads why from `received().closed`); other send failures are.
pub(crate) async fn play_script(
    caller: &mut SimulatedCaller,
    script: &Script,
) -> Result<Played, CallerError> {
    let outcome = async {
        caller.send_silence(script.silence_before_ms, true).await?;
        caller.send_audio(&script.speech, true).await?;
        caller.send_silence(script.listen_ms, true).await
    }
    .await;
    let sent_ms = pcm::samples_to_ms(caller.sent_samples(), caller.config().sample_rate);
    match outcome {
        Ok(()) => Ok(Played {
            sent_ms,
            closed_by_server: false,
        }),
        Err(CallerError::Closed) => Ok(Played {
            sent_ms,
            closed_by_server: true,
        }),
        Err(other) => Err(other),
    }
}
