//! What operators decide, as a worker sees it: cancelled tasks it is
//! running (a Redis channel names them; it stops their attempts at once),
//! and paused queues (read from PostgreSQL every few seconds: it takes
//! nothing from them, and keeps their Redis flags set so every pop skips
//! them, even after Redis lost its data).

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Duration;

use super::Worker;
use crate::services::PAUSE_FLAG_LIFETIME;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

/// How often paused queues are read from PostgreSQL.
const REFRESH: Duration = Duration::from_secs(2);

impl Worker {
    /// Stops the attempts of tasks cancelled while they run here. A missed
    /// announcement (Redis unreachable) costs time, not correctness: the
    /// heartbeat finds their lease gone, since a cancelled task is no
    /// longer running.
    pub(super) async fn follow_cancellations(self, shutdown: Shutdown) {
        let in_flight = self.in_flight.clone();
        let handle = crate::watch::follow_ids(
            self.services.redis.clone(),
            self.services.keys.cancel_channel(),
            move |ids| {
                let stopped = in_flight.cancel(ids);
                if stopped > 0 {
                    tracing::info!(count = stopped, "stopping cancelled tasks");
                }
            },
        );
        shutdown.wait().await;
        handle.abort();
    }

    /// Keeps this worker's view of paused queues, and their Redis flags,
    /// in line with PostgreSQL.
    pub(super) async fn follow_pauses(self, shutdown: Shutdown) {
        shutdown.every(REFRESH, || self.load_pauses()).await;
    }

    /// Reads the paused queues from PostgreSQL and applies them.
    pub(super) async fn load_pauses(&self) {
        match self.services.store.paused_queues().await {
            Ok(pauses) => {
                let paused = pauses.into_iter().map(|p| p.queue).collect();
                self.apply_pauses(paused).await;
            }
            Err(err) => {
                // Keep the last view: a pause must not lapse because the
                // database blinked (the Redis flags hold meanwhile).
                tracing::debug!(error = %error_chain(&err), "cannot read paused queues")
            }
        }
    }

    async fn apply_pauses(&self, paused: HashSet<String>) {
        let before = std::mem::replace(
            &mut *self.paused.write().unwrap_or_else(PoisonError::into_inner),
            paused.clone(),
        );
        let mut flags: Vec<(String, bool)> = self
            .queues
            .iter()
            .filter(|queue| paused.contains(*queue))
            .map(|queue| (queue.clone(), true))
            .collect();
        // Resumed since the last look: clear the flag (this worker may have
        // set it again just after the resume) and wake the consumers.
        flags.extend(
            before
                .difference(&paused)
                .filter(|queue| self.queues.contains(queue))
                .map(|queue| (queue.clone(), false)),
        );
        for (queue, now_paused) in &flags {
            if *now_paused != before.contains(queue) {
                tracing::info!(queue, paused = now_paused, "queue pause changed");
            }
        }
        if let Err(err) = self
            .services
            .queue
            .set_paused(&flags, PAUSE_FLAG_LIFETIME)
            .await
        {
            tracing::debug!(error = %error_chain(&err), "cannot flag paused queues in Redis");
        }
    }

    /// Queues this worker must not take from now.
    pub(super) fn paused_queues(&self) -> Vec<String> {
        let paused = self.paused.read().unwrap_or_else(PoisonError::into_inner);
        paused.iter().cloned().collect()
    }
}
