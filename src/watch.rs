//! Wakes long-polling readers the moment a task finishes (and follows any
//! channel of task ids, see [`follow_ids`]). Whoever finishes
//! tasks announces their ids (comma-separated, one message per write) on a
//! Redis channel, in the same round trip that caches the results; each API
//! process keeps one subscription and wakes the requests waiting on those
//! ids. Nothing polls the database. A write that finished a lone task
//! announces its cache entry instead (`cache::ANNOUNCED_ENTRY_MAX`): its
//! readers are handed the entry and answer without reading the cache.
//!
//! Announcements sent while the subscription is down are lost, so every
//! (re)subscription wakes all waiters to read their task once more; one
//! still unfinished waits on. A missed announcement makes an answer late by
//! the time the subscription took to come back, never wrong.
//!
//! Classic `PUBLISH` reaches subscribers on every node of a Redis Cluster,
//! so a subscriber may use any node, and moves to another when its node
//! goes; with Sentinel it follows the master of the moment.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::cache::{Cached, announced_entry};
use crate::redis_pool::Redis;
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

#[derive(Default)]
struct Waiters {
    state: Mutex<WaitState>,
}

#[derive(Default)]
struct WaitState {
    by_task: HashMap<Uuid, Watched>,
    /// Requests waiting in all.
    total: usize,
}

/// One task's waiting requests.
struct Watched {
    wake: Arc<Notify>,
    waiting: usize,
    /// The finished task's entry, when its announcement carried it.
    entry: Option<Cached>,
}

