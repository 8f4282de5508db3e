//! Redis Cluster and Redis Sentinel under load, against real servers that
//! `.ci/redis-modes` starts in a directory of its own and names in
//! `TASKER_TEST_REDIS_*` variables: a 3-master cluster, and a master with
//! a replica watched by a sentinel. The local PostgreSQL and Redis are
//! left alone (each test has its own database). Without the variables a
//! test fails, saying which is missing: run them through the script.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Audit, install_completion_log};
use crate::load::{self, Submissions};
use crate::redis_nodes::{
    flushall, kill, master_addr, master_ports, node_pid, owner_of, subscribers_on,
};
use crate::support::fake_llm::FakeLlm;
use crate::support::processes::{Cluster, Process};
use crate::support::{TestEnv, eventually};
use tasker::config::RedisMode;
use tasker::keys::Keys;

const TOTAL: usize = 2_000;
const CLIENTS: usize = 32;
/// How long the master killed in the cluster stays down.
const DOWN: Duration = Duration::from_secs(1);

/// The variable's value; a test run without the topology fails, naming it.
fn topology(variable: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{variable} is not set: run .ci/redis-modes"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
#[ignore = "needs a Redis Cluster: run by .ci/redis-modes"]
fn redis_cluster_runs_every_task_before_and_after_a_master_restarts_empty() {
    let seed = topology("TASKER_TEST_REDIS_CLUSTER");
    let dir = topology("TASKER_TEST_REDIS_CLUSTER_DIR");
    runtime().block_on(cluster_scenario(seed, dir));
}

#[test]
#[ignore = "needs Redis Sentinel: run by .ci/redis-modes"]
fn redis_sentinel_failover_mid_load_loses_no_accepted_task() {
    let sentinel = topology("TASKER_TEST_REDIS_SENTINEL");
    let master = topology("TASKER_TEST_REDIS_SENTINEL_MASTER");
    runtime().block_on(sentinel_scenario(sentinel, master));
}

/// The API, a second API replica and two workers, with a fake LLM.
struct Service {
    pool: sqlx::PgPool,
    client: reqwest::Client,
    processes: Cluster,
    second_api: Process,
    _llm: FakeLlm,
    /// Dropped last (fields drop in order): the database goes once the
    /// processes are gone.
    _env: TestEnv,
}

impl Service {
    async fn start(env: TestEnv, name: &str, redis: &[(&str, String)]) -> Self {
        let pool = env.pool().await;
        install_completion_log(&pool).await;
        let llm = FakeLlm::start_with_delay(vec![], Duration::from_millis(300)).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("client");
        let mut settings = vec![
            ("TASKER_WORKER__LEASE_SECONDS", "2".to_owned()),
            ("TASKER_WORKER__CONCURRENCY", "16".to_owned()),
            ("TASKER_LLM__BASE_URL", llm.base_url()),
            ("TASKER_LLM__API_KEY", "redis-modes".to_owned()),
        ];
        settings.extend(redis.iter().cloned());
        let processes = Cluster::start(&env, name, 2, &settings, &client).await;
        let second_api = processes.api.twin(&format!("{name}-api2.log"));
        second_api.wait_ready(&client).await;
        Self {
            pool,
            client,
            processes,
            second_api,
            _llm: llm,
            _env: env,
        }
    }

    /// Runs a load of [`TOTAL`] tasks (keys `keys-<i>`) in the background.
    fn load(&self, keys: &'static str) -> (Arc<Submissions>, tokio::task::JoinHandle<()>) {
        let seen = Arc::new(Submissions::default());
        let handle = tokio::spawn(load::run_keyed(
            self.client.clone(),
            self.processes.api.url("/run-task"),
            Arc::new(Vec::new()),
            TOTAL,
            CLIENTS,
            seen.clone(),
            keys,
        ));
        (seen, handle)
    }

    /// Waits for every accepted task, then lists what went wrong.
    async fn audit(&self, seen: &Submissions) -> Vec<String> {
        let accepted = seen.accepted.lock().await.clone();
        let audit = Audit::run(&self.pool, &accepted, Duration::from_secs(120)).await;
        let recovered = self
            .processes
            .worker_counter(&self.client, "tasker_tasks_recovered_total")
            .await;
        println!(
            "{} submitted, {} accepted, {} completed, {} failed, {} re-run, {} finished twice; \
             {recovered} recovered by the reconcilers so far",
            seen.attempted.load(Ordering::SeqCst),
            accepted.len(),
            audit.completed,
            audit.failed,
            audit.rerun,
            audit.written_twice
        );
        let mut problems = Vec::new();
        if accepted.len() != TOTAL {
            problems.push(format!("{} of {TOTAL} accepted", accepted.len()));
        }
        problems.extend(audit.problems(accepted.len()));
        problems
    }

    /// A task submitted to one API replica wakes long-polls on both the
    /// moment it finishes (pub/sub reaches every replica), not at their
    /// deadline. Returns the task's id.
    async fn long_polls_wake_on_every_replica(&self) -> Uuid {
        let body = json!({"task_name": "query_llm", "prompt": "wake up"});
        let url = self.processes.api.url("/run-task");
        let id = eventually(|| load::submit(&self.client, &url, None, &body, None)).await;
        let started = Instant::now();
        let wait = |api: &Process| {
            let url = api.url(&format!("/tasks/{id}?wait=30"));
            let client = self.client.clone();
            async move {
                let task: Value = client.get(url).send().await.ok()?.json().await.ok()?;
                Some((task["status"].clone(), started.elapsed()))
            }
        };
        let (first, second) = tokio::join!(wait(&self.processes.api), wait(&self.second_api));
        for (replica, answer) in [("first", first), ("second", second)] {
            let (status, took) = answer.unwrap_or_else(|| panic!("{replica} API answered"));
            println!("long-poll on the {replica} API replica answered {status} after {took:?}");
            assert_eq!(status, "completed", "{replica} replica");
            assert!(
                took < Duration::from_secs(10),
                "the {replica} replica woke at its deadline, not on the announcement"
            );
        }
        id
    }
}

async fn cluster_scenario(seed: String, dir: String) {
    let nodes = redis::cluster::ClusterClient::new(vec![seed.as_str()]).expect("cluster client");
    let mut cluster = nodes
        .get_async_connection()
        .await
        .expect("cluster connection");
    let env = TestEnv::new().await;
    let keys = Keys::new(env.prefix.clone());
    // The master to kill: the one holding the default queue. Tasker is
    // given it as its seed, so the subscribers of every process start on
    // it, and must move when it dies.
    let victim = owner_of(&mut cluster, &keys.tenants("default")).await;
    let victim_url = format!("redis://127.0.0.1:{victim}");
    let env = env.on_redis(&victim_url, RedisMode::Cluster);
    // Two seeds, the victim first: the second lets a process (re)connect
    // while the victim is down.
    let redis = [
        ("TASKER_REDIS__URL", format!("{victim_url},{seed}")),
        ("TASKER_REDIS__MODE", "cluster".to_owned()),
    ];
    let service = Service::start(env, "redis-cluster", &redis).await;

    // 2,000 tasks with every master up.
    let (seen, load) = service.load("cluster");
    let _ = load.await;
    let problems = service.audit(&seen).await;
    assert!(problems.is_empty(), "{}", problems.join("; "));

    // Long-poll wake-ups reach both API replicas; the result is cached.
    let id = service.long_polls_wake_on_every_replica().await;
    let cached: Option<String> = cluster
        .get(keys.result(id))
        .await
        .expect("GET the cached result");
    assert!(cached.is_some(), "the finished task is in the result cache");
    let read = service.second_api.url(&format!("/tasks/{id}"));
    let task: Value = service
        .client
        .get(read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "completed");

    // 2,000 more; mid-load the victim dies and comes back empty.
    let subscribers = subscribers_on(&victim_url, &keys.finished_channel()).await;
    assert_eq!(subscribers, 2, "both API replicas subscribe on the seed");
    let (seen, load) = service.load("cluster-kill");
    eventually(|| async {
        (seen.attempted.load(Ordering::SeqCst) >= TOTAL * 3 / 10).then_some(())
    })
    .await;
    println!("SIGKILL the master on port {victim} (the seed; it holds the default queue)");
    kill(node_pid(&victim_url).await);
    tokio::time::sleep(DOWN).await;
    let status = std::process::Command::new(format!("{dir}/{victim}/start"))
        .status()
        .expect("restart the node");
    assert!(status.success(), "restarting the node on port {victim}");
    let _ = load.await;
    let problems = service.audit(&seen).await;
    assert!(problems.is_empty(), "{}", problems.join("; "));
    // The subscribers moved to another node (or back to the restarted one).
    service.long_polls_wake_on_every_replica().await;

    // The fault suite's Redis fault, on the cluster: 2,000 more, and
    // mid-load every master loses every key at once (queues, leases'
    // messages, the cache, idempotency entries, tenants' counters).
    let (seen, load) = service.load("cluster-flush");
    eventually(|| async {
        (seen.attempted.load(Ordering::SeqCst) >= TOTAL * 3 / 10).then_some(())
    })
    .await;
    let masters = master_ports(&mut cluster).await;
    println!("FLUSHALL on every master ({masters:?})");
    for port in &masters {
        flushall(&format!("redis://127.0.0.1:{port}")).await;
    }
    let _ = load.await;
    let problems = service.audit(&seen).await;
    assert!(
        problems.is_empty(),
        "after FLUSHALL: {}",
        problems.join("; ")
    );
    service.long_polls_wake_on_every_replica().await;
    drop(service);
}

async fn sentinel_scenario(sentinel: String, master_name: String) {
    let master = master_addr(&sentinel, &master_name).await;
    let env = TestEnv::new()
        .await
        .on_redis(&format!("redis://{master}"), RedisMode::Sentinel);
    let redis = [
        ("TASKER_REDIS__MODE", "sentinel".to_owned()),
        ("TASKER_REDIS__SENTINELS", sentinel.clone()),
        ("TASKER_REDIS__SENTINEL_MASTER", master_name.clone()),
    ];
    let service = Service::start(env, "redis-sentinel", &redis).await;
    service.long_polls_wake_on_every_replica().await;

    let (seen, load) = service.load("sentinel");
    eventually(|| async {
        (seen.attempted.load(Ordering::SeqCst) >= TOTAL * 3 / 10).then_some(())
    })
    .await;
    println!("SIGKILL the master at {master}");
    kill(node_pid(&format!("redis://{master}")).await);
    let killed_at = Instant::now();
    let promoted = eventually(|| async {
        let now = master_addr(&sentinel, &master_name).await;
        (now != master).then_some(now)
    })
    .await;
    println!(
        "sentinel promoted {promoted} after {:?}",
        killed_at.elapsed()
    );
    let _ = load.await;
    let problems = service.audit(&seen).await;
    assert!(problems.is_empty(), "{}", problems.join("; "));
    // The subscribers followed the new master too.
    service.long_polls_wake_on_every_replica().await;
    drop(service);
}
