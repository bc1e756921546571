//! `voxbridge loadtest`: many simulated FreJun calls at once against a voxbridge whose voice AI
//! (OpenAI Realtime or, with `--backend elevenlabs`, an ElevenLabs agent) is an in-crate fake in
//! echo mode, all on loopback, with a report of what it cost and how fast audio crossed the
//! bridge.
//!
//! A run: start the fake (every caller chunk comes straight back: as a delta from the fake
//! OpenAI's `EchoStream`, as an audio event from the fake ElevenLabs' `Echo`), start
//! `voxbridge serve` pointed at it (or use `--server-url`), provision one tenant with an
//! assistant and a number per call, then start the calls evenly over the ramp-up; each streams a
//! tone in real time for the duration and hangs up. Meanwhile the server's and the generator's
//! `/proc` figures are sampled and a progress line is printed, and the server's own `GET
//! /metrics` is scraped before the calls, once mid-run and after them (a started server gets a
//! random `metrics.token`; an external one is scraped with `--metrics-token`, else not).
//! Afterwards both ends' per-chunk timings are matched into latencies (calls joined to the
//! fake's sessions by their instructions), the server's metrics are compared with the
//! generator's own figures, and everything goes into one report (a table, or JSON with
//! `--json`). The method is written up in docs/benchmarks.md ("Load generator").
//!
//! Exit code: 0 when every call was ok, 3 when the run completed but some calls failed (the
//! report says why), 1 when the run itself could not be carried out. A disagreement of the
//! server's metrics is a violation in the report, not a failure of the run.
//!
//! Layout:
//! - this module: options, orchestration, exit code.
//! - `cli`: the command-line flags, turned into [`LoadtestOptions`].
//! - `backend`: `--backend`, and the fake that plays the voice AI.
//! - `server_process`: the server under test (started and stopped, or external).
//! - `accounts`: the tenant, assistants and numbers, made through the API.
//! - `call`: one simulated call and its outcome.
//! - `proc_stats`: `/proc` readings and the sampler.
//! - `usage`: CPU per call-minute and memory per call from the samples.
//! - `latency`: matching both ends' timings into latencies; percentiles.
//! - `pacing`: the generator's send lag and outbound stalls.
//! - `progress`: the progress line.
//! - `scrape`: `GET /metrics` and a small parser of the Prometheus text format.
//! - `metrics_check`: the server's metrics against the generator's figures.
//! - `summary`: everything above into a [`report::Report`].
//! - `report`: the report's table and JSON forms.

mod accounts;
mod backend;
mod call;
mod cli;
mod latency;
mod metrics_check;
mod pacing;
mod proc_stats;
mod progress;
pub(crate) mod report;
mod scrape;
mod server_process;
mod summary;
mod usage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::audio::tone;
use crate::domain::assistant::{AudioConfig, Codec, InboundRate};
use crate::sim::frejun_requests::{FlowRequest, frejun_http_client};
use crate::sim::provision::fictional_number;
use accounts::{AssistantAudio, CallAccount};
use backend::AiFake;
use call::{CallCounters, CallPlan};
use metrics_check::{MidRunScrape, SETTLE, ServerMetrics};
use proc_stats::{ProcReader, Process, Sampler};
use report::{ConfigReport, Report};
use scrape::{MetricsEndpoint, Scrape};
use summary::RunFacts;

pub use backend::Backend;
pub use cli::LoadtestArgs;
pub use server_process::{ExternalServer, SpawnOptions};

/// User plus system CPU seconds a process has used so far, threads included (`None` when it is
/// gone): what the load generator reads for the server, for benchmarks that start their own.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    ProcReader::new()
        .read(Process::Pid(pid))
        .map(|snapshot| snapshot.cpu_seconds)
}

/// Most calls in one run: the most concurrent calls the API allows a tenant.
pub(crate) const MAX_CALLS: usize = 10_000;

/// Longest call: under the default per-call limit of an hour, with room for the ramp-up.
pub(crate) const MAX_DURATION_SECS: u64 = 3_500;

/// File descriptors a call needs at once, roughly: the caller's socket and the fake AI's
/// (the server, a child process, has its own limit) plus HTTP connections.
const FDS_PER_CALL: u64 = 3;

