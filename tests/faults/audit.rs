//! The audit after a scenario, in PostgreSQL: every accepted task finished,
//! none failed, none was finished twice.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Counts completion writes: a row per transition into a terminal status.
/// Installed in the scenario's own database only.
pub async fn install_completion_log(pool: &PgPool) {
    for statement in [
        "CREATE TABLE completion_log (task_id uuid NOT NULL, status text NOT NULL, \
         attempt int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
        "CREATE FUNCTION log_completion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         INSERT INTO completion_log (task_id, status, attempt) \
         VALUES (NEW.id, NEW.status, NEW.attempts); RETURN NEW; END $$",
        "CREATE TRIGGER log_completion AFTER UPDATE OF status ON tasks FOR EACH ROW \
         WHEN (NEW.status IN ('completed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status) \
         EXECUTE FUNCTION log_completion()",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .expect("install completion log");
    }
}

#[derive(Debug, Default)]
pub struct Audit {
    pub found: i64,
    pub completed: i64,
    pub failed: i64,
    pub unfinished: i64,
    pub written_twice: i64,
    /// Tasks that needed more than one attempt or were handed back.
    pub rerun: i64,
}

impl Audit {
    /// What went wrong for the `accepted` tasks: any missing, unfinished,
    /// failed or finished twice.
    pub fn problems(&self, accepted: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if self.found != accepted as i64 {
            problems.push(format!(
                "{} accepted tasks missing",
                accepted as i64 - self.found
            ));
        }
        if self.unfinished > 0 {
            problems.push(format!("{} tasks never finished", self.unfinished));
        }
        if self.failed > 0 {
            problems.push(format!("{} tasks failed", self.failed));
        }
        if self.written_twice != 0 {
            problems.push(format!("{} tasks finished twice", self.written_twice));
        }
        problems
    }

    /// Waits (bounded) for every accepted task to finish, then counts.
    pub async fn run(pool: &PgPool, accepted: &[Uuid], patience: Duration) -> Self {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let audit = Self::count(pool, accepted).await;
            if (audit.unfinished == 0 && audit.found == accepted.len() as i64)
                || tokio::time::Instant::now() > deadline
            {
                return audit;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn count(pool: &PgPool, accepted: &[Uuid]) -> Self {
        // A task re-ran when it took a second attempt, or was handed back
        // (which raises its budget above its type's).
        let registry = tasker::tasks::Registry::new(&tasker::config::Config::default())
            .expect("the built-in task types");
        let (names, budgets): (Vec<String>, Vec<i32>) = registry
            .iter()
            .map(|t| (t.name().to_owned(), t.retry_policy().max_attempts_i32()))
            .unzip();
        let Ok((found, completed, failed, rerun)) = sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), \
             count(*) FILTER (WHERE status = 'failed'), \
             count(*) FILTER (WHERE attempts > 1 OR tasks.max_attempts > budget.max_attempts) \
             FROM tasks JOIN unnest($2::varchar[], $3::int4[]) AS budget(task_name, max_attempts) \
             USING (task_name) WHERE id = ANY($1)",
        )
        .bind(accepted)
        .bind(names)
        .bind(budgets)
        .fetch_one(pool)
        .await
        else {
            // PostgreSQL may be restarting: nothing counted yet.
            return Self {
                unfinished: accepted.len() as i64,
                ..Self::default()
            };
        };
        let written_twice: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT task_id FROM completion_log GROUP BY task_id \
             HAVING count(*) > 1) AS twice",
        )
        .fetch_one(pool)
        .await
        .unwrap_or(-1);
        Self {
            found,
            completed,
            failed,
            unfinished: found - completed - failed,
            written_twice,
            rerun,
        }
    }
}
