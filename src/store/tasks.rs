//! Statements on the `tasks` table. Every state change is a conditional
//! UPDATE, so duplicates and stale workers can never overwrite a result.
//!
//! Statements on one task test its status as `(status = …) IS TRUE`, a form
//! no status index can serve, so the row is always found by primary key.
//! With a plain `status = 'pending'`, statistics gathered while the queue was
//! empty make the planner walk a status index and filter every pending task.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Result, Store};
use crate::domain::json::to_jsonb_text;
use crate::domain::{ClaimedTask, NewTask, TaskRecord, TaskStatus};

#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    id: Uuid,
    task_name: String,
    tenant: String,
    status: String,
    task_output: Option<Value>,
    error: Option<String>,
    attempts: i32,
    max_attempts: i32,
    run_after: DateTime<Utc>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<RecordRow> for TaskRecord {
    type Error = Error;

    fn try_from(row: RecordRow) -> Result<Self> {
        let status: TaskStatus = row
            .status
            .parse()
            .map_err(|err| Error::Corrupt(format!("task {}: {err}", row.id)))?;
        // A pending task that has already been tried waits for `run_after`.
        let next_attempt_at =
            (status == TaskStatus::Pending && row.attempts > 0).then_some(row.run_after);
        Ok(TaskRecord {
            id: row.id,
            task_name: row.task_name,
            tenant: row.tenant,
            status,
            task_output: row.task_output,
            error: row.error,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            next_attempt_at,
            created_at: row.created_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClaimRow {
    id: Uuid,
    task_name: String,
    tenant: String,
    task_parameters: Value,
    attempts: i32,
    max_attempts: i32,
    created_at: DateTime<Utc>,
    request_id: Option<String>,
    trace_context: Option<String>,
}

impl From<ClaimRow> for ClaimedTask {
    fn from(row: ClaimRow) -> Self {
        Self {
            id: row.id,
            task_name: row.task_name,
            tenant: row.tenant,
            parameters: row.task_parameters,
            attempt: row.attempts,
            max_attempts: row.max_attempts,
            created_at: row.created_at,
            request_id: row.request_id,
            trace_context: row.trace_context,
        }
    }
}

/// Inserts one task row with any executor (the pool, or a transaction).
async fn insert_row<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    task: &NewTask,
) -> std::result::Result<RecordRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, request_id, \
         trace_context, tenant, dispatched_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, now()) \
         RETURNING ",
        record_columns!()
    ))
    .bind(task.id)
    .bind(&task.task_name)
    .bind(to_jsonb_text(&task.parameters))
    .bind(&task.queue)
    .bind(task.max_attempts)
    .bind(&task.request_id)
    .bind(&task.trace_context)
    .bind(&task.tenant)
    .fetch_one(executor)
    .await
}

/// How an attempt ended for good.
#[derive(Debug, Clone)]
pub enum FinalOutcome {
    Completed(Value),
    Failed(String),
}

/// The final outcome of one attempt, fenced by its attempt number.
#[derive(Debug, Clone)]
pub struct FinalWrite {
    pub id: Uuid,
    pub attempt: i32,
    pub outcome: FinalOutcome,
}

/// A pending task whose dispatch message may have been lost.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DispatchCandidate {
    pub id: Uuid,
    pub task_name: String,
    pub tenant: String,
    pub queue: String,
    pub request_id: Option<String>,
    pub trace_context: Option<String>,
    /// When its message was last sent (the keyset of the scan).
    pub dispatched_at: DateTime<Utc>,
}