/// How long after the ramp-up the mid-run scrape waits for every call to be up before it
/// scrapes anyway: a call's flow request and its connect timeout, with room.
const ALL_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadtestOptions {
    /// Simulated calls (1 to [`MAX_CALLS`]).
    pub calls: usize,
    /// Call starts are spread evenly over this many seconds.
    pub ramp_up_secs: f64,
    /// How long each call streams.
    pub duration_secs: u64,
    /// The voice AI behind the bridge (and so which fake plays it).
    pub backend: Backend,
    /// The assistants' codec; must stay `pcm24k` (the API's rule) with ElevenLabs.
    pub codec: Codec,
    /// 8000 or 16000 (`pcmu` needs 8000).
    pub inbound_rate_hz: u32,
    pub inbound_chunk_ms: u32,
    pub outbound_chunk_ms: u32,
    /// The fake OpenAI ends a response after this much echoed audio (0: never).
    pub turn_ms: u32,
    /// Print JSON instead of the table.
    pub json: bool,
    /// Provisioning requests in flight at once.
    pub provision_concurrency: usize,
    /// MongoDB's process, to measure its CPU too. Found automatically for a `mongod` on
    /// loopback behind a started server.
    pub mongodb_pid: Option<u32>,
    pub target: Target,
}

/// The server under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start `voxbridge serve` for the run.
    Start(SpawnOptions),
    /// Use a running server whose URL for the backend's voice AI (OpenAI Realtime, or
    /// ElevenLabs' API and conversation URLs) points at `fake_listen`.
    External {
        server: ExternalServer,
        fake_listen: SocketAddr,
    },
}

/// How the run went, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    AllCallsOk,
    SomeCallsFailed,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::AllCallsOk => 0,
            Verdict::SomeCallsFailed => 3,
        }
    }
}

/// `pcm24k` or `pcmu`, for the command line.
pub(crate) fn parse_codec(text: &str) -> Result<Codec, String> {
    match text {
        "pcm24k" => Ok(Codec::Pcm24k),
        "pcmu" => Ok(Codec::Pcmu),
        other => Err(format!("unknown codec {other:?}: use pcm24k or pcmu")),
    }
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcm24k => "pcm24k",
        Codec::Pcmu => "pcmu",
    }
}

impl LoadtestOptions {
    /// Checks the options (the audio ones by the API's own assistant rules).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CALLS).contains(&self.calls) {
            return Err(format!("--calls must be between 1 and {MAX_CALLS}"));
        }
        if !self.ramp_up_secs.is_finite() || self.ramp_up_secs < 0.0 {
            return Err("--ramp-up-secs must be a number of seconds, 0 or more".into());
        }
        if !(1..=MAX_DURATION_SECS).contains(&self.duration_secs) {
            return Err(format!(
                "--duration-secs must be between 1 and {MAX_DURATION_SECS}"
            ));
        }
        if self.provision_concurrency == 0 {
            return Err("--provision-concurrency must be at least 1".into());
        }
        if self.backend == Backend::ElevenLabs && self.codec != Codec::Pcm24k {
            return Err(format!(
                "--codec {} does not apply to --backend elevenlabs: the agent's own formats \
                 (pcm_8000 or pcm_16000 in, pcm_8000 out) carry the audio, and an ElevenLabs \
                 assistant keeps the codec pcm24k; leave --codec out",
                codec_name(self.codec)
            ));
        }
        let inbound_rate = match self.inbound_rate_hz {
            8_000 => InboundRate::Khz8,
            16_000 => InboundRate::Khz16,
            other => return Err(format!("--inbound-rate must be 8000 or 16000, not {other}")),
        };
        let audio = AudioConfig {
            codec: self.codec,
            inbound_rate,
            inbound_chunk_ms: self.inbound_chunk_ms,
            outbound_chunk_ms: self.outbound_chunk_ms,
        };
        audio.validate().map_err(|error| {
            format!(
                "{error} (--codec, --inbound-rate, --chunk-ms and --outbound-chunk-ms follow \
                 the assistant rules)"
            )
        })
    }

    fn config_report(&self, server_url: &str) -> ConfigReport {
        let (codec, turn_ms) = match self.backend {
            Backend::OpenAi => (codec_name(self.codec).to_owned(), self.turn_ms),
            Backend::ElevenLabs => {
                // What is on the wire is the agent's formats; its echo has no turns.
                let (input, output) = backend::agent_formats(self.inbound_rate_hz);
                (format!("{input}/{output}"), 0)
            }
        };
        ConfigReport {
            calls: self.calls,
            ramp_up_secs: self.ramp_up_secs,
            duration_secs: self.duration_secs,
            backend: self.backend.name().to_owned(),
            codec,
            inbound_rate_hz: self.inbound_rate_hz,
            inbound_chunk_ms: self.inbound_chunk_ms,
            outbound_chunk_ms: self.outbound_chunk_ms,
            turn_ms,
            server: match self.target {
                Target::Start(_) => "started".to_owned(),
                Target::External { .. } => "external".to_owned(),
            },
            server_url: server_url.to_owned(),
        }
    }
}

