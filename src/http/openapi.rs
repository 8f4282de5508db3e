//! The OpenAPI document. Paths come from the handlers' annotations; the
//! request body of `POST /run-task` is built from the task registry, a
//! `oneOf` with a discriminator on `task_name`, so it never drifts from the
//! task types that exist.

use std::collections::BTreeMap;

use utoipa::OpenApi;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};

use super::error::{ErrorDetail, ErrorResponse};
use super::routes::{
    __path_create_task, __path_create_tasks, __path_get_task, __path_get_task_output,
    __path_health, __path_list_tasks, __path_metrics_text, __path_openapi_json, __path_ready,
};
use super::schemas::{
    HealthResponse, ListTasksResponse, ReadyResponse, RunTaskResponse, RunTasksResponse,
    TaskResponse,
};
use crate::domain::TaskStatus;
use crate::health::{DependencyState, Readiness};
use crate::tasks::{RegisteredTask, Registry};

const REQUEST_SCHEMA: &str = "RunTaskRequest";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasker",
        description = "Asynchronous task execution: submit a task, get its id at once, poll for the result."
    ),
    paths(
        create_task, create_tasks, get_task_output, get_task, list_tasks, health, ready,
        metrics_text, openapi_json
    ),
    components(schemas(
        RunTaskResponse, RunTasksResponse, ListTasksResponse, TaskResponse, TaskStatus, ErrorResponse, ErrorDetail,
        HealthResponse, ReadyResponse, Readiness, DependencyState
    )),
    tags(
        (name = "tasks", description = "Submit tasks and read their results"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// The complete document for the task types in `registry`.
pub fn document(registry: &Registry) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    let mut union = OneOfBuilder::new();
    let mut mapping = BTreeMap::new();
    for task in registry.iter() {
        let name = schema_name(task.name());
        for (referenced, schema) in task.referenced_schemas() {
            components.schemas.insert(referenced, schema);
        }
        components.schemas.insert(name.clone(), task_schema(task));
        mapping.insert(
            task.name().to_owned(),
            format!("#/components/schemas/{name}"),
        );
        union = union.item(Ref::from_schema_name(name));
    }
    let mut discriminator = Discriminator::new("task_name");
    discriminator.mapping = mapping;
    let union = union
        .description(Some(
            "A task: `task_name` and that type's parameters, flat.",
        ))
        .discriminator(Some(discriminator));
    components
        .schemas
        .insert(REQUEST_SCHEMA.to_owned(), union.into());
    set_run_task_body(&mut doc, registry);
    set_run_tasks_body(&mut doc, registry);
    doc
}

/// `file_hash` → `FileHashTask`.
fn schema_name(task_name: &str) -> String {
    let mut name: String = task_name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Task");
    name
}

/// The parameter schema with `task_name` added as a required constant.
fn task_schema(task: &RegisteredTask) -> RefOr<Schema> {
    let name_property = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([task.name()]))
        .description(Some("Selects the task type."));
    match task.params_schema() {
        RefOr::T(Schema::Object(mut object)) => {
            object
                .properties
                .insert("task_name".into(), name_property.into());
            object.required.insert(0, "task_name".into());
            object.description = Some(task.description().to_owned());
            object.examples = vec![task.example()];
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

fn set_run_task_body(doc: &mut utoipa::openapi::OpenApi, registry: &Registry) {
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name(REQUEST_SCHEMA)));
    let examples = registry.iter().map(|task| {
        let example = utoipa::openapi::example::ExampleBuilder::new()
            .summary(task.name())
            .value(Some(task.example()))
            .build();
        (task.name().to_owned(), example)
    });
    content = content.examples_from_iter(examples);
    let body = RequestBodyBuilder::new()
        .description(Some("The task to run."))
        .content("application/json", content.build())
        .required(Some(Required::True))
        .build();
    if let Some(operation) = doc
        .paths
        .paths
        .get_mut("/run-task")
        .and_then(|item| item.post.as_mut())
    {
        operation.request_body = Some(RefOr::T(body));
    }
}

/// The batch body: `{"tasks": [RunTaskRequest, …]}`.
fn set_run_tasks_body(doc: &mut utoipa::openapi::OpenApi, registry: &Registry) {
    let tasks = utoipa::openapi::schema::ArrayBuilder::new()
        .items(Ref::from_schema_name(REQUEST_SCHEMA))
        .min_items(Some(1));
    let schema = ObjectBuilder::new()
        .property("tasks", tasks)
        .required("tasks")
        .description(Some(
            "Up to `api.max_batch_size` tasks, each shaped like the body of `POST /run-task`.",
        ));
    let example: Vec<serde_json::Value> = registry.iter().map(|task| task.example()).collect();
    let content = ContentBuilder::new()
        .schema(Some(schema))
        .example(Some(serde_json::json!({ "tasks": example })))
        .build();
    let body = RequestBodyBuilder::new()
        .description(Some("The tasks to run, all or none."))
        .content("application/json", content)
        .required(Some(Required::True))
        .build();
    if let Some(operation) = doc
        .paths
        .paths
        .get_mut("/run-tasks")
        .and_then(|item| item.post.as_mut())
    {
        operation.request_body = Some(RefOr::T(body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_pascal_case() {
        assert_eq!(schema_name("sum"), "SumTask");
        assert_eq!(schema_name("file_hash"), "FileHashTask");
        assert_eq!(schema_name("query_llm"), "QueryLlmTask");
    }
}
