//! The command line: `tasker api | worker | migrate | dev`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::services::Services;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::telemetry::logs;
use crate::watch::TaskWatch;
use crate::worker::Worker;

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
    /// Print the effective configuration (secrets redacted) and exit; fails,
    /// naming the key, when it is invalid.
    Config,
    /// GET a URL and exit 0 on a 2xx answer: a health check for images without curl.
    Probe {
        /// e.g. http://127.0.0.1:8000/ready
        url: String,
    },
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Probe { url } = &cli.command {
        return probe(url);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tasker: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config = &cli.command {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let (default_format, component) = match &cli.command {
        Command::Dev => (LogFormat::Text, "dev"),
        Command::Api => (LogFormat::Json, "api"),
        Command::Worker => (LogFormat::Json, "worker"),
        _ => (LogFormat::Json, "migrate"),
    };
    // TLS first: the trace exporter's HTTP client needs the crypto provider.
    crate::tls::install_crypto_provider();
    let telemetry = match logs::init(&config.log, &config.otel, default_format, component) {
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
    let result = runtime.block_on(run(cli.command, config));
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tasker: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    tracing::info!(command = ?command, config = ?config, "configuration loaded");
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().trigger_on_signal());
    let services = Services::build(&config)?;
    if !matches!(command, Command::Migrate) {
        services.warn_if_redis_evicts().await;
    }
    let store = services.store.clone();
    let result = match command {
        Command::Migrate => migrate(&services, &config).await,
        Command::Api => run_api(services, &config, shutdown).await,
        Command::Worker => run_worker(services, &config, shutdown).await,
        // Answered before the runtime starts.
        Command::Probe { .. } | Command::Config => Ok(()),
        Command::Dev => {
            migrate(&services, &config).await?;
            let api = run_api(services.clone(), &config, shutdown.clone());
            let worker = run_worker(services, &config, shutdown.clone());
            let (api, worker) = tokio::join!(api, worker);
            api.and(worker)
        }
    };
    store.close().await;
    if let Err(err) = &result {
        tracing::error!(error = format!("{err:#}"), "tasker stopped with an error");
    }
    result
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

async fn migrate(services: &Services, config: &Config) -> anyhow::Result<()> {
    let created = Store::create_database_if_missing(&config.database)
        .await
        .context("creating the database")?;
    if created {
        tracing::info!("database created");
    }
    services
        .store
        .migrate()
        .await
        .context("applying database migrations")?;
    tracing::info!("database migrations applied");
    Ok(())
}

async fn run_api(services: Services, config: &Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on api.listen = {}", config.api.listen))?;
    tracing::info!(address = %config.api.listen, "api listening");
    let channel = services.queue.keys().finished_channel();
    let watch = TaskWatch::start(config.redis.url.expose(), channel).context("redis.url")?;
    let router = crate::http::router(services, &config.api, watch);
    let served = crate::http::serve(listener, router, shutdown.clone()).await;
    // The API stopping for any reason stops a `dev` worker too.
    shutdown.trigger();
    served.context("api server failed")
}

async fn run_worker(services: Services, config: &Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let worker = Worker::new(services, config)?;
    let listener = TcpListener::bind(config.worker.listen)
        .await
        .with_context(|| format!("cannot listen on worker.listen = {}", config.worker.listen))?;
    tracing::info!(address = %config.worker.listen, "worker probes listening");
    worker.run(listener, shutdown).await
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
        for name in ["api", "worker", "migrate", "dev", "config", "probe"] {
            assert!(help.contains(name), "{name} missing from help:\n{help}");
        }
    }
}
