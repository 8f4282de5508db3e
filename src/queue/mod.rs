//! Dispatch through Redis. Each queue is a sorted set of task messages scored
//! by enqueue time: `ZADD NX` makes a dispatch idempotent, so re-dispatching a
//! task that is already queued adds nothing. Retries wait in a second sorted
//! set scored by due time until they are promoted.

mod consumer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::redis_pool::Pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::redis_pool::{Keys, RedisError, bounded};

pub use consumer::{Consumer, Popped};

/// What travels through the queue. Derived from the stored task alone, so
/// every dispatch of one task produces the same member (and deduplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub task_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// W3C trace context of the submitting request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Message {
    pub fn encode(&self) -> String {
        // Serialising a struct of a Uuid and an optional String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(raw: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

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

#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    keys: Keys,
    timeout: Duration,
    promote: redis::Script,
}

impl Queue {
    pub fn new(pool: Pool, keys: Keys, timeout: Duration) -> Self {
        Self {
            pool,
            keys,
            timeout,
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
        for key in keys {
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(QUEUE_KEY_TTL_SECONDS)
                .ignore();
        }
        let added: Vec<u64> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(pipe.query_async(&mut *conn).await?)
        })
        .await?;
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
        let scores: Vec<Option<f64>> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(pipe.query_async(&mut *conn).await?)
        })
        .await?;
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
        let key = self.keys.delayed(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(millis_since_epoch(due))
            .arg(message.encode())
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(QUEUE_KEY_TTL_SECONDS)
            .ignore();
        self.run_pipeline(pipe).await
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
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(invocation.invoke_async(&mut *conn).await?)
        })
        .await
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
        let replies: Vec<redis::Value> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(pipe.query_async(&mut *conn).await?)
        })
        .await?;
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

    /// Connections of the Redis pool: (open, idle, max).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }

    /// Messages waiting in `queue`'s ready set.
    pub async fn ready_len(&self, queue: &str) -> Result<u64, RedisError> {
        let key = self.keys.ready(queue);
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(redis::cmd("ZCARD").arg(key).query_async(&mut *conn).await?)
        })
        .await
    }

    /// Redis's `maxmemory-policy`, when the server lets us read it (managed
    /// services often disable CONFIG).
    pub async fn eviction_policy(&self) -> Result<Option<String>, RedisError> {
        let reply: Vec<String> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut *conn)
                    .await?,
            )
        })
        .await?;
        Ok(reply.into_iter().nth(1))
    }

    /// Succeeds when Redis answers PING.
    pub async fn ping(&self) -> Result<(), RedisError> {
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            redis::cmd("PING")
                .query_async::<()>(&mut *conn)
                .await
                .map_err(RedisError::from)
        })
        .await
    }

    async fn run_pipeline(&self, pipe: redis::Pipeline) -> Result<(), RedisError> {
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            pipe.query_async::<()>(&mut *conn).await?;
            Ok::<_, RedisError>(())
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_encodes_the_same_way_every_time() {
        let message = Message {
            task_id: Uuid::nil(),
            request_id: Some("req-1".into()),
            traceparent: None,
        };
        assert_eq!(message.encode(), message.clone().encode());
        assert_eq!(Message::decode(&message.encode()).ok(), Some(message));
    }
}
