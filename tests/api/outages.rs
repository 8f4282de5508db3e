//! PostgreSQL or Redis going away: fast 503s, no lost submissions, and
//! recovery without a restart. The outage is played by a proxy in front of
//! the shared server, so other tests are not disturbed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tasker::config::SecretUrl;

use crate::support::proxy::FaultProxy;
use crate::support::{PG_HOST, REDIS_HOST, TestApp, TestEnv, eventually};

const FAST: Duration = Duration::from_secs(5);

#[tokio::test]
async fn postgres_down_gives_fast_503s_and_the_service_recovers() {
    let proxy = FaultProxy::start(PG_HOST).await;
    let mut env = TestEnv::new().await;
    let url = format!("postgres://postgres@{}/{}", proxy.address, env.database);
    env.config.database.url = SecretUrl::new(url);
    let app = TestApp::start(env, true).await;
    let before = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    app.wait_terminal(before).await;
    proxy.cut().await;

    let started = Instant::now();
    let response = app
        .post_task(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
    assert_eq!(body["error"]["details"]["dependency"], "postgres");

    let started = Instant::now();
    let response = app.get_output(uuid::Uuid::new_v4()).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < FAST);

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("postgres"),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["checks"]["postgres"]["status"],
        "unavailable"
    );
    assert_eq!(body["error"]["details"]["checks"]["redis"]["status"], "ok");

    // A finished task is still readable from the cache.
    let cached = app.get_output(before).await;
    assert_eq!(cached.status(), 200);

    proxy.restore();
    eventually(|| async {
        let response = app
            .post_task(json!({"task_name": "sum", "a": 2, "b": 2}))
            .await;
        (response.status() == 202).then_some(())
    })
    .await;
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let id = app
        .submit(json!({"task_name": "sum", "a": 3, "b": 4}))
        .await;
    assert_eq!(app.wait_terminal(id).await["task_output"]["result"], 7);
}

#[tokio::test]
async fn redis_down_still_accepts_tasks_and_reads_fall_back_to_postgres() {
    let proxy = FaultProxy::start(REDIS_HOST).await;
    let mut env = TestEnv::new().await;
    env.config.redis.url = SecretUrl::new(format!("redis://{}", proxy.address));
    let app = TestApp::start(env, true).await;
    let done = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let finished = app.wait_terminal(done).await;

    proxy.cut().await;
    let started = Instant::now();
    let read = app.get_output(done).await;
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-tasker-cache"], "bypass");
    assert_eq!(read.json::<Value>().await.unwrap(), finished);

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("redis"),
        "{body}"
    );

    // PostgreSQL is the source of truth: the task is accepted now and
    // dispatched by the reconciler once Redis is back.
    let started = Instant::now();
    let accepted = app
        .submit(json!({"task_name": "sum", "a": 5, "b": 6}))
        .await;
    assert!(started.elapsed() < FAST);
    assert_eq!(app.task(accepted).await["status"], "pending");

    proxy.restore();
    let result = app.wait_terminal(accepted).await;
    assert_eq!(result["status"], "completed");
    assert_eq!(result["task_output"]["result"], 11);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_postgres_that_stops_answering_gives_503s_not_hangs() {
    let proxy = FaultProxy::start(PG_HOST).await;
    let mut env = TestEnv::new().await;
    let url = format!("postgres://postgres@{}/{}", proxy.address, env.database);
    env.config.database.url = SecretUrl::new(url);
    let app = TestApp::start(env, false).await;
    app.submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;

    proxy.hang().await;
    let started = Instant::now();
    let response = app
        .post_task(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    let started = Instant::now();
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_unreachable_database_is_explained_in_the_log() {
    use crate::support::processes::{Process, free_port};
    let (port, ops) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("tasker-explain-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = vec![
        // Nothing listens on port 9: every connection is refused.
        (
            "TASKER_DATABASE__URL".to_owned(),
            "postgres://postgres@127.0.0.1:9/x".to_owned(),
        ),
        (
            "TASKER_DATABASE__ACQUIRE_TIMEOUT_SECONDS".into(),
            "1".into(),
        ),
        ("TASKER_REDIS__URL".into(), crate::support::REDIS_URL.into()),
        ("TASKER_API__LISTEN".into(), format!("127.0.0.1:{port}")),
        ("TASKER_API__OPS_LISTEN".into(), format!("127.0.0.1:{ops}")),
    ];
    let api = Process::spawn("api", port, env, dir.join("api.log"));
    let client = reqwest::Client::new();
    eventually(|| async {
        let response = client
            .post(api.url("/run-task"))
            .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
            .send()
            .await
            .ok()?;
        (response.status() == 503).then_some(())
    })
    .await;
    let line = eventually(|| async {
        api.log()
            .lines()
            .find(|line| line.contains("cannot connect to PostgreSQL"))
            .map(str::to_owned)
    })
    .await;
    assert!(line.to_ascii_lowercase().contains("refused"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
