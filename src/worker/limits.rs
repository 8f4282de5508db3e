//! Tenants' running limits (`tasker keys create --max-running N`): how many
//! of a tenant's tasks run at once across every worker. A permit per
//! running task, in a Redis semaphore whose permits expire (a worker that
//! dies leaks none); a task over its tenant's limit goes back to wait,
//! still `pending`, and the tenant is skipped by this worker's pops for a
//! moment instead of being popped and put back again and again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use uuid::Uuid;

use super::Worker;
use crate::queue::Message;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;

/// How long a tenant at its limit is left out of this worker's pops, and
/// how long its refused task waits before it is offered again.
const BACK_OFF: Duration = Duration::from_millis(250);
/// How often the limits are read from PostgreSQL.
const REFRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(super) struct TenantLimits {
    limits: RwLock<HashMap<String, u32>>,
    saturated: Mutex<HashMap<String, Instant>>,
    /// Permits this worker holds: task → tenant.
    held: Mutex<HashMap<Uuid, String>>,
}

impl TenantLimits {
    fn limit(&self, tenant: &str) -> Option<u32> {
        let limits = self.limits.read().unwrap_or_else(PoisonError::into_inner);
        limits.get(tenant).copied()
    }

    /// Tenants to leave out of the next pop.
    pub(super) fn skipped(&self) -> Vec<String> {
        let mut saturated = self
            .saturated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        saturated.retain(|_, until| *until > now);
        saturated.keys().cloned().collect()
    }
}

impl Worker {
    /// Whether `message`'s task may start now under its tenant's limit; if
    /// not, it is sent back to wait and `false` is returned.
    pub(super) async fn admit(&self, queue: &str, message: &Message) -> bool {
        let Some(limit) = self.limits.limit(&message.tenant) else {
            return true;
        };
        let key = self.services.keys.running(&message.tenant);
        let holder = message.task_id.to_string();
        let lifetime = self.permit_lifetime();
        match self
            .services
            .budgets
            .acquire(&key, &holder, limit, lifetime)
            .await
        {
            Ok(true) => {
                let mut held = self
                    .limits
                    .held
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                held.insert(message.task_id, message.tenant.clone());
                true
            }
            Ok(false) => {
                {
                    let mut saturated = self
                        .limits
                        .saturated
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    saturated.insert(message.tenant.clone(), Instant::now() + BACK_OFF);
                }
                let due = SystemTime::now() + BACK_OFF;
                if let Err(err) = self.services.queue.schedule(queue, message, due).await {
                    tracing::warn!(error = %error_chain(&err), "cannot send a task back to wait; re-dispatch will");
                }
                false
            }
            Err(err) => {
                // Without Redis there is no queue either: let it run.
                tracing::warn!(error = %error_chain(&err), "cannot check the tenant's running limit");
                true
            }
        }
    }

    /// Gives back the permits of `tasks`, if this worker holds them.
    pub(super) async fn release(&self, tasks: &[Uuid]) {
        let released: Vec<(String, String)> = {
            let mut held = self
                .limits
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tasks
                .iter()
                .filter_map(|id| {
                    held.remove(id)
                        .map(|tenant| (self.services.keys.running(&tenant), id.to_string()))
                })
                .collect()
        };
        let permits = released.iter().map(|(k, h)| (k.as_str(), h.as_str()));
        if let Err(err) = self.services.budgets.release(permits).await {
            tracing::debug!(error = %error_chain(&err), "cannot give permits back; they expire");
        }
    }

    /// Keeps the permits of long attempts alive (with the leases).
    pub(super) async fn renew_permits(&self) {
        let held: Vec<(Uuid, String)> = {
            let held = self
                .limits
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            held.iter().map(|(id, t)| (*id, t.clone())).collect()
        };
        let lifetime = self.permit_lifetime();
        for (id, tenant) in held {
            let limit = self.limits.limit(&tenant).unwrap_or(u32::MAX);
            let key = self.services.keys.running(&tenant);
            let _ = self
                .services
                .budgets
                .acquire(&key, &id.to_string(), limit, lifetime)
                .await;
        }
    }

    fn permit_lifetime(&self) -> Duration {
        self.config.lease() + Duration::from_secs(5)
    }

    /// Reads the tenants' limits from PostgreSQL every few seconds.
    pub(super) async fn refresh_limits(self, shutdown: Shutdown) {
        shutdown.every(REFRESH, || self.load_limits()).await;
    }

    /// Reads the tenants' limits from PostgreSQL once: before the first pop
    /// too, or the tasks popped before the first refresh would run unlimited.
    pub(super) async fn load_limits(&self) {
        match self.services.store.running_limits().await {
            Ok(rows) => {
                let limits = rows
                    .into_iter()
                    .map(|(tenant, max)| (tenant, u32::try_from(max).unwrap_or(1)))
                    .collect();
                *self
                    .limits
                    .limits
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = limits;
            }
            Err(err) => {
                tracing::debug!(error = %error_chain(&err), "cannot read tenants' limits")
            }
        }
    }
}
