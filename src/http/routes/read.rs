//! Reading tasks back: one by id (optionally waiting for it to finish), or
//! many, newest first. HTTP in, a [`Reads`](crate::services::Reads) call,
//! HTTP out.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::needs;
use crate::domain::{Caller, TaskRecord, TaskStatus, TaskSubmission};
use crate::http::AppState;
use crate::http::auth::CallerOf;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{QueryParams, TaskUuidPath, parse_task_uuid};
use crate::http::schemas::ListTasksResponse;
use crate::services::{Cursor, Found, ListRequest, MAX_PAGE};

/// Says where a task read was served from: `hit` (Redis), `miss` (PostgreSQL,
/// then cached if terminal) or `bypass` (Redis unavailable).
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-tasker-cache");

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutputQuery {
    // Not `required`: `taskuuid` may stand in for it, and OpenAPI cannot
    // say "one of these two".
    /// The id `POST /run-task` returned. Required unless `taskuuid` is
    /// given: without either the answer is `422`.
    #[param(value_type = Option<Uuid>)]
    task_uuid: Option<String>,
    /// Alias of `task_uuid` for older clients, read only when `task_uuid` is absent.
    taskuuid: Option<String>,
    /// Seconds to wait for the task to finish before answering (capped by
    /// `api.max_wait_seconds`); the answer comes the moment it finishes.
    #[param(value_type = Option<f64>, minimum = 0, example = 10)]
    wait: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Seconds to wait for the task to finish before answering (capped by
    /// `api.max_wait_seconds`); the answer comes the moment it finishes.
    #[param(value_type = Option<f64>, minimum = 0, example = 10)]
    wait: Option<String>,
}

/// Status and result of a task (query-string form).
#[utoipa::path(
    get,
    path = "/get-task-output",
    tag = "tasks",
    params(OutputQuery),
    responses(
        (status = 200, description = "The task", body = TaskRecord,
            headers(("X-Tasker-Cache" = String, description = "hit, miss or bypass"))),
        (status = 404, description = "No task has this id", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "no task with id 0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10", "details": null}})),
        (status = 422, description = "Neither task_uuid nor taskuuid, a malformed one, or a malformed wait", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `task_uuid`: not a valid UUID: invalid character: found `x` at 1", "details": {"field": "task_uuid"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn get_task_output(
    State(state): State<AppState>,
    caller: CallerOf,
    QueryParams(query): QueryParams<OutputQuery>,
) -> Result<Response, ApiError> {
    let caller = caller.require(needs::get_task_output)?;
    let wait = parse_wait(query.wait.as_deref())?;
    let raw = query
        .task_uuid
        .or(query.taskuuid)
        .ok_or_else(|| ApiError::validation("task_uuid", "is required"))?;
    let id = parse_task_uuid(&raw, "task_uuid")?;
    read_task(&state, id, wait, caller).await
}

/// Status and result of a task.
#[utoipa::path(
    get,
    path = "/tasks/{task_uuid}",
    tag = "tasks",
    params(("task_uuid" = Uuid, Path, description = "The id `POST /run-task` returned"), WaitQuery),
    responses(
        (status = 200, description = "The task", body = TaskRecord,
            headers(("X-Tasker-Cache" = String, description = "hit, miss or bypass"))),
        (status = 404, description = "No task has this id", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "no task with id 0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10", "details": null}})),
        (status = 422, description = "Malformed task_uuid or wait", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `task_uuid`: not a valid UUID: invalid character: found `x` at 1", "details": {"field": "task_uuid"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn get_task(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<TaskUuidPath, ApiError>,
    QueryParams(query): QueryParams<WaitQuery>,
) -> Result<Response, ApiError> {
    let caller = caller.require(needs::get_task)?;
    let TaskUuidPath(id) = path?;
    let wait = parse_wait(query.wait.as_deref())?;
    read_task(&state, id, wait, caller).await
}

