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

use std::collections::BTreeMap;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayItems, Discriminator, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{OpenApi, PartialSchema};

use super::error::{ErrorCode, ErrorDetail, ErrorResponse};
use super::routes::{
    __path_cancel_task, __path_cancel_tasks, __path_create_key, __path_create_task,
    __path_create_tasks, __path_get_task, __path_get_task_output, __path_list_keys,
    __path_list_queues, __path_list_tasks, __path_openapi_json, __path_pause_queue,
    __path_resume_queue, __path_retry_task, __path_retry_tasks, __path_revoke_key, BulkFilter,
    CancelledCount, CreateKeyRequest, CreatedKeyResponse, ListKeysResponse, QueueListResponse,
    QueueView, RetriedCount,
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
        create_task, create_tasks, get_task_output, get_task, list_tasks, health, ready,
        openapi_json, create_key, list_keys, revoke_key, cancel_task, retry_task,
        cancel_tasks, retry_tasks, list_queues, pause_queue, resume_queue
    ),
    components(schemas(
        RunTaskResponse, RunTasksResponse, ListTasksResponse, TaskRecord, TaskStatus, ErrorResponse, ErrorDetail, ErrorCode,
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

/// The bearer scheme, offered on every operation of the `tasks` and
/// `keys` tags (and required by them when `auth.enabled`), with the answers it adds: 401 without
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
    let forbidden = |scope: &str| {
        error(
            &format!("The API key lacks the `{scope}` scope this needs"),
            "forbidden",
            &format!("this API key lacks the `{scope}` scope"),
        )
    };
    let invalid_json = error(
        "The body is not JSON",
        "invalid_json",
        "malformed JSON: EOF while parsing a value at line 1 column 0",
    );
    let too_large = error(
        "Body larger than `api.max_body_bytes`",
        "payload_too_large",
        "request body is larger than the limit of 1048576 bytes",
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
            if !tags
                .iter()
                .any(|t| t == "tasks" || t == "keys" || t == "queues")
            {
                continue;
            }
            // Optional in the document: without `auth.enabled` no key is
            // needed, and generated clients must not insist on one.
            operation.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
            let scope = required_scope(method, path, &tags);
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), RefOr::T(unauthorized.clone()));
            responses.insert("403".into(), RefOr::T(forbidden(scope)));
            if has_body {
                // Every body is read the same way (see `extract::JsonBody`).
                responses
                    .entry("400".into())
                    .or_insert_with(|| RefOr::T(invalid_json.clone()));
                responses
                    .entry("413".into())
                    .or_insert_with(|| RefOr::T(too_large.clone()));
            }
            if method == "post" && (path == "/run-task" || path == "/run-tasks") {
                responses.insert("429".into(), RefOr::T(rate_limited.clone()));
            }
        }
    }
}

/// The bodies of the bulk actions: `BulkFilter` with the statuses each
/// action applies to (`CancelFilter`, `RetryFilter`), naming at least one
/// filter or `"all": true`, so an empty body cannot act on every task by
/// accident.
fn bulk_filters(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(filter))) = components.schemas.remove("BulkFilter") else {
        return;
    };
    let all = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Boolean))
        .enum_values(Some([true]))
        .description(Some(
            "`true`: act on every task the action applies to, with no other filter.",
        ))
        .build();
    for (name, path, statuses) in [
        ("CancelFilter", "/tasks/cancel", ["pending", "running"]),
        ("RetryFilter", "/tasks/retry", ["failed", "cancelled"]),
    ] {
        let mut schema = filter.clone();
        schema.min_properties = Some(1);
        schema.properties.insert("all".into(), all.clone().into());
        let status = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(statuses))
            .description(Some("Only tasks in this status."))
            .build();
        schema.properties.insert("status".into(), status.into());
        components
            .schemas
            .insert(name.to_owned(), Schema::Object(schema).into());
        if let Some(operation) = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
        {
            let body = RequestBodyBuilder::new()
                .description(Some("Which tasks: the listing's filters."))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(name)))
                        .build(),
                )
                .required(Some(Required::True))
                .build();
            operation.request_body = Some(RefOr::T(body));
        }
    }
}

/// The scope an operation needs (as its handler requires it).
fn required_scope(method: &str, path: &str, tags: &[String]) -> &'static str {
    let admin_only = tags.iter().any(|t| t == "keys" || t == "queues")
        || path == "/tasks/cancel"
        || path == "/tasks/retry";
    match (admin_only, method) {
        (true, _) => "admin",
        (false, "get") => "read",
        (false, _) => "submit",
    }
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

/// A `oneOf` of named schemas with a discriminator mapping each value of
/// the discriminating property to its schema.
struct Union {
    property: &'static str,
    items: OneOfBuilder,
    mapping: BTreeMap<String, String>,
}

