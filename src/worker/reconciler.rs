//! The reconciler, run by every worker on `worker.reconcile_interval_seconds`:
//!
//! 1. tasks whose lease expired (their worker died or froze) go back to
//!    `pending` after a backoff, or to `failed` after their last attempt;
//! 2. due `pending` tasks whose dispatch message was lost (API stopped between
//!    commit and dispatch, Redis flushed or restarted empty) are dispatched
//!    again;
//! 3. expired idempotency keys are deleted.
//!
//! `SKIP LOCKED` in the store keeps the copies in several workers from doing
//! the same work, and dispatch is idempotent, so queues never grow duplicates.

use std::time::Duration;

use super::Worker;
use crate::queue::Message;
use crate::shutdown::Shutdown;
use crate::telemetry::logs::error_chain;
use crate::telemetry::metrics as m;

const BATCH: i64 = 500;
/// Batches per pass, so a pass under a large backlog stays short; tasks not
/// reached wait for the next pass.
const MAX_BATCHES: usize = 10;

pub(super) async fn run(worker: Worker, shutdown: Shutdown) {
    let interval = worker.config.reconcile_interval();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        if let Err(err) = pass(&worker, interval).await {
            tracing::warn!(error = %err, "reconciler pass failed");
        }
    }
}

async fn pass(worker: &Worker, interval: Duration) -> Result<(), String> {
    recover_expired_leases(worker).await?;
    redispatch_lost(worker, quiet_period(interval)).await?;
    let store = &worker.services.store;
    store
        .purge_expired_idempotency_keys(BATCH)
        .await
        .map_err(|err| error_chain(&err))?;
    Ok(())
}

/// A pending task not dispatched for this long is dispatched again: two
/// reconcile intervals, so a dispatch in flight is not second-guessed.
fn quiet_period(interval: Duration) -> Duration {
    interval * 2
}

async fn recover_expired_leases(worker: &Worker) -> Result<(), String> {
    let services = &worker.services;
    for _ in 0..MAX_BATCHES {
        let recovered = services
            .store
            .recover_expired_leases(BATCH)
            .await
            .map_err(|err| error_chain(&err))?;
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
                    "task_name" => record.task_name.clone(),
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
        if (recovered.len() as i64) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}

async fn redispatch_lost(worker: &Worker, quiet: Duration) -> Result<(), String> {
    for _ in 0..MAX_BATCHES {
        let candidates = worker
            .services
            .store
            .take_undispatched(quiet, BATCH)
            .await
            .map_err(|err| error_chain(&err))?;
        if candidates.is_empty() {
            return Ok(());
        }
        let messages: Vec<(String, Message)> = candidates
            .iter()
            .map(|c| {
                let message = Message {
                    task_id: c.id,
                    request_id: c.request_id.clone(),
                    traceparent: c.trace_context.clone(),
                };
                (c.queue.clone(), message)
            })
            .collect();
        let added = worker
            .services
            .queue
            .dispatch_many(messages.iter().map(|(q, msg)| (q.as_str(), msg)))
            .await
            .map_err(|err| error_chain(&err))?;
        // Tasks still queued were merely waiting; only the re-added were lost.
        if added > 0 {
            metrics::counter!(m::TASKS_RECOVERED, "reason" => "dispatch_lost").increment(added);
            tracing::info!(
                count = added,
                "re-dispatched pending tasks whose message was lost"
            );
        }
        if (candidates.len() as i64) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}
