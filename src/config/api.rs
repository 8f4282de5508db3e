//! `[api]`: the HTTP API's address and limits.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413 (at least 1024).
    pub max_body_bytes: NonZeroUsize,
    /// How long an `Idempotency-Key` keeps mapping to its task.
    pub idempotency_window_seconds: NonZeroU64,
    /// Upper bound on `wait` of a long-polling read; 0 turns waiting off.
    pub max_wait_seconds: u64,
    /// Most tasks one `POST /run-tasks` may carry.
    pub max_batch_size: NonZeroUsize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            max_body_bytes: super::nonzero_usize(1024 * 1024),
            idempotency_window_seconds: super::nonzero_u64(24 * 3600),
            max_wait_seconds: 30,
            max_batch_size: super::nonzero_usize(100),
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "api.max_body_bytes",
            self.max_body_bytes.get() >= 1024,
            "must be at least 1024",
        )
    }

    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_seconds.get())
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_seconds)
    }
}
