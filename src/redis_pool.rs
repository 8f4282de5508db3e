//! The shared Redis connection pool and the names of every key Tasker writes.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use uuid::Uuid;

use crate::config::RedisConfig;

/// Pool of multiplexed Redis connections.
pub type Pool = managed::Pool<Manager>;

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("cannot get a Redis connection")]
    Pool(#[from] managed::PoolError<redis::RedisError>),
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
    let connector = deadpool_redis::Manager::new_with_config(config.url.expose(), connection)
        .map_err(RedisError::Config)?;
    Pool::builder(Manager { connector })
        .max_size(config.pool_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|err| RedisError::Build(err.to_string()))
}

/// Makes connections with deadpool-redis, but recycles them without a round
/// trip: deadpool-redis sends `UNWATCH` + `PING` on every checkout, which
/// doubles the round trips of a one-command checkout. Tasker never uses
/// `WATCH`, and a connection that failed is marked and replaced instead.
pub struct Manager {
    connector: deadpool_redis::Manager,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Connection, redis::RedisError> {
        let inner = managed::Manager::create(&self.connector).await?;
        Ok(Connection {
            inner,
            broken: false,
        })
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        _: &Metrics,
    ) -> RecycleResult<redis::RedisError> {
        if connection.broken {
            return Err(managed::RecycleError::message(
                "connection failed during its last use",
            ));
        }
        Ok(())
    }
}

/// A pooled connection that remembers whether a command on it failed in a
/// way that may have left it unusable (I/O error, dropped, timed out).
pub struct Connection {
    inner: MultiplexedConnection,
    broken: bool,
}

impl Connection {
    fn note<T>(&mut self, result: &redis::RedisResult<T>) {
        if let Err(err) = result
            && (err.is_unrecoverable_error()
                || err.is_io_error()
                || err.is_timeout()
                || err.is_connection_dropped())
        {
            self.broken = true;
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
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
    prefix: std::sync::Arc<str>,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into().into(),
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

    /// Cached JSON of one finished task. (Named `task`, not the `result` of
    /// earlier versions, whose entries had another shape.)
    pub fn result(&self, id: Uuid) -> String {
        format!("{}:task:{id}", self.prefix)
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
