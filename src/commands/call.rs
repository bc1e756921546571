//! `voxbridge call`: plays FreJun against any running voxbridge (local or remote) to place one
//! call end to end, and says what happened.
//!
//! `inbound` calls a tenant's number the way FreJun does: status webhooks, the flow fetch at the
//! tenant's incoming-call URL, the media stream opened with `start`, the caller's audio
//! streamed in real time at the flow's rate and chunk size (silence included, as FreJun
//! streams), the hang-up. `outbound` asks voxbridge to place a call
//! (`POST /api/frejun/initiate-call`) and answers it: this process serves a fake Teler REST API
//! that the server dials through, then plays FreJun's part of the call.
//!
//! Afterwards it writes what the caller heard to an 8 kHz WAV file and, given the tenant's API
//! key, prints the call log (status, end reason, transcript, cost, metrics). The account goes
//! to stdout; a failure is one line on stderr and a non-zero exit.
//!
//! The steps are `sim::phone_call`'s, which the demo uses too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};
use url::Url;

use crate::sim::api_client::{ApiClient, ApiError};
use crate::sim::fake_teler::{self, FakeCall, FakeTeler};
use crate::sim::frejun_requests::{
    FlowError, FlowRequest, StreamFlow, frejun_http_client, redact_key, request_stream_flow,
};
use crate::sim::phone_call::{
    self, AudioSource, Direction, Heard, Lifecycle, Script, WebhookReport, api_error_text,
    describe_call_log, find_call_by_frejun_id, load_audio, play_script, voxbridge_call_id,
    wait_for_call_log,
};
use crate::sim::wav::write_wav;

/// The caller's number when `--from` is not given (a fictional US number).
const DEFAULT_CALLER: &str = "+15555550100";

/// voxbridge sends FreJun 8 kHz audio; the WAV of what was heard is at this rate.
const HEARD_RATE_HZ: u32 = 8_000;

/// How long `outbound` waits for the server's create-call request to reach the fake Teler
/// after voxbridge said it placed the call (it sends it before answering, so this is slack).
const CREATE_CALL_WAIT: Duration = Duration::from_secs(2);

/// Close reasons with which voxbridge ends a call normally; any other close it starts is a
/// failed call (`ai_connect_failed`, `ai_error`, `telephony_error`, `shutdown`, …).
const NORMAL_SERVER_ENDINGS: [&str; 2] = ["assistant_ended_call", "max_duration"];

/// `voxbridge call`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    #[command(subcommand)]
    pub leg: CallLeg,
}

/// Which call to place. Boxed: the options are large, and the command line is parsed once.
#[derive(Debug, clap::Subcommand)]
pub enum CallLeg {
    /// Call a tenant's number as FreJun would deliver an incoming call.
    ///
    /// Sends FreJun's status webhooks (call.initiated, call.answered, stream.initiated,
    /// stream.completed, call.completed), POSTs the flow request to the tenant's incoming-call
    /// URL, opens the returned media stream, sends `start`, streams the audio in real time and
    /// hangs up. With --api-key it then prints the call log.
    Inbound(Box<InboundArgs>),
    /// Place an outbound call through voxbridge's API and answer it as FreJun.
    ///
    /// Serves a fake Teler REST API on --teler-listen, asks voxbridge to place the call
    /// (POST /api/frejun/initiate-call), waits for voxbridge's create-call request to reach the
    /// fake, then plays FreJun: webhooks (call.initiated, call.ringing, call.answered), the
    /// flow fetch, the media stream, call.completed. The server must have been started with
    /// VOXBRIDGE__FREJUN__API_BASE_URL=http://ADDR/api/v1/; if it dials the real FreJun
    /// instead, this command stops and says so (a real phone may then be ringing).
    Outbound(Box<OutboundArgs>),
}

/// Options of `voxbridge call inbound`.
#[derive(Debug, clap::Args)]
pub struct InboundArgs {
    /// The tenant's incoming-call URL, `key` included (`frejun.incoming_call_url` of
    /// GET /api/me).
    #[arg(long, value_name = "URL")]
    pub flow_url: Url,
    /// The number dialled: one of the tenant's numbers (E.164).
    #[arg(long, value_name = "NUMBER")]
    pub to: String,
    /// The caller's number.
    #[arg(long, value_name = "NUMBER", default_value = DEFAULT_CALLER)]
    pub from: String,
    /// Where FreJun's status webhooks go [default: the flow URL with `/webhook` in place of
    /// `/flow`, same key].
    #[arg(long, value_name = "URL", conflicts_with = "no_webhooks")]
    pub webhook_url: Option<Url>,
    /// Send no status webhooks.
    #[arg(long)]
    pub no_webhooks: bool,
    /// The tenant's API key: reads the call log when the call ends, and why a refused call was
    /// refused.
    #[arg(
        long,
        value_name = "KEY",
        env = "VOXBRIDGE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// voxbridge's base URL for the API [default: the flow URL's origin and path prefix].
    #[arg(long, value_name = "URL")]
    pub server: Option<Url>,
    #[command(flatten)]
    pub media: MediaArgs,
}

