//! The `voxbridge` binary: parses the command line, loads settings, starts logging and hands
//! over to the library's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use voxbridge::commands::loadtest::{self, LoadtestArgs};
use voxbridge::settings::{self, Loaded, LogFormat, SettingsSources};
use voxbridge::{commands, telemetry};

/// Exit code for a configuration error (EX_CONFIG from sysexits.h).
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "voxbridge",
    version,
    about = "FreJun phone calls bridged to the OpenAI Realtime API"
)]
struct Cli {
    /// TOML configuration file (environment variables VOXBRIDGE__SECTION__KEY override it).
    #[arg(long, global = true, env = "VOXBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve HTTP (starts a local MongoDB in development when none is set).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-encrypt every tenant secret under the current master key (see docs/operations.md).
    RotateMasterKey,
    /// Move every assistant off OpenAI models with an announced shutdown, to their
    /// replacements. Prints what would change unless --apply is given.
    UpgradeModels {
        /// Change the assistants (without it: a dry run).
        #[arg(long)]
        apply: bool,
    },
    /// Start a server with fake FreJun, OpenAI, ElevenLabs and text AI on loopback, place four
    /// calls and tell the story.
    Demo {
        /// Where the WAV files go (default: <state dir>/demo, i.e. .voxbridge/demo).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Play FreJun against a running voxbridge: place one call, stream audio, report what happened.
    Call(commands::call::CallArgs),
    /// A throwaway local MongoDB replica set for development and tests.
    LocalMongodb {
        /// Where the downloaded mongod binary is cached.
        #[arg(long, default_value = ".voxbridge")]
        state_dir: PathBuf,
        #[command(subcommand)]
        action: LocalMongodbAction,
    },
    /// Load-test a voxbridge with simulated FreJun calls echoed by a fake OpenAI, on loopback:
    /// call failures, bridge latency each way, server CPU and memory (docs/benchmarks.md, "Load
    /// generator"). Exit code 0: every call ok; 3: some calls failed; 1: the run failed.
    Loadtest(Box<LoadtestArgs>),
}

#[derive(Subcommand)]
enum LocalMongodbAction {
    /// Run COMMAND with MONGODB_URI set to a fresh server, then stop and delete the server.
    Exec {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run a server in the foreground until Ctrl-C, printing MONGODB_URI=….
    Run {
        /// Keep the data here (default: a temporary directory removed on exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        port: Option<u16>,
    },
}

fn main() -> ExitCode {
    // `.env` is for local use; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("voxbridge: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Call(args) = cli.command {
        // Talks to a server over HTTP only: needs no settings (and so no secrets), and logs
        // nothing, so stdout is the call's account and stderr only ever its one error line.
        return match commands::call::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("voxbridge call: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::LocalMongodb { state_dir, action } = cli.command {
        // Needs no settings (and so no secrets): it only manages a database process.
        let _ = telemetry::init(&settings::LogSettings::default());
        let result = match action {
            LocalMongodbAction::Exec { command } => {
                commands::local_mongodb::exec(&state_dir, &command)
                    .await
                    .map(|status| {
                        status
                            .code()
                            .map_or(ExitCode::FAILURE, |code| ExitCode::from(code as u8))
                    })
            }
            LocalMongodbAction::Run { data_dir, port } => {
                commands::local_mongodb::run(&state_dir, data_dir, port)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
        };
        return result.unwrap_or_else(|err| fail(&err));
    }
    if let Command::Loadtest(args) = cli.command {
        // A tool like local-mongodb: it starts (or is given) the server it tests, so it needs
        // none of the service's settings. Warnings only, so the progress line stays readable.
        let _ = telemetry::init(&settings::LogSettings {
            level: "warn".into(),
            ..settings::LogSettings::default()
        });
        let options = match args.into_options() {
            Ok(options) => options,
            Err(message) => {
                eprintln!("voxbridge: {message}");
                return ExitCode::FAILURE;
            }
        };
        return match loadtest::run(options).await {
            Ok(verdict) => ExitCode::from(verdict.exit_code()),
            Err(err) => fail(&err),
        };
    }

    let mut loaded = match settings::load::load(&SettingsSources::from_process(cli.config)) {
        Ok(loaded) => loaded,
        Err(err) => {
            // The settings (and so the log format) did not load: the environment's word on
            // the format is all there is, so a JSON log stream stays all JSON.
            let early = early_log_settings();
            let _ = telemetry::init(&early);
            fatal(&err.to_string(), early.format);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if matches!(cli.command, Command::Demo { .. })
        && std::env::var_os("VOXBRIDGE__LOG__LEVEL").is_none()
    {
        // The demo's own account is the output; the server's info logs would drown it.
        loaded.settings.log.level = "warn".into();
    }
    if let Err(err) = telemetry::init(&loaded.settings.log) {
        eprintln!("voxbridge: {err}");
        return ExitCode::FAILURE;
    }
    report_loading(&loaded);
    let format = loaded.settings.log.format;

    let settings = loaded.settings;
    let result = match cli.command {
        Command::Serve => commands::serve::run(settings).await,
        Command::Migrate => commands::migrate::run(settings).await,
        Command::RotateMasterKey => commands::rotate_master_key::run(settings).await,
        Command::UpgradeModels { apply } => commands::upgrade_models::run(settings, apply).await,
        Command::Demo { out_dir } => {
            let out_dir = out_dir.unwrap_or_else(|| settings.dev.state_dir.join("demo"));
            commands::demo::run(settings, out_dir).await
        }
        Command::LocalMongodb { .. } | Command::Call(_) | Command::Loadtest(_) => {
            unreachable!("handled above")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            fatal(&format!("{err:#}"), format);
            ExitCode::FAILURE
        }
    }
}

fn report_loading(loaded: &Loaded) {
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown setting ignored (check its spelling)");
    }
    let Some(generated) = &loaded.generated_dev_secrets else {
        return;
    };
    let path = generated.path.display();
    match loaded.settings.log.format {
        // A log collector gets a JSON line, and never the token: it is in the file.
        LogFormat::Json => tracing::warn!(
            path = %path,
            keys = ?generated.keys,
            "generated development secrets (the admin token is in this file)"
        ),
        LogFormat::Pretty => {
            eprintln!("voxbridge: generated development secrets in {path}");
            // Printed once, when it is new, not logged: a newcomer needs it to call the admin
            // API, and logs must never carry secrets. A configured token is never printed,
            // nor is one read back from the file on later starts.
            if generated.admin_token() {
                eprintln!(
                    "voxbridge: development admin token (printed this once; it is in the file \
                     above): {}",
                    loaded.settings.security.admin_token.expose()
                );
            }
        }
    }
}

/// The log format before settings are loaded: `VOXBRIDGE__LOG__FORMAT` if it says `json`.
fn early_log_settings() -> settings::LogSettings {
    let json = std::env::var("VOXBRIDGE__LOG__FORMAT")
        .is_ok_and(|format| format.trim().eq_ignore_ascii_case("json"));
    settings::LogSettings {
        format: if json {
            LogFormat::Json
        } else {
            LogFormat::Pretty
        },
        ..settings::LogSettings::default()
    }
}

/// The error that stops the process: a JSON log line when the log is JSON, plain text on
/// stderr otherwise.
fn fatal(message: &str, format: LogFormat) {
    match format {
        LogFormat::Json => tracing::error!(error = %message, "voxbridge stopped"),
        LogFormat::Pretty => eprintln!("voxbridge: {message}"),
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("voxbridge: {err:#}");
    ExitCode::FAILURE
}
