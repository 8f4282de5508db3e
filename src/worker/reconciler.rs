//! The reconciler: puts back on the queue every due `pending` task whose
//! dispatch message was lost (API stopped between commit and dispatch, Redis
//! flushed or restarted empty). Runs in every worker; `SKIP LOCKED` in the
//! store keeps the copies from doing the same work, and dispatch is
//! idempotent, so queues never grow duplicates.

use std::time::Duration;

use super::Worker;
use crate::queue::Message;
use crate::shutdown::Shutdown;
use crate::telemetry::logs::error_chain;
use crate::telemetry::metrics as m;

const BATCH: i64 = 500;

pub(super) async fn run(worker: Worker, shutdown: Shutdown) {
    let interval = worker.config.reconcile_interval();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        if let Err(err) = redispatch_lost(&worker, quiet_period(interval)).await {
            tracing::warn!(error = %err, "reconciler pass failed");
        }
    }
}

/// A pending task not dispatched for this long is dispatched again: two
/// reconcile intervals, so a dispatch in flight is not second-guessed.
fn quiet_period(interval: Duration) -> Duration {
    interval * 2
}

async fn redispatch_lost(worker: &Worker, quiet: Duration) -> Result<(), String> {
    loop {
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
                };
                (c.queue.clone(), message)
            })
            .collect();
        worker
            .services
            .queue
            .dispatch_many(messages.iter().map(|(q, msg)| (q.as_str(), msg)))
            .await
            .map_err(|err| error_chain(&err))?;
        metrics::counter!(m::TASKS_RECOVERED, "reason" => "dispatch_lost")
            .increment(candidates.len() as u64);
        tracing::info!(count = candidates.len(), "re-dispatched pending tasks");
        if (candidates.len() as i64) < BATCH {
            return Ok(());
        }
    }
}
