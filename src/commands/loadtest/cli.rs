//! The `voxbridge loadtest` command line: every flag with the help text `--help` shows, turned
//! into [`LoadtestOptions`]. Kept here rather than in `main.rs` so the binary only names the
//! subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use url::Url;

use super::backend::Backend;
use super::{ExternalServer, LoadtestOptions, SpawnOptions, Target, parse_codec};
use crate::domain::assistant::Codec;
use crate::domain::secret::SecretString;

/// `voxbridge loadtest` flags.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Simulated calls; all of them are live together once the ramp-up is over (1–10000).
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Seconds over which the calls' starts are spread evenly.
    #[arg(long, default_value_t = 10.0)]
    ramp_up_secs: f64,
    /// Seconds each call streams audio before hanging up.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// The voice AI behind the bridge, played by an in-crate fake that echoes the caller:
    /// openai (OpenAI Realtime) or elevenlabs (an ElevenLabs agent in FreJun's formats, pcm_8000
    /// or pcm_16000 in and pcm_8000 out, so nothing is resampled; it pings every 2 s).
    #[arg(long, default_value = "openai", value_parser = Backend::parse)]
    backend: Backend,
    /// The assistants' codec with --backend openai: pcm24k (PCM resampled to OpenAI's 24 kHz) or
    /// pcmu (G.711 μ-law at 8 kHz; needs --inbound-rate 8000). Not for --backend elevenlabs,
    /// whose audio is the agent's formats.
    #[arg(long, default_value = "pcm24k", value_parser = parse_codec)]
    codec: Codec,
    /// Sample rate of the callers' audio in Hz: 8000 or 16000.
    #[arg(long, default_value_t = 8_000)]
    inbound_rate: u32,
    /// Milliseconds of audio per media message a caller sends (multiple of 20, 20–2000).
    #[arg(long, default_value_t = 100)]
    chunk_ms: u32,
    /// Milliseconds of audio per media message voxbridge sends a caller (multiple of 20,
    /// 20–2000).
    #[arg(long, default_value_t = 100)]
    outbound_chunk_ms: u32,
    /// The fake OpenAI ends each echo response after this many ms of audio and starts the next,
    /// so usage and call-log writes happen during the run; 0 keeps one response per call. The
    /// ElevenLabs echo has no turns, so this does not apply to --backend elevenlabs.
    #[arg(long, default_value_t = 5_000)]
    turn_ms: u32,
    /// Print the report as JSON on stdout instead of a table (progress stays on stderr).
    #[arg(long)]
    json: bool,
    /// Pin the server this command starts to these CPUs with `taskset -c` (e.g. 0). Pin the
    /// load generator itself by running it under taskset.
    #[arg(long, conflicts_with = "server_url")]
    server_cpus: Option<String>,
    /// MongoDB for the server this command starts [default: the local development MongoDB
    /// under --state-dir, started or reused].
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    mongodb_uri: Option<String>,
    /// Keep the run's database (`voxbridge_loadtest_<run id>`) instead of dropping it.
    #[arg(long, conflicts_with = "server_url")]
    keep_database: bool,
    /// Development state directory: the local MongoDB and each run's directory
    /// (`loadtest/<run id>/server.log`).
    #[arg(long, default_value = ".voxbridge")]
    state_dir: PathBuf,
    /// Test a running voxbridge instead of starting one; needs --admin-token. With --backend
    /// openai its OpenAI Realtime URL must be ws://<--openai-listen>/v1/realtime; with
    /// elevenlabs its ElevenLabs conversation URL must be
    /// ws://<--elevenlabs-listen>/v1/convai/conversation (and its API base URL
    /// http://<--elevenlabs-listen>).
    #[arg(long)]
    server_url: Option<Url>,
    /// The --server-url server's admin token.
    #[arg(long, env = "VOXBRIDGE__SECURITY__ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The --server-url server's metrics.token: its GET /metrics is then scraped during the
    /// run and compared with the load generator's figures (metrics_check in the report);
    /// without it that check is skipped. A server this command starts gets a random token of
    /// its own and is always checked.
    #[arg(long, env = "VOXBRIDGE__METRICS__TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// The --server-url server's process id, to measure its CPU and memory from /proc.
    #[arg(long, requires = "server_url")]
    server_pid: Option<u32>,
    /// Where the fake OpenAI listens for a --server-url server (e.g. 127.0.0.1:9400).
    #[arg(long, requires = "server_url")]
    openai_listen: Option<SocketAddr>,
    /// Where the fake ElevenLabs listens for a --server-url server with --backend elevenlabs
    /// (e.g. 127.0.0.1:9401).
    #[arg(long, requires = "server_url")]
    elevenlabs_listen: Option<SocketAddr>,
    /// Provisioning API requests in flight at once.
    #[arg(long, default_value_t = 16)]
    provision_concurrency: usize,
    /// MongoDB's process id, to report its CPU too [default: found for a mongod on loopback
    /// behind the server this command starts].
    #[arg(long)]
    mongodb_pid: Option<u32>,
}

