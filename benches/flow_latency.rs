//! Latency of FreJun's flow endpoint (`POST /api/frejun/flow`) at a steady request rate, with
//! the real MongoDB work behind it (key lookup, number → assistant lookups, call-log insert,
//! atomic slot update).
//!
//! ```text
//! cargo bench --bench flow_latency [-- --rate 100 --seconds 20 --live 50 --warmup 200]
//! cargo bench --bench flow_latency -- --health                        # GET /ready instead
//! cargo bench --bench flow_latency -- --health --health-path /health  # no database at all
//! cargo bench --bench flow_latency -- --history 5000 --tenants 1000    # a tenant with a past
//! cargo bench --bench flow_latency -- --profile    # where MongoDB spends its time, per query
//! cargo bench --bench flow_latency -- --webhooks   # every call's events delivered to a receiver
//! ```
//!
//! MongoDB: `MONGODB_URI` when set, else a private `mongod` (a replica set of one, see
//! `voxbridge::local_mongodb`) in a temporary directory, stopped at the end. The application is
//! built in-process exactly as the API tests build it (`Settings::for_tests`: one HTTP worker
//! unless `--workers` says otherwise, no log subscriber), on a random port, with a database of
//! its own that is dropped at the end.
//!
//! Load is open-loop: request `i` is due at `start + i / rate` and sent from its own task, so a
//! slow answer never delays the next request (the generator does not hide queueing). Latency is
//! send → full body read, on one keep-alive `reqwest` client. Every admitted call stays live
//! until `--live` newer calls have been admitted and is then ended with FreJun's
//! `call.completed` webhook, so the tenant's slot document holds about `--live` leases, as in
//! production. Webhook latencies are reported on their own line, not mixed into the flow's.
//!
//! Everything (generator, server, `mongod`) shares the machine: the figures are an upper bound
//! of what the server alone costs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bson::{Bson, doc};
use clap::Parser;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;
use voxbridge::domain::call::record::NewCall;
use voxbridge::domain::call::status::{ReportSource, StatusReport};
use voxbridge::domain::call::{CallStatus, CallType};
use voxbridge::domain::ids::{AssistantId, TenantId};
use voxbridge::local_mongodb::{self, LocalMongod};
use voxbridge::settings::{DevSettings, Settings};
use voxbridge::sim::fake_webhook_receiver::FakeWebhookReceiver;
use voxbridge::startup::{Application, STORAGE_SHUTDOWN_TIMEOUT};
use voxbridge::storage::call_logs::CallLogRecord;
use voxbridge::storage::collections::CALL_LOGS;
use voxbridge::storage::{Storage, migrations};

/// The tenant's number, which every flow request dials.
const DIALLED: &str = "+14155550100";
const CALLER: &str = "+14155550123";
/// The tenant's concurrent-call limit: high enough that the limit never refuses a call here.
const MAX_CONCURRENT_CALLS: u32 = 10_000;
/// A request slower than this is an error, not a sample.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many failures are printed in full; the rest are only counted.
const ERRORS_SHOWN: usize = 5;

#[derive(Debug, Parser)]
#[command(about = "Latency of POST /api/frejun/flow at a steady request rate")]
struct Options {
    /// Requests offered per second (open loop: independent of how fast answers come).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Length of the measured phase, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Admitted calls kept live at once; the oldest beyond this is ended by a webhook.
    #[arg(long, default_value_t = 50)]
    live: usize,
    /// Requests sent first, at the same rate, and not counted.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// Measure `GET <--health-path>` instead of flows, as a baseline.
    #[arg(long)]
    health: bool,
    /// The path `--health` measures: `/ready` pings MongoDB once, `/health` touches nothing.
    #[arg(long, default_value = "/ready", requires = "health")]
    health_path: String,
    /// Turn MongoDB's profiler on for the run and print, per collection, operation and plan,
    /// how many operations ran, their mean time and the documents they examined. The profiler
    /// costs time itself: use it to explain figures, not to produce them.
    #[arg(long)]
    profile: bool,
    /// Past calls the tenant already has, written straight to `call_logs` before the run: the
    /// flow's lookups should not depend on how many there are.
    #[arg(long, default_value_t = 0)]
    history: u64,
    /// Other tenants created first through the admin API: the key lookup should not depend
    /// on how many there are.
    #[arg(long, default_value_t = 0)]
    tenants: u64,
    /// HTTP worker threads of the application (default: as the tests run it).
    #[arg(long)]
    workers: Option<usize>,
    /// Give the tenant a webhook endpoint (a local receiver), so every call's events are
    /// delivered while the flows run; reports how fast they were delivered.
    #[arg(long)]
    webhooks: bool,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    ensure!(
        options.rate.is_finite() && options.rate > 0.0,
        "--rate must be a positive number"
    );
    ensure!(options.seconds > 0, "--seconds must be at least 1");
    ensure!(
        options.live < MAX_CONCURRENT_CALLS as usize,
        "--live must be below the tenant's limit of {MAX_CONCURRENT_CALLS} calls"
    );