/// Options of `voxbridge call outbound`.
#[derive(Debug, clap::Args)]
pub struct OutboundArgs {
    /// voxbridge's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub server: Url,
    /// The tenant's API key.
    #[arg(
        long,
        value_name = "KEY",
        env = "VOXBRIDGE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: String,
    /// The tenant's number to call from (E.164, active).
    #[arg(long, value_name = "NUMBER")]
    pub from: String,
    /// The number to call (E.164); this command answers it.
    #[arg(long, value_name = "NUMBER")]
    pub to: String,
    /// The assistant that talks [default: the one assigned to --from].
    #[arg(long, value_name = "ID")]
    pub assistant: Option<String>,
    /// Where to serve the fake Teler REST API, e.g. 127.0.0.1:7070. The server's
    /// VOXBRIDGE__FREJUN__API_BASE_URL must be http://ADDR/api/v1/.
    #[arg(long, value_name = "ADDR")]
    pub teler_listen: SocketAddr,
    #[command(flatten)]
    pub media: MediaArgs,
}

/// What the caller says and how long the call lasts; shared by both directions.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaArgs {
    /// Say this WAV file (PCM 8–32 bit, float, μ-law; any rate and channel count: converted to
    /// the flow's rate) [default: the embedded caller voice].
    #[arg(long, value_name = "PATH", conflicts_with = "tone")]
    pub wav: Option<PathBuf>,
    /// Say a sine tone of this frequency instead (Hz, below half the flow's rate).
    #[arg(long, value_name = "HZ")]
    pub tone: Option<f64>,
    /// Length of the --tone.
    #[arg(long, value_name = "MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub tone_ms: u32,
    /// Silence streamed before speaking, so a greeting can play.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub speak_after_ms: u32,
    /// Silence streamed after speaking while the assistant answers; then the caller hangs up.
    #[arg(long, value_name = "MS", default_value_t = 6_000)]
    pub listen_ms: u32,
    /// Write what was heard here, 8 kHz mono WAV [default: voxbridge-call-ID.wav, ID being
    /// FreJun's call id].
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// How long opening the media WebSocket may take.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,
    /// How long to wait after hanging up for voxbridge to finish the call log.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub call_log_timeout_ms: u64,
}

impl MediaArgs {
    fn source(&self) -> AudioSource {
        match (&self.wav, self.tone) {
            (Some(path), _) => AudioSource::Wav(path.clone()),
            (None, Some(hz)) => AudioSource::Tone {
                hz,
                ms: self.tone_ms,
            },
            (None, None) => AudioSource::CallerVoice,
        }
    }
}

/// Runs `voxbridge call`.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    match args.leg {
        CallLeg::Inbound(args) => inbound(*args).await,
        CallLeg::Outbound(args) => outbound(*args).await,
    }
}

/// The audio and options of one call, checked before anything is sent.
struct Plan {
    media: MediaArgs,
    source: AudioSource,
    /// The speech at 8 kHz: loaded up front so a bad file fails before the call is placed,
    /// and reused as is when the flow asks for 8 kHz.
    speech_8k: Vec<i16>,
}

impl Plan {
    fn new(media: MediaArgs) -> anyhow::Result<Plan> {
        let source = media.source();
        let speech_8k = load_audio(&source, HEARD_RATE_HZ)?;
        if let Some(parent) = media.out.as_deref().and_then(Path::parent)
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            bail!("--out: {} is not a directory", parent.display());
        }
        Ok(Plan {
            media,
            source,
            speech_8k,
        })
    }

    fn speech_at(&self, rate_hz: u32) -> anyhow::Result<Vec<i16>> {
        if rate_hz == HEARD_RATE_HZ {
            return Ok(self.speech_8k.clone());
        }
        Ok(load_audio(&self.source, rate_hz)?)
    }

    fn out_path(&self, frejun_call_id: &str) -> PathBuf {
        self.media
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("voxbridge-call-{frejun_call_id}.wav")))
    }
}

