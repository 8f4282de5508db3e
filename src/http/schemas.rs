//! Response bodies of the HTTP API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{TaskRecord, TaskStatus};
use crate::health::Readiness;

/// Answer to an accepted submission.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunTaskResponse {
    /// Id to poll the result with.
    #[schema(example = "0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10")]
    pub task_uuid: Uuid,
}

/// Answer to an accepted batch: the ids in the order the tasks were given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"task_uuids": ["0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10", "0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a11"]}))]
pub struct RunTasksResponse {
    pub task_uuids: Vec<Uuid>,
}

/// One page of tasks, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"tasks": [], "next_cursor": null}))]
pub struct ListTasksResponse {
    pub tasks: Vec<TaskResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A task and, once it has finished, its result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "task_uuid": "0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10",
    "task_name": "sum",
    "status": "completed",
    "task_output": {"result": 3},
    "error": null,
    "attempts": 1,
    "max_attempts": 3,
    "next_attempt_at": null,
    "created_at": "2026-11-29T12:00:00.000000Z",
    "started_at": "2026-11-29T12:00:00.004000Z",
    "completed_at": "2026-11-29T12:00:00.005000Z"
}))]
pub struct TaskResponse {
    pub task_uuid: Uuid,
    pub task_name: String,
    pub status: TaskStatus,
    /// The result, once `completed`.
    #[schema(value_type = Object, nullable)]
    pub task_output: Option<Value>,
    /// Why the task failed, or why the last attempt failed while a retry waits.
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the next attempt is due, for a `pending` task waiting to retry.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<TaskRecord> for TaskResponse {
    fn from(record: TaskRecord) -> Self {
        Self {
            task_uuid: record.id,
            task_name: record.task_name,
            status: record.status,
            task_output: record.task_output,
            error: record.error,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            next_attempt_at: record.next_attempt_at,
            created_at: record.created_at,
            started_at: record.started_at,
            completed_at: record.completed_at,
        }
    }
}

/// Liveness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Readiness answer when both dependencies are reachable.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyResponse {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Readiness,
}
