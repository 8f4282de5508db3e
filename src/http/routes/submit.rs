//! Submitting tasks, one at a time or in batches: HTTP in, a
//! [`Submissions`](crate::services::Submissions) call, HTTP out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::needs;
use crate::http::AppState;
use crate::http::auth::CallerOf;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{JsonBody, RequestId};
use crate::http::idempotency;
use crate::http::schemas::{RunTaskResponse, RunTasksResponse};

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
    caller: CallerOf,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(needs::create_task)?;
    let origin = caller.origin(&request_id);
    let submissions = &state.submissions;
    match idempotency::key(&headers)? {
        None => Ok(accepted(submissions.submit(body, &origin).await?, false)),
        Some(key) => {
            let done = submissions.submit_idempotent(body, &key, &origin).await?;
            Ok(accepted(done.id, done.replayed))
        }
    }
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
    params(
        ("X-Request-ID" = Option<String>, Header, description = "Correlation id; generated when absent, echoed in the response"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ !-~]*[!-~])?$", description = "Makes retries safe: the same key and batch return the same tasks within `api.idempotency_window_seconds`. 1 to 255 visible ASCII characters"),
    ),
    responses(
        (status = 202, description = "Accepted: every task is stored and queued", body = RunTasksResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when an earlier request with the same Idempotency-Key created the tasks"))),
        (status = 409, description = "Idempotency-Key reused with a different request", body = ErrorResponse,
            example = json!({"error": {"code": "idempotency_key_reused", "message": "Idempotency-Key `nightly-42` was already used with a different request", "details": null}})),
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
    caller: CallerOf,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(needs::create_tasks)?;
    let origin = caller.origin(&request_id);
    let key = idempotency::key(&headers)?;
    let batch = state
        .submissions
        .submit_batch(body, key.as_deref(), &origin)
        .await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(RunTasksResponse {
            task_uuids: batch.ids,
        }),
    )
        .into_response();
    if batch.replayed {
        response.headers_mut().insert(
            idempotency::REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}
