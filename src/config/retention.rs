//! `[retention]`: how long finished tasks are kept.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished tasks older than this many days are deleted; 0 keeps them.
    pub days: u32,
    /// How often each worker deletes a few batches of them.
    pub interval_seconds: NonZeroU64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 30,
            interval_seconds: super::nonzero_u64(300),
        }
    }
}

impl RetentionConfig {
    /// The age past which finished tasks go, or `None` to keep them forever.
    pub fn max_age(&self) -> Option<Duration> {
        (self.days > 0).then(|| Duration::from_secs(u64::from(self.days) * 24 * 3600))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds.get())
    }
}
