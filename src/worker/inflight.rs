//! The attempts a worker is running right now: what its heartbeat renews,
//! what it hands back at shutdown, and how a lost lease or a cancel stops
//! an attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::Lease;

/// Why an attempt must stop before it ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Its lease was not renewed: another worker owns the task now, or it
    /// is no longer running (cancelled).
    LeaseLost,
    /// An operator cancelled the task.
    Cancelled,
}

/// Tells one attempt to stop, once: the first reason wins.
#[derive(Default)]
struct Stopper {
    reason: OnceLock<Stop>,
    notify: Notify,
}

impl Stopper {
    fn stop(&self, reason: Stop) {
        let _ = self.reason.set(reason);
        self.notify.notify_one();
    }
}

struct Entry {
    attempt: i32,
    stopper: Arc<Stopper>,
}

/// Shared table of running attempts, keyed by task id.
#[derive(Clone, Default)]
pub(super) struct InFlight {
    entries: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

/// An attempt in the table; removes itself when dropped, however the
/// attempt ends (finished, abandoned or aborted).
pub(super) struct Registration {
    table: InFlight,
    task_id: Uuid,
    stopper: Arc<Stopper>,
}

impl InFlight {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Entry>) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the map is still valid.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut entries)
    }

    pub(super) fn register(&self, lease: Lease) -> Registration {
        let stopper = Arc::new(Stopper::default());
        let entry = Entry {
            attempt: lease.attempt,
            stopper: stopper.clone(),
        };
        self.with(|entries| entries.insert(lease.task_id, entry));
        Registration {
            table: self.clone(),
            task_id: lease.task_id,
            stopper,
        }
    }

    pub(super) fn leases(&self) -> Vec<Lease> {
        self.with(|entries| {
            entries
                .iter()
                .map(|(id, e)| Lease {
                    task_id: *id,
                    attempt: e.attempt,
                })
                .collect()
        })
    }

    /// Tells the attempts whose lease was not renewed to stop; returns how
    /// many were still running (the others finished meanwhile, which is why
    /// their lease was not renewed).
    pub(super) fn mark_lost(&self, lost: &[Lease]) -> usize {
        self.with(|entries| {
            let mut stopped = 0;
            for lease in lost {
                if let Some(entry) = entries.get(&lease.task_id)
                    && entry.attempt == lease.attempt
                {
                    entry.stopper.stop(Stop::LeaseLost);
                    stopped += 1;
                }
            }
            stopped
        })
    }

    /// Tells the attempts of `tasks` this worker runs that their task was
    /// cancelled; returns how many it was running.
    pub(super) fn cancel(&self, tasks: &[Uuid]) -> usize {
        self.with(|entries| {
            tasks
                .iter()
                .filter_map(|id| entries.get(id))
                .map(|entry| entry.stopper.stop(Stop::Cancelled))
                .count()
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.with(|entries| entries.len())
    }
}

impl Registration {
    /// Resolves when the attempt must stop, saying why.
    pub(super) async fn stopped(&self) -> Stop {
        self.stopper.notify.notified().await;
        self.stopper
            .reason
            .get()
            .copied()
            .unwrap_or(Stop::LeaseLost)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.task_id;
        self.table.with(|entries| entries.remove(&id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registrations_leave_the_table_when_dropped() {
        let table = InFlight::default();
        let lease = Lease {
            task_id: Uuid::new_v4(),
            attempt: 1,
        };
        let registration = table.register(lease);
        assert_eq!(table.leases(), vec![lease]);
        drop(registration);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn a_lost_lease_wakes_its_attempt_only() {
        let table = InFlight::default();
        let mine = Lease {
            task_id: Uuid::new_v4(),
            attempt: 2,
        };
        let registration = table.register(mine);
        assert_eq!(table.mark_lost(&[Lease { attempt: 1, ..mine }]), 0);
        let woken =
            tokio::time::timeout(std::time::Duration::from_millis(50), registration.stopped())
                .await;
        assert!(woken.is_err(), "an older attempt's loss is not ours");
        assert_eq!(table.mark_lost(&[mine]), 1);
        let woken =
            tokio::time::timeout(std::time::Duration::from_secs(1), registration.stopped()).await;
        assert_eq!(woken.ok(), Some(Stop::LeaseLost));
    }

    #[tokio::test]
    async fn a_cancel_stops_the_task_s_attempt_and_says_so() {
        let table = InFlight::default();
        let lease = Lease {
            task_id: Uuid::new_v4(),
            attempt: 1,
        };
        let registration = table.register(lease);
        assert_eq!(table.cancel(&[Uuid::new_v4()]), 0, "not ours");
        assert_eq!(table.cancel(&[lease.task_id]), 1);
        // The heartbeat then finds its lease gone too; the first reason stays.
        table.mark_lost(&[lease]);
        let woken =
            tokio::time::timeout(std::time::Duration::from_secs(1), registration.stopped()).await;
        assert_eq!(woken.ok(), Some(Stop::Cancelled));
    }
}
