//! Plain task types shared by every layer: no I/O here.

pub mod json;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where a task is in its life. `completed`, `failed` and `cancelled` are
/// terminal (a retry by an operator is a new life, not a change of this one's
/// outcome: it starts again from `pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Terminal tasks never change again, which is what makes them cacheable.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// What a cancel can still stop.
    pub fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// What a retry can start again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of the known ones.
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
    "tenant": "default",
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
    /// The tenant of the API key that submitted it (`default` without
    /// authentication).
    #[schema(example = "default")]
    pub tenant: String,
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

/// A task as it was submitted: what its worker runs and where it came from.
/// Kept out of [`TaskRecord`] so that listings and the result cache do not
/// carry parameters (up to `api.max_body_bytes` each).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "task_uuid": "0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a10",
    "task_name": "sum",
    "tenant": "default",
    "queue": "default",
    "parameters": {"a": 2, "b": 3},
    "request_id": "0193a6c2-7b1e-7c3a-9f64-2b1d8e4c5a11",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"
}))]
pub struct TaskSubmission {
    #[serde(rename = "task_uuid")]
    pub id: Uuid,
    pub task_name: String,
    pub tenant: String,
    /// The queue its dispatch message goes to.
    pub queue: String,
    /// The parameters as received (every field but `task_name`), numbers
    /// keeping their kind.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The `X-Request-ID` of the submitting request (or the one generated
    /// for it): the key to the API's and the worker's log lines.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The W3C trace id (32 hex digits) of the submitting request, when
    /// tracing was on: the worker's spans join this trace.
    #[schema(required = true)]
    pub trace_id: Option<String>,
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

/// The tenant of everything when authentication is off, and of every task
/// stored before tenants existed.
pub const DEFAULT_TENANT: &str = "default";

/// Where a submission came from: its tenant, and the request and trace
/// carried with the task into the worker's logs.
#[derive(Debug, Clone)]
pub struct Origin {
    pub tenant: String,
    pub request_id: Option<String>,
    /// W3C `traceparent` of the submitting request's span.
    pub trace_context: Option<String>,
    /// The submitting key's rate limit, if it has one.
    pub rate: Option<RateLimit>,
}

/// Submissions per second an API key may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub key_id: String,
    pub per_second: u32,
}

impl Default for Origin {
    fn default() -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_owned(),
            request_id: None,
            trace_context: None,
            rate: None,
        }
    }
}

/// What a caller may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Submit tasks, and cancel or retry one's own.
    Submit,
    /// Read one's own tasks.
    Read,
    /// Everything, on every tenant's tasks: bulk actions, queues, keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Self::Submit, Self::Read, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{s}`: submit, read or admin"))
    }
}

/// Who is asking: the key (when authentication is on), its tenant and what
/// it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API key's id, for logs; `None` when authentication is off.
    pub key_id: Option<String>,
    pub tenant: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Everyone, when authentication is off: the default tenant, every scope.
    pub fn anonymous() -> Self {
        Self {
            key_id: None,
            tenant: DEFAULT_TENANT.to_owned(),
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// `admin` holds every other scope too.
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// Whether the caller may see task of `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.is_admin() || self.tenant == tenant
    }

    /// The tenant a listing is confined to: the caller's own, or none for
    /// an admin.
    pub fn tenant_scope(&self) -> Option<&str> {
        (!self.is_admin()).then_some(self.tenant.as_str())
    }
}

/// Whether `name` can be a tenant: 1 to 100 of `a-z 0-9 _ -`, starting with
/// a letter or digit (it appears in Redis keys and metric-free logs).
pub fn is_valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A validated submission, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub task_name: String,
    pub tenant: String,
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
    pub tenant: String,
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
    fn tenant_names_are_plain() {
        assert!(is_valid_tenant("acme-2_x"));
        for bad in ["", "Acme", "-x", "a b", "a:b", &"a".repeat(101)] {
            assert!(!is_valid_tenant(bad), "{bad}");
        }
    }

    #[test]
    fn admin_sees_every_tenant_and_holds_every_scope() {
        let admin = Caller {
            key_id: Some("k".into()),
            tenant: "ops".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(admin.may(Scope::Submit) && admin.sees("acme"));
        assert_eq!(admin.tenant_scope(), None);
        let reader = Caller {
            scopes: vec![Scope::Read],
            ..admin
        };
        assert!(!reader.may(Scope::Submit) && !reader.sees("acme"));
        assert_eq!(reader.tenant_scope(), Some("ops"));
    }

    #[test]
    fn completed_failed_and_cancelled_are_terminal() {
        let terminal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            vec![
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
        for status in TaskStatus::ALL {
            assert_eq!(status.is_terminal(), !status.is_cancellable(), "{status}");
        }
        assert!(TaskStatus::Cancelled.is_retryable() && !TaskStatus::Completed.is_retryable());
    }
}
