//! Leases on running tasks: renewal by their worker, recovery when a worker
//! is lost, and hand-back at shutdown. Every statement is fenced by the
//! attempt number.

use std::time::Duration;

use uuid::Uuid;

use super::{Result, Store};
use crate::domain::TaskRecord;

/// A running attempt, identified by task and fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub task_id: Uuid,
    pub attempt: i32,
}

/// A task as a statement that changed it left it, with what is needed to
/// dispatch it again: one recovered from a lost worker or handed back here,
/// and, inside [`Changed`](super::Changed), one an operator cancelled or
/// retried. `queue::Message::from` makes its dispatch message.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub record: TaskRecord,
    pub queue: String,
    pub request_id: Option<String>,
    pub trace_context: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct RecoveredRow {
    #[sqlx(flatten)]
    record: super::tasks::RecordRow,
    queue: String,
    request_id: Option<String>,
    trace_context: Option<String>,
}

impl Store {
    /// Extends the leases still held; returns the ids renewed. A lease missing
    /// from the answer was lost (expired and taken over, or finished).
    #[tracing::instrument(skip_all, fields(count = leases.len()))]
    pub async fn renew_leases(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Uuid>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts) = split(leases);
        self.bounded(
            sqlx::query_scalar(concat!(
                lock_in_id_order!(),
                "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $3), \
                 updated_at = now() \
                 FROM unnest($1::uuid[], $2::int4[]) AS held(id, attempt), locked \
                 WHERE tasks.id = held.id AND tasks.id = locked.id \
                 AND tasks.attempts = held.attempt \
                 AND (tasks.status = 'running') IS TRUE RETURNING tasks.id"
            ))
            .bind(ids)
            .bind(attempts)
            .bind(lease.as_secs_f64())
            .fetch_all(self.db()),
        )
        .await
    }

    /// Gives running attempts back at shutdown: `pending` again, due now, and
    /// not counted against the retry budget (the fencing token still grows).
    #[tracing::instrument(skip_all, fields(count = leases.len()))]
    pub async fn hand_back(&self, leases: &[Lease]) -> Result<Vec<Recovered>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts) = split(leases);
        let rows: Vec<RecoveredRow> = self
            .bounded(
                sqlx::query_as(concat!(
                    lock_in_id_order!(),
                    "UPDATE tasks SET status = 'pending', max_attempts = max_attempts + 1, \
                     lease_expires_at = NULL, run_after = now(), dispatched_at = now(), \
                     updated_at = now() \
                     FROM unnest($1::uuid[], $2::int4[]) AS held(id, attempt), locked \
                     WHERE tasks.id = held.id AND tasks.id = locked.id \
                     AND tasks.attempts = held.attempt \
                     AND (tasks.status = 'running') IS TRUE RETURNING ",
                    record_columns!("tasks."),
                    ", tasks.queue, tasks.request_id, tasks.trace_context"
                ))
                .bind(ids)
                .bind(attempts)
                .fetch_all(self.db()),
            )
            .await?;
        rows.into_iter().map(Recovered::try_from).collect()
    }

    /// Recovers up to `limit` tasks whose lease expired (their worker died or
    /// froze): back to `pending` after a jittered backoff, or `failed` with a
    /// "worker lost" error when that was the last attempt. A task back to
    /// `pending` counts as dispatched at its due time: the caller schedules
    /// its message for then, and re-dispatch covers a lost one. `SKIP
    /// LOCKED` lets every worker's reconciler run this at once.
    #[tracing::instrument(skip_all)]
    pub async fn recover_expired_leases(&self, limit: i64) -> Result<Vec<Recovered>> {
        let rows: Vec<RecoveredRow> = self
            .bounded(
                sqlx::query_as(concat!(
                    "WITH expired AS ( \
                       SELECT id, now() + make_interval(secs => \
                         random() * least(60.0, power(2, greatest(attempts - 1, 0)))) AS due \
                       FROM tasks WHERE status = 'running' AND lease_expires_at < now() \
                       ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     UPDATE tasks SET \
                       status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
                       error = 'worker lost: the lease of attempt ' || attempts || ' expired', \
                       completed_at = CASE WHEN attempts >= max_attempts THEN now() END, \
                       run_after = expired.due, dispatched_at = expired.due, \
                       lease_expires_at = NULL, updated_at = now() \
                     FROM expired WHERE tasks.id = expired.id RETURNING ",
                    record_columns!("tasks."),
                    ", tasks.queue, tasks.request_id, tasks.trace_context"
                ))
                .bind(limit)
                .fetch_all(self.db()),
            )
            .await?;
        rows.into_iter().map(Recovered::try_from).collect()
    }
}

impl TryFrom<RecoveredRow> for Recovered {
    type Error = super::Error;

    fn try_from(row: RecoveredRow) -> Result<Self> {
        Ok(Self {
            record: row.record.try_into()?,
            queue: row.queue,
            request_id: row.request_id,
            trace_context: row.trace_context,
        })
    }
}

fn split(leases: &[Lease]) -> (Vec<Uuid>, Vec<i32>) {
    leases.iter().map(|l| (l.task_id, l.attempt)).unzip()
}
