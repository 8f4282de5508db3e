//! Quick tasks (see `Task::QUICK`): the quick messages of one pop are
//! claimed, run and finished inside one transaction (`store::quick`), one
//! write per task, then cached and announced like any other outcome.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use tracing::Instrument;
use uuid::Uuid;

use super::Worker;
use super::execute::{Outcome, run_attempt, task_span};
use crate::domain::TaskStatus;
use crate::queue::Message;
use crate::store::{QuickOutcome, QuickWrite};
use crate::telemetry::error_chain;
use crate::telemetry::traces;

/// One claimed task's attempt, kept until its outcome is written.
struct Attempt {
    span: tracing::Span,
    outcome: Outcome,
    elapsed: std::time::Duration,
}

impl Worker {
    /// Runs a batch of quick messages (each `(queue, message)`).
    pub(super) async fn execute_quick(&self, batch: Vec<(String, Message)>) {
        let ids: Vec<Uuid> = batch.iter().map(|(_, m)| m.task_id).collect();
        // One claim and one write serve every task of the batch: the span is
        // linked to each submitter's trace rather than parented by one.
        let claim_span = tracing::info_span!("claim and finish quick tasks", count = ids.len());
        for message in batch.iter().filter_map(|(_, m)| m.traceparent.as_deref()) {
            traces::link_traceparent(&claim_span, message);
        }
        let claim = match self
            .services
            .store
            .claim_quick(&ids)
            .instrument(claim_span.clone())
            .await
        {
            Ok(claim) => claim,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot claim quick tasks");
                if err.is_unavailable() {
                    self.database_up.store(false, Ordering::Relaxed);
                    self.requeue_all(&batch).await;
                }
                return;
            }
        };
        let messages: HashMap<Uuid, &(String, Message)> =
            batch.iter().map(|item| (item.1.task_id, item)).collect();
        let mut attempts = HashMap::with_capacity(claim.tasks.len());
        let mut writes = Vec::with_capacity(claim.tasks.len());
        for claimed in &claim.tasks {
            let Some((_, message)) = messages.get(&claimed.id) else {
                continue;
            };
            let span = task_span(message);
            span.record("task_name", claimed.task_name.as_str());
            span.record("attempt", claimed.attempt);
            let task = self.services.registry.get(&claimed.task_name);
            let started = Instant::now();
            let outcome = async {
                self.started(claimed);
                run_attempt(task, claimed).await
            }
            .instrument(span.clone())
            .await;
            writes.push(QuickWrite {
                id: claimed.id,
                outcome: match &outcome {
                    Outcome::Completed(output) => QuickOutcome::Completed(output.clone()),
                    Outcome::Failed(error) => QuickOutcome::Failed(error.clone()),
                    Outcome::Retry { error, delay } | Outcome::Defer { error, delay } => {
                        QuickOutcome::Retry {
                            error: error.clone(),
                            delay: *delay,
                        }
                    }
                },
            });
            attempts.insert(
                claimed.id,
                Attempt {
                    span,
                    outcome,
                    elapsed: started.elapsed(),
                },
            );
        }
        let tasks = claim.tasks.clone();
        let written = claim.finish(&writes).instrument(claim_span).await;
        let records = match written {
            Ok(records) => records,
            Err(err) => {
                // Rolled back: the tasks are pending again; run them again soon.
                tracing::warn!(error = %error_chain(&err), count = writes.len(), "cannot write quick outcomes; the tasks will run again");
                if err.is_unavailable() {
                    self.database_up.store(false, Ordering::Relaxed);
                }
                self.requeue_all(&batch).await;
                return;
            }
        };
        if let Err(err) = self.services.cache.put_many(&records).await {
            // PostgreSQL has the results; readers fall back to it.
            tracing::warn!(count = records.len(), error = %error_chain(&err), "cannot cache results");
        }
        let mut retries = Vec::new();
        for record in &records {
            let (Some(attempt), Some(claimed)) = (
                attempts.get(&record.id),
                tasks.iter().find(|t| t.id == record.id),
            ) else {
                continue;
            };
            let _entered = attempt.span.enter();
            self.ended(claimed, &attempt.outcome, Some(record), attempt.elapsed);
            if record.status == TaskStatus::Pending
                && let (Some((queue, message)), Some(due)) =
                    (messages.get(&record.id), record.next_attempt_at)
            {
                retries.push((queue.as_str(), message, SystemTime::from(due)));
            }
        }
        if !retries.is_empty()
            && let Err(err) = self.services.queue.schedule_many(retries).await
        {
            // The rows say pending with a due time; re-dispatch covers it.
            tracing::warn!(error = %error_chain(&err), "cannot schedule retries in Redis");
        }
    }

    async fn requeue_all(&self, batch: &[(String, Message)]) {
        for (queue, message) in batch {
            self.requeue(queue, message).await;
        }
    }
}
