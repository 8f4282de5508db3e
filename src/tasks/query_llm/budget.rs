//! The fleet's LLM budget. The provider's limits apply to the whole fleet,
//! so scaling workers out only multiplies refusals unless they share one
//! budget: `llm.max_concurrency` calls in flight across every worker (a
//! Redis semaphore whose permits expire, so a killed worker leaks none),
//! `llm.tokens_per_minute` (a rate on estimated tokens, corrected with the
//! usage the reply reports), and a fleet-wide pause when the provider
//! answers 429 or says its limits are spent. A task that finds the budget
//! spent waits, pending, without spending an attempt.

use std::time::Duration;

use uuid::Uuid;

use super::LlmSettings;
use super::budget_metrics as m;
use crate::budget::{Admission, Budgets};
use crate::keys::Keys;
use crate::tasks::{TaskEnv, TaskError};
use crate::telemetry::error_chain;

pub(super) struct LlmBudget {
    budgets: Budgets,
    permits: String,
    tokens: String,
    hold: String,
    max_concurrency: Option<u32>,
    tokens_per_second: Option<f64>,
}

/// How long a permit lives unless renewed, and how often a call renews it:
/// a worker killed mid-call frees its permits within `PERMIT_LIFETIME`.
const PERMIT_LIFETIME: Duration = Duration::from_secs(10);
const PERMIT_RENEWAL: Duration = Duration::from_secs(3);

/// A call under way: holds a permit (kept alive by `renewal`) until settled.
pub(super) struct Call<'a> {
    budget: &'a LlmBudget,
    holder: Option<String>,
    renewal: Option<tokio::task::JoinHandle<()>>,
    estimate: u64,
}

impl LlmBudget {
    /// The budget of `settings`, when the process has Redis to share it.
    pub(super) fn new(settings: &LlmSettings, env: &TaskEnv) -> Option<Self> {
        let (budgets, keys): &(Budgets, Keys) = env.budgets.as_ref()?;
        Some(Self {
            budgets: budgets.clone(),
            permits: key(keys, "permits"),
            tokens: key(keys, "tokens"),
            hold: key(keys, "hold"),
            max_concurrency: settings.max_concurrency.map(|n| n.get()),
            tokens_per_second: settings.tokens_per_minute.map(|n| n.get() as f64 / 60.0),
        })
    }

    /// Starts a call estimated at `estimate` tokens, or says how long to wait.
    pub(super) async fn enter(&self, estimate: u64) -> Result<Call<'_>, TaskError> {
        match self.budgets.held_off(&self.hold).await {
            Ok(Some(wait)) => {
                return Err(defer("provider", "the LLM provider asked to wait", wait));
            }
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %error_chain(&err), "cannot read the LLM hold"),
        }
        let mut call = Call {
            budget: self,
            holder: None,
            renewal: None,
            estimate: 0,
        };
        if let Some(limit) = self.max_concurrency {
            let holder = Uuid::new_v4().to_string();
            match self
                .budgets
                .acquire(&self.permits, &holder, limit, PERMIT_LIFETIME)
                .await
            {
                Ok(true) => {
                    metrics::gauge!(m::LLM_PERMITS).increment(1.0);
                    call.renewal = Some(self.keep_alive(holder.clone(), limit));
                    call.holder = Some(holder);
                }
                Ok(false) => {
                    let wait = Duration::from_millis(500 + u64::from(rand::random::<u16>() % 1000));
                    return Err(defer(
                        "concurrency",
                        "waiting for the LLM budget (llm.max_concurrency calls in flight)",
                        wait,
                    ));
                }
                Err(err) => {
                    tracing::warn!(error = %error_chain(&err), "cannot take an LLM permit; calling anyway")
                }
            }
        }
        if let Some(per_second) = self.tokens_per_second {
            let window = Duration::from_secs(60);
            match self
                .budgets
                .take(&self.tokens, per_second, estimate as f64, window)
                .await
            {
                Ok(Admission::Admitted) => {
                    call.estimate = estimate;
                    metrics::counter!(m::LLM_TOKENS, "kind" => "estimated").increment(estimate);
                }
                Ok(Admission::Refused { retry_after }) => {
                    call.settle(None).await;
                    return Err(defer(
                        "tokens",
                        "waiting for the LLM budget (llm.tokens_per_minute)",
                        retry_after,
                    ));
                }
                Err(err) => {
                    tracing::warn!(error = %error_chain(&err), "cannot take LLM tokens; calling anyway")
                }
            }
        }
        Ok(call)
    }

    /// Renews `holder`'s permit while its call runs.
    fn keep_alive(&self, holder: String, limit: u32) -> tokio::task::JoinHandle<()> {
        let budgets = self.budgets.clone();
        let key = self.permits.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PERMIT_RENEWAL).await;
                if let Err(err) = budgets.acquire(&key, &holder, limit, PERMIT_LIFETIME).await {
                    tracing::debug!(error = %error_chain(&err), "cannot renew an LLM permit");
                }
            }
        })
    }

    /// The provider asked the whole fleet to wait `wait`.
    pub(super) async fn hold_off(&self, wait: Duration) {
        if let Err(err) = self.budgets.hold_off(&self.hold, wait).await {
            tracing::warn!(error = %error_chain(&err), "cannot share the provider's wait");
        }
    }
}

impl Drop for Call<'_> {
    /// A call abandoned mid-way (its task timed out or was cancelled) gives
    /// its permit back at once rather than when it expires.
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let Some(holder) = self.holder.take() else {
            return;
        };
        metrics::gauge!(m::LLM_PERMITS).decrement(1.0);
        let budgets = self.budget.budgets.clone();
        let key = self.budget.permits.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = budgets.release([(key.as_str(), holder.as_str())]).await;
            });
        }
    }
}

impl Call<'_> {
    /// Ends the call: gives its permit back, and corrects the token budget
    /// with what the reply says was `used`.
    pub(super) async fn settle(mut self, used: Option<u64>) {
        let budget = self.budget;
        if let Some(used) = used {
            metrics::counter!(m::LLM_TOKENS, "kind" => "used").increment(used);
        }
        if let (Some(per_second), Some(used), true) =
            (budget.tokens_per_second, used, self.estimate > 0)
        {
            let correction = used as f64 - self.estimate as f64;
            let window = Duration::from_secs(60);
            if let Err(err) = budget
                .budgets
                .charge(&budget.tokens, per_second, correction, window)
                .await
            {
                tracing::debug!(error = %error_chain(&err), "cannot correct the LLM token budget");
            }
        }
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if let Some(holder) = self.holder.take() {
            metrics::gauge!(m::LLM_PERMITS).decrement(1.0);
            if let Err(err) = budget
                .budgets
                .release([(budget.permits.as_str(), holder.as_str())])
                .await
            {
                tracing::debug!(error = %error_chain(&err), "cannot give the LLM permit back; it expires");
            }
        }
    }
}

/// A key of the LLM budget shared by the fleet: `permits` (the
/// concurrency semaphore), `tokens` (the token rate) or `hold` (the
/// provider's wait).
fn key(keys: &Keys, part: &str) -> String {
    keys.owned(NAMESPACE, part)
}

/// The namespace of the LLM budget's keys.
const NAMESPACE: &str = "llm";

pub(super) fn defer(reason: &'static str, message: &str, wait: Duration) -> TaskError {
    metrics::counter!(m::LLM_DEFERRED, "reason" => reason).increment(1);
    metrics::histogram!(m::LLM_WAIT).record(wait.as_secs_f64());
    TaskError::Deferred {
        message: message.to_owned(),
        retry_after: wait,
    }
}
