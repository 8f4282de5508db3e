//! Operations endpoints, one module for the API and the worker:
//! `/health` (liveness), `/ready` (readiness: PostgreSQL and Redis
//! reachable, and for a worker its queue consumer running) and `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::error_body::{ErrorCode, ErrorResponse};
use crate::redis_pool::RedisError;
use crate::services::Services;
use crate::store;
use crate::telemetry::error_chain;
use crate::telemetry::metrics;

/// State of one dependency: `ok`, or why it is unavailable. The answer
/// names a stable reason only; the driver's own message (addresses, roles,
/// databases) goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DependencyState {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Why it is unavailable: `timeout` (no answer in time), `unreachable`
    /// (no connection could be made) or `error` (it answered with an
    /// error); absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl DependencyState {
    const OK: Self = Self {
        status: "ok",
        reason: None,
    };

    fn unavailable(reason: &'static str) -> Self {
        Self {
            status: "unavailable",
            reason: Some(reason),
        }
    }

    fn of_postgres(result: &Result<(), store::Error>) -> Self {
        match result {
            Ok(()) => Self::OK,
            Err(store::Error::TimedOut(_)) => Self::unavailable("timeout"),
            Err(err) if err.is_unavailable() => Self::unavailable("unreachable"),
            Err(_) => Self::unavailable("error"),
        }
    }

    fn of_redis(result: &Result<(), RedisError>) -> Self {
        match result {
            Ok(()) => Self::OK,
            Err(RedisError::TimedOut(_)) => Self::unavailable("timeout"),
            Err(RedisError::Pool(_)) => Self::unavailable("unreachable"),
            // A cluster or a dedicated connection reports a failed connect
            // as the command's error.
            Err(RedisError::Command(err))
                if err.is_connection_refusal() || err.is_connection_dropped() =>
            {
                Self::unavailable("unreachable")
            }
            Err(_) => Self::unavailable("error"),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.reason.is_none()
    }
}

/// Both dependencies, checked at once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub postgres: DependencyState,
    pub redis: DependencyState,
}

impl Readiness {
    /// Checks both at once; the cause of a failure is logged (once per
    /// change, not on every probe), never answered.
    pub async fn check(services: &Services) -> Self {
        let (postgres, redis) = tokio::join!(services.store.ping(), services.queue.ping());
        let readiness = Self {
            postgres: DependencyState::of_postgres(&postgres),
            redis: DependencyState::of_redis(&redis),
        };
        let causes = [
            ("postgres", postgres.err().map(|e| error_chain(&e))),
            ("redis", redis.err().map(|e| error_chain(&e))),
        ];
        for (dependency, cause) in causes {
            log_change(dependency, cause);
        }
        readiness
    }

    pub fn is_ready(&self) -> bool {
        self.postgres.is_ok() && self.redis.is_ok()
    }

    /// Names of the dependencies that are down, for messages.
    pub fn down(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if !self.postgres.is_ok() {
            down.push("postgres");
        }
        if !self.redis.is_ok() {
            down.push("redis");
        }
        down
    }
}

/// Logs a dependency's failure when its cause changes, and its recovery.
fn log_change(dependency: &'static str, cause: Option<String>) {
    static LAST: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = last.iter().position(|(d, _)| *d == dependency);
    match (cause, seen) {
        (Some(cause), Some(i)) if last[i].1 == cause => {}
        (Some(cause), _) => {
            tracing::warn!(dependency, error = %cause, "readiness check failed");
            last.retain(|(d, _)| *d != dependency);
            last.push((dependency, cause));
        }
        (None, Some(i)) => {
            tracing::info!(dependency, "readiness check passes again");
            last.remove(i);
        }
        (None, None) => {}
    }
}

// `HealthStatus` in the document: generators name the answer of operation
// `health` `HealthResponse` themselves, and a schema of that name collides.
/// Liveness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = HealthStatus)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

// `ReadyStatus` in the document, for the same reason as `HealthStatus`.
/// Readiness answer when every check passes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReadyStatus)]
pub struct ReadyResponse {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Readiness,
    /// For a worker: its queue consumer is taking tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consuming: Option<bool>,
}

/// What the operations endpoints of one process look at; cheap to clone.
#[derive(Clone)]
pub struct Ops(Arc<Inner>);

