//! Pooled connections to one server: the server at `redis.url`, or the
//! master the sentinels name. A connection that failed, or that finds its
//! server demoted to a replica (`READONLY`), is replaced, and a sentinel
//! pool asks the sentinels again for the master when it makes one: that
//! is how Tasker follows a failover without a restart.

use deadpool::managed::{self, Metrics, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisFuture,
    ServerErrorKind, Value,
};

/// Finds the server to connect to.
pub enum Connector {
    /// The one server at `redis.url`.
    Server {
        client: redis::Client,
        manager: deadpool_redis::Manager,
    },
    /// Whichever server the sentinels say is the master now.
    Sentinel {
        sentinel: tokio::sync::Mutex<SentinelClient>,
        config: AsyncConnectionConfig,
    },
}

impl Connector {
    pub fn server(url: &str, config: AsyncConnectionConfig) -> redis::RedisResult<Self> {
        Ok(Self::Server {
            client: redis::Client::open(url)?,
            manager: deadpool_redis::Manager::new_with_config(url, config)?,
        })
    }

    /// Asks `sentinels` for master `name`; `url` gives the credentials and
    /// database to use on it.
    pub fn sentinel(
        url: &str,
        sentinels: &[&str],
        name: &str,
        config: AsyncConnectionConfig,
    ) -> redis::RedisResult<Self> {
        let settings = url.into_connection_info()?.redis_settings().clone();
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
        let client = SentinelClient::build(
            sentinels.to_vec(),
            name.to_owned(),
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self::Sentinel {
            sentinel: tokio::sync::Mutex::new(client),
            config,
        })
    }

    /// A client of the server to use now.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match self {
            Self::Server { client, .. } => Ok(client.clone()),
            Self::Sentinel { sentinel, .. } => sentinel.lock().await.async_get_client().await,
        }
    }
}

/// Makes connections with deadpool-redis (or through the sentinels), but
/// recycles them without a round trip: deadpool-redis sends `UNWATCH` +
/// `PING` on every checkout, which doubles the round trips of a
/// one-command checkout. Tasker never uses `WATCH`, and a connection that
/// failed is marked and replaced instead.
pub struct Manager {
    pub connector: std::sync::Arc<Connector>,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Connection, redis::RedisError> {
        let inner = match &*self.connector {
            Connector::Server { manager, .. } => managed::Manager::create(manager).await?,
            Connector::Sentinel { config, .. } => {
                let client = self.connector.client().await?;
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?
            }
        };
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
/// way that may have left it unusable (I/O error, dropped, timed out) or
/// pointing at the wrong server (a master demoted to replica).
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
                || err.is_connection_dropped()
                || err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly))
        {
            self.broken = true;
        }
    }
}

/// A pipeline's reply to a write sent to a replica.
fn is_read_only(value: &Value) -> bool {
    matches!(value, Value::ServerError(err) if err.kind() == Some(ServerErrorKind::ReadOnly))
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
            if let Ok(values) = &result
                && values.iter().any(is_read_only)
            {
                self.broken = true;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