/// Runs the load test and prints its report on stdout.
pub async fn run(options: LoadtestOptions) -> anyhow::Result<Verdict> {
    options.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let run_id = new_run_id();
    let mut warnings = Vec::new();
    if let Some(limit) = proc_stats::max_open_files() {
        let needed = options.calls as u64 * FDS_PER_CALL;
        if needed > limit {
            let warning = format!(
                "{} calls need about {needed} open files but the limit is {limit}: raise it \
                 (ulimit -n) or expect connection failures",
                options.calls
            );
            eprintln!("voxbridge loadtest: warning: {warning}");
            warnings.push(warning);
        }
    }

    let listen = match &options.target {
        Target::Start(_) => None,
        Target::External { fake_listen, .. } => Some(*fake_listen),
    };
    let fake = AiFake::start(
        options.backend,
        listen,
        options.turn_ms,
        options.inbound_rate_hz,
    )
    .await?;
    let server = match &options.target {
        Target::Start(spawn) => {
            let run_dir = spawn.state_dir.join("loadtest").join(&run_id);
            eprintln!(
                "voxbridge loadtest: starting voxbridge serve{} (log in {})",
                spawn
                    .cpus
                    .as_ref()
                    .map_or_else(String::new, |cpus| format!(" on CPUs {cpus}")),
                run_dir.join("server.log").display()
            );
            // On an error the fake is dropped, which stops it.
            server_process::Server::spawn(spawn, &fake.server_env(), &run_id, &run_dir)
                .await
                .context("cannot start the server")?
        }
        Target::External { server, .. } => {
            let server = server_process::Server::external(server.clone());
            server
                .admin()
                .wait_ready(Duration::from_secs(30))
                .await
                .context("the server is not ready")?;
            server
        }
    };

    let result = drive(&options, &run_id, &fake, &server, started, warnings).await;
    if let Ok(report) = &result {
        if options.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_table());
        }
    }
    eprintln!("voxbridge loadtest: stopping");
    server.stop().await;
    fake.stop().await;
    let report = result?;
    Ok(if report.calls.failed == 0 {
        Verdict::AllCallsOk
    } else {
        Verdict::SomeCallsFailed
    })
}

