//! Submissions by group commit: concurrent `POST /run-task` requests share
//! one INSERT (one transaction, one WAL flush) and one Redis pipeline for
//! their dispatch messages. Each request is answered only after the
//! statement carrying its row has committed, so a `2xx` still means the task
//! is stored.

use tracing::Instrument;

use crate::batching::Batcher;
use crate::domain::NewTask;
use crate::queue::{Message, Queue};
use crate::store::{self, Store};
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

/// Rows in one INSERT at most.
const MAX_BATCH: usize = 256;

/// Takes submissions and stores them in groups; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    batcher: Batcher<NewTask, Result<(), store::Error>>,
}

impl Intake {
    /// Requests arriving while an INSERT runs form the next group; up to
    /// `max_flushes` INSERTs run at once when full groups wait.
    pub fn new(store: Store, queue: Queue, max_flushes: usize) -> Self {
        let batcher = Batcher::new(MAX_BATCH, max_flushes, move |tasks: Vec<NewTask>| {
            let (store, queue) = (store.clone(), queue.clone());
            // One statement for many requests: linked to each one's trace.
            let span = tracing::info_span!("store_tasks", count = tasks.len());
            for traceparent in tasks.iter().filter_map(|t| t.trace_context.as_deref()) {
                traces::link_traceparent(&span, traceparent);
            }
            async move { store_and_dispatch(&store, &queue, tasks).await }.instrument(span)
        });
        Self { batcher }
    }

    /// Stores `task` and dispatches it. `Ok` only once its row is committed;
    /// a failed dispatch is left to the reconciler.
    #[tracing::instrument(name = "store_and_dispatch", skip_all, fields(task_id = %task.id))]
    pub async fn submit(&self, task: NewTask) -> Result<(), store::Error> {
        self.batcher.write(task).await
    }
}

async fn store_and_dispatch(
    store: &Store,
    queue: &Queue,
    tasks: Vec<NewTask>,
) -> Vec<Result<(), store::Error>> {
    metrics::histogram!(m::GROUP_COMMIT_ROWS, "statement" => "insert").record(tasks.len() as f64);
    let results = match store.insert_tasks(&tasks).await {
        Ok(_) => tasks.iter().map(|_| Ok(())).collect(),
        // One bad row must not fail the requests it was grouped with: store
        // them one by one so each gets its own answer.
        Err(err) if tasks.len() > 1 && !err.is_unavailable() => {
            let mut results = Vec::with_capacity(tasks.len());
            for task in &tasks {
                let stored = store.insert_tasks(std::slice::from_ref(task)).await;
                results.push(stored.map(drop));
            }
            results
        }
        Err(err) => {
            let shared = err.share();
            tasks.iter().map(|_| Err(shared.share())).collect()
        }
    };
    let messages: Vec<(&str, Message)> = tasks
        .iter()
        .zip(&results)
        .filter(|(_, stored)| stored.is_ok())
        .map(|(task, _)| (task.queue.as_str(), Message::from(task)))
        .collect();
    if !messages.is_empty()
        && let Err(err) = queue
            .dispatch_many(messages.iter().map(|(q, m)| (*q, m)))
            .await
    {
        // Stored is what counts: the reconciler dispatches them once Redis is back.
        tracing::warn!(count = messages.len(), error = %error_chain(&err), "dispatch failed; the reconciler will retry it");
    }
    results
}