    let (uri, local) = match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => (uri, None),
        _ => {
            eprintln!("MONGODB_URI is not set: starting a private mongod");
            let local = PrivateMongod::start().await?;
            (local.server.uri(), Some(local))
        }
    };
    let outcome = run(&options, &uri).await;
    if let Some(local) = local {
        local.stop().await;
    }
    outcome
}

/// A `mongod` of this run's own, with its files in a temporary directory.
struct PrivateMongod {
    server: LocalMongod,
    /// Deleted when dropped, after the server has stopped.
    _data_dir: TempDir,
}

impl PrivateMongod {
    async fn start() -> anyhow::Result<Self> {
        let cache = local_mongodb::cache_dir(&DevSettings::default().state_dir);
        let binary = local_mongodb::find_or_fetch_binary(&cache).await?;
        let data_dir = tempfile::Builder::new()
            .prefix("voxbridge-bench-")
            .tempdir()?;
        let port = local_mongodb::free_port()?;
        let server = LocalMongod::start(&binary, data_dir.path(), port)
            .await
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            server,
            _data_dir: data_dir,
        })
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Sets up a database of the run's own, measures, and drops the database whatever happened.
async fn run(options: &Options, uri: &str) -> anyhow::Result<()> {
    let database = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut settings = Settings::for_tests(uri, &database);
    if options.workers.is_some() {
        settings.server.workers = options.workers;
    }
    // One tenant's FreJun key sends every request: the per-credential limit would refuse most
    // of them, and this measures the flow, not the limiter.
    settings.rate_limit.enabled = false;
    if options.webhooks {
        // The receiver is on loopback; events go out as soon as they are written.
        settings.outbound.allow = "127.0.0.1".to_owned();
        settings.webhooks.poll_interval_ms = 50;
        settings.webhooks.ended_settle_ms = 0;
    }
    let storage = Storage::connect(
        settings
            .mongodb
            .uri
            .as_ref()
            .context("for_tests sets a URI")?,
        &settings.mongodb,
    )
    .await?;
    let outcome = serve_and_measure(options, settings, storage.clone()).await;
    if let Err(err) = storage.database().drop().await {
        eprintln!("could not drop the database {database}: {err}");
    }
    storage.shutdown(STORAGE_SHUTDOWN_TIMEOUT).await;
    outcome
}

/// What the report says about the setup.
struct Setup {
    nproc: usize,
    mongod_version: Option<String>,
    workers: usize,
}

