//! Operator control over HTTP: cancel and retry a task or every match of a
//! filter, list queues, pause and resume them. HTTP in, a
//! [`Control`](crate::services::Control) call, HTTP out.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::needs;
use crate::domain::{TaskRecord, TaskStatus};
use crate::http::AppState;
use crate::http::auth::CallerOf;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{JsonBody, PathParam, TaskUuidPath};
use crate::services::QueueState;
use crate::store::TaskMatch;

/// Which tasks a bulk action acts on: the listing's filters. At least one
/// filter, or `"all": true`, so an empty body cannot act on everything by
/// accident.
// The document shows it as `CancelFilter` and `RetryFilter`, with the
// statuses of each action, `minProperties: 1` and `all` the constant `true`
// (see `openapi::bulk_filters`). A field given as `null` is refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFilter {
    /// Only tasks in this status (one the action applies to).
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present")]
    status: Option<TaskStatus>,
    /// Only tasks of this type.
    #[schema(nullable = false, pattern = "^[^\\u0000]*$")]
    #[serde(default, deserialize_with = "present")]
    task_name: Option<String>,
    /// Only tasks of this queue.
    #[schema(nullable = false, pattern = "^[^\\u0000]*$")]
    #[serde(default, deserialize_with = "present")]
    queue: Option<String>,
    /// Only this tenant's tasks.
    #[schema(nullable = false, pattern = "^[a-z0-9][a-z0-9_-]{0,99}$")]
    #[serde(default, deserialize_with = "present")]
    tenant: Option<String>,
    /// `true`: act on every task the action applies to, with no other filter.
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present")]
    all: Option<bool>,
}

/// A field that, when given, is not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl BulkFilter {
    fn into_match(self) -> Result<TaskMatch, ApiError> {
        for (field, value) in [("task_name", &self.task_name), ("queue", &self.queue)] {
            if value.as_deref().is_some_and(|text| text.contains('\0')) {
                return Err(ApiError::validation(field, "must not contain U+0000"));
            }
        }
        if self
            .tenant
            .as_deref()
            .is_some_and(|tenant| !crate::domain::is_valid_tenant(tenant))
        {
            return Err(ApiError::validation(
                "tenant",
                "must be 1 to 100 of a-z, 0-9, _ and -, starting with a letter or digit",
            ));
        }
        if self.all == Some(false) {
            return Err(ApiError::validation(
                "all",
                "must be true when given (leave it out to act on the filters' matches)",
            ));
        }
        let filtered = self.status.is_some()
            || self.task_name.is_some()
            || self.queue.is_some()
            || self.tenant.is_some();
        if !filtered && self.all.is_none() {
            return Err(ApiError::validation(
                "all",
                "give a filter (status, task_name, queue, tenant), or \"all\": true to act on every task",
            ));
        }
        Ok(TaskMatch {
            tenant: self.tenant,
            statuses: self.status.into_iter().collect(),
            task_name: self.task_name,
            queue: self.queue,
        })
    }
}

/// How many tasks a bulk cancel cancelled.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CancelledCount {
    #[schema(example = 42)]
    cancelled: u64,
}

/// How many tasks a bulk retry put back to `pending`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RetriedCount {
    #[schema(example = 42)]
    retried: u64,
}

/// A queue and its figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Queue)]
pub(crate) struct QueueView {
    #[schema(example = "default")]
    name: String,
    /// Tasks ready to run, waiting for a worker (`null` when Redis cannot
    /// be read).
    #[schema(required = true)]
    depth: Option<u64>,
    /// How long the oldest ready task has waited, in seconds (0 when none
    /// waits; `null` when Redis cannot be read).
    #[schema(required = true)]
    oldest_age_seconds: Option<f64>,
    /// Tasks running now.
    running: i64,
    /// Workers take none of its tasks while paused.
    paused: bool,
    /// When it was paused; null while it runs.
    #[schema(required = true)]
    paused_at: Option<DateTime<Utc>>,
}

impl From<QueueState> for QueueView {
    fn from(state: QueueState) -> Self {
        Self {
            name: state.name,
            depth: state.depth,
            oldest_age_seconds: state.oldest_age_seconds,
            running: state.running,
            paused: state.paused,
            paused_at: state.paused_at,
        }
    }
}

/// Every queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = QueueList)]
pub(crate) struct QueueListResponse {
    queues: Vec<QueueView>,
}

