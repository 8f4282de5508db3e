//! Shared test support: a fresh database and Redis key prefix per test, the
//! real API and worker started in-process on port 0, a fake LLM server, and
//! a TCP proxy that can cut a dependency off.
#![allow(dead_code)]

pub mod fake_llm;
pub mod processes;
pub mod proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tasker::app::Application;
use tasker::config::{Config, SecretUrl};
use tasker::services::Services;
use tasker::shutdown::Shutdown;
use uuid::Uuid;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PG_HOST: &str = "127.0.0.1:5432";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const REDIS_HOST: &str = "127.0.0.1:6379";
/// Upper bound on waiting for any condition in a test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Fails fast, with the fix, when PostgreSQL or Redis is not running.
pub async fn require_services() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Some(result) = CHECKED.get() {
        return result.clone().unwrap_or_else(|e| panic!("{e}"));
    }
    let pg =
        tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(PG_ADMIN_URL)).await;
    let redis = tokio::time::timeout(Duration::from_secs(3), async {
        let client = redis::Client::open(REDIS_URL)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await;
    let mut problems = Vec::new();
    if !matches!(pg, Ok(Ok(_))) {
        problems.push(format!(
            "PostgreSQL is not reachable at {PG_HOST} (user postgres, trust auth). Start it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ));
    }
    if !matches!(redis, Ok(Ok(_))) {
        problems.push(format!(
            "Redis is not reachable at {REDIS_HOST}. Start it with: \
             redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no"
        ));
    }
    let result = if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    };
    let result = CHECKED.get_or_init(|| result).clone();
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// An isolated environment: its own database and Redis key prefix, removed on drop.
pub struct TestEnv {
    pub database: String,
    pub prefix: String,
    pub config: Config,
    /// Whether the key prefix is removed from the local Redis on drop
    /// (not when the test runs against Redis servers of its own).
    clean_local_redis: bool,
}

impl TestEnv {
    /// This environment with its processes on the Redis at `url` in
    /// `mode` (`cluster`, `sentinel`) instead of the local Redis, which it
    /// then leaves alone.
    pub fn on_redis(mut self, url: &str, mode: tasker::config::RedisMode) -> Self {
        self.config.redis.url = SecretUrl::new(url);
        self.config.redis.mode = mode;
        self.clean_local_redis = false;
        self
    }

    pub async fn new() -> Self {
        require_services().await;
        if std::env::var_os("TEST_LOG").is_some() {
            let telemetry = tasker::telemetry::logs::init(
                &Default::default(),
                &Default::default(),
                tasker::config::LogFormat::Text,
                "test",
            );
            drop(telemetry);
        }
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("tasker_test_{id}");
        let mut admin = PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("admin connection");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{database}\""
            )))
            .await
            .expect("create test database");
        let prefix = format!("test-{id}");
        let mut config = Config::default();
        config.database.url = SecretUrl::new(format!("postgres://postgres@{PG_HOST}/{database}"));
        config.database.acquire_timeout_seconds = 2.try_into().unwrap();
        config.database.query_timeout_seconds = 3.try_into().unwrap();
        config.redis.url = SecretUrl::new(REDIS_URL);
        config.redis.key_prefix = prefix.clone();
        config.api.listen = "127.0.0.1:0".parse().expect("addr");
        config.api.ops_listen = "127.0.0.1:0".parse().expect("addr");
        config.worker.listen = "127.0.0.1:0".parse().expect("addr");
        config.worker.reconcile_interval_seconds = 1.try_into().unwrap();
        config.worker.concurrency = 4.try_into().unwrap();
        config.tasks.set("llm", "base_url", "http://127.0.0.1:9");
        let env = Self {
            database,
            prefix,
            config,
            clean_local_redis: true,
        };
        let services = Services::build(&env.config).expect("services");
        services.store.migrate().await.expect("migrate");
        services.store.close().await;
        env
    }

    pub fn database_url(&self) -> String {
        self.config.database.url.expose().to_owned()
    }

    /// A direct pool on the test database, for assertions.
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.database_url())
            .await
            .expect("test pool")
    }

    /// A Redis connection for assertions, patient enough for whole-server
    /// scans on a busy machine.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(20)));
        redis::Client::open(REDIS_URL)
            .expect("redis client")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("redis connection")
    }

    /// Every Redis key of this test.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        conn.keys(format!("{}:*", self.prefix)).await.expect("KEYS")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let database = self.database.clone();
        let prefix = self.prefix.clone();
        let clean_local_redis = self.clean_local_redis;
        // Drop runs inside the test's runtime; clean up from a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(PG_ADMIN_URL).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
                    let _ = admin.execute(sqlx::AssertSqlSafe(sql)).await;
                }
                if clean_local_redis
                    && let Ok(client) = redis::Client::open(REDIS_URL)
                    && let Ok(mut conn) = client
                        .get_multiplexed_async_connection_with_config(
                            &redis::AsyncConnectionConfig::new()
                                .set_response_timeout(Some(Duration::from_secs(20))),
                        )
                        .await
                {
                    let keys: Vec<String> =
                        conn.keys(format!("{prefix}:*")).await.unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<(), _> = conn.del(keys).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The API (and optionally a worker) of one test, running in-process.
pub struct TestApp {
    pub env: TestEnv,
    pub address: SocketAddr,
    /// The API's operations port (`/metrics`).
    pub ops_address: SocketAddr,
    pub worker_address: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub services: Services,
    shutdown: Shutdown,
    workers: Vec<(Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

impl TestApp {
    /// API and worker with the default test configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}, true).await
    }

    /// API only: tasks stay pending.
    pub async fn spawn_api_only() -> Self {
        Self::spawn_with(|_| {}, false).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config), with_worker: bool) -> Self {
        let mut env = TestEnv::new().await;
        configure(&mut env.config);
        Self::start(env, with_worker).await
    }

    /// Starts the API the way `tasker api` does, and a worker if asked.
    pub async fn start(env: TestEnv, with_worker: bool) -> Self {
        tasker::tls::install_crypto_provider();
        let app = Application::build(env.config.clone()).expect("application");
        let services = app.services().clone();
        let shutdown = Shutdown::new();
        let api = app.bind_api().await.expect("bind api");
        let address = api.address().expect("api address");
        let ops_address = api.ops_address().expect("ops address");
        tokio::spawn(api.run(shutdown.clone()));
        let mut app = Self {
            env,
            address,
            ops_address,
            worker_address: None,
            client: reqwest::Client::new(),
            services,
            shutdown,
            workers: Vec::new(),
        };
        if with_worker {
            app.start_worker().await;
        }
        app
    }

    /// Starts another worker in this process, the way `tasker worker`
    /// does (with pools of its own); returns its index.
    pub async fn start_worker(&mut self) -> usize {
        let app = Application::build(self.env.config.clone()).expect("application");
        let worker = app.bind_worker().await.expect("bind worker");
        self.worker_address = Some(worker.address().expect("worker address"));
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        self.workers.push((shutdown, handle));
        self.workers.len() - 1
    }

    /// Asks worker `index` to shut down, as SIGTERM would, and waits until it has.
    pub async fn stop_worker(&mut self, index: usize) {
        let (shutdown, handle) = &mut self.workers[index];
        shutdown.trigger();
        let stopped = tokio::time::timeout(PATIENCE, handle).await;
        stopped
            .expect("worker stops")
            .expect("join")
            .expect("worker ok");
    }

    /// Asks the API to shut down, as SIGTERM would.
    pub fn shutdown_api(&self) {
        self.shutdown.trigger();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GET a path of the API.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GET a path of the API and read the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("JSON body")
    }

    /// GET a path of the last started worker's probe port.
    pub async fn worker_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.worker_url(path))
            .send()
            .await
            .expect("GET")
    }

    /// Tasks stored in this test's database.
    pub async fn count_tasks(&self) -> i64 {
        let pool = self.env.pool().await;
        sqlx::query_scalar("SELECT count(*) FROM tasks")
            .fetch_one(&pool)
            .await
            .expect("count tasks")
    }

    /// The API's `/metrics` page (on its operations port).
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("http://{}/metrics", self.ops_address))
            .send()
            .await
            .expect("GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// The last started worker's `/metrics` page.
    pub async fn worker_metrics(&self) -> String {
        let response = self
            .client
            .get(self.worker_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        response.text().await.expect("metrics text")
    }

    pub fn worker_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.worker_address.expect("no worker started")
        )
    }

    pub async fn post_task(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/run-task"))
            .json(&body)
            .send()
            .await
            .expect("POST /run-task")
    }

    /// Submits a task that must be accepted and returns its id.
    pub async fn submit(&self, body: Value) -> Uuid {
        let response = self.post_task(body.clone()).await;
        assert_eq!(response.status(), 202, "submitting {body}");
        let json: Value = response.json().await.expect("json");
        json["task_uuid"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("task_uuid")
    }

    pub async fn get_output(&self, id: Uuid) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/get-task-output?task_uuid={id}")))
            .send()
            .await
            .expect("GET /get-task-output")
    }

    /// Waits until the task has the given status.
    pub async fn wait_status(&self, id: Uuid, status: &str) -> Value {
        eventually(|| async {
            let task = self.task(id).await;
            (task["status"] == status).then_some(task)
        })
        .await
    }

    pub async fn task(&self, id: Uuid) -> Value {
        let response = self.get_output(id).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("task json")
    }

    /// Waits until the task is completed, failed or cancelled, and returns it.
    pub async fn wait_terminal(&self, id: Uuid) -> Value {
        eventually(|| async {
            let task = self.task(id).await;
            matches!(
                task["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
            .then_some(task)
        })
        .await
    }

    /// POSTs `body` (JSON) to a path of the API.
    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for (shutdown, _) in &self.workers {
            shutdown.trigger();
        }
        self.shutdown.trigger();
    }
}

