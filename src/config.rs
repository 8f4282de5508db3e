//! Configuration: built-in defaults → TOML file → `TASKER_…` environment →
//! secrets from `TASKER_…_FILE` files, later layers winning. Each part of the
//! service receives only its own section.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

const ENV_PREFIX: &str = "TASKER_";
const FILE_SUFFIX: &str = "_FILE";

/// Why the configuration could not be loaded. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Figment(String),
    #[error("invalid configuration: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("cannot read the secret file named by {variable} ({path}): {source}")]
    SecretFile {
        variable: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub cache: CacheConfig,
    pub log: LogConfig,
    pub llm: LlmConfig,
    pub otel: OtelConfig,
    pub retention: RetentionConfig,
    /// Overrides of the queue a task type runs on: task name → queue name.
    pub task_queues: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_seconds: u64,
    /// Upper bound on any one database call, so an unreachable server fails fast.
    pub query_timeout_seconds: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/tasker"),
            max_connections: 10,
            acquire_timeout_seconds: 3,
            query_timeout_seconds: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
    /// Every key the service writes starts with `{key_prefix}:`.
    pub key_prefix: String,
    pub pool_size: usize,
    /// Upper bound on any one Redis call.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("redis://127.0.0.1:6379"),
            key_prefix: "tasker".into(),
            pool_size: 16,
            timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` keeps mapping to its task.
    pub idempotency_window_seconds: u64,
    /// Upper bound on `wait` of a long-polling read.
    pub max_wait_seconds: u64,
    /// Most tasks one `POST /run-tasks` may carry.
    pub max_batch_size: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            max_body_bytes: 1024 * 1024,
            idempotency_window_seconds: 24 * 3600,
            max_wait_seconds: 30,
            max_batch_size: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// The worker's own HTTP port: `/health`, `/ready`, `/metrics`.
    pub listen: SocketAddr,
    pub concurrency: usize,
    /// Queues this worker consumes; empty means every queue a task type uses.
    pub queues: Vec<String>,
    pub lease_seconds: u64,
    pub reconcile_interval_seconds: u64,
    pub shutdown_grace_seconds: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8001)),
            concurrency: 64,
            queues: Vec::new(),
            lease_seconds: 30,
            reconcile_interval_seconds: 5,
            shutdown_grace_seconds: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl_seconds: 3600 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `text`; unset means JSON, except `tasker dev` which prints text.
    pub format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `tasker=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: None,
            level: "info,sqlx=warn".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub timeout_seconds: u64,
    /// Used when a `query_llm` task does not give `max_tokens`.
    pub default_max_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
            model: "claude-sonnet-4-5".into(),
            timeout_seconds: 60,
            default_max_tokens: 1024,
        }
    }
}

/// How long finished tasks are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished tasks older than this many days are deleted; 0 keeps them.
    pub days: u32,
    /// How often each worker deletes a few batches of them.
    pub interval_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 30,
            interval_seconds: 300,
        }
    }
}

impl RetentionConfig {
    /// The age past which finished tasks go, or `None` to keep them forever.
    pub fn max_age(&self) -> Option<Duration> {
        (self.days > 0).then(|| Duration::from_secs(u64::from(self.days) * 24 * 3600))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }
}

/// How traces are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OtelProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// OTLP/HTTP base URL (e.g. `http://collector:4318`); tracing is off when unset.
    pub endpoint: Option<String>,
    pub service_name: String,
    pub protocol: OtelProtocol,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "tasker".into(),
            protocol: OtelProtocol::HttpProtobuf,
        }
    }
}