impl Union {
    fn new(property: &'static str) -> Self {
        Self {
            property,
            items: OneOfBuilder::new(),
            mapping: BTreeMap::new(),
        }
    }

    fn add(&mut self, value: &str, schema: String) {
        self.mapping
            .insert(value.to_owned(), format!("#/components/schemas/{schema}"));
        let items = std::mem::take(&mut self.items);
        self.items = items.item(Ref::from_schema_name(schema));
    }

    fn build(self, description: &str, example: Option<serde_json::Value>) -> RefOr<Schema> {
        let mut discriminator = Discriminator::new(self.property);
        discriminator.mapping = self.mapping;
        self.items
            .description(Some(description))
            .discriminator(Some(discriminator))
            .examples(example)
            .into()
    }
}

/// `{"type": "string", "const": value}`: a property with one possible value.
fn constant(value: &str, description: &str) -> Object {
    let mut schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .build();
    let mut keywords = Extensions::default();
    keywords.insert("const".to_owned(), value.into());
    schema.extensions = Some(keywords);
    schema
}

/// Whether `schema` is a [`constant`].
fn is_constant(schema: &Object) -> bool {
    schema
        .extensions
        .as_ref()
        .is_some_and(|keywords| keywords.contains_key("const"))
}

/// The example of `TaskRecord`, shown on the union.
fn task_record_example() -> Option<serde_json::Value> {
    match TaskRecord::schema() {
        RefOr::T(Schema::Object(object)) => object.example,
        _ => None,
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

/// The parameter schema with `task_name` added as a required constant
/// whose default is that constant, so generated constructors need no
/// argument for it.
fn request_schema(task: &RegisteredTask) -> RefOr<Schema> {
    let mut name_property = constant(task.name(), "Selects the task type.");
    name_property.default = Some(task.name().into());
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

/// `TaskRecord` for one task type: `task_name` is that type's name and
/// `task_output` its output schema (named `output`) or null.
fn response_schema(task: &RegisteredTask, output: &str) -> RefOr<Schema> {
    let RefOr::T(Schema::Object(mut object)) = TaskRecord::schema() else {
        return TaskRecord::schema();
    };
    object.properties.insert(
        "task_name".into(),
        constant(task.name(), "The task type.").into(),
    );
    let task_output = OneOfBuilder::new()
        .item(Ref::from_schema_name(output))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(format!(
            "The output of `{}` once the task has completed; null before and on failure.",
            task.name()
        )));
    object
        .properties
        .insert("task_output".into(), task_output.into());
    object.description = Some(format!(
        "A `{}` task and, once it has completed, its output.",
        task.name()
    ));
    object.example = None;
    RefOr::T(Schema::Object(object))
}

/// Adds [`NO_NUL_PATTERN`] to every free-form string in `schema`: enums,
/// constants and strings that already have a pattern are left alone.
fn forbid_nul(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(kind) => *kind == Type::String,
                SchemaType::Array(kinds) => kinds.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            let free_form =
                object.enum_values.is_none() && object.pattern.is_none() && !is_constant(object);
            if is_string && free_form {
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

/// The batch body, `RunTasksRequest`: `{"tasks": [RunTaskRequest, …]}`.
/// A named schema, so generated clients name its model too.
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
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(BATCH_REQUEST_SCHEMA.to_owned(), schema.into());
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(BATCH_REQUEST_SCHEMA)))
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
    use serde_json::{Value, json};

    fn registry() -> Registry {
        let Ok(registry) = Registry::new(&crate::config::Config::default()) else {
            panic!("the default registry builds");
        };
        registry
    }

    fn document_json(registry: &Registry) -> Value {
        serde_json::to_value(document(registry, &crate::config::Config::default().api))
            .unwrap_or_default()
    }

    #[test]
    fn request_variants_fill_in_their_task_name() {
        let registry = registry();
        let doc = document_json(&registry);
        let schemas = &doc["components"]["schemas"];
        let union = &schemas[REQUEST_SCHEMA];
        for task in registry.iter() {
            let name = schema_name(task.name());
            let task_name = &schemas[&name]["properties"]["task_name"];
            assert_eq!(task_name["const"], task.name(), "{name}");
            assert_eq!(task_name["default"], task.name(), "{name}");
            assert!(task_name["enum"].is_null(), "{name}: const, not enum");
            assert_eq!(
                union["discriminator"]["mapping"][task.name()],
                format!("#/components/schemas/{name}")
            );
        }
    }

    #[test]
    fn responses_are_discriminated_and_type_their_output() {
        let registry = registry();
        let doc = document_json(&registry);
        let schemas = &doc["components"]["schemas"];
        let union = &schemas[RESPONSE_SCHEMA];
        assert_eq!(union["discriminator"]["propertyName"], "task_name");
        assert_eq!(
            union["oneOf"].as_array().map(Vec::len),
            Some(registry.names().len())
        );
        for task in registry.iter() {
            let name = format!("{}Response", schema_name(task.name()));
            assert_eq!(
                union["discriminator"]["mapping"][task.name()],
                format!("#/components/schemas/{name}")
            );
            let variant = &schemas[&name];
            assert_eq!(variant["properties"]["task_name"]["const"], task.name());
            let (output, _) = task.output_schema();
            assert!(schemas[&output]["properties"].is_object(), "{output}");
            assert_eq!(
                variant["properties"]["task_output"]["oneOf"],
                json!([{"$ref": format!("#/components/schemas/{output}")}, {"type": "null"}]),
                "{name}"
            );
        }
        // Every read and the listing answer with the union.
        let task = json!({"$ref": "#/components/schemas/TaskResponse"});
        for path in ["/tasks/{task_uuid}", "/get-task-output"] {
            let ok = &doc["paths"][path]["get"]["responses"]["200"];
            assert_eq!(ok["content"]["application/json"]["schema"], task, "{path}");
        }
        let page = &doc["paths"]["/tasks"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"];
        let page = page.as_str().unwrap_or_default().rsplit('/').next();
        assert_eq!(
            schemas[page.unwrap_or_default()]["properties"]["tasks"]["items"],
            task
        );
    }

    /// `TaskRecord` serialises every field, null or not, so each is
    /// `required` in every response variant, and nullable where it may be null.
    #[test]
    fn every_field_a_task_always_has_is_required() {
        let example = task_record_example().unwrap_or_default();
        let record: crate::domain::TaskRecord = match serde_json::from_value(example) {
            Ok(record) => record,
            Err(err) => panic!("the example is a TaskRecord: {err}"),
        };
        let fields = serde_json::to_value(&record).unwrap_or_default();
        let fields = fields.as_object().cloned().unwrap_or_default();
        assert!(fields.len() > 5, "{fields:?}");
        let registry = registry();
        let doc = document_json(&registry);
        for task in registry.iter() {
            let name = format!("{}Response", schema_name(task.name()));
            let variant = &doc["components"]["schemas"][&name];
            let required = variant["required"].as_array().cloned().unwrap_or_default();
            for field in fields.keys() {
                assert!(required.contains(&json!(field)), "{name}.{field}");
            }
            for field in ["error", "started_at", "completed_at", "next_attempt_at"] {
                let kinds = &variant["properties"][field]["type"];
                assert!(
                    kinds.as_array().is_some_and(|t| t.contains(&json!("null"))),
                    "{name}.{field} may be null: {kinds}"
                );
            }
        }
        let page = &doc["components"]["schemas"]["TaskPage"];
        assert!(
            page["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("next_cursor")))
        );
    }

    /// Generators name each operation's types after it (hey-api:
    /// `ListTasksResponse`, `HealthData`, …); a schema of such a name gets
    /// a number appended (`HealthResponse2`) in the generated client.
    #[test]
    fn schema_names_do_not_collide_with_generated_operation_types() {
        let doc = document_json(&registry());
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let operation_ids: Vec<String> = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
            .filter_map(|operation| operation["operationId"].as_str())
            .map(|id| {
                id.split('_')
                    .map(|part| {
                        let mut chars = part.chars();
                        chars
                            .next()
                            .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        assert!(operation_ids.contains(&"ListTasks".to_owned()));
        for operation in &operation_ids {
            for suffix in ["Data", "Error", "Errors", "Response", "Responses"] {
                let generated = format!("{operation}{suffix}");
                assert!(
                    !schemas.contains_key(&generated),
                    "schema {generated} collides with a generated type"
                );
            }
        }
    }

    #[test]
    fn clients_get_a_default_base_url() {
        let doc = document_json(&registry());
        assert_eq!(doc["servers"][0]["url"], "http://localhost:8000");
    }

    #[test]
    fn get_task_output_needs_neither_of_its_two_id_parameters_alone() {
        let doc = document_json(&registry());
        let parameters = doc["paths"]["/get-task-output"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for name in ["task_uuid", "taskuuid"] {
            let parameter = parameters.iter().find(|p| p["name"] == name);
            assert_eq!(
                parameter.map(|p| p["required"].clone()),
                Some(json!(false)),
                "{name}"
            );
        }
    }

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
                if is_string && schema["enum"].is_null() && schema["const"].is_null() {
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
        assert!(schemas["SumTaskResponse"]["properties"]["error"]["pattern"].is_null());
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
