//! The worker's group commits: attempts that start or end at the same time
//! share one claim UPDATE, and one outcome UPDATE plus one Redis pipeline
//! for their cached results; quick tasks popped while earlier ones are
//! being written share the next quick transaction. Each attempt still waits
//! for the statement that carries it, and every write stays fenced by its
//! attempt number.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::batching::Batcher;
use crate::cache::Cache;
use crate::domain::{ClaimedTask, TaskRecord};
use crate::queue::Message;
use crate::store::{self, FinalWrite, Store};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

use super::Worker;

/// Claim statements (and outcome statements) that may run at once; all but
/// one carry a full batch (`Batcher`).
const MAX_FLUSHES: usize = 2;

pub(super) type Claims = Batcher<Uuid, store::Result<Option<ClaimedTask>>>;
pub(super) type Outcomes = Batcher<FinalWrite, store::Result<Option<TaskRecord>>>;
/// Quick messages, each `(queue, message)`, answered once written.
pub(super) type QuickRuns = Batcher<(String, Message), ()>;

/// Quick tasks in one transaction at most, and quick transactions at once
/// (all but one of them full).
/// A drain of `sum` tasks ran 1.4 times as fast in batches of up to 128,
/// two at a time, as in batches of up to 32; batches of up to 256 gained
/// nothing more; three at a time 1.12 times as fast as two
/// (docs/performance.md).
pub(super) const QUICK_BATCH: usize = 128;
const QUICK_FLUSHES: usize = 3;
/// Quick tasks popped and not yet written, at most: the transactions being
/// written and one gathering, so that the next transaction is ready when
/// one ends.
pub(super) const QUICK_IN_FLIGHT: usize = QUICK_BATCH * (QUICK_FLUSHES + 1);

/// Claims for `lease`, up to `max_batch` tasks per statement. A task that
/// is not pending answers `None`.
pub(super) fn claims(store: Store, lease: Duration, max_batch: usize) -> Claims {
    Batcher::new(max_batch, MAX_FLUSHES, move |ids: Vec<Uuid>| {
        let store = store.clone();
        async move {
            metrics::histogram!(m::GROUP_COMMIT_ROWS, "statement" => "claim")
                .record(ids.len() as f64);
            match store.claim_many(&ids, lease).await {
                Ok(claimed) => {
                    let mut by_id: HashMap<Uuid, ClaimedTask> =
                        claimed.into_iter().map(|task| (task.id, task)).collect();
                    ids.iter().map(|id| Ok(by_id.remove(id))).collect()
                }
                Err(err) => ids.iter().map(|_| Err(err.share())).collect(),
            }
        }
    })
}

/// Final outcomes, written and then cached. A write whose attempt no longer
/// holds its task answers `None`.
pub(super) fn outcomes(store: Store, cache: Cache, max_batch: usize) -> Outcomes {
    Batcher::new(max_batch, MAX_FLUSHES, move |writes: Vec<FinalWrite>| {
        let (store, cache) = (store.clone(), cache.clone());
        async move {
            metrics::histogram!(m::GROUP_COMMIT_ROWS, "statement" => "outcome")
                .record(writes.len() as f64);
            match store.finish_many(&writes).await {
                Ok(records) => {
                    if let Err(err) = cache.put_many(&records).await {
                        // PostgreSQL has the results; readers fall back to it.
                        tracing::warn!(count = records.len(), error = %error_chain(&err), "cannot cache results");
                    }
                    let mut by_id: HashMap<Uuid, TaskRecord> =
                        records.into_iter().map(|r| (r.id, r)).collect();
                    writes.iter().map(|w| Ok(by_id.remove(&w.id))).collect()
                }
                Err(err) => writes.iter().map(|_| Err(err.share())).collect(),
            }
        }
    })
}

/// Quick runs of `worker`: each batch is claimed, run and written in one
/// transaction (`Worker::execute_quick`).
pub(super) fn quick_runs(worker: Worker) -> QuickRuns {
    Batcher::new(
        QUICK_BATCH,
        QUICK_FLUSHES,
        move |batch: Vec<(String, Message)>| {
            let worker = worker.clone();
            async move {
                metrics::histogram!(m::GROUP_COMMIT_ROWS, "statement" => "quick")
                    .record(batch.len() as f64);
                let count = batch.len();
                worker.execute_quick(batch).await;
                vec![(); count]
            }
        },
    )
}
