//! Submitting and reading tasks back: ids, headers, and the result cache.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tasker::cache::ANNOUNCED_ENTRY_MAX;
use tasker::domain::{DEFAULT_TENANT, TaskRecord, TaskStatus};
use uuid::Uuid;

use crate::support::proxy::FaultProxy;
use crate::support::{REDIS_HOST, REDIS_URL, TestApp, TestEnv, eventually, metric};

#[tokio::test]
async fn a_submission_is_stored_pending_with_a_location() {
    let app = TestApp::spawn_api_only().await;
    let response = app
        .post_task(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["task_uuid"].as_str().unwrap();
    assert_eq!(location, format!("/tasks/{id}"));

    let by_path: Value = app.get_json(&location).await;
    assert_eq!(by_path["task_uuid"], id);
    assert_eq!(by_path["task_name"], "sum");
    assert_eq!(by_path["status"], "pending");
    assert_eq!(by_path["attempts"], 0);
    assert!(by_path["created_at"].is_string());
    for field in ["task_output", "error", "started_at", "completed_at"] {
        assert!(by_path[field].is_null(), "{field}: {by_path}");
    }
    let by_alias: Value = app
        .get_json(&format!("/get-task-output?taskuuid={id}"))
        .await;
    assert_eq!(by_alias, by_path);
}

#[tokio::test]
async fn a_task_s_submission_shows_its_parameters_exactly_its_queue_and_request() {
    let app = TestApp::spawn_api_only().await;
    let body = r#"{"task_name":"sum","a":1e16,"b":1}"#;
    let response = app
        .client
        .post(app.url("/run-task"))
        .header("x-request-id", "req-submission-1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = app.get(&format!("/tasks/{id}/submission")).await;
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    let submission: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(submission["task_uuid"], id.as_str());
    assert_eq!(submission["task_name"], "sum");
    assert_eq!(submission["tenant"], "default");
    assert_eq!(submission["request_id"], "req-submission-1");
    assert!(
        submission["trace_id"].is_null(),
        "no tracing configured: {submission}"
    );
    let queue = submission["queue"].as_str().unwrap();
    let queues: Value = app.get_json("/queues").await;
    assert!(
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == queue),
        "{queue} is a queue the service knows: {queues}"
    );
    // 1e16 stays a float: what a worker runs is what was sent.
    assert!(
        submission["parameters"]["a"].is_f64(),
        "a float as sent: {text}"
    );
    assert_eq!(submission["parameters"]["b"], 1);
    assert!(submission["parameters"].get("task_name").is_none());

    let unknown = app
        .get(&format!("/tasks/{}/submission", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status(), 404);
    let malformed = app.get("/tasks/not-a-uuid/submission").await;
    assert_eq!(malformed.status(), 422);
}

#[tokio::test]
async fn the_request_id_is_echoed_and_stored() {
    let app = TestApp::spawn_api_only().await;
    let response = app
        .client
        .post(app.url("/run-task"))
        .header("x-request-id", "req-abc-123")
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let body: Value = response.json().await.unwrap();
    let id: uuid::Uuid = body["task_uuid"].as_str().unwrap().parse().unwrap();
    let pool = app.env.pool().await;
    let stored: Option<String> = sqlx::query_scalar("SELECT request_id FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("req-abc-123"));
    let generated = app.get("/health").await;
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn terminal_results_are_served_from_the_cache_and_refilled_after_a_miss() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 20, "b": 22}))
        .await;
    let done = app.wait_terminal(id).await;
    assert_eq!(done["task_output"], json!({"result": 42}));

    // The worker cached the result when it finished.
    let hit = app.get_output(id).await;
    assert_eq!(hit.headers()["x-tasker-cache"], "hit");
    assert_eq!(hit.json::<Value>().await.unwrap(), done);

    let key = app.services.keys.result(id);
    let mut redis = app.env.redis().await;
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "ttl {ttl}");

    // Evicted: read from PostgreSQL, then cached again.
    let _: () = redis.del(&key).await.unwrap();
    let miss = app.get_output(id).await;
    assert_eq!(miss.headers()["x-tasker-cache"], "miss");
    assert_eq!(miss.json::<Value>().await.unwrap(), done);
    let again = app.get_output(id).await;
    assert_eq!(again.headers()["x-tasker-cache"], "hit");
    let page = app.metrics().await;
    for result in ["hit", "miss"] {
        let series = format!("tasker_cache_requests_total{{result=\"{result}\"}}");
        assert!(
            crate::support::metric(&page, &series) >= Some(1.0),
            "{series}: {page}"
        );
    }
}

#[tokio::test]
async fn a_cache_entry_that_is_not_the_tasks_record_is_never_served() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 2, "b": 2}))
        .await;
    let done = app.wait_terminal(id).await;
    // Another task's record under this task's key (a bug or a stray write).
    let key = app.services.keys.result(id);
    let other = serde_json::to_string(&json!({"task_uuid": uuid::Uuid::now_v7()})).unwrap();
    let _: () = app.env.redis().await.set(&key, other).await.unwrap();
    let read = app.get_output(id).await;
    assert_eq!(read.headers()["x-tasker-cache"], "bypass");
    assert_eq!(read.json::<Value>().await.unwrap(), done);
}

