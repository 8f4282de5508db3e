//! Submitting tasks, one at a time or in batches.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::NewTask;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{JsonBody, RequestId};
use crate::http::idempotency;
use crate::http::schemas::{RunTaskResponse, RunTasksResponse};
use crate::intake::message_for;
use crate::queue::Message;
use crate::store::Submission;
use crate::tasks::{RegisteredTask, SubmissionError};
use crate::telemetry::logs::error_chain;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

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
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ !-~]*[!-~])?$", description = "Makes retries safe: the same key and body return the same task within `api.idempotency_window_seconds`. 1 to 255 visible ASCII characters"),
    ),
    responses(
        (status = 202, description = "Accepted: the task is stored and queued", body = RunTaskResponse,
            headers(
                ("Location" = String, description = "URL of the task resource"),
                ("Idempotent-Replayed" = String, description = "`true` when an earlier request with the same Idempotency-Key created the task"),
            )),
        (status = 400, description = "Malformed JSON", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_json", "message": "malformed JSON: EOF while parsing an object at line 1 column 25", "details": null}})),
        (status = 413, description = "Body larger than `api.max_body_bytes`", body = ErrorResponse,
            example = json!({"error": {"code": "payload_too_large", "message": "request body is larger than the limit of 1048576 bytes", "details": {"limit_bytes": 1048576}}})),
        (status = 409, description = "Idempotency-Key reused with a different request", body = ErrorResponse,
            example = json!({"error": {"code": "idempotency_key_reused", "message": "Idempotency-Key `order-1234` was already used with a different request", "details": null}})),
        (status = 422, description = "Unknown `task_name`, invalid parameter or malformed Idempotency-Key", body = ErrorResponse,
            example = json!({"error": {"code": "unknown_task_name", "message": "unknown task_name `divide`; valid names: file_hash, query_llm, sum", "details": {"field": "task_name", "valid_task_names": ["file_hash", "query_llm", "sum"]}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
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
    let new_task = new_task(task, parameters, &request_id);
    let id = new_task.id;
    match idempotency_key {
        None => state.intake.submit(new_task).await?,
        Some(key) => {
            let fingerprint = idempotency::fingerprint(task.name(), &new_task.parameters);
            let submission = services
                .store
                .insert_task_idempotent(&new_task, &key, &fingerprint, state.idempotency_window)
                .await?;
            match submission {
                Submission::Created(_) => {}
                Submission::Replayed(id) => return Ok(accepted(id, true)),
                Submission::Conflict(_) => {
                    return Err(ApiError::Conflict(format!(
                        "Idempotency-Key `{key}` was already used with a different request"
                    )));
                }
            }
            let message = message_for(&new_task);
            if let Err(err) = services.queue.dispatch(task.queue(), &message).await {
                // Stored is what counts: the reconciler dispatches it once Redis is back.
                tracing::warn!(task_id = %id, error = %error_chain(&err), "dispatch failed; the reconciler will retry it");
            }
        }
    }
    metrics::counter!(m::TASKS_SUBMITTED, "task_name" => task.name()).increment(1);
    tracing::info!(task_id = %id, task_name = task.name(), "task accepted");
    Ok(accepted(id, false))
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

/// A validated task, ready to store, carrying the request's id and trace.
fn new_task(task: &RegisteredTask, parameters: Value, request_id: &str) -> NewTask {
    NewTask {
        id: Uuid::now_v7(),
        task_name: task.name().to_owned(),
        queue: task.queue().to_owned(),
        parameters,
        max_attempts: i32::try_from(task.retry_policy().max_attempts).unwrap_or(i32::MAX),
        request_id: Some(request_id.to_owned()),
        trace_context: traces::traceparent(&tracing::Span::current()),
    }
}

/// Submit several tasks at once.
///
/// `{"tasks": [ … ]}`, each item shaped like the body of `POST /run-task`.
/// All are validated first: one bad item is a `422` naming its index, and
/// nothing is stored. Otherwise all are stored in one statement and their
/// ids come back in the order given.
#[utoipa::path(
    post,
    path = "/run-tasks",
    tag = "tasks",
    params(("X-Request-ID" = Option<String>, Header, description = "Correlation id; generated when absent, echoed in the response")),
    responses(
        (status = 202, description = "Accepted: every task is stored and queued", body = RunTasksResponse),
        (status = 400, description = "Malformed JSON", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_json", "message": "malformed JSON: EOF while parsing an object at line 1 column 25", "details": null}})),
        (status = 413, description = "Body larger than `api.max_body_bytes`", body = ErrorResponse,
            example = json!({"error": {"code": "payload_too_large", "message": "request body is larger than the limit of 1048576 bytes", "details": {"limit_bytes": 1048576}}})),
        (status = 422, description = "An invalid item (`details.index` says which), an empty list, or more than `api.max_batch_size` tasks", body = ErrorResponse,
            example = json!({"error": {"code": "validation_failed", "message": "tasks[1]: invalid field `a`: invalid type: string \"one\", expected a JSON number", "details": {"index": 1, "field": "a"}}})),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorResponse,
            example = json!({"error": {"code": "service_unavailable", "message": "postgres is unavailable; try again shortly", "details": {"dependency": "postgres"}}})),
    )
)]
pub(crate) async fn create_tasks(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let items = batch_items(body, state.max_batch_size)?;
    let mut new_tasks = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let (task, parameters) = services
            .registry
            .parse_submission(item)
            .map_err(|err| batch_item_error(index, err))?;
        new_tasks.push(new_task(task, parameters, &request_id));
    }
    services.store.insert_tasks(&new_tasks).await?;
    let messages: Vec<(&str, Message)> = new_tasks
        .iter()
        .map(|task| (task.queue.as_str(), message_for(task)))
        .collect();
    for task in &new_tasks {
        metrics::counter!(m::TASKS_SUBMITTED, "task_name" => task.task_name.clone()).increment(1);
    }
    if let Err(err) = services
        .queue
        .dispatch_many(messages.iter().map(|(q, msg)| (*q, msg)))
        .await
    {
        tracing::warn!(count = new_tasks.len(), error = %error_chain(&err), "batch dispatch failed; the reconciler will retry it");
    }
    tracing::info!(count = new_tasks.len(), "tasks accepted");
    let body = RunTasksResponse {
        task_uuids: new_tasks.iter().map(|task| task.id).collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The `tasks` array of a batch, checked for shape and size.
fn batch_items(body: Value, max: usize) -> Result<Vec<Value>, ApiError> {
    let items = match body {
        Value::Object(mut fields) => {
            let items = fields.remove("tasks");
            if let Some(unknown) = fields.keys().next() {
                return Err(ApiError::validation(
                    unknown,
                    "is not a field of a batch (only `tasks`)",
                ));
            }
            items
        }
        _ => None,
    };
    let Some(Value::Array(items)) = items else {
        return Err(ApiError::validation("tasks", "must be an array of tasks"));
    };
    if items.is_empty() || items.len() > max {
        return Err(ApiError::validation(
            "tasks",
            format!("must hold between 1 and {max} tasks, not {}", items.len()),
        ));
    }
    Ok(items)
}

fn batch_item_error(index: usize, err: SubmissionError) -> ApiError {
    let mut details = json!({ "index": index });
    let field = match &err {
        SubmissionError::NotAnObject => None,
        SubmissionError::MissingTaskName { valid }
        | SubmissionError::UnknownTaskName { valid, .. } => {
            details["valid_task_names"] = json!(valid);
            Some("task_name".to_owned())
        }
        SubmissionError::InvalidField(field) => Some(field.field.clone()),
    };
    if let Some(field) = field {
        details["field"] = json!(field);
    }
    ApiError::Validation {
        message: format!("tasks[{index}]: {err}"),
        details,
    }
}
