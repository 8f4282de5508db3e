//! Prometheus metrics: one recorder per process, rendered at `/metrics`.
//! Every family is described (`# HELP`), and every series whose labels are
//! known in advance exists from start-up at zero, so dashboards and alerts
//! see a value before the first event. Label values are bounded: task
//! names and queues come from the registry, methods and routes from a
//! fixed set (see `http::middleware`).

use std::sync::{Mutex, OnceLock, PoisonError};

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const TASKS_SUBMITTED: &str = "tasker_tasks_submitted_total";
pub const TASKS_COMPLETED: &str = "tasker_tasks_completed_total";
pub const TASK_DURATION: &str = "tasker_task_duration_seconds";
pub const TASK_QUEUE_WAIT: &str = "tasker_task_queue_wait_seconds";
pub const TASK_RETRIES: &str = "tasker_task_retries_total";
/// Results discarded because their attempt had lost its lease (fencing).
pub const STALE_RESULTS: &str = "tasker_task_stale_results_total";
pub const TASKS_RECOVERED: &str = "tasker_tasks_recovered_total";
pub const CACHE_REQUESTS: &str = "tasker_cache_requests_total";
pub const HTTP_REQUESTS: &str = "tasker_http_requests_total";
pub const HTTP_DURATION: &str = "tasker_http_request_duration_seconds";
pub const HTTP_CONNECTIONS: &str = "tasker_http_connections";
pub const HTTP_CONNECTIONS_REFUSED: &str = "tasker_http_connections_refused_total";
pub const LONGPOLL_WAITERS: &str = "tasker_longpoll_waiters";
pub const LONGPOLL_REFUSED: &str = "tasker_longpoll_refused_total";
/// Rows written by one group-commit statement (`statement`: insert, claim, outcome).
pub const GROUP_COMMIT_ROWS: &str = "tasker_group_commit_rows";

/// Tasks ready to run, per queue: the autoscaling signal.
pub const QUEUE_DEPTH: &str = "tasker_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "tasker_queue_oldest_age_seconds";
pub const QUEUE_PAUSED: &str = "tasker_queue_paused";
pub const DB_POOL: &str = "tasker_db_pool_connections";
pub const REDIS_POOL: &str = "tasker_redis_pool_connections";

/// Terminal statuses, the `status` of [`TASKS_COMPLETED`].
pub const TERMINAL_STATUSES: [&str; 3] = ["completed", "failed", "cancelled"];
/// `reason` of [`TASKS_RECOVERED`].
pub const RECOVERY_REASONS: [&str; 3] = ["lease_expired", "dispatch_lost", "handed_back"];
/// `result` of [`CACHE_REQUESTS`].
pub const CACHE_RESULTS: [&str; 3] = ["hit", "miss", "bypass"];
/// `statement` of [`GROUP_COMMIT_ROWS`].
pub const GROUP_COMMIT_STATEMENTS: [&str; 4] = ["insert", "claim", "outcome", "quick"];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

const ROW_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The metrics task types added, each once.
static TASK_METRICS: Mutex<Added> = Mutex::new(Added {
    installed: false,
    tasks: Vec::new(),
});

struct Added {
    /// The recorder is installed: metrics added now are described at once.
    installed: bool,
    tasks: Vec<TaskMetrics>,
}

/// The families a task type owns (such as `query_llm`'s budget), which
/// telemetry describes and creates at zero with its own without knowing
/// the type: the type adds them with [`add_task_metrics`] when it is built.
#[derive(Debug, Clone, Copy)]
pub struct TaskMetrics {
    /// The task type, so a type built again adds nothing.
    pub task: &'static str,
    /// Describes its families (`# HELP`).
    pub describe: fn(),
    /// Creates at zero its series whose labels are known.
    pub register: fn(),
}

/// Adds a task type's metrics: described once the recorder is installed
/// (at once if it is), created at zero by every [`register_known_series`].
pub fn add_task_metrics(metrics: TaskMetrics) {
    let mut added = TASK_METRICS.lock().unwrap_or_else(PoisonError::into_inner);
    if added.tasks.iter().any(|known| known.task == metrics.task) {
        return;
    }
    added.tasks.push(metrics);
    if added.installed {
        (metrics.describe)();
    }
}

/// Describes the task types' families added so far, and has those added
/// from now on described at once.
fn describe_task_metrics() {
    let mut added = TASK_METRICS.lock().unwrap_or_else(PoisonError::into_inner);
    added.installed = true;
    for task in &added.tasks {
        (task.describe)();
    }
}

