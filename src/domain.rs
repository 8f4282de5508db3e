//! Plain task types shared by every layer: no I/O here.

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

/// A task as stored: what the API shows and the cache keeps. Serialises
/// exactly as the API's `TaskResponse`, so a cached copy is served as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    #[serde(rename = "task_uuid")]
    pub id: Uuid,
    pub task_name: String,
    pub status: TaskStatus,
    pub task_output: Option<Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When a `pending` task that already failed an attempt will be tried again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
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