/// Provisions, runs the calls while sampling, and builds the report.
async fn drive(
    options: &LoadtestOptions,
    run_id: &str,
    fake: &AiFake,
    server: &server_process::Server,
    started: Instant,
    warnings: Vec<String>,
) -> anyhow::Result<Report> {
    eprintln!(
        "voxbridge loadtest: provisioning {} assistants and numbers",
        options.calls
    );
    let provisioning_started = Instant::now();
    let audio = AssistantAudio {
        codec: codec_name(options.codec).to_owned(),
        inbound_rate_hz: options.inbound_rate_hz,
        inbound_chunk_ms: options.inbound_chunk_ms,
        outbound_chunk_ms: options.outbound_chunk_ms,
    };
    let report_every = (options.calls / 10).max(1);
    let accounts = accounts::provision(
        &server.admin(),
        run_id,
        options.calls,
        options.backend,
        &audio,
        options.provision_concurrency,
        |done| {
            if done % report_every == 0 && done < options.calls {
                eprintln!("voxbridge loadtest: provisioned {done}/{}", options.calls);
            }
        },
    )
    .await
    .context("provisioning the tenant, assistants and numbers failed")?;
    let provisioning = provisioning_started.elapsed();

    let server_cores = server
        .pid
        .and_then(|pid| proc_stats::cpus_allowed(Process::Pid(pid)));
    let generator_cores = proc_stats::cpus_allowed(Process::Current);
    let mongodb_pid = options
        .mongodb_pid
        .or_else(|| server.mongodb_uri().and_then(proc_stats::find_local_mongod));
    // The baseline of every counter the metrics check compares; taken before the resource
    // baseline so that its own cost falls outside the measured run.
    let endpoint = server
        .metrics_token
        .clone()
        .map(|token| MetricsEndpoint::new(&server.base_url, token))
        .transpose()
        .context("cannot set up the /metrics scrapes")?;
    let metrics_before = match &endpoint {
        Some(endpoint) => Some(scrape(endpoint).await),
        None => None,
    };
    let counters = Arc::new(CallCounters::default());
    let sampler = Sampler::start(
        ProcReader::new(),
        server.pid,
        mongodb_pid,
        Arc::clone(&counters.live),
    );
    let baseline = sampler.sample_now();
    eprintln!(
        "voxbridge loadtest: {} calls over {} s, {} s each",
        options.calls, options.ramp_up_secs, options.duration_secs
    );
    let progress = progress::Progress::start(options.calls, Arc::clone(&counters), sampler.view());

    let first_start = tokio::time::Instant::now();
    let calls_started = first_start.into_std();
    let mid_run = endpoint.clone().map(|endpoint| {
        tokio::spawn(mid_run_scrape(
            endpoint,
            Arc::clone(&counters),
            options.calls,
            first_start + Duration::from_secs_f64(options.ramp_up_secs),
        ))
    });
    let flow_url = accounts.tenant.flow_url.to_string();
    let http = frejun_http_client();
    let mut tones: HashMap<u64, Arc<Vec<i16>>> = HashMap::new();
    let mut tasks = JoinSet::new();
    for account in &accounts.calls {
        let plan = plan_call(options, run_id, &flow_url, account, &mut tones);
        tasks.spawn(call::run(
            plan,
            http.clone(),
            Arc::clone(&counters),
            first_start,
        ));
    }
    let mut outcomes = Vec::with_capacity(options.calls);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a simulated call task failed")?);
    }
    let calls_ended = Instant::now();
    let metrics = match (&endpoint, metrics_before, mid_run) {
        (Some(endpoint), Some(before), Some(mid_run)) => {
            let after = scrape(endpoint).await;
            let mid = mid_run.await.unwrap_or_else(|error| MidRunScrape {
                scrape: Err(format!("the mid-run scrape did not finish: {error}")),
                settle: counters.snapshot(),
                before: counters.snapshot(),
                after: counters.snapshot(),
            });
            ServerMetrics::Scraped { before, mid, after }
        }
        _ => ServerMetrics::Skipped(
            "a --server-url server without --metrics-token: its /metrics was not scraped"
                .to_owned(),
        ),
    };
    progress.finish().await;
    let samples = sampler.finish().await;
    outcomes.sort_by_key(|outcome| outcome.index);

    let sessions = fake.sessions();
    let fake_violations = fake.violations();
    let (fake_input_rate_hz, fake_output_rate_hz) =
        backend::fake_rates(options.backend, options.codec, options.inbound_rate_hz);
    Ok(summary::build(RunFacts {
        run_id,
        config: options.config_report(server.base_url.as_str()),
        fake_input_rate_hz,
        fake_output_rate_hz,
        outcomes: &outcomes,
        sessions: &sessions,
        fake_violations: &fake_violations,
        samples: &samples,
        baseline,
        calls_started,
        calls_ended,
        server_pid: server.pid,
        server_cores,
        server_log_file: server
            .log_file
            .as_ref()
            .map(|path| path.display().to_string()),
        server_database: server.database().map(str::to_owned),
        generator_cores,
        mongodb_pid,
        provisioning,
        total: started.elapsed(),
        metrics: &metrics,
        warnings,
    }))
}

