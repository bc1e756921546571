//! The floor under the load generator's CPU figure: what the bridge's message pattern costs when
//! nothing is computed. A relay process, pinned like the server in a load test, accepts callers'
//! WebSockets with actix-web and actix-ws and opens one tokio-tungstenite WebSocket per call to an
//! AI peer, as `voxbridge serve` does (same read buffer, Nagle off on both), and moves messages
//! of the bridge's sizes at its rates. Per call-second: 10 caller frames in, 10 appends out, 10
//! deltas in, 2 chunks out (one per five deltas, 500 ms). It parses, decodes, resamples and
//! stores nothing, so its CPU per call-minute is the part of the server's figure that the
//! sockets, the kernel, the runtime and the two WebSocket libraries cost by themselves.
//!
//! ```text
//! taskset -c 1 cargo bench --bench socket_floor [-- --calls 300 --seconds 60 --relay-cpus 0]
//! ```
//!
//! This process is the load: the callers and the AI peer, on one thread. Calls start evenly over
//! `--ramp-secs`; the relay's CPU (`/proc`, as the load generator reads the server's) is taken
//! over the window in which every call is live, less two seconds at each end, once per message
//! size profile: `pcm24k` (appends and deltas carry 100 ms at 24 kHz, 6.5 KB of JSON) and `pcmu`
//! (100 ms of μ-law, 1.1 KB). Caller frames (100 ms of 8 kHz PCM, 2.2 KB) and chunks to the
//! caller (500 ms, 10.7 KB) are the same in both, as in the load generator.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use voxbridge::commands::loadtest::process_cpu_seconds;

#[derive(Debug, Parser)]
#[command(about = "CPU per call-minute of a relay that only moves the bridge's messages")]
struct Options {
    /// Concurrent calls.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Length of each call, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Call starts are spread evenly over this many seconds.
    #[arg(long, default_value_t = 10)]
    ramp_secs: u64,
    /// `taskset -c` CPU list for the relay (the load generator pins the server the same way).
    #[arg(long, default_value = "0")]
    relay_cpus: String,
    /// One message-size profile (default: both).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Run as the relay, towards the AI peer at this URL (the benchmark starts it itself).
    #[arg(long, hide = true)]
    relay_for: Option<String>,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Profile {
    Pcm24k,
    Pcmu,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Pcm24k => "pcm24k",
            Profile::Pcmu => "pcmu",
        }
    }

    /// Bytes of the AI's audio in 100 ms: 16-bit PCM at 24 kHz, or 8 kHz μ-law.
    fn ai_audio_bytes(self) -> usize {
        match self {
            Profile::Pcm24k => 4_800,
            Profile::Pcmu => 800,
        }
    }
}

/// FreJun's frames: 100 ms of 16-bit PCM at 8 kHz.
const CALLER_FRAME_BYTES: usize = 1_600;
/// The bridge's chunks to FreJun: 500 ms of the same.
const CHUNK_BYTES: usize = 8_000;
const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// Deltas (100 ms each) per chunk sent to the caller.
const DELTAS_PER_CHUNK: u64 = 5;
/// Left out of the measured window at each end, for connects and hang-ups in flight.
const SETTLE: Duration = Duration::from_secs(2);
/// The bridge's read buffer for the AI's socket (`providers::realtime`).
const AI_READ_BUFFER_BYTES: usize = 8 << 10;

/// The four messages, with the envelopes of the real protocols around base64 of the right
/// length (the content is never looked at).
struct Messages {
    caller_frame: String,
    append: String,
    delta: String,
    chunk: String,
}

