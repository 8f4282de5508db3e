//! What makes the API pleasant for clients: waiting reads, listing, batch
//! submission, and retention.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::{TestApp, eventually};

#[tokio::test]
async fn a_waiting_read_answers_the_moment_the_task_finishes() {
    let llm = FakeLlm::start(vec![Reply::ok("done").slow(Duration::from_millis(1200))]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let started = Instant::now();
    let response = app.get(&format!("/tasks/{id}?wait=20")).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 200);
    let task: Value = response.json().await.unwrap();
    assert_eq!(task["status"], "completed", "{task}");
    assert!(
        waited >= Duration::from_millis(500),
        "it waited for the task: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "it answered when the task finished: {waited:?}"
    );

    // Finished already: no wait at all, on either endpoint.
    let started = Instant::now();
    let again: Value = app
        .get(&format!("/get-task-output?task_uuid={id}&wait=20"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "completed");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn many_waiters_are_all_woken_by_one_finish() {
    let llm = FakeLlm::start(vec![Reply::ok("done").slow(Duration::from_millis(1500))]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let url = app.url(&format!("/tasks/{id}?wait=20"));
    let started = Instant::now();
    let waiters: Vec<_> = (0..200)
        .map(|_| tokio::spawn(app.client.get(&url).send()))
        .collect();
    for waiter in waiters {
        let task: Value = waiter.await.unwrap().unwrap().json().await.unwrap();
        assert_eq!(task["status"], "completed");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wait_ends_at_its_deadline_and_is_capped_by_configuration() {
    let app = TestApp::spawn_with(|c| c.api.max_wait_seconds = 1, false).await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let started = Instant::now();
    let task: Value = app
        .get(&format!("/tasks/{id}?wait=60"))
        .await
        .json()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(task["status"], "pending");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let started = Instant::now();
    let task: Value = app.get(&format!("/tasks/{id}")).await.json().await.unwrap();
    assert_eq!(task["status"], "pending");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no wait without `wait`"
    );
    for bad in ["-1", "soon"] {
        let response = app.get(&format!("/tasks/{id}?wait={bad}")).await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], "wait");
    }
}

#[tokio::test]
async fn tasks_are_listed_newest_first_page_by_page() {
    let app = TestApp::spawn_api_only().await;
    let mut submitted = Vec::new();
    for i in 0..7 {
        let body = if i % 3 == 0 {
            json!({"task_name": "file_hash", "content": format!("{i}")})
        } else {
            json!({"task_name": "sum", "a": i, "b": 0})
        };
        submitted.push(app.submit(body).await.to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/tasks?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = app.get_json(&path).await;
        let tasks = page["tasks"].as_array().unwrap();
        assert!(tasks.len() <= 3);
        seen.extend(
            tasks
                .iter()
                .map(|t| t["task_uuid"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/tasks?limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3);

    let hashes: Value = app
        .get("/tasks?task_name=file_hash&status=pending")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = hashes["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["file_hash"; 3]);
    let none: Value = app
        .get("/tasks?status=completed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["tasks"], json!([]));
    assert!(none["next_cursor"].is_null());

    for (bad, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=abc", "cursor"),
        ("status=done", "status"),
        ("limit=many", "limit"),
    ] {
        let response = app.get(&format!("/tasks?{bad}")).await;
        assert_eq!(response.status(), 422, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], field, "{bad}");
    }
}

#[tokio::test]
async fn a_batch_is_stored_whole_and_answered_in_order() {
    let app = TestApp::spawn().await;
    let batch = json!({"tasks": [
        {"task_name": "sum", "a": 1, "b": 1},
        {"task_name": "file_hash", "content": "abc", "algorithm": "md5"},
        {"task_name": "sum", "a": 2, "b": 2},
    ]});
    let response = app
        .client
        .post(app.url("/run-tasks"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let ids: Vec<uuid::Uuid> = body["task_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let first = app.wait_terminal(ids[0]).await;
    assert_eq!(first["task_output"], json!({"result": 2}));
    let second = app.wait_terminal(ids[1]).await;
    assert_eq!(second["task_output"]["algorithm"], "md5");
    let third = app.wait_terminal(ids[2]).await;
    assert_eq!(third["task_output"], json!({"result": 4}));
}

#[tokio::test]
async fn one_bad_item_rejects_the_whole_batch() {
    let app = TestApp::spawn_with(|c| c.api.max_batch_size = 3.try_into().unwrap(), false).await;
    let post = |body: Value| app.client.post(app.url("/run-tasks")).json(&body).send();
    let bad = json!({"tasks": [
        {"task_name": "sum", "a": 1, "b": 1},
        {"task_name": "sum", "a": "one", "b": 1},
    ]});
    let response = post(bad).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["index"], 1);
    assert_eq!(body["error"]["details"]["field"], "a");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tasks[1]")
    );

    let unknown = post(json!({"tasks": [{"task_name": "nope"}]}))
        .await
        .unwrap();
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["details"]["index"], 0);
    assert_eq!(
        body["error"]["details"]["valid_task_names"],
        json!(app.services.registry.names())
    );

    let four = json!({"tasks": vec![json!({"task_name": "sum", "a": 1, "b": 1}); 4]});
    for body in [four, json!({"tasks": []}), json!({"tasks": "x"}), json!([])] {
        let response = post(body.clone()).await.unwrap();
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["details"]["field"], "tasks", "{body}");
    }
    let pool = app.env.pool().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing is stored from a rejected batch");
}

#[tokio::test]
async fn finished_tasks_past_retention_are_deleted_and_others_kept() {
    let app = TestApp::spawn_with(
        |c| c.retention.interval_seconds = 1.try_into().unwrap(),
        true,
    )
    .await;
    let old = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    let recent = app
        .submit(json!({"task_name": "sum", "a": 2, "b": 2}))
        .await;
    app.wait_terminal(old).await;
    app.wait_terminal(recent).await;
    let pool = app.env.pool().await;
    sqlx::query("UPDATE tasks SET completed_at = now() - interval '31 days' WHERE id = $1")
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    // An unfinished task, however old, is never deleted.
    let pending = app
        .services
        .store
        .insert_task(&tasker::domain::NewTask {
            queue: "nowhere".into(),
            ..crate::support::new_task(&app.services, json!({"task_name": "sum", "a": 0, "b": 0}))
        })
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET created_at = now() - interval '90 days' WHERE id = $1")
        .bind(pending.id)
        .execute(&pool)
        .await
        .unwrap();
    eventually(|| async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE id = $1")
            .bind(old)
            .fetch_one(&pool)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    // Its cached copy goes with it: the task then reads as unknown.
    let key = app.services.keys.result(old);
    eventually(|| async {
        let cached: bool = app.env.redis().await.exists(&key).await.unwrap();
        (!cached).then_some(())
    })
    .await;
    assert_eq!(app.get_output(old).await.status(), 404);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE id = ANY($1)")
        .bind(vec![recent, pending.id])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 2);
}

#[tokio::test]
async fn a_retention_backlog_is_worked_off_without_waiting_for_the_interval() {
    // More expired tasks than one pass deletes in its time budget: with an
    // hour between passes, only passes that follow a backlog at once clear
    // them within the test's patience.
    const EXPIRED: i64 = 30_000;
    let mut app = TestApp::spawn_with(
        |c| c.retention.interval_seconds = 3_600.try_into().unwrap(),
        false,
    )
    .await;
    let pool = app.env.pool().await;
    sqlx::query(
        "INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, status, \
         completed_at, created_at) \
         SELECT gen_random_uuid(), 'sum', '{}'::jsonb, 'default', 1, 'completed', \
         now() - interval '40 days', now() - interval '40 days' \
         FROM generate_series(1, $1)",
    )
    .bind(EXPIRED)
    .execute(&pool)
    .await
    .unwrap();
    let kept = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    app.start_worker().await;
    assert_eq!(app.wait_terminal(kept).await["status"], "completed");
    let left = eventually(|| async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
        (left == 1).then_some(left)
    })
    .await;
    assert_eq!(left, 1, "only the recent task is kept");
}
