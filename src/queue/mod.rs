//! Dispatch through Redis. Each queue keeps one sorted set of task messages
//! per tenant, scored by enqueue time, and a line of the tenants with work
//! (`Keys::tenants`): workers take from tenants in turn, so one tenant's
//! backlog delays only itself. `ZADD NX` makes a dispatch idempotent:
//! re-dispatching a task that is already queued adds nothing. Retries wait
//! in a per-queue sorted set scored by due time until they are promoted.
//! Every script touches one queue's keys only (one hash tag), so on a
//! Redis Cluster each runs on the node owning that queue; a pipeline
//! spanning queues is split per slot by [`Redis`].

mod consumer;
mod message;
mod scripts;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::keys::Keys;
use crate::redis_pool::{Redis, RedisError};

pub use consumer::{Consumer, Popped};
pub use message::Message;

/// Every queue key expires after a week without a write: nothing Tasker
/// writes to Redis lives forever. A queue idle that long holds nothing that
/// PostgreSQL does not also know, and the reconciler re-dispatches it.
const QUEUE_KEY_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Wake-ups kept for idle consumers: enough for every worker of a pool.
const SIGNALS_KEPT: i64 = 64;

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
    depth: redis::Script,
}

impl Queue {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            promote: redis::Script::new(scripts::PROMOTE),
            depth: redis::Script::new(scripts::DEPTH),
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
        let mut lines = BTreeSet::new();
        for (queue, message) in messages {
            pipe.cmd("ZADD")
                .arg(self.keys.ready(queue, &message.tenant))
                .arg("NX")
                .arg(score)
                .arg(message.encode());
            lines.insert((queue, message.tenant.as_str()));
        }
        if lines.is_empty() {
            return Ok(0);
        }
        let queues: BTreeSet<&str> = lines.iter().map(|(queue, _)| *queue).collect();
        for (queue, tenant) in &lines {
            let ready = self.keys.ready(queue, tenant);
            pipe.cmd("EXPIRE")
                .arg(ready)
                .arg(QUEUE_KEY_TTL_SECONDS)
                .ignore();
            pipe.cmd("ZADD")
                .arg(self.keys.tenants(queue))
                .arg("NX")
                .arg(0)
                .arg(*tenant)
                .ignore();
        }
        for queue in queues {
            self.expire_and_signal(&mut pipe, queue);
        }
        let added: Vec<u64> = self.redis.pipeline(&pipe).await?;
        Ok(added.iter().sum())
    }

    /// Tells the workers running `tasks` to stop them: they were cancelled.
    pub async fn announce_cancelled(&self, tasks: &[Uuid]) -> Result<(), RedisError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = tasks.iter().map(Uuid::to_string).collect();
        let announce = redis::cmd("PUBLISH")
            .arg(self.keys.cancel_channel())
            .arg(ids.join(","))
            .clone();
        self.redis.query::<i64>(&announce).await.map(drop)
    }

    /// Takes messages out of their queues, ready or delayed, so that tasks
    /// that will never run (cancelled) stop counting in the queue's depth.
    /// A message already popped is unaffected: its claim finds the task
    /// no longer `pending`. One round trip.
    pub async fn withdraw_many<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for (queue, message) in messages {
            let member = message.encode();
            pipe.cmd("ZREM")
                .arg(self.keys.ready(queue, &message.tenant))
                .arg(&member)
                .ignore()
                .cmd("ZREM")
                .arg(self.keys.delayed(queue))
                .arg(&member)
                .ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.redis.pipeline(&pipe).await
    }

    /// Keeps `queue`'s line alive and wakes one idle consumer.
    fn expire_and_signal(&self, pipe: &mut redis::Pipeline, queue: &str) {
        pipe.cmd("EXPIRE")
            .arg(self.keys.tenants(queue))
            .arg(QUEUE_KEY_TTL_SECONDS)
            .ignore();
        self.signal(pipe, queue);
    }

    /// Wakes one idle consumer of `queue`.
    fn signal(&self, pipe: &mut redis::Pipeline, queue: &str) {
        let signal = self.keys.signal(queue);
        pipe.cmd("LPUSH")
            .arg(&signal)
            .arg(1)
            .ignore()
            .cmd("LTRIM")
            .arg(&signal)
            .arg(0)
            .arg(SIGNALS_KEPT - 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&signal)
            .arg(QUEUE_KEY_TTL_SECONDS)
            .ignore();
    }

    /// For each (queue, message): whether it waits in that queue. One round
    /// trip.
    pub async fn queued<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a Message)>,
    ) -> Result<Vec<bool>, RedisError> {
        let mut pipe = redis::pipe();
        let mut count = 0;
        for (queue, message) in messages {
            pipe.cmd("ZSCORE")
                .arg(self.keys.ready(queue, &message.tenant))
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
        let mut keys = BTreeSet::new();
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

    /// Moves up to `limit` due retries of `queue` into its tenants' ready sets.
    /// On a Redis Cluster the wake-up signal lives in another slot than
    /// the queue, so it is sent after the script, and only when something
    /// moved.
    pub async fn promote_due(&self, queue: &str, limit: usize) -> Result<usize, RedisError> {
        let cluster = self.redis.is_cluster();
        let mut invocation = self.promote.prepare_invoke();
        for key in self.promote_keys(queue, !cluster) {
            invocation.key(key);
        }
        invocation
            .arg(now_millis())
            .arg(limit)
            .arg(QUEUE_KEY_TTL_SECONDS)
            .arg(self.keys.ready_prefix(queue));
        let moved: usize = self.redis.script(&invocation).await?;
        if cluster && moved > 0 {
            let mut pipe = redis::pipe();
            self.signal(&mut pipe, queue);
            self.redis.pipeline::<()>(&pipe).await?;
        }
        Ok(moved)
    }

    /// The KEYS of the promote script: the signal only when it may share
    /// a script with the queue's keys (not on a cluster).
    fn promote_keys(&self, queue: &str, with_signal: bool) -> Vec<String> {
        let mut keys = vec![self.keys.delayed(queue), self.keys.tenants(queue)];
        if with_signal {
            keys.push(self.keys.signal(queue));
        }
        keys
    }

    /// For each queue: messages ready to run, and the age in seconds of the
    /// oldest (0 when empty). O(tenants with work) per queue.
    pub async fn depths(&self, queues: &[String]) -> Result<Vec<QueueDepth>, RedisError> {
        let now = now_millis() as f64;
        let mut depths = Vec::with_capacity(queues.len());
        for queue in queues {
            let mut invocation = self.depth.prepare_invoke();
            invocation
                .key(self.keys.tenants(queue))
                .arg(self.keys.ready_prefix(queue));
            // One script per queue: queues live in different slots.
            let (ready, oldest): (u64, Option<String>) = self.redis.script(&invocation).await?;
            let oldest_age_seconds = oldest
                .and_then(|ms| ms.parse::<f64>().ok())
                .map_or(0.0, |ms| (now - ms).max(0.0) / 1000.0);
            depths.push(QueueDepth {
                queue: queue.clone(),
                ready,
                oldest_age_seconds,
            });
        }
        Ok(depths)
    }

    /// Messages waiting in `queue`'s ready sets.
    pub async fn ready_len(&self, queue: &str) -> Result<u64, RedisError> {
        let depths = self.depths(std::slice::from_ref(&queue.to_owned())).await?;
        Ok(depths.first().map_or(0, |depth| depth.ready))
    }

    /// Pauses (workers take nothing) or resumes `queues`, as PostgreSQL
    /// says; the flags expire unless said again (`lifetime`), so a flag
    /// written once cannot outlive the decision.
    pub async fn set_paused(
        &self,
        queues: &[(String, bool)],
        lifetime: Duration,
    ) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        for (queue, paused) in queues {
            let key = self.keys.paused(queue);
            if *paused {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("EX")
                    .arg(lifetime.as_secs().max(1))
                    .ignore();
            } else {
                pipe.cmd("DEL").arg(key).ignore();
                // Resumed: wake the consumers that saw it paused.
                self.expire_and_signal(&mut pipe, queue);
            }
        }
        if queues.is_empty() {
            return Ok(());
        }
        self.redis.pipeline(&pipe).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisConfig;
    use redis::cluster_routing::Slot;

    fn queue() -> Queue {
        let redis = Redis::connect(&RedisConfig::default());
        let Ok(redis) = redis else {
            panic!("a lazy Redis handle needs no server");
        };
        Queue::new(redis, Keys::new("t1"))
    }

    #[test]
    fn the_promote_script_touches_one_slot_on_a_cluster() {
        let queue = queue();
        let keys = queue.promote_keys("llm", false);
        let slot = Slot::for_key(&keys[0]);
        assert!(keys.iter().all(|key| Slot::for_key(key) == slot));
        let ready = format!("{}acme", queue.keys.ready_prefix("llm"));
        assert_eq!(Slot::for_key(ready), slot);
        assert_eq!(queue.promote_keys("llm", true).len(), 3);
    }
}
