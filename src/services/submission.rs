//! Submitting tasks: one at a time (group-committed), under an
//! `Idempotency-Key`, or as a batch. Every path validates against the
//! registry, stores before answering, then dispatches; a failed dispatch is
//! left to the reconciler, since stored is what counts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::intake::Intake;
use super::quota::Quotas;
use crate::budget::Admission;
use crate::domain::{NewTask, Origin};
use crate::queue::{Message, Queue};
use crate::store::{self, IdempotentInsert, Store};
use crate::tasks::{Registry, SubmissionError};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

/// Why a submission was refused. Nothing is stored for a refused submission.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] SubmissionError),
    /// The batch itself is malformed (`field` names what is wrong).
    #[error("invalid field `{field}`: {message}")]
    Batch { field: String, message: String },
    /// Item `index` of a batch is invalid.
    #[error("tasks[{index}]: {error}")]
    BatchItem {
        index: usize,
        error: SubmissionError,
    },
    #[error("Idempotency-Key `{key}` was already used with a different request")]
    IdempotencyKeyReused { key: String },
    /// The key's rate allows no more submissions now.
    #[error("this API key's rate limit is reached; retry after {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A stored submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: Uuid,
    /// True when an earlier request with the same `Idempotency-Key` created it.
    pub replayed: bool,
}

/// A stored batch: its ids in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedBatch {
    pub ids: Vec<Uuid>,
    /// True when an earlier request with the same `Idempotency-Key` created them.
    pub replayed: bool,
}

/// Submissions of new tasks; cheap to clone.
#[derive(Clone)]
pub struct Submissions(Arc<Inner>);

struct Inner {
    registry: Registry,
    store: Store,
    queue: Queue,
    intake: Intake,
    quotas: Quotas,
    idempotency_window: Duration,
    max_batch_size: usize,
}

impl Submissions {
    pub fn new(
        registry: Registry,
        store: Store,
        queue: Queue,
        quotas: Quotas,
        idempotency_window: Duration,
        max_batch_size: usize,
    ) -> Self {
        // Half the database pool for group-committed submissions; the rest
        // stays free for reads.
        let intake = Intake::new(store.clone(), queue.clone(), store.max_connections() / 2);
        Self(Arc::new(Inner {
            registry,
            store,
            queue,
            intake,
            quotas,
            idempotency_window,
            max_batch_size,
        }))
    }

    /// Validates `body` (`task_name` plus flat parameters), stores the task
    /// and dispatches it.
    pub async fn submit(&self, body: Value, origin: &Origin) -> Result<Uuid, SubmitError> {
        let task = self.new_task(body, origin)?;
        self.admit(origin, 1).await?;
        let id = task.id;
        let name = self.accepted_name(&task);
        self.0.intake.submit(task).await?;
        accepted(name, id);
        Ok(id)
    }

    /// [`Submissions::submit`] under `key`: the same key with the same
    /// request gives the first task back; with a different request it is
    /// refused.
    pub async fn submit_idempotent(
        &self,
        body: Value,
        key: &str,
        origin: &Origin,
    ) -> Result<Accepted, SubmitError> {
        let task = self.new_task(body, origin)?;
        self.admit(origin, 1).await?;
        let fingerprint = fingerprint(&json!({
            "task_name": task.task_name,
            "parameters": task.parameters,
        }));
        let tasks = std::slice::from_ref(&task);
        if let Some(ids) = self.store_under_key(tasks, key, &fingerprint).await? {
            let id = ids.first().copied().unwrap_or(task.id);
            return Ok(Accepted { id, replayed: true });
        }
        self.dispatch(tasks).await;
        accepted(self.accepted_name(&task), task.id);
        Ok(Accepted {
            id: task.id,
            replayed: false,
        })
    }

    /// Stores `tasks` under `key`; `Some` with the ids of an earlier
    /// request when the key replays it.
    async fn store_under_key(
        &self,
        tasks: &[NewTask],
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<Vec<Uuid>>, SubmitError> {
        let inner = &self.0;
        let outcome = inner
            .store
            .insert_tasks_idempotent(tasks, key, fingerprint, inner.idempotency_window)
            .await?;
        match outcome {
            IdempotentInsert::Created => Ok(None),
            IdempotentInsert::Replayed(ids) => Ok(Some(ids)),
            IdempotentInsert::Conflict => Err(SubmitError::IdempotencyKeyReused {
                key: key.to_owned(),
            }),
        }
    }

    /// Validates every item of `{"tasks": [...]}` first (one bad item
    /// refuses the batch, naming its index), then stores all in one
    /// statement and dispatches them. The ids come back in order. Under an
    /// `Idempotency-Key`, the same batch again gives the same ids back.
    pub async fn submit_batch(
        &self,
        body: Value,
        key: Option<&str>,
        origin: &Origin,
    ) -> Result<AcceptedBatch, SubmitError> {
        let inner = &self.0;
        let items = batch_items(body, inner.max_batch_size)?;
        let mut tasks = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let task = self.new_task(item, origin).map_err(|error| match error {
                SubmitError::Invalid(error) => SubmitError::BatchItem { index, error },
                other => other,
            })?;
            tasks.push(task);
        }
        self.admit(origin, tasks.len()).await?;
        match key {
            Some(key) => {
                let items: Vec<Value> = tasks
                    .iter()
                    .map(|t| json!({"task_name": t.task_name, "parameters": t.parameters}))
                    .collect();
                let fingerprint = fingerprint(&json!({ "batch": items }));
                if let Some(ids) = self.store_under_key(&tasks, key, &fingerprint).await? {
                    return Ok(AcceptedBatch {
                        ids,
                        replayed: true,
                    });
                }
            }
            None => {
                inner.store.insert_tasks(&tasks).await?;
            }
        }
        self.dispatch(&tasks).await;
        for task in &tasks {
            metrics::counter!(m::TASKS_SUBMITTED, "task_name" => self.accepted_name(task))
                .increment(1);
        }
        tracing::info!(count = tasks.len(), "tasks accepted");
        Ok(AcceptedBatch {
            ids: tasks.iter().map(|task| task.id).collect(),
            replayed: false,
        })
    }

