//! The layout rules of ARCHITECTURE.md that a reviewer would otherwise check
//! by hand: short files, SQL only in `store`, and no imports between the
//! API and the worker.

use std::path::{Path, PathBuf};

const LONGEST_FILE: usize = 400;

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn source_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    sources(&root.join("src"), &mut found);
    assert!(found.len() > 20, "the source tree was found");
    found
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            (name, text)
        })
        .collect()
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let long: Vec<String> = source_files()
        .into_iter()
        .filter(|(_, text)| text.lines().count() > LONGEST_FILE)
        .map(|(name, text)| format!("{name}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {LONGEST_FILE} lines: {long:?}");
}

#[test]
fn sql_lives_in_the_store_only() {
    let outside: Vec<String> = source_files()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("src/store/"))
        .filter(|(_, text)| {
            [
                "sqlx::query",
                "sqlx::query_as",
                "sqlx::query_scalar",
                "QueryBuilder",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(outside.is_empty(), "SQL outside src/store: {outside:?}");
}

#[test]
fn the_api_and_the_worker_never_import_each_other() {
    let crossing: Vec<String> = source_files()
        .into_iter()
        .filter(|(name, text)| {
            (name.starts_with("src/http/") && text.contains("crate::worker"))
                || (name.starts_with("src/worker/") && text.contains("crate::http"))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        crossing.is_empty(),
        "http and worker import each other: {crossing:?}"
    );
}
