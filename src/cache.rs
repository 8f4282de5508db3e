//! Result cache in Redis, keyed by task id. Only terminal tasks are cached:
//! they never change, so a cached copy can never be stale. An entry is a
//! header line naming the task and its tenant, then the JSON the API
//! answers with, so a hit is checked (is it this task? may this caller see
//! it?) without decoding and served without copying.

use axum::body::Bytes;
use uuid::Uuid;

use crate::domain::TaskRecord;
use crate::keys::Keys;
use crate::redis_pool::{Redis, RedisError};

/// A write that finished one task announces that task's entry itself when
/// the entry is at most this long, so a long-polling reader woken by it
/// answers without reading the cache (the lone task of a quiet service is
/// the one a reader is most likely waiting on). Writes that finished several
/// tasks, and larger entries, announce ids only: every API process receives
/// every announcement.
pub const ANNOUNCED_ENTRY_MAX: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("cannot encode the task record")]
    Encode(#[from] serde_json::Error),
    #[error("the cached entry of task {0} is not its record")]
    Foreign(Uuid),
}

/// The result cache; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    redis: Redis,
    keys: Keys,
    ttl_seconds: u64,
}

impl Cache {
    pub fn new(redis: Redis, keys: Keys, ttl_seconds: u64) -> Self {
        Self {
            redis,
            keys,
            ttl_seconds,
        }
    }

    /// The cached copy of a finished task, or `None` on a miss.
    #[tracing::instrument(skip_all, fields(task_id = %id))]
    pub async fn get(&self, id: Uuid) -> Result<Option<Cached>, CacheError> {
        let cached: Option<String> = self
            .redis
            .query(redis::cmd("GET").arg(self.keys.result(id)))
            .await?;
        cached.map(|entry| body_of(entry, id)).transpose()
    }

    /// Caches a terminal record for `cache.ttl_seconds` and announces it to
    /// long-polling readers, in one round trip; other records are ignored.
    #[tracing::instrument(skip_all, fields(task_id = %record.id))]
    pub async fn put(&self, record: &TaskRecord) -> Result<(), CacheError> {
        self.put_many(std::slice::from_ref(record)).await
    }

    /// [`Cache::put`] for several records, in one round trip: one `SET`
    /// each, and one announcement naming them all (comma-separated ids), or
    /// carrying the entry of a lone one (see [`ANNOUNCED_ENTRY_MAX`]).
    pub async fn put_many(&self, records: &[TaskRecord]) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        let mut finished = String::new();
        let mut lone_entry = None;
        for record in records.iter().filter(|r| r.status.is_terminal()) {
            let entry = entry_of(record)?;
            if finished.is_empty() {
                lone_entry = (entry.len() <= ANNOUNCED_ENTRY_MAX).then(|| entry.clone());
            } else {
                lone_entry = None;
                finished.push(',');
            }
            pipe.cmd("SET")
                .arg(self.keys.result(record.id))
                .arg(entry)
                .arg("EX")
                .arg(self.ttl_seconds)
                .ignore();
            finished.push_str(
                record
                    .id
                    .hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer()),
            );
        }
        if finished.is_empty() {
            return Ok(());
        }
        pipe.cmd("PUBLISH")
            .arg(self.keys.finished_channel())
            .arg(lone_entry.unwrap_or(finished))
            .ignore();
        self.redis.pipeline::<()>(&pipe).await?;
        Ok(())
    }

    /// Removes the cached copies of `ids` (tasks that no longer exist), in
    /// one round trip.
    pub async fn forget(&self, ids: &[Uuid]) -> Result<(), CacheError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.result(*id)).collect();
        self.redis.query::<()>(redis::cmd("DEL").arg(keys)).await?;
        Ok(())
    }
}

/// A cached finished task: its tenant, and the API's JSON of it.
#[derive(Debug, Clone)]
pub struct Cached {
    entry: Bytes,
    tenant: std::ops::Range<usize>,
    body: std::ops::RangeFrom<usize>,
}

impl Cached {
    pub fn tenant(&self) -> &str {
        std::str::from_utf8(&self.entry[self.tenant.clone()]).unwrap_or_default()
    }

    /// The JSON, served as is.
    pub fn into_body(self) -> Bytes {
        self.entry.slice(self.body)
    }
}

/// The task and entry an announcement carries, or the payload back when it
/// is not an entry (ids hold no tab; an entry starts with its id and a tab).
pub fn announced_entry(payload: String) -> Result<(Uuid, Cached), String> {
    let Some(id) = payload
        .split_once('\t')
        .and_then(|(id, _)| id.parse::<Uuid>().ok())
    else {
        return Err(payload);
    };
    // A malformed entry names no task to wake either.
    body_of(payload, id)
        .map(|cached| (id, cached))
        .map_err(|_| String::new())
}

/// `<task id>\t<tenant>\n<the API's JSON of the task>`.
fn entry_of(record: &TaskRecord) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(record)?;
    Ok(format!("{}\t{}\n{json}", record.id, record.tenant))
}

/// The parts of an entry, checked to be task `id`'s (a stray write under
/// the key must never be served as this task).
fn body_of(entry: String, id: Uuid) -> Result<Cached, CacheError> {
    let mut buffer = Uuid::encode_buffer();
    let expected = id.hyphenated().encode_lower(&mut buffer);
    let bytes = entry.as_bytes();
    let after_id = expected.len() + 1;
    let own = bytes.starts_with(expected.as_bytes()) && bytes.get(expected.len()) == Some(&b'\t');
    let newline = bytes
        .get(after_id..)
        .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        .map(|at| after_id + at);
    match (own, newline) {
        (true, Some(newline)) => Ok(Cached {
            entry: Bytes::from(entry),
            tenant: after_id..newline,
            body: newline + 1..,
        }),
        _ => Err(CacheError::Foreign(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TaskStatus;

    #[test]
    fn an_entry_gives_back_the_record_json_of_its_own_task_only() {
        let record = TaskRecord {
            id: Uuid::now_v7(),
            task_name: "sum".into(),
            tenant: "acme".into(),
            status: TaskStatus::Completed,
            task_output: Some(serde_json::json!({"result": 3})),
            error: None,
            attempts: 1,
            max_attempts: 3,
            next_attempt_at: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            completed_at: Some(chrono::Utc::now()),
        };
        let entry = entry_of(&record).unwrap_or_default();
        let cached = body_of(entry.clone(), record.id).ok();
        assert_eq!(cached.as_ref().map(Cached::tenant), Some("acme"));
        let json = serde_json::to_string(&record).unwrap_or_default();
        assert_eq!(
            cached.map(Cached::into_body).as_deref(),
            Some(json.as_bytes())
        );
        assert!(body_of(entry.clone(), Uuid::now_v7()).is_err());
        assert!(body_of(json.clone(), record.id).is_err());

        // An announcement is an entry, or ids only.
        let announced = announced_entry(entry).ok();
        assert_eq!(announced.as_ref().map(|(id, _)| *id), Some(record.id));
        let body = announced.map(|(_, cached)| cached.into_body());
        assert_eq!(body.as_deref(), Some(json.as_bytes()));
        let ids = format!("{},{}", record.id, Uuid::now_v7());
        assert_eq!(announced_entry(ids.clone()).err(), Some(ids));
    }
}
