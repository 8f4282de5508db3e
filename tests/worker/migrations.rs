//! `tasker migrate` is safe to run twice and from several processes at once.

use tasker::store::Store;

use crate::support::TestEnv;

#[tokio::test]
async fn migrations_run_twice_and_concurrently() {
    let env = TestEnv::new().await; // already migrated once
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let store = Store::connect_lazy(&env.config.database).unwrap();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let pool = env.pool().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    let files = std::fs::read_dir("migrations").unwrap().count() as i64;
    assert_eq!(applied, files);
    let status_check: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'tasks_status_check'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status_check, 1);
}

/// The version before tenants: rows stored by it must belong to `default`.
const BEFORE_TENANTS: i64 = 20261202000002;

#[tokio::test]
async fn tasks_and_idempotency_keys_stored_before_tenants_belong_to_default() {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::migrate!("./migrations")
        .run_to(BEFORE_TENANTS, &pool)
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO tasks (id, task_name, task_parameters, status, task_output, queue, \
         attempts, max_attempts, started_at, completed_at) \
         VALUES ($1, 'sum', '{\"a\": 1, \"b\": 2}', 'completed', '{\"result\": 3}', 'default', \
         1, 3, now(), now())",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let fingerprint = "0".repeat(64);
    sqlx::query(
        "INSERT INTO idempotency_keys (key, task_id, fingerprint, expires_at) \
         VALUES ('order-1', $1, $2, now() + interval '1 day')",
    )
    .bind(id)
    .bind(&fingerprint)
    .execute(&pool)
    .await
    .unwrap();

    Store::connect_lazy(&env.config.database)
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT tenant FROM tasks UNION ALL SELECT tenant FROM idempotency_keys",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tenants, vec!["default", "default"]);

    // With auth off every caller is the default tenant: the old task is theirs.
    let app = crate::support::TestApp::start(env, false).await;
    let task = app.get_json(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["tenant"], "default");
    assert_eq!(task["task_output"]["result"], 3);
    // The old key is the default tenant's: reusing it for another body is a
    // conflict, not a new task.
    let reused = app
        .client
        .post(app.url("/run-task"))
        .header("idempotency-key", "order-1")
        .json(&serde_json::json!({"task_name": "sum", "a": 5, "b": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 409);
    assert_eq!(app.count_tasks().await, 1);
}
