//! Quick tasks (types that run in milliseconds: `sum`, `file_hash`) are
//! claimed, run and finished inside one transaction: their rows are locked
//! (`FOR UPDATE SKIP LOCKED`, in id order) instead of being marked
//! `running` with a lease, and one UPDATE writes each outcome. One write per
//! attempt instead of two, and no lease to renew.
//!
//! The guarantees hold: the lock keeps any other worker from the task while
//! it runs; a worker that dies mid-run takes its transaction with it, so the
//! task is still `pending` and re-dispatch runs it again; a worker frozen
//! mid-run loses its session to `idle_in_transaction_session_timeout` (see
//! `SESSION_SETTINGS`), which frees the rows, and its late write fails with
//! its connection. The attempt number still grows with every attempt.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::tasks::{ClaimRow, RecordRow};
use super::{Error, Result, Store};
use crate::domain::json::to_jsonb_text;
use crate::domain::{ClaimedTask, TaskRecord, TaskStatus};

/// How a quick attempt ended.
#[derive(Debug, Clone)]
pub enum QuickOutcome {
    Completed(Value),
    Failed(String),
    /// Worth another attempt after `delay`: `pending` again, error kept.
    Retry {
        error: String,
        delay: Duration,
    },
}

/// The outcome of one claimed quick task.
#[derive(Debug, Clone)]
pub struct QuickWrite {
    pub id: Uuid,
    pub outcome: QuickOutcome,
}

/// Quick tasks claimed by an open transaction; [`QuickClaim::finish`]
/// writes their outcomes and commits. Dropped unfinished, it rolls back and
/// the tasks stay `pending`.
pub struct QuickClaim {
    tx: Transaction<'static, Postgres>,
    query_timeout: Duration,
    /// See `Store::named`.
    named: bool,
    /// The tasks this transaction holds; ids that were not pending (done,
    /// or held by another worker) are missing.
    pub tasks: Vec<ClaimedTask>,
}

impl Store {
    /// Locks the pending tasks among `ids` for one attempt each.
    #[tracing::instrument(skip_all, fields(count = ids.len()))]
    pub async fn claim_quick(&self, ids: &[Uuid]) -> Result<QuickClaim> {
        let (tx, rows) = self
            .bounded(async {
                let mut tx = self.begin().await?;
                let rows: Vec<ClaimRow> = sqlx::query_as(
                    "SELECT id, task_name, tenant, task_parameters, attempts + 1 AS attempts, \
                     max_attempts, created_at, request_id, trace_context FROM tasks \
                     WHERE id = ANY($1) AND (status = 'pending') IS TRUE \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                )
                .bind(ids)
                .persistent(self.named())
                .fetch_all(&mut *tx)
                .await?;
                Ok((tx, rows))
            })
            .await?;
        Ok(QuickClaim {
            tx,
            query_timeout: self.query_timeout,
            named: self.named(),
            tasks: rows.into_iter().map(ClaimedTask::from).collect(),
        })
    }
}

impl QuickClaim {
    /// Writes every outcome and commits; returns the records written.
    #[tracing::instrument(skip_all, fields(count = writes.len()))]
    pub async fn finish(mut self, writes: &[QuickWrite]) -> Result<Vec<TaskRecord>> {
        let attempts: std::collections::HashMap<Uuid, i32> =
            self.tasks.iter().map(|t| (t.id, t.attempt)).collect();
        let mut ids = Vec::with_capacity(writes.len());
        let mut attempt = Vec::with_capacity(writes.len());
        let mut statuses = Vec::with_capacity(writes.len());
        let mut outputs = Vec::with_capacity(writes.len());
        let mut errors = Vec::with_capacity(writes.len());
        let mut delays = Vec::with_capacity(writes.len());
        for write in writes {
            let Some(number) = attempts.get(&write.id) else {
                continue;
            };
            ids.push(write.id);
            attempt.push(*number);
            let (status, output, error, delay) = match &write.outcome {
                QuickOutcome::Completed(output) => (
                    TaskStatus::Completed,
                    Some(to_jsonb_text(output)),
                    None,
                    0.0,
                ),
                QuickOutcome::Failed(error) => {
                    (TaskStatus::Failed, None, Some(error.as_str()), 0.0)
                }
                QuickOutcome::Retry { error, delay } => (
                    TaskStatus::Pending,
                    None,
                    Some(error.as_str()),
                    delay.as_secs_f64(),
                ),
            };
            statuses.push(status.as_str());
            outputs.push(output);
            errors.push(error);
            delays.push(delay);
        }
        let timeout = self.query_timeout;
        let named = self.named;
        let tx = &mut self.tx;
        let written = tokio::time::timeout(timeout, async {
            let rows: Vec<RecordRow> = sqlx::query_as(concat!(
                "UPDATE tasks AS t SET status = u.status, attempts = u.attempt, \
                 started_at = now(), updated_at = clock_timestamp(), \
                 task_output = u.output::jsonb, error = u.error, \
                 completed_at = CASE WHEN u.status = 'pending' THEN NULL ELSE clock_timestamp() END, \
                 run_after = CASE WHEN u.status = 'pending' \
                   THEN clock_timestamp() + make_interval(secs => u.delay) ELSE t.run_after END, \
                 dispatched_at = CASE WHEN u.status = 'pending' \
                   THEN clock_timestamp() + make_interval(secs => u.delay) ELSE t.dispatched_at END \
                 FROM unnest($1::uuid[], $2::int4[], $3::varchar[], $4::text[], $5::text[], \
                 $6::float8[]) AS u(id, attempt, status, output, error, delay) \
                 WHERE t.id = u.id AND t.attempts = u.attempt - 1 \
                 AND (t.status = 'pending') IS TRUE RETURNING ",
                record_columns!("t.")
            ))
            .bind(&ids)
            .bind(&attempt)
            .bind(&statuses)
            .bind(&outputs)
            .bind(&errors)
            .bind(&delays)
            .persistent(named)
            .fetch_all(&mut **tx)
            .await?;
            Ok::<_, sqlx::Error>(rows)
        })
        .await
        .map_err(|_| Error::TimedOut(timeout))?
        .map_err(Error::from_sqlx)?;
        tokio::time::timeout(timeout, self.tx.commit())
            .await
            .map_err(|_| Error::TimedOut(timeout))?
            .map_err(Error::from_sqlx)?;
        written.into_iter().map(TaskRecord::try_from).collect()
    }
}