impl Messages {
    fn new(profile: Profile) -> Messages {
        let base64 = |bytes: usize| "A".repeat(bytes.div_ceil(3) * 4);
        let ai_audio = base64(profile.ai_audio_bytes());
        Messages {
            caller_frame: format!(
                r#"{{"type":"audio","stream_id":"stream-1-0a1b2c3d","message_id":1,"data":{{"audio_b64":"{}"}}}}"#,
                base64(CALLER_FRAME_BYTES)
            ),
            append: format!(r#"{{"type":"input_audio_buffer.append","audio":"{ai_audio}"}}"#),
            delta: format!(
                r#"{{"type":"response.output_audio.delta","event_id":"event_0a1b2c3d4e5f6a7b","response_id":"resp_0a1b2c3d4e5f6a7b","item_id":"item_0a1b2c3d4e5f6a7b","output_index":0,"content_index":0,"delta":"{ai_audio}"}}"#
            ),
            chunk: format!(
                r#"{{"type":"audio","audio_b64":"{}","chunk_id":1}}"#,
                base64(CHUNK_BYTES)
            ),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if let Some(ai_url) = options.relay_for.clone() {
        let profile = options.profile.context("--relay-for needs --profile")?;
        return Ok(run_relay(ai_url, profile)?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "relay only, {} calls × {} s (ramp {} s), relay on CPUs {}",
        options.calls, options.seconds, options.ramp_secs, options.relay_cpus
    );
    println!(
        "{:<8} {:>22} {:>16} {:>13} {:>7}",
        "profile", "CPU-s per call-minute", "messages/call-s", "µs/message", "failed"
    );
    let profiles = match options.profile {
        Some(profile) => vec![profile],
        None => vec![Profile::Pcm24k, Profile::Pcmu],
    };
    for profile in profiles {
        let floor = runtime.block_on(measure(&options, profile))?;
        println!(
            "{:<8} {:>22.4} {:>16.1} {:>13.1} {:>7}",
            profile.name(),
            floor.cpu_s_per_call_minute,
            floor.messages_per_call_second,
            floor.cpu_s_per_call_minute / 60.0 / floor.messages_per_call_second * 1e6,
            floor.failed_calls
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The relay (a child process)
// ---------------------------------------------------------------------------------------------

struct RelayPayloads {
    ai_url: String,
    append: Utf8Bytes,
    chunk: String,
}

/// Serves `/call` on a free loopback port and prints the port, for the generator to read.
fn run_relay(ai_url: String, profile: Profile) -> std::io::Result<()> {
    let messages = Messages::new(profile);
    let payloads = web::Data::new(RelayPayloads {
        ai_url,
        append: Utf8Bytes::from(messages.append),
        chunk: messages.chunk,
    });
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(payloads.clone())
                .route("/call", web::get().to(accept_call))
        })
        .workers(1)
        .on_connect(|connection, _| {
            if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = stream.set_nodelay(true);
            }
        })
        .bind(("127.0.0.1", 0))?;
        println!("{}", server.addrs()[0].port());
        server.run().await
    })
}

async fn accept_call(
    request: HttpRequest,
    body: web::Payload,
    payloads: web::Data<RelayPayloads>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, caller) = actix_ws::handle(&request, body)?;
    actix_web::rt::spawn(relay_call(payloads.into_inner(), session, caller));
    Ok(response)
}

/// One call: every caller frame becomes an append, every fifth delta a chunk to the caller.
async fn relay_call(
    payloads: Arc<RelayPayloads>,
    mut caller: actix_ws::Session,
    mut from_caller: actix_ws::MessageStream,
) {
    let config = WebSocketConfig::default().read_buffer_size(AI_READ_BUFFER_BYTES);
    let Ok((mut ai, _)) =
        tokio_tungstenite::connect_async_with_config(payloads.ai_url.as_str(), Some(config), true)
            .await
    else {
        return;
    };
    let mut deltas = 0_u64;
    loop {
        tokio::select! {
            message = from_caller.next() => match message {
                Some(Ok(actix_ws::Message::Text(_))) => {
                    if ai.send(Message::Text(payloads.append.clone())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(actix_ws::Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            message = ai.next() => match message {
                Some(Ok(Message::Text(_))) => {
                    deltas += 1;
                    if deltas % DELTAS_PER_CHUNK == 0
                        && caller.text(payloads.chunk.clone()).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = caller.close(None).await;
    let _ = ai.close(None).await;
}

// ---------------------------------------------------------------------------------------------
// The load (this process)
// ---------------------------------------------------------------------------------------------

/// Counted by the callers and the AI peer.
#[derive(Default)]
struct Counters {
    connected_calls: AtomicU64,
    appends_at_ai: AtomicU64,
    chunks_at_callers: AtomicU64,
}

impl Counters {
    /// Messages the relay has handled: each append was a caller frame in and an append out,
    /// and came back as a delta in; then the chunks out.
    fn relayed(&self) -> u64 {
        3 * self.appends_at_ai.load(Ordering::Relaxed)
            + self.chunks_at_callers.load(Ordering::Relaxed)
    }
}

struct Floor {
    cpu_s_per_call_minute: f64,
    messages_per_call_second: f64,
    failed_calls: usize,
}

async fn measure(options: &Options, profile: Profile) -> anyhow::Result<Floor> {
    let messages = Messages::new(profile);
    let counters = Arc::new(Counters::default());
    let ai_listener = TcpListener::bind("127.0.0.1:0").await?;
    let ai_url = format!("ws://{}", ai_listener.local_addr()?);
    let ai_peer = tokio::spawn(serve_ai(
        ai_listener,
        Utf8Bytes::from(messages.delta),
        Arc::clone(&counters),
    ));

    let mut relay = tokio::process::Command::new("taskset")
        .arg("-c")
        .arg(&options.relay_cpus)
        .arg(std::env::current_exe()?)
        .args(["--relay-for", &ai_url, "--profile", profile.name()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run taskset (is util-linux installed?)")?;
    let relay_pid = relay.id().context("the relay ended at once")?;
    let stdout = relay.stdout.take().context("the relay's stdout")?;
    let port: u16 = BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .context("the relay ended before listening")?
        .trim()
        .parse()?;
    let caller_url = format!("ws://127.0.0.1:{port}/call");

    let started = Instant::now();
    let ramp = Duration::from_secs(options.ramp_secs);
    let length = Duration::from_secs(options.seconds);
    let frame = Utf8Bytes::from(messages.caller_frame);
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..options.calls {
        let start_at = started + ramp.mul_f64(index as f64 / options.calls as f64);
        calls.spawn(run_caller(
            caller_url.clone(),
            frame.clone(),
            start_at,
            length,
            Arc::clone(&counters),
        ));
    }

    // Every call is live from the last start (the ramp's end) to the first end.
    let window_start = started + ramp + SETTLE;
    let window_end = started + length - SETTLE;
    anyhow::ensure!(
        window_end > window_start + Duration::from_secs(5),
        "calls must last at least the ramp plus 9 s"
    );
    sleep_until(window_start).await;
    let cpu_before = process_cpu_seconds(relay_pid).context("the relay is gone")?;
    let relayed_before = counters.relayed();
    let connected = counters.connected_calls.load(Ordering::Relaxed);
    sleep_until(window_end).await;
    let cpu_after = process_cpu_seconds(relay_pid).context("the relay is gone")?;
    let relayed_after = counters.relayed();
    anyhow::ensure!(
        connected == options.calls as u64,
        "only {connected} of {} calls were connected in the window",
        options.calls
    );

    let mut failed_calls = 0;
    while let Some(outcome) = calls.join_next().await {
        if !matches!(outcome, Ok(Ok(()))) {
            failed_calls += 1;
        }
    }
    relay.kill().await?;
    ai_peer.abort();

    let call_seconds = options.calls as f64 * (window_end - window_start).as_secs_f64();
    Ok(Floor {
        cpu_s_per_call_minute: (cpu_after - cpu_before) / (call_seconds / 60.0),
        messages_per_call_second: (relayed_after - relayed_before) as f64 / call_seconds,
        failed_calls,
    })
}

/// One caller: a frame every 100 ms for `length`, reading the relay's chunks, then a close.
async fn run_caller(
    url: String,
    frame: Utf8Bytes,
    start_at: Instant,
    length: Duration,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    sleep_until(start_at).await;
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    counters.connected_calls.fetch_add(1, Ordering::Relaxed);
    let end = Instant::now() + length;
    let mut ticks = tokio::time::interval(FRAME_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if Instant::now() >= end {
                    break;
                }
                socket.send(Message::Text(frame.clone())).await?;
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(_))) => {
                    counters.chunks_at_callers.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => anyhow::bail!("the relay closed the call early"),
            },
        }
    }
    socket.close(None).await?;
    while let Some(Ok(_)) = socket.next().await {}
    Ok(())
}

/// The AI peer: every message received comes straight back as a delta.
async fn serve_ai(listener: TcpListener, delta: Utf8Bytes, counters: Arc<Counters>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let delta = delta.clone();
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if message.is_text() {
                    counters.appends_at_ai.fetch_add(1, Ordering::Relaxed);
                    if socket.send(Message::Text(delta.clone())).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}
