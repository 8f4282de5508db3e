//! Reading many tasks at once, writing many at once, and deleting old ones.

use std::time::Duration;

use uuid::Uuid;

use super::tasks::RecordRow;
use super::{Result, Store};
use crate::domain::json::to_jsonb_text;
use crate::domain::{NewTask, TaskRecord, TaskStatus, TaskSubmission, trace_id_of};

/// Which tasks to list: newest first, after an optional cursor.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this tenant's tasks; `None` for every tenant (an admin).
    pub tenant: Option<String>,
    pub status: Option<TaskStatus>,
    pub task_name: Option<String>,
    pub queue: Option<String>,
    /// Only tasks older than this one (the last of the previous page).
    pub before: Option<Uuid>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct SubmissionRow {
    id: Uuid,
    task_name: String,
    tenant: String,
    queue: String,
    task_parameters: serde_json::Value,
    request_id: Option<String>,
    trace_context: Option<String>,
}

impl Store {
    /// Tasks matching `filter`, newest first. Ids are UUIDv7, so id order is
    /// creation order and the keyset is the id alone, served by the
    /// `(tenant, id)`, `(tenant, status, id)` and `(tenant, task_name, id)`
    /// indexes (the primary key for an admin's listing of every tenant).
    #[tracing::instrument(skip_all)]
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>> {
        let sql = listing_sql(filter);
        let mut query = sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(sql));
        if let Some(tenant) = &filter.tenant {
            query = query.bind(tenant);
        }
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(name) = &filter.task_name {
            query = query.bind(name);
        }
        if let Some(queue) = &filter.queue {
            query = query.bind(queue);
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        let rows = self
            .bounded(query.bind(filter.limit).fetch_all(self.db()))
            .await?;
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    /// Task `id` as submitted, if it belongs to `tenant` (any tenant when
    /// `None`).
    #[tracing::instrument(skip_all)]
    pub async fn submission(
        &self,
        id: Uuid,
        tenant: Option<&str>,
    ) -> Result<Option<TaskSubmission>> {
        let row = self
            .bounded(
                sqlx::query_as::<_, SubmissionRow>(
                    "SELECT id, task_name, tenant, queue, task_parameters, request_id, trace_context \
                     FROM tasks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)",
                )
                .bind(id)
                .bind(tenant)
                .fetch_optional(&self.pool),
            )
            .await?;
        Ok(row.map(|row| TaskSubmission {
            id: row.id,
            task_name: row.task_name,
            tenant: row.tenant,
            queue: row.queue,
            parameters: row.task_parameters,
            request_id: row.request_id,
            trace_id: row.trace_context.as_deref().and_then(trace_id_of),
        }))
    }

    /// Stores several tasks in one statement: all of them or none. Returns
    /// how many rows were written.
    #[tracing::instrument(skip_all, fields(count = tasks.len()))]
    pub async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<u64> {
        let written = self
            .bounded(insert_rows(self.db(), tasks, self.named()))
            .await?;
        Ok(written)
    }

    /// Deletes up to `limit` finished tasks older than `age`; returns their
    /// ids. Safe to run from several workers at once (`SKIP LOCKED`).
    #[tracing::instrument(skip_all)]
    pub async fn purge_finished(&self, age: Duration, limit: i64) -> Result<Vec<Uuid>> {
        self.bounded(
            sqlx::query_scalar(
                "DELETE FROM tasks WHERE id IN ( \
                   SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') \
                   AND completed_at < now() - make_interval(secs => $1) \
                   LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING id",
            )
            .bind(age.as_secs_f64())
            .bind(limit)
            .fetch_all(self.db()),
        )
        .await
    }
}

/// Inserts `tasks` in one statement with any executor (the pool, or a
/// transaction).
pub(super) async fn insert_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tasks: &[NewTask],
    named: bool,
) -> std::result::Result<u64, sqlx::Error> {
    let mut ids = Vec::with_capacity(tasks.len());
    let mut names = Vec::with_capacity(tasks.len());
    let mut parameters = Vec::with_capacity(tasks.len());
    let mut queues = Vec::with_capacity(tasks.len());
    let mut max_attempts = Vec::with_capacity(tasks.len());
    let mut request_ids = Vec::with_capacity(tasks.len());
    let mut trace_contexts = Vec::with_capacity(tasks.len());
    let mut tenants = Vec::with_capacity(tasks.len());
    for task in tasks {
        ids.push(task.id);
        names.push(task.task_name.as_str());
        parameters.push(to_jsonb_text(&task.parameters));
        queues.push(task.queue.as_str());
        max_attempts.push(task.max_attempts);
        request_ids.push(task.request_id.as_deref());
        trace_contexts.push(task.trace_context.as_deref());
        tenants.push(task.tenant.as_str());
    }
    let written = sqlx::query(
        "INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, \
         request_id, trace_context, tenant, dispatched_at) \
         SELECT id, task_name, task_parameters::jsonb, queue, max_attempts, request_id, \
         trace_context, tenant, now() FROM unnest($1::uuid[], $2::varchar[], $3::text[], \
         $4::varchar[], $5::int4[], $6::varchar[], $7::varchar[], $8::varchar[]) \
         AS t(id, task_name, task_parameters, queue, max_attempts, request_id, \
         trace_context, tenant)",
    )
    .bind(ids)
    .bind(names)
    .bind(parameters)
    .bind(queues)
    .bind(max_attempts)
    .bind(request_ids)
    .bind(trace_contexts)
    .bind(tenants)
    .persistent(named)
    .execute(executor)
    .await?;
    Ok(written.rows_affected())
}

/// The listing statement for the filters `filter` sets: one statement per
/// combination, each with only the conditions it needs, so every plan can
/// use the index its filters match (a `$1 IS NULL OR …` condition cannot).
/// Built from fixed text only; every value is a bound parameter.
fn listing_sql(filter: &TaskFilter) -> String {
    let mut conditions = Vec::new();
    let mut next = 1;
    let mut condition = |column: &str, op: &str| {
        conditions.push(format!("{column} {op} ${next}"));
        next += 1;
    };
    if filter.tenant.is_some() {
        condition("tenant", "=");
    }
    if filter.status.is_some() {
        condition("status", "=");
    }
    if filter.task_name.is_some() {
        condition("task_name", "=");
    }
    if filter.queue.is_some() {
        condition("queue", "=");
    }
    if filter.before.is_some() {
        condition("id", "<");
    }
    let mut sql = format!("SELECT {} FROM tasks", record_columns!());
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${next}"));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_statement_has_only_the_conditions_it_needs() {
        let all = listing_sql(&TaskFilter::default());
        assert!(
            all.ends_with("FROM tasks ORDER BY id DESC LIMIT $1"),
            "{all}"
        );
        let some = listing_sql(&TaskFilter {
            tenant: Some("acme".into()),
            task_name: Some("sum".into()),
            before: Some(Uuid::nil()),
            ..TaskFilter::default()
        });
        assert!(
            some.ends_with(
                "WHERE tenant = $1 AND task_name = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
            ),
            "{some}"
        );
    }
}