/// A task as it was submitted.
///
/// Its parameters exactly as received, its queue, and the request and trace
/// it came from: what an operator looking at a task needs beside its status.
/// Read from PostgreSQL on every call (never cached).
#[utoipa::path(
    get,
    path = "/tasks/{task_uuid}/submission",
    tag = "tasks",
    params(("task_uuid" = Uuid, Path, description = "The id `POST /run-task` returned")),
    responses(
        (status = 200, description = "The task as submitted", body = TaskSubmission),
        (status = 404, description = "No task has this id", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "no task with id 0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10", "details": null}})),
        (status = 422, description = "Malformed task_uuid", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `task_uuid`: not a valid UUID: invalid character: found `x` at 1", "details": {"field": "task_uuid"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn get_task_submission(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<TaskUuidPath, ApiError>,
) -> Result<Json<TaskSubmission>, ApiError> {
    let caller = caller.require(needs::get_task_submission)?;
    let TaskUuidPath(id) = path?;
    Ok(Json(state.reads.submission(id, caller).await?))
}

/// `wait` in whole or fractional seconds (the service caps it).
fn parse_wait(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(Duration::ZERO);
    };
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|seconds| Duration::from_secs_f64(seconds.min(u32::MAX as f64)))
        .ok_or_else(|| ApiError::validation("wait", "must be a number of seconds, 0 or more"))
}

async fn read_task(
    state: &AppState,
    id: Uuid,
    wait: Duration,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let found = state.reads.get(id, wait, caller).await?;
    let cache_state = HeaderValue::from_static(found.cache_state().as_str());
    let mut response = match found {
        // The cached JSON is the API's answer already: served as is.
        Found::Cached(cached) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            cached.into_body(),
        )
            .into_response(),
        Found::Stored(record, _) => Json(record).into_response(),
    };
    response.headers_mut().insert(CACHE_HEADER, cache_state);
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this tenant's tasks (admin keys; other keys see their own tenant's).
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,99}$")]
    tenant: Option<String>,
    /// Only tasks in this status.
    status: Option<TaskStatus>,
    /// Only tasks of this type.
    #[param(pattern = "^[^\\u0000]*$")]
    task_name: Option<String>,
    /// Only tasks of this queue.
    #[param(pattern = "^[^\\u0000]*$")]
    queue: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^01[0-9a-f]{32}$")]
    cursor: Option<String>,
}

/// List tasks, newest first.
///
/// Keyset pagination: pass the `next_cursor` of one page to get the next;
/// it is `null` on the last page.
#[utoipa::path(
    get,
    path = "/tasks",
    tag = "tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of tasks", body = ListTasksResponse),
        (status = 422, description = "Invalid status, tenant, limit or cursor", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `limit`: must be between 1 and 200", "details": {"field": "limit"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    caller: CallerOf,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<ListTasksResponse>, ApiError> {
    let caller = caller.require(needs::list_tasks)?;
    if query
        .limit
        .is_some_and(|limit| !(1..=MAX_PAGE).contains(&limit))
    {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    if query
        .tenant
        .as_deref()
        .is_some_and(|tenant| !crate::domain::is_valid_tenant(tenant))
    {
        return Err(ApiError::validation(
            "tenant",
            "must be 1 to 100 of a-z, 0-9, _ and -, starting with a letter or digit",
        ));
    }
    for (field, value) in [("task_name", &query.task_name), ("queue", &query.queue)] {
        if value.as_deref().is_some_and(|text| text.contains('\0')) {
            return Err(ApiError::validation(field, "must not contain U+0000"));
        }
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::decode(text)
                .ok_or_else(|| ApiError::validation("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    let page = state
        .reads
        .list(
            ListRequest {
                tenant: query.tenant,
                status: query.status,
                task_name: query.task_name,
                queue: query.queue,
                limit: query.limit,
                cursor,
            },
            caller,
        )
        .await?;
    Ok(Json(ListTasksResponse {
        tasks: page.tasks,
        next_cursor: page.next_cursor.map(Cursor::encode),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_parsed() {
        assert_eq!(parse_wait(None).ok(), Some(Duration::ZERO));
        assert_eq!(
            parse_wait(Some("2.5")).ok(),
            Some(Duration::from_millis(2500))
        );
        assert!(parse_wait(Some("3600")).is_ok());
        assert!(parse_wait(Some("-1")).is_err());
        assert!(parse_wait(Some("soon")).is_err());
        assert!(parse_wait(Some("NaN")).is_err());
    }
}
