//! The reconciler, run by every worker on `worker.reconcile_interval_seconds`:
//!
//! 1. tasks whose lease expired (their worker died or froze) go back to
//!    `pending` after a backoff, or to `failed` after their last attempt;
//! 2. due `pending` tasks whose dispatch message was lost (API stopped between
//!    commit and dispatch, Redis flushed or restarted empty) are dispatched
//!    again; tasks whose message still waits in its queue (a backlog) are
//!    left alone, so a long backlog costs reads, not writes;
//! 3. expired idempotency keys are deleted.
//!
//! `SKIP LOCKED` in the store keeps the copies in several workers from doing
//! the same work, and dispatch is idempotent, so queues never grow duplicates.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::Worker;
use crate::queue::Message;
use crate::redis_pool::RedisError;
use crate::shutdown::Shutdown;
use crate::store::{self, Recovered};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;

/// Why a pass stopped early; the next pass starts over.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Queue(#[from] RedisError),
}

const BATCH: i64 = 500;
/// Batches per pass, so a pass under a large backlog stays short; tasks not
/// reached wait for the next pass.
const MAX_BATCHES: usize = 10;

pub(super) async fn run(worker: Worker, shutdown: Shutdown) {
    let interval = worker.config.reconcile_interval();
    shutdown
        .every(interval, || async {
            if let Err(err) = pass(&worker, interval).await {
                tracing::warn!(error = %error_chain(&err), "reconciler pass failed");
            }
        })
        .await;
}

async fn pass(worker: &Worker, interval: Duration) -> Result<(), PassError> {
    recover_expired_leases(worker).await?;
    redispatch_lost(worker, quiet_period(interval)).await?;
    worker
        .services
        .store
        .purge_expired_idempotency_keys(BATCH)
        .await?;
    Ok(())
}

/// A pending task not dispatched for this long is dispatched again: two
/// reconcile intervals, so a dispatch in flight is not second-guessed.
fn quiet_period(interval: Duration) -> Duration {
    interval * 2
}

async fn recover_expired_leases(worker: &Worker) -> Result<(), PassError> {
    let services = &worker.services;
    for _ in 0..MAX_BATCHES {
        let recovered = services.store.recover_expired_leases(BATCH).await?;
        for task in &recovered {
            let record = &task.record;
            tracing::warn!(
                task_id = %record.id,
                task_name = %record.task_name,
                attempt = record.attempts,
                status = %record.status,
                "lease expired; worker lost"
            );
            if record.status.is_terminal() {
                metrics::counter!(
                    m::TASKS_COMPLETED,
                    "task_name" => services.registry.label(&record.task_name),
                    "status" => record.status.as_str()
                )
                .increment(1);
                if let Err(err) = services.cache.put(record).await {
                    tracing::debug!(error = %error_chain(&err), "cannot cache the failed task");
                }
            }
        }
        metrics::counter!(m::TASKS_RECOVERED, "reason" => "lease_expired")
            .increment(recovered.len() as u64);
        schedule_recovered(worker, &recovered).await;
        if (recovered.len() as i64) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends the messages of tasks back to `pending` for their due time; a
/// message lost here is re-sent by [`redispatch_lost`] once due.
async fn schedule_recovered(worker: &Worker, recovered: &[Recovered]) {
    let due: Vec<(&str, Message, SystemTime)> = recovered
        .iter()
        .filter_map(|task| {
            let at = task.record.next_attempt_at?;
            Some((
                task.queue.as_str(),
                Message::from(task),
                SystemTime::from(at),
            ))
        })
        .collect();
    let scheduled = worker
        .services
        .queue
        .schedule_many(due.iter().map(|(q, m, at)| (*q, m, *at)))
        .await;
    if let Err(err) = scheduled {
        tracing::warn!(error = %error_chain(&err), "cannot schedule recovered tasks; re-dispatch will");
    }
}

async fn redispatch_lost(worker: &Worker, quiet: Duration) -> Result<(), PassError> {
    let (store, queue) = (&worker.services.store, &worker.services.queue);
    let mut after = None;
    for _ in 0..MAX_BATCHES {
        let candidates = store.undispatched(quiet, after, BATCH).await?;
        let Some(last) = candidates.last() else {
            return Ok(());
        };
        after = Some((last.dispatched_at, last.id));
        let messages: Vec<Message> = candidates.iter().map(Message::from).collect();
        let queued = queue
            .queued(candidates.iter().map(|c| c.queue.as_str()).zip(&messages))
            .await?;
        let lost: Vec<Uuid> = candidates
            .iter()
            .zip(queued)
            .filter(|(_, queued)| !queued)
            .map(|(candidate, _)| candidate.id)
            .collect();
        if !lost.is_empty() {
            // Claimed meanwhile, all of them: nothing to re-send.
            let taken = store.mark_dispatched(&lost, quiet).await?;
            let messages: Vec<Message> = taken.iter().map(Message::from).collect();
            let added = queue
                .dispatch_many(taken.iter().map(|c| c.queue.as_str()).zip(&messages))
                .await?;
            if added > 0 {
                metrics::counter!(m::TASKS_RECOVERED, "reason" => "dispatch_lost").increment(added);
                tracing::info!(
                    count = added,
                    "re-dispatched pending tasks whose message was lost"
                );
            }
        }
        if (candidates.len() as i64) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}