/// One scrape, its error as the report's sentence.
async fn scrape(endpoint: &MetricsEndpoint) -> Result<Scrape, String> {
    endpoint.scrape().await.map_err(|error| error.to_string())
}

/// The mid-run scrape: once the ramp-up is over and every call is up (or over), [`SETTLE`]
/// later so that the server has registered the last ones. The generator's counters are read
/// around it for the tolerance.
async fn mid_run_scrape(
    endpoint: MetricsEndpoint,
    counters: Arc<CallCounters>,
    calls: usize,
    ramp_up_over: tokio::time::Instant,
) -> MidRunScrape {
    tokio::time::sleep_until(ramp_up_over).await;
    let give_up = ramp_up_over + ALL_UP_TIMEOUT;
    while !counters.all_up_or_over(calls) && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settle = counters.snapshot();
    // The full settle even when calls start ending meanwhile (a run shorter than its ramp-up,
    // or a slow machine): the tolerance counts those, but a call that connected just before
    // the snapshot would be missing from the server's gauge without it.
    tokio::time::sleep(SETTLE).await;
    let before = counters.snapshot();
    let scrape = scrape(&endpoint).await;
    let after = counters.snapshot();
    MidRunScrape {
        scrape,
        settle,
        before,
        after,
    }
}

/// Call `account.index`'s plan: its start time on the ramp, its FreJun request and its tone.
fn plan_call(
    options: &LoadtestOptions,
    run_id: &str,
    flow_url: &str,
    account: &CallAccount,
    tones: &mut HashMap<u64, Arc<Vec<i16>>>,
) -> CallPlan {
    let index = account.index;
    let on_ramp = options.ramp_up_secs * index as f64 / options.calls as f64;
    let starts_after =
        Duration::from_secs_f64(on_ramp) + chunk_phase(index, options.inbound_chunk_ms);
    let hz = call::tone_hz(index);
    let chunk_samples =
        (u64::from(options.inbound_chunk_ms) * u64::from(options.inbound_rate_hz) / 1_000) as usize;
    let chunk = tones
        .entry(hz as u64)
        .or_insert_with(|| {
            Arc::new(tone::sine(
                hz,
                options.inbound_rate_hz,
                chunk_samples,
                call::TONE_AMPLITUDE,
            ))
        })
        .clone();
    CallPlan {
        index,
        starts_after,
        streams_for: Duration::from_secs(options.duration_secs),
        flow_url: flow_url.to_owned(),
        flow: FlowRequest {
            call_id: format!("lt-{run_id}-{index}"),
            from: fictional_number(),
            to: account.number.clone(),
            direction: "inbound".to_owned(),
        },
        chunk,
    }
}

/// A shift of call `index`'s start by a fraction of a chunk, spread evenly over the chunk
/// (golden-ratio steps) for any number of calls. Real calls send their chunks at unrelated
/// moments; without it an even ramp whose step is a multiple of the chunk (10 s over 100 calls,
/// 100 ms chunks) would make every call send at the same instant, a burst no real traffic has.
fn chunk_phase(index: usize, chunk_ms: u32) -> Duration {
    const GOLDEN_FRACTION: f64 = 0.618_033_988_749_895;
    let fraction = (index as f64 * GOLDEN_FRACTION).fract();
    Duration::from_secs_f64(fraction * f64::from(chunk_ms) / 1_000.0)
}

