//! Operator control: cancel and retry tasks (one, or every match of a
//! filter) and pause or resume queues.
//!
//! PostgreSQL decides (see `store::control`); then the side effects follow:
//! a cancelled task's cached copy is written and announced (long-polls
//! wake), the workers running it are told to stop (a Redis channel; their
//! heartbeat finds the task no longer running if they miss it), a retried
//! task's cached copy is dropped and it is dispatched again, and a pause is
//! copied into Redis where every worker's pop sees it at once.

use uuid::Uuid;

pub(super) mod queues;

use crate::cache::Cache;
use crate::domain::{Caller, TaskRecord, TaskStatus};
use crate::queue::{Message, Queue};
use crate::store::{self, Action, Changed, Store, TaskMatch};
use crate::tasks::Registry;
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

/// Tasks a bulk action looks at per page (and changes per statement).
const BATCH: i64 = 500;

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

/// Operator actions; cheap to clone.
#[derive(Clone)]
pub struct Control {
    store: Store,
    queue: Queue,
    cache: Cache,
    registry: Registry,
}

impl Control {
    pub fn new(services: &super::Services) -> Self {
        Self {
            store: services.store.clone(),
            queue: services.queue.clone(),
            cache: services.cache.clone(),
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
                Ok(changed.task.record)
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
                Ok(changed.task.record)
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
        // Page by page until a page finds no match: one that changes fewer
        // tasks than it holds is not the last, as tasks it held may have
        // finished in the meantime.
        loop {
            let (changed, last) = self
                .store
                .act_on_matching(action, &filter, after, BATCH, (&names, &budgets))
                .await?;
            count += changed.len() as u64;
            match action {
                Action::Cancel => self.cancelled(&changed).await,
                Action::Retry => self.retried(&changed).await,
            }
            match last {
                Some(last) => after = Some(last),
                None => return Ok(count),
            }
        }
    }

    /// Side effects of cancelling `changed`.
    async fn cancelled(&self, changed: &[Changed]) {
        if changed.is_empty() {
            return;
        }
        for changed in changed {
            metrics::counter!(
                m::TASKS_COMPLETED,
                "task_name" => self.registry.label(&changed.task.record.task_name),
                "status" => TaskStatus::Cancelled.as_str()
            )
            .increment(1);
        }
        let records: Vec<TaskRecord> = changed.iter().map(|c| c.task.record.clone()).collect();
        if let Err(err) = self.cache.put_many(&records).await {
            tracing::warn!(error = %error_chain(&err), "cannot cache cancelled tasks; reads fall back to PostgreSQL");
        }
        let pending: Vec<&Changed> = changed
            .iter()
            .filter(|c| c.was == TaskStatus::Pending)
            .collect();
        let messages: Vec<Message> = pending.iter().map(|c| Message::from(&c.task)).collect();
        let queues = pending.iter().map(|c| c.task.queue.as_str());
        if let Err(err) = self.queue.withdraw_many(queues.zip(&messages)).await {
            // Workers that pop them find the tasks cancelled and drop them.
            tracing::warn!(error = %error_chain(&err), "cannot withdraw the queue messages of cancelled tasks; workers will drop them");
        }
        let running: Vec<Uuid> = changed
            .iter()
            .filter(|c| c.was == TaskStatus::Running)
            .map(|c| c.task.record.id)
            .collect();
        if let Err(err) = self.queue.announce_cancelled(&running).await {
            // Their workers' next heartbeat finds the tasks no longer running.
            tracing::warn!(error = %error_chain(&err), count = running.len(), "cannot tell workers to stop cancelled tasks; their heartbeat will");
        }
    }

    /// Side effects of retrying `changed`.
    async fn retried(&self, changed: &[Changed]) {
        if changed.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = changed.iter().map(|c| c.task.record.id).collect();
        if let Err(err) = self.cache.forget(&ids).await {
            tracing::warn!(error = %error_chain(&err), "cannot drop cached copies of retried tasks; they expire with cache.ttl_seconds");
        }
        let messages: Vec<Message> = changed.iter().map(|c| Message::from(&c.task)).collect();
        let queues = changed.iter().map(|c| c.task.queue.as_str());
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
}