impl Store {
    /// Stores a new `pending` task. Counts as dispatched now: the caller
    /// dispatches it right after, and the reconciler covers a lost dispatch.
    #[tracing::instrument(skip_all, fields(task_id = %task.id, task_name = %task.task_name))]
    pub async fn insert_task(&self, task: &NewTask) -> Result<TaskRecord> {
        let row = self.bounded(insert_row(self.db(), task)).await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn get_task(&self, id: Uuid) -> Result<Option<TaskRecord>> {
        let sql = concat!("SELECT ", record_columns!(), " FROM tasks WHERE id = $1");
        let row: Option<RecordRow> = self
            .bounded(sqlx::query_as(sql).bind(id).fetch_optional(self.db()))
            .await?;
        row.map(TaskRecord::try_from).transpose()
    }

    /// Claims a `pending` task for one attempt: `running`, attempts + 1, a
    /// lease until now + `lease`. `None` when the task is not pending (done,
    /// running elsewhere, or unknown): the caller drops its message.
    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn claim(&self, id: Uuid, lease: Duration) -> Result<Option<ClaimedTask>> {
        Ok(self.claim_many(&[id], lease).await?.pop())
    }

    /// [`Store::claim`] for several tasks in one statement. Tasks that are
    /// not pending are missing from the answer. The rows are locked in id
    /// order, so two workers claiming overlapping batches (a message
    /// delivered twice) wait for each other instead of deadlocking.
    pub async fn claim_many(&self, ids: &[Uuid], lease: Duration) -> Result<Vec<ClaimedTask>> {
        let rows: Vec<ClaimRow> = self
            .bounded(
                sqlx::query_as(concat!(
                    lock_in_id_order!("pending"),
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1, \
                     started_at = now(), updated_at = now(), \
                     lease_expires_at = now() + make_interval(secs => $2) \
                     FROM locked WHERE tasks.id = locked.id \
                     AND (tasks.status = 'pending') IS TRUE \
                     RETURNING tasks.id, tasks.task_name, tasks.tenant, tasks.task_parameters, \
                     tasks.attempts, tasks.max_attempts, tasks.created_at, tasks.request_id, \
                     tasks.trace_context"
                ))
                .bind(ids)
                .bind(lease.as_secs_f64())
                .fetch_all(self.db()),
            )
            .await?;
        Ok(rows.into_iter().map(ClaimedTask::from).collect())
    }

    /// Records success of `attempt`. `None` when the attempt no longer holds
    /// the task (its lease was taken over): the stale result is discarded.
    #[tracing::instrument(skip_all, fields(task_id = %id, attempt))]
    pub async fn complete(
        &self,
        id: Uuid,
        attempt: i32,
        output: &Value,
    ) -> Result<Option<TaskRecord>> {
        let write = FinalWrite {
            id,
            attempt,
            outcome: FinalOutcome::Completed(output.clone()),
        };
        Ok(self.finish_many(&[write]).await?.pop())
    }

    /// Records a final failure of `attempt`; `None` as for [`Store::complete`].
    #[tracing::instrument(skip_all, fields(task_id = %id, attempt))]
    pub async fn fail(&self, id: Uuid, attempt: i32, error: &str) -> Result<Option<TaskRecord>> {
        let write = FinalWrite {
            id,
            attempt,
            outcome: FinalOutcome::Failed(error.to_owned()),
        };
        Ok(self.finish_many(&[write]).await?.pop())
    }

    /// Records the final outcome of several attempts in one statement, each
    /// fenced by its attempt number. Returns the records written; a write
    /// whose attempt no longer holds its task is missing from the answer.
    pub async fn finish_many(&self, writes: &[FinalWrite]) -> Result<Vec<TaskRecord>> {
        let mut ids = Vec::with_capacity(writes.len());
        let mut attempts = Vec::with_capacity(writes.len());
        let mut statuses = Vec::with_capacity(writes.len());
        let mut outputs = Vec::with_capacity(writes.len());
        let mut errors = Vec::with_capacity(writes.len());
        for write in writes {
            ids.push(write.id);
            attempts.push(write.attempt);
            match &write.outcome {
                FinalOutcome::Completed(output) => {
                    statuses.push(TaskStatus::Completed.as_str());
                    outputs.push(Some(to_jsonb_text(output)));
                    errors.push(None);
                }
                FinalOutcome::Failed(error) => {
                    statuses.push(TaskStatus::Failed.as_str());
                    outputs.push(None);
                    errors.push(Some(error.as_str()));
                }
            }
        }
        let sql = concat!(
            lock_in_id_order!(),
            "UPDATE tasks AS t SET status = u.status, task_output = u.output::jsonb, \
             error = u.error, completed_at = now(), updated_at = now(), lease_expires_at = NULL \
             FROM unnest($1::uuid[], $2::int4[], $3::varchar[], $4::text[], $5::text[]) \
             AS u(id, attempt, status, output, error), locked \
             WHERE t.id = u.id AND t.id = locked.id AND (t.status = 'running') IS TRUE \
             AND t.attempts = u.attempt RETURNING ",
            record_columns!("t.")
        );
        let rows: Vec<RecordRow> = self
            .bounded(
                sqlx::query_as(sql)
                    .bind(ids)
                    .bind(attempts)
                    .bind(statuses)
                    .bind(outputs)
                    .bind(errors)
                    .fetch_all(self.db()),
            )
            .await?;
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    /// Puts the task back to `pending` after a retryable failure of `attempt`,
    /// to run again after `delay`. The status never shows `failed` between
    /// attempts; the error of the last attempt stays visible. An attempt
    /// that did not `spend` (it waited for a shared budget and never ran)
    /// gives its place in the retry budget back.
    #[tracing::instrument(skip_all, fields(task_id = %id, attempt))]
    pub async fn schedule_retry(
        &self,
        id: Uuid,
        attempt: i32,
        error: &str,
        delay: Duration,
        spend: bool,
    ) -> Result<Option<TaskRecord>> {
        let sql = concat!(
            "UPDATE tasks SET status = 'pending', error = $3, updated_at = now(), \
             max_attempts = max_attempts + CASE WHEN $5 THEN 0 ELSE 1 END, \
             lease_expires_at = NULL, run_after = now() + make_interval(secs => $4), \
             dispatched_at = now() + make_interval(secs => $4) \
             WHERE id = $1 AND (status = 'running') IS TRUE AND attempts = $2 RETURNING ",
            record_columns!(),
            ""
        );
        let row: Option<RecordRow> = self
            .bounded(
                sqlx::query_as(sql)
                    .bind(id)
                    .bind(attempt)
                    .bind(error)
                    .bind(delay.as_secs_f64())
                    .bind(spend)
                    .fetch_optional(self.db()),
            )
            .await?;
        row.map(TaskRecord::try_from).transpose()
    }

    /// Up to `limit` due `pending` tasks not dispatched in the last `quiet`,
    /// in (`dispatched_at`, id) order after `after`: candidates for a
    /// re-dispatch. A read only, served by the pending tasks' dispatch-time
    /// index: tasks dispatched recently are never read at all.
    #[tracing::instrument(skip_all)]
    pub async fn undispatched(
        &self,
        quiet: Duration,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<DispatchCandidate>> {
        let (after_time, after_id) = after.unzip();
        self.bounded(
            sqlx::query_as(
                "SELECT id, task_name, tenant, queue, request_id, trace_context, dispatched_at FROM tasks \
                 WHERE status = 'pending' AND dispatched_at < now() - make_interval(secs => $1) \
                 AND ($2::timestamptz IS NULL OR (dispatched_at, id) > ($2, $3)) \
                 AND run_after <= now() \
                 ORDER BY dispatched_at, id LIMIT $4",
            )
            .bind(quiet.as_secs_f64())
            .bind(after_time)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.db()),
        )
        .await
    }

    /// Stamps `dispatched_at = now()` on those of `ids` still pending and
    /// still not dispatched in the last `quiet`, and returns them to be
    /// dispatched again (none, when every one was claimed meanwhile). The
    /// re-check makes concurrent reconcilers harmless: only one of them
    /// stamps (and re-sends) a task, and the rows are locked in id order,
    /// so two of them never deadlock.
    #[tracing::instrument(skip_all, fields(count = ids.len()))]
    pub async fn mark_dispatched(
        &self,
        ids: &[Uuid],
        quiet: Duration,
    ) -> Result<Vec<DispatchCandidate>> {
        self.bounded(
            sqlx::query_as(concat!(
                lock_in_id_order!("pending"),
                "UPDATE tasks SET dispatched_at = now() FROM locked \
                 WHERE tasks.id = locked.id AND (tasks.status = 'pending') IS TRUE \
                 AND tasks.dispatched_at < now() - make_interval(secs => $2) \
                 RETURNING tasks.id, tasks.task_name, tasks.tenant, tasks.queue, \
                 tasks.request_id, tasks.trace_context, tasks.dispatched_at"
            ))
            .bind(ids)
            .bind(quiet.as_secs_f64())
            .fetch_all(self.db()),
        )
        .await
    }
}