    /// Takes `count` submissions from the caller's rate, if it has one. With
    /// Redis unreachable the limit is not enforced: submissions are
    /// accepted while Redis is down, as they are without limits.
    async fn admit(&self, origin: &Origin, count: usize) -> Result<(), SubmitError> {
        let Some(rate) = &origin.rate else {
            return Ok(());
        };
        match self
            .0
            .quotas
            .admit(&rate.key_id, rate.per_second, count)
            .await
        {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Refused { retry_after }) => Err(SubmitError::RateLimited { retry_after }),
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot check the rate limit; admitting");
                Ok(())
            }
        }
    }

    fn new_task(&self, body: Value, origin: &Origin) -> Result<NewTask, SubmitError> {
        let (task, parameters) = self.0.registry.parse_submission(body)?;
        Ok(task.new_task(parameters, origin))
    }

    /// The registry's name of the task's type: a bounded metric label.
    fn accepted_name(&self, task: &NewTask) -> &'static str {
        self.0.registry.label(&task.task_name)
    }

    async fn dispatch(&self, tasks: &[NewTask]) {
        let messages: Vec<Message> = tasks.iter().map(Message::from).collect();
        let pairs = tasks.iter().map(|t| t.queue.as_str()).zip(&messages);
        if let Err(err) = self.0.queue.dispatch_many(pairs).await {
            tracing::warn!(count = tasks.len(), error = %error_chain(&err), "dispatch failed; the reconciler will retry it");
        }
    }
}

fn accepted(task_name: &'static str, id: Uuid) {
    metrics::counter!(m::TASKS_SUBMITTED, "task_name" => task_name).increment(1);
    tracing::info!(task_id = %id, task_name, "task accepted");
}

/// The `tasks` array of a batch, checked for shape and size.
fn batch_items(body: Value, max: usize) -> Result<Vec<Value>, SubmitError> {
    let invalid = |field: &str, message: String| SubmitError::Batch {
        field: field.to_owned(),
        message,
    };
    let items = match body {
        Value::Object(mut fields) => {
            let items = fields.remove("tasks");
            if let Some(unknown) = fields.keys().next() {
                return Err(invalid(
                    unknown,
                    "is not a field of a batch (only `tasks`)".into(),
                ));
            }
            items
        }
        _ => None,
    };
    let Some(Value::Array(items)) = items else {
        return Err(invalid("tasks", "must be an array of tasks".into()));
    };
    if items.is_empty() || items.len() > max {
        return Err(invalid(
            "tasks",
            format!("must hold between 1 and {max} tasks, not {}", items.len()),
        ));
    }
    Ok(items)
}

/// sha256 of the normalised request. serde_json maps keep their keys sorted,
/// so field order and defaults the client left out do not change it.
fn fingerprint(canonical: &Value) -> String {
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_field_order() {
        let one: Value = serde_json::from_str(r#"{"a": 1, "b": 2}"#).unwrap_or_default();
        let two: Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap_or_default();
        assert_eq!(fingerprint(&one), fingerprint(&two));
        assert_ne!(fingerprint(&one), fingerprint(&json!({"a": 1, "b": 3})));
    }

    #[test]
    fn a_batch_is_an_object_with_a_bounded_tasks_array() {
        let field = |body: Value| match batch_items(body, 2) {
            Err(SubmitError::Batch { field, .. }) => Some(field),
            _ => None,
        };
        assert_eq!(field(json!([])).as_deref(), Some("tasks"));
        assert_eq!(field(json!({"tasks": []})).as_deref(), Some("tasks"));
        assert_eq!(field(json!({"tasks": [1, 2, 3]})).as_deref(), Some("tasks"));
        assert_eq!(field(json!({"tasks": [1], "x": 1})).as_deref(), Some("x"));
        assert!(batch_items(json!({"tasks": [1, 2]}), 2).is_ok());
    }
}
