//! Operator control: cancel, retry, bulk actions, pause and resume, and who
//! may do them. Here a task at a time; bulk actions, queues and operators'
//! rules in their own files.

mod bulk;
mod operators;
mod queues;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::processes::{Process, free_port, log_dir};
use crate::support::{TestApp, TestEnv, eventually, metric, wait_for_count};

async fn cancel(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.post_json(&format!("/tasks/{id}/cancel"), json!({}))
        .await
}

async fn retry(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.post_json(&format!("/tasks/{id}/retry"), json!({}))
        .await
}

/// The task as PostgreSQL has it (not the cache).
async fn stored(app: &TestApp, id: Uuid) -> (String, i32, Option<Value>) {
    sqlx::query_as("SELECT status, attempts, task_output FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.env.pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_pending_task_never_starts() {
    let mut app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let queue = app.get_json(&format!("/tasks/{id}/submission")).await["queue"]
        .as_str()
        .unwrap()
        .to_owned();
    let depth = |queues: Value| {
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue.as_str())
            .map(|q| q["depth"].clone())
    };
    assert_eq!(depth(app.get_json("/queues").await), Some(json!(1)));
    let response = cancel(&app, id).await;
    assert_eq!(response.status(), 200);
    // Its queue message is withdrawn: the queue no longer counts it.
    assert_eq!(depth(app.get_json("/queues").await), Some(json!(0)));
    let task: Value = response.json().await.unwrap();
    assert_eq!(task["status"], "cancelled");
    assert!(task["completed_at"].is_string(), "{task}");
    // Again: the same answer, not an error.
    let again = cancel(&app, id).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "cancelled");
    // Reads agree, from the cache as from PostgreSQL.
    let read = app.get(&format!("/tasks/{id}")).await;
    assert_eq!(read.headers()["x-tasker-cache"], "hit");
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "cancelled");

    // A worker starts, runs a task submitted after it, and never the cancelled one.
    app.start_worker().await;
    let later = app
        .submit(json!({"task_name": "sum", "a": 2, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(later).await["status"], "completed");
    assert_eq!(stored(&app, id).await, ("cancelled".into(), 0, None));
    let listed = app.get_json("/tasks?status=cancelled").await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["tasks"][0]["task_uuid"], id.to_string());
}

#[tokio::test]
async fn a_finished_or_unknown_task_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(id).await["status"], "completed");
    let response = cancel(&app, id).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "status_conflict", "{body}");
    assert_eq!(body["error"]["details"]["status"], "completed");
    assert_eq!(app.task(id).await["status"], "completed");

    assert_eq!(cancel(&app, Uuid::now_v7()).await.status(), 404);
    let bad = app.post_json("/tasks/not-a-uuid/cancel", json!({})).await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn a_running_llm_call_is_stopped_within_two_seconds_and_frees_its_permit() {
    // The first call would take a minute; the budget allows one call at once.
    let llm = FakeLlm::start(vec![Reply::ok("never").slow(Duration::from_secs(60))]).await;
    let app = TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.tasks.set("llm", "max_concurrency", 1);
        },
        true,
    )
    .await;
    let slow = app
        .submit(json!({"task_name": "query_llm", "prompt": "slow"}))
        .await;
    app.wait_status(slow, "running").await;
    eventually(|| async { (llm.received().len() == 1).then_some(()) }).await;
    // A waiter on the task wakes when it is cancelled.
    let waiter = {
        let url = app.url(&format!("/tasks/{slow}?wait=20"));
        let client = app.client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let task: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            (task, started.elapsed())
        })
    };
    let cancelled_at = Instant::now();
    let response = cancel(&app, slow).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );

    // The attempt let go of the LLM permit: the next call runs at once.
    let next = app
        .submit(json!({"task_name": "query_llm", "prompt": "next"}))
        .await;
    let task = app.wait_terminal(next).await;
    assert_eq!(task["status"], "completed", "{task}");
    let freed = cancelled_at.elapsed();
    assert!(
        freed < Duration::from_secs(2),
        "the attempt took {freed:?} to stop"
    );
    assert_eq!(
        task["attempts"], 1,
        "it never waited for the permit: {task}"
    );

    let (woken, waited) = waiter.await.unwrap();
    assert_eq!(woken["status"], "cancelled");
    assert!(
        waited < Duration::from_secs(10),
        "the waiter slept {waited:?}"
    );
    assert_eq!(
        stored(&app, slow).await,
        ("cancelled".into(), 1, None),
        "nothing the stopped attempt did was written"
    );
}

