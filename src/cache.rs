//! Result cache in Redis, keyed by task id. Only terminal tasks are cached:
//! they never change, so a cached copy can never be stale.

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
    #[error("cached entry is not a task record")]
    Decode(#[from] serde_json::Error),
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

    /// The cached record, or `None` on a miss.
    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn get(&self, id: Uuid) -> Result<Option<TaskRecord>, CacheError> {
        let key = self.keys.result(id);
        let cached: Option<String> = bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RedisError>(conn.get(key).await?)
        })
        .await?;
        Ok(cached.map(|json| serde_json::from_str(&json)).transpose()?)
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