/// Cancel a task.
///
/// A `pending` task never starts; a `running` one is stopped within a
/// moment (its worker drops the attempt, and whatever it writes later is
/// discarded). Cancelling a cancelled task answers it again. Needs `submit`
/// on the task's tenant.
#[utoipa::path(post, path = "/tasks/{task_uuid}/cancel", tag = "tasks",
    params(("task_uuid" = Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task, now `cancelled`", body = TaskRecord),
        (status = 404, description = "No task has this id", body = ErrorResponse),
        (status = 409, description = "The task has finished already", body = ErrorResponse,
            example = json!({"error": {"code": "status_conflict", "message": "the task is completed; only pending or running tasks can be cancelled", "details": {"status": "completed"}}})),
        (status = 422, description = "Malformed task_uuid", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<TaskUuidPath, ApiError>,
) -> Result<Json<TaskRecord>, ApiError> {
    let caller = caller.require(needs::cancel_task)?;
    let TaskUuidPath(id) = path?;
    Ok(Json(state.control.cancel(id, caller).await?))
}

/// Retry a failed or cancelled task.
///
/// It goes back to `pending` with a fresh attempt budget; `attempts` keeps
/// counting, and the last error stays visible until the new attempt ends.
/// Needs `submit` on the task's tenant.
#[utoipa::path(post, path = "/tasks/{task_uuid}/retry", tag = "tasks",
    params(("task_uuid" = Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task, now `pending`", body = TaskRecord),
        (status = 404, description = "No task has this id", body = ErrorResponse),
        (status = 409, description = "The task is not failed or cancelled", body = ErrorResponse,
            example = json!({"error": {"code": "status_conflict", "message": "the task is running; only failed or cancelled tasks can be retried", "details": {"status": "running"}}})),
        (status = 422, description = "Malformed task_uuid", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn retry_task(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<TaskUuidPath, ApiError>,
) -> Result<Json<TaskRecord>, ApiError> {
    let caller = caller.require(needs::retry_task)?;
    let TaskUuidPath(id) = path?;
    Ok(Json(state.control.retry(id, caller).await?))
}

/// Cancel every matching task (admin).
///
/// Pending and running tasks matching the filters are cancelled, in
/// batches, on the server.
#[utoipa::path(post, path = "/tasks/cancel", tag = "tasks",
    request_body = BulkFilter,
    responses(
        (status = 200, description = "How many were cancelled", body = CancelledCount),
        (status = 422, description = "No filter (and no `all`), or a status cancel does not apply to", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn cancel_tasks(
    State(state): State<AppState>,
    caller: CallerOf,
    JsonBody(body): JsonBody,
) -> Result<Json<CancelledCount>, ApiError> {
    let caller = caller.require(needs::cancel_tasks)?;
    let filter = bulk_filter(body)?;
    let cancelled = state.control.cancel_matching(filter, caller).await?;
    Ok(Json(CancelledCount { cancelled }))
}

/// Retry every matching task (admin).
///
/// Failed and cancelled tasks matching the filters go back to `pending`, in
/// batches, on the server.
#[utoipa::path(post, path = "/tasks/retry", tag = "tasks",
    request_body = BulkFilter,
    responses(
        (status = 200, description = "How many were retried", body = RetriedCount),
        (status = 422, description = "No filter (and no `all`), or a status retry does not apply to", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn retry_tasks(
    State(state): State<AppState>,
    caller: CallerOf,
    JsonBody(body): JsonBody,
) -> Result<Json<RetriedCount>, ApiError> {
    let caller = caller.require(needs::retry_tasks)?;
    let filter = bulk_filter(body)?;
    let retried = state.control.retry_matching(filter, caller).await?;
    Ok(Json(RetriedCount { retried }))
}

fn bulk_filter(body: serde_json::Value) -> Result<TaskMatch, ApiError> {
    let filter: BulkFilter = serde_path_to_error::deserialize(body).map_err(|err| {
        let field = err.path().to_string();
        ApiError::validation(&field, err.into_inner().to_string())
    })?;
    filter.into_match()
}

/// List queues (admin): depth, oldest age, running count, paused.
#[utoipa::path(get, path = "/queues", tag = "queues",
    responses(
        (status = 200, description = "Every queue", body = QueueListResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn list_queues(
    State(state): State<AppState>,
    caller: CallerOf,
) -> Result<Json<QueueListResponse>, ApiError> {
    caller.require(needs::list_queues)?;
    let queues = state.control.queues().await?;
    Ok(Json(QueueListResponse {
        queues: queues.into_iter().map(QueueView::from).collect(),
    }))
}

/// Pause a queue (admin).
///
/// Workers take none of its tasks, which stay `pending`, until it is
/// resumed; the pause survives restarts.
#[utoipa::path(post, path = "/queues/{name}/pause", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses(
        (status = 200, description = "The queue, paused", body = QueueView),
        (status = 404, description = "No such queue", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn pause_queue(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<PathParam<String>, ApiError>,
) -> Result<Json<QueueView>, ApiError> {
    let caller = caller.require(needs::pause_queue)?;
    let PathParam(name) = path?;
    Ok(Json(state.control.pause(&name, caller).await?.into()))
}

/// Resume a paused queue (admin).
#[utoipa::path(post, path = "/queues/{name}/resume", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses(
        (status = 200, description = "The queue, running again", body = QueueView),
        (status = 404, description = "No such queue", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    ))]
pub(crate) async fn resume_queue(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<PathParam<String>, ApiError>,
) -> Result<Json<QueueView>, ApiError> {
    let caller = caller.require(needs::resume_queue)?;
    let PathParam(name) = path?;
    Ok(Json(state.control.resume(&name, caller).await?.into()))
}
