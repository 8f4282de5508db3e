//! Plain task types shared by every layer: no I/O here.

pub mod json;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where a task is in its life. `completed` and `failed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [Self::Pending, Self::Running, Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Terminal tasks never change again, which is what makes them cacheable.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of the four known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown task status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

// What the API answers, what the cache keeps (served as is on a hit) and
// what the OpenAPI document describes: one type, so the three cannot drift.
/// A task and, once it has finished, its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TaskResponse, example = json!({
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
pub struct TaskRecord {
    /// The id `POST /run-task` returned.
    #[serde(rename = "task_uuid")]
    pub id: Uuid,
    /// The task type; the OpenAPI document narrows `task_output` by it.
    pub task_name: String,
    pub status: TaskStatus,
    /// The result, once `completed`: the task type's output (see the
    /// per-type schemas the document builds); null before and on failure.
    #[schema(value_type = Object, nullable)]
    pub task_output: Option<Value>,
    /// Why the task failed, or why the last attempt failed while a retry
    /// waits; null otherwise.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the next attempt is due, for a `pending` task waiting to retry;
    /// null otherwise.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started; null before the first.
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the task finished; null until then.
    #[schema(required = true)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// Where a submission came from: carried with the task into the worker's logs
/// and trace.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    /// W3C `traceparent` of the submitting request's span.
    pub trace_context: Option<String>,
}

/// A validated submission, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub task_name: String,
    pub queue: String,
    pub parameters: Value,
    pub max_attempts: i32,
    pub request_id: Option<String>,
    /// W3C `traceparent` of the submitting request's span.
    pub trace_context: Option<String>,
}

/// A task a worker has just claimed: everything needed to run this attempt.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: Uuid,
    pub task_name: String,
    pub parameters: Value,
    /// The attempt number, which is also the fencing token for every later write.
    pub attempt: i32,
    pub max_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub trace_context: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().ok(), Some(status));
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn only_completed_and_failed_are_terminal() {
        let terminal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![TaskStatus::Completed, TaskStatus::Failed]);
    }
}
