//! The shared Redis connection pool, and [`Redis`]: the one way every
//! module runs a command, a pipeline or a script, each bounded in time.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisFuture, Value};

use crate::config::RedisConfig;

/// Pool of multiplexed Redis connections.
type Pool = managed::Pool<Manager>;

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

/// Handle on Redis: a pool of connections and the bound on every call.
/// Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    timeout: Duration,
}

impl Redis {
    /// Builds the pool. Connections are made on first use, so a process
    /// starts while Redis is down and recovers when it returns.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisError> {
        let timeout = config.timeout();
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connector = deadpool_redis::Manager::new_with_config(config.url.expose(), connection)
            .map_err(RedisError::Config)?;
        let pool = Pool::builder(Manager { connector })
            .max_size(config.pool_size.get())
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|err| RedisError::Build(err.to_string()))?;
        Ok(Self { pool, timeout })
    }

    /// The bound on one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.pool.get().await?;
            Ok::<T, RedisError>(command.query_async(&mut *connection).await?)
        })
        .await
    }

    /// Runs a pipeline in one round trip.
    pub async fn pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.pool.get().await?;
            Ok::<T, RedisError>(pipeline.query_async(&mut *connection).await?)
        })
        .await
    }

    /// Runs a Lua script (by hash, loading it on first use).
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.pool.get().await?;
            Ok::<T, RedisError>(invocation.invoke_async(&mut *connection).await?)
        })
        .await
    }

    /// Connections of the pool: (open, idle, max).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }
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
