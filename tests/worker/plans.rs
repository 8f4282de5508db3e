//! Plans that never depend on statistics: a burst on a freshly migrated,
//! never analyzed database must read rows by index, not by scanning the
//! table, whatever the planner believes about its size.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestApp;

/// Tasks in the burst.
const BURST: usize = 20_000;
const BATCH: usize = 100;

#[tokio::test]
async fn a_burst_on_a_never_analyzed_database_reads_no_table_by_scanning_it() {
    let app = TestApp::spawn_with(
        |c| {
            c.worker.concurrency = 64.try_into().unwrap();
            c.api.max_batch_size = BATCH.try_into().unwrap();
        },
        true,
    )
    .await;
    let pool = app.env.pool().await;
    let (reltuples,): (f32,) =
        sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'tasks'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(reltuples < 0.0, "the table starts never analyzed");

    // Submitters and the worker at once: batches from 8 clients, and single
    // submissions beside them.
    let batches = BURST / BATCH;
    let mut clients = Vec::new();
    for client in 0..8 {
        let (http, url) = (app.client.clone(), app.url("/run-tasks"));
        clients.push(tokio::spawn(async move {
            for batch in (client..batches).step_by(8) {
                let tasks: Vec<Value> = (0..BATCH)
                    .map(|i| json!({"task_name": "sum", "a": batch, "b": i}))
                    .collect();
                let response = http.post(&url).json(&json!({"tasks": tasks})).send().await;
                assert_eq!(response.unwrap().status(), 202);
            }
        }));
    }
    let mut singles = Vec::new();
    for i in 0..200 {
        singles.push(
            app.submit(json!({"task_name": "sum", "a": i, "b": -1}))
                .await,
        );
    }
    for client in clients {
        client.await.unwrap();
    }
    let total = BURST + singles.len();
    let finished = || async {
        let (done,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')")
                .fetch_one(&pool)
                .await
                .unwrap();
        (done as usize == total).then_some(())
    };
    tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            if finished().await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the burst finishes");

    // Counters reach the statistics system within a second or so of each
    // backend's last statement: read until the sequential ones stop moving
    // (the reconciler's index scans go on), at most for a few seconds.
    let read = || async {
        let row: (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), coalesce(idx_scan, 0) \
             FROM pg_stat_user_tables WHERE relname = 'tasks'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        row
    };
    let mut last = read().await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = read().await;
        let settled = (now.0, now.1) == (last.0, last.1);
        last = now;
        if settled {
            break;
        }
    }
    let (seq_scans, seq_rows, index_scans) = last;
    let per_task = seq_rows as f64 / total as f64;
    println!(
        "{total} tasks: {seq_scans} sequential scans read {seq_rows} rows \
         ({per_task:.3} per task); {index_scans} index scans"
    );
    assert!(
        per_task < 1.0,
        "{seq_rows} rows read by {seq_scans} sequential scans for {total} tasks"
    );
}
