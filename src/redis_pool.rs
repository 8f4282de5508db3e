//! The shared Redis connection pool and the names of every key Tasker writes.

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use uuid::Uuid;

use crate::config::RedisConfig;

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("cannot get a Redis connection")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis command failed")]
    Command(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("invalid Redis configuration")]
    Config(#[source] redis::RedisError),
    #[error("cannot build the Redis pool: {0}")]
    Build(String),
}

/// Builds the pool. Connections are made on first use, so a process starts
/// while Redis is down and recovers when it returns.
pub fn connect(config: &RedisConfig) -> Result<Pool, RedisError> {
    let timeout = config.timeout();
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager =
        Manager::new_with_config(config.url.expose(), connection).map_err(RedisError::Config)?;
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|err| RedisError::Build(err.to_string()))
}

/// Runs one Redis call under `timeout`.
pub async fn bounded<T, E: Into<RedisError>>(
    timeout: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(RedisError::TimedOut(timeout)),
    }
}

/// Every Redis key Tasker uses, all under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sorted set of task messages ready to run, scored by enqueue time.
    pub fn ready(&self, queue: &str) -> String {
        format!("{}:queue:{queue}", self.prefix)
    }

    /// Sorted set of task messages waiting for a retry, scored by due time.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}:delayed:{queue}", self.prefix)
    }

    /// Pub/sub channel announcing the id of every task that finishes.
    pub fn finished_channel(&self) -> String {
        format!("{}:finished", self.prefix)
    }

    /// Cached terminal result of one task.
    pub fn result(&self, id: Uuid) -> String {
        format!("{}:result:{id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1");
        let id = Uuid::nil();
        for key in [keys.ready("default"), keys.delayed("llm"), keys.result(id)] {
            assert!(key.starts_with("t1:"), "{key}");
        }
    }
}