fn task_metrics() -> Vec<TaskMetrics> {
    let added = TASK_METRICS.lock().unwrap_or_else(PoisonError::into_inner);
    added.tasks.clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the recorder on first call and returns the handle that renders
/// it; `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_ROWS.into()), ROW_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            describe_task_metrics();
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// `# HELP` of every family.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(TASKS_SUBMITTED, Unit::Count, "Tasks accepted by the API.");
    describe_counter!(
        TASKS_COMPLETED,
        Unit::Count,
        "Tasks that reached a terminal status."
    );
    describe_histogram!(TASK_DURATION, Unit::Seconds, "Run time of one attempt.");
    describe_histogram!(
        TASK_QUEUE_WAIT,
        Unit::Seconds,
        "Time from submission to the first claim."
    );
    describe_counter!(
        TASK_RETRIES,
        Unit::Count,
        "Attempts that failed with a retryable error and were rescheduled."
    );
    describe_counter!(
        STALE_RESULTS,
        Unit::Count,
        "Results discarded because their attempt had lost its lease."
    );
    describe_counter!(
        TASKS_RECOVERED,
        Unit::Count,
        "Tasks recovered after a lost worker, a lost queue message, or handed back at shutdown."
    );
    describe_counter!(
        CACHE_REQUESTS,
        Unit::Count,
        "Result-cache lookups by result."
    );
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests by method, route and status."
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency.");
    describe_gauge!(HTTP_CONNECTIONS, Unit::Count, "HTTP connections open now.");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        Unit::Count,
        "Connections answered 503 and closed because the port was at its connection limit."
    );
    describe_gauge!(
        LONGPOLL_WAITERS,
        Unit::Count,
        "Reads waiting for their task to finish."
    );
    describe_counter!(
        LONGPOLL_REFUSED,
        Unit::Count,
        "Reads with wait= answered at once because api.max_waiters were already waiting."
    );
    describe_histogram!(
        GROUP_COMMIT_ROWS,
        Unit::Count,
        "Rows written by one group-commit statement."
    );
    describe_gauge!(QUEUE_DEPTH, Unit::Count, "Tasks ready to run, per queue.");
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest ready task, per queue (0 when empty)."
    );
    describe_gauge!(
        QUEUE_PAUSED,
        Unit::Count,
        "1 while an operator has the queue paused (workers take none of its tasks), else 0."
    );
    describe_gauge!(
        DB_POOL,
        Unit::Count,
        "PostgreSQL connections of this process by state."
    );
    describe_gauge!(
        REDIS_POOL,
        Unit::Count,
        "Redis connections of this process by state."
    );
}

/// Creates at zero every series whose labels are known: per task type,
/// per queue, per reason and result, and those task types added (see
/// [`add_task_metrics`]).
pub fn register_known_series<'a>(
    task_names: impl IntoIterator<Item = &'a str>,
    queues: impl IntoIterator<Item = &'a str>,
) {
    for name in task_names {
        let name = name.to_owned();
        metrics::counter!(TASKS_SUBMITTED, "task_name" => name.clone()).absolute(0);
        metrics::counter!(TASK_RETRIES, "task_name" => name.clone()).absolute(0);
        for status in TERMINAL_STATUSES {
            metrics::counter!(TASKS_COMPLETED, "task_name" => name.clone(), "status" => status)
                .absolute(0);
        }
        let _ = metrics::histogram!(TASK_DURATION, "task_name" => name.clone());
        let _ = metrics::histogram!(TASK_QUEUE_WAIT, "task_name" => name);
    }
    for queue in queues {
        metrics::gauge!(QUEUE_DEPTH, "queue" => queue.to_owned()).set(0.0);
        metrics::gauge!(QUEUE_OLDEST_AGE, "queue" => queue.to_owned()).set(0.0);
        metrics::gauge!(QUEUE_PAUSED, "queue" => queue.to_owned()).set(0.0);
    }
    for reason in RECOVERY_REASONS {
        metrics::counter!(TASKS_RECOVERED, "reason" => reason).absolute(0);
    }
    for result in CACHE_RESULTS {
        metrics::counter!(CACHE_REQUESTS, "result" => result).absolute(0);
    }
    for statement in GROUP_COMMIT_STATEMENTS {
        let _ = metrics::histogram!(GROUP_COMMIT_ROWS, "statement" => statement);
    }
    for task in task_metrics() {
        (task.register)();
    }
    metrics::counter!(STALE_RESULTS).absolute(0);
    metrics::counter!(HTTP_CONNECTIONS_REFUSED).absolute(0);
    metrics::counter!(LONGPOLL_REFUSED).absolute(0);
    metrics::gauge!(HTTP_CONNECTIONS).increment(0.0);
    metrics::gauge!(LONGPOLL_WAITERS).increment(0.0);
}

/// Creates at zero the count and latency of each route's success answer
/// (`method`, `route` template, `status`), so the HTTP families exist
/// before the first request. Counts already made are kept.
pub fn register_http_series<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str, u16)>) {
    for (method, route, status) in routes {
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        metrics::counter!(HTTP_REQUESTS, &labels).increment(0);
        let _ = metrics::histogram!(HTTP_DURATION, &labels);
    }
}

/// The recorder keeps every histogram sample until upkeep (or a scrape)
/// folds it into the buckets: without it, memory grows with every request
/// for as long as nobody scrapes `/metrics`. A plain thread, so it runs
/// whatever runtime (if any) installed the recorder.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the metrics upkeep thread; histograms grow until scraped");
    }
}

/// Sets the gauges of a connection pool: connections in use, idle, and the maximum.
pub fn record_pool(name: &'static str, open: usize, idle: usize, max: usize) {
    metrics::gauge!(name, "state" => "in_use").set(open.saturating_sub(idle) as f64);
    metrics::gauge!(name, "state" => "idle").set(idle as f64);
    metrics::gauge!(name, "state" => "max").set(max as f64);
}

/// The text exposition of every metric.
pub fn render(handle: Option<&PrometheusHandle>) -> String {
    handle.map(PrometheusHandle::render).unwrap_or_default()
}
