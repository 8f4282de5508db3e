//! The name of every Redis key Tasker writes, all under one prefix; a task
//! type's own keys (`query_llm`'s budget) live under a namespace its module
//! chooses ([`Keys::owned`]).

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

    /// Key `part` of a task type's own namespace `owner` (e.g. `llm`).
    pub fn owned(&self, owner: &str, part: &str) -> String {
        format!("{}:{owner}:{part}", self.prefix)
    }

    /// Every key of one queue shares this hash tag (`{q:<queue>}`), so a
    /// script can touch them all on a Redis Cluster; different queues hash
    /// to different slots. (Its wake-up signal is the exception, see
    /// [`Keys::signal`].)
    fn queue_base(&self, queue: &str) -> String {
        format!("{}:{{q:{queue}}}", self.prefix)
    }

    /// Sorted set of `tenant`'s task messages ready to run on `queue`,
    /// scored by enqueue time.
    pub fn ready(&self, queue: &str, tenant: &str) -> String {
        format!("{}:ready:{tenant}", self.queue_base(queue))
    }

    /// What [`Keys::ready`] names, without the tenant (for scripts).
    pub fn ready_prefix(&self, queue: &str) -> String {
        format!("{}:ready:", self.queue_base(queue))
    }

    /// Sorted set of the tenants with work ready on `queue`, scored by when
    /// each was last served: workers take from them in turn.
    pub fn tenants(&self, queue: &str) -> String {
        format!("{}:tenants", self.queue_base(queue))
    }

    /// Sorted set of `queue`'s task messages waiting for a retry, scored by
    /// due time.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}:delayed", self.queue_base(queue))
    }

    /// Set while `queue` is paused: workers take nothing from it.
    pub fn paused(&self, queue: &str) -> String {
        format!("{}:paused", self.queue_base(queue))
    }

    /// A list pushed to whenever `queue` gets work: idle consumers block on
    /// it instead of polling. The signals of all queues share one hash tag
    /// (not their queue's), so a consumer of several queues blocks on them
    /// all with one `BLPOP` on a Redis Cluster too.
    pub fn signal(&self, queue: &str) -> String {
        format!("{}:{{signals}}:{queue}", self.prefix)
    }

    /// Sorted set of the running attempts of `tenant` (members) with their
    /// expiry (scores): the tenant's `max_running` permits.
    pub fn running(&self, tenant: &str) -> String {
        format!("{}:running:{tenant}", self.prefix)
    }

    /// Pub/sub channel announcing the id of every task that finishes.
    pub fn finished_channel(&self) -> String {
        format!("{}:finished", self.prefix)
    }

    /// Pub/sub channel naming running tasks just cancelled, so the workers
    /// running them stop.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancelled", self.prefix)
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
    use redis::cluster_routing::Slot;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1");
        let id = Uuid::nil();
        for key in [
            keys.ready("default", "acme"),
            keys.delayed("llm"),
            keys.signal("llm"),
            keys.result(id),
        ] {
            assert!(key.starts_with("t1:"), "{key}");
        }
    }

    /// The keys each queue script and pipeline touches (the ready sets
    /// through their prefix) share one slot, and queues hash apart.
    #[test]
    fn one_queue_s_keys_share_a_slot_and_queues_differ() {
        let keys = Keys::new("t1");
        let slot = |key: &str| Slot::for_key(key);
        let default = slot(&keys.tenants("default"));
        for key in [
            keys.ready("default", "a"),
            keys.ready("default", "b"),
            format!("{}zeta", keys.ready_prefix("default")),
            keys.delayed("default"),
            keys.paused("default"),
        ] {
            assert_eq!(slot(key.as_str()), default, "{key}");
        }
        assert_ne!(slot(&keys.tenants("llm")), default);
        assert_ne!(slot(&Keys::new("t2").tenants("llm")), default);
    }

    /// One `BLPOP` waits on the signals of every consumed queue.
    #[test]
    fn the_signals_of_all_queues_share_a_slot() {
        let keys = Keys::new("t1");
        let signal = Slot::for_key(keys.signal("default"));
        assert_eq!(Slot::for_key(keys.signal("llm")), signal);
        assert_eq!(Slot::for_key(keys.signal("anything-else")), signal);
    }
}
