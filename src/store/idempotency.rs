//! Idempotent submission: a client's `Idempotency-Key` maps to one task for
//! a configurable window. The same key with the same request gives that task
//! back; the same key with a different request is a conflict.

use std::time::Duration;

use uuid::Uuid;

use super::tasks::insert_row;
use super::{Result, Store};
use crate::domain::NewTask;

/// What an idempotent insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotentInsert {
    /// The key was new (or expired): the task was stored.
    Created,
    /// The key was used before with the same request: that task's id.
    Replayed(Uuid),
    /// The key was used before with a different request.
    Conflict,
}

impl Store {
    /// Stores `task` under `key` unless the key is already taken, in one
    /// transaction: concurrent requests with one key wait on the key's row
    /// and all but the first see it taken.
    #[tracing::instrument(skip_all, fields(task_id = %task.id))]
    pub async fn insert_task_idempotent(
        &self,
        task: &NewTask,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<IdempotentInsert> {
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND expires_at <= now()")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            let claimed: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO idempotency_keys (key, task_id, fingerprint, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                 ON CONFLICT (key) DO NOTHING RETURNING task_id",
            )
            .bind(key)
            .bind(task.id)
            .bind(fingerprint)
            .bind(window.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_some() {
                insert_row(&mut *tx, task).await?;
                tx.commit().await?;
                return Ok(IdempotentInsert::Created);
            }
            let (task_id, stored): (Uuid, String) =
                sqlx::query_as("SELECT task_id, fingerprint FROM idempotency_keys WHERE key = $1")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(if stored == fingerprint {
                IdempotentInsert::Replayed(task_id)
            } else {
                IdempotentInsert::Conflict
            })
        })
        .await
    }

    /// Deletes up to `limit` expired keys; returns how many.
    pub async fn purge_expired_idempotency_keys(&self, limit: i64) -> Result<u64> {
        let done = self
            .bounded(
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE key IN ( \
                       SELECT key FROM idempotency_keys WHERE expires_at <= now() \
                       LIMIT $1 FOR UPDATE SKIP LOCKED)",
                )
                .bind(limit)
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected())
    }
}