#[tokio::test]
async fn unfinished_tasks_are_never_cached() {
    let app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    for _ in 0..2 {
        let response = app.get_output(id).await;
        assert_eq!(response.headers()["x-tasker-cache"], "miss");
    }
    let key = app.services.keys.result(id);
    let exists: bool = app.env.redis().await.exists(&key).await.unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn the_cache_ttl_follows_configuration() {
    let app = TestApp::spawn_with(|c| c.cache.ttl_seconds = 120.try_into().unwrap(), true).await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    app.wait_terminal(id).await;
    let key = app.services.keys.result(id);
    let ttl: i64 = app.env.redis().await.ttl(&key).await.unwrap();
    assert!(ttl > 100 && ttl <= 120, "ttl {ttl}");
}

#[tokio::test]
async fn every_redis_key_starts_with_the_prefix_and_expires() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    app.wait_terminal(id).await;
    // A key of every kind: a queued message (on a queue no worker takes
    // from, so it stays) and a waiting retry too.
    let queued = tasker::queue::Message::new(uuid::Uuid::new_v4(), "sum", "default", None, None);
    app.services
        .queue
        .dispatch("unconsumed", &queued)
        .await
        .unwrap();
    let due = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    app.services
        .queue
        .schedule("llm", &queued, due)
        .await
        .unwrap();
    let keys = app.env.redis_keys().await;
    assert!(keys.len() >= 3, "{keys:?}");
    let mut redis = app.env.redis().await;
    let all: Vec<String> = redis.keys("*").await.unwrap();
    let mentioning: Vec<_> = all.iter().filter(|k| k.contains(&id.to_string())).collect();
    let prefix = format!("{}:", app.env.prefix);
    assert!(
        mentioning.iter().all(|k| k.starts_with(&prefix)),
        "{mentioning:?}"
    );
    for key in &keys {
        let ttl: i64 = redis.ttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
}

#[tokio::test]
async fn a_waiter_is_answered_from_the_entry_its_task_s_announcement_carries() {
    let app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let url = app.url(&format!("/tasks/{id}?wait=20"));
    let waiting = tokio::spawn(app.client.get(url).send());
    eventually(|| async {
        let page = app.metrics().await;
        (metric(&page, "tasker_longpoll_waiters") == Some(1.0)).then_some(())
    })
    .await;
    // The row is still pending and nothing is cached: only the announcement
    // can say completed.
    let body = json!({"id": id, "status": "completed", "task_output": {"result": 42}});
    let entry = format!("{id}\t{DEFAULT_TENANT}\n{body}");
    let channel = app.services.keys.finished_channel();
    let _: i64 = app
        .env
        .redis()
        .await
        .publish(&channel, entry)
        .await
        .unwrap();
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), body);
    assert_eq!(app.task(id).await["status"], "pending");
}

#[tokio::test]
async fn a_lone_finished_task_is_announced_with_its_entry_others_by_id() {
    let app = TestApp::spawn_api_only().await;
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(app.services.keys.finished_channel())
        .await
        .unwrap();
    let mut announcements = pubsub.into_on_message();
    let mut next = async || -> String {
        let message = tokio::time::timeout(Duration::from_secs(10), announcements.next())
            .await
            .unwrap()
            .unwrap();
        message.get_payload().unwrap()
    };
    let record = |output: Value| TaskRecord {
        id: Uuid::now_v7(),
        task_name: "sum".into(),
        tenant: DEFAULT_TENANT.into(),
        status: TaskStatus::Completed,
        task_output: Some(output),
        error: None,
        attempts: 1,
        max_attempts: 3,
        next_attempt_at: None,
        created_at: chrono::Utc::now(),
        started_at: None,
        completed_at: Some(chrono::Utc::now()),
    };
    let cache = &app.services.cache;

    let lone = record(json!({"result": 3}));
    cache.put(&lone).await.unwrap();
    let announced = next().await;
    let (head, json_text) = announced.split_once('\n').unwrap();
    assert_eq!(head, format!("{}\t{DEFAULT_TENANT}", lone.id));
    assert_eq!(
        serde_json::from_str::<Value>(json_text).unwrap(),
        serde_json::to_value(&lone).unwrap()
    );

    let (first, second) = (record(json!({"result": 1})), record(json!({"result": 2})));
    cache
        .put_many(&[first.clone(), second.clone()])
        .await
        .unwrap();
    assert_eq!(next().await, format!("{},{}", first.id, second.id));

    let large = record(json!({"text": "x".repeat(ANNOUNCED_ENTRY_MAX)}));
    cache.put(&large).await.unwrap();
    assert_eq!(next().await, large.id.to_string());
}

#[tokio::test]
async fn a_waiter_rereads_its_task_when_the_subscription_comes_back() {
    let proxy = FaultProxy::start(REDIS_HOST).await;
    let mut env = TestEnv::new().await;
    env.config.redis.url = tasker::config::SecretUrl::new(format!("redis://{}", proxy.address));
    let app = TestApp::start(env, false).await;
    let finished = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let unfinished = app
        .submit(json!({"task_name": "sum", "a": 3, "b": 4}))
        .await;
    let started = Instant::now();
    let long_poll = |id: Uuid, wait: u32| {
        let url = app.url(&format!("/tasks/{id}?wait={wait}"));
        tokio::spawn(app.client.get(url).send())
    };
    let answered = long_poll(finished, 30);
    let still_waiting = long_poll(unfinished, 4);
    eventually(|| async {
        let page = app.metrics().await;
        (metric(&page, "tasker_longpoll_waiters") == Some(2.0)).then_some(())
    })
    .await;
    // The task finishes while the subscription is down: its announcement
    // is lost (here there is none at all, only the row).
    proxy.cut().await;
    sqlx::query(
        "UPDATE tasks SET status = 'completed', task_output = '{\"result\": 3}', \
         completed_at = now() WHERE id = $1",
    )
    .bind(finished)
    .execute(&app.env.pool().await)
    .await
    .unwrap();
    proxy.restore();
    let response = answered.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered at the deadline, not when the subscription came back"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["task_output"]["result"], 3);
    // The same wake-up reached the other waiter, whose task is unfinished:
    // it read it and waited on to its deadline.
    let response = still_waiting.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "pending");
}
