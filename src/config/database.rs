//! `[database]`: the PostgreSQL connection.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, SecretUrl, check};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: SecretUrl,
    /// Connections of the pool, per process.
    pub max_connections: NonZeroU32,
    /// How long a request waits for a pooled connection before a 503.
    pub acquire_timeout_seconds: std::num::NonZeroU64,
    /// Upper bound on any one database call, so an unreachable server fails fast.
    pub query_timeout_seconds: std::num::NonZeroU64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/tasker"),
            max_connections: super::nonzero_u32(10),
            acquire_timeout_seconds: super::nonzero_u64(3),
            query_timeout_seconds: super::nonzero_u64(5),
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
        check(
            "database.url",
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "must be a postgres:// URL",
        )
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_seconds.get())
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(self.query_timeout_seconds.get())
    }
}
