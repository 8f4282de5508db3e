//! Through PgBouncer in transaction mode (`database.pooler = "transaction"`):
//! real `tasker api` and `tasker worker` processes share a few server
//! connections, run 2,000 tasks and log no error. Needs a running PgBouncer
//! in front of the local PostgreSQL: `.ci/pgbouncer-check` starts one and
//! runs these tests with its port in `TASKER_TEST_PGBOUNCER_PORT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::processes::{Cluster, Process, run_to_end};
use crate::support::{PG_ADMIN_URL, REDIS_URL, TestEnv};

/// Tasks in all: `BATCHES` batches of `BATCH` plus single submissions.
const TOTAL: usize = 2_000;
const BATCHES: usize = 100;
const BATCH: usize = 10;
const CLIENTS: usize = 16;
/// `application_name` of the test's own direct connections, not counted.
const AUDIT: &str = "pgbouncer-test-audit";

/// The PgBouncer to go through, and its `default_pool_size`.
fn pgbouncer() -> (u16, i64) {
    let port = std::env::var("TASKER_TEST_PGBOUNCER_PORT")
        .expect("TASKER_TEST_PGBOUNCER_PORT is not set: run .ci/pgbouncer-check")
        .parse()
        .expect("TASKER_TEST_PGBOUNCER_PORT: a port number");
    let pool_size = std::env::var("TASKER_TEST_PGBOUNCER_POOL_SIZE")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(5);
    (port, pool_size)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
#[ignore = "needs PgBouncer in transaction mode: run .ci/pgbouncer-check"]
fn pgbouncer_transaction_mode_runs_2000_tasks_without_an_error() {
    runtime().block_on(transaction_mode_runs_every_task());
}

async fn transaction_mode_runs_every_task() {
    let (port, pool_size) = pgbouncer();
    let env = TestEnv::new().await;
    let pooled = format!("postgres://postgres@127.0.0.1:{port}/{}", env.database);
    migrations_need_the_direct_url(&env, &pooled);

    let client = reqwest::Client::new();
    let through_pgbouncer = [
        ("TASKER_DATABASE__URL", pooled),
        ("TASKER_DATABASE__POOLER", "transaction".to_owned()),
    ];
    let cluster = Cluster::start(&env, "pgbouncer", 2, &through_pgbouncer, &client).await;
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn(sample_server_connections(
        env.database.clone(),
        peak.clone(),
    ));

    let problems = Arc::new(Mutex::new(Vec::new()));
    let started = std::time::Instant::now();
    load(&client, &cluster.api, problems.clone()).await;
    let problems = problems.lock().await.clone();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let audit = format!("{}?application_name={AUDIT}", env.database_url());
    let pool = sqlx::PgPool::connect(&audit).await.expect("audit pool");
    let done = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            let (all, completed): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM tasks",
            )
            .fetch_one(&pool)
            .await
            .expect("count");
            if completed == all && all >= TOTAL as i64 {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("every task completes");
    sampler.abort();
    let peak = peak.load(Ordering::SeqCst);
    println!(
        "pgbouncer: {done} tasks completed in {:.1} s; at most {peak} server connections",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        done, TOTAL as i64,
        "idempotent resubmissions made no task twice"
    );
    assert!(
        peak as i64 <= pool_size,
        "{peak} server connections, more than PgBouncer's pool of {pool_size}"
    );
    let errors: Vec<String> = std::iter::once(&cluster.api)
        .chain(&cluster.workers)
        .flat_map(|process| {
            process
                .log()
                .lines()
                .filter(|line| line.contains("\"level\":\"ERROR\""))
                .map(|line| format!("{}: {line}", process.role))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(errors.is_empty(), "errors logged:\n{}", errors.join("\n"));
}

/// Without `database.pooler`, through a PgBouncer that lets sqlx's
/// start-up parameters pass: named prepared statements of different
/// clients meet on the shared server connections, and submissions fail.
#[test]
#[ignore = "needs PgBouncer in transaction mode: run .ci/pgbouncer-check"]
fn pgbouncer_without_the_pooler_setting_prepared_statements_collide() {
    runtime().block_on(without_the_setting_statements_collide());
}

async fn without_the_setting_statements_collide() {
    let port: u16 = std::env::var("TASKER_TEST_PGBOUNCER_LENIENT_PORT")
        .expect("TASKER_TEST_PGBOUNCER_LENIENT_PORT is not set: run .ci/pgbouncer-check")
        .parse()
        .expect("a port number");
    let env = TestEnv::new().await;
    let pooled = format!("postgres://postgres@127.0.0.1:{port}/{}", env.database);
    let client = reqwest::Client::new();
    let cluster = Cluster::start(
        &env,
        "pgbouncer-unset",
        1,
        &[("TASKER_DATABASE__URL", pooled)],
        &client,
    )
    .await;
    let problems = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(BATCHES));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, next, problems) = (client.clone(), next.clone(), problems.clone());
            let base = cluster.api.url("");
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < BATCHES + 400 {
                    let body = json!({"task_name": "sum", "a": 1, "b": 2});
                    let url = format!("{base}/run-task");
                    if let Err(problem) = post(&client, &url, &body, None).await {
                        problems.lock().await.push(problem);
                    }
                }
            })
        })
        .collect();
    for handle in clients {
        handle.await.expect("client");
    }
    let failed = problems.lock().await.len();
    let logs = cluster.api.log();
    let collisions = logs
        .lines()
        .filter(|line| line.contains("prepared statement"))
        .count();
    println!(
        "pgbouncer without the setting: {failed} of 400 submissions failed; {collisions} log lines name a prepared statement"
    );
    assert!(
        failed > 0 && collisions > 0,
        "expected prepared statements to collide: {failed} failures\n{logs}"
    );
}

