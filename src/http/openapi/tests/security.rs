//! The bearer scheme and the answers it brings, as generated clients see
//! them.

use serde_json::{Value, json};

use super::*;

/// With `auth.enabled`, every task, key and queue operation takes the
/// bearer token and may answer 401 and 403, and a submission 429 past its
/// key's rate; the operations endpoints never need a token.
#[test]
fn secured_operations_declare_the_bearer_scheme_and_its_answers() {
    let doc = document_json(&registry());
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let mut secured = 0;
    for (path, operations) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let what = format!("{method} {path}");
            let tags = operation["tags"].as_array().cloned().unwrap_or_default();
            if tags.contains(&json!("operations")) {
                assert!(operation["security"].is_null(), "{what} needs no token");
                continue;
            }
            let security = operation["security"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                security.contains(&json!({"bearer": []})),
                "{what}: {security:?}"
            );
            let responses = &operation["responses"];
            for status in ["401", "403"] {
                assert!(!responses[status].is_null(), "{what} answers {status}");
            }
            if matches!(path.as_str(), "/run-task" | "/run-tasks") {
                assert!(!responses["429"].is_null(), "{what} answers 429");
            }
            secured += 1;
        }
    }
    assert!(secured >= 15, "only {secured} secured operations");
}

/// `Value` lookups above read the document as a generator would.
#[test]
fn the_document_names_the_scheme_it_uses() {
    let doc: Value = document_json(&registry());
    let used: Vec<&str> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .flat_map(|ops| ops.as_object().into_iter().flat_map(|o| o.values()))
        .flat_map(|op| op["security"].as_array().into_iter().flatten())
        .flat_map(|req| req.as_object().into_iter().flat_map(|r| r.keys()))
        .map(String::as_str)
        .collect();
    assert!(!used.is_empty());
    for name in used {
        assert!(
            !doc["components"]["securitySchemes"][name].is_null(),
            "{name} is declared"
        );
    }
}
