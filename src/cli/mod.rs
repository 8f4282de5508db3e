//! The command line: `tasker api | worker | migrate | dev | config | keys |
//! probe`, and the API's client `tasker task | queue`.

mod client;
mod keys;
mod output;
mod queue;
mod remote;
mod submit_file;
mod task;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{Application, effective_config};
use crate::config::{Config, LogFormat};
use crate::shutdown::Shutdown;
use crate::tasks::Registry;
use crate::telemetry::error_chain;
use crate::telemetry::logs;

/// Tasker: asynchronous task execution. Submit tasks over REST, run them on
/// workers, poll for the results. PostgreSQL stores every task; Redis carries
/// dispatch messages and caches results.
#[derive(Debug, Parser)]
#[command(name = "tasker", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (environment variables TASKER_… override it).
    #[arg(long, global = true, env = "TASKER_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Serve the HTTP API (POST /run-task, GET /get-task-output, …) on `api.listen`.
    Api,
    /// Run tasks from the Redis queues; serves /health, /ready, /metrics on `worker.listen`.
    Worker,
    /// Apply database migrations and exit (safe to run repeatedly and concurrently).
    Migrate,
    /// Local development: apply migrations, then run the API and a worker in one process.
    Dev,
    /// Print the effective configuration as TOML (defaults filled in, secrets
    /// redacted) and exit; fails, naming the key, when it is invalid.
    Config,
    /// Manage API keys (in PostgreSQL; for an operator on a pod).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// GET a URL and exit 0 on a 2xx answer: a health check for images without curl.
    Probe {
        /// e.g. http://127.0.0.1:8000/ready
        url: String,
    },
    /// Submit, read, list, cancel and retry tasks over the HTTP API
    /// (`--url`, `--token`; no configuration file needed).
    ///
    /// Exit codes: 0 done (with --wait: completed), 1 a task failed or was
    /// cancelled, or the API refused or could not be reached, 2 a usage
    /// error, 3 --wait SECS ran out first.
    Task {
        #[command(flatten)]
        client: remote::ClientArgs,
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// List, pause and resume queues over the HTTP API (admin keys).
    Queue {
        #[command(flatten)]
        client: remote::ClientArgs,
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
            Self::Migrate => "migrate",
            Self::Dev => "dev",
            Self::Config => "config",
            Self::Keys { .. } => "keys",
            Self::Probe { .. } => "probe",
            Self::Task { .. } => "task",
            Self::Queue { .. } => "queue",
        }
    }
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Clients of a running service: no configuration, no connections.
    match cli.command {
        Command::Probe { url } => return probe(&url),
        Command::Task { client, command } => {
            return remote::run(&client, |api, format| task::run(command, api, format));
        }
        Command::Queue { client, command } => {
            return remote::run(&client, |api, format| queue::run(command, api, format));
        }
        _ => {}
    }
    // Every check that needs no connection, before anything starts.
    let checked = Config::load(cli.config.as_deref())
        .and_then(|config| Registry::new(&config).map(|registry| (config, registry)));
    let (config, registry) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("tasker: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config = &cli.command {
        return match effective_config(&config, &registry) {
            Ok(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("tasker: {}", error_chain(err.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    let (default_format, component) = match &cli.command {
        Command::Dev => (LogFormat::Text, "dev"),
        Command::Keys { .. } => (LogFormat::Text, "keys"),
        Command::Api => (LogFormat::Json, "api"),
        Command::Worker => (LogFormat::Json, "worker"),
        _ => (LogFormat::Json, "migrate"),
    };
    // A command for a person prints its answer; only warnings go beside it.
    let mut log = config.log.clone();
    if matches!(cli.command, Command::Keys { .. }) {
        log.level = "warn".into();
    }
    // TLS first: the trace exporter's HTTP client needs the crypto provider.
    crate::tls::install_crypto_provider();
    let telemetry = match logs::init(&log, &config.otel, default_format, component) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("tasker: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tasker: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // The pools are made inside the runtime they belong to.
        let app = Application::build(config)?;
        run(cli.command, app).await
    });
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tasker: {}", error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, app: Application) -> anyhow::Result<()> {
    let config = app.config();
    tracing::info!(
        command = command.name(),
        database = %config.database.url.redacted(),
        redis = %config.redis.url.redacted(),
        redis_mode = config.redis.mode.as_str(),
        redis_key_prefix = %config.redis.key_prefix,
        "configuration loaded (`tasker config` prints all of it)"
    );
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().trigger_on_signal());
    if !matches!(command, Command::Migrate | Command::Keys { .. }) {
        app.services().warn_if_redis_evicts().await;
    }
    let result = match command {
        Command::Keys { command } => keys::run(command, &app).await,
        Command::Migrate => app.migrate().await,
        Command::Api => run_api(&app, shutdown).await,
        Command::Worker => app.bind_worker().await?.run(shutdown).await,
        // Answered before the runtime starts.
        Command::Probe { .. } | Command::Config | Command::Task { .. } | Command::Queue { .. } => {
            Ok(())
        }
        Command::Dev => {
            app.migrate().await?;
            let worker = app.bind_worker().await?;
            let (api, worker) = tokio::join!(
                run_api(&app, shutdown.clone()),
                worker.run(shutdown.clone())
            );
            api.and(worker)
        }
    };
    app.services().store.close().await;
    if let Err(err) = &result {
        tracing::error!(
            error = error_chain(err.as_ref()),
            "tasker stopped with an error"
        );
    }
    result
}

async fn run_api(app: &Application, shutdown: Shutdown) -> anyhow::Result<()> {
    let served = match app.bind_api().await {
        Ok(api) => api.run(shutdown.clone()).await,
        Err(err) => Err(err),
    };
    // The API stopping for any reason stops a `dev` worker too.
    shutdown.trigger();
    served
}

fn probe(url: &str) -> ExitCode {
    crate::tls::install_crypto_provider();
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(3))
                    .build()
                    .map_err(|err| err.to_string())?;
                let response = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|err| err.to_string())?;
                let status = response.status();
                status
                    .is_success()
                    .then_some(())
                    .ok_or_else(|| format!("{url} answered {status}"))
            })
        });
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tasker probe: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_explains_every_subcommand() {
        let help = Cli::command().render_long_help().to_string();
        for name in [
            "api", "worker", "migrate", "dev", "config", "keys", "probe", "task", "queue",
        ] {
            assert!(help.contains(name), "{name} missing from help:\n{help}");
        }
    }
}
