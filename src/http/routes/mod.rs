//! Route table.

mod docs;
mod ops;
pub(super) mod tasks;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiError;

pub(super) use ops::{__path_health, __path_metrics_text, __path_openapi_json, __path_ready};
pub(super) use tasks::{__path_create_task, __path_get_task, __path_get_task_output};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/run-task", post(tasks::create_task))
        .route("/get-task-output", get(tasks::get_task_output))
        .route("/tasks/{task_uuid}", get(tasks::get_task))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics_text))
        .route("/openapi.json", get(ops::openapi_json))
        .route("/docs", get(docs::docs))
        .route(docs::SCRIPT_ROUTE, get(docs::scalar_js))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