async fn serve_and_measure(
    options: &Options,
    settings: Settings,
    storage: Storage,
) -> anyhow::Result<()> {
    migrations::run(&storage)
        .await
        .context("running the migrations")?;
    let nproc = std::thread::available_parallelism().map_or(1, usize::from);
    let setup = Setup {
        nproc,
        mongod_version: mongod_version(&storage).await,
        workers: settings.server.workers.unwrap_or(nproc),
    };
    let admin_token = settings.security.admin_token.expose().to_owned();
    let shutdown = CancellationToken::new();
    let app = Application::build(settings, storage.clone(), shutdown.clone())
        .context("building the application")?;
    let base = Url::parse(&format!("http://{}", app.address()))?;
    let server = tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let outcome = async {
        let target = if options.health {
            let mut url = base.clone();
            url.set_path(&options.health_path);
            Target::Health { url }
        } else {
            create_other_tenants(&client, &base, &admin_token, options.tenants).await?;
            let flow = set_up_tenant(&client, &base, &admin_token).await?;
            seed_history(&storage, &flow, options.history).await?;
            Target::Flow(flow)
        };
        if options.profile {
            start_profiler(&storage).await?;
        }
        let receiver = match (&target, options.webhooks) {
            (Target::Flow(flow), true) => Some(subscribe(&client, &base, &flow.api_key).await?),
            _ => None,
        };
        let before = server_time(&storage).await;
        let results = generate_load(options, &client, Arc::new(target)).await;
        let load_ended = Instant::now();
        let after = server_time(&storage).await;
        report(options, &setup, &results);
        if let Some(receiver) = receiver {
            report_webhooks(&storage, &receiver, load_ended).await?;
        }
        if let (Some(before), Some(after)) = (before, after) {
            report_server_time(&before, &after);
        }
        if options.profile {
            report_profile(&storage).await?;
        }
        anyhow::Ok(())
    }
    .await;

    shutdown.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("the server stopped with an error: {err}"),
        Err(err) => eprintln!("the server task failed: {err}"),
    }
    outcome
}

/// Registers a local receiver as the tenant's webhook endpoint for every event.
async fn subscribe(
    client: &reqwest::Client,
    base: &Url,
    api_key: &str,
) -> anyhow::Result<FakeWebhookReceiver> {
    let receiver = FakeWebhookReceiver::start().await?;
    let created = expect_json(
        client
            .post(base.join("/api/webhook-endpoints")?)
            .bearer_auth(api_key)
            .json(&json!({ "url": receiver.url("/events") })),
        StatusCode::CREATED,
    )
    .await
    .context("POST /api/webhook-endpoints")?;
    receiver
        .set_secret_text(&field(&created, "/data/signing_secret")?)
        .map_err(anyhow::Error::msg)?;
    Ok(receiver)
}

