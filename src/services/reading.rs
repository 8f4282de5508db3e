//! Reading tasks: one task cache-aside (Redis first for finished tasks,
//! PostgreSQL on a miss or when Redis is down), optionally held until it
//! finishes (long-poll), and pages of tasks newest first.

use std::time::Duration;

use uuid::Uuid;

use crate::cache::{Cache, Cached};
use crate::domain::{Caller, TaskRecord, TaskStatus, TaskSubmission};
use crate::store::{self, Store, TaskFilter};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;
use crate::watch::TaskWatch;

/// Largest page of a listing.
pub const MAX_PAGE: i64 = 200;
pub const DEFAULT_PAGE: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no task with id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Where a read found its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// The result cache.
    Hit,
    /// PostgreSQL, after the cache had nothing.
    Miss,
    /// PostgreSQL, because the cache was unreachable.
    Bypass,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// A task as a read found it.
#[derive(Debug)]
pub enum Found {
    /// The cached copy of a finished task, to be served as is.
    Cached(Cached),
    /// Read from PostgreSQL (`Miss` or `Bypass`).
    Stored(TaskRecord, CacheState),
}

impl Found {
    pub fn is_terminal(&self) -> bool {
        match self {
            Self::Cached(_) => true,
            Self::Stored(record, _) => record.status.is_terminal(),
        }
    }

    pub fn cache_state(&self) -> CacheState {
        match self {
            Self::Cached(_) => CacheState::Hit,
            Self::Stored(_, state) => *state,
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Only this tenant's tasks (an admin's choice; others see their own).
    pub tenant: Option<String>,
    pub status: Option<TaskStatus>,
    pub task_name: Option<String>,
    pub queue: Option<String>,
    /// 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when `None`.
    pub limit: Option<i64>,
    pub cursor: Option<Cursor>,
}

/// One page of tasks, newest first, and the cursor of the next page.
#[derive(Debug)]
pub struct Page {
    pub tasks: Vec<TaskRecord>,
    pub next_cursor: Option<Cursor>,
}

/// Where a page ends: opaque to clients (a version byte and the last id,
/// hex-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(Uuid);

const CURSOR_VERSION: u8 = 1;

impl Cursor {
    pub fn encode(self) -> String {
        let mut bytes = vec![CURSOR_VERSION];
        bytes.extend_from_slice(self.0.as_bytes());
        hex::encode(bytes)
    }

    /// `None` for anything this API did not hand out.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        match bytes.split_first() {
            Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).ok().map(Self),
            _ => None,
        }
    }
}

/// Reads of tasks; cheap to clone.
#[derive(Clone)]
pub struct Reads {
    store: Store,
    cache: Cache,
    watch: TaskWatch,
    max_wait: Duration,
    max_waiters: usize,
}

impl Reads {
    pub fn new(
        store: Store,
        cache: Cache,
        watch: TaskWatch,
        max_wait: Duration,
        max_waiters: usize,
    ) -> Self {
        Self {
            store,
            cache,
            watch,
            max_wait,
            max_waiters,
        }
    }

    /// The longest `wait` a read honours.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Task `id`; with a `wait`, held until the task finishes (woken by its
    /// announcement, not by polling) or the wait (capped) runs out. When
    /// `api.max_waiters` reads wait already, answered at once.
    /// A task another tenant owns is `NotFound`, as an unknown one: whether
    /// it exists is not revealed.
    pub async fn get(&self, id: Uuid, wait: Duration, caller: &Caller) -> Result<Found, ReadError> {
        let wait = wait.min(self.max_wait);
        if wait.is_zero() {
            return self.lookup(id, caller).await;
        }
        // Watch first, then read: a finish between the two is not missed.
        let Some(mut waiter) = self.watch.watch(id, self.max_waiters) else {
            metrics::counter!(m::LONGPOLL_REFUSED).increment(1);
            return self.lookup(id, caller).await;
        };
        let found = self.lookup(id, caller).await?;
        if found.is_terminal() {
            return Ok(found);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let woken = tokio::time::timeout_at(deadline, waiter.finished())
                .await
                .is_ok();
            // Woken by an announcement that carried the task's entry: that
            // is the answer (a finished task never changes). Otherwise read
            // once more: woken by the task's announcement, or by a
            // resubscription after announcements may have been missed.
            match waiter.delivered() {
                Some(cached) if caller.sees(cached.tenant()) => return Ok(Found::Cached(cached)),
                Some(_) => return Err(ReadError::NotFound(id)),
                None => {}
            }
            waiter.rearm();
            let found = self.lookup(id, caller).await?;
            if found.is_terminal() || !woken {
                return Ok(found);
            }
        }
    }

    /// Task `id` as submitted (parameters, queue, request and trace), read
    /// from PostgreSQL: another tenant's task is not found.
    pub async fn submission(&self, id: Uuid, caller: &Caller) -> Result<TaskSubmission, ReadError> {
        self.store
            .submission(id, caller.tenant_scope())
            .await?
            .ok_or(ReadError::NotFound(id))
    }

    /// Cache-aside read of one task.
    async fn lookup(&self, id: Uuid, caller: &Caller) -> Result<Found, ReadError> {
        let state = match self.cache.get(id).await {
            Ok(Some(cached)) if caller.sees(cached.tenant()) => {
                count(CacheState::Hit);
                return Ok(Found::Cached(cached));
            }
            Ok(Some(_)) => return Err(ReadError::NotFound(id)),
            Ok(None) => CacheState::Miss,
            Err(err) => {
                tracing::warn!(task_id = %id, error = %error_chain(&err), "cache read failed; reading PostgreSQL");
                CacheState::Bypass
            }
        };
        count(state);
        let record = self
            .store
            .get_task(id)
            .await?
            .filter(|record| caller.sees(&record.tenant))
            .ok_or(ReadError::NotFound(id))?;
        if state == CacheState::Miss
            && record.status.is_terminal()
            && let Err(err) = self.cache.put(&record).await
        {
            tracing::debug!(task_id = %id, error = %error_chain(&err), "cannot fill the cache");
        }
        Ok(Found::Stored(record, state))
    }

    /// One page of the tasks `caller` may see matching `request`, newest
    /// first (keyset pagination on the time-ordered ids).
    pub async fn list(&self, request: ListRequest, caller: &Caller) -> Result<Page, ReadError> {
        let limit = request.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let tenant = match caller.tenant_scope() {
            Some(own) => Some(own.to_owned()),
            None => request.tenant,
        };
        let filter = TaskFilter {
            tenant,
            status: request.status,
            task_name: request.task_name,
            queue: request.queue,
            before: request.cursor.map(|cursor| cursor.0),
            // One more than asked tells whether another page follows.
            limit: limit + 1,
        };
        let mut tasks = self.store.list_tasks(&filter).await?;
        let next_cursor = if tasks.len() as i64 > limit {
            tasks.truncate(limit as usize);
            tasks.last().map(|last| Cursor(last.id))
        } else {
            None
        };
        Ok(Page { tasks, next_cursor })
    }
}

fn count(state: CacheState) {
    metrics::counter!(m::CACHE_REQUESTS, "result" => state.as_str()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert!(Cursor::decode("zz").is_none());
        assert!(Cursor::decode(&hex::encode([2u8; 17])).is_none());
        assert!(Cursor::decode(&hex::encode([1u8; 5])).is_none());
    }
}