#[tokio::test]
async fn a_late_outcome_of_a_cancelled_attempt_is_fenced_out() {
    let app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    // A worker that never heard of the cancel still holds the attempt.
    let store = &app.services.store;
    let claimed = store
        .claim(id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancel(&app, id).await.status(), 200);
    let late = store
        .complete(id, claimed.attempt, &json!({"result": 3}))
        .await
        .unwrap();
    assert!(late.is_none(), "the late write was discarded");
    let renewed = store
        .renew_leases(
            &[tasker::store::Lease {
                task_id: id,
                attempt: claimed.attempt,
            }],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(renewed.is_empty(), "its heartbeat finds the lease gone");
    assert_eq!(stored(&app, id).await, ("cancelled".into(), 1, None));
}

#[tokio::test]
async fn a_cancel_racing_completion_has_exactly_one_winner_and_the_task_shows_it() {
    let llm = FakeLlm::start_with_delay(Vec::new(), Duration::from_millis(5)).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let mut outcomes = (0, 0);
    for i in 0..60 {
        // Quick tasks finish inside their claim's transaction; LLM tasks
        // on the ordinary path: both race the cancel.
        let body = if i % 2 == 0 {
            json!({"task_name": "sum", "a": i, "b": 1})
        } else {
            json!({"task_name": "query_llm", "prompt": format!("p{i}")})
        };
        let id = app.submit(body).await;
        if i % 3 == 1 {
            tokio::time::sleep(Duration::from_millis(i as u64 % 7)).await;
        }
        let response = cancel(&app, id).await;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        let task = app.wait_terminal(id).await;
        let (in_db, _, output) = stored(&app, id).await;
        match status {
            200 => {
                outcomes.0 += 1;
                assert_eq!(answer["status"], "cancelled");
                assert_eq!(in_db, "cancelled", "{task}");
                assert!(output.is_none(), "a cancelled task has no output: {task}");
            }
            409 => {
                outcomes.1 += 1;
                assert_eq!(
                    answer["error"]["details"]["status"], "completed",
                    "{answer}"
                );
                assert_eq!(in_db, "completed", "{task}");
            }
            other => panic!("cancel answered {other}: {answer}"),
        }
        assert_eq!(task["status"], in_db.as_str(), "the read agrees: {task}");
    }
    println!("cancel won {} times, completion {}", outcomes.0, outcomes.1);
    assert_eq!(outcomes.0 + outcomes.1, 60);
}

#[tokio::test]
async fn a_failed_task_is_retried_with_a_fresh_budget_keeping_its_error_until_it_ends() {
    let llm = FakeLlm::start(vec![Reply::error(400, "invalid_request_error", "nope")]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), false).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    // Not failed yet: nothing to retry.
    let early = retry(&app, id).await;
    assert_eq!(early.status(), 409);
    assert_eq!(
        early.json::<Value>().await.unwrap()["error"]["details"]["status"],
        "pending"
    );
    let mut app = app;
    let worker = app.start_worker().await;
    let failed = app.wait_terminal(id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 1);
    // Cached as failed; the retry must not leave that copy behind.
    assert_eq!(
        app.get(&format!("/tasks/{id}")).await.headers()["x-tasker-cache"],
        "hit"
    );
    app.stop_worker(worker).await;

    let response = retry(&app, id).await;
    assert_eq!(response.status(), 200);
    let pending: Value = response.json().await.unwrap();
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["attempts"], 1, "attempts keep counting");
    let budget = crate::support::retry_budget("query_llm");
    assert_eq!(
        pending["max_attempts"],
        budget + 1,
        "one spent + a fresh budget of {budget}"
    );
    assert!(
        pending["error"].as_str().unwrap().contains("400"),
        "the last error stays visible: {pending}"
    );
    assert!(pending["completed_at"].is_null());
    let read = app.get(&format!("/tasks/{id}")).await;
    assert_ne!(read.headers()["x-tasker-cache"], "hit");
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "pending");

    app.start_worker().await;
    let done = app.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "a new fencing token, never a reused one"
    );
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        retry(&app, id).await.status(),
        409,
        "a completed task is not retried"
    );
}

#[tokio::test]
async fn a_cancelled_task_can_be_retried() {
    let mut app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(cancel(&app, id).await.status(), 200);
    let response = retry(&app, id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "pending");
    app.start_worker().await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["task_output"]["result"], 3);
}