/// Waits until every event written during the run has been delivered, then reports how many
/// and how fast: over the whole run, and for the backlog left when the load stopped.
async fn report_webhooks(
    storage: &Storage,
    receiver: &FakeWebhookReceiver,
    load_ended: Instant,
) -> anyhow::Result<()> {
    let database = storage.database();
    let waiting = || async {
        let outbox = database
            .collection::<bson::Document>(CALL_LOGS)
            .count_documents(doc! { "outbox.id": { "$exists": true } })
            .await?;
        let pending = database
            .collection::<bson::Document>("webhook_deliveries")
            .count_documents(doc! { "status": "pending" })
            .await?;
        anyhow::Ok(outbox + pending)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while waiting().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.received();
    let valid = received.iter().filter(|w| w.signature_valid).count();
    let (Some(first), Some(last)) = (
        received.iter().map(|w| w.received_at).min(),
        received.iter().map(|w| w.received_at).max(),
    ) else {
        println!("webhook events: none delivered");
        return Ok(());
    };
    let span = last.duration_since(first).as_secs_f64();
    let backlog = received
        .iter()
        .filter(|w| w.received_at > load_ended)
        .count();
    let drain = last.saturating_duration_since(load_ended).as_secs_f64();
    println!(
        "webhook events: {} delivered ({} with a valid signature) over {span:.1} s, {:.0} per second; \
         backlog when the load stopped: {backlog}, drained in {drain:.1} s ({:.0} per second)",
        received.len(),
        valid,
        received.len() as f64 / span.max(0.001),
        backlog as f64 / drain.max(0.001),
    );
    Ok(())
}

/// The server's version, from `buildInfo`; `None` if it cannot be read.
async fn mongod_version(storage: &Storage) -> Option<String> {
    let info = storage
        .database()
        .client()
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .ok()?;
    info.get_str("version").ok().map(str::to_owned)
}

/// MongoDB's own account of the time it spent on operations (`serverStatus.opLatencies`,
/// cumulative since it started): tells the database's share of a request from the rest.
struct ServerTime {
    reads: OpTime,
    writes: OpTime,
    commands: OpTime,
}

#[derive(Clone, Copy)]
struct OpTime {
    micros: i64,
    ops: i64,
}

/// The counters now; `None` when they cannot be read (e.g. a user without `clusterMonitor`).
async fn server_time(storage: &Storage) -> Option<ServerTime> {
    let status = storage
        .database()
        .client()
        .database("admin")
        .run_command(doc! { "serverStatus": 1 })
        .await
        .ok()?;
    let latencies = status.get_document("opLatencies").ok()?;
    let op = |name: &str| {
        let counters = latencies.get_document(name).ok()?;
        Some(OpTime {
            micros: integer(counters.get("latency")?)?,
            ops: integer(counters.get("ops")?)?,
        })
    };
    Some(ServerTime {
        reads: op("reads")?,
        writes: op("writes")?,
        commands: op("commands")?,
    })
}

fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

/// Mean time inside `mongod` per operation over the run (warm-up included; on a shared
/// `MONGODB_URI`, other clients' operations too).
fn report_server_time(before: &ServerTime, after: &ServerTime) {
    let mean = |before: OpTime, after: OpTime| {
        let ops = after.ops - before.ops;
        let micros = after.micros - before.micros;
        if ops > 0 {
            format!("{:.2} ms × {ops}", micros as f64 / ops as f64 / 1e3)
        } else {
            "- × 0".to_owned()
        }
    };
    println!(
        "inside mongod, mean per operation (serverStatus opLatencies, warm-up included): \
         reads {}; writes {}; commands {}",
        mean(before.reads, after.reads),
        mean(before.writes, after.writes),
        mean(before.commands, after.commands),
    );
}

/// Room for a whole run's operations (the default profile collection keeps 1 MB).
const PROFILE_BYTES: i64 = 256 * 1024 * 1024;

/// Profiles every operation on the run's database from now on.
async fn start_profiler(storage: &Storage) -> anyhow::Result<()> {
    let database = storage.database();
    database
        .run_command(doc! { "create": "system.profile", "capped": true, "size": PROFILE_BYTES })
        .await
        .context("creating system.profile")?;
    database
        .run_command(doc! { "profile": 2 })
        .await
        .context("turning the profiler on")?;
    Ok(())
}

/// Per collection, operation and plan: count, mean and max milliseconds, mean documents and
/// keys examined.
async fn report_profile(storage: &Storage) -> anyhow::Result<()> {
    let database = storage.database();
    database.run_command(doc! { "profile": 0 }).await?;
    let pipeline = vec![
        doc! { "$group": {
            "_id": { "ns": "$ns", "op": "$op", "plan": "$planSummary" },
            "count": { "$sum": 1 },
            "mean_ms": { "$avg": "$millis" },
            "max_ms": { "$max": "$millis" },
            "docs": { "$avg": "$docsExamined" },
            "keys": { "$avg": "$keysExamined" },
        } },
        doc! { "$sort": { "count": -1 } },
    ];
    let mut cursor = database
        .collection::<bson::Document>("system.profile")
        .aggregate(pipeline)
        .await?;
    println!("profiler (count, mean/max ms, mean docs/keys examined, collection, op, plan):");
    while cursor.advance().await? {
        let row = cursor.deserialize_current()?;
        let id = row.get_document("_id")?;
        let text = |key: &str| id.get_str(key).unwrap_or("-").to_owned();
        let number = |key: &str| row.get(key).and_then(Bson::as_f64).unwrap_or(0.0);
        println!(
            "  {:>6} {:>6.2}/{:<4} {:>8.1}/{:<8.1} {} {} {}",
            row.get("count").and_then(integer).unwrap_or(0),
            number("mean_ms"),
            row.get("max_ms").and_then(integer).unwrap_or(0),
            number("docs"),
            number("keys"),
            text("ns"),
            text("op"),
            text("plan"),
        );
    }
    Ok(())
}

/// The tenant's FreJun URLs, pointed at the running application.
struct FlowTarget {
    flow_url: Url,
    webhook_url: Url,
    api_key: String,
    user_id: TenantId,
    assistant_id: AssistantId,
}

enum Target {
    Flow(FlowTarget),
    Health { url: Url },
}

/// Creates a tenant ready to take calls through the public API, as an operator and a tenant
/// would: tenant, provider keys, an assistant, the number assigned to it, then the FreJun URLs.
async fn set_up_tenant(
    client: &reqwest::Client,
    base: &Url,
    admin_token: &str,
) -> anyhow::Result<FlowTarget> {
    let api = |path: &str| {
        base.join(path)
            .expect("an absolute path joins the base URL")
    };
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let created = expect_json(
        client
            .post(api("/api/admin/users"))
            .bearer_auth(admin_token)
            .json(&json!({
                "name": "Flow bench",
                "email": email,
                "max_concurrent_calls": MAX_CONCURRENT_CALLS,
            })),
        StatusCode::CREATED,
    )
    .await
    .context("POST /api/admin/users")?;
    let api_key = field(&created, "/data/api_key")?;

    expect_json(
        client
            .put(api("/api/me/credentials"))
            .bearer_auth(&api_key)
            .json(&json!({
                "openai_api_key": "sk-bench-openai-0001",
                "frejun_api_key": "fj-bench-key-0001",
            })),
        StatusCode::OK,
    )
    .await
    .context("PUT /api/me/credentials")?;
    let assistant = expect_json(
        client
            .post(api("/api/assistants"))
            .bearer_auth(&api_key)
            .json(&json!({ "name": "Bench desk" })),
        StatusCode::CREATED,
    )
    .await
    .context("POST /api/assistants")?;
    let assistant_id = field(&assistant, "/data/id")?;
    expect_json(
        client
            .post(api("/api/phone-numbers"))
            .bearer_auth(&api_key)
            .json(&json!({ "phone_number": DIALLED, "assistant_id": assistant_id })),
        StatusCode::CREATED,
    )
    .await
    .context("POST /api/phone-numbers")?;

    let me = expect_json(
        client.get(api("/api/me")).bearer_auth(&api_key),
        StatusCode::OK,
    )
    .await
    .context("GET /api/me")?;
    Ok(FlowTarget {
        user_id: object_id(&field(&created, "/data/id")?)?,
        assistant_id: object_id(&assistant_id)?,
        flow_url: served_by(base, &field(&me, "/data/frejun/incoming_call_url")?)?,
        webhook_url: served_by(base, &field(&me, "/data/frejun/status_callback_url")?)?,
        api_key,
    })
}

fn object_id<Id: std::str::FromStr>(hex: &str) -> anyhow::Result<Id> {
    hex.parse()
        .map_err(|_| anyhow::anyhow!("{hex:?} is not an ObjectId"))
}

/// How many tenants are created at once by `--tenants`.
const TENANTS_IN_FLIGHT: usize = 8;

/// Creates `count` tenants through the admin API (no number, no calls: they only populate
/// `users`).
async fn create_other_tenants(
    client: &reqwest::Client,
    base: &Url,
    admin_token: &str,
    count: u64,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    eprintln!("creating {count} other tenants");
    let url = base.join("/api/admin/users")?;
    stream::iter(0..count)
        .map(|_| {
            let email = format!("other-{}@example.com", uuid::Uuid::new_v4().simple());
            expect_json(
                client
                    .post(url.clone())
                    .bearer_auth(admin_token)
                    .json(&json!({ "name": "Other tenant", "email": email })),
                StatusCode::CREATED,
            )
        })
        .buffer_unordered(TENANTS_IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
        .context("creating the other tenants")
}

/// Calls inserted per `insert_many` by `--history`.
const HISTORY_BATCH: u64 = 1_000;

/// Writes `count` ended calls of the tenant (FreJun ids `hist-<n>`), older than the run's.
async fn seed_history(storage: &Storage, target: &FlowTarget, count: u64) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    eprintln!("writing {count} past calls");
    let calls = storage.collection::<CallLogRecord>(CALL_LOGS);
    let now = bson::DateTime::now().timestamp_millis();
    let mut next = 0;
    while next < count {
        let end = (next + HISTORY_BATCH).min(count);
        let batch: Vec<CallLogRecord> = (next..end)
            .map(|n| {
                // One call a minute, the newest a minute before the run.
                let at = bson::DateTime::from_millis(now - (count - n) as i64 * 60_000);
                let reports = [
                    StatusReport::new(
                        CallStatus::Initiated,
                        at,
                        ReportSource::Flow,
                        "flow.received",
                    ),
                    StatusReport::new(
                        CallStatus::NoAnswer,
                        at,
                        ReportSource::Webhook,
                        "call.completed",
                    ),
                ];
                CallLogRecord::new(
                    NewCall {
                        user_id: target.user_id,
                        assistant_id: Some(target.assistant_id),
                        frejun_call_id: Some(format!("hist-{n}")),
                        from_number: Some(CALLER.to_owned()),
                        to_number: Some(DIALLED.to_owned()),
                        call_type: CallType::Inbound,
                    },
                    &reports,
                    at,
                )
            })
            .collect();
        calls
            .insert_many(batch)
            .await
            .context("writing past calls")?;
        next = end;
    }
    Ok(())
}

/// `shown` (a URL from `GET /api/me`) on the application's real address: the test settings'
/// public origin carries the configured port, 0.
fn served_by(base: &Url, shown: &str) -> anyhow::Result<Url> {
    let shown = Url::parse(shown).with_context(|| format!("{shown:?} is not a URL"))?;
    ensure!(
        shown.query_pairs().any(|(name, _)| name == "key"),
        "{shown} has no key parameter"
    );
    let mut url = base.clone();
    url.set_path(shown.path());
    url.set_query(shown.query());
    Ok(url)
}

/// Sends `request`, checks the status and returns the body as JSON.
async fn expect_json(
    request: reqwest::RequestBuilder,
    expected: StatusCode,
) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(
        status == expected,
        "answered {status} (expected {expected}): {text}"
    );
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// The string at JSON `pointer` in `body`.
fn field(body: &Value, pointer: &str) -> anyhow::Result<String> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string at {pointer} in {body}"))
}

