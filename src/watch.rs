//! Wakes long-polling readers the moment a task finishes. Whoever finishes a
//! task announces its id on a Redis channel (in the same round trip that
//! caches the result); each API process keeps one subscription and wakes
//! the requests waiting on that id. Nothing polls the database.
//!
//! An announcement missed while Redis is unreachable only delays a waiter to
//! its deadline, where it reads the task once more: never a wrong answer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::telemetry::error_chain;

#[derive(Default)]
struct Waiters {
    by_task: Mutex<HashMap<Uuid, (Arc<Notify>, usize)>>,
}

impl Waiters {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, (Arc<Notify>, usize)>) -> T) -> T {
        f(&mut self.by_task.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn wake(&self, id: Uuid) {
        self.with(|map| {
            if let Some((notify, _)) = map.get(&id) {
                notify.notify_waiters();
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
    notified: Pin<Box<OwnedNotified>>,
}

impl TaskWatch {
    /// Subscribes to `channel` on the Redis at `url`, reconnecting with
    /// growing pauses while Redis is unreachable.
    pub fn start(url: &str, channel: String) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let waiters = Arc::new(Waiters::default());
        let handle = tokio::spawn(listen(client, channel, waiters.clone()));
        Ok(Self {
            waiters,
            _subscriber: Arc::new(Subscriber(handle)),
        })
    }

    /// Registers interest in `task_id` now, so an announcement that arrives
    /// while the caller is still reading the task is not missed.
    pub fn watch(&self, task_id: Uuid) -> Waiter {
        let notify = self.waiters.with(|map| {
            let entry = map
                .entry(task_id)
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            entry.0.clone()
        });
        let mut notified = Box::pin(notify.notified_owned());
        notified.as_mut().enable();
        Waiter {
            waiters: self.waiters.clone(),
            task_id,
            notified,
        }
    }

    /// Requests waiting right now, for tests and metrics.
    pub fn waiting(&self) -> usize {
        self.waiters
            .with(|map| map.values().map(|(_, count)| count).sum())
    }
}

impl Waiter {
    /// Resolves when the task is announced as finished.
    pub async fn finished(&mut self) {
        self.notified.as_mut().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let id = self.task_id;
        self.waiters.with(|map| {
            if let Some(entry) = map.get_mut(&id) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    map.remove(&id);
                }
            }
        });
    }
}

async fn listen(client: redis::Client, channel: String, waiters: Arc<Waiters>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match subscribe(&client, &channel, &waiters).await {
            Ok(()) => pause = Duration::from_millis(100),
            Err(err) => {
                tracing::debug!(error = %error_chain(&err), "task-finished subscription lost")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Runs one subscription until the connection ends.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    waiters: &Waiters,
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        if let Ok(id) = payload.parse::<Uuid>() {
            waiters.wake(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_a_waiter_registered_before_it() {
        let waiters = Arc::new(Waiters::default());
        let watch = TaskWatch {
            waiters: waiters.clone(),
            _subscriber: Arc::new(Subscriber(tokio::spawn(async {}))),
        };
        let id = Uuid::new_v4();
        let mut waiter = watch.watch(id);
        // The announcement lands before the waiter starts awaiting.
        waiters.wake(id);
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter.finished()).await;
        assert!(woken.is_ok());
        assert_eq!(watch.waiting(), 1);
        drop(waiter);
        assert_eq!(watch.waiting(), 0);
    }

    #[tokio::test]
    async fn other_tasks_do_not_wake_a_waiter() {
        let waiters = Arc::new(Waiters::default());
        let watch = TaskWatch {
            waiters: waiters.clone(),
            _subscriber: Arc::new(Subscriber(tokio::spawn(async {}))),
        };
        let mut waiter = watch.watch(Uuid::new_v4());
        waiters.wake(Uuid::new_v4());
        let woken = tokio::time::timeout(Duration::from_millis(50), waiter.finished()).await;
        assert!(woken.is_err());
    }
}
