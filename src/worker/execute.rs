//! One message, start to finish: claim → run under timeout → store → cache.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tracing::Instrument;

use std::sync::atomic::Ordering;

use super::inflight::{Registration, Stop};
use super::{Backoff, Worker};
use crate::domain::{ClaimedTask, TaskRecord, TaskStatus};
use crate::queue::Message;
use crate::store::{self, FinalOutcome, FinalWrite, Lease};
use crate::tasks::{RegisteredTask, TaskError};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

/// What one attempt ended with, before it is written down.
pub(super) enum Outcome {
    Completed(Value),
    Retry {
        error: String,
        delay: Duration,
    },
    /// Not attempted (a shared budget was spent): wait without spending
    /// an attempt.
    Defer {
        error: String,
        delay: Duration,
    },
    Failed(String),
}

impl Worker {
    pub(super) async fn execute(&self, queue: String, message: Message) {
        let span = task_span(&message);
        self.claim_and_run(queue, message).instrument(span).await;
    }

    async fn claim_and_run(&self, queue: String, message: Message) {
        let claim = self
            .claims
            .write(message.task_id)
            .instrument(tracing::info_span!("claim"))
            .await;
        let claimed = match claim {
            Ok(Some(claimed)) => claimed,
            Ok(None) => {
                tracing::debug!("task is not pending; message dropped");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot claim task");
                // Unreachable database: put the message back and pause. Any
                // other failure would recur at once, so leave the task to the
                // reconciler's next re-dispatch rather than spin on it.
                if err.is_unavailable() {
                    self.database_up.store(false, Ordering::Relaxed);
                    self.requeue(&queue, &message).await;
                }
                return;
            }
        };
        let span = tracing::Span::current();
        span.record("task_name", claimed.task_name.as_str());
        span.record("attempt", claimed.attempt);
        let lease = Lease {
            task_id: claimed.id,
            attempt: claimed.attempt,
        };
        let registration = self.in_flight.register(lease);
        self.run_claimed(claimed, message, &registration).await;
    }

    /// Puts a message back when its task could not be claimed; the
    /// reconciler covers the case where Redis is unreachable too.
    pub(super) async fn requeue(&self, queue: &str, message: &Message) {
        if let Err(err) = self.services.queue.dispatch(queue, message).await {
            tracing::debug!(error = %error_chain(&err), "cannot requeue the message");
        }
    }

    async fn run_claimed(
        &self,
        claimed: ClaimedTask,
        message: Message,
        registration: &Registration,
    ) {
        self.started(&claimed);
        let started = Instant::now();
        let task = self.services.registry.get(&claimed.task_name).cloned();
        let run = run_attempt(task.as_ref(), &claimed);
        let outcome = tokio::select! {
            outcome = run => outcome,
            stop = registration.stopped() => {
                // Dropping the attempt's future stops it where it is (an
                // LLM call is aborted, not awaited).
                match stop {
                    Stop::Cancelled => tracing::info!(
                        duration_ms = started.elapsed().as_millis() as u64,
                        "task cancelled; attempt stopped"
                    ),
                    Stop::LeaseLost => {
                        metrics::counter!(m::STALE_RESULTS).increment(1);
                        tracing::warn!("lease lost (taken over or cancelled); attempt abandoned");
                    }
                }
                return;
            }
        };
        let elapsed = started.elapsed();
        let record = self.record(&claimed, &outcome).await;
        self.ended(&claimed, &outcome, record.as_ref(), elapsed);
        if let (Outcome::Retry { delay, .. } | Outcome::Defer { delay, .. }, Some(_)) =
            (&outcome, &record)
        {
            self.schedule_retry(task.as_ref(), message, *delay).await;
        }
    }

