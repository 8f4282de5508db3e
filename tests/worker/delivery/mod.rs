//! At-least-once delivery made harmless: claims, fencing, duplicates, and
//! re-dispatch of lost messages. Batches and the quick path, and
//! re-dispatch, in their own files.

mod batches;
mod redispatch;

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{Value, json};
use tasker::domain::NewTask;
use tasker::queue::Message;
use uuid::Uuid;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::{TestApp, eventually, wait_for_count};

fn new_task(app: &TestApp, name: &str, params: serde_json::Value) -> NewTask {
    let mut body = params;
    body["task_name"] = name.into();
    crate::support::new_task(&app.services, body)
}

#[tokio::test]
async fn the_same_task_delivered_twice_runs_once() {
    let llm = FakeLlm::start(vec![Reply::ok("once")]).await;
    let mut app = TestApp::spawn_with(|c| llm.configure(c), false).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    // A second, distinct message for the same task (as a re-dispatch would add).
    let duplicate = Message::new(id, "query_llm", "default", Some("duplicate"), None);
    app.services
        .queue
        .dispatch("llm", &duplicate)
        .await
        .unwrap();
    let queued: u64 = app.services.queue.ready_len("llm").await.unwrap();
    assert_eq!(queued, 2);

    app.start_worker().await;
    let task = app.wait_terminal(id).await;
    eventually(|| async {
        (app.services.queue.ready_len("llm").await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["attempts"], 1);
    assert_eq!(llm.received().len(), 1, "the LLM was called once");
}

#[tokio::test]
async fn a_message_for_a_finished_task_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let done = app.wait_terminal(id).await;
    let again = Message::new(id, "sum", "default", None, None);
    app.services
        .queue
        .dispatch("default", &again)
        .await
        .unwrap();
    eventually(|| async {
        (app.services.queue.ready_len("default").await.unwrap() == 0).then_some(())
    })
    .await;
    let pool = app.env.pool().await;
    let (attempts, output): (i32, serde_json::Value) =
        sqlx::query_as("SELECT attempts, task_output FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(output, done["task_output"]);
}

#[tokio::test]
async fn undecodable_messages_are_dropped_and_work_goes_on() {
    let app = TestApp::spawn().await;
    let key = app.services.keys.ready("default", "default");
    let _: () = app
        .env
        .redis()
        .await
        .zadd(&key, "{not a message", 0)
        .await
        .unwrap();
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(id).await["status"], "completed");
}

#[tokio::test]
async fn only_one_of_many_concurrent_claims_wins() {
    let app = TestApp::spawn_api_only().await;
    let store = app.services.store.clone();
    let task = store
        .insert_task(&new_task(&app, "sum", json!({"a": 1, "b": 2})))
        .await
        .unwrap();
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(task.id, Duration::from_secs(30)).await.unwrap() })
    });
    let mut winners = 0;
    for claim in claims {
        if claim.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn a_stale_attempt_can_never_overwrite_a_newer_one() {
    let app = TestApp::spawn_api_only().await;
    let store = &app.services.store;
    let pool = app.env.pool().await;
    let task = store
        .insert_task(&new_task(&app, "sum", json!({"a": 1, "b": 2})))
        .await
        .unwrap();
    let first = store
        .claim(task.id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempt, 1);
    // The first worker's lease is given to a second one.
    sqlx::query("UPDATE tasks SET status = 'pending' WHERE id = $1")
        .bind(task.id)
        .execute(&pool)
        .await
        .unwrap();
    let second = store
        .claim(task.id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempt, 2);

    let stale = store
        .complete(task.id, first.attempt, &json!({"result": "stale"}))
        .await
        .unwrap();
    assert!(stale.is_none(), "the stale attempt is fenced off");
    let fresh = store
        .complete(task.id, second.attempt, &json!({"result": 3}))
        .await
        .unwrap();
    assert_eq!(
        fresh.map(|r| r.task_output),
        Some(Some(json!({"result": 3})))
    );
    let late = store
        .fail(task.id, second.attempt, "late duplicate")
        .await
        .unwrap();
    assert!(late.is_none(), "a finished task is never written again");
    let stored = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(stored.task_output, Some(json!({"result": 3})));
    assert!(stored.error.is_none());
}

/// Stores `count` pending `sum` tasks (not dispatched); returns their ids.
async fn stored_sum_tasks(app: &TestApp, count: i64) -> Vec<Uuid> {
    let store = &app.services.store;
    let mut ids = Vec::new();
    for i in 0..count {
        let task = store
            .insert_task(&new_task(app, "sum", json!({"a": i, "b": 0})))
            .await
            .unwrap();
        ids.push(task.id);
    }
    ids
}
