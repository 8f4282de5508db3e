//! Submitting tasks and reading them back.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{NewTask, TaskRecord};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{JsonBody, RequestId, parse_task_uuid};
use crate::http::idempotency;
use crate::http::schemas::{RunTaskResponse, TaskResponse};
use crate::queue::Message;
use crate::store::Submission;
use crate::telemetry::logs::error_chain;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

/// Says where a task read was served from: `hit` (Redis), `miss` (PostgreSQL,
/// then cached if terminal) or `bypass` (Redis unavailable).
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-tasker-cache");

/// Submit a task.
///
/// The body is `task_name` plus that type's parameters, flat. The task is
/// stored before the answer, so a `202` means it will run.
#[utoipa::path(
    post,
    path = "/run-task",
    tag = "tasks",
    params(
        ("X-Request-ID" = Option<String>, Header, description = "Correlation id; generated when absent, echoed in the response"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the same task within `api.idempotency_window_seconds`"),
    ),
    responses(
        (status = 202, description = "Accepted: the task is stored and queued", body = RunTaskResponse,
            headers(
                ("Location" = String, description = "URL of the task resource"),
                ("Idempotent-Replayed" = String, description = "`true` when an earlier request with the same Idempotency-Key created the task"),
            )),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 413, description = "Body larger than `api.max_body_bytes`", body = ErrorResponse),
        (status = 409, description = "Idempotency-Key reused with a different request", body = ErrorResponse),
        (status = 422, description = "Unknown `task_name`, invalid parameter or malformed Idempotency-Key", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    )
)]
pub(crate) async fn create_task(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let idempotency_key = idempotency::key(&headers)?;
    let (task, parameters) = services.registry.parse_submission(body)?;
    let max_attempts = i32::try_from(task.retry_policy().max_attempts).unwrap_or(i32::MAX);
    let new_task = NewTask {
        id: Uuid::now_v7(),
        task_name: task.name().to_owned(),
        queue: task.queue().to_owned(),
        parameters,
        max_attempts,
        request_id: Some(request_id.clone()),
        trace_context: traces::traceparent(&tracing::Span::current()),
    };
    let record = match idempotency_key {
        None => services.store.insert_task(&new_task).await?,
        Some(key) => {
            let fingerprint = idempotency::fingerprint(task.name(), &new_task.parameters);
            let submission = services
                .store
                .insert_task_idempotent(&new_task, &key, &fingerprint, state.idempotency_window)
                .await?;
            match submission {
                Submission::Created(record) => record,
                Submission::Replayed(id) => return Ok(accepted(id, true)),
                Submission::Conflict(_) => {
                    return Err(ApiError::Conflict(format!(
                        "Idempotency-Key `{key}` was already used with a different request"
                    )));
                }
            }
        }
    };
    metrics::counter!(m::TASKS_SUBMITTED, "task_name" => task.name()).increment(1);
    let message = Message {
        task_id: record.id,
        request_id: Some(request_id),
        traceparent: new_task.trace_context.clone(),
    };
    if let Err(err) = services.queue.dispatch(task.queue(), &message).await {
        // Stored is what counts: the reconciler dispatches it once Redis is back.
        tracing::warn!(task_id = %record.id, error = %error_chain(&err), "dispatch failed; the reconciler will retry it");
    }
    tracing::info!(task_id = %record.id, task_name = task.name(), "task accepted");
    Ok(accepted(record.id, false))
}

/// `202` with the task id and its `Location`.
fn accepted(id: Uuid, replayed: bool) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(RunTaskResponse { task_uuid: id }),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/tasks/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(
            idempotency::REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutputQuery {
    /// The id `POST /run-task` returned.
    task_uuid: Option<String>,
    /// Alias of `task_uuid`.
    taskuuid: Option<String>,
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
        (status = 404, description = "No task has this id", body = ErrorResponse),
        (status = 422, description = "Missing or malformed task_uuid", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    )
)]
pub(crate) async fn get_task_output(
    State(state): State<AppState>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::validation("query", err.body_text()))?;
    let raw = query
        .task_uuid
        .or(query.taskuuid)
        .ok_or_else(|| ApiError::validation("task_uuid", "is required"))?;
    let id = parse_task_uuid(&raw, "task_uuid")?;
    read_task(&state, id).await
}

/// Status and result of a task.
#[utoipa::path(
    get,
    path = "/tasks/{task_uuid}",
    tag = "tasks",
    params(("task_uuid" = String, Path, description = "The id `POST /run-task` returned")),
    responses(
        (status = 200, description = "The task", body = TaskResponse,
            headers(("X-Tasker-Cache" = String, description = "hit, miss or bypass"))),
        (status = 404, description = "No task has this id", body = ErrorResponse),
        (status = 422, description = "Malformed task_uuid", body = ErrorResponse),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse),
    )
)]
pub(crate) async fn get_task(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|err| ApiError::validation("task_uuid", err.body_text()))?;
    let id = parse_task_uuid(&raw, "task_uuid")?;
    read_task(&state, id).await
}

/// Cache-aside read: Redis first for terminal tasks, PostgreSQL on a miss or
/// when Redis is unavailable.
async fn read_task(state: &AppState, id: Uuid) -> Result<Response, ApiError> {
    let services = &state.services;
    let cache_state = match services.cache.get(id).await {
        Ok(Some(record)) => {
            metrics::counter!(m::CACHE_REQUESTS, "result" => "hit").increment(1);
            return Ok(task_response(record, "hit"));
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
    Ok(task_response(record, cache_state))
}

fn task_response(record: TaskRecord, cache_state: &'static str) -> Response {
    let mut response = Json(TaskResponse::from(record)).into_response();
    response
        .headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(cache_state));
    response
}
