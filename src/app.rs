//! Building the application from its configuration: the one wiring that
//! `tasker api`, `tasker worker`, `tasker dev` and the tests all start.
//! Building connects to nothing; binding takes the ports; running serves
//! until the shutdown switch is triggered.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::{Config, ExposeSecret, SecretString};
use crate::ops::Ops;
use crate::server::{Limits, serve};
use crate::services::{ApiKeys, BuildError, Quotas, Reads, Services, Submissions};
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::tasks::Registry;
use crate::watch::TaskWatch;
use crate::worker::Worker;

/// The configuration and every handle built from it.
pub struct Application {
    config: Config,
    services: Services,
}

impl Application {
    /// Checks the configuration against the task types and builds every
    /// handle, without connecting.
    pub fn build(config: Config) -> Result<Self, BuildError> {
        let services = Services::build(&config)?;
        Ok(Self { config, services })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Creates the database if it is missing and applies the migrations,
    /// over a direct connection (`database.migrate_url`, else
    /// `database.url`): they hold a session-level advisory lock.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let direct = self.config.database.for_migrations()?;
        let created = Store::create_database_if_missing(&direct)
            .await
            .context("creating the database")?;
        if created {
            tracing::info!("database created");
        }
        let store = Store::connect_lazy(&direct).context("connecting for migrations")?;
        let applied = store.migrate().await;
        store.close().await;
        applied.context("applying database migrations")?;
        tracing::info!("database migrations applied");
        Ok(())
    }

    /// Binds `api.listen` and `api.ops_listen` and builds the API on them.
    pub async fn bind_api(&self) -> anyhow::Result<ApiServer> {
        let api = &self.config.api;
        let listener = bind(api.listen, "api.listen").await?;
        let ops_listener = bind(api.ops_listen, "api.ops_listen").await?;
        let services = &self.services;
        let watch = TaskWatch::start(services.redis.clone(), services.keys.finished_channel());
        let submissions = Submissions::new(
            services.registry.clone(),
            services.store.clone(),
            services.queue.clone(),
            Quotas::new(services.budgets.clone(), services.keys.clone()),
            api.idempotency_window(),
            api.max_batch_size.get(),
        );
        let reads = Reads::new(
            services.store.clone(),
            services.cache.clone(),
            watch,
            api.max_wait(),
            api.max_waiters,
        );
        let auth = &self.config.auth;
        let authenticator =
            Authenticator::new(services.store.clone(), auth.enabled, auth.cache_ttl());
        if let Some(token) = auth.bootstrap_token() {
            tokio::spawn(ensure_bootstrap_key(
                services.store.clone(),
                auth.bootstrap_tenant.clone(),
                token,
            ));
        }
        let ops = Ops::new(services.clone());
        let handlers = crate::http::Handlers {
            submissions,
            reads,
            api_keys: ApiKeys::new(services.store.clone()),
            control: crate::services::Control::new(services),
        };
        let router = crate::http::router(handlers, authenticator, &services.registry, &ops, api);
        let limits = Limits {
            header_read_timeout: api.header_read_timeout(),
            max_connections: api.max_connections.get(),
        };
        Ok(ApiServer {
            listener,
            router,
            limits,
            ops_listener,
            ops: ops.router(),
        })
    }

    /// Binds `worker.listen` (its probes) and builds a worker.
    pub async fn bind_worker(&self) -> anyhow::Result<WorkerServer> {
        let listener = bind(self.config.worker.listen, "worker.listen").await?;
        let worker = Worker::new(self.services.clone(), &self.config);
        Ok(WorkerServer { listener, worker })
    }
}

/// The id of the key made from `auth.bootstrap_token`.
pub const BOOTSTRAP_KEY_ID: &str = "bootstrap";

/// Makes `auth.bootstrap_token` an admin key, retrying while the database
/// is unreachable (the API starts anyway and reports not ready).
async fn ensure_bootstrap_key(store: Store, tenant: String, token: SecretString) {
    let hash = crate::auth::hash_token(token.expose_secret());
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        match store
            .ensure_admin_key(BOOTSTRAP_KEY_ID, &tenant, &hash)
            .await
        {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&err), "cannot store the bootstrap key yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}

async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {key} = {address}"))
}

/// The API, bound and ready to serve.
pub struct ApiServer {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    ops_listener: TcpListener,
    ops: Router,
}

impl ApiServer {
    /// The public port's address.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operations port's address (`/metrics`).
    pub fn ops_address(&self) -> std::io::Result<SocketAddr> {
        self.ops_listener.local_addr()
    }

    /// Serves both ports until `shutdown`, then finishes in-flight requests.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        if let (Ok(address), Ok(ops)) = (self.address(), self.ops_address()) {
            tracing::info!(%address, %ops, "api listening");
        }
        let public = serve(self.listener, self.router, shutdown.clone(), self.limits);
        let ops = serve(self.ops_listener, self.ops, shutdown, Limits::OPERATIONS);
        let (public, ops) = tokio::join!(public, ops);
        public.context("api server failed")?;
        ops.context("api operations server failed")
    }
}

/// A worker with its probe port bound.
pub struct WorkerServer {
    listener: TcpListener,
    worker: Worker,
}

impl WorkerServer {
    /// The probe port's address.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `shutdown`, then drains (see [`Worker::run`]).
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        if let Ok(address) = self.address() {
            tracing::info!(%address, "worker probes listening");
        }
        self.worker.run(self.listener, shutdown).await
    }
}

/// The configuration as in effect, as TOML: defaults filled in, the queue of
/// every task type and the queues a worker consumes spelled out, each task
/// type's section included, secrets redacted.
pub fn effective_config(config: &Config, registry: &Registry) -> anyhow::Result<String> {
    let mut table = toml::Table::try_from(config).context("encoding the configuration")?;
    if let Some(toml::Value::Table(worker)) = table.get_mut("worker") {
        let queues = registry.consumed_queues(&config.worker.queues);
        worker.insert("queues".into(), toml::Value::try_from(queues)?);
    }
    let task_queues: toml::Table = registry
        .iter()
        .map(|task| (task.name().to_owned(), toml::Value::from(task.queue())))
        .collect();
    table.insert("task_queues".into(), toml::Value::Table(task_queues));
    for (section, settings) in registry.settings() {
        table.insert(
            section.to_owned(),
            toml::Value::try_from(without_nulls(settings.clone()))?,
        );
    }
    Ok(toml::to_string_pretty(&table)?)
}

/// TOML has no null: an unset optional key is simply absent.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        other => other,
    }
}
