//! Taking messages off the queues. A consumer owns one connection of its own,
//! because a blocking pop would stall every other command sharing it.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::Message;
use crate::keys::Keys;
use crate::redis_pool::{RedisError, bounded};

/// Pops up to ARGV[1] members from the queues KEYS, in order, in one round
/// trip; returns key, member pairs.
const POP_MANY_SCRIPT: &str = r"
local want = tonumber(ARGV[1])
local taken = {}
for _, key in ipairs(KEYS) do
  if want <= 0 then break end
  local popped = redis.call('ZPOPMIN', key, want)
  for i = 1, #popped, 2 do
    taken[#taken + 1] = {key, popped[i]}
  end
  want = want - #popped / 2
end
return taken
";

pub struct Consumer {
    client: redis::Client,
    connection: Option<MultiplexedConnection>,
    /// (ready key, queue name) of every queue consumed.
    queues: Vec<(String, String)>,
    next_first: usize,
    pop_many: redis::Script,
    timeout: Duration,
    block: Duration,
}

/// A message taken off a queue, or a member that could not be decoded.
#[derive(Debug)]
pub enum Popped {
    Message { queue: String, message: Message },
    Garbage { queue: String, raw: String },
}

impl Consumer {
    /// A consumer of `queues`, blocking at most `block` per call.
    pub fn new(
        url: &str,
        keys: &Keys,
        queues: &[String],
        timeout: Duration,
        block: Duration,
    ) -> Result<Self, RedisError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(RedisError::Config)?,
            connection: None,
            queues: queues.iter().map(|q| (keys.ready(q), q.clone())).collect(),
            next_first: 0,
            pop_many: redis::Script::new(POP_MANY_SCRIPT),
            timeout,
            block,
        })
    }

    /// Takes up to `max` of the oldest messages without waiting, from the
    /// queues in rotating order so that none starves the others; when every
    /// queue is empty, waits up to the block time for one.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Popped>, RedisError> {
        let mut connection = self.connection().await?;
        let mut keys: Vec<&str> = self.queues.iter().map(|(key, _)| key.as_str()).collect();
        let first = self.next_first % keys.len().max(1);
        keys.rotate_left(first);
        self.next_first = self.next_first.wrapping_add(1);
        let mut invocation = self.pop_many.prepare_invoke();
        for key in &keys {
            invocation.key(*key);
        }
        invocation.arg(max.max(1));
        let taken: Result<Vec<(String, String)>, RedisError> =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await;
        let taken = match taken {
            Ok(taken) => taken,
            Err(err) => return Err(self.forget_connection(err)),
        };
        if !taken.is_empty() {
            return Ok(taken
                .into_iter()
                .map(|(key, raw)| self.decode(&key, raw))
                .collect());
        }
        let mut command = redis::cmd("BZPOPMIN");
        command.arg(&keys).arg(self.block.as_secs_f64());
        let reply: Result<Option<(String, String, f64)>, RedisError> = bounded(
            self.block + self.timeout,
            command.query_async(&mut connection),
        )
        .await;
        match reply {
            Ok(popped) => Ok(popped
                .map(|(key, raw, _score)| self.decode(&key, raw))
                .into_iter()
                .collect()),
            Err(err) => Err(self.forget_connection(err)),
        }
    }

    fn decode(&self, key: &str, raw: String) -> Popped {
        let queue = self.queue_named_by(key);
        match Message::decode(&raw) {
            Ok(message) => Popped::Message { queue, message },
            Err(_) => Popped::Garbage { queue, raw },
        }
    }

    /// The connection may be broken; make a fresh one next time.
    fn forget_connection(&mut self, err: RedisError) -> RedisError {
        self.connection = None;
        err
    }

    fn queue_named_by(&self, key: &str) -> String {
        self.queues
            .iter()
            .find(|(ready, _)| ready == key)
            .map_or_else(|| key.to_owned(), |(_, queue)| queue.clone())
    }

    /// Connects now if not yet connected, so readiness can be reported
    /// before the first blocking pop returns.
    pub async fn connect(&mut self) -> Result<(), RedisError> {
        self.connection().await.map(drop)
    }

    /// The consumer's connection (a cheap handle), made on first use.
    async fn connection(&mut self) -> Result<MultiplexedConnection, RedisError> {
        if self.connection.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.block + self.timeout));
            let connection = bounded(
                self.timeout,
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
            self.connection = Some(connection);
        }
        self.connection
            .clone()
            .ok_or(RedisError::Build("no Redis connection".into()))
    }
}
