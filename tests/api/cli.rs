//! `tasker task` and `tasker queue`: the real binary against a running
//! API, with only a URL (and a token) to go on.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::TestApp;

const BINARY: &str = env!("CARGO_BIN_EXE_tasker");

/// How a run of the binary ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout as one JSON value.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("{err}: stdout {:?}\n{}", self.stdout, self.stderr))
    }

    /// stdout as JSON Lines.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn ok(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stdout: String = self.stdout.chars().take(3000).collect();
        write!(
            f,
            "exit {}\nstdout:\n{stdout}\nstderr:\n{}",
            self.code, self.stderr
        )
    }
}

/// Runs `tasker ARGS` with exactly `env` (nothing inherited) and `stdin`.
async fn tasker_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut child = tokio::process::Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tasker");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `tasker ARGS` against `app`, found through `TASKER_URL`.
async fn tasker(app: &TestApp, args: &[&str]) -> Run {
    let url = app.url("");
    tasker_with(args, &[("TASKER_URL", &url)], None).await
}

/// A `sum` that fails for good: the registry's example with every number
/// at the largest 64-bit integer, so the sum overflows.
fn failing_task(app: &TestApp) -> Value {
    let mut body = app.services.registry.get("sum").unwrap().example().clone();
    for value in body.as_object_mut().unwrap().values_mut() {
        if value.is_number() {
            *value = json!(i64::MAX);
        }
    }
    body
}