async fn inbound(args: InboundArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.media)?;
    let api = match (
        args.api_key,
        args.server
            .or_else(|| phone_call::server_url_for(&args.flow_url)),
    ) {
        (Some(key), Some(server)) => Some(ApiClient::new(&server, key)),
        (Some(_), None) => bail!(
            "--server is needed with --api-key: the flow URL's path is not /api/frejun/flow, so \
             the server's URL cannot be derived from it"
        ),
        (None, _) => None,
    };
    let webhook_url = match (args.no_webhooks, args.webhook_url) {
        (true, _) => None,
        (false, Some(url)) => Some(url),
        (false, None) => {
            let derived = phone_call::webhook_url_for(&args.flow_url);
            if derived.is_none() {
                println!(
                    "no status webhooks: the flow URL does not end in /flow (pass --webhook-url)"
                );
            }
            derived
        }
    };
    let frejun_call_id = fake_teler::new_call_id();
    let http = frejun_http_client();
    let mut lifecycle = Lifecycle::new(
        http.clone(),
        webhook_url.map(String::from),
        &frejun_call_id,
        &args.from,
        &args.to,
    );
    println!(
        "inbound call from {} to {}, FreJun call id {frejun_call_id}",
        args.from, args.to
    );
    println!("flow URL: {}", redact_key(args.flow_url.as_str()));
    if let Some(url) = lifecycle.redacted_url() {
        println!("status webhooks: {url}");
    }
    print_webhooks(lifecycle.before_flow(Direction::Inbound).await);

    let request = FlowRequest {
        call_id: frejun_call_id.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        direction: Direction::Inbound.as_str().to_owned(),
    };
    let flow = match request_stream_flow(&http, args.flow_url.as_str(), &request).await {
        Ok(flow) => flow,
        Err(error) => {
            let known = match (&error, &api) {
                (FlowError::HungUp, Some(api)) => {
                    Some(find_call_by_frejun_id(api, &frejun_call_id, Some(&args.to)).await)
                }
                _ => None,
            };
            return Err(flow_failed(error, &mut lifecycle, known).await);
        }
    };
    let call = Call {
        direction: Direction::Inbound,
        frejun_call_id,
        plan,
        api,
    };
    call.converse(flow, &mut lifecycle).await
}

async fn outbound(args: OutboundArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.media)?;
    let teler = FakeTeler::start_on(args.teler_listen)
        .await
        .with_context(|| format!("cannot serve the fake Teler API on {}", args.teler_listen))?;
    let teler_url = teler.base_url();
    println!("fake Teler API: {teler_url} (the server's VOXBRIDGE__FREJUN__API_BASE_URL)");
    let api = ApiClient::new(&args.server, args.api_key);
    let result = place_outbound(&teler, &api, &args.from, &args.to, args.assistant, plan).await;
    teler.stop().await;
    result
}

async fn place_outbound(
    teler: &FakeTeler,
    api: &ApiClient,
    from: &str,
    to: &str,
    assistant: Option<String>,
    plan: Plan,
) -> anyhow::Result<()> {
    let mut body = json!({ "from_number": from, "to_number": to });
    if let Some(assistant) = assistant {
        body["assistant_id"] = Value::String(assistant);
    }
    let answer = api
        .post("api/frejun/initiate-call", &body)
        .await
        .map_err(|error| initiate_failed(error, &teler.base_url()))?;
    let text = |field: &str| answer.get(field).and_then(Value::as_str).map(str::to_owned);
    let (Some(frejun_call_id), Some(our_id)) = (text("call_id"), text("voxbridge_call_id")) else {
        bail!("voxbridge's answer to initiate-call has no call_id and voxbridge_call_id: {answer}");
    };
    println!(
        "voxbridge placed the call: FreJun call id {frejun_call_id}, voxbridge call id {our_id}"
    );
    let Some(placed) = wait_for_create_call(teler, &frejun_call_id).await else {
        bail!(
            "voxbridge did not dial through this fake Teler: the server's \
             VOXBRIDGE__FREJUN__API_BASE_URL is not {}. If it points at the real FreJun, call \
             {frejun_call_id} may really be ringing {to}: end it with \
             POST /api/calls/{our_id}/hangup",
            teler.base_url()
        );
    };
    println!(
        "Teler received the create-call request; ringing {}",
        placed.to_number
    );

    let http = frejun_http_client();
    let mut lifecycle = Lifecycle::new(
        http.clone(),
        Some(placed.status_callback_url.clone()),
        &frejun_call_id,
        &placed.from_number,
        &placed.to_number,
    );
    if placed.record {
        // FreJun records the call as asked; its id comes with `call.completed`.
        lifecycle.recorded_as(teler.add_recording(&placed.id));
    }
    print_webhooks(lifecycle.before_flow(Direction::Outbound).await);
    let request = FlowRequest {
        call_id: frejun_call_id.clone(),
        from: placed.from_number.clone(),
        to: placed.to_number.clone(),
        direction: Direction::Outbound.as_str().to_owned(),
    };
    let flow = match request_stream_flow(&http, &placed.flow_url, &request).await {
        Ok(flow) => flow,
        Err(error) => {
            let known = match &error {
                FlowError::HungUp => Some(
                    api.get_data(&format!("api/calls/{}", our_id_path(&our_id)?))
                        .await
                        .map(Some),
                ),
                _ => None,
            };
            return Err(flow_failed(error, &mut lifecycle, known).await);
        }
    };
    let call = Call {
        direction: Direction::Outbound,
        frejun_call_id,
        plan,
        api: Some(api.clone()),
    };
    call.converse(flow, &mut lifecycle).await
}

