//! The worker: takes messages off the queues, claims each task in
//! PostgreSQL, runs it under its timeout, stores the outcome and caches it.
//! Beside that loop run the retry promoter and the reconciler.

mod batches;
mod control;
mod execute;
mod heartbeat;
mod inflight;
mod limits;
mod quick;
mod reconciler;
mod retention;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{Config, RetentionConfig, WorkerConfig};
use crate::ops::Ops;
use crate::queue::{Consumer, Message, Popped};
use crate::services::Services;
use crate::shutdown::Shutdown;
use crate::telemetry::error_chain;
use crate::telemetry::metrics as m;
use inflight::InFlight;

/// How long one blocking pop waits before checking for shutdown.
const POP_BLOCK: Duration = Duration::from_secs(1);
/// How often due retries are moved to the ready queues.
const PROMOTE_INTERVAL: Duration = Duration::from_millis(200);
const PROMOTE_BATCH: usize = 500;
/// Pops in flight at once: each takes at most this share of the
/// concurrency, so that while one pop's tasks are being claimed, the next
/// is popped instead of every slot waiting on the same round trips.
const PIPELINED_POPS: usize = 2;

/// One worker process's state, shared by its loops and in-flight tasks.
/// Cloned for every task, so one `Arc`.
#[derive(Clone)]
pub struct Worker(Arc<WorkerState>);

impl std::ops::Deref for Worker {
    type Target = WorkerState;

    fn deref(&self) -> &WorkerState {
        &self.0
    }
}

pub struct WorkerState {
    services: Services,
    config: WorkerConfig,
    retention: RetentionConfig,
    queues: Vec<String>,
    redis_timeout: Duration,
    /// True while the consume loop is taking tasks (part of readiness).
    consuming: Arc<AtomicBool>,
    /// False after a claim found PostgreSQL unreachable: the consume loop
    /// pauses until it answers again instead of draining the queue.
    database_up: Arc<AtomicBool>,
    in_flight: InFlight,
    /// Queues an operator paused, as last read from PostgreSQL.
    paused: std::sync::RwLock<std::collections::HashSet<String>>,
    limits: limits::TenantLimits,
    claims: batches::Claims,
    outcomes: batches::Outcomes,
}

impl Worker {
    /// A worker of the queues `config.worker.queues` names (every queue
    /// when none); the registry has checked they exist.
    pub fn new(services: Services, config: &Config) -> Self {
        let queues = services.registry.consumed_queues(&config.worker.queues);
        let concurrency = config.worker.concurrency.get();
        let claims = batches::claims(services.store.clone(), config.worker.lease(), concurrency);
        let outcomes =
            batches::outcomes(services.store.clone(), services.cache.clone(), concurrency);
        Self(Arc::new(WorkerState {
            services,
            config: config.worker.clone(),
            retention: config.retention.clone(),
            queues,
            redis_timeout: config.redis.timeout(),
            consuming: Arc::new(AtomicBool::new(false)),
            database_up: Arc::new(AtomicBool::new(true)),
            in_flight: InFlight::default(),
            paused: Default::default(),
            limits: limits::TenantLimits::default(),
            claims,
            outcomes,
        }))
    }

    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Serves the probe port and runs every loop until `shutdown`, then lets
    /// in-flight tasks finish within the grace period.
    pub async fn run(self, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(queues = ?self.queues, concurrency = self.config.concurrency.get(), "worker started");
        let mut loops = JoinSet::new();
        let ops = Ops::for_worker(self.services.clone(), self.consuming.clone());
        let stop = shutdown.clone();
        loops.spawn(async move {
            let limits = crate::server::Limits::OPERATIONS;
            if let Err(err) = crate::server::serve(listener, ops.router(), stop, limits).await {
                tracing::error!(error = %err, "worker probe server failed");
            }
        });
        // Know the paused queues and the tenants' limits before taking anything.
        self.load_pauses().await;
        self.load_limits().await;
        loops.spawn(self.clone().promote_loop(shutdown.clone()));
        loops.spawn(reconciler::run(self.clone(), shutdown.clone()));
        loops.spawn(retention::run(self.clone(), shutdown.clone()));
        loops.spawn(self.clone().refresh_limits(shutdown.clone()));
        loops.spawn(self.clone().follow_pauses(shutdown.clone()));
        loops.spawn(self.clone().follow_cancellations(shutdown.clone()));
        // Leases are renewed until the last attempt is finished or handed back.
        let drained = Shutdown::new();
        let heartbeat = tokio::spawn(heartbeat::run(self.clone(), drained.clone()));
        let consumed = self.consume_loop(shutdown.clone()).await;
        shutdown.trigger();
        drained.trigger();
        let _ = heartbeat.await;
        while loops.join_next().await.is_some() {}
        tracing::info!("worker stopped");
        consumed
    }

