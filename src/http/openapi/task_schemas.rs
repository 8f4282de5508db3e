//! The task schemas, built from the registry: one request and one
//! response schema per task type, their unions, and the bodies of
//! `POST /run-task` and `POST /run-tasks`.

use std::collections::BTreeMap;

use utoipa::PartialSchema;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayItems, Discriminator, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};

use crate::domain::TaskRecord;
use crate::tasks::{RegisteredTask, Registry};

use super::{BATCH_REQUEST_SCHEMA, NO_NUL_PATTERN, REQUEST_SCHEMA};

/// A `oneOf` of named schemas with a discriminator mapping each value of
/// the discriminating property to its schema.
pub(super) struct Union {
    property: &'static str,
    items: OneOfBuilder,
    mapping: BTreeMap<String, String>,
}

impl Union {
    pub(super) fn new(property: &'static str) -> Self {
        Self {
            property,
            items: OneOfBuilder::new(),
            mapping: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, value: &str, schema: String) {
        self.mapping
            .insert(value.to_owned(), format!("#/components/schemas/{schema}"));
        let items = std::mem::take(&mut self.items);
        self.items = items.item(Ref::from_schema_name(schema));
    }

    pub(super) fn build(
        self,
        description: &str,
        example: Option<serde_json::Value>,
    ) -> RefOr<Schema> {
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
pub(super) fn constant(value: &str, description: &str) -> Object {
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
pub(super) fn is_constant(schema: &Object) -> bool {
    schema
        .extensions
        .as_ref()
        .is_some_and(|keywords| keywords.contains_key("const"))
}

/// The example of `TaskRecord`, shown on the union.
pub(super) fn task_record_example() -> Option<serde_json::Value> {
    match TaskRecord::schema() {
        RefOr::T(Schema::Object(object)) => object.example,
        _ => None,
    }
}

/// `file_hash` → `FileHashTask`.
pub(super) fn schema_name(task_name: &str) -> String {
    format!("{}Task", pascal_case(task_name))
}

/// `list_tasks` → `ListTasks`, as generators name a type after a name.
pub(super) fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The parameter schema with `task_name` added as a required constant
/// whose default is that constant, so generated constructors need no
/// argument for it.
pub(super) fn request_schema(task: &RegisteredTask) -> RefOr<Schema> {
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
pub(super) fn response_schema(task: &RegisteredTask, output: &str) -> RefOr<Schema> {
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
pub(super) fn forbid_nul(schema: &mut RefOr<Schema>) {
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

pub(super) fn set_run_task_body(doc: &mut utoipa::openapi::OpenApi, registry: &Registry) {
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
pub(super) fn set_run_tasks_body(
    doc: &mut utoipa::openapi::OpenApi,
    registry: &Registry,
    max: usize,
) {
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
pub(super) fn link_submission_to_reads(doc: &mut utoipa::openapi::OpenApi) {
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
