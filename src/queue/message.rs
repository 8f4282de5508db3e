//! The dispatch message: what travels through a queue for one task.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{DEFAULT_TENANT, NewTask};
use crate::store::{DispatchCandidate, Recovered};

/// Derived from the stored task alone, so every dispatch of one task
/// produces the same queue member (and deduplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub task_id: Uuid,
    /// The task's type, so a worker can tell quick tasks (claimed and
    /// finished in one transaction) before it reads the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// The task's tenant: which of the queue's per-tenant sets it waits in.
    #[serde(default = "default_tenant", skip_serializing_if = "is_default_tenant")]
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// W3C trace context of the submitting request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Message {
    /// The message of task `task_id` of type `task_name`, submitted by
    /// request `request_id` within trace `traceparent`. Code holding a
    /// task uses `Message::from(&task)` instead, which picks the fields.
    pub fn new(
        task_id: Uuid,
        task_name: &str,
        tenant: &str,
        request_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> Self {
        Self {
            task_id,
            task_name: Some(task_name.to_owned()),
            tenant: tenant.to_owned(),
            request_id: request_id.map(str::to_owned),
            traceparent: traceparent.map(str::to_owned),
        }
    }

    pub fn encode(&self) -> String {
        // Serialising a struct of a Uuid and optional strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(raw: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }
}

// The message of a task as stored, whichever statement read it: the same
// five fields every time, so every dispatch of a task is the same member.

impl From<&NewTask> for Message {
    fn from(task: &NewTask) -> Self {
        Self::new(
            task.id,
            &task.task_name,
            &task.tenant,
            task.request_id.as_deref(),
            task.trace_context.as_deref(),
        )
    }
}

impl From<&DispatchCandidate> for Message {
    fn from(task: &DispatchCandidate) -> Self {
        Self::new(
            task.id,
            &task.task_name,
            &task.tenant,
            task.request_id.as_deref(),
            task.trace_context.as_deref(),
        )
    }
}

/// A task recovered, handed back, cancelled or retried (`Changed::task`).
impl From<&Recovered> for Message {
    fn from(task: &Recovered) -> Self {
        Self::new(
            task.record.id,
            &task.record.task_name,
            &task.record.tenant,
            task.request_id.as_deref(),
            task.trace_context.as_deref(),
        )
    }
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

fn is_default_tenant(tenant: &String) -> bool {
    tenant == DEFAULT_TENANT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_encodes_the_same_way_every_time() {
        let message = Message::new(Uuid::nil(), "sum", "acme", Some("req-1"), None);
        assert_eq!(message.encode(), message.clone().encode());
        assert_eq!(Message::decode(&message.encode()).ok(), Some(message));
    }

    #[test]
    fn a_task_gives_the_message_of_its_five_fields() {
        let task = NewTask {
            id: Uuid::now_v7(),
            task_name: "sum".into(),
            tenant: "acme".into(),
            queue: "default".into(),
            parameters: serde_json::json!({"a": 1, "b": 2}),
            max_attempts: 3,
            request_id: Some("req-1".into()),
            trace_context: Some("00-trace".into()),
        };
        let expected = Message::new(task.id, "sum", "acme", Some("req-1"), Some("00-trace"));
        assert_eq!(Message::from(&task), expected);
    }
}
