//! Prometheus metrics: one recorder per process, rendered at `/metrics`.

use std::sync::OnceLock;

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
/// Rows written by one group-commit statement (`statement`: insert, claim, outcome).
pub const GROUP_COMMIT_ROWS: &str = "tasker_group_commit_rows";

/// Tasks ready to run, per queue: the autoscaling signal.
pub const QUEUE_DEPTH: &str = "tasker_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "tasker_queue_oldest_age_seconds";
pub const DB_POOL: &str = "tasker_db_pool_connections";
pub const REDIS_POOL: &str = "tasker_redis_pool_connections";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

const ROW_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

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
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
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
