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