struct Inner {
    services: Services,
    metrics: Option<PrometheusHandle>,
    /// A worker's "taking tasks" flag: part of its readiness.
    consuming: Option<Arc<AtomicBool>>,
}

impl Ops {
    /// Operations of a process that serves requests.
    pub fn new(services: Services) -> Self {
        Self::with(services, None)
    }

    /// Operations of a worker: not ready while `consuming` is false.
    pub fn for_worker(services: Services, consuming: Arc<AtomicBool>) -> Self {
        Self::with(services, Some(consuming))
    }

    fn with(services: Services, consuming: Option<Arc<AtomicBool>>) -> Self {
        let handle = metrics::install();
        let registry = &services.registry;
        let names: Vec<&str> = registry.iter().map(|task| task.name()).collect();
        let queues = registry.queues();
        metrics::register_known_series(names, queues.iter().map(String::as_str));
        Self(Arc::new(Inner {
            services,
            metrics: handle,
            consuming,
        }))
    }

    /// `/health`, `/ready` and `/metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/metrics", get(metrics_text))
            .with_state(self.clone())
    }

    /// `/health` and `/ready` only, for a port that must not expose metrics.
    pub fn probes(&self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(self.clone())
    }

    /// Refreshes the gauges read at scrape time: pool usage, and the depth
    /// and oldest age of every queue. Queue figures come from Redis, shared
    /// by every replica, so `max` over replicas is the true value and the
    /// cost does not grow with the number of tasks.
    async fn record_gauges(&self) {
        let services = &self.0.services;
        let (open, idle, max) = services.store.pool_stats();
        metrics::record_pool(metrics::DB_POOL, open, idle, max);
        let (open, idle, max) = services.redis.pool_status();
        metrics::record_pool(metrics::REDIS_POOL, open, idle, max);
        let queues: Vec<String> = services.registry.queues().into_iter().collect();
        match services.queue.depths(&queues).await {
            Ok(depths) => {
                for depth in depths {
                    ::metrics::gauge!(metrics::QUEUE_DEPTH, "queue" => depth.queue.clone())
                        .set(depth.ready as f64);
                    ::metrics::gauge!(metrics::QUEUE_OLDEST_AGE, "queue" => depth.queue)
                        .set(depth.oldest_age_seconds);
                }
            }
            Err(err) => tracing::debug!(error = %error_chain(&err), "cannot read queue depths"),
        }
        match services.store.paused_queues().await {
            Ok(paused) => {
                for queue in &queues {
                    let is_paused = paused.iter().any(|p| &p.queue == queue);
                    ::metrics::gauge!(metrics::QUEUE_PAUSED, "queue" => queue.clone())
                        .set(if is_paused { 1.0 } else { 0.0 });
                }
            }
            Err(err) => tracing::debug!(error = %error_chain(&err), "cannot read paused queues"),
        }
    }
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: PostgreSQL and Redis are reachable.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyResponse),
        (status = 503, description = "A dependency is down; `details.checks` says which", body = ErrorResponse,
            example = json!({"error": {"code": "not_ready", "message": "not ready: redis unavailable", "details": {"checks": {"postgres": {"status": "ok"}, "redis": {"status": "unavailable", "reason": "unreachable"}}}}})),
    ))]
pub async fn ready(State(ops): State<Ops>) -> Response {
    let checks = Readiness::check(&ops.0.services).await;
    let consuming = ops.0.consuming.as_ref().map(|c| c.load(Ordering::Relaxed));
    if checks.is_ready() && consuming != Some(false) {
        let body = ReadyResponse {
            status: "ready",
            checks,
            consuming,
        };
        return Json(body).into_response();
    }
    let mut down = checks.down();
    if consuming == Some(false) {
        down.push("queue consumer");
    }
    let mut details = serde_json::json!({ "checks": checks });
    if let Some(consuming) = consuming {
        details["consuming"] = consuming.into();
    }
    let message = format!("not ready: {} unavailable", down.join(", "));
    ErrorResponse::new(ErrorCode::NotReady, message, details)
        .into_response_with(StatusCode::SERVICE_UNAVAILABLE)
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics_text(State(ops): State<Ops>) -> Response {
    ops.record_gauges().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(ops.0.metrics.as_ref()),
    )
        .into_response()
}
