//! The OpenAPI document. Paths come from the handlers' annotations; the
//! request body of `POST /run-task` is built from the task registry, a
//! `oneOf` with a discriminator on `task_name`, so it never drifts from the
//! task types that exist. Its strings carry the rule the HTTP layer applies
//! to every request body: no U+0000.

use std::collections::BTreeMap;

use utoipa::OpenApi;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayItems, Discriminator, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};

use super::error::{ErrorCode, ErrorDetail, ErrorResponse};
use super::routes::{
    __path_create_key, __path_create_task, __path_create_tasks, __path_get_task,
    __path_get_task_output, __path_list_keys, __path_list_tasks, __path_openapi_json,
    __path_revoke_key, CreateKeyRequest, CreatedKeyResponse, ListKeysResponse,
};
use super::schemas::{ListTasksResponse, RunTaskResponse, RunTasksResponse};
use crate::config::ApiConfig;
use crate::domain::{Scope, TaskRecord, TaskStatus};
use crate::ops::{
    __path_health, __path_ready, DependencyState, HealthResponse, Readiness, ReadyResponse,
};
use crate::store::ApiKey;
use crate::tasks::{RegisteredTask, Registry};

const REQUEST_SCHEMA: &str = "RunTaskRequest";

/// Request bodies with U+0000 in a string are refused (PostgreSQL cannot
/// store it; see `extract::JsonBody`), so their string schemas say so.
const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasker",
        description = "Asynchronous task execution: submit a task, get its id at once, poll for the result."
    ),
    paths(
        create_task, create_tasks, get_task_output, get_task, list_tasks, health, ready,
        openapi_json, create_key, list_keys, revoke_key
    ),
    components(schemas(
        RunTaskResponse, RunTasksResponse, ListTasksResponse, TaskRecord, TaskStatus, ErrorResponse, ErrorDetail, ErrorCode,
        HealthResponse, ReadyResponse, Readiness, DependencyState, ApiKey, Scope,
        CreateKeyRequest, CreatedKeyResponse, ListKeysResponse
    )),
    tags(
        (name = "tasks", description = "Submit tasks and read their results"),
        (name = "keys", description = "API keys (admin keys only; with `auth.enabled`)"),
        (name = "operations", description = "Probes and this document (metrics are on the operations port, `api.ops_listen`)"),
    )
)]
struct ApiDoc;

/// The complete document for the task types in `registry` and the limits
/// in `api`.
pub fn document(registry: &Registry, api: &ApiConfig) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    let mut union = OneOfBuilder::new();
    let mut mapping = BTreeMap::new();
    for task in registry.iter() {
        let name = schema_name(task.name());
        for (referenced, mut schema) in task.referenced_schemas() {
            forbid_nul(&mut schema);
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
    secure_task_operations(&mut doc);
    set_run_task_body(&mut doc, registry);
    set_run_tasks_body(&mut doc, registry, api.max_batch_size.get());
    link_submission_to_reads(&mut doc);
    doc
}

/// The bearer scheme, required by every operation of the `tasks` and
/// `keys` tags (when `auth.enabled`), with the answers it adds: 401 without
/// a valid key, 403 without the scope, 429 past a key's rate.
fn secure_task_operations(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key's token (`tsk_…`), when the service runs with `auth.enabled`.",
                ))
                .build(),
        ),
    );
    let error = |description: &str, code: &str, message: &str| {
        let example =
            serde_json::json!({"error": {"code": code, "message": message, "details": null}});
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .example(Some(example))
                    .build(),
            )
            .build()
    };
    let unauthorized = error(
        "No API key, or one that is unknown, revoked or expired (with `auth.enabled`)",
        "unauthorized",
        "an API key is required: send `Authorization: Bearer <token>`",
    );
    let forbidden = error(
        "The API key lacks the scope this needs",
        "forbidden",
        "this API key lacks the `submit` scope",
    );
    let rate_limited = error(
        "The API key's submission rate is spent; `Retry-After` says when to try again",
        "rate_limited",
        "this API key's rate limit is reached; retry after 400 ms",
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [("get", item.get.as_mut()), ("post", item.post.as_mut())];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let tags = operation.tags.clone().unwrap_or_default();
            if !tags.iter().any(|t| t == "tasks" || t == "keys") {
                continue;
            }
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), RefOr::T(unauthorized.clone()));
            responses.insert("403".into(), RefOr::T(forbidden.clone()));
            if method == "post" && (path == "/run-task" || path == "/run-tasks") {
                responses.insert("429".into(), RefOr::T(rate_limited.clone()));
            }
        }
    }
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
            object.examples = vec![task.example().clone()];
            let mut schema = RefOr::T(Schema::Object(object));
            forbid_nul(&mut schema);
            schema
        }
        other => other,
    }
}