/// One request's fate.
type Timed = Result<Duration, String>;

/// What one scheduled request produced.
struct Outcome {
    /// Within the measured phase (not warm-up).
    measured: bool,
    /// How late the request left compared with its schedule.
    lag: Duration,
    sent: Instant,
    request: Timed,
    /// The webhook that ended an older call, when this admission pushed one out.
    webhook: Option<Timed>,
}

/// Sends `warmup + rate × seconds` requests on schedule and collects every outcome.
async fn generate_load(
    options: &Options,
    client: &reqwest::Client,
    target: Arc<Target>,
) -> Vec<Outcome> {
    let measured = (options.rate * options.seconds as f64).round() as u64;
    let total = options.warmup + measured;
    let live = Arc::new(Mutex::new(VecDeque::with_capacity(options.live + 1)));
    let mut tasks = JoinSet::new();
    // A little head start, so that the first requests are not already late.
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    for index in 0..total {
        let due = start + Duration::from_secs_f64(index as f64 / options.rate);
        // Falling behind (a busy machine) makes the following sleeps return at once: the
        // backlog goes out as a burst and the offered rate holds on average.
        tokio::time::sleep_until(due).await;
        let client = client.clone();
        let target = Arc::clone(&target);
        let live = Arc::clone(&live);
        let keep_live = options.live;
        let due = due.into_std();
        let counted = index >= options.warmup;
        tasks.spawn(async move {
            let (sent, request, webhook) = match &*target {
                Target::Flow(flow) => one_call(&client, flow, index, &live, keep_live).await,
                Target::Health { url } => {
                    let (sent, request) = get_ok(&client, url).await;
                    (sent, request, None)
                }
            };
            Outcome {
                measured: counted,
                lag: sent.saturating_duration_since(due),
                sent,
                request,
                webhook,
            }
        });
    }
    let mut outcomes = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => eprintln!("a request task failed: {err}"),
        }
    }
    outcomes
}

