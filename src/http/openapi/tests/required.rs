//! Every field a response always carries is `required`, and nullable where
//! it may be null: generated clients then type it as always present.

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::{Value, json};

use super::*;
use crate::services::QueueState;

/// The response properties their Rust types leave out when empty
/// (`skip_serializing_if`): the only ones a response schema may leave out
/// of `required`. Each is checked against its type's serialisation below.
const SKIPPED_WHEN_EMPTY: [(&str, &str); 2] =
    [("DependencyState", "reason"), ("ReadyStatus", "consuming")];

/// Every schema a response can carry: those the responses name and,
/// transitively, those they name.
fn response_schemas(doc: &Value) -> BTreeSet<String> {
    fn refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    into.push(name.to_owned());
                }
                map.values().for_each(|v| refs(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    for path in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in path.as_object().into_iter().flat_map(|o| o.values()) {
            refs(&operation["responses"], &mut pending);
        }
    }
    refs(&doc["components"]["responses"], &mut pending);
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if seen.insert(name.clone()) {
            refs(&doc["components"]["schemas"][&name], &mut pending);
        }
    }
    seen
}

/// Whether a property's schema admits `null`.
fn admits_null(schema: &Value) -> bool {
    schema["type"] == "null"
        || schema["type"]
            .as_array()
            .is_some_and(|kinds| kinds.contains(&json!("null")))
        || ["oneOf", "anyOf"].iter().any(|key| {
            schema[key]
                .as_array()
                .is_some_and(|options| options.iter().any(admits_null))
        })
}

#[test]
fn every_field_a_response_always_has_is_required() {
    let registry = registry();
    let doc = document_json(&registry);
    let schemas = response_schemas(&doc);
    for expected in [
        "Queue",
        "ApiKey",
        "ErrorResponse",
        "TaskPage",
        "SumTaskResponse",
    ] {
        assert!(schemas.contains(expected), "{expected} in {schemas:?}");
    }
    let mut checked = 0;
    for name in &schemas {
        let schema = &doc["components"]["schemas"][name];
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for property in schema["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if SKIPPED_WHEN_EMPTY.contains(&(name.as_str(), property.as_str())) {
                assert!(!required.contains(&json!(property)), "{name}.{property}");
                continue;
            }
            assert!(
                required.contains(&json!(property)),
                "{name}.{property} is always sent, so it is required"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} properties checked");
}

/// Real values with nothing optional set: every field they carry is in the
/// schema, and every null is allowed by it; the skipped ones are absent.
#[test]
fn empty_optional_fields_are_sent_as_null_where_the_schema_allows_it() {
    let registry = registry();
    let doc = document_json(&registry);
    let mut record = task_record_example().unwrap_or_default();
    for field in [
        "error",
        "started_at",
        "completed_at",
        "next_attempt_at",
        "task_output",
    ] {
        record[field] = Value::Null;
    }
    let record: crate::domain::TaskRecord = match serde_json::from_value(record) {
        Ok(record) => record,
        Err(err) => panic!("the example is a TaskRecord: {err}"),
    };
    let queue = QueueView::from(QueueState {
        name: "default".into(),
        depth: None,
        oldest_age_seconds: None,
        running: 0,
        paused: false,
        paused_at: None,
    });
    let key = ApiKey {
        id: "key_0".into(),
        tenant: "acme".into(),
        scopes: vec![Scope::Read],
        rate_per_second: None,
        description: None,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    let samples = [
        (format!("{}Response", schema_name("sum")), json!(record)),
        ("Queue".to_owned(), json!(queue)),
        ("ApiKey".to_owned(), json!(key)),
    ];
    for (name, sample) in samples {
        let schema = &doc["components"]["schemas"][&name];
        let sent = sample.as_object().cloned().unwrap_or_default();
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            sent.keys().collect::<BTreeSet<_>>(),
            properties.keys().collect::<BTreeSet<_>>(),
            "{name}: what is sent is what the schema declares"
        );
        for (field, value) in &sent {
            if value.is_null() {
                assert!(
                    admits_null(&properties[field]),
                    "{name}.{field} may be null"
                );
            }
        }
    }
    let dependency = serde_json::to_value(DependencyState {
        status: "ok",
        reason: None,
    })
    .unwrap_or_default();
    assert_eq!(
        dependency,
        json!({"status": "ok"}),
        "reason is skipped when empty"
    );
}
