//! `[cache]`: the Redis result cache.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Lifetime of a cached result.
    pub ttl_seconds: NonZeroU64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: super::nonzero_u64(3600),
        }
    }
}
