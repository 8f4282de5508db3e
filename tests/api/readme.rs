//! The README's tables match the code: every error code, every operation of
//! the OpenAPI document and every configuration key is listed.

use serde_json::Value;
use tasker::config::Config;
use tasker::tasks::Registry;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

fn document() -> Value {
    let config = Config::default();
    let registry = Registry::new(&config).expect("the default registry");
    serde_json::to_value(tasker::http::openapi::document(&registry, &config.api))
        .expect("the document")
}

/// The table rows of the README (lines starting with `|`).
fn rows(readme: &str) -> Vec<&str> {
    readme
        .lines()
        .filter(|line| line.starts_with('|'))
        .collect()
}

#[test]
fn the_error_table_lists_every_code() {
    let readme = readme();
    let rows = rows(&readme);
    let codes = document()["components"]["schemas"]["ErrorCode"]["enum"].clone();
    let codes = codes.as_array().cloned().unwrap_or_default();
    assert!(codes.len() > 5, "{codes:?}");
    for code in codes {
        let code = code.as_str().unwrap();
        let cell = format!("| `{code}` |");
        assert!(
            rows.iter().any(|row| row.contains(&cell)),
            "the README's error table lacks `{code}`"
        );
    }
}

#[test]
fn the_api_table_lists_every_operation() {
    let readme = readme();
    let rows = rows(&readme);
    let doc = document();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let listed = format!("`{} {path}", method.to_uppercase());
            assert!(
                rows.iter().any(|row| row.contains(&listed)),
                "the README's API table lacks {listed}`"
            );
        }
    }
}

#[test]
fn the_configuration_table_lists_every_key() {
    let readme = readme();
    let rows = rows(&readme);
    let config = Config::default();
    let registry = Registry::new(&config).unwrap();
    let effective: toml::Table = tasker::app::effective_config(&config, &registry)
        .unwrap()
        .parse()
        .unwrap();
    let mut keys = Vec::new();
    for (section, table) in &effective {
        if section == "task_queues" {
            keys.push("task_queues.<task_name>".to_owned());
            continue;
        }
        for key in table.as_table().unwrap().keys() {
            keys.push(format!("{section}.{key}"));
        }
    }
    assert!(keys.len() > 20, "{keys:?}");
    for key in keys {
        let cell = format!("| `{key}` |");
        assert!(
            rows.iter().any(|row| row.starts_with(&cell)),
            "the README's configuration table lacks `{key}`"
        );
    }
}