    /// Metrics and the log line of an attempt about to run.
    pub(super) fn started(&self, claimed: &ClaimedTask) {
        if claimed.attempt == 1 {
            let waited = (chrono::Utc::now() - claimed.created_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!(m::TASK_QUEUE_WAIT, "task_name" => self.services.registry.label(&claimed.task_name))
                .record(waited.as_secs_f64());
        }
        tracing::info!("task running");
    }

    /// Metrics and the log line of an attempt whose outcome is written
    /// (`record` is `None` when it was not: fenced off or unreachable).
    pub(super) fn ended(
        &self,
        claimed: &ClaimedTask,
        outcome: &Outcome,
        record: Option<&TaskRecord>,
        elapsed: Duration,
    ) {
        let task_name = self.services.registry.label(&claimed.task_name);
        metrics::histogram!(m::TASK_DURATION, "task_name" => task_name)
            .record(elapsed.as_secs_f64());
        let Some(record) = record else { return };
        let duration_ms = elapsed.as_millis() as u64;
        match outcome {
            Outcome::Retry { error, delay } => {
                metrics::counter!(m::TASK_RETRIES, "task_name" => task_name).increment(1);
                tracing::warn!(
                    duration_ms,
                    error,
                    retry_in_ms = delay.as_millis() as u64,
                    "task will be retried"
                );
            }
            Outcome::Defer { error, delay } => {
                tracing::info!(
                    error,
                    retry_in_ms = delay.as_millis() as u64,
                    "task waits for a shared budget"
                );
            }
            _ => self.finished(record, duration_ms),
        }
    }

    /// Writes the outcome, fenced by the attempt number. `None` when this
    /// attempt lost the task or the database stayed unreachable.
    async fn record(&self, claimed: &ClaimedTask, outcome: &Outcome) -> Option<TaskRecord> {
        let store = &self.services.store;
        let (id, attempt) = (claimed.id, claimed.attempt);
        let written = self
            .persist(|| async move {
                let outcome = match outcome {
                    Outcome::Completed(output) => FinalOutcome::Completed(output.clone()),
                    Outcome::Failed(error) => FinalOutcome::Failed(error.clone()),
                    Outcome::Retry { error, delay } => {
                        return store.schedule_retry(id, attempt, error, *delay, true).await;
                    }
                    Outcome::Defer { error, delay } => {
                        return store
                            .schedule_retry(id, attempt, error, *delay, false)
                            .await;
                    }
                };
                let write = FinalWrite {
                    id,
                    attempt,
                    outcome,
                };
                self.outcomes
                    .write(write)
                    .instrument(tracing::info_span!("complete"))
                    .await
            })
            .await;
        match written {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                metrics::counter!(m::STALE_RESULTS).increment(1);
                tracing::warn!(
                    "attempt no longer holds the task (lease taken over); its result was discarded"
                );
                None
            }
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "cannot store the task outcome; lease recovery will retry the task");
                None
            }
        }
    }

    /// Retries a database write while the database is unreachable, for at
    /// most one lease: after that another worker may own the task anyway.
    async fn persist<T, F, Fut>(&self, write: F) -> store::Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = store::Result<T>>,
    {
        let deadline = Instant::now() + self.config.lease();
        let mut backoff = Backoff::new();
        loop {
            match write().await {
                Err(err) if err.is_unavailable() && Instant::now() < deadline => {
                    tracing::warn!(error = %error_chain(&err), "database unavailable; retrying the write");
                    tokio::time::sleep(backoff.next()).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn schedule_retry(
        &self,
        task: Option<&RegisteredTask>,
        message: Message,
        delay: Duration,
    ) {
        let Some(task) = task else { return };
        let due = SystemTime::now() + delay;
        if let Err(err) = self
            .services
            .queue
            .schedule(task.queue(), &message, due)
            .await
        {
            // The row says pending with a due time; the reconciler dispatches it.
            tracing::warn!(error = %error_chain(&err), "cannot schedule the retry in Redis");
        }
    }

    fn finished(&self, record: &TaskRecord, duration_ms: u64) {
        metrics::counter!(
            m::TASKS_COMPLETED,
            "task_name" => self.services.registry.label(&record.task_name),
            "status" => record.status.as_str()
        )
        .increment(1);
        match record.status {
            TaskStatus::Completed => tracing::info!(duration_ms, "task completed"),
            _ => tracing::warn!(
                duration_ms,
                error = record.error.as_deref().unwrap_or_default(),
                "task failed"
            ),
        }
    }
}

/// The span of one task's attempt, in the submitter's trace. It starts
/// before the claim so the claim belongs to that trace too; the rest of its
/// fields come with the claim.
pub(super) fn task_span(message: &Message) -> tracing::Span {
    let span = tracing::info_span!(
        "task",
        task_id = %message.task_id,
        task_name = tracing::field::Empty,
        attempt = tracing::field::Empty,
        request_id = message.request_id.as_deref().unwrap_or(""),
        otel.name = "run task",
        otel.kind = "consumer",
    );
    if let Some(traceparent) = &message.traceparent {
        traces::adopt_traceparent(&span, traceparent);
    }
    span
}

/// Runs one attempt of `claimed` as `task`, or fails it when its type is unknown.
pub(super) async fn run_attempt(task: Option<&RegisteredTask>, claimed: &ClaimedTask) -> Outcome {
    match task {
        Some(task) => attempt(task, claimed).await,
        None => Outcome::Failed(format!("unknown task type `{}`", claimed.task_name)),
    }
}

/// Runs one attempt under the task type's timeout and decides what follows.
async fn attempt(task: &RegisteredTask, claimed: &ClaimedTask) -> Outcome {
    let timeout = task.timeout();
    let result = match tokio::time::timeout(timeout, task.run(claimed.parameters.clone())).await {
        Ok(result) => result,
        Err(_) => Err(TaskError::retryable(format!(
            "timed out after {}s",
            timeout.as_secs_f64()
        ))),
    };
    let policy = task.retry_policy();
    let attempts_left = claimed.attempt < claimed.max_attempts;
    match result {
        Ok(output) => Outcome::Completed(output),
        Err(TaskError::Retryable {
            message,
            retry_after,
        }) if attempts_left => Outcome::Retry {
            delay: policy.delay_for(u32::try_from(claimed.attempt).unwrap_or(1), retry_after),
            error: message,
        },
        Err(TaskError::Retryable { message, .. }) => Outcome::Failed(format!(
            "{message} (gave up after {} attempts)",
            claimed.attempt
        )),
        Err(TaskError::Fatal(message)) => Outcome::Failed(message),
        Err(TaskError::Deferred {
            message,
            retry_after,
        }) => Outcome::Defer {
            error: message,
            delay: retry_after,
        },
    }
}
