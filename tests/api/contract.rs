//! The committed OpenAPI document, `docs/openapi.json`, is the contract that
//! clients and reviewers read: it must be exactly what the code generates.
//! `UPDATE_OPENAPI=1 cargo test --test api contract` rewrites it.

use std::path::Path;

use serde_json::Value;
use tasker::config::Config;
use tasker::tasks::Registry;

use crate::support::TestApp;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
const UPDATE: &str = "UPDATE_OPENAPI=1 cargo test --test api contract";

/// The document as the code builds it, pretty-printed with a trailing newline.
fn generated() -> String {
    let config = Config::default();
    let registry = Registry::new(&config).expect("the default registry");
    let document = tasker::http::openapi::document(&registry, &config.api);
    let mut text = serde_json::to_string_pretty(&document).expect("the document serialises");
    text.push('\n');
    text
}

/// Line number and both versions of the first line that differs.
fn first_difference(committed: &str, generated: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut generated_lines = generated.lines();
    for number in 1.. {
        match (committed_lines.next(), generated_lines.next()) {
            (None, None) => break,
            (old, new) if old == new => continue,
            (old, new) => {
                return format!(
                    "first difference at line {number}:\n  committed: {}\n  generated: {}",
                    old.unwrap_or("<end of file>"),
                    new.unwrap_or("<end of file>"),
                );
            }
        }
    }
    "the files differ only in their line endings or final newline".to_owned()
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = generated();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|value| value == "1") {
        std::fs::write(COMMITTED, &generated).expect("write docs/openapi.json");
        eprintln!("rewrote {COMMITTED}");
        return;
    }
    let committed = match std::fs::read_to_string(COMMITTED) {
        Ok(text) => text,
        Err(err) => panic!(
            "cannot read {}: {err}\nCreate it with: {UPDATE}",
            Path::new(COMMITTED).display()
        ),
    };
    assert!(
        committed == generated,
        "docs/openapi.json is out of date with the code; {}\n\
         If the API change is intended, regenerate the file and commit it:\n    {UPDATE}",
        first_difference(&committed, &generated)
    );
}

#[tokio::test]
async fn the_api_serves_the_same_document() {
    let expected: Value = serde_json::from_str(&generated()).expect("json");
    let app = TestApp::spawn_api_only().await;
    let served: Value = app.get_json("/openapi.json").await;
    assert_eq!(served, expected);
}

#[test]
fn a_difference_is_reported_by_line() {
    let report = first_difference("{\n  \"a\": 1\n}\n", "{\n  \"a\": 2\n}\n");
    assert!(report.contains("line 2"), "{report}");
    assert!(report.contains("\"a\": 1") && report.contains("\"a\": 2"));
    let report = first_difference("{\n}\n", "{\n}\n  \"b\"\n");
    assert!(report.contains("<end of file>"), "{report}");
}