/// A validated task of the registry's type named in `body`, as a
/// submission would store it.
pub fn new_task(services: &Services, body: Value) -> tasker::domain::NewTask {
    let (task, parameters) = services
        .registry
        .parse_submission(body)
        .expect("a valid submission");
    task.new_task(parameters, &tasker::domain::Origin::default())
}

/// The value of the sample `series` (name and labels exactly as exposed,
/// e.g. `tasker_queue_depth{queue="default"}`) in a Prometheus text page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The attempt budget of the built-in task type `name`, as its type
/// declares it.
pub fn retry_budget(name: &str) -> u32 {
    tasker::tasks::Registry::new(&Config::default())
        .expect("the built-in task types")
        .get(name)
        .expect("a task type")
        .retry_policy()
        .max_attempts
}

/// Polls `check` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `count` (a `SELECT count(*)` of no parameters) answers
/// `expected`, failing the test after [`PATIENCE`].
pub async fn wait_for_count(pool: &PgPool, count: &'static str, expected: i64) {
    eventually(|| async {
        let found: i64 = sqlx::query_scalar(count).fetch_one(pool).await.unwrap();
        (found == expected).then_some(())
    })
    .await;
}

impl TestApp {
    /// Makes an API key of `tenant` with `scopes` (and a submission rate)
    /// and returns its token.
    pub async fn key(&self, tenant: &str, scopes: &[&str], rate: Option<u32>) -> String {
        let keys = tasker::services::ApiKeys::new(self.services.store.clone());
        let request = tasker::services::KeyRequest {
            tenant: tenant.into(),
            scopes: scopes.iter().map(|s| s.parse().expect("scope")).collect(),
            rate,
            max_running: None,
            expires_in: None,
            description: None,
        };
        keys.create(request).await.expect("key").1
    }

    /// Sends a request without a body to the API with `token` as its bearer.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::Response {
        self.as_key(method, path, token)
            .send()
            .await
            .expect("request")
    }

    /// The JSON answer of [`TestApp::send_as`].
    pub async fn json_as(&self, method: reqwest::Method, path: &str, token: &str) -> Value {
        let response = self.send_as(method, path, token).await;
        response.json().await.expect("a JSON answer")
    }

    /// A request to the API with `token` as its bearer.
    pub fn as_key(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }
}
