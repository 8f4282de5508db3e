//! Submission rates per API key, shared by every api replica (a rate in
//! Redis, see `budget`). A key with rate r may submit r tasks in an instant
//! and r per second after that; a batch counts one per task (and always
//! fits when the key is idle).

use std::time::Duration;

use crate::budget::{Admission, Budgets};
use crate::keys::Keys;
use crate::redis_pool::RedisError;

/// Rate limits of API keys; cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    budgets: Budgets,
    keys: Keys,
}

impl Quotas {
    pub fn new(budgets: Budgets, keys: Keys) -> Self {
        Self { budgets, keys }
    }

    /// Admits `count` submissions of key `key_id` limited to `per_second`.
    pub async fn admit(
        &self,
        key_id: &str,
        per_second: u32,
        count: usize,
    ) -> Result<Admission, RedisError> {
        self.budgets
            .take(
                &self.keys.rate(key_id),
                f64::from(per_second.max(1)),
                count as f64,
                Duration::from_secs(1),
            )
            .await
    }
}
