//! Reading tasks back: one by id (optionally waiting for it to finish), or
//! many, newest first.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{TaskRecord, TaskStatus};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::parse_task_uuid;
use crate::http::schemas::{ListTasksResponse, TaskResponse};
use crate::store::TaskFilter;
use crate::telemetry::logs::error_chain;
use crate::telemetry::metrics as m;

/// Says where a task read was served from: `hit` (Redis), `miss` (PostgreSQL,
/// then cached if terminal) or `bypass` (Redis unavailable).
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-tasker-cache");

const DEFAULT_LIST_LIMIT: i64 = 50;
const MAX_LIST_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutputQuery {
    /// The id `POST /run-task` returned.
    #[param(value_type = Uuid, required = true)]
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
        (status = 200, description = "The task", body = TaskResponse,
            headers(("X-Tasker-Cache" = String, description = "hit, miss or bypass"))),
        (status = 404, description = "No task has this id", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "no task with id 0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10", "details": null}})),
        (status = 422, description = "Missing or malformed task_uuid, or a malformed wait", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `task_uuid`: not a valid UUID: invalid character: found `x` at 1", "details": {"field": "task_uuid"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn get_task_output(
    State(state): State<AppState>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::validation("query", err.body_text()))?;
    let wait = parse_wait(query.wait.as_deref(), state.max_wait)?;
    let raw = query
        .task_uuid
        .or(query.taskuuid)
        .ok_or_else(|| ApiError::validation("task_uuid", "is required"))?;
    let id = parse_task_uuid(&raw, "task_uuid")?;
    read_task(&state, id, wait).await
}

/// Status and result of a task.
#[utoipa::path(
    get,
    path = "/tasks/{task_uuid}",
    tag = "tasks",
    params(("task_uuid" = Uuid, Path, description = "The id `POST /run-task` returned"), WaitQuery),
    responses(
        (status = 200, description = "The task", body = TaskResponse,
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
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|err| ApiError::validation("task_uuid", err.body_text()))?;
    let Query(query) = query.map_err(|err| ApiError::validation("query", err.body_text()))?;
    let wait = parse_wait(query.wait.as_deref(), state.max_wait)?;
    let id = parse_task_uuid(&raw, "task_uuid")?;
    read_task(&state, id, wait).await
}

/// `wait` in whole or fractional seconds, capped at `max`.
fn parse_wait(raw: Option<&str>, max: Duration) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(Duration::ZERO);
    };
    let seconds: f64 = raw
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| ApiError::validation("wait", "must be a number of seconds, 0 or more"))?;
    Ok(Duration::from_secs_f64(seconds.min(max.as_secs_f64())))
}

/// Reads the task; with a `wait`, holds the request until the task finishes
/// (woken by its announcement, not by polling) or the wait runs out.
async fn read_task(state: &AppState, id: Uuid, wait: Duration) -> Result<Response, ApiError> {
    if wait.is_zero() {
        return lookup(state, id).await.map(Found::into_response);
    }
    // Watch first, then read: a finish between the two is not missed.
    let mut waiter = state.watch.watch(id);
    let found = lookup(state, id).await?;
    if found.is_terminal() {
        return Ok(found.into_response());
    }
    // Woken or not, read once more: an announcement missed while Redis was
    // unreachable only makes the answer late, never stale.
    let _ = tokio::time::timeout(wait, waiter.finished()).await;
    lookup(state, id).await.map(Found::into_response)
}

/// A task as a read found it.
enum Found {
    /// The cached JSON of a finished task, served as is.
    Cached(String),
    /// Read from PostgreSQL: `miss` or `bypass` of the cache.
    Stored(TaskRecord, &'static str),
}

impl Found {
    fn is_terminal(&self) -> bool {
        match self {
            Self::Cached(_) => true,
            Self::Stored(record, _) => record.status.is_terminal(),
        }
    }

    fn into_response(self) -> Response {
        let (mut response, cache_state) = match self {
            Self::Cached(json) => {
                let response = (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    json,
                )
                    .into_response();
                (response, "hit")
            }
            Self::Stored(record, cache_state) => (
                Json(TaskResponse::from(record)).into_response(),
                cache_state,
            ),
        };
        response
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static(cache_state));
        response
    }
}

/// Cache-aside read: Redis first for terminal tasks, PostgreSQL on a miss or
/// when Redis is unavailable.
async fn lookup(state: &AppState, id: Uuid) -> Result<Found, ApiError> {
    let services = &state.services;
    let cache_state = match services.cache.get(id).await {
        Ok(Some(json)) => {
            metrics::counter!(m::CACHE_REQUESTS, "result" => "hit").increment(1);
            return Ok(Found::Cached(json));
        }
        Ok(None) => "miss",
        Err(err) => {
            tracing::warn!(task_id = %id, error = %error_chain(&err), "cache read failed; reading PostgreSQL");
            "bypass"
        }
    };
    metrics::counter!(m::CACHE_REQUESTS, "result" => cache_state).increment(1);
    let record = services
        .store
        .get_task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task with id {id}")))?;
    if cache_state == "miss"
        && record.status.is_terminal()
        && let Err(err) = services.cache.put(&record).await
    {
        tracing::debug!(task_id = %id, error = %error_chain(&err), "cannot fill the cache");
    }
    Ok(Found::Stored(record, cache_state))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only tasks in this status.
    status: Option<TaskStatus>,
    /// Only tasks of this type.
    #[param(pattern = "^[^\\u0000]*$")]
    task_name: Option<String>,
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
        (status = 422, description = "Invalid status, limit or cursor", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "invalid field `limit`: must be between 1 and 200", "details": {"field": "limit"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListTasksResponse>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::validation("query", err.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIST_LIMIT}"),
        ));
    }
    if query
        .task_name
        .as_deref()
        .is_some_and(|name| name.contains('\0'))
    {
        return Err(ApiError::validation("task_name", "must not contain U+0000"));
    }
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = TaskFilter {
        status: query.status,
        task_name: query.task_name,
        before,
        // One more than asked tells whether another page follows.
        limit: limit + 1,
    };
    let mut records = state.services.store.list_tasks(&filter).await?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|last| encode_cursor(last.id))
    } else {
        None
    };
    Ok(Json(ListTasksResponse {
        tasks: records.into_iter().map(TaskResponse::from).collect(),
        next_cursor,
    }))
}

const CURSOR_VERSION: u8 = 1;

/// Opaque to clients: a version byte and the last id, hex-encoded.
fn encode_cursor(last: Uuid) -> String {
    let mut bytes = vec![CURSOR_VERSION];
    bytes.extend_from_slice(last.as_bytes());
    hex::encode(bytes)
}

fn decode_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    let invalid = || ApiError::validation("cursor", "is not a cursor this API returned");
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    match bytes.split_first() {
        Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor(&hex::encode([2u8; 17])).is_err());
        assert!(decode_cursor(&hex::encode([1u8; 5])).is_err());
    }

    #[test]
    fn wait_is_parsed_and_capped() {
        let max = Duration::from_secs(30);
        assert_eq!(parse_wait(None, max).ok(), Some(Duration::ZERO));
        assert_eq!(
            parse_wait(Some("2.5"), max).ok(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_wait(Some("3600"), max).ok(), Some(max));
        assert!(parse_wait(Some("-1"), max).is_err());
        assert!(parse_wait(Some("soon"), max).is_err());
        assert!(parse_wait(Some("NaN"), max).is_err());
    }
}
