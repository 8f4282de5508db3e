//! `[redis]`: the Redis connection that carries dispatch and the cache.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{ConfigError, SecretUrl, check};

/// Most `redis.pool_size`: the pool sets aside room for every connection
/// when it is made.
pub(super) const MAX_POOL_SIZE: usize = 10_000;

/// How Tasker reaches Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server at `redis.url`.
    #[default]
    Standalone,
    /// A Redis Cluster; `redis.url` names seed nodes (comma-separated).
    Cluster,
    /// The master that `redis.sentinels` name for `redis.sentinel_master`;
    /// `redis.url` gives its credentials and database (its host is unused).
    Sentinel,
}

impl RedisMode {
    /// The mode as configured (`standalone`, `cluster`, `sentinel`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretUrl,
    pub mode: RedisMode,
    /// Sentinel URLs (`redis://host:26379`), for `mode = "sentinel"`: a list,
    /// or one comma-separated string (handy in an environment variable).
    #[serde(deserialize_with = "list_or_commas")]
    pub sentinels: Vec<SecretUrl>,
    /// The name the sentinels monitor the master under.
    pub sentinel_master: String,
    /// Every key the service writes starts with `{key_prefix}:`.
    pub key_prefix: String,
    /// Connections of the pool, per process (2 to 10,000).
    pub pool_size: NonZeroUsize,
    /// Upper bound on any one Redis call (at least 10).
    pub timeout_ms: NonZeroU64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379"),
            mode: RedisMode::Standalone,
            sentinels: Vec::new(),
            sentinel_master: "mymaster".into(),
            key_prefix: "tasker".into(),
            pool_size: super::nonzero_usize(16),
            timeout_ms: super::nonzero_u64(1000),
        }
    }
}

impl RedisConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let is_redis_url = |url: &str| url.starts_with("redis://") || url.starts_with("rediss://");
        check(
            "redis.url",
            is_redis_url(self.url.expose()),
            "must be a redis:// or rediss:// URL",
        )?;
        if self.mode == RedisMode::Cluster {
            check(
                "redis.url",
                self.url
                    .expose()
                    .split(',')
                    .all(|url| is_redis_url(url.trim())),
                "must be redis:// or rediss:// URLs of seed nodes, separated by commas",
            )?;
        }
        if self.mode == RedisMode::Sentinel {
            check(
                "redis.sentinels",
                !self.sentinels.is_empty(),
                "must name at least one sentinel when redis.mode is \"sentinel\"",
            )?;
            check(
                "redis.sentinels",
                self.sentinels.iter().all(|url| is_redis_url(url.expose())),
                "must be redis:// or rediss:// URLs",
            )?;
            check(
                "redis.sentinel_master",
                !self.sentinel_master.trim().is_empty(),
                "must name the master the sentinels monitor",
            )?;
        }
        check(
            "redis.key_prefix",
            !self.key_prefix.is_empty() && !self.key_prefix.chars().any(char::is_whitespace),
            "must be non-empty and contain no spaces",
        )?;
        check(
            "redis.pool_size",
            (2..=MAX_POOL_SIZE).contains(&self.pool_size.get()),
            &format!("must be at least 2 and at most {MAX_POOL_SIZE}"),
        )?;
        check(
            "redis.timeout_ms",
            self.timeout_ms.get() >= 10,
            "must be at least 10",
        )
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.get())
    }
}

/// A list of URLs, or one string of comma-separated URLs.
fn list_or_commas<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretUrl>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        List(Vec<String>),
        Commas(String),
    }
    let urls = match Urls::deserialize(deserializer)? {
        Urls::List(urls) => urls,
        Urls::Commas(urls) => urls.split(',').map(str::to_owned).collect(),
    };
    Ok(urls
        .iter()
        .map(|url| url.trim())
        .filter(|url| !url.is_empty())
        .map(SecretUrl::new)
        .collect())
}
