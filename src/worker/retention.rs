//! Retention: every worker deletes finished tasks older than
//! `retention.days`, a small batch at a time so no statement holds many
//! locks or runs long, and drops their cached copies. `SKIP LOCKED` lets
//! several workers share the work.

use super::Worker;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

const BATCH: i64 = 1_000;
/// Batches per pass, so one pass never runs long; the next pass goes on.
const MAX_BATCHES: usize = 20;

pub(super) async fn run(worker: Worker, shutdown: Shutdown) {
    let Some(max_age) = worker.retention.max_age() else {
        return;
    };
    shutdown
        .every(worker.retention.interval(), || {
            pass(&worker, max_age, &shutdown)
        })
        .await;
}

/// Deletes up to [`MAX_BATCHES`] batches of expired tasks.
async fn pass(worker: &Worker, max_age: std::time::Duration, shutdown: &Shutdown) {
    let mut deleted = 0;
    for _ in 0..MAX_BATCHES {
        match worker.services.store.purge_finished(max_age, BATCH).await {
            Ok(ids) => {
                deleted += ids.len();
                // A deleted task must read as unknown, not as its
                // cached copy until that expires.
                if let Err(err) = worker.services.cache.forget(&ids).await {
                    tracing::warn!(count = ids.len(), error = %error_chain(&err), "cannot drop cached copies of deleted tasks; they expire with cache.ttl_seconds");
                }
                if ids.len() < BATCH as usize {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "retention pass failed");
                break;
            }
        }
        if shutdown.is_triggered() {
            return;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted finished tasks past retention");
    }
}
