//! Dispatch through Redis. Each queue is a sorted set of task messages scored
//! by enqueue time: `ZADD NX` makes a dispatch idempotent, so re-dispatching a
//! task that is already queued adds nothing. Retries wait in a second sorted
//! set scored by due time until they are promoted.

mod consumer;
mod message;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::keys::Keys;
use crate::redis_pool::{Redis, RedisError};

pub use consumer::{Consumer, Popped};
pub use message::Message;

/// Every queue key expires after a week without a write: nothing Tasker
/// writes to Redis lives forever. A queue idle that long holds nothing that
/// PostgreSQL does not also know, and the reconciler re-dispatches it.
const QUEUE_KEY_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Moves due retries into the ready set. Atomic, so concurrent promoters in
/// several workers never move one message twice.
const PROMOTE_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[2], 'NX', ARGV[1], member)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return #due
";

/// How much work waits on one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub queue: String,
    pub ready: u64,
    pub oldest_age_seconds: f64,
}

/// The queues of every task type; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    redis: Redis,
    keys: Keys,
    promote: redis::Script,
}

impl Queue {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            promote: redis::Script::new(PROMOTE_SCRIPT),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Makes `message` ready to run on `queue`.
    #[tracing::instrument(skip_all, fields(task_id = %message.task_id, queue))]
    pub async fn dispatch(&self, queue: &str, message: &Message) -> Result<(), RedisError> {
        self.dispatch_many(std::iter::once((queue, message)))
            .await
            .map(drop)
    }

    /// Dispatches several messages in one round trip; returns how many were
    /// not queued already.
    pub async fn dispatch_many<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> Result<u64, RedisError> {
        let score = now_millis();
        let mut pipe = redis::pipe();
        let mut keys = std::collections::BTreeSet::new();
        for (queue, message) in messages {
            let key = self.keys.ready(queue);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg("NX")
                .arg(score)
                .arg(message.encode());
            keys.insert(key);
        }
        if keys.is_empty() {
            return Ok(0);
        }
        for key in keys {
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(QUEUE_KEY_TTL_SECONDS)
                .ignore();
        }
        let added: Vec<u64> = self.redis.pipeline(&pipe).await?;
        Ok(added.iter().sum())
    }

    /// For each (queue, message): whether it waits in that queue's ready
    /// set. One round trip.
    pub async fn queued<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> Result<Vec<bool>, RedisError> {
        let mut pipe = redis::pipe();
        let mut count = 0;
        for (queue, message) in messages {
            pipe.cmd("ZSCORE")
                .arg(self.keys.ready(queue))
                .arg(message.encode());
            count += 1;
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let scores: Vec<Option<f64>> = self.redis.pipeline(&pipe).await?;
        Ok(scores.into_iter().map(|score| score.is_some()).collect())
    }

    /// Holds `message` back until `due`, then [`Queue::promote_due`] makes it ready.
    #[tracing::instrument(skip_all, fields(task_id = %message.task_id, queue))]
    pub async fn schedule(
        &self,
        queue: &str,
        message: &Message,
        due: SystemTime,
    ) -> Result<(), RedisError> {
        self.schedule_many(std::iter::once((queue, message, due)))
            .await
    }

    /// [`Queue::schedule`] for several messages, in one round trip.
    pub async fn schedule_many<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message, SystemTime)>,
    ) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        let mut keys = std::collections::BTreeSet::new();
        for (queue, message, due) in messages {
            let key = self.keys.delayed(queue);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(millis_since_epoch(due))
                .arg(message.encode())
                .ignore();
            keys.insert(key);
        }
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(QUEUE_KEY_TTL_SECONDS)
                .ignore();
        }
        self.redis.pipeline(&pipe).await
    }

    /// Moves up to `limit` due retries of `queue` into its ready set.
    pub async fn promote_due(&self, queue: &str, limit: usize) -> Result<usize, RedisError> {
        let mut invocation = self.promote.prepare_invoke();
        invocation
            .key(self.keys.delayed(queue))
            .key(self.keys.ready(queue))
            .arg(now_millis())
            .arg(limit)
            .arg(QUEUE_KEY_TTL_SECONDS);
        self.redis.script(&invocation).await
    }

    /// For each queue: messages ready to run, and the age in seconds of the
    /// oldest (0 when empty). One round trip, O(log n) per queue.
    pub async fn depths(&self, queues: &[String]) -> Result<Vec<QueueDepth>, RedisError> {
        let mut pipe = redis::pipe();
        for queue in queues {
            let key = self.keys.ready(queue);
            pipe.cmd("ZCARD").arg(&key);
            pipe.cmd("ZRANGE").arg(&key).arg(0).arg(0).arg("WITHSCORES");
        }
        let replies: Vec<redis::Value> = self.redis.pipeline(&pipe).await?;
        let now = now_millis();
        let mut depths = Vec::with_capacity(queues.len());
        for (queue, pair) in queues.iter().zip(replies.chunks(2)) {
            let ready: u64 = pair
                .first()
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .unwrap_or(0);
            let oldest: Vec<(String, f64)> = pair
                .get(1)
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .unwrap_or_default();
            let oldest_age_seconds = oldest
                .first()
                .map_or(0.0, |(_, score)| (now as f64 - score).max(0.0) / 1000.0);
            depths.push(QueueDepth {
                queue: queue.clone(),
                ready,
                oldest_age_seconds,
            });
        }
        Ok(depths)
    }

    /// Messages waiting in `queue`'s ready set.
    pub async fn ready_len(&self, queue: &str) -> Result<u64, RedisError> {
        self.redis
            .query(redis::cmd("ZCARD").arg(self.keys.ready(queue)))
            .await
    }

    /// Redis's `maxmemory-policy`, when the server lets us read it (managed
    /// services often disable CONFIG).
    pub async fn eviction_policy(&self) -> Result<Option<String>, RedisError> {
        let reply: Vec<String> = self
            .redis
            .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
            .await?;
        Ok(reply.into_iter().nth(1))
    }

    /// Succeeds when Redis answers PING.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.redis.query(&redis::cmd("PING")).await
    }
}

fn now_millis() -> u64 {
    millis_since_epoch(SystemTime::now())
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
