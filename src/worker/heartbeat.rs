//! The heartbeat: renews the leases of every attempt this worker runs, in
//! one statement, three times per lease; attempts whose lease was lost are
//! told to stop, because another worker owns their task now.

use super::Worker;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

pub(super) async fn run(worker: Worker, stop: Shutdown) {
    let lease = worker.config.lease();
    stop.every(lease / 3, || beat(&worker, lease)).await;
}

async fn beat(worker: &Worker, lease: std::time::Duration) {
    worker.renew_permits().await;
    let held = worker.in_flight.leases();
    if held.is_empty() {
        return;
    }
    match worker.services.store.renew_leases(&held, lease).await {
        Ok(renewed) => {
            let lost: Vec<_> = held
                .into_iter()
                .filter(|lease| !renewed.contains(&lease.task_id))
                .collect();
            // Attempts that ended since `held` was read were not renewed
            // either; only those still running lost their lease.
            let stopped = worker.in_flight.mark_lost(&lost);
            if stopped > 0 {
                tracing::warn!(count = stopped, "leases lost; stopping those attempts");
            }
        }
        // Keep running: if the lease expires meanwhile, the attempt's
        // final write is fenced off and nothing is overwritten.
        Err(err) => tracing::warn!(error = %error_chain(&err), "cannot renew leases"),
    }
}