    async fn consume_loop(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut consumer = Consumer::new(
            &self.services.redis,
            &self.services.keys,
            &self.queues,
            self.redis_timeout,
            POP_BLOCK,
        )?;
        let permits = Arc::new(Semaphore::new(self.config.concurrency.get()));
        let max_pop = self.config.concurrency.get().div_ceil(PIPELINED_POPS);
        // Quick tasks give their slot back once popped: they run one after
        // another inside their transaction, so what bounds them is how many
        // are popped and not yet written.
        let quick_permits = Arc::new(Semaphore::new(batches::QUICK_IN_FLIGHT.max(max_pop)));
        let quick_runs = batches::quick_runs(self.clone());
        let mut in_flight = JoinSet::new();
        let mut backoff = Backoff::new();
        while !shutdown.is_triggered() {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit?,
                () = shutdown.wait() => break,
            };
            // Reap finished tasks so the set does not grow.
            while in_flight.try_join_next().is_some() {}
            if !self.database_up.load(Ordering::Relaxed) {
                drop(permit);
                self.wait_for_database(&shutdown).await;
                continue;
            }
            // Take as many messages as there are free slots, in one call,
            // up to a pipelined pop's share.
            let mut slots = vec![permit];
            while slots.len() < max_pop
                && let Ok(permit) = permits.clone().try_acquire_owned()
            {
                slots.push(permit);
            }
            // Connected and about to pop: this worker is taking tasks.
            let popped = match consumer.connect().await {
                Ok(()) => {
                    self.consuming.store(true, Ordering::Relaxed);
                    consumer
                        .next_batch(slots.len(), &self.limits.skipped(), &self.paused_queues())
                        .await
                }
                Err(err) => Err(err),
            };
            match popped {
                Ok(popped) => {
                    backoff.reset();
                    let mut quick = Vec::new();
                    for item in popped {
                        match item {
                            Popped::Message { queue, message } => {
                                if !self.admit(&queue, &message).await {
                                    continue;
                                }
                                let Some(slot) = slots.pop() else { break };
                                if self.is_quick(&message) {
                                    quick.push((queue, message));
                                    drop(slot);
                                    continue;
                                }
                                let worker = self.clone();
                                in_flight.spawn(async move {
                                    let id = message.task_id;
                                    worker.execute(queue, message).await;
                                    worker.release(&[id]).await;
                                    drop(slot);
                                });
                            }
                            Popped::Garbage { queue, raw } => {
                                tracing::warn!(queue, raw, "dropped an undecodable queue message");
                            }
                        }
                    }
                    if !quick.is_empty() {
                        // Waits while the quick transactions are behind:
                        // the queue keeps what this worker cannot write yet.
                        let held = quick_permits
                            .clone()
                            .acquire_many_owned(quick.len() as u32)
                            .await?;
                        let (worker, quick_runs) = (self.clone(), quick_runs.clone());
                        in_flight.spawn(async move {
                            let ids: Vec<_> = quick.iter().map(|(_, m)| m.task_id).collect();
                            quick_runs.submit_all(quick).await;
                            worker.release(&ids).await;
                            drop(held);
                        });
                    }
                }
                Err(err) => {
                    self.consuming.store(false, Ordering::Relaxed);
                    let wait = backoff.next();
                    tracing::warn!(error = %error_chain(&err), retry_in_ms = wait.as_millis() as u64, "cannot read the queue");
                    if !shutdown.sleep(wait).await {
                        break;
                    }
                }
            }
        }
        self.consuming.store(false, Ordering::Relaxed);
        self.drain(in_flight).await;
        Ok(())
    }

    /// Pauses taking tasks while PostgreSQL is unreachable, probing it with
    /// growing waits, so messages stay queued instead of being popped and lost.
    async fn wait_for_database(&self, shutdown: &Shutdown) {
        self.consuming.store(false, Ordering::Relaxed);
        let mut backoff = Backoff::new();
        while !shutdown.is_triggered() {
            match self.services.store.ping().await {
                Ok(()) => {
                    tracing::info!("database reachable again; taking tasks");
                    self.database_up.store(true, Ordering::Relaxed);
                    return;
                }
                Err(err) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %error_chain(&err), retry_in_ms = wait.as_millis() as u64, "database unreachable; worker paused");
                    if !shutdown.sleep(wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// Lets in-flight tasks finish within the grace period, then hands the
    /// rest back so another worker takes them at once.
    async fn drain(&self, mut in_flight: JoinSet<()>) {
        let count = in_flight.len();
        if count == 0 {
            return;
        }
        tracing::info!(in_flight = count, "waiting for in-flight tasks");
        let grace = self.config.shutdown_grace();
        let drained = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() {
            return;
        }
        let held = self.in_flight.leases();
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
        self.hand_back(held).await;
    }

    async fn hand_back(&self, leases: Vec<crate::store::Lease>) {
        let returned = match self.services.store.hand_back(&leases).await {
            Ok(returned) => returned,
            Err(err) => {
                tracing::error!(count = leases.len(), error = %error_chain(&err), "cannot hand tasks back; lease recovery will");
                return;
            }
        };
        let messages: Vec<Message> = returned.iter().map(Message::from).collect();
        let queues = returned.iter().map(|r| r.queue.as_str());
        if let Err(err) = self
            .services
            .queue
            .dispatch_many(queues.zip(&messages))
            .await
        {
            tracing::warn!(error = %error_chain(&err), "cannot dispatch handed-back tasks; the reconciler will");
        }
        metrics::counter!(m::TASKS_RECOVERED, "reason" => "handed_back")
            .increment(returned.len() as u64);
        tracing::warn!(
            count = returned.len(),
            "grace period over; unfinished tasks handed back"
        );
    }

    /// Whether `message`'s task runs on the quick path (`Task::QUICK`).
    fn is_quick(&self, message: &Message) -> bool {
        message
            .task_name
            .as_deref()
            .and_then(|name| self.services.registry.get(name))
            .is_some_and(|task| task.is_quick())
    }

    async fn promote_loop(self, shutdown: Shutdown) {
        shutdown
            .every(PROMOTE_INTERVAL, || async {
                for queue in &self.queues {
                    if let Err(err) = self.services.queue.promote_due(queue, PROMOTE_BATCH).await {
                        tracing::debug!(queue, error = %error_chain(&err), "cannot promote due retries");
                    }
                }
            })
            .await;
    }
}

/// Doubling waits between failed attempts to reach a dependency.
pub(crate) struct Backoff {
    current: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Self {
        Self {
            current: Self::FIRST,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.current;
        self.current = (self.current * 2).min(Self::MAX);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.current = Self::FIRST;
    }
}