/// voxbridge's call id, checked before it goes into a path.
fn our_id_path(id: &str) -> anyhow::Result<&str> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        bail!("voxbridge answered a call id that is not one: {id:?}")
    }
}

/// The call voxbridge asked the fake Teler to create, once it has arrived.
async fn wait_for_create_call(teler: &FakeTeler, frejun_call_id: &str) -> Option<FakeCall> {
    let deadline = tokio::time::Instant::now() + CREATE_CALL_WAIT;
    loop {
        let found = teler
            .calls()
            .into_iter()
            .find(|call| call.id == frejun_call_id);
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An initiate-call failure in words, with what to check.
fn initiate_failed(error: ApiError, teler_url: &Url) -> anyhow::Error {
    match &error {
        ApiError::Status { status: 401, .. } => {
            anyhow!("{error} (check --api-key: the tenant's API key)")
        }
        ApiError::Status { code, .. }
            if code.starts_with("telephony_") || code == "frejun_key_invalid" =>
        {
            anyhow!(
                "{error} (is the server's VOXBRIDGE__FREJUN__API_BASE_URL {teler_url}, this \
                 command's fake Teler?)"
            )
        }
        _ => error.into(),
    }
}

/// Why a call got no stream, as one error: for a hang-up flow also the `call.completed`
/// webhook FreJun sends, and the call log's `end_reason` when it could be read.
async fn flow_failed(
    error: FlowError,
    lifecycle: &mut Lifecycle,
    call_log: Option<Result<Option<Value>, ApiError>>,
) -> anyhow::Error {
    match error {
        FlowError::HungUp => {
            print_webhooks(lifecycle.completed(Duration::ZERO).await);
            let why = match call_log {
                None => "pass --api-key to read the reason from the call log".to_owned(),
                Some(Ok(None)) => "no call log of it was found".to_owned(),
                Some(Err(error)) => format!("cannot read the call log: {error}"),
                Some(Ok(Some(log))) => {
                    let id = log.get("id").and_then(Value::as_str).unwrap_or("-");
                    println!("call log {id}:");
                    for line in describe_call_log(&log) {
                        println!("  {line}");
                    }
                    let reason = log.get("end_reason").and_then(Value::as_str).unwrap_or("-");
                    format!("end_reason {reason}")
                }
            };
            anyhow!("voxbridge refused the call (it answered the flow with hangup): {why}")
        }
        FlowError::Refused { status, body } => {
            let detail = api_error_text(&body).unwrap_or(body);
            if status == 401 {
                anyhow!(
                    "the flow URL answered HTTP 401 {detail} (check the URL's key: use \
                     frejun.incoming_call_url from GET /api/me)"
                )
            } else {
                anyhow!("the flow URL answered HTTP {status} {detail}")
            }
        }
        other => other.into(),
    }
}

/// A call whose flow answered a stream: the part both directions share.
struct Call {
    direction: Direction,
    frejun_call_id: String,
    plan: Plan,
    /// To read the call log afterwards.
    api: Option<ApiClient>,
}

impl Call {
    async fn converse(self, flow: StreamFlow, lifecycle: &mut Lifecycle) -> anyhow::Result<()> {
        let answered_at = Instant::now();
        let config = &flow.caller;
        let our_id = voxbridge_call_id(&config.ws_url);
        println!(
            "flow: stream at {} Hz in {} ms chunks; voxbridge call id {}",
            config.sample_rate,
            config.chunk_ms,
            our_id.as_deref().unwrap_or("(none in ws_url)")
        );
        print_webhooks(lifecycle.after_flow(self.direction).await);
        let speech = self.plan.speech_at(config.sample_rate)?;
        let timeout = Duration::from_millis(self.plan.media.connect_timeout_ms);
        let mut caller = match phone_call::open_stream(&flow, timeout).await {
            Ok(caller) => caller,
            Err(error) => {
                print_webhooks(lifecycle.completed(answered_at.elapsed()).await);
                return Err(anyhow!(phone_call::describe_media_error(&error)));
            }
        };
        let stream_id = caller.config().stream_id.clone();
        println!(
            "media stream open at {}, start sent (stream id {stream_id})",
            host_of(&config.ws_url)
        );
        print_webhooks(lifecycle.stream_initiated(&stream_id).await);

        let media = &self.plan.media;
        let speech_ms = speech.len() as u64 * 1_000 / u64::from(config.sample_rate.max(1));
        println!(
            "streaming in real time: {:.1} s of silence, {} ({:.1} s), {:.1} s of silence",
            seconds(u64::from(media.speak_after_ms)),
            self.plan.source,
            seconds(speech_ms),
            seconds(u64::from(media.listen_ms)),
        );
        let script = Script {
            silence_before_ms: media.speak_after_ms,
            speech,
            listen_ms: media.listen_ms,
        };
        let played = play_script(&mut caller, &script).await;
        let summary = caller.hang_up().await?;
        let heard = Heard::from_received(&summary.received);
        match &played {
            Ok(played) if played.closed_by_server => println!(
                "sent {:.1} s of audio; voxbridge ended the call after {:.1} s",
                seconds(played.sent_ms),
                summary.duration.as_secs_f64()
            ),
            Ok(played) => println!(
                "sent {:.1} s of audio; hung up after {:.1} s",
                seconds(played.sent_ms),
                summary.duration.as_secs_f64()
            ),
            Err(error) => println!("sending failed: {error}; hung up"),
        }
        println!("heard: {heard}");
        print_webhooks(lifecycle.stream_completed(&stream_id).await);
        print_webhooks(lifecycle.completed(answered_at.elapsed()).await);

        let out = self.plan.out_path(&self.frejun_call_id);
        // WavError's message already carries its cause: no context chain, or it prints twice.
        write_wav(&out, HEARD_RATE_HZ, &summary.received.audio)
            .map_err(|error| anyhow!("cannot write {}: {error}", out.display()))?;
        println!("wrote what was heard to {} (8 kHz mono)", out.display());

        if let (Some(api), Some(our_id)) = (&self.api, &our_id) {
            let timeout = Duration::from_millis(media.call_log_timeout_ms);
            let log = wait_for_call_log(api, our_id, timeout)
                .await
                .context("cannot read the call log")?;
            if phone_call::call_log_is_final(&log) {
                println!("call log {our_id}:");
            } else {
                println!(
                    "call log {our_id} (not finished by voxbridge within {:.1} s):",
                    timeout.as_secs_f64()
                );
            }
            for line in describe_call_log(&log) {
                println!("  {line}");
            }
            if log.get("recording_id").is_some_and(|id| id.is_string()) {
                // The full URL, for a tenant to fetch with its API key (it redirects to a
                // short-lived signed URL at FreJun).
                if let Ok(url) = api.url(&format!("api/calls/{our_id}/recording")) {
                    println!("recording URL: {url}");
                }
            }
        }
        let warnings = lifecycle.warnings();
        if !warnings.is_empty() {
            println!(
                "{} webhook(s) not accepted: {}",
                warnings.len(),
                warnings.join("; ")
            );
        }
        if let Err(error) = played {
            bail!("the media stream failed while sending: {error}");
        }
        match &heard.closed {
            Some(closed)
                if closed.by_server && !NORMAL_SERVER_ENDINGS.contains(&closed.reason.as_str()) =>
            {
                bail!(
                    "voxbridge ended the call: close {} {}",
                    closed.code,
                    if closed.reason.is_empty() {
                        "(no reason)"
                    } else {
                        &closed.reason
                    }
                )
            }
            _ => Ok(()),
        }
    }
}

/// `scheme://host:port` of a URL: enough to say where the stream went, without its token.
fn host_of(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1_000.0
}

/// One indented line per webhook sent.
fn print_webhooks(reports: impl IntoIterator<Item = WebhookReport>) {
    for report in reports {
        println!("  webhook {report}");
    }
}
