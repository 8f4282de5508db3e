//! The worker's own small HTTP port: `/health`, `/ready`, `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;

use super::Worker;
use crate::health::Readiness;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics;

#[derive(Clone)]
struct ProbeState {
    worker: Worker,
    metrics: Option<PrometheusHandle>,
}

/// The probe routes, for serving and for tests.
pub fn router(worker: Worker) -> Router {
    let state = ProbeState {
        worker,
        metrics: metrics::install(),
    };
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

pub(super) async fn serve(listener: TcpListener, worker: Worker, shutdown: Shutdown) {
    let app = router(worker);
    let stop = shutdown.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.wait().await })
        .await;
    if let Err(err) = served {
        tracing::error!(error = %err, "worker probe server failed");
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<ProbeState>) -> Response {
    let services = &state.worker.services;
    let readiness = Readiness::check(&services.store, &services.queue).await;
    let consuming = state.worker.is_consuming();
    if readiness.is_ready() && consuming {
        return Json(json!({"status": "ready", "checks": readiness, "consuming": true}))
            .into_response();
    }
    let mut down: Vec<&str> = readiness.down();
    if !consuming {
        down.push("queue consumer");
    }
    let body = json!({"error": {
        "code": "not_ready",
        "message": format!("not ready: {} unavailable", down.join(", ")),
        "details": {"checks": readiness, "consuming": consuming},
    }});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn render_metrics(State(state): State<ProbeState>) -> Response {
    state.worker.services.record_gauges().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(state.metrics.as_ref()),
    )
        .into_response()
}
