//! Tenants share the workers: one tenant's backlog delays only itself, and
//! a tenant's running limit holds across workers.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tasker::queue::Message;
use uuid::Uuid;

use crate::support::fake_llm::FakeLlm;
use crate::support::{TestApp, eventually};

#[tokio::test]
async fn pops_take_from_tenants_in_turn() {
    let app = TestApp::spawn_api_only().await;
    let queue = &app.services.queue;
    for (tenant, count) in [("acme", 6), ("globex", 2)] {
        for _ in 0..count {
            let message = Message::new(Uuid::now_v7(), "sum", tenant, None, None);
            queue.dispatch("default", &message).await.unwrap();
        }
    }
    let mut consumer = tasker::queue::Consumer::new(
        &app.services.redis,
        &app.services.keys,
        &["default".to_owned()],
        Duration::from_secs(5),
        Duration::from_millis(100),
    )
    .unwrap();
    let tenants = |popped: Vec<tasker::queue::Popped>| -> Vec<String> {
        popped
            .into_iter()
            .filter_map(|p| match p {
                tasker::queue::Popped::Message { message, .. } => Some(message.tenant),
                tasker::queue::Popped::Garbage { .. } => None,
            })
            .collect()
    };
    let first = tenants(consumer.next_batch(4, &[], &[]).await.unwrap());
    assert_eq!(
        first.iter().filter(|t| *t == "globex").count(),
        2,
        "{first:?}"
    );
    assert_eq!(first.len(), 4);
    // A skipped tenant is left waiting.
    let skipping = tenants(
        consumer
            .next_batch(4, &["acme".to_owned()], &[])
            .await
            .unwrap(),
    );
    assert!(skipping.is_empty(), "{skipping:?}");
    let rest = tenants(consumer.next_batch(10, &[], &[]).await.unwrap());
    assert_eq!(rest, vec!["acme"; 4]);
    assert_eq!(queue.ready_len("default").await.unwrap(), 0);
}

#[tokio::test]
async fn a_tenant_s_backlog_does_not_delay_another_tenant() {
    let mut app = TestApp::spawn_with(
        |c| {
            c.auth.enabled = true;
            c.worker.concurrency = 4.try_into().unwrap();
        },
        false,
    )
    .await;
    let flood = app.key("flood", &["submit", "read"], None).await;
    let calm = app.key("calm", &["submit", "read"], None).await;
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"task_name": "sum", "a": i, "b": 1}))
        .collect();
    let mut submitting = Vec::new();
    for _ in 0..4 {
        let (client, url, token, body) = (
            app.client.clone(),
            app.url("/run-tasks"),
            flood.clone(),
            json!({"tasks": batch}),
        );
        submitting.push(tokio::spawn(async move {
            for _ in 0..50 {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
        }));
    }
    for handle in submitting {
        handle.await.unwrap();
    }
    assert_eq!(app.count_tasks().await, 20_000);
    app.start_worker().await;
    // The flood is being worked through; now the calm tenant submits one.
    let response = app
        .as_key(Method::POST, "/run-task", &calm)
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let task: Value = eventually(|| async {
        let r = app
            .as_key(Method::GET, &format!("/tasks/{id}?wait=1"), &calm)
            .send()
            .await
            .ok()?;
        let task: Value = r.json().await.ok()?;
        (task["status"] == "completed").then_some(task)
    })
    .await;
    let waited = started.elapsed();
    assert_eq!(task["task_output"]["result"], 3);
    let (pending,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks WHERE status = 'pending'")
        .fetch_one(&app.env.pool().await)
        .await
        .unwrap();
    println!("the calm tenant's task took {waited:?} with {pending} of the flood still pending");
    assert!(waited < Duration::from_secs(3), "took {waited:?}");
    assert!(
        pending > 1_000,
        "the flood was still queued ({pending} pending)"
    );
}

#[tokio::test]
async fn a_tenant_s_running_limit_holds_across_workers() {
    let llm = FakeLlm::start_with_delay(Vec::new(), Duration::from_millis(300)).await;
    let mut app = TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.auth.enabled = true;
            c.worker.concurrency = 8.try_into().unwrap();
        },
        false,
    )
    .await;
    let token = app.key("acme", &["submit", "read"], None).await;
    app.services
        .store
        .set_max_running("acme", Some(2))
        .await
        .unwrap();
    app.start_worker().await;
    app.start_worker().await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let response = app
            .as_key(Method::POST, "/run-task", &token)
            .json(&json!({"task_name": "query_llm", "prompt": format!("p{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<Value>().await.unwrap()["task_uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        let task: Value = eventually(|| async {
            let r = app
                .as_key(Method::GET, &format!("/tasks/{id}?wait=1"), &token)
                .send()
                .await
                .ok()?;
            let task: Value = r.json().await.ok()?;
            (task["status"] == "completed").then_some(task)
        })
        .await;
        assert_eq!(
            task["attempts"], 1,
            "waiting for a permit costs no attempt: {task}"
        );
    }
    assert!(
        llm.most_at_once() <= 2,
        "{} calls at once",
        llm.most_at_once()
    );
    assert!(llm.most_at_once() >= 1);
}
