//! The shared handles both the API and the worker are built from.

use anyhow::Context;

use crate::cache::Cache;
use crate::config::Config;
use crate::queue::Queue;
use crate::redis_pool::{self, Keys};
use crate::store::Store;
use crate::tasks::Registry;
use crate::telemetry::metrics;

/// Cheap-to-clone handles on PostgreSQL, Redis and the task types.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub queue: Queue,
    pub cache: Cache,
    pub registry: Registry,
}

impl Services {
    /// Builds every handle without connecting: connections are made on first
    /// use, so a process starts while a dependency is down.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let store = Store::connect_lazy(&config.database).context("database.url")?;
        let pool = redis_pool::connect(&config.redis).context("redis.url")?;
        let keys = Keys::new(config.redis.key_prefix.clone());
        let timeout = config.redis.timeout();
        Ok(Self {
            store,
            queue: Queue::new(pool.clone(), keys.clone(), timeout),
            cache: Cache::new(pool, keys, config.cache.ttl_seconds, timeout),
            registry: Registry::new(config)?,
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
                error = %crate::telemetry::logs::error_chain(&err),
                "cannot read Redis maxmemory-policy"
            ),
        }
    }

    /// Refreshes the gauges read at scrape time: pool usage, and the depth
    /// and oldest age of every queue. Queue figures come from Redis, shared
    /// by every replica, so `max` over replicas is the true value and the
    /// cost does not grow with the number of tasks.
    pub async fn record_gauges(&self) {
        let (open, idle, max) = self.store.pool_stats();
        metrics::record_pool(metrics::DB_POOL, open, idle, max);
        let (open, idle, max) = self.queue.pool_status();
        metrics::record_pool(metrics::REDIS_POOL, open, idle, max);
        let queues: Vec<String> = self.registry.queues().into_iter().collect();
        match self.queue.depths(&queues).await {
            Ok(depths) => {
                for depth in depths {
                    ::metrics::gauge!(metrics::QUEUE_DEPTH, "queue" => depth.queue.clone())
                        .set(depth.ready as f64);
                    ::metrics::gauge!(metrics::QUEUE_OLDEST_AGE, "queue" => depth.queue)
                        .set(depth.oldest_age_seconds);
                }
            }
            Err(err) => tracing::debug!(
                error = %crate::telemetry::logs::error_chain(&err),
                "cannot read queue depths"
            ),
        }
    }
}