/// `<unix seconds>_<4 hex digits>`: sortable, and unique even for runs started together.
fn new_run_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    format!("{seconds}_{:04x}", rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn options() -> LoadtestOptions {
        LoadtestOptions {
            calls: 20,
            ramp_up_secs: 1.0,
            duration_secs: 5,
            backend: Backend::OpenAi,
            codec: Codec::Pcm24k,
            inbound_rate_hz: 8_000,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
            turn_ms: 5_000,
            json: true,
            provision_concurrency: 16,
            mongodb_pid: None,
            target: Target::Start(SpawnOptions {
                cpus: None,
                mongodb_uri: None,
                keep_database: false,
                state_dir: PathBuf::from(".voxbridge"),
            }),
        }
    }

    #[test]
    fn valid_options_pass_and_bad_ones_are_named() {
        assert_eq!(options().validate(), Ok(()));
        type Change = fn(&mut LoadtestOptions);
        let cases: [(Change, &str); 6] = [
            (|o| o.calls = 0, "--calls"),
            (|o| o.calls = MAX_CALLS + 1, "--calls"),
            (|o| o.ramp_up_secs = f64::NAN, "--ramp-up-secs"),
            (|o| o.duration_secs = 0, "--duration-secs"),
            (|o| o.inbound_rate_hz = 44_100, "--inbound-rate"),
            (|o| o.inbound_chunk_ms = 30, "audio.inbound_chunk_ms"),
        ];
        for (change, named) in cases {
            let mut bad = options();
            change(&mut bad);
            let error = bad.validate().unwrap_err();
            assert!(error.contains(named), "{error}");
        }
        let mut pcmu_16k = options();
        pcmu_16k.codec = Codec::Pcmu;
        pcmu_16k.inbound_rate_hz = 16_000;
        assert!(pcmu_16k.validate().unwrap_err().contains("pcmu"));
        // ElevenLabs: the codec flag does not apply, and pcmu is refused by name.
        let mut elevenlabs = options();
        elevenlabs.backend = Backend::ElevenLabs;
        assert_eq!(elevenlabs.validate(), Ok(()));
        elevenlabs.codec = Codec::Pcmu;
        let error = elevenlabs.validate().unwrap_err();
        assert!(
            error.contains("--codec pcmu") && error.contains("--backend elevenlabs"),
            "{error}"
        );
    }

    #[test]
    fn the_report_states_the_backend_and_the_agents_formats() {
        let mut options = options();
        assert_eq!(options.config_report("http://h/").backend, "openai");
        assert_eq!(options.config_report("http://h/").codec, "pcm24k");
        options.backend = Backend::ElevenLabs;
        options.inbound_rate_hz = 16_000;
        let config = options.config_report("http://h/");
        assert_eq!(config.backend, "elevenlabs");
        assert_eq!(config.codec, "pcm_16000/pcm_8000");
        assert_eq!(config.turn_ms, 0, "the ElevenLabs echo has no turns");
    }

    #[test]
    fn calls_send_at_phases_spread_over_the_chunk() {
        let mut phases: Vec<Duration> = (0..100).map(|index| chunk_phase(index, 100)).collect();
        phases.sort();
        assert!(
            phases
                .iter()
                .all(|phase| *phase < Duration::from_millis(100))
        );
        // Every 10 ms slice of the chunk holds some calls' sends, none more than a few.
        for slice in 0..10 {
            let low = Duration::from_millis(slice * 10);
            let high = low + Duration::from_millis(10);
            let count = phases
                .iter()
                .filter(|phase| **phase >= low && **phase < high)
                .count();
            assert!((5..=15).contains(&count), "{count} calls in slice {slice}");
        }
    }

    #[test]
    fn codecs_parse_by_their_api_names() {
        assert_eq!(parse_codec("pcm24k"), Ok(Codec::Pcm24k));
        assert_eq!(parse_codec("pcmu"), Ok(Codec::Pcmu));
        assert!(parse_codec("opus").is_err());
        assert_eq!(codec_name(Codec::Pcmu), "pcmu");
    }

    #[test]
    fn calls_start_evenly_over_the_ramp_with_shared_tones() {
        let options = options();
        let mut tones = HashMap::new();
        let mut plan = |index| {
            let account = CallAccount {
                index,
                number: "+990000000001".into(),
            };
            plan_call(&options, "run", "http://h/flow", &account, &mut tones)
        };
        let first = plan(0);
        let last = plan(19);
        let again = plan(15);
        assert_eq!(first.starts_after, Duration::ZERO);
        // 950 ms along the ramp, plus less than one 100 ms chunk of phase.
        let shift = last.starts_after - Duration::from_millis(950);
        assert!(shift < Duration::from_millis(100), "{shift:?}");
        assert_eq!(last.flow.call_id, "lt-run-19");
        assert_eq!(first.chunk.len(), 800, "100 ms at 8 kHz");
        assert!(
            Arc::ptr_eq(&first.chunk, &again.chunk),
            "call 15 has call 0's tone"
        );
    }
}
