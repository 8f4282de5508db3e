mod required;
mod security;

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
    let page = &doc["paths"]["/tasks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        ["$ref"];
    let page = page.as_str().unwrap_or_default().rsplit('/').next();
    assert_eq!(
        schemas[page.unwrap_or_default()]["properties"]["tasks"]["items"],
        task
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
        .map(task_schemas::pascal_case)
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

/// A task type's schemas never take the name of one of the document's own
/// (`ErrorResponse`, `Queue`, …): it would silently replace it.
#[test]
fn task_schemas_do_not_replace_the_document_s_own() {
    let fixed: std::collections::BTreeSet<String> = ApiDoc::openapi()
        .components
        .map(|components| components.schemas.keys().cloned().collect())
        .unwrap_or_default();
    assert!(fixed.contains("ErrorResponse"), "{fixed:?}");
    for task in registry().iter() {
        let mut names = vec![
            schema_name(task.name()),
            format!("{}Response", schema_name(task.name())),
            task.output_schema().0,
        ];
        names.extend(task.referenced_schemas().into_iter().map(|(name, _)| name));
        for name in names {
            assert!(!fixed.contains(&name), "{}: {name}", task.name());
        }
    }
}
