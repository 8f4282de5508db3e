//! The OpenAPI document. Paths come from the handlers' annotations; the
//! task schemas are built from the task registry, so they never drift from
//! the task types that exist:
//!
//! - the request body of `POST /run-task` is `RunTaskRequest`, a `oneOf`
//!   of one schema per type (`SumTask`, …) with a discriminator on
//!   `task_name`, a `const` with that value as its default, so a generated
//!   constructor fills it in;
//! - a task as answered is `TaskResponse`, a `oneOf` of one schema per type
//!   (`SumTaskResponse`, …) discriminated the same way, whose `task_output`
//!   is that type's output schema (`SumOutput`, …) or null, so a generated
//!   client narrows the output by `task_name`.
//!
//! Request strings carry the rule the HTTP layer applies to every request
//! body: no U+0000.

use utoipa::OpenApi;

use super::error::{ErrorCode, ErrorDetail, ErrorResponse};
use super::routes::{
    __path_cancel_task, __path_cancel_tasks, __path_create_key, __path_create_task,
    __path_create_tasks, __path_get_task, __path_get_task_output, __path_get_task_submission,
    __path_list_keys, __path_list_queues, __path_list_tasks, __path_openapi_json,
    __path_pause_queue, __path_resume_queue, __path_retry_task, __path_retry_tasks,
    __path_revoke_key, BulkFilter, CancelledCount, CreateKeyRequest, CreatedKeyResponse,
    ListKeysResponse, QueueListResponse, QueueView, RetriedCount,
};
use super::schemas::{ListTasksResponse, RunTaskResponse, RunTasksResponse};
use crate::config::ApiConfig;
use crate::domain::{Scope, TaskRecord, TaskStatus, TaskSubmission};
use crate::ops::{
    __path_health, __path_ready, DependencyState, HealthResponse, Readiness, ReadyResponse,
};
use crate::store::ApiKey;
use crate::tasks::Registry;

mod security;
mod task_schemas;
#[cfg(test)]
mod tests;

use security::{bulk_filters, secure_task_operations};
use task_schemas::{
    Union, forbid_nul, link_submission_to_reads, request_schema, response_schema, schema_name,
    set_run_task_body, set_run_tasks_body, task_record_example,
};

const REQUEST_SCHEMA: &str = "RunTaskRequest";
const BATCH_REQUEST_SCHEMA: &str = "RunTasksRequest";
/// The name `TaskRecord` has in the document: every read refers to it, and
/// [`document`] replaces its schema by the union of the per-type responses.
const RESPONSE_SCHEMA: &str = "TaskResponse";

/// Request bodies with U+0000 in a string are refused (PostgreSQL cannot
/// store it; see `extract::JsonBody`), so their string schemas say so.
const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasker",
        description = "Asynchronous task execution: submit a task, get its id at once, poll for the result."
    ),
    servers(
        (url = "http://localhost:8000", description = "`tasker dev` on this machine (the default `api.listen`); use your deployment's URL instead"),
    ),
    paths(
        create_task, create_tasks, get_task_output, get_task, get_task_submission, list_tasks, health, ready,
        openapi_json, create_key, list_keys, revoke_key, cancel_task, retry_task,
        cancel_tasks, retry_tasks, list_queues, pause_queue, resume_queue
    ),
    components(schemas(
        RunTaskResponse, RunTasksResponse, ListTasksResponse, TaskRecord, TaskSubmission, TaskStatus, ErrorResponse, ErrorDetail, ErrorCode,
        HealthResponse, ReadyResponse, Readiness, DependencyState, ApiKey, Scope,
        CreateKeyRequest, CreatedKeyResponse, ListKeysResponse, BulkFilter, CancelledCount,
        RetriedCount, QueueView, QueueListResponse
    )),
    tags(
        (name = "tasks", description = "Submit tasks and read their results"),
        (name = "keys", description = "API keys (admin keys only; with `auth.enabled`)"),
        (name = "queues", description = "Queues: their figures, pause and resume (admin keys, with `auth.enabled`)"),
        (name = "operations", description = "Probes and this document (metrics are on the operations port, `api.ops_listen`)"),
    )
)]
struct ApiDoc;

/// The complete document for the task types in `registry` and the limits
/// in `api`.
pub fn document(registry: &Registry, api: &ApiConfig) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    let mut requests = Union::new("task_name");
    let mut responses = Union::new("task_name");
    for task in registry.iter() {
        for (referenced, mut schema) in task.referenced_schemas() {
            forbid_nul(&mut schema);
            components.schemas.insert(referenced, schema);
        }
        let request = schema_name(task.name());
        components
            .schemas
            .insert(request.clone(), request_schema(task));
        requests.add(task.name(), request);

        let (output, output_schema) = task.output_schema();
        components.schemas.insert(output.clone(), output_schema);
        let response = format!("{}Response", schema_name(task.name()));
        components
            .schemas
            .insert(response.clone(), response_schema(task, &output));
        responses.add(task.name(), response);
    }
    components.schemas.insert(
        REQUEST_SCHEMA.to_owned(),
        requests.build(
            "A task: `task_name` and that type's parameters, flat.",
            None,
        ),
    );
    components.schemas.insert(
        RESPONSE_SCHEMA.to_owned(),
        responses.build(
            "A task and, once it has completed, its output: the variant for its `task_name`.",
            task_record_example(),
        ),
    );
    secure_task_operations(&mut doc);
    bulk_filters(&mut doc);
    set_run_task_body(&mut doc, registry);
    set_run_tasks_body(&mut doc, registry, api.max_batch_size.get());
    link_submission_to_reads(&mut doc);
    doc
}

/// Every operation of `doc` as (method, path template, its first `2xx`
/// status): the requests a client makes when all goes well.
pub fn successful_operations(doc: &utoipa::openapi::OpenApi) -> Vec<(&'static str, &str, u16)> {
    let mut operations = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in methods {
            let status = operation.iter().find_map(|operation| {
                operation
                    .responses
                    .responses
                    .keys()
                    .filter_map(|status| status.parse::<u16>().ok())
                    .find(|status| (200..300).contains(status))
            });
            if let Some(status) = status {
                operations.push((method, path.as_str(), status));
            }
        }
    }
    operations
}
