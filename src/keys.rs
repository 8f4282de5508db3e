//! The name of every Redis key Tasker writes, all under one prefix.

use uuid::Uuid;

/// Every Redis key Tasker uses, all under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: std::sync::Arc<str>,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into().into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sorted set of task messages ready to run, scored by enqueue time.
    pub fn ready(&self, queue: &str) -> String {
        format!("{}:queue:{queue}", self.prefix)
    }

    /// Sorted set of task messages waiting for a retry, scored by due time.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}:delayed:{queue}", self.prefix)
    }

    /// Pub/sub channel announcing the id of every task that finishes.
    pub fn finished_channel(&self) -> String {
        format!("{}:finished", self.prefix)
    }

    /// The rate-limit state of API key `key_id`.
    pub fn rate(&self, key_id: &str) -> String {
        format!("{}:rate:{key_id}", self.prefix)
    }

    /// Cached copy of one finished task. (Named `cached`: the `result` and
    /// `task` keys of earlier versions held entries of other shapes.)
    pub fn result(&self, id: Uuid) -> String {
        format!("{}:cached:{id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1");
        let id = Uuid::nil();
        for key in [keys.ready("default"), keys.delayed("llm"), keys.result(id)] {
            assert!(key.starts_with("t1:"), "{key}");
        }
    }
}
