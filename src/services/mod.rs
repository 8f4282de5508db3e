//! Services: what the HTTP handlers and the worker call (the seed's
//! routers → services → repositories). [`Services`] holds the shared
//! handles on PostgreSQL, Redis and the task types; [`Submissions`] stores
//! and dispatches new tasks, [`Reads`] answers for them.

mod api_keys;
mod control;
mod intake;
mod quota;
mod reading;
mod submission;

use crate::budget::Budgets;
use crate::cache::Cache;
use crate::config::{Config, ConfigError};
use crate::keys::Keys;
use crate::queue::Queue;
use crate::redis_pool::{Redis, RedisError};
use crate::store::{self, Store};
use crate::tasks::{Registry, TaskEnv};

pub use api_keys::{ApiKeys, KeyError, KeyRequest};
pub use control::queues::{PAUSE_FLAG_LIFETIME, QueueState};
pub use control::{Control, ControlError};
pub use intake::Intake;
pub use quota::Quotas;
pub use reading::{
    CacheState, Cursor, DEFAULT_PAGE, Found, ListRequest, MAX_PAGE, Page, ReadError, Reads,
};
pub use submission::{Accepted, Submissions, SubmitError};

/// Why the handles could not be built (nothing connects yet, so only a
/// malformed setting can stop it).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database.url")]
    Database(#[source] store::Error),
    #[error("redis.url")]
    Redis(#[source] RedisError),
}

/// Cheap-to-clone handles on PostgreSQL, Redis and the task types.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub redis: Redis,
    pub budgets: Budgets,
    pub keys: Keys,
    pub queue: Queue,
    pub cache: Cache,
    pub registry: Registry,
}

impl Services {
    /// Builds every handle without connecting: connections are made on first
    /// use, so a process starts while a dependency is down.
    pub fn build(config: &Config) -> Result<Self, BuildError> {
        let store = Store::connect_lazy(&config.database).map_err(BuildError::Database)?;
        let redis = Redis::connect(&config.redis).map_err(BuildError::Redis)?;
        let keys = Keys::new(config.redis.key_prefix.clone());
        let budgets = Budgets::new(redis.clone());
        let env = TaskEnv {
            budgets: Some((budgets.clone(), keys.clone())),
        };
        let registry = Registry::with_env(config, &env)?;
        Ok(Self {
            store,
            budgets,
            queue: Queue::new(redis.clone(), keys.clone()),
            cache: Cache::new(redis.clone(), keys.clone(), config.cache.ttl_seconds.get()),
            redis,
            keys,
            registry,
        })
    }

    /// Warns when Redis may evict keys. Nothing breaks (PostgreSQL has every
    /// task and the reconciler re-dispatches), but evicted messages and
    /// results cost latency and database reads.
    pub async fn warn_if_redis_evicts(&self) {
        match self.queue.eviction_policy().await {
            Ok(Some(policy)) if policy != "noeviction" => tracing::warn!(
                maxmemory_policy = %policy,
                "Redis may evict keys under memory pressure; set maxmemory-policy to noeviction \
                 (no task is lost either way: evicted dispatches are repaired by the reconciler)"
            ),
            Ok(_) => {}
            Err(err) => tracing::debug!(
                error = %crate::telemetry::error_chain(&err),
                "cannot read Redis maxmemory-policy"
            ),
        }
    }
}
