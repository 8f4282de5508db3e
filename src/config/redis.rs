//! `[redis]`: the Redis connection that carries dispatch and the cache.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, SecretUrl, check};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretUrl,
    /// Every key the service writes starts with `{key_prefix}:`.
    pub key_prefix: String,
    /// Connections of the pool, per process (at least 2).
    pub pool_size: NonZeroUsize,
    /// Upper bound on any one Redis call (at least 10).
    pub timeout_ms: NonZeroU64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379"),
            key_prefix: "tasker".into(),
            pool_size: super::nonzero_usize(16),
            timeout_ms: super::nonzero_u64(1000),
        }
    }
}

impl RedisConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
        check(
            "redis.url",
            url.starts_with("redis://") || url.starts_with("rediss://"),
            "must be a redis:// or rediss:// URL",
        )?;
        check(
            "redis.key_prefix",
            !self.key_prefix.is_empty() && !self.key_prefix.chars().any(char::is_whitespace),
            "must be non-empty and contain no spaces",
        )?;
        check(
            "redis.pool_size",
            self.pool_size.get() >= 2,
            "must be at least 2",
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
