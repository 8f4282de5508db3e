//! Idempotent submission: a tenant's `Idempotency-Key` maps to the tasks of
//! one request (one task, or a batch) for a configurable window. The same
//! key with the same request gives those tasks back; the same key with a
//! different request is a conflict.

use std::time::Duration;

use uuid::Uuid;

use super::listing::insert_rows;
use super::{Result, Store};
use crate::domain::NewTask;

/// What an idempotent insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotentInsert {
    /// The key was new (or expired): the tasks were stored.
    Created,
    /// The key was used before with the same request: its tasks' ids.
    Replayed(Vec<Uuid>),
    /// The key was used before with a different request.
    Conflict,
}

impl Store {
    /// Stores `tasks` under `key` unless the key is already taken, in one
    /// transaction: concurrent requests with one key wait on the key's row
    /// and all but the first see it taken.
    #[tracing::instrument(skip_all, fields(count = tasks.len()))]
    pub async fn insert_tasks_idempotent(
        &self,
        tasks: &[NewTask],
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<IdempotentInsert> {
        let ids: Vec<Uuid> = tasks.iter().map(|task| task.id).collect();
        let (Some(&first), Some(tenant)) = (ids.first(), tasks.first().map(|t| t.tenant.as_str()))
        else {
            return Ok(IdempotentInsert::Created);
        };
        self.bounded(async {
            let mut tx = self.begin().await?;
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 \
                 AND expires_at <= now()",
            )
            .bind(tenant)
            .bind(key)
            .persistent(self.named())
            .execute(&mut *tx)
            .await?;
            let claimed: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO idempotency_keys \
                 (tenant, key, task_id, task_ids, fingerprint, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) \
                 ON CONFLICT (tenant, key) DO NOTHING RETURNING task_id",
            )
            .bind(tenant)
            .bind(key)
            .bind(first)
            .bind(&ids)
            .bind(fingerprint)
            .bind(window.as_secs_f64())
            .persistent(self.named())
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_some() {
                insert_rows(&mut *tx, tasks, self.named()).await?;
                tx.commit().await?;
                return Ok(IdempotentInsert::Created);
            }
            let (task_id, task_ids, stored): (Uuid, Option<Vec<Uuid>>, String) = sqlx::query_as(
                "SELECT task_id, task_ids, fingerprint FROM idempotency_keys \
                 WHERE tenant = $1 AND key = $2",
            )
            .bind(tenant)
            .bind(key)
            .persistent(self.named())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(if stored == fingerprint {
                IdempotentInsert::Replayed(task_ids.unwrap_or_else(|| vec![task_id]))
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
                    "DELETE FROM idempotency_keys WHERE (tenant, key) IN ( \
                       SELECT tenant, key FROM idempotency_keys WHERE expires_at <= now() \
                       LIMIT $1 FOR UPDATE SKIP LOCKED)",
                )
                .bind(limit)
                .execute(self.db()),
            )
            .await?;
        Ok(done.rows_affected())
    }
}