#[tokio::test]
async fn submit_with_wait_prints_the_result_and_exit_codes_follow_it() {
    let app = TestApp::spawn().await;
    let sum = r#"{"task_name": "sum", "a": 1, "b": 2}"#;

    let run = tasker(&app, &["task", "submit", sum, "--wait"]).await;
    assert!(run.ok(), "{run:?}");
    let task = run.json();
    assert_eq!(task["status"], "completed", "{run:?}");
    assert_eq!(task["task_output"], json!({"result": 3}));

    // Without --wait: the API's answer; then read it back, by --url.
    let run = tasker(&app, &["task", "submit", sum, "--idempotency-key", "k-1"]).await;
    assert!(run.ok(), "{run:?}");
    let id = run.json()["task_uuid"].as_str().unwrap().to_owned();
    let again = tasker(&app, &["task", "submit", sum, "--idempotency-key", "k-1"]).await;
    assert_eq!(again.json()["task_uuid"], id.as_str(), "the key replays");
    let url = app.url("");
    let run = tasker_with(&["task", "get", &id, "--wait=10", "--url", &url], &[], None).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.json()["task_uuid"], id.as_str());
    assert_eq!(run.json()["status"], "completed");

    // From stdin.
    let run = tasker_with(
        &["task", "submit", "-", "--wait", "--url", &url],
        &[],
        Some(sum),
    )
    .await;
    assert!(run.ok() && run.json()["status"] == "completed", "{run:?}");

    // A task that fails: exit 1, the task printed all the same.
    let failing = failing_task(&app).to_string();
    let run = tasker(&app, &["task", "submit", &failing, "--wait", "20"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let task = run.json();
    assert_eq!(task["status"], "failed", "{run:?}");
    assert!(
        task["error"].as_str().unwrap().contains("overflow"),
        "{run:?}"
    );
    let id = task["task_uuid"].as_str().unwrap();
    let run = tasker(&app, &["task", "get", id, "--wait"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let run = tasker(&app, &["task", "get", id]).await;
    assert!(
        run.ok(),
        "a plain read succeeds whatever the status: {run:?}"
    );

    // Refused by the API: exit 1 and its code; unusable input: exit 2.
    let run = tasker(&app, &["task", "submit", r#"{"task_name": "divide"}"#]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with("error: unknown_task_name: "),
        "{run:?}"
    );
    let run = tasker(&app, &["task", "submit", "{not json"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run = tasker(&app, &["task", "get", &uuid::Uuid::new_v4().to_string()]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: not_found: "), "{run:?}");
}

#[tokio::test]
async fn a_wait_that_runs_out_exits_three_with_the_task_as_it_stands() {
    let app = TestApp::spawn_api_only().await;
    let sum = r#"{"task_name": "sum", "a": 1, "b": 2}"#;
    let started = std::time::Instant::now();
    let run = tasker(&app, &["task", "submit", sum, "--wait=0.5"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.json()["status"], "pending", "{run:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    let id = run.json()["task_uuid"].as_str().unwrap().to_owned();
    let run = tasker(&app, &["task", "get", &id, "--wait", "0"]).await;
    assert_eq!(run.code, 3, "{run:?}");
}

#[tokio::test]
async fn get_and_list_filter_and_print_tables() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            app.submit(json!({"task_name": "sum", "a": n, "b": 1}))
                .await,
        );
    }
    let hash = app
        .submit(json!({"task_name": "file_hash", "content": "abc"}))
        .await;
    for id in ids.iter().chain([&hash]) {
        app.wait_terminal(*id).await;
    }

    let run = tasker(&app, &["task", "list", "--task-name", "file_hash"]).await;
    assert!(run.ok(), "{run:?}");
    let listed = run.json();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1, "{run:?}");
    assert_eq!(listed["tasks"][0]["task_uuid"], hash.to_string());

    let run = tasker(
        &app,
        &[
            "task",
            "list",
            "--status",
            "completed",
            "--queue",
            "default",
            "--limit",
            "2",
        ],
    )
    .await;
    let listed = run.json();
    let tasks = listed["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{run:?}");
    assert_eq!(tasks[0]["task_uuid"], hash.to_string(), "newest first");
    assert!(listed["next_cursor"].is_string(), "{run:?}");
    let cursor = listed["next_cursor"].as_str().unwrap();
    let run = tasker(&app, &["task", "list", "--cursor", cursor]).await;
    assert_eq!(run.json()["tasks"].as_array().unwrap().len(), 2, "{run:?}");
    let run = tasker(&app, &["task", "list", "--status", "failed"]).await;
    assert_eq!(run.json()["tasks"], json!([]), "{run:?}");
    let run = tasker(&app, &["task", "list", "--status", "done"]).await;
    assert_eq!(run.code, 2, "a status that does not exist: {run:?}");

    let run = tasker(&app, &["task", "list", "--output", "table"]).await;
    assert!(run.ok(), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four tasks: {run:?}");
    for column in [
        "TASK_UUID",
        "NAME",
        "STATUS",
        "CREATED",
        "DURATION",
        "ATTEMPTS",
    ] {
        assert!(lines[0].contains(column), "{run:?}");
    }
    let status_at = lines[0].find("STATUS").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|line| line[status_at..].starts_with("completed")),
        "aligned: {run:?}"
    );
    assert!(lines[1].starts_with(&hash.to_string()), "{run:?}");

    let id = ids[0].to_string();
    let run = tasker(&app, &["task", "get", &id, "--output", "table"]).await;
    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("completed")),
        "{run:?}"
    );
    assert!(run.stdout.contains(r#"{"result":1}"#), "{run:?}");
}

#[tokio::test]
async fn cancel_retry_and_queues_pause_and_resume() {
    let app = TestApp::spawn().await;
    let run = tasker(&app, &["queue", "pause", "default"]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.json()["paused"], true);

    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await
        .to_string();
    let run = tasker(&app, &["queue", "list", "--output", "table"]).await;
    assert!(run.ok(), "{run:?}");
    let header = run.stdout.lines().next().unwrap();
    for column in ["NAME", "DEPTH", "OLDEST", "RUNNING", "PAUSED"] {
        assert!(header.contains(column), "{run:?}");
    }
    let default = run
        .stdout
        .lines()
        .find(|line| line.starts_with("default "))
        .unwrap();
    assert!(default.ends_with("yes"), "{run:?}");
    let run = tasker(&app, &["queue", "list"]).await;
    let queues = run.json()["queues"].as_array().cloned().unwrap();
    assert!(
        queues
            .iter()
            .any(|q| q["name"] == "llm" && q["paused"] == false)
    );

    // Pending, the queue paused: cancel, then retry.
    let run = tasker(&app, &["task", "cancel", &id]).await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.json()["status"], "cancelled");
    let run = tasker(&app, &["task", "retry", &id, "--output", "table"]).await;
    assert!(run.ok(), "{run:?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("pending")),
        "{run:?}"
    );

    let run = tasker(&app, &["queue", "resume", "default"]).await;
    assert!(run.ok() && run.json()["paused"] == false, "{run:?}");
    let run = tasker(&app, &["task", "get", &id, "--wait", "20"]).await;
    assert!(run.ok() && run.json()["status"] == "completed", "{run:?}");

    // Finished: both are conflicts, with the API's code on stderr.
    for action in ["cancel", "retry"] {
        let run = tasker(&app, &["task", action, &id]).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.starts_with("error: status_conflict: "),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    let run = tasker(&app, &["queue", "pause", "no-such-queue"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: not_found: "), "{run:?}");
}

#[tokio::test]
async fn a_file_is_submitted_in_batches_and_refused_lines_are_named() {
    let app = TestApp::spawn().await;
    let mut text = String::new();
    for line in 1..=300 {
        let body = match line {
            7 => "{\"task_name\": \"sum\", \"a\": 1,".to_owned(),
            150 => json!({"task_name": "divide", "a": 1}).to_string(),
            _ => json!({"task_name": "sum", "a": line, "b": 1}).to_string(),
        };
        text.push_str(&body);
        text.push('\n');
    }
    let dir = std::env::temp_dir().join(format!("tasker-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tasks.jsonl");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap();

    let run = tasker(
        &app,
        &[
            "task",
            "submit",
            "--file",
            path,
            "--batch-size",
            "64",
            "--wait",
        ],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, 1, "refused lines make it fail: {run:?}");
    assert!(
        run.stderr.contains("error: line 7: invalid_json: "),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("error: line 150: validation_failed: unknown task_name `divide`"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("submitted 300/300"),
        "progress: {run:?}"
    );
    let printed = run.json_lines();
    assert_eq!(printed.len(), 298, "{run:?}");
    let lines: Vec<u64> = printed
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=300).filter(|l| ![7, 150].contains(l)).collect();
    assert_eq!(lines, expected, "in the file's order");
    for p in &printed {
        assert_eq!(p["task"]["status"], "completed", "{p}");
        assert_eq!(
            p["task"]["task_output"]["result"],
            p["line"].as_u64().unwrap() + 1
        );
    }

    // Listing follows pages (of at most 200) up to --limit.
    let run = tasker(&app, &["task", "list", "--limit", "250"]).await;
    assert_eq!(
        run.json()["tasks"].as_array().unwrap().len(),
        250,
        "{run:?}"
    );
    let run = tasker(&app, &["task", "list", "--limit", "1000"]).await;
    let listed = run.json();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 298);
    assert!(listed["next_cursor"].is_null());

    // From stdin, no waiting: a line per task id; all valid, exit 0.
    let stdin = "{\"task_name\": \"sum\", \"a\": 1, \"b\": 1}\n\n{\"task_name\": \"sum\", \"a\": 2, \"b\": 2}\n";
    let url = app.url("");
    let run = tasker_with(
        &["task", "submit", "--file", "-"],
        &[("TASKER_URL", &url)],
        Some(stdin),
    )
    .await;
    assert!(run.ok(), "{run:?}");
    let printed = run.json_lines();
    assert_eq!(printed.len(), 2, "{run:?}");
    assert_eq!(printed[1]["line"], 3);
    assert!(printed[1]["task_uuid"].as_str().unwrap().len() == 36);
}

#[tokio::test]
async fn a_token_is_needed_when_authentication_is_on() {
    let app = TestApp::spawn_with(|c| c.auth.enabled = true, true).await;
    let url = app.url("");
    let run = tasker(&app, &["task", "list"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: unauthorized: "), "{run:?}");
    assert!(run.stderr.contains("--token"), "{run:?}");

    // A key with a rate: the file's batches wait out the 429s.
    let token = app.key("acme", &["submit", "read"], Some(20)).await;
    let lines: String = (0..60)
        .map(|n| format!("{}\n", json!({"task_name": "sum", "a": n, "b": 0})))
        .collect();
    let env = [
        ("TASKER_URL", url.as_str()),
        ("TASKER_TOKEN", token.as_str()),
    ];
    let started = std::time::Instant::now();
    let run = tasker_with(
        &["task", "submit", "--file", "-", "--batch-size", "20"],
        &env,
        Some(&lines),
    )
    .await;
    assert!(run.ok(), "{run:?}");
    assert_eq!(run.json_lines().len(), 60, "{run:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "40 beyond the burst at 20/s take 2 s: {:?}",
        started.elapsed()
    );

    let run = tasker_with(&["task", "list", "--limit", "100"], &env, None).await;
    assert!(run.ok(), "{run:?}");
    let tasks = run.json()["tasks"].as_array().cloned().unwrap();
    assert_eq!(tasks.len(), 60);
    assert!(tasks.iter().all(|t| t["tenant"] == "acme"));
    let run = tasker_with(
        &["queue", "list", "--url", &url, "--token", &token],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "queues need an admin key: {run:?}");
    assert!(run.stderr.starts_with("error: forbidden: "), "{run:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let port = crate::support::processes::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let run = tasker_with(&["queue", "list"], &[("TASKER_URL", &url)], None).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("error: cannot reach {url}/: ")),
        "{run:?}"
    );
    let run = tasker_with(&["task", "list", "--url", "localhost:8000"], &[], None).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("invalid --url"), "{run:?}");
}
