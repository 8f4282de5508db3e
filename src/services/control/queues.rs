//! Queues under an operator's hand: their figures, pause and resume.
//! Pauses live in PostgreSQL (they survive restarts); workers mirror them
//! into Redis flags that expire unless renewed.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Control, ControlError};
use crate::domain::Caller;
use crate::telemetry::error_chain;

/// How long a pause flag lives in Redis unless the workers say it again
/// (they do every few seconds while PostgreSQL says the queue is paused).
pub const PAUSE_FLAG_LIFETIME: Duration = Duration::from_secs(30);

/// A queue as an operator sees it.
#[derive(Debug, Clone)]
pub struct QueueState {
    pub name: String,
    /// Tasks ready to run (`None` when Redis cannot be read).
    pub depth: Option<u64>,
    /// Age of the oldest ready task, seconds.
    pub oldest_age_seconds: Option<f64>,
    pub running: i64,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
}

impl Control {
    /// Pauses `queue`: workers take none of its tasks until it is resumed.
    pub async fn pause(&self, queue: &str, caller: &Caller) -> Result<QueueState, ControlError> {
        self.known_queue(queue)?;
        let changed = self
            .store
            .pause_queue(queue, caller.key_id.as_deref())
            .await?;
        // At once for every worker; they re-assert it from PostgreSQL.
        if let Err(err) = self
            .queue
            .set_paused(&[(queue.to_owned(), true)], PAUSE_FLAG_LIFETIME)
            .await
        {
            tracing::warn!(queue, error = %error_chain(&err), "cannot flag the queue paused in Redis; workers will from PostgreSQL");
        }
        if changed {
            tracing::info!(queue, key_id = caller.key_id.as_deref(), "queue paused");
        }
        self.queue_state(queue).await
    }

    /// Resumes `queue`.
    pub async fn resume(&self, queue: &str, caller: &Caller) -> Result<QueueState, ControlError> {
        self.known_queue(queue)?;
        let changed = self.store.resume_queue(queue).await?;
        if let Err(err) = self
            .queue
            .set_paused(&[(queue.to_owned(), false)], PAUSE_FLAG_LIFETIME)
            .await
        {
            tracing::warn!(queue, error = %error_chain(&err), "cannot clear the queue's pause flag in Redis; it expires");
        }
        if changed {
            tracing::info!(queue, key_id = caller.key_id.as_deref(), "queue resumed");
        }
        self.queue_state(queue).await
    }

    /// Every queue with its figures.
    pub async fn queues(&self) -> Result<Vec<QueueState>, ControlError> {
        let names: Vec<String> = self.registry.queues().into_iter().collect();
        let paused = self.store.paused_queues().await?;
        let running = self.store.running_per_queue().await?;
        let depths = match self.queue.depths(&names).await {
            Ok(depths) => Some(depths),
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot read queue depths");
                None
            }
        };
        Ok(names
            .into_iter()
            .map(|name| {
                let pause = paused.iter().find(|p| p.queue == name);
                let depth = depths
                    .as_ref()
                    .and_then(|d| d.iter().find(|d| d.queue == name));
                QueueState {
                    depth: depth.map(|d| d.ready),
                    oldest_age_seconds: depth.map(|d| d.oldest_age_seconds),
                    running: running
                        .iter()
                        .find(|(queue, _)| *queue == name)
                        .map_or(0, |(_, n)| *n),
                    paused: pause.is_some(),
                    paused_at: pause.map(|p| p.paused_at),
                    name,
                }
            })
            .collect())
    }

    async fn queue_state(&self, queue: &str) -> Result<QueueState, ControlError> {
        let states = self.queues().await?;
        states
            .into_iter()
            .find(|state| state.name == queue)
            .ok_or_else(|| self.unknown_queue(queue))
    }

    fn known_queue(&self, queue: &str) -> Result<(), ControlError> {
        if self.registry.queues().contains(queue) {
            Ok(())
        } else {
            Err(self.unknown_queue(queue))
        }
    }

    fn unknown_queue(&self, queue: &str) -> ControlError {
        let known: Vec<String> = self.registry.queues().into_iter().collect();
        ControlError::UnknownQueue {
            name: queue.chars().take(100).collect(),
            known: known.join(", "),
        }
    }

    /// The queues PostgreSQL says are paused.
    pub async fn paused(&self) -> Result<HashSet<String>, ControlError> {
        let paused = self.store.paused_queues().await?;
        Ok(paused.into_iter().map(|p| p.queue).collect())
    }
}
