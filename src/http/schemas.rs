//! Response bodies of the HTTP API that are not the task itself (that is
//! [`TaskRecord`](crate::domain::TaskRecord), shared with the cache).

use serde::Serialize;
use uuid::Uuid;

use crate::domain::TaskRecord;

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

// `TaskPage` in the document: generators name the answer of each operation
// `<Operation>Response` themselves (`ListTasksResponse`), and a schema of
// that name would collide with it.
/// One page of tasks, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TaskPage, example = json!({"tasks": [], "next_cursor": null}))]
pub struct ListTasksResponse {
    pub tasks: Vec<TaskRecord>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
