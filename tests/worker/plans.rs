//! Plans that never depend on statistics: a burst on a freshly migrated,
//! never analyzed database must read rows by index, not by scanning the
//! table, whatever the planner believes about its size.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestApp;

/// What PostgreSQL's statistics say was read from `tasks` and written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
struct TableReads {
    seq_scans: i64,
    /// Rows read by sequential scans.
    seq_rows: i64,
    index_scans: i64,
    /// Entries read from the table's indexes, by plain and bitmap scans.
    index_entries: i64,
    deleted: i64,
}

async fn table_reads(pool: &sqlx::PgPool) -> TableReads {
    sqlx::query_as(
        "SELECT coalesce(t.seq_scan, 0) AS seq_scans, coalesce(t.seq_tup_read, 0) AS seq_rows, \
                coalesce(t.idx_scan, 0) AS index_scans, \
                (SELECT coalesce(sum(i.idx_tup_read), 0)::int8 FROM pg_stat_user_indexes i \
                 WHERE i.relid = t.relid) AS index_entries, \
                t.n_tup_del AS deleted \
         FROM pg_stat_user_tables t WHERE t.relname = 'tasks'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// [`table_reads`] once the sequential counters stop moving. Counters reach
/// the statistics system within a second or so of each backend's last
/// statement: read until they settle (the reconciler's index scans go on),
/// at most for a few seconds.
async fn settled_reads(pool: &sqlx::PgPool) -> TableReads {
    let mut last = table_reads(pool).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = table_reads(pool).await;
        let settled = (now.seq_scans, now.seq_rows) == (last.seq_scans, last.seq_rows);
        last = now;
        if settled {
            break;
        }
    }
    last
}

/// Tasks in the burst.
const BURST: usize = 20_000;
const BATCH: usize = 100;

#[tokio::test]
async fn a_burst_on_a_never_analyzed_database_reads_no_table_by_scanning_it() {
    let app = TestApp::spawn_with(
        |c| {
            c.worker.concurrency = 64.try_into().unwrap();
            c.api.max_batch_size = BATCH.try_into().unwrap();
            // As deployed (the suite's 1 s would have the reconciler look
            // at a slow machine's backlog every second, and the index
            // reads per task depend on the machine's speed).
            c.worker.reconcile_interval_seconds = 5.try_into().unwrap();
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
    // Every task is stored by now: the burst is over when none is left
    // pending or running. (Asked so that the answer reads one index entry
    // at most, not every finished task: the counters below are the
    // service's reads, not this loop's.)
    let finished = || async {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        let (left,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'pending') \
                 OR EXISTS (SELECT 1 FROM tasks WHERE status = 'running')",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (!left).then_some(())
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

    let TableReads {
        seq_scans,
        seq_rows,
        index_scans,
        index_entries,
        ..
    } = settled_reads(&pool).await;
    let per_task = seq_rows as f64 / total as f64;
    println!(
        "{total} tasks: {seq_scans} sequential scans read {seq_rows} rows \
         ({per_task:.3} per task); {index_scans} index scans read {index_entries} index \
         entries ({:.2} per task)",
        index_entries as f64 / total as f64
    );
    assert!(
        per_task < 1.0,
        "{seq_rows} rows read by {seq_scans} sequential scans for {total} tasks"
    );
    // By index, a task is read a few times: its claim, its outcome, the
    // reconciler's bounded look at pending tasks. A statement whose plan
    // reads a range whole (a bitmap, or a walk past the rows it needs)
    // makes it grow with the backlog.
    let entries_per_task = index_entries as f64 / total as f64;
    assert!(
        entries_per_task < 10.0,
        "{index_entries} index entries read for {total} tasks"
    );
    let (done,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(done as usize, total, "every task of the burst finished");
}

#[tokio::test]
async fn retention_reads_only_the_tasks_it_deletes_whatever_the_table_holds() {
    // Many finished tasks within retention, written first (so a scan meets
    // them before the expired ones), then expired tasks of every terminal
    // status; never analyzed.
    const KEPT: i64 = 40_000;
    const EXPIRED: i64 = 20_000;
    const BATCH: i64 = 1_000;
    let app = TestApp::spawn_with(|_| {}, false).await;
    let pool = app.env.pool().await;
    sqlx::query(
        "INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, status, \
         completed_at, created_at) \
         SELECT gen_random_uuid(), 'sum', '{}'::jsonb, 'default', 1, \
                (ARRAY['completed', 'failed', 'cancelled'])[1 + i % 3], \
                now() - make_interval(days => CASE WHEN i <= $1 THEN 1 ELSE 40 END), \
                now() - interval '40 days' \
         FROM generate_series(1, $1 + $2) AS i",
    )
    .bind(KEPT)
    .bind(EXPIRED)
    .execute(&pool)
    .await
    .unwrap();
    let before = table_reads(&pool).await;

    let age = Duration::from_secs(30 * 24 * 3600);
    let mut deleted = 0;
    for _ in 0..=EXPIRED / BATCH {
        let ids = app.services.store.purge_finished(age, BATCH).await.unwrap();
        deleted += ids.len() as i64;
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    assert_eq!(
        deleted, EXPIRED,
        "every expired task goes, whatever its status"
    );
    // A backend publishes its counters up to 10 s after its last
    // statement; its deletes and its scans go together, so once every
    // delete shows, every scan of the deleting statements does too. (Read
    // before counting what is left: the count scans the table.)
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let now = table_reads(&pool).await;
            if now.deleted - before.deleted >= deleted {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the deletes reach the statistics");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, KEPT, "no task within retention goes");
    let seq_rows = after.seq_rows - before.seq_rows;
    let index_rows = after.index_entries - before.index_entries;
    println!(
        "{deleted} expired tasks deleted beside {KEPT} kept: {seq_rows} rows read by \
         sequential scans, {index_rows} by {} index scans",
        after.index_scans - before.index_scans
    );
    // Each deleted task costs an entry of the retention index, one of the
    // primary key, and the odd entry of a task deleted by an earlier batch
    // and not yet vacuumed: about three. A plan that walks the kept tasks,
    // or reads every expired task's entry for each batch (a bitmap scan:
    // 250,000 entries here), reads many times more, and more as the
    // backlog grows.
    assert!(
        seq_rows + index_rows <= 5 * deleted,
        "retention read {seq_rows} rows by sequential scans and {index_rows} by index scans \
         to delete {deleted}"
    );
}

#[tokio::test]
async fn the_reconciler_reads_one_batch_of_a_long_pending_backlog() {
    // 30,000 pending tasks whose dispatch is long past (their messages may
    // be lost), never analyzed: one look for re-dispatch candidates reads
    // its batch of 500, not the backlog.
    const BACKLOG: i64 = 30_000;
    const LOOK: i64 = 500;
    let app = TestApp::spawn_with(|_| {}, false).await;
    let pool = app.env.pool().await;
    sqlx::query(
        "INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, status, \
         dispatched_at, run_after, created_at) \
         SELECT gen_random_uuid(), 'sum', '{}'::jsonb, 'default', 1, 'pending', \
                now() - interval '1 hour' + i * interval '1 millisecond', \
                now() - interval '1 hour', now() - interval '1 hour' \
         FROM generate_series(1, $1) AS i",
    )
    .bind(BACKLOG)
    .execute(&pool)
    .await
    .unwrap();
    let before = table_reads(&pool).await;
    let candidates = app
        .services
        .store
        .undispatched(Duration::from_secs(10), None, LOOK)
        .await
        .unwrap();
    assert_eq!(candidates.len() as i64, LOOK);
    // One statement of one backend: its counters arrive together, up to
    // 10 s after it ran.
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let now = table_reads(&pool).await;
            if now.index_entries - before.index_entries >= LOOK {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the look reaches the statistics");
    let seq_rows = after.seq_rows - before.seq_rows;
    let index_rows = after.index_entries - before.index_entries;
    println!(
        "{LOOK} candidates of {BACKLOG}: {seq_rows} rows by sequential scans, {index_rows} index entries"
    );
    // A bitmap, or a sort of everything in range, reads all 30,000.
    assert!(
        seq_rows + index_rows <= 2 * LOOK,
        "{seq_rows} rows by sequential scans and {index_rows} index entries read for {LOOK} candidates"
    );
}
