//! Retention: every worker deletes finished tasks older than
//! `retention.days`, a small batch at a time so no statement holds many
//! locks or runs long, and drops their cached copies. `SKIP LOCKED` lets
//! several workers share the work. A pass that finds more than it can
//! delete in [`PASS_BUDGET`] is followed at once by another, so a backlog
//! is worked off instead of waiting `retention.interval_seconds` each time.

use std::time::{Duration, Instant};

use super::Worker;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

const BATCH: i64 = 1_000;
/// How long one pass may delete before it lets the next pass start; with
/// more left, that pass starts after [`BACKLOG_PAUSE`] instead of the
/// interval, so retention keeps pace with any arrival rate its DELETEs can
/// match, while shutdown and other work are never kept waiting long.
const PASS_BUDGET: Duration = Duration::from_secs(5);
const BACKLOG_PAUSE: Duration = Duration::from_millis(200);

pub(super) async fn run(worker: Worker, shutdown: Shutdown) {
    let Some(max_age) = worker.retention.max_age() else {
        return;
    };
    loop {
        let pause = match pass(&worker, max_age, &shutdown).await {
            Backlog::Left => BACKLOG_PAUSE,
            Backlog::Cleared => worker.retention.interval(),
        };
        if !shutdown.sleep(pause).await {
            return;
        }
    }
}

/// Whether a pass left expired tasks behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backlog {
    Left,
    Cleared,
}

/// Deletes expired tasks a batch at a time for up to [`PASS_BUDGET`].
async fn pass(worker: &Worker, max_age: Duration, shutdown: &Shutdown) -> Backlog {
    let started = Instant::now();
    let mut deleted = 0;
    let backlog = loop {
        match worker.services.store.purge_finished(max_age, BATCH).await {
            Ok(ids) => {
                deleted += ids.len();
                // A deleted task must read as unknown, not as its
                // cached copy until that expires.
                if let Err(err) = worker.services.cache.forget(&ids).await {
                    tracing::warn!(count = ids.len(), error = %error_chain(&err), "cannot drop cached copies of deleted tasks; they expire with cache.ttl_seconds");
                }
                if ids.len() < BATCH as usize {
                    break Backlog::Cleared;
                }
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "retention pass failed");
                break Backlog::Cleared;
            }
        }
        if shutdown.is_triggered() || started.elapsed() >= PASS_BUDGET {
            break Backlog::Left;
        }
    };
    if deleted > 0 {
        tracing::info!(
            deleted,
            backlog_left = backlog == Backlog::Left,
            "deleted finished tasks past retention"
        );
    }
    backlog
}