impl OtelConfig {
    /// The standard `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME` and
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` apply where Tasker's own keys are unset.
    fn apply_standard_env(
        &mut self,
        defaults: &OtelConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if self.endpoint.is_none() {
            self.endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty());
        }
        if self.service_name == defaults.service_name
            && let Some(name) = var("OTEL_SERVICE_NAME").filter(|v| !v.is_empty())
        {
            self.service_name = name;
        }
        if self.protocol == defaults.protocol
            && let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL")
        {
            self.protocol = match protocol.as_str() {
                "http/protobuf" => OtelProtocol::HttpProtobuf,
                "http/json" => OtelProtocol::HttpJson,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "otel.protocol",
                        reason: format!(
                            "(from OTEL_EXPORTER_OTLP_PROTOCOL) `{other}` is not supported: \
                             use http/protobuf or http/json"
                        ),
                    });
                }
            };
        }
        Ok(())
    }
}

impl Config {
    /// Loads every layer from the process environment and the optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `TASKER_<SECTION>__<KEY>` names configuration: Kubernetes puts
        // variables such as `TASKER_API_PORT` (from a Service named
        // `tasker-api`) in every pod, and those must not be read as keys.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    key.contains("__") && !key.ends_with("_file")
                })
                .split("__"),
        );
        for (key, value) in secrets_from_files(std::env::vars())? {
            figment = figment.merge(Serialized::default(&key, value));
        }
        let mut config: Config = figment.extract().map_err(describe)?;
        // An empty key (say `TASKER_LLM__API_KEY=` from an unset shell
        // variable) means no key, so the task can say which key to set.
        if config
            .llm
            .api_key
            .as_ref()
            .is_some_and(|key| key.expose().trim().is_empty())
        {
            config.llm.api_key = None;
        }
        config
            .otel
            .apply_standard_env(&OtelConfig::default(), |name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        check(
            "database.url",
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "must be a postgres:// URL",
        )?;
        let url = self.redis.url.expose();
        check(
            "redis.url",
            url.starts_with("redis://") || url.starts_with("rediss://"),
            "must be a redis:// or rediss:// URL",
        )?;
        check(
            "redis.key_prefix",
            !self.redis.key_prefix.is_empty()
                && !self.redis.key_prefix.chars().any(char::is_whitespace),
            "must be non-empty and contain no spaces",
        )?;
        check(
            "redis.pool_size",
            self.redis.pool_size >= 2,
            "must be at least 2",
        )?;
        check(
            "redis.timeout_ms",
            self.redis.timeout_ms >= 10,
            "must be at least 10",
        )?;
        check(
            "database.max_connections",
            self.database.max_connections >= 1,
            "must be at least 1",
        )?;
        check(
            "database.acquire_timeout_seconds",
            self.database.acquire_timeout_seconds >= 1,
            "must be at least 1",
        )?;
        check(
            "database.query_timeout_seconds",
            self.database.query_timeout_seconds >= 1,
            "must be at least 1",
        )?;
        check(
            "api.max_body_bytes",
            self.api.max_body_bytes >= 1024,
            "must be at least 1024",
        )?;
        check(
            "worker.concurrency",
            self.worker.concurrency >= 1,
            "must be at least 1",
        )?;
        check(
            "worker.lease_seconds",
            self.worker.lease_seconds >= 2,
            "must be at least 2",
        )?;
        check(
            "worker.reconcile_interval_seconds",
            self.worker.reconcile_interval_seconds >= 1,
            "must be at least 1",
        )?;
        check(
            "cache.ttl_seconds",
            self.cache.ttl_seconds >= 1,
            "must be at least 1",
        )?;
        check(
            "llm.base_url",
            reqwest::Url::parse(&self.llm.base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "must be an http:// or https:// URL",
        )?;
        check("llm.model", !self.llm.model.is_empty(), "must not be empty")?;
        check(
            "llm.timeout_seconds",
            self.llm.timeout_seconds >= 1,
            "must be at least 1",
        )?;
        check(
            "llm.default_max_tokens",
            self.llm.default_max_tokens >= 1,
            "must be at least 1",
        )?;
        if let Some(endpoint) = &self.otel.endpoint {
            check(
                "otel.endpoint",
                reqwest::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "must be an http:// or https:// URL",
            )?;
        }
        check(
            "otel.service_name",
            !self.otel.service_name.is_empty(),
            "must not be empty",
        )?;
        tracing_filter_is_valid(&self.log.level)
    }
}

impl DatabaseConfig {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_seconds)
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(self.query_timeout_seconds)
    }
}

impl ApiConfig {
    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_seconds)
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl WorkerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// Figment reports environment keys in upper case and the file or variable
/// only in metadata; name the key the way the README does, then the source.
fn describe(errors: figment::Error) -> ConfigError {
    let messages: Vec<String> = errors
        .into_iter()
        .map(|err| {
            let key = err.path.join(".").to_ascii_lowercase();
            let source = err
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", err.kind)
            } else {
                format!("`{key}`: {}{source}", err.kind)
            }
        })
        .collect();
    ConfigError::Figment(messages.join("; "))
}

fn check(key: &'static str, ok: bool, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        })
    }
}

fn tracing_filter_is_valid(level: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|err| ConfigError::Invalid {
            key: "log.level",
            reason: format!("is not a valid filter: {err}"),
        })
}

/// `TASKER_LLM__API_KEY_FILE=/run/secrets/key` becomes `llm.api_key` = the file's
/// contents, trailing newline removed: the form Kubernetes Secrets mount in.
fn secrets_from_files(
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut secrets = Vec::new();
    for (variable, path) in vars {
        let Some(name) = variable
            .strip_prefix(ENV_PREFIX)
            .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
            .filter(|name| name.contains("__"))
        else {
            continue;
        };
        let key = name.to_ascii_lowercase().replace("__", ".");
        let path = PathBuf::from(path);
        let contents =
            std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                variable: variable.clone(),
                path: path.clone(),
                source,
            })?;
        secrets.push((key, contents.trim_end_matches(['\r', '\n']).to_owned()));
    }
    Ok(secrets)
}

/// A value that must never be printed: `Debug` and `Display` show a redacted
/// form, and only `expose` gives the real text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with any URL password replaced, for logs.
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(mut url) if url.has_host() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            _ => "***".to_owned(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
        Config::load(file.map(|f| jail.directory().join(f)).as_deref())
    }

    #[test]
    fn defaults_point_at_local_services() {
        let config = Config::default();
        assert_eq!(config.redis.key_prefix, "tasker");
        assert_eq!(config.api.listen.port(), 8000);
        assert_eq!(config.cache.ttl_seconds, 3600);
        assert_eq!(config.api.max_body_bytes, 1024 * 1024);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tasker.toml",
                "[redis]\nkey_prefix = \"fromfile\"\n[worker]\nconcurrency = 3\n",
            )?;
            jail.set_env("TASKER_WORKER__CONCURRENCY", "7");
            jail.set_env("TASKER_CACHE__TTL_SECONDS", "60");
            let config = load_in(jail, Some("tasker.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.redis.key_prefix, "fromfile");
            assert_eq!(config.worker.concurrency, 7);
            assert_eq!(config.cache.ttl_seconds, 60);
            Ok(())
        });
    }

    #[test]
    fn lists_and_maps_come_from_the_environment_too() {
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_WORKER__QUEUES", "[llm, default]");
            jail.set_env("TASKER_TASK_QUEUES__QUERY_LLM", "slow");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.worker.queues, vec!["llm", "default"]);
            assert_eq!(
                config.task_queues.get("query_llm").map(String::as_str),
                Some("slow")
            );
            Ok(())
        });
    }

    #[test]
    fn kubernetes_service_variables_are_not_configuration() {
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_API_PORT", "tcp://10.0.0.1:8000");
            jail.set_env("TASKER_WORKER_SERVICE_HOST", "10.0.0.2");
            jail.set_env("TASKER_API_PORT_8000_TCP_FILE", "/nonexistent");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.api.listen.port(), 8000);
            Ok(())
        });
    }

    #[test]
    fn standard_opentelemetry_variables_are_honoured_below_our_own() {
        Jail::expect_with(|jail| {
            jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
            jail.set_env("OTEL_SERVICE_NAME", "tasker-prod");
            jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.otel.endpoint.as_deref(),
                Some("http://collector:4318")
            );
            assert_eq!(config.otel.service_name, "tasker-prod");
            assert_eq!(config.otel.protocol, OtelProtocol::HttpJson);
            jail.set_env("TASKER_OTEL__ENDPOINT", "http://ours:4318");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert_eq!(config.otel.endpoint.as_deref(), Some("http://ours:4318"));
            jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("otel.protocol"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tracing_is_off_by_default() {
        Jail::expect_with(|jail| {
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert!(config.otel.endpoint.is_none());
            Ok(())
        });
    }

    #[test]
    fn an_empty_llm_key_means_no_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_LLM__API_KEY", "");
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            assert!(config.llm.api_key.is_none());
            Ok(())
        });
    }

    #[test]
    fn secrets_are_read_from_files_and_win() {
        Jail::expect_with(|jail| {
            jail.create_file("key", "sk-from-file\n")?;
            jail.set_env("TASKER_LLM__API_KEY", "sk-from-env");
            jail.set_env(
                "TASKER_LLM__API_KEY_FILE",
                jail.directory().join("key").display(),
            );
            let config = load_in(jail, None).map_err(|e| e.to_string())?;
            let key = config.llm.api_key.as_ref().map(Secret::expose);
            assert_eq!(key, Some("sk-from-file"));
            Ok(())
        });
    }

    #[test]
    fn a_missing_secret_file_names_its_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_LLM__API_KEY_FILE", "/nonexistent/key");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("TASKER_LLM__API_KEY_FILE"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_invalid_value_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_WORKER__CONCURRENCY", "many");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("worker.concurrency"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_WORKER__CONCURRENCY", "0");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("worker.concurrency"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_DATABASE__URL", "mysql://localhost/x");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("database.url"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TASKER_LOG__FORMAT", "xml");
            let err = load_in(jail, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("log.format"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_the_file_is_rejected() {
        Jail::expect_with(|jail| {
            jail.create_file("tasker.toml", "[api]\nlisten_port = 1\n")?;
            let err = load_in(jail, Some("tasker.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("listen_port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let mut config = Config::default();
        config.database.url = Secret::new("postgres://tasker:hunter2@db:5432/tasker");
        config.llm.api_key = Some(Secret::new("sk-ant-very-secret"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("sk-ant-very-secret"), "{printed}");
        assert!(
            printed.contains("db:5432"),
            "the host stays visible: {printed}"
        );
    }
}
