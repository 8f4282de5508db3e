//! Configuration: built-in defaults → TOML file → `TASKER_…` environment →
//! secrets from `TASKER_…_FILE` files, later layers winning.
//!
//! One file per section, each with its defaults and its validation beside
//! the fields. Sections of task types (such as `[llm]` of `query_llm`) are
//! kept raw in [`TaskSections`] and read, typed and checked by the task type
//! itself when the registry builds it. `tasker api` and `tasker worker` read
//! the sections they use; nothing here connects to anything.

mod api;
mod auth;
mod cache;
mod database;
mod log;
mod otel;
mod redis;
mod retention;
mod secret;
mod worker;

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use api::ApiConfig;
pub use auth::AuthConfig;
pub use cache::CacheConfig;
pub use database::{DatabaseConfig, Pooler};
pub use log::{LogConfig, LogFormat};
pub use otel::{OtelConfig, OtelProtocol};
pub use redis::{RedisConfig, RedisMode};
pub use retention::RetentionConfig;
pub use secrecy::{ExposeSecret, SecretString};
pub use secret::{SecretUrl, non_empty, redact_optional};
pub use worker::WorkerConfig;

const ENV_PREFIX: &str = "TASKER_";
const FILE_SUFFIX: &str = "_FILE";

/// Why the configuration could not be loaded. Every variant names the key
/// (or the file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Figment(String),
    #[error("invalid configuration: `{key}` {reason}")]
    Invalid { key: String, reason: String },
    #[error("the configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("cannot read the secret file named by {variable} ({path}): {source}")]
    SecretFile {
        variable: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub cache: CacheConfig,
    pub log: LogConfig,
    pub otel: OtelConfig,
    pub retention: RetentionConfig,
    pub auth: AuthConfig,
    /// Overrides of the queue a task type runs on: task name → queue name.
    pub task_queues: BTreeMap<String, String>,
    /// Every other top-level section: those of task types, read by them.
    /// A section no task type reads is refused when the registry is built.
    #[serde(flatten)]
    pub tasks: TaskSections,
}

/// Raw sections of task types, by section name.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct TaskSections(BTreeMap<String, figment::value::Value>);

impl std::fmt::Debug for TaskSections {
    /// Names only: raw sections may hold secrets (`llm.api_key`), which only
    /// their task type knows to redact.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Serialize for TaskSections {
    /// Nothing: the registry prints each section typed, defaults filled in
    /// and secrets redacted.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

impl TaskSections {
    /// Section `name` as `T`: fields it does not give take `T`'s defaults
    /// (`T` should be `#[serde(default)]`); errors name `name.field`.
    pub fn read<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let mut figment = Figment::new();
        if let Some(values) = self.0.get(name) {
            figment = figment.merge(Serialized::defaults(values));
        }
        figment.extract().map_err(|err| describe(err, Some(name)))
    }

    /// Names of every section given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Sets `section.key`, as a file or the environment would (for tests
    /// and embedding).
    pub fn set(&mut self, section: &str, key: &str, value: impl Serialize) {
        let value = figment::value::Value::serialize(value)
            .unwrap_or_else(|_| figment::value::Value::from(String::new()));
        let entry = self
            .0
            .entry(section.to_owned())
            .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
        if let figment::value::Value::Dict(_, dict) = entry {
            dict.insert(key.to_owned(), value);
        }
    }
}

impl Config {
    /// Loads every layer from the process environment and the optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
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
        let mut config: Config = figment.extract().map_err(|err| describe(err, None))?;
        config
            .otel
            .apply_standard_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.redis.validate()?;
        self.api.validate()?;
        self.worker.validate()?;
        self.log.validate()?;
        self.otel.validate()?;
        self.auth.validate()?;
        for (task, queue) in &self.task_queues {
            check(
                &format!("task_queues.{task}"),
                !queue.trim().is_empty(),
                "must not be empty",
            )?;
        }
        Ok(())
    }
}

/// Figment reports environment keys in upper case and the file or variable
/// only in metadata; name the key the way the README does, then the source.
fn describe(errors: figment::Error, section: Option<&str>) -> ConfigError {
    let messages: Vec<String> = errors
        .into_iter()
        .map(|err| {
            let mut path: Vec<String> = section.map(str::to_owned).into_iter().collect();
            path.extend(err.path.iter().cloned());
            let key = path.join(".").to_ascii_lowercase();
            let source = err
                .metadata
                .as_ref()
                .filter(|_| section.is_none())
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

/// `Ok` when `ok`, else an error naming `key`.
pub fn check(key: &str, ok: bool, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    }
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

/// For defaults: a count known not to be zero.
pub(crate) const fn nonzero_u64(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

pub(crate) const fn nonzero_usize(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

pub(crate) const fn nonzero_u32(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
mod tests;
