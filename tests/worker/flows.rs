//! Submit → run → poll for the task types that need nothing outside.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn sum_adds_integers_and_floats() {
    let app = TestApp::spawn().await;
    let ints = app
        .submit(json!({"task_name": "sum", "a": 40, "b": 2}))
        .await;
    let floats = app
        .submit(json!({"task_name": "sum", "a": 1.5, "b": 2.25}))
        .await;
    let ints = app.wait_terminal(ints).await;
    assert_eq!(ints["status"], "completed");
    assert_eq!(ints["task_output"], json!({"result": 42}));
    assert_eq!(ints["attempts"], 1);
    assert!(ints["error"].is_null());
    for field in ["started_at", "completed_at"] {
        assert!(ints[field].is_string(), "{field}");
    }
    assert!(ints["started_at"].as_str() <= ints["completed_at"].as_str());
    let floats = app.wait_terminal(floats).await;
    assert_eq!(floats["task_output"], json!({"result": 3.75}));
}

#[tokio::test]
async fn sum_overflow_fails_clearly_without_retry() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": i64::MAX, "b": 1}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["attempts"], 1, "a fatal error is not retried");
    assert!(
        task["error"].as_str().unwrap().contains("overflow"),
        "{task}"
    );
    assert!(task["task_output"].is_null());
    assert!(task["completed_at"].is_string());
}

#[tokio::test]
async fn file_hash_supports_every_algorithm() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"task_name": "file_hash", "content": "abc", "algorithm": "md5"}),
            "md5",
            "900150983cd24fb0d6963f7d28e17f72",
        ),
        (
            json!({"task_name": "file_hash", "content": "abc", "algorithm": "sha1"}),
            "sha1",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            json!({"task_name": "file_hash", "content": "abc"}),
            "sha256",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
    ];
    let mut ids = Vec::new();
    for (body, _, _) in &cases {
        ids.push(app.submit(body.clone()).await);
    }
    for (id, (_, algorithm, digest)) in ids.into_iter().zip(cases) {
        let task = app.wait_terminal(id).await;
        assert_eq!(task["status"], "completed");
        assert_eq!(
            task["task_output"],
            json!({"digest": digest, "algorithm": algorithm, "size_bytes": 3})
        );
    }
}

#[tokio::test]
async fn large_content_is_hashed() {
    let app = TestApp::spawn().await;
    let content = "a".repeat(900_000);
    let id = app
        .submit(json!({"task_name": "file_hash", "content": content}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["task_output"]["size_bytes"], 900_000);
    assert_eq!(
        task["task_output"]["digest"].as_str().map(str::len),
        Some(64)
    );
}

#[tokio::test]
async fn many_tasks_all_finish_with_bounded_concurrency() {
    let app = TestApp::spawn_with(|c| c.worker.concurrency = 3.try_into().unwrap(), true).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push((
            i,
            app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
                .await,
        ));
    }
    for (i, id) in ids {
        let task = app.wait_terminal(id).await;
        assert_eq!(task["task_output"]["result"], i + 1);
    }
}

#[tokio::test]
async fn extreme_floats_survive_the_round_trip_through_postgres() {
    // JSONB stores f64::MAX as a 309-digit integer; it must read back.
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": f64::MAX, "b": -1.0}))
        .await;
    let tiny = app
        .submit(json!({"task_name": "sum", "a": 5e-324, "b": 0.0}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 1);
    assert_eq!(task["task_output"]["result"].as_f64(), Some(f64::MAX - 1.0));
    let task = app.wait_terminal(tiny).await;
    assert_eq!(task["task_output"]["result"].as_f64(), Some(5e-324));
}
