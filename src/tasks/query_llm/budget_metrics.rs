//! The metrics of `query_llm`'s budget: their names, `# HELP` and the
//! series created at zero, added to the process's metrics when the type is
//! built (see `telemetry::metrics::add_task_metrics`).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use crate::telemetry::metrics::TaskMetrics;

/// LLM calls in flight from this process under `llm.max_concurrency`.
pub(super) const LLM_PERMITS: &str = "tasker_llm_permits_in_use";
/// Tokens of LLM calls (`kind`: estimated before the call, used after).
pub(super) const LLM_TOKENS: &str = "tasker_llm_tokens_total";
/// LLM tasks sent back to wait (`reason`: concurrency, tokens, provider).
pub(super) const LLM_DEFERRED: &str = "tasker_llm_deferred_total";
/// How long LLM tasks were sent back to wait for.
pub(super) const LLM_WAIT: &str = "tasker_llm_wait_seconds";

/// `kind` of [`LLM_TOKENS`].
const TOKEN_KINDS: [&str; 2] = ["estimated", "used"];
/// `reason` of [`LLM_DEFERRED`].
const DEFER_REASONS: [&str; 3] = ["concurrency", "tokens", "provider"];

/// What `query_llm` adds to the process's metrics.
pub(super) const METRICS: TaskMetrics = TaskMetrics {
    task: "query_llm",
    describe,
    register,
};

fn describe() {
    describe_gauge!(
        LLM_PERMITS,
        Unit::Count,
        "LLM calls in flight from this process under llm.max_concurrency."
    );
    describe_counter!(
        LLM_TOKENS,
        Unit::Count,
        "Tokens of LLM calls: estimated before each call, used after."
    );
    describe_counter!(
        LLM_DEFERRED,
        Unit::Count,
        "LLM tasks sent back to wait: the fleet's concurrency or token budget was spent, or the provider asked to wait."
    );
    describe_histogram!(
        LLM_WAIT,
        Unit::Seconds,
        "How long LLM tasks were sent back to wait for."
    );
}

fn register() {
    for kind in TOKEN_KINDS {
        metrics::counter!(LLM_TOKENS, "kind" => kind).absolute(0);
    }
    for reason in DEFER_REASONS {
        metrics::counter!(LLM_DEFERRED, "reason" => reason).absolute(0);
    }
    let _ = metrics::histogram!(LLM_WAIT);
    metrics::gauge!(LLM_PERMITS).increment(0.0);
}
