//! Operator control: cancel and retry tasks (one, or every match of a
//! filter) and pause or resume queues.
//!
//! PostgreSQL decides (see `store::control`); then the side effects follow:
//! a cancelled task's cached copy is written and announced (long-polls
//! wake), the workers running it are told to stop (a Redis channel; their
//! heartbeat finds the task no longer running if they miss it), a retried
//! task's cached copy is dropped and it is dispatched again, and a pause is
//! copied into Redis where every worker's pop sees it at once.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cache::Cache;
use crate::domain::{Caller, TaskRecord, TaskStatus};
use crate::keys::Keys;
use crate::queue::{Message, Queue};
use crate::redis_pool::Redis;
use crate::store::{self, Action, Changed, Store, TaskMatch};
use crate::tasks::Registry;
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

/// Tasks changed per statement of a bulk action.
const BATCH: i64 = 500;
/// How long a pause flag lives in Redis unless the workers say it again
/// (they do every few seconds while PostgreSQL says the queue is paused).
pub const PAUSE_FLAG_LIFETIME: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no task with id {0}")]
    NotFound(Uuid),
    #[error("the task is {status}; only {allowed} tasks can be {action}")]
    WrongStatus {
        status: TaskStatus,
        allowed: &'static str,
        action: &'static str,
    },
    #[error("no queue named `{name}`; the queues are {known}")]
    UnknownQueue { name: String, known: String },
    #[error("`status` {status} is not one this action applies to ({allowed})")]
    StatusNotApplicable {
        status: TaskStatus,
        allowed: &'static str,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

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

/// Operator actions; cheap to clone.
#[derive(Clone)]
pub struct Control {
    store: Store,
    queue: Queue,
    cache: Cache,
    redis: Redis,
    keys: Keys,
    registry: Registry,
}

impl Control {
    pub fn new(services: &super::Services) -> Self {
        Self {
            store: services.store.clone(),
            queue: services.queue.clone(),
            cache: services.cache.clone(),
            redis: services.redis.clone(),
            keys: services.keys.clone(),
            registry: services.registry.clone(),
        }
    }

    /// Cancels task `id` if `caller` may see it: a `pending` task never
    /// starts, a `running` one is stopped. Cancelling a cancelled task
    /// answers it again.
    pub async fn cancel(&self, id: Uuid, caller: &Caller) -> Result<TaskRecord, ControlError> {
        let (names, budgets) = self.budgets();
        let changed = self
            .store
            .act_on_task(
                Action::Cancel,
                id,
                caller.tenant_scope(),
                (&names, &budgets),
            )
            .await?;
        match changed {
            Some(changed) => {
                self.cancelled(std::slice::from_ref(&changed)).await;
                tracing::info!(task_id = %id, was = %changed.was, key_id = caller.key_id.as_deref(), "task cancelled");
                Ok(changed.record)
            }
            None => match self.visible(id, caller).await? {
                record if record.status == TaskStatus::Cancelled => Ok(record),
                record => Err(ControlError::WrongStatus {
                    status: record.status,
                    allowed: "pending or running",
                    action: "cancelled",
                }),
            },
        }
    }

    /// Puts a `failed` or `cancelled` task back to `pending` with a fresh
    /// attempt budget.
    pub async fn retry(&self, id: Uuid, caller: &Caller) -> Result<TaskRecord, ControlError> {
        let (names, budgets) = self.budgets();
        let changed = self
            .store
            .act_on_task(Action::Retry, id, caller.tenant_scope(), (&names, &budgets))
            .await?;
        match changed {
            Some(changed) => {
                self.retried(std::slice::from_ref(&changed)).await;
                tracing::info!(task_id = %id, was = %changed.was, key_id = caller.key_id.as_deref(), "task retried");
                Ok(changed.record)
            }
            None => {
                let record = self.visible(id, caller).await?;
                Err(ControlError::WrongStatus {
                    status: record.status,
                    allowed: "failed or cancelled",
                    action: "retried",
                })
            }
        }
    }

    /// Cancels every task matching `filter`; returns how many.
    pub async fn cancel_matching(
        &self,
        filter: TaskMatch,
        caller: &Caller,
    ) -> Result<u64, ControlError> {
        let count = self.act_on_matching(Action::Cancel, filter, caller).await?;
        tracing::info!(
            count,
            key_id = caller.key_id.as_deref(),
            "tasks cancelled in bulk"
        );
        Ok(count)
    }

    /// Retries every task matching `filter`; returns how many.
    pub async fn retry_matching(
        &self,
        filter: TaskMatch,
        caller: &Caller,
    ) -> Result<u64, ControlError> {
        let count = self.act_on_matching(Action::Retry, filter, caller).await?;
        tracing::info!(
            count,
            key_id = caller.key_id.as_deref(),
            "tasks retried in bulk"
        );
        Ok(count)
    }

    async fn act_on_matching(
        &self,
        action: Action,
        mut filter: TaskMatch,
        caller: &Caller,
    ) -> Result<u64, ControlError> {
        let allowed = action.applies_to();
        if let Some(status) = filter.statuses.iter().find(|s| !allowed.contains(s)) {
            return Err(ControlError::StatusNotApplicable {
                status: *status,
                allowed: match action {
                    Action::Cancel => "pending, running",
                    Action::Retry => "failed, cancelled",
                },
            });
        }
        if let Some(own) = caller.tenant_scope() {
            filter.tenant = Some(own.to_owned());
        }
        let (names, budgets) = self.budgets();
        let mut after = None;
        let mut count = 0;
        loop {
            let changed = self
                .store
                .act_on_matching(action, &filter, after, BATCH, (&names, &budgets))
                .await?;
            count += changed.len() as u64;
            match action {
                Action::Cancel => self.cancelled(&changed).await,
                Action::Retry => self.retried(&changed).await,
            }
            if (changed.len() as i64) < BATCH {
                return Ok(count);
            }
            after = changed.iter().map(|c| c.record.id).max();
        }
    }

    /// Side effects of cancelling `changed`.
    async fn cancelled(&self, changed: &[Changed]) {
        if changed.is_empty() {
            return;
        }
        for task in changed {
            metrics::counter!(
                m::TASKS_COMPLETED,
                "task_name" => self.registry.label(&task.record.task_name),
                "status" => TaskStatus::Cancelled.as_str()
            )
            .increment(1);
        }
        let records: Vec<TaskRecord> = changed.iter().map(|c| c.record.clone()).collect();
        if let Err(err) = self.cache.put_many(&records).await {
            tracing::warn!(error = %error_chain(&err), "cannot cache cancelled tasks; reads fall back to PostgreSQL");
        }
        let running: Vec<String> = changed
            .iter()
            .filter(|c| c.was == TaskStatus::Running)
            .map(|c| c.record.id.to_string())
            .collect();
        if running.is_empty() {
            return;
        }
        let announce = redis::cmd("PUBLISH")
            .arg(self.keys.cancel_channel())
            .arg(running.join(","))
            .clone();
        if let Err(err) = self.redis.query::<i64>(&announce).await {
            // Their workers' next heartbeat finds the tasks no longer running.
            tracing::warn!(error = %error_chain(&err), count = running.len(), "cannot tell workers to stop cancelled tasks; their heartbeat will");
        }
    }

    /// Side effects of retrying `changed`.
    async fn retried(&self, changed: &[Changed]) {
        if changed.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = changed.iter().map(|c| c.record.id).collect();
        if let Err(err) = self.cache.forget(&ids).await {
            tracing::warn!(error = %error_chain(&err), "cannot drop cached copies of retried tasks; they expire with cache.ttl_seconds");
        }
        let messages: Vec<Message> = changed
            .iter()
            .map(|c| {
                Message::new(
                    c.record.id,
                    &c.record.task_name,
                    &c.record.tenant,
                    c.request_id.as_deref(),
                    c.trace_context.as_deref(),
                )
            })
            .collect();
        let queues = changed.iter().map(|c| c.queue.as_str());
        if let Err(err) = self.queue.dispatch_many(queues.zip(&messages)).await {
            tracing::warn!(error = %error_chain(&err), "cannot dispatch retried tasks; the reconciler will");
        }
    }

    /// Task `id` if `caller` may see it.
    async fn visible(&self, id: Uuid, caller: &Caller) -> Result<TaskRecord, ControlError> {
        self.store
            .get_task(id)
            .await?
            .filter(|record| caller.sees(&record.tenant))
            .ok_or(ControlError::NotFound(id))
    }

    /// Each task type's attempt budget, for a retry.
    fn budgets(&self) -> (Vec<String>, Vec<i32>) {
        self.registry
            .iter()
            .map(|task| {
                (
                    task.name().to_owned(),
                    task.retry_policy().max_attempts_i32(),
                )
            })
            .unzip()
    }

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
