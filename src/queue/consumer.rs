//! Taking messages off the queues. A consumer owns one connection of its own,
//! because a blocking wait would stall every other command sharing it. It
//! pops one queue per script (on a Redis Cluster, queues live on different
//! nodes) and waits on the wake-up signals of all its queues at once (they
//! share one slot).

use std::time::Duration;

use super::{Message, scripts};
use crate::keys::Keys;
use crate::redis_pool::{Dedicated, Redis, RedisError, bounded};

/// One consumed queue's keys.
struct Consumed {
    name: String,
    tenants: String,
    paused: String,
    ready_prefix: String,
    signal: String,
}

pub struct Consumer {
    redis: Redis,
    connection: Option<Dedicated>,
    queues: Vec<Consumed>,
    next_first: usize,
    pop: redis::Script,
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
        redis: &Redis,
        keys: &Keys,
        queues: &[String],
        timeout: Duration,
        block: Duration,
    ) -> Result<Self, RedisError> {
        let queues = queues
            .iter()
            .map(|queue| Consumed {
                name: queue.clone(),
                tenants: keys.tenants(queue),
                paused: keys.paused(queue),
                ready_prefix: keys.ready_prefix(queue),
                signal: keys.signal(queue),
            })
            .collect();
        Ok(Self {
            redis: redis.clone(),
            connection: None,
            queues,
            next_first: 0,
            pop: redis::Script::new(scripts::POP),
            timeout,
            block,
        })
    }

    /// Takes up to `max` messages without waiting: queue by queue in
    /// rotating order so that none starves the others, and within a queue
    /// tenants in turn, skipping the `skip` tenants (at their running
    /// limit) and the `paused` queues (their Redis flags make the pop skip
    /// them too; this holds while a flag is missing). When there is
    /// nothing, waits up to the block time for a wake-up and tries once more.
    pub async fn next_batch(
        &mut self,
        max: usize,
        skip: &[String],
        paused: &[String],
    ) -> Result<Vec<Popped>, RedisError> {
        let taken = self.take(max, skip, paused, None).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
        let mut connection = self.connection().await?;
        let mut command = redis::cmd("BLPOP");
        for queue in &self.queues {
            command.arg(&queue.signal);
        }
        command.arg(self.block.as_secs_f64());
        let woken: Result<Option<(String, String)>, RedisError> = bounded(
            self.block + self.timeout,
            command.query_async(&mut connection),
        )
        .await;
        match woken {
            // The signal names its queue: a lone task is popped there in
            // one call rather than after the queues before it in turn.
            Ok(signal) => {
                let signalled = signal
                    .and_then(|(key, _)| self.queues.iter().position(|queue| queue.signal == key));
                self.take(max, skip, paused, signalled).await
            }
            Err(err) => Err(self.forget_connection(err)),
        }
    }

    /// Pops the queues in turn from the next in rotation, or, after a
    /// wake-up, from the `signalled` one, stopping there when it had
    /// messages (the others are tried by the next call).
    async fn take(
        &mut self,
        max: usize,
        skip: &[String],
        paused: &[String],
        signalled: Option<usize>,
    ) -> Result<Vec<Popped>, RedisError> {
        let mut connection = self.connection().await?;
        let count = self.queues.len();
        let first = match signalled {
            Some(index) => index,
            None => {
                let first = self.next_first % count.max(1);
                self.next_first = self.next_first.wrapping_add(1);
                first
            }
        };
        let mut taken = Vec::new();
        for offset in 0..count {
            let want = max.max(1).saturating_sub(taken.len());
            if want == 0 || (signalled.is_some() && !taken.is_empty()) {
                break;
            }
            let queue = &self.queues[(first + offset) % count];
            if paused.contains(&queue.name) {
                continue;
            }
            let mut invocation = self.pop.prepare_invoke();
            invocation
                .key(&queue.tenants)
                .key(&queue.paused)
                .arg(want)
                .arg(&queue.ready_prefix);
            for tenant in skip {
                invocation.arg(tenant);
            }
            let popped: Result<Vec<String>, RedisError> =
                bounded(self.timeout, invocation.invoke_async(&mut connection)).await;
            let popped = match popped {
                Ok(popped) => popped,
                Err(err) => return Err(self.forget_connection(err)),
            };
            let name = &queue.name;
            taken.extend(popped.into_iter().map(|raw| decode(name, raw)));
        }
        Ok(taken)
    }

    /// The connection may be broken; make a fresh one next time.
    fn forget_connection(&mut self, err: RedisError) -> RedisError {
        self.connection = None;
        err
    }

    /// Connects now if not yet connected, so readiness can be reported
    /// before the first blocking wait returns.
    pub async fn connect(&mut self) -> Result<(), RedisError> {
        self.connection().await.map(drop)
    }

    /// The consumer's connection (a cheap handle), made on first use.
    async fn connection(&mut self) -> Result<Dedicated, RedisError> {
        if self.connection.is_none() {
            let connection = self.redis.dedicated(self.block + self.timeout).await?;
            self.connection = Some(connection);
        }
        self.connection
            .clone()
            .ok_or(RedisError::Build("no Redis connection".into()))
    }
}

fn decode(queue: &str, raw: String) -> Popped {
    let queue = queue.to_owned();
    match Message::decode(&raw) {
        Ok(message) => Popped::Message { queue, message },
        Err(_) => Popped::Garbage { queue, raw },
    }
}
