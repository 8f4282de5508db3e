//! The shared Redis connections, and [`Redis`]: the one way every module
//! runs a command, a pipeline or a script, each bounded in time, whatever
//! the deployment (`redis.mode`): one server, a Redis Cluster, or the
//! master that Redis Sentinel names.

mod cluster;
mod pooled;

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisFuture, Value};

use crate::config::{RedisConfig, RedisMode};
use pooled::{Connector, Manager};

pub use cluster::slot_of;

/// Pool of multiplexed connections to one server.
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

/// Handle on Redis: the connections and the bound on every call. Cheap to
/// clone.
#[derive(Clone)]
pub struct Redis {
    backend: Backend,
    timeout: Duration,
}

#[derive(Clone)]
enum Backend {
    /// One server (standalone, or the master of a sentinel deployment).
    Pooled {
        pool: Pool,
        connector: Arc<Connector>,
    },
    Cluster(Arc<cluster::Cluster>),
}

impl Redis {
    /// Builds the connections. They are made on first use, so a process
    /// starts while Redis is down and recovers when it returns.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisError> {
        let timeout = config.timeout();
        let url = config.url.expose();
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connector = match config.mode {
            RedisMode::Cluster => {
                let cluster = cluster::Cluster::new(url, timeout).map_err(RedisError::Config)?;
                return Ok(Self {
                    backend: Backend::Cluster(Arc::new(cluster)),
                    timeout,
                });
            }
            RedisMode::Standalone => Connector::server(url, connection),
            RedisMode::Sentinel => {
                let sentinels: Vec<&str> = config.sentinels.iter().map(|s| s.expose()).collect();
                Connector::sentinel(url, &sentinels, &config.sentinel_master, connection)
            }
        }
        .map_err(RedisError::Config)?;
        let connector = Arc::new(connector);
        let manager = Manager {
            connector: connector.clone(),
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.get())
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|err| RedisError::Build(err.to_string()))?;
        Ok(Self {
            backend: Backend::Pooled { pool, connector },
            timeout,
        })
    }

    /// The bound on one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether Redis is a cluster: keys of different hash slots cannot
    /// meet in one script.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.connection().await?;
            Ok::<T, RedisError>(command.query_async(&mut connection).await?)
        })
        .await
    }

    /// Runs a pipeline: in one round trip, or on a cluster one per node
    /// owning its keys, all at once.
    pub async fn pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.connection().await?;
            Ok::<T, RedisError>(pipeline.query_async(&mut connection).await?)
        })
        .await
    }

    /// Runs a Lua script (by hash, loading it on first use).
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        bounded(self.timeout, async {
            let mut connection = self.connection().await?;
            Ok::<T, RedisError>(invocation.invoke_async(&mut connection).await?)
        })
        .await
    }

    async fn connection(&self) -> Result<Shared, RedisError> {
        match &self.backend {
            Backend::Pooled { pool, .. } => Ok(Shared::Pooled(pool.get().await?)),
            Backend::Cluster(cluster) => Ok(Shared::Cluster(cluster.connection().await?)),
        }
    }

    /// A connection of its own, for blocking commands that would stall
    /// every other command sharing a connection. Calls on it may last
    /// `response_timeout`.
    pub async fn dedicated(&self, response_timeout: Duration) -> Result<Dedicated, RedisError> {
        match &self.backend {
            Backend::Pooled { connector, .. } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(response_timeout));
                let connection = bounded(self.timeout, async {
                    let client = connector.client().await?;
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                })
                .await?;
                Ok(Dedicated::Server(connection))
            }
            Backend::Cluster(cluster) => Ok(Dedicated::Cluster(
                cluster.dedicated(response_timeout).await?,
            )),
        }
    }

    /// Servers a subscriber may use, best first: the server, the current
    /// master, or the seed and then every healthy node of a cluster
    /// (classic `PUBLISH` reaches subscribers on every node). Empty when
    /// none is known now.
    pub async fn subscriber_clients(&self) -> Vec<redis::Client> {
        match &self.backend {
            Backend::Pooled { connector, .. } => bounded(self.timeout, connector.client())
                .await
                .ok()
                .into_iter()
                .collect(),
            Backend::Cluster(cluster) => cluster
                .nodes()
                .await
                .into_iter()
                .filter_map(|node| redis::Client::open(node).ok())
                .collect(),
        }
    }

    /// Connections: (open, idle, max); a cluster has one multiplexed
    /// connection (per node).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        match &self.backend {
            Backend::Pooled { pool, .. } => {
                let status = pool.status();
                (status.size, status.available, status.max_size)
            }
            Backend::Cluster(cluster) => {
                let open = usize::from(cluster.is_connected());
                (open, open, 1)
            }
        }
    }
}

/// A connection checked out for one call.
enum Shared {
    Pooled(managed::Object<Manager>),
    Cluster(cluster::Split),
}

/// A connection of one consumer's own (see [`Redis::dedicated`]); a
/// clone is a cheap handle on the same connection.
#[derive(Clone)]
pub enum Dedicated {
    Server(MultiplexedConnection),
    Cluster(cluster::Split),
}

macro_rules! delegate_connection {
    ($type:ty, $($variant:path),+) => {
        impl ConnectionLike for $type {
            fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
                match self {
                    $($variant(inner) => inner.req_packed_command(cmd),)+
                }
            }

            fn req_packed_commands<'a>(
                &'a mut self,
                pipeline: &'a Pipeline,
                offset: usize,
                count: usize,
            ) -> RedisFuture<'a, Vec<Value>> {
                match self {
                    $($variant(inner) => inner.req_packed_commands(pipeline, offset, count),)+
                }
            }

            fn get_db(&self) -> i64 {
                match self {
                    $($variant(inner) => inner.get_db(),)+
                }
            }
        }
    };
}

delegate_connection!(Shared, Shared::Pooled, Shared::Cluster);
delegate_connection!(Dedicated, Dedicated::Server, Dedicated::Cluster);

/// Runs one Redis call under `timeout`.
pub async fn bounded<T, E: Into<RedisError>>(
    timeout: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, RedisError> {
    // Boxed for the reason `Store::bounded` is: kept inline, the client's
    // futures would swell every caller's, up to the request's.
    match tokio::time::timeout(timeout, Box::pin(call)).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(RedisError::TimedOut(timeout)),
    }
}
