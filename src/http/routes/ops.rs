//! Endpoints for operators: probes, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::health::Readiness;
use crate::http::AppState;
use crate::http::error::ErrorResponse;
use crate::http::schemas::{HealthResponse, ReadyResponse};
use crate::telemetry::metrics;

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub(crate) async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: PostgreSQL and Redis are reachable.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyResponse),
        (status = 503, description = "A dependency is down; `details.checks` says which", body = ErrorResponse),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let services = &state.services;
    let checks = Readiness::check(&services.store, &services.queue).await;
    if checks.is_ready() {
        return Json(ReadyResponse {
            status: "ready",
            checks,
        })
        .into_response();
    }
    let message = format!("not ready: {} unavailable", checks.down().join(" and "));
    let body = serde_json::json!({"error": {
        "code": "not_ready",
        "message": message,
        "details": {"checks": checks},
    }});
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    state.services.record_gauges().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(state.metrics.as_ref()),
    )
        .into_response()
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_owned(),
    )
        .into_response()
}
