//! Result cache in Redis, keyed by task id. Only terminal tasks are cached:
//! they never change, so a cached copy can never be stale. Entries hold the
//! JSON the API answers with, so a hit is served without decoding it.

use std::time::Duration;

use crate::redis_pool::Pool;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::domain::TaskRecord;
use crate::redis_pool::{Keys, RedisError, bounded};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("cannot encode the task record")]
    Encode(#[from] serde_json::Error),
    #[error("cached entry of task {0} is not its record")]
    Foreign(Uuid),
}

#[derive(Clone)]
pub struct Cache {
    pool: Pool,
    keys: Keys,
    ttl_seconds: u64,
    timeout: Duration,
}

impl Cache {
    pub fn new(pool: Pool, keys: Keys, ttl_seconds: u64, timeout: Duration) -> Self {
        Self {
            pool,
            keys,
            ttl_seconds,
            timeout,
        }
    }

    /// The cached JSON of a finished task, or `None` on a miss.
    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn get(&self, id: Uuid) -> Result<Option<String>, CacheError> {
        let key = self.keys.result(id);
        let cached: Option<String> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(conn.get(key).await?)
        })
        .await?;
        match cached {
            // Served without decoding: check at least that it is this task's.
            Some(json) if !is_record_of(&json, id) => Err(CacheError::Foreign(id)),
            cached => Ok(cached),
        }
    }

    /// Caches a terminal record for `cache.ttl_seconds` and announces it to
    /// long-polling readers, in one round trip; other records are ignored.
    #[tracing::instrument(skip_all, fields(task_id = %record.id))]
    pub async fn put(&self, record: &TaskRecord) -> Result<(), CacheError> {
        self.put_many(std::slice::from_ref(record)).await
    }

    /// [`Cache::put`] for several records, in one round trip.
    pub async fn put_many(&self, records: &[TaskRecord]) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for record in records.iter().filter(|r| r.status.is_terminal()) {
            let json = serde_json::to_string(record)?;
            pipe.cmd("SET")
                .arg(self.keys.result(record.id))
                .arg(json)
                .arg("EX")
                .arg(self.ttl_seconds)
                .ignore()
                .cmd("PUBLISH")
                .arg(self.keys.finished_channel())
                .arg(record.id.to_string())
                .ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            pipe.query_async::<()>(&mut *conn).await?;
            Ok::<_, RedisError>(())
        })
        .await?;
        Ok(())
    }
}

impl Cache {
    /// Removes the cached copies of `ids` (tasks that no longer exist), in
    /// one round trip.
    pub async fn forget(&self, ids: &[Uuid]) -> Result<(), CacheError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.result(*id)).collect();
        bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut *conn)
                .await?;
            Ok::<_, RedisError>(())
        })
        .await?;
        Ok(())
    }
}

/// Whether `json` is the record of task `id`: `TaskRecord` serialises its
/// id first. Checked on every hit, so without allocating.
fn is_record_of(json: &str, id: Uuid) -> bool {
    let mut buffer = Uuid::encode_buffer();
    let id = id.hyphenated().encode_lower(&mut buffer);
    json.strip_prefix("{\"task_uuid\":\"")
        .and_then(|rest| rest.strip_prefix(&*id))
        .is_some_and(|rest| rest.starts_with('"'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::TaskStatus;
    use crate::http::schemas::TaskResponse;

    #[test]
    fn a_cached_record_is_exactly_the_api_answer() {
        let record = TaskRecord {
            id: Uuid::now_v7(),
            task_name: "sum".into(),
            status: TaskStatus::Completed,
            task_output: Some(serde_json::json!({"result": 3})),
            error: None,
            attempts: 1,
            max_attempts: 3,
            next_attempt_at: None,
            created_at: chrono::Utc::now(),
            started_at: Some(chrono::Utc::now()),
            completed_at: Some(chrono::Utc::now()),
        };
        let cached = serde_json::to_string(&record).unwrap();
        let answered = serde_json::to_string(&TaskResponse::from(record.clone())).unwrap();
        assert_eq!(cached, answered);
        assert!(is_record_of(&cached, record.id));
        assert!(!is_record_of(&cached, Uuid::now_v7()));
    }
}