/// One inbound call: the flow request (measured), then, once admitted, the webhook that ends
/// the oldest live call if more than `keep_live` are live.
async fn one_call(
    client: &reqwest::Client,
    target: &FlowTarget,
    index: u64,
    live: &Mutex<VecDeque<u64>>,
    keep_live: usize,
) -> (Instant, Timed, Option<Timed>) {
    let body = json!({
        "call_id": call_id(index),
        "account_id": "acc",
        "from_number": CALLER,
        "to_number": DIALLED,
        "direction": "inbound",
    });
    let (sent, answer) = exchange(client, client.post(target.flow_url.clone()).json(&body)).await;
    let flow = answer.and_then(|(elapsed, status, body)| {
        let action = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|json| {
                json.get("action")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        match (status, action.as_deref()) {
            (StatusCode::OK, Some("stream")) => Ok(elapsed),
            _ => Err(format!(
                "flow {}: {status}: {}",
                call_id(index),
                String::from_utf8_lossy(&body)
            )),
        }
    });
    if flow.is_err() {
        return (sent, flow, None);
    }
    let ended = {
        let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
        live.push_back(index);
        if live.len() > keep_live {
            live.pop_front()
        } else {
            None
        }
    };
    let webhook = match ended {
        Some(old) => Some(end_call(client, target, old).await),
        None => None,
    };
    (sent, flow, webhook)
}

/// FreJun's `call.completed` for call `index`; succeeds when the call has ended.
async fn end_call(client: &reqwest::Client, target: &FlowTarget, index: u64) -> Timed {
    let body = json!({
        "event": "call.completed",
        "account_id": "acc",
        "call_app_id": "app",
        "data": { "call_id": call_id(index), "duration": 30 },
    });
    let (_, answer) = exchange(client, client.post(target.webhook_url.clone()).json(&body)).await;
    let (elapsed, status, body) = answer?;
    let json = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    // `no-answer` rather than `completed`: these calls were never answered (no media stream
    // arrives here), and `call.completed`'s duration does not prove they were. Any terminal
    // status ends the call and frees its slot, which is what matters.
    let ended = serde_json::from_value::<CallStatus>(json["call_status"].clone())
        .is_ok_and(CallStatus::is_terminal);
    if status == StatusCode::OK && json["status"] == "received" && ended {
        Ok(elapsed)
    } else {
        Err(format!(
            "webhook {}: {status}: {}",
            call_id(index),
            String::from_utf8_lossy(&body)
        ))
    }
}

/// `GET url`; succeeds on 200.
async fn get_ok(client: &reqwest::Client, url: &Url) -> (Instant, Timed) {
    let (sent, answer) = exchange(client, client.get(url.clone())).await;
    let timed = answer.and_then(|(elapsed, status, body)| {
        if status == StatusCode::OK {
            Ok(elapsed)
        } else {
            Err(format!(
                "GET {}: {status}: {}",
                url.path(),
                String::from_utf8_lossy(&body)
            ))
        }
    });
    (sent, timed)
}

/// Sends `request` and reads the whole answer. The clock runs from just before the send (the
/// body is already serialised) to the last byte of the answer.
async fn exchange(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> (Instant, Result<(Duration, StatusCode, Vec<u8>), String>) {
    let request = match request.build() {
        Ok(request) => request,
        Err(err) => return (Instant::now(), Err(format!("building the request: {err}"))),
    };
    let sent = Instant::now();
    let answer = async {
        let response = client.execute(request).await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = sent.elapsed();
        Ok::<_, reqwest::Error>((elapsed, status, body.to_vec()))
    }
    .await
    .map_err(|err| error_chain(&err));
    (sent, answer)
}

/// `err` and its causes (reqwest's own message rarely says what went wrong).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// FreJun's id of call `index`.
fn call_id(index: u64) -> String {
    format!("fj-{index}")
}

fn report(options: &Options, setup: &Setup, outcomes: &[Outcome]) {
    let measured: Vec<&Outcome> = outcomes.iter().filter(|o| o.measured).collect();
    let what = if options.health {
        format!("GET {}", options.health_path)
    } else {
        "POST /api/frejun/flow".to_owned()
    };
    println!("voxbridge latency: {what}");
    println!(
        "machine: nproc {}; mongod {} (replica set of one); application HTTP workers: {}",
        setup.nproc,
        setup.mongod_version.as_deref().unwrap_or("version unknown"),
        setup.workers,
    );
    if options.health {
        println!(
            "offered: {:.1} req/s for {} s, after {} warm-up requests",
            options.rate, options.seconds, options.warmup
        );
    } else {
        println!(
            "offered: {:.1} req/s for {} s, after {} warm-up requests; live calls kept: {}",
            options.rate, options.seconds, options.warmup, options.live
        );
    }

    let first_sent = measured.iter().map(|o| o.sent).min();
    // Answered successfully, that is: errors do not count towards the achieved rate.
    let last_answered = measured
        .iter()
        .filter_map(|o| o.request.as_ref().ok().map(|latency| o.sent + *latency))
        .max();
    let (latencies, errors) = split(measured.iter().map(|o| &o.request));
    let achieved = match (first_sent, last_answered) {
        (Some(first), Some(last)) if last > first => {
            latencies.len() as f64 / last.duration_since(first).as_secs_f64()
        }
        _ => 0.0,
    };
    println!(
        "achieved: {achieved:.1} req/s; samples: {}; errors: {}",
        latencies.len(),
        errors.len()
    );
    println!("latency ms: {}", summary(&latencies, true));
    println!("p50 ms by quarter of the run: {}", by_quarter(&measured));

    if !options.health {
        let (webhooks, webhook_errors) = split(measured.iter().filter_map(|o| o.webhook.as_ref()));
        println!(
            "webhook call.completed ms ({} samples, {} errors): {}",
            webhooks.len(),
            webhook_errors.len(),
            summary(&webhooks, false)
        );
        show_errors("webhook", &webhook_errors);
    }
    let lags: Vec<Duration> = measured.iter().map(|o| o.lag).collect();
    let lags = sorted(lags);
    println!(
        "sent behind schedule ms: p99 {} max {}",
        millis(percentile(&lags, 99.0)),
        millis(lags.last().copied()),
    );
    show_errors("request", &errors);
}

/// The p50 of each quarter of the measured requests in the order they were sent: a rising
/// series means the work per request grows with the data the run accumulates.
fn by_quarter(measured: &[&Outcome]) -> String {
    let mut in_order = measured.to_vec();
    in_order.sort_by_key(|outcome| outcome.sent);
    let quarter = in_order.len().div_ceil(4).max(1);
    in_order
        .chunks(quarter)
        .map(|chunk| {
            let (latencies, _) = split(chunk.iter().map(|outcome| &outcome.request));
            millis(percentile(&latencies, 50.0))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Successful latencies (sorted) and error messages.
fn split<'a>(results: impl Iterator<Item = &'a Timed>) -> (Vec<Duration>, Vec<&'a str>) {
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(latency) => latencies.push(*latency),
            Err(err) => errors.push(err.as_str()),
        }
    }
    (sorted(latencies), errors)
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort_unstable();
    samples
}

/// `p50 … p99 …` of sorted samples; `full` adds p90, max and mean.
fn summary(sorted: &[Duration], full: bool) -> String {
    let p = |q| millis(percentile(sorted, q));
    if !full {
        return format!("p50 {} p99 {}", p(50.0), p(99.0));
    }
    let mean = (!sorted.is_empty()).then(|| sorted.iter().sum::<Duration>() / sorted.len() as u32);
    format!(
        "p50 {} p90 {} p99 {} max {} mean {}",
        p(50.0),
        p(90.0),
        p(99.0),
        millis(sorted.last().copied()),
        millis(mean),
    )
}

/// Nearest-rank percentile: the smallest sample with at least `q` % of the samples at or
/// below it.
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_owned(),
        |duration| format!("{:.2}", duration.as_secs_f64() * 1e3),
    )
}

fn show_errors(what: &str, errors: &[&str]) {
    for error in errors.iter().take(ERRORS_SHOWN) {
        println!("{what} error: {error}");
    }
    if errors.len() > ERRORS_SHOWN {
        println!("… and {} more {what} errors", errors.len() - ERRORS_SHOWN);
    }
}
