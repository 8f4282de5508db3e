//! Operator control: cancelling and retrying tasks, one or every match of
//! a filter, and pausing queues.
//!
//! A cancel is one conditional UPDATE, like every other state change: a
//! `pending` task never starts, and a `running` one is `cancelled` at once,
//! so the outcome its worker writes later is fenced out (it tests `status =
//! 'running'` and its attempt). A cancel racing an attempt's own final
//! write takes the row lock first or second: exactly one of them changes
//! the row, and the other finds it no longer running.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::leases::{Recovered, RecoveredRow};
use super::{Result, Store};
use crate::domain::TaskStatus;

/// Which tasks a bulk action acts on; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct TaskMatch {
    /// Only this tenant's tasks; `None` for every tenant (an admin).
    pub tenant: Option<String>,
    /// Only tasks in these statuses (the action's own statuses when empty).
    pub statuses: Vec<TaskStatus>,
    pub task_name: Option<String>,
    pub queue: Option<String>,
}

/// A task an action changed, with what is needed to dispatch it again.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The task as the action left it.
    pub task: Recovered,
    /// Its status before the action.
    pub was: TaskStatus,
}

#[derive(sqlx::FromRow)]
struct ChangedRow {
    #[sqlx(flatten)]
    task: RecoveredRow,
    was: String,
}

impl TryFrom<ChangedRow> for Changed {
    type Error = super::Error;

    fn try_from(row: ChangedRow) -> Result<Self> {
        let task = Recovered::try_from(row.task)?;
        let was = row
            .was
            .parse()
            .map_err(|err| super::Error::Corrupt(format!("task {}: {err}", task.record.id)))?;
        Ok(Self { task, was })
    }
}

/// A paused queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pause {
    pub queue: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: Option<String>,
}

/// The SET of a cancel: terminal now, no lease.
const CANCEL_SET: &str = "status = 'cancelled', completed_at = now(), updated_at = now(), \
     lease_expires_at = NULL";

/// The SET of a retry: `pending` and due now with a fresh attempt budget
/// (the type's, from `$2`/`$3`), attempts kept growing (they are the fencing
/// token), the last error kept until the new attempt ends.
const RETRY_SET: &str = "status = 'pending', \
     max_attempts = tasks.attempts + COALESCE((SELECT b.budget FROM unnest($2::text[], $3::int4[]) \
       AS b(name, budget) WHERE b.name = tasks.task_name), 1), \
     run_after = now(), dispatched_at = now(), completed_at = NULL, lease_expires_at = NULL, \
     updated_at = now()";

/// Columns every action returns.
const CHANGED_COLUMNS: &str = concat!(
    record_columns!("tasks."),
    ", target.status AS was, tasks.queue, tasks.request_id, tasks.trace_context"
);

/// An action: which statuses it applies to and what it sets.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Cancel,
    /// Retry with each task type's attempt budget.
    Retry,
}

impl Action {
    /// The statuses the action changes.
    pub fn applies_to(self) -> [TaskStatus; 2] {
        match self {
            Self::Cancel => [TaskStatus::Pending, TaskStatus::Running],
            Self::Retry => [TaskStatus::Failed, TaskStatus::Cancelled],
        }
    }

    fn set(self) -> &'static str {
        match self {
            Self::Cancel => CANCEL_SET,
            Self::Retry => RETRY_SET,
        }
    }
}

/// Each task type's attempt budget, for a retry: (names, budgets).
pub type Budgets<'a> = (&'a [String], &'a [i32]);

