//! The layout rules of ARCHITECTURE.md that a reviewer would otherwise check
//! by hand: short files, SQL only in `store`, Redis commands only in their
//! modules, handlers only through services, no imports between the API and
//! the worker, and no two modules importing each other.

use std::collections::BTreeSet;
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
fn redis_commands_are_sent_by_their_modules_only() {
    let senders = [
        "src/queue/",
        "src/cache.rs",
        "src/watch.rs",
        "src/budget.rs",
        "src/redis_pool/",
    ];
    let outside: Vec<String> = source_files()
        .into_iter()
        .filter(|(name, _)| !senders.iter().any(|s| name.starts_with(s)))
        .filter(|(_, text)| {
            ["redis::cmd", "redis::pipe", "redis::Script"]
                .iter()
                .any(|needle| text.contains(needle))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        outside.is_empty(),
        "Redis commands outside {senders:?}: {outside:?}"
    );
}

#[test]
fn handlers_reach_the_store_and_the_cache_through_services() {
    let reaching: Vec<String> = source_files()
        .into_iter()
        .filter(|(name, _)| name.starts_with("src/http/routes/"))
        .filter(|(_, text)| {
            [".store.", ".cache.", "crate::cache", "Store::"]
                .iter()
                .any(|needle| text.contains(needle))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        reaching.is_empty(),
        "handlers touching the store or cache: {reaching:?}"
    );
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

#[test]
fn no_two_modules_import_each_other() {
    let files: Vec<(Vec<String>, String)> = source_files()
        .into_iter()
        .filter_map(|(name, text)| Some((module_of(&name)?, text)))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges = BTreeSet::new();
    for (module, text) in &files {
        for path in imported_paths(&code_of(text)) {
            let Some(target) = resolve(&path, module, &modules) else {
                continue;
            };
            // A module and its own submodules may use each other.
            if !target.starts_with(module) && !module.starts_with(&target) {
                edges.insert((module.clone(), target));
            }
        }
    }
    let cycles: Vec<String> = edges
        .iter()
        .filter(|(from, to)| from < to && edges.contains(&(to.clone(), from.clone())))
        .map(|(from, to)| format!("{} <-> {}", from.join("::"), to.join("::")))
        .collect();
    assert!(
        cycles.is_empty(),
        "modules importing each other: {cycles:?}"
    );
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` is
/// the crate root; `src/main.rs` is another crate.
fn module_of(name: &str) -> Option<Vec<String>> {
    let path = name.strip_prefix("src/")?.strip_suffix(".rs")?;
    if path == "main" {
        return None;
    }
    let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
        segments.pop();
    }
    Some(segments)
}

/// The code of a file without comments and without its inline
/// `#[cfg(test)]` modules (a test's `super` is the file itself).
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim().starts_with("mod ") && next.ends_with('{'))
        {
            let mut depth = 0i32;
            for line in lines.by_ref() {
                depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
                if depth <= 0 && line.contains('}') {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = line.find(" // ").map_or(line, |at| &line[..at]);
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every path a `use` names (groups expanded) and every `crate::`/`super::`
/// path written in the code.
fn imported_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    let mut outside_use = String::new();
    while let Some(at) = find_use(rest) {
        outside_use.push_str(&rest[..at]);
        let tree = &rest[at + 4..];
        let end = tree.find(';').unwrap_or(tree.len());
        paths.extend(expand(&tree[..end]));
        rest = &tree[end..];
    }
    outside_use.push_str(rest);
    for prefix in ["crate::", "super::"] {
        for (at, _) in outside_use.match_indices(prefix) {
            let before = outside_use[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                continue;
            }
            let path: String = outside_use[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// Where the next `use` declaration starts: a line beginning with `use`,
/// `pub use` or `pub(…) use`.
fn find_use(code: &str) -> Option<usize> {
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let mut rest = line.trim_start();
        if let Some(after) = rest.strip_prefix("pub") {
            rest = match after.strip_prefix('(') {
                Some(scoped) => scoped.split_once(')').map_or("", |(_, r)| r),
                None => after,
            }
            .trim_start();
        }
        if rest.starts_with("use ") {
            return Some(offset + line.len() - rest.len());
        }
        offset += line.len();
    }
    None
}

/// A use tree as the paths it names: `a::{b, c::{self, d}}` gives `a::b`,
/// `a::c` and `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        let path = path.trim_end_matches("::*").trim_end_matches("::self");
        return vec![path.to_owned()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let close = tree.rfind('}').unwrap_or(tree.len());
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, open + 1);
    for (at, c) in tree[..close]
        .char_indices()
        .skip_while(|(at, _)| *at <= open)
    {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..close]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(expand)
        .map(|path| match (prefix, path.as_str()) {
            (prefix, "self") => prefix.to_owned(),
            ("", path) => path.to_owned(),
            (prefix, path) => format!("{prefix}::{path}"),
        })
        .collect()
}

/// The module a `crate::`, `super::` or `self::` path in `module` lands in
/// (the longest prefix that is a module file); `None` for other crates.
fn resolve(path: &str, module: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut absolute: Vec<String> = match segments.next()? {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    for segment in segments {
        if segment == "super" {
            absolute.pop();
        } else {
            absolute.push(segment.to_owned());
        }
    }
    (0..=absolute.len())
        .rev()
        .map(|len| absolute[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
}

#[test]
fn the_import_reader_expands_groups_and_resolves_relative_paths() {
    let modules: BTreeSet<Vec<String>> = [vec![], vec!["a".into()], vec!["a".into(), "b".into()]]
        .into_iter()
        .collect();
    let paths =
        imported_paths("use super::{b::{self, X}, Y as Z};\nfn f() { crate::a::b::g(); }\n");
    assert_eq!(
        paths,
        ["super::b", "super::b::X", "super::Y", "crate::a::b::g"]
    );
    let here = ["a".to_owned(), "c".to_owned()];
    assert_eq!(
        resolve("super::b::X", &here, &modules),
        Some(vec!["a".into(), "b".into()])
    );
    assert_eq!(resolve("tokio::spawn", &here, &modules), None);
    assert_eq!(
        code_of("#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
        ""
    );
}