impl LoadtestArgs {
    /// The options these flags describe; an error names a missing companion flag.
    pub fn into_options(self) -> Result<LoadtestOptions, String> {
        let backend = self.backend;
        let target = match self.server_url {
            None => Target::Start(SpawnOptions {
                cpus: self.server_cpus,
                mongodb_uri: self.mongodb_uri,
                keep_database: self.keep_database,
                state_dir: self.state_dir,
            }),
            Some(url) => Target::External {
                server: ExternalServer {
                    url,
                    admin_token: self.admin_token.ok_or(
                        "--server-url needs --admin-token (or VOXBRIDGE__SECURITY__ADMIN_TOKEN)",
                    )?,
                    pid: self.server_pid,
                    metrics_token: self.metrics_token.map(SecretString::new),
                },
                fake_listen: match backend {
                    Backend::OpenAi => self.openai_listen,
                    Backend::ElevenLabs => self.elevenlabs_listen,
                }
                .ok_or_else(|| {
                    format!(
                        "--server-url with --backend {} needs {}, the address its {} URL names",
                        backend.name(),
                        backend.listen_flag(),
                        match backend {
                            Backend::OpenAi => "OpenAI Realtime",
                            Backend::ElevenLabs => "ElevenLabs conversation",
                        }
                    )
                })?,
            },
        };
        Ok(LoadtestOptions {
            calls: self.calls,
            ramp_up_secs: self.ramp_up_secs,
            duration_secs: self.duration_secs,
            backend,
            codec: self.codec,
            inbound_rate_hz: self.inbound_rate,
            inbound_chunk_ms: self.chunk_ms,
            outbound_chunk_ms: self.outbound_chunk_ms,
            turn_ms: self.turn_ms,
            json: self.json,
            provision_concurrency: self.provision_concurrency,
            mongodb_pid: self.mongodb_pid,
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn options(flags: &[&str]) -> Result<LoadtestOptions, String> {
        let argv = std::iter::once("loadtest").chain(flags.iter().copied());
        Command::try_parse_from(argv)
            .map_err(|error| error.to_string())?
            .args
            .into_options()
    }

    #[test]
    fn the_defaults_are_a_valid_run_against_a_started_server() {
        let options = options(&["--mongodb-uri", "mongodb://127.0.0.1:1/"]).unwrap();
        assert_eq!(options.validate(), Ok(()));
        assert_eq!((options.calls, options.duration_secs), (100, 60));
        assert_eq!(
            (options.inbound_chunk_ms, options.outbound_chunk_ms),
            (100, 100)
        );
        assert_eq!(options.turn_ms, 5_000);
        assert_eq!(options.backend, Backend::OpenAi);
        let Target::Start(spawn) = options.target else {
            panic!("expected a started server");
        };
        assert_eq!(spawn.mongodb_uri.as_deref(), Some("mongodb://127.0.0.1:1/"));
        assert_eq!(spawn.cpus, None);
    }

    #[test]
    fn flags_reach_the_options() {
        let options = options(&[
            "--calls",
            "300",
            "--codec",
            "pcmu",
            "--chunk-ms",
            "20",
            "--server-cpus",
            "0",
            "--keep-database",
            "--json",
            "--backend",
            "elevenlabs",
        ])
        .unwrap();
        assert_eq!(options.calls, 300);
        assert_eq!(options.backend, Backend::ElevenLabs);
        assert_eq!(options.codec, Codec::Pcmu);
        assert_eq!(options.inbound_chunk_ms, 20);
        assert!(options.json);
        let Target::Start(spawn) = options.target else {
            panic!("expected a started server");
        };
        assert_eq!(spawn.cpus.as_deref(), Some("0"));
        assert!(spawn.keep_database);
    }

    #[test]
    fn an_external_server_needs_the_fakes_address() {
        let error = options(&[
            "--server-url",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
        ])
        .unwrap_err();
        assert!(error.contains("--openai-listen"), "{error}");
        let external = options(&[
            "--server-url",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
            "--openai-listen",
            "127.0.0.1:9400",
            "--server-pid",
            "42",
        ])
        .unwrap();
        let Target::External {
            server,
            fake_listen,
        } = external.target
        else {
            panic!("expected an external server");
        };
        assert_eq!(server.pid, Some(42));
        assert_eq!(fake_listen.port(), 9_400);
        let with_token = options(&[
            "--server-url",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
            "--openai-listen",
            "127.0.0.1:9400",
            "--metrics-token",
            "scrape-me",
        ])
        .unwrap();
        let Target::External { server, .. } = with_token.target else {
            panic!("expected an external server");
        };
        assert_eq!(
            server.metrics_token.as_ref().map(SecretString::expose),
            Some("scrape-me")
        );
        // ElevenLabs' fake has its own address flag.
        let base = [
            "--server-url",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
            "--backend",
            "elevenlabs",
        ];
        let error =
            options(&[&base[..], &["--openai-listen", "127.0.0.1:9400"]].concat()).unwrap_err();
        assert!(error.contains("--elevenlabs-listen"), "{error}");
        let elevenlabs =
            options(&[&base[..], &["--elevenlabs-listen", "127.0.0.1:9401"]].concat()).unwrap();
        let Target::External { fake_listen, .. } = elevenlabs.target else {
            panic!("expected an external server");
        };
        assert_eq!(fake_listen.port(), 9_401);
        // Pinning only applies to a server this command starts.
        let conflict = options(&[
            "--server-url",
            "http://127.0.0.1:8080",
            "--admin-token",
            "t",
            "--openai-listen",
            "127.0.0.1:9400",
            "--server-cpus",
            "0",
        ]);
        assert!(conflict.is_err());
    }
}