impl Waiters {
    fn with<T>(&self, f: impl FnOnce(&mut WaitState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wakes every waiter to read its task again: announcements may have
    /// been missed.
    fn wake_all(&self) {
        self.with(|state| {
            for watched in state.by_task.values() {
                watched.wake.notify_waiters();
            }
        });
    }

    fn wake(&self, id: Uuid, entry: Option<Cached>) {
        self.with(|state| {
            if let Some(watched) = state.by_task.get_mut(&id) {
                if entry.is_some() {
                    watched.entry = entry;
                }
                watched.wake.notify_waiters();
            }
        });
    }
}

/// The subscription of one process, shared by its requests.
#[derive(Clone)]
pub struct TaskWatch {
    waiters: Arc<Waiters>,
    _subscriber: Arc<Subscriber>,
}

struct Subscriber(JoinHandle<()>);

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request's interest in one task; leaves the table when dropped.
pub struct Waiter {
    waiters: Arc<Waiters>,
    task_id: Uuid,
    wake: Arc<Notify>,
    notified: Pin<Box<OwnedNotified>>,
}

impl TaskWatch {
    /// Subscribes to `channel`, reconnecting with growing pauses while
    /// Redis is unreachable.
    pub fn start(redis: Redis, channel: String) -> Self {
        let waiters = Arc::new(Waiters::default());
        let woken = waiters.clone();
        let resubscribed = waiters.clone();
        let on_subscribed = move || resubscribed.wake_all();
        let handle = follow(
            redis,
            channel,
            on_subscribed,
            move |payload| match announced_entry(payload) {
                Ok((id, entry)) => woken.wake(id, Some(entry)),
                Err(ids) => {
                    for id in parse_ids(&ids) {
                        woken.wake(id, None);
                    }
                }
            },
        );
        Self {
            waiters,
            _subscriber: Arc::new(Subscriber(handle)),
        }
    }

    /// Registers interest in `task_id` now, so an announcement that arrives
    /// while the caller is still reading the task is not missed; `None`
    /// when `max` requests wait already (each holds memory and a
    /// connection, so their number is bounded).
    pub fn watch(&self, task_id: Uuid, max: usize) -> Option<Waiter> {
        let notify = self.waiters.with(|state| {
            if state.total >= max {
                return None;
            }
            state.total += 1;
            metrics::gauge!(m::LONGPOLL_WAITERS).set(state.total as f64);
            let watched = state.by_task.entry(task_id).or_insert_with(|| Watched {
                wake: Arc::new(Notify::new()),
                waiting: 0,
                entry: None,
            });
            watched.waiting += 1;
            Some(watched.wake.clone())
        })?;
        Some(Waiter {
            waiters: self.waiters.clone(),
            task_id,
            notified: armed(&notify),
            wake: notify,
        })
    }

    /// Requests waiting right now.
    pub fn waiting(&self) -> usize {
        self.waiters.with(|state| state.total)
    }
}

impl Waiter {
    /// Resolves when the task is announced as finished, or announcements
    /// may have been missed (see the module's notes).
    pub async fn finished(&mut self) {
        self.notified.as_mut().await;
    }

    /// Waits for the next wake-up from now on: call before reading the task
    /// again, so that an announcement during the read is not missed.
    pub fn rearm(&mut self) {
        self.notified = armed(&self.wake);
    }

    /// The finished task's entry, when its announcement carried it.
    pub fn delivered(&self) -> Option<Cached> {
        self.waiters.with(|state| {
            state
                .by_task
                .get(&self.task_id)
                .and_then(|watched| watched.entry.clone())
        })
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let id = self.task_id;
        self.waiters.with(|state| {
            if let Some(watched) = state.by_task.get_mut(&id) {
                watched.waiting -= 1;
                if watched.waiting == 0 {
                    state.by_task.remove(&id);
                }
            }
            state.total = state.total.saturating_sub(1);
            metrics::gauge!(m::LONGPOLL_WAITERS).set(state.total as f64);
        });
    }
}

/// A wake-up registered now, so a `notify_waiters` before its first poll
/// still counts.
fn armed(wake: &Arc<Notify>) -> Pin<Box<OwnedNotified>> {
    let mut notified = Box::pin(wake.clone().notified_owned());
    notified.as_mut().enable();
    notified
}

/// Calls `on_ids` with the task ids of every announcement on `channel`
/// (comma-separated ids, one message per write) until the returned task is
/// aborted, reconnecting with growing pauses while Redis is unreachable,
/// to the next server that may serve it each time.
/// Used for finished tasks (long-poll) and cancelled ones (workers).
pub fn follow_ids(
    redis: Redis,
    channel: String,
    on_ids: impl Fn(&[Uuid]) + Send + Sync + 'static,
) -> JoinHandle<()> {
    follow(
        redis,
        channel,
        || {},
        move |payload| on_ids(&parse_ids(&payload)),
    )
}

/// Calls `on_payload` with every message on `channel`, as [`follow_ids`],
/// and `on_subscribed` each time the subscription is (re)made.
fn follow(
    redis: Redis,
    channel: String,
    on_subscribed: impl Fn() + Send + Sync + 'static,
    on_payload: impl Fn(String) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(listen(redis, channel, on_subscribed, on_payload))
}

fn parse_ids(payload: &str) -> Vec<Uuid> {
    payload
        .split(',')
        .filter_map(|id| id.parse::<Uuid>().ok())
        .collect()
}

async fn listen(
    redis: Redis,
    channel: String,
    on_subscribed: impl Fn(),
    on_payload: impl Fn(String),
) {
    let mut pause = Duration::from_millis(100);
    let mut turn = 0usize;
    loop {
        let clients = redis.subscriber_clients().await;
        if let Some(client) = clients.get(turn % clients.len().max(1)) {
            match subscribe(client, &channel, &on_subscribed, &on_payload).await {
                Ok(()) => pause = Duration::from_millis(100),
                Err(err) => {
                    tracing::debug!(channel, error = %error_chain(&err), "subscription lost")
                }
            }
        }
        // Next time, the next server: the one just used may be gone.
        turn = turn.wrapping_add(1);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Runs one subscription until the connection ends.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    on_subscribed: &impl Fn(),
    on_payload: &impl Fn(String),
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    on_subscribed();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(payload) = message.get_payload::<String>() {
            on_payload(payload);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watch with no subscription: the tests wake its waiters directly.
    fn unsubscribed() -> (Arc<Waiters>, TaskWatch) {
        let waiters = Arc::new(Waiters::default());
        let watch = TaskWatch {
            waiters: waiters.clone(),
            _subscriber: Arc::new(Subscriber(tokio::spawn(async {}))),
        };
        (waiters, watch)
    }

    fn watching(watch: &TaskWatch, id: Uuid) -> Waiter {
        watch
            .watch(id, 10)
            .unwrap_or_else(|| panic!("room for a waiter"))
    }

    #[tokio::test]
    async fn a_wake_reaches_a_waiter_registered_before_it() {
        let (waiters, watch) = unsubscribed();
        let id = Uuid::new_v4();
        let mut waiter = watching(&watch, id);
        // The announcement lands before the waiter starts awaiting.
        waiters.wake(id, None);
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter.finished()).await;
        assert!(woken.is_ok());
        assert_eq!(watch.waiting(), 1);
        drop(waiter);
        assert_eq!(watch.waiting(), 0);
    }

    #[tokio::test]
    async fn an_announced_entry_is_handed_to_the_waiters_of_its_task() {
        let (waiters, watch) = unsubscribed();
        let id = Uuid::now_v7();
        let mut waiter = watching(&watch, id);
        let other = watching(&watch, Uuid::now_v7());
        let Ok((announced, entry)) = announced_entry(format!("{id}\tacme\n{{\"done\":1}}")) else {
            panic!("an entry");
        };
        assert_eq!(announced, id);
        waiters.wake(announced, Some(entry));
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter.finished()).await;
        assert!(woken.is_ok());
        let delivered = waiter.delivered();
        assert_eq!(delivered.as_ref().map(Cached::tenant), Some("acme"));
        assert_eq!(
            delivered.map(Cached::into_body).as_deref(),
            Some(&b"{\"done\":1}"[..])
        );
        assert!(other.delivered().is_none());
    }

    #[tokio::test]
    async fn waiters_beyond_the_limit_are_refused_until_one_leaves() {
        let (_, watch) = unsubscribed();
        let first = watch.watch(Uuid::new_v4(), 2);
        let second = watch.watch(Uuid::new_v4(), 2);
        assert!(first.is_some() && second.is_some());
        assert!(watch.watch(Uuid::new_v4(), 2).is_none());
        drop(first);
        assert!(watch.watch(Uuid::new_v4(), 2).is_some());
        assert_eq!(watch.waiting(), 1);
    }

    #[tokio::test]
    async fn a_new_subscription_wakes_every_waiter_to_read_again() {
        let (waiters, watch) = unsubscribed();
        let mut one = watching(&watch, Uuid::now_v7());
        let mut other = watching(&watch, Uuid::now_v7());
        waiters.wake_all();
        for waiter in [&mut one, &mut other] {
            let woken = tokio::time::timeout(Duration::from_secs(1), waiter.finished()).await;
            assert!(woken.is_ok());
            assert!(waiter.delivered().is_none());
        }
    }

    #[tokio::test]
    async fn a_rearmed_waiter_waits_for_the_next_wake() {
        let (waiters, watch) = unsubscribed();
        let id = Uuid::now_v7();
        let mut waiter = watching(&watch, id);
        waiters.wake_all();
        waiter.finished().await;
        waiter.rearm();
        let early = tokio::time::timeout(Duration::from_millis(50), waiter.finished()).await;
        assert!(early.is_err(), "a spent wake-up counted twice");
        // Registered on rearm: a wake before the next await still counts.
        waiters.wake(id, None);
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter.finished()).await;
        assert!(woken.is_ok());
    }

    #[tokio::test]
    async fn other_tasks_do_not_wake_a_waiter() {
        let (waiters, watch) = unsubscribed();
        let mut waiter = watching(&watch, Uuid::new_v4());
        waiters.wake(Uuid::new_v4(), None);
        let woken = tokio::time::timeout(Duration::from_millis(50), waiter.finished()).await;
        assert!(woken.is_err());
    }
}
