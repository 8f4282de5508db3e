//! Task types: the [`Task`] trait every type implements, the errors a run can
//! end with, retry policies, and the [`Registry`] that maps names to types.
//!
//! Adding a task type is one module here (a file, or a folder when it has
//! parts of its own, like `query_llm/`) plus one line in the `task_types!`
//! list below: the type declares its name, queue, parameters, output,
//! settings section, example, retry policy and timeout, and the API, its
//! document, the configuration and the worker all follow from that.

mod erased;
mod registry;
mod validation;

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

pub use registry::{RegisteredTask, Registry};
pub use validation::SubmissionError;

/// Declares each task type's module and registers its type: the one list
/// of task types.
macro_rules! task_types {
    ($($module:ident::$task:ident),+ $(,)?) => {
        $(mod $module;)+

        /// Adds every task type of the list to `builder`.
        fn add_every_type(builder: &mut registry::Builder<'_>) -> Result<(), ConfigError> {
            $(builder.add::<$module::$task>()?;)+
            Ok(())
        }
    };
}

task_types! {
    sum::Sum,
    file_hash::FileHash,
    query_llm::QueryLlm,
}

/// The longest timeout a quick task may have: a transaction holds its row
/// while it runs, and a frozen worker's transaction is ended after 15 s.
pub const QUICK_TIMEOUT_LIMIT: Duration = Duration::from_secs(10);

/// One kind of work Tasker can run.
pub trait Task: Sized + Send + Sync + 'static {
    /// The `task_name` clients submit.
    const NAME: &'static str;
    /// The queue this type runs on unless `task_queues` overrides it.
    const DEFAULT_QUEUE: &'static str = "default";
    /// One line for the API documentation.
    const DESCRIPTION: &'static str;
    /// Runs in milliseconds, so it can run inside the transaction that
    /// claims it: claimed, run and finished with one write instead of two
    /// (see `store::quick`). Only while its timeout is within
    /// [`QUICK_TIMEOUT_LIMIT`].
    const QUICK: bool = false;

    /// Parameters, flat beside `task_name` in the request body.
    type Params: DeserializeOwned + Serialize + utoipa::ToSchema + Send + 'static;
    /// What a completed task shows as `task_output`.
    type Output: Serialize + utoipa::ToSchema + Send + 'static;
    /// This type's configuration section ([`NoSettings`] when it has none).
    type Settings: TaskSettings;

    /// Builds the type from its (validated) settings and what the process
    /// shares with it.
    fn build(settings: Self::Settings, env: &TaskEnv) -> Result<Self, ConfigError>;
    /// Valid parameters, for the documentation and the examples.
    fn example() -> Self::Params;
    /// Checks serde cannot express (ranges, non-empty strings).
    fn check(&self, _params: &Self::Params) -> Result<(), FieldError> {
        Ok(())
    }
    fn retry_policy(&self) -> RetryPolicy;
    /// How long one attempt may run before it is abandoned.
    fn timeout(&self) -> Duration;
    fn run(
        &self,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, TaskError>> + Send;
}

/// A task type's configuration section, such as `[llm]`.
pub trait TaskSettings:
    DeserializeOwned + Serialize + Default + std::fmt::Debug + Send + Sync + 'static
{
    /// The section's name, or `None` for a type without settings.
    const SECTION: Option<&'static str>;

    /// Checks what types alone cannot, naming the key (`section.field`).
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The settings of a type that has none.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl TaskSettings for NoSettings {
    const SECTION: Option<&'static str> = None;
}

/// What a process shares with its task types: budgets in Redis (absent
/// when the registry is only built to check the configuration).
#[derive(Clone, Default)]
pub struct TaskEnv {
    pub budgets: Option<(crate::budget::Budgets, crate::keys::Keys)>,
}

/// A parameter that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How a task run ended when it did not succeed. The message is what the
/// task's `error` shows: it must not carry secrets or internal addresses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// Worth another attempt (rate limit, server error, timeout).
    #[error("{message}")]
    Retryable {
        message: String,
        /// Set when the other side said how long to wait.
        retry_after: Option<Duration>,
    },
    /// Will fail the same way every time; no retry.
    #[error("{0}")]
    Fatal(String),
    /// Not attempted: a shared budget is spent or the other side asked to
    /// wait. The task waits, pending, without spending an attempt.
    #[error("{message}")]
    Deferred {
        message: String,
        retry_after: Duration,
    },
}

impl TaskError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }
}

/// How often and how patiently a task type is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// For task types whose own errors are never worth a retry: the
    /// attempts left cover a lost worker.
    pub const FEW_QUICK: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
    };

    /// Delay before the attempt after `attempt`: exponential backoff with full
    /// jitter, so retries from many tasks spread out instead of arriving together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// The largest delay `backoff` may choose after `attempt`.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        self.base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay)
    }

    /// The delay before the next attempt, honouring a server's `Retry-After`
    /// within `max_delay`.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self.backoff(attempt),
        }
    }

    /// `max_attempts` as stored with a task.
    pub fn max_attempts_i32(&self) -> i32 {
        i32::try_from(self.max_attempts).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        assert_eq!(POLICY.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(POLICY.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(POLICY.backoff_ceiling(4), Duration::from_millis(800));
        assert_eq!(POLICY.backoff_ceiling(5), Duration::from_secs(1));
        assert_eq!(POLICY.backoff_ceiling(60), Duration::from_secs(1));
    }

    #[test]
    fn backoff_is_jittered_within_the_ceiling() {
        let delays: Vec<_> = (0..200).map(|_| POLICY.backoff(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 10, "full jitter spreads the delays");
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let asked = Some(Duration::from_millis(300));
        assert_eq!(POLICY.delay_for(1, asked), Duration::from_millis(300));
        let too_long = Some(Duration::from_secs(30));
        assert_eq!(POLICY.delay_for(1, too_long), Duration::from_secs(1));
    }
}