/// `tasker migrate` through the pooler alone is refused with the key to
/// set; with `database.migrate_url` it connects directly and succeeds.
fn migrations_need_the_direct_url(env: &TestEnv, pooled: &str) {
    let direct = env.database_url();
    let base = [
        ("TASKER_DATABASE__URL", pooled),
        ("TASKER_DATABASE__POOLER", "transaction"),
        ("TASKER_REDIS__URL", REDIS_URL),
        ("TASKER_LOG__LEVEL", "warn"),
    ];
    let (ok, printed) = run_to_end(&["migrate"], &base);
    assert!(
        !ok && printed.contains("database.migrate_url"),
        "migrate without a direct URL: {printed}"
    );
    let mut with_direct = base.to_vec();
    with_direct.push(("TASKER_DATABASE__MIGRATE_URL", &direct));
    let (ok, printed) = run_to_end(&["migrate"], &with_direct);
    assert!(ok, "migrate with database.migrate_url: {printed}");
}

/// The most server connections to `database` seen at once, sampled from
/// another database so the sampler is not counted (nor is the audit).
async fn sample_server_connections(database: String, peak: Arc<AtomicUsize>) {
    let Ok(mut admin) = PgConnection::connect(PG_ADMIN_URL).await else {
        return;
    };
    loop {
        let count: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name IS DISTINCT FROM $2",
        )
        .bind(&database)
        .bind(AUDIT)
        .fetch_one(&mut admin)
        .await;
        if let Ok(count) = count {
            peak.fetch_max(count as usize, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `BATCHES` batch submissions and the rest one by one, from `CLIENTS`
/// clients. Every other batch and every third single task carries an
/// `Idempotency-Key` and is sent twice (the second answer must name the
/// same tasks); every fifth unit is read back with a long poll.
async fn load(client: &reqwest::Client, api: &Process, problems: Arc<Mutex<Vec<String>>>) {
    let units = BATCHES + (TOTAL - BATCHES * BATCH);
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, next, problems) = (client.clone(), next.clone(), problems.clone());
            let base = api.url("");
            tokio::spawn(async move {
                loop {
                    let unit = next.fetch_add(1, Ordering::SeqCst);
                    if unit >= units {
                        return;
                    }
                    if let Err(problem) = submit_unit(&client, &base, unit).await {
                        problems
                            .lock()
                            .await
                            .push(format!("unit {unit}: {problem}"));
                    }
                }
            })
        })
        .collect();
    for handle in clients {
        handle.await.expect("client");
    }
}

async fn submit_unit(client: &reqwest::Client, base: &str, unit: usize) -> Result<(), String> {
    let (path, body, twice) = if unit < BATCHES {
        let tasks: Vec<Value> = (0..BATCH)
            .map(|i| json!({"task_name": "sum", "a": unit, "b": i}))
            .collect();
        (
            "/run-tasks",
            json!({ "tasks": tasks }),
            unit.is_multiple_of(2),
        )
    } else {
        let body = json!({"task_name": "sum", "a": unit, "b": 1});
        ("/run-task", body, unit.is_multiple_of(3))
    };
    let key = twice.then(|| format!("pgbouncer-{unit}"));
    let ids = post(client, &format!("{base}{path}"), &body, key.as_deref()).await?;
    if let Some(key) = &key {
        let again = post(client, &format!("{base}{path}"), &body, Some(key)).await?;
        if again != ids {
            return Err(format!("replay named {again:?}, not {ids:?}"));
        }
    }
    if unit.is_multiple_of(5) {
        let read = if unit.is_multiple_of(2) {
            format!("{base}/tasks/{}?wait=20", ids[0])
        } else {
            format!("{base}/get-task-output?task_uuid={}&wait=20", ids[0])
        };
        let answer: Value = send(client.get(read)).await?;
        if answer["status"] != "completed" {
            return Err(format!("long poll answered {answer}"));
        }
    }
    Ok(())
}

/// A submission; the ids of the task or tasks it names.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    key: Option<&str>,
) -> Result<Vec<Uuid>, String> {
    let mut request = client.post(url).json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let answer = send(request).await?;
    let ids = match answer.get("task_uuids") {
        Some(ids) => ids.as_array().cloned().unwrap_or_default(),
        None => vec![answer["task_uuid"].clone()],
    };
    ids.iter()
        .map(|id| id.as_str().and_then(|id| id.parse().ok()))
        .collect::<Option<Vec<Uuid>>>()
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| format!("no task ids in {answer}"))
}

async fn send(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}
