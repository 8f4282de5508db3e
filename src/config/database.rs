//! `[database]`: the PostgreSQL connection.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, SecretUrl, check};

/// Most `database.max_connections`: more than any PostgreSQL server takes
/// (the pool sets aside room for all of them when it is made).
pub(super) const MAX_POOL_CONNECTIONS: u32 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: SecretUrl,
    /// Connections of the pool, per process (at most 10,000).
    pub max_connections: NonZeroU32,
    /// How long a request waits for a pooled connection before a 503.
    pub acquire_timeout_seconds: std::num::NonZeroU64,
    /// Upper bound on any one database call, so an unreachable server fails fast.
    pub query_timeout_seconds: std::num::NonZeroU64,
    /// What stands between Tasker and PostgreSQL at `url`.
    pub pooler: Pooler,
    /// A direct URL for `tasker migrate` (and `tasker dev`'s migrations);
    /// unset or empty: `url`. Required with a transaction pooler, which
    /// cannot hold the session-level lock migrations take.
    pub migrate_url: Option<SecretUrl>,
}

/// A connection pooler in front of PostgreSQL, as far as Tasker must care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// PostgreSQL itself, or a pooler in session mode: a connection is one
    /// server session from start to end.
    #[default]
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// consecutive transactions may run on different server sessions, so
    /// Tasker keeps no state in the session (docs/scaling.md).
    Transaction,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/tasker"),
            max_connections: super::nonzero_u32(10),
            acquire_timeout_seconds: super::nonzero_u64(3),
            query_timeout_seconds: super::nonzero_u64(5),
            pooler: Pooler::None,
            migrate_url: None,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "database.url",
            is_postgres_url(&self.url),
            "must be a postgres:// URL",
        )?;
        check(
            "database.max_connections",
            self.max_connections.get() <= MAX_POOL_CONNECTIONS,
            &format!("must be at most {MAX_POOL_CONNECTIONS}"),
        )?;
        check(
            "database.migrate_url",
            self.explicit_migrate_url().is_none_or(is_postgres_url),
            "must be a postgres:// URL",
        )
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_seconds.get())
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(self.query_timeout_seconds.get())
    }

    /// `migrate_url` when set and not empty.
    pub fn explicit_migrate_url(&self) -> Option<&SecretUrl> {
        self.migrate_url
            .as_ref()
            .filter(|url| !url.expose().trim().is_empty())
    }

    /// The settings `tasker migrate` connects with: straight to PostgreSQL
    /// at `migrate_url` (or `url`), no pooler. With a transaction pooler
    /// and no `migrate_url`, an error naming the key: migrations hold a
    /// session-level advisory lock, which such a pooler cannot keep.
    pub fn for_migrations(&self) -> Result<Self, ConfigError> {
        let url = match (self.explicit_migrate_url(), self.pooler) {
            (Some(url), _) => url.clone(),
            (None, Pooler::None) => self.url.clone(),
            (None, Pooler::Transaction) => {
                return Err(ConfigError::Invalid {
                    key: "database.migrate_url".to_owned(),
                    reason: "must be set when database.pooler is \"transaction\": migrations \
                             take a session-level advisory lock, so they need a direct \
                             connection to PostgreSQL"
                        .to_owned(),
                });
            }
        };
        Ok(Self {
            url,
            pooler: Pooler::None,
            migrate_url: None,
            ..self.clone()
        })
    }
}

fn is_postgres_url(url: &SecretUrl) -> bool {
    let url = url.expose();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
