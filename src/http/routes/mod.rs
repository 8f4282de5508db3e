//! Route table.

mod docs;
mod ops;
mod read;
mod submit;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiError;

pub(super) use ops::{__path_health, __path_metrics_text, __path_openapi_json, __path_ready};
pub(super) use read::{__path_get_task, __path_get_task_output, __path_list_tasks};
pub(super) use submit::{__path_create_task, __path_create_tasks};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/run-task", post(submit::create_task))
        .route("/run-tasks", post(submit::create_tasks))
        .route("/get-task-output", get(read::get_task_output))
        .route("/tasks", get(read::list_tasks))
        .route("/tasks/{task_uuid}", get(read::get_task))
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
