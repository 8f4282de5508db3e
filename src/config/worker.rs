//! `[worker]`: what a worker process consumes and how patiently.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// Most `worker.concurrency`: beyond any one process's use, and far below
/// what its permits can count.
pub(super) const MAX_CONCURRENCY: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// The worker's own HTTP port: `/health`, `/ready`, `/metrics`.
    pub listen: SocketAddr,
    /// Tasks one worker process runs at once (at most 100,000).
    pub concurrency: NonZeroUsize,
    /// Queues this worker consumes; empty means every queue a task type uses.
    pub queues: Vec<String>,
    /// Lease on a running task (at least 2), renewed every third of it.
    pub lease_seconds: NonZeroU64,
    pub reconcile_interval_seconds: NonZeroU64,
    /// Time in-flight tasks get on SIGTERM; 0 hands them back at once.
    pub shutdown_grace_seconds: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8001)),
            concurrency: super::nonzero_usize(64),
            queues: Vec::new(),
            lease_seconds: super::nonzero_u64(30),
            reconcile_interval_seconds: super::nonzero_u64(5),
            shutdown_grace_seconds: 20,
        }
    }
}

impl WorkerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "worker.concurrency",
            self.concurrency.get() <= MAX_CONCURRENCY,
            &format!("must be at most {MAX_CONCURRENCY}"),
        )?;
        check(
            "worker.lease_seconds",
            self.lease_seconds.get() >= 2,
            "must be at least 2",
        )?;
        check(
            "worker.queues",
            self.queues.iter().all(|q| !q.trim().is_empty()),
            "must not name an empty queue",
        )
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.get())
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_seconds.get())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}