impl Store {
    /// Applies `action` to task `id` (of `tenant`, when given) if its status
    /// allows; `None` when it did not change (unknown, another tenant's, or
    /// in another status: the caller reads it to say which).
    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn act_on_task(
        &self,
        action: Action,
        id: Uuid,
        tenant: Option<&str>,
        budgets: Budgets<'_>,
    ) -> Result<Option<Changed>> {
        let statuses: Vec<&str> = action.applies_to().iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "WITH target AS (SELECT id, status FROM tasks WHERE id = $1 AND status = ANY($4) \
             AND ($5::varchar IS NULL OR tenant = $5) FOR UPDATE) \
             UPDATE tasks SET {} FROM target WHERE tasks.id = target.id RETURNING {CHANGED_COLUMNS}",
            action.set()
        );
        let row: Option<ChangedRow> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(budgets.0)
                    .bind(budgets.1)
                    .bind(statuses)
                    .bind(tenant)
                    .fetch_optional(self.db()),
            )
            .await?;
        row.map(Changed::try_from).transpose()
    }

    /// Applies `action` to the next page of tasks matching `filter`: up to
    /// `limit` of them, the first by id after `after`. Returns those it
    /// changed and the page's last id, which the caller goes on after;
    /// `None` when no task matched, and the action is done.
    ///
    /// The page is read first and then each of its tasks still in a status
    /// the action applies to is locked and changed, so one that changes
    /// meanwhile (a worker finishing it) drops out of this page alone: a
    /// page that changes fewer than `limit` tasks does not mean the last.
    #[tracing::instrument(skip_all, fields(limit))]
    pub async fn act_on_matching(
        &self,
        action: Action,
        filter: &TaskMatch,
        after: Option<Uuid>,
        limit: i64,
        budgets: Budgets<'_>,
    ) -> Result<(Vec<Changed>, Option<Uuid>)> {
        let statuses: Vec<&str> = if filter.statuses.is_empty() {
            action.applies_to().iter().map(|s| s.as_str()).collect()
        } else {
            filter.statuses.iter().map(|s| s.as_str()).collect()
        };
        let mut page = sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(page_sql(filter)))
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(&statuses)
            .bind(limit);
        for value in [&filter.tenant, &filter.task_name, &filter.queue]
            .into_iter()
            .flatten()
        {
            page = page.bind(value);
        }
        let ids = self.bounded(page.fetch_all(self.db())).await?;
        let Some(last) = ids.last().copied() else {
            return Ok((Vec::new(), None));
        };
        // Tenant, task name and queue never change: the status is all that
        // needs checking again under the lock.
        let sql = format!(
            "WITH target AS (SELECT id, status FROM tasks WHERE id = ANY($1) AND status = ANY($4) \
             ORDER BY id FOR UPDATE) \
             UPDATE tasks SET {} FROM target WHERE tasks.id = target.id RETURNING {CHANGED_COLUMNS}",
            action.set()
        );
        let rows: Vec<ChangedRow> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&ids)
                    .bind(budgets.0)
                    .bind(budgets.1)
                    .bind(&statuses)
                    .fetch_all(self.db()),
            )
            .await?;
        let changed = rows
            .into_iter()
            .map(Changed::try_from)
            .collect::<Result<_>>()?;
        Ok((changed, Some(last)))
    }

    /// Pauses `queue` (again: no change); returns whether it was running.
    pub async fn pause_queue(&self, queue: &str, by: Option<&str>) -> Result<bool> {
        let done = self
            .bounded(
                sqlx::query(
                    "INSERT INTO queue_pauses (queue, paused_by) VALUES ($1, $2) \
                     ON CONFLICT (queue) DO NOTHING",
                )
                .bind(queue)
                .bind(by)
                .execute(self.db()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Resumes `queue`; returns whether it was paused.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool> {
        let done = self
            .bounded(
                sqlx::query("DELETE FROM queue_pauses WHERE queue = $1")
                    .bind(queue)
                    .execute(self.db()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every paused queue.
    pub async fn paused_queues(&self) -> Result<Vec<Pause>> {
        self.bounded(
            sqlx::query_as("SELECT queue, paused_at, paused_by FROM queue_pauses ORDER BY queue")
                .fetch_all(self.db()),
        )
        .await
    }

    /// Running tasks per queue (served by the running tasks' lease index).
    pub async fn running_per_queue(&self) -> Result<Vec<(String, i64)>> {
        self.bounded(
            sqlx::query_as(
                "SELECT queue, count(*) FROM tasks WHERE status = 'running' \
                 AND lease_expires_at IS NOT NULL GROUP BY queue",
            )
            .fetch_all(self.db()),
        )
        .await
    }
}

/// The page of a bulk action for the filters `filter` sets, built from
/// fixed text only (every value is bound): `$1` the id to start after, `$2`
/// the statuses, `$3` the page size, then the set filters in the order
/// tenant, task name, queue. It locks nothing: a page read waits for no
/// worker, and its tasks are checked again when they are locked.
fn page_sql(filter: &TaskMatch) -> String {
    let mut conditions = vec!["id > $1".to_owned(), "status = ANY($2)".to_owned()];
    let mut next = 4;
    for (column, set) in [
        ("tenant", filter.tenant.is_some()),
        ("task_name", filter.task_name.is_some()),
        ("queue", filter.queue.is_some()),
    ] {
        if set {
            conditions.push(format!("{column} = ${next}"));
            next += 1;
        }
    }
    format!(
        "SELECT id FROM tasks WHERE {} ORDER BY id LIMIT $3",
        conditions.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_page_has_only_the_conditions_it_needs() {
        let all = page_sql(&TaskMatch::default());
        assert_eq!(
            all,
            "SELECT id FROM tasks WHERE id > $1 AND status = ANY($2) ORDER BY id LIMIT $3"
        );
        let some = page_sql(&TaskMatch {
            tenant: Some("acme".into()),
            queue: Some("llm".into()),
            ..TaskMatch::default()
        });
        assert!(
            some.contains("status = ANY($2) AND tenant = $4 AND queue = $5 ORDER BY id"),
            "{some}"
        );
    }
}