/// Adds [`NO_NUL_PATTERN`] to every free-form string in `schema`: enums
/// and strings that already have a pattern are left alone.
fn forbid_nul(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(kind) => *kind == Type::String,
                SchemaType::Array(kinds) => kinds.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if is_string && object.enum_values.is_none() && object.pattern.is_none() {
                object.pattern = Some(NO_NUL_PATTERN.to_owned());
            }
            object.properties.values_mut().for_each(forbid_nul);
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul(items);
            }
        }
        _ => {}
    }
}

fn set_run_task_body(doc: &mut utoipa::openapi::OpenApi, registry: &Registry) {
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name(REQUEST_SCHEMA)));
    let examples = registry.iter().map(|task| {
        let example = utoipa::openapi::example::ExampleBuilder::new()
            .summary(task.name())
            .value(Some(task.example().clone()))
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
fn set_run_tasks_body(doc: &mut utoipa::openapi::OpenApi, registry: &Registry, max: usize) {
    let tasks = utoipa::openapi::schema::ArrayBuilder::new()
        .items(Ref::from_schema_name(REQUEST_SCHEMA))
        .min_items(Some(1))
        .max_items(Some(max));
    let schema = ObjectBuilder::new()
        .property("tasks", tasks)
        .required("tasks")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .description(Some(
            "Up to `api.max_batch_size` tasks, each shaped like the body of `POST /run-task`.",
        ));
    let example: Vec<serde_json::Value> =
        registry.iter().map(|task| task.example().clone()).collect();
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

/// Links from the `202` of `POST /run-task` to the two reads of the task, so
/// clients (and stateful API testers) know where `task_uuid` goes next.
fn link_submission_to_reads(doc: &mut utoipa::openapi::OpenApi) {
    let accepted = doc
        .paths
        .paths
        .get_mut("/run-task")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.responses.responses.get_mut("202"));
    let Some(RefOr::T(accepted)) = accepted else {
        return;
    };
    for (name, operation_id, description) in [
        (
            "GetTask",
            "get_task",
            "`GET /tasks/{task_uuid}` with the new task's id",
        ),
        (
            "GetTaskOutput",
            "get_task_output",
            "`GET /get-task-output?task_uuid=` with the new task's id",
        ),
    ] {
        let link = LinkBuilder::new()
            .operation_id(operation_id)
            .parameter("task_uuid", "$response.body#/task_uuid")
            .description(description)
            .build();
        accepted.links.insert(name.to_owned(), RefOr::T(link));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_form_request_strings_forbid_nul() {
        let Ok(registry) = Registry::new(&crate::config::Config::default()) else {
            panic!("the default registry builds");
        };
        let doc = serde_json::to_value(document(&registry, &crate::config::Config::default().api))
            .unwrap_or_default();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["FileHashTask"]["properties"]["content"]["pattern"],
            NO_NUL_PATTERN
        );
        // A task type may give a string a pattern of its own; it must then
        // exclude U+0000 itself, since that pattern is kept as it is.
        for task in registry.iter() {
            let name = schema_name(task.name());
            let properties = schemas[&name]["properties"].as_object().cloned();
            for (property, schema) in properties.unwrap_or_default() {
                let is_string = schema["type"] == "string"
                    || schema["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&"string".into()));
                if is_string && schema["enum"].is_null() {
                    let pattern = schema["pattern"].as_str().unwrap_or_default();
                    assert!(
                        pattern.contains("\\u0000"),
                        "{name}.{property}: {pattern:?}"
                    );
                }
            }
        }
        assert!(schemas["SumTask"]["properties"]["task_name"]["pattern"].is_null());
        assert!(schemas["Algorithm"]["pattern"].is_null(), "enums need none");
        assert!(schemas["TaskResponse"]["properties"]["error"]["pattern"].is_null());
    }

    #[test]
    fn the_submission_links_to_operations_that_exist() {
        let Ok(registry) = Registry::new(&crate::config::Config::default()) else {
            panic!("the default registry builds");
        };
        let doc = serde_json::to_value(document(&registry, &crate::config::Config::default().api))
            .unwrap_or_default();
        let links = &doc["paths"]["/run-task"]["post"]["responses"]["202"]["links"];
        let links = links.as_object().cloned().unwrap_or_default();
        assert_eq!(links.len(), 2, "{links:?}");
        let operation_ids: Vec<&str> = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(|item| item["get"]["operationId"].as_str())
            .collect();
        for link in links.values() {
            let target = link["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.contains(&target),
                "{target} in {operation_ids:?}"
            );
            assert_eq!(link["parameters"]["task_uuid"], "$response.body#/task_uuid");
        }
    }

    #[test]
    fn schema_names_are_pascal_case() {
        assert_eq!(schema_name("sum"), "SumTask");
        assert_eq!(schema_name("file_hash"), "FileHashTask");
        assert_eq!(schema_name("query_llm"), "QueryLlmTask");
    }
}
