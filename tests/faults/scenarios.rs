//! The six scenarios: each runs a fresh cluster (API keys on, three tenants
//! submitting, a fleet-wide LLM budget) under load, injects one
//! fault, then audits PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Audit, install_completion_log};
use crate::load::{self, Submissions};
use crate::support::fake_llm::FakeLlm;
use crate::support::processes::Cluster;
use crate::support::{PATIENCE, TestEnv, eventually};

pub const TOTAL: usize = 2_000;
/// Pause between killing a process and starting it again.
const SETTLE: Duration = Duration::from_millis(300);
const CLIENTS: usize = 32;
const LEASE: Duration = Duration::from_secs(2);
/// The load comes from this many tenants, each with its own API key.
const TENANTS: usize = 3;
/// The admin key the cluster starts with; it makes the tenants' keys and
/// submits the recovery probe (as the bootstrap tenant).
const BOOTSTRAP_TOKEN: &str = "fault-suite-bootstrap-token-0123456789abcdef";
/// LLM calls in flight across both workers.
const LLM_PERMITS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    KillWorkers,
    FlushRedis,
    RestartPostgres,
    KillApi,
    FreezeWorker,
    TerminateWorker,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillWorkers,
        Fault::FlushRedis,
        Fault::RestartPostgres,
        Fault::KillApi,
        Fault::FreezeWorker,
        Fault::TerminateWorker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::KillWorkers => "SIGKILL a worker x3",
            Self::FlushRedis => "FLUSHALL Redis",
            Self::RestartPostgres => "restart PostgreSQL",
            Self::KillApi => "SIGKILL the API",
            Self::FreezeWorker => "SIGSTOP a worker past its lease",
            Self::TerminateWorker => "SIGTERM a busy worker",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Self::KillWorkers => "kill-workers",
            Self::FlushRedis => "flush-redis",
            Self::RestartPostgres => "restart-postgres",
            Self::KillApi => "kill-api",
            Self::FreezeWorker => "freeze-worker",
            Self::TerminateWorker => "terminate-worker",
        }
    }

    /// How long each `query_llm` call takes: long enough that faults find
    /// attempts in flight; longer than the shutdown grace for SIGTERM.
    fn llm_delay(self) -> Duration {
        match self {
            Self::TerminateWorker => Duration::from_millis(1500),
            _ => Duration::from_millis(300),
        }
    }
}

/// What one scenario measured.
#[derive(Debug)]
pub struct Outcome {
    pub fault: Fault,
    pub submitted: usize,
    pub accepted: usize,
    pub stored: i64,
    pub audit: Audit,
    pub stale_rejected: f64,
    pub recovery: Duration,
    pub problems: Vec<String>,
}

pub async fn run(fault: Fault) -> Outcome {
    let env = TestEnv::new().await;
    let pool = env.pool().await;
    install_completion_log(&pool).await;
    let llm = FakeLlm::start_with_delay(vec![], fault.llm_delay()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let settings = [
        ("TASKER_WORKER__LEASE_SECONDS", LEASE.as_secs().to_string()),
        ("TASKER_WORKER__SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
        ("TASKER_WORKER__CONCURRENCY", "16".to_owned()),
        ("TASKER_LLM__BASE_URL", llm.base_url()),
        ("TASKER_LLM__API_KEY", "fault-suite".to_owned()),
        ("TASKER_LLM__MAX_CONCURRENCY", LLM_PERMITS.to_string()),
        ("TASKER_AUTH__ENABLED", "true".to_owned()),
        ("TASKER_AUTH__BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN.to_owned()),
        // The recovery probe runs on a queue of its own.
        ("TASKER_TASK_QUEUES__FILE_HASH", "probe".to_owned()),
    ];
    let name = format!("fault-{}", fault.slug());
    let mut cluster = Cluster::start(&env, &name, 2, &settings, &client).await;

    let tokens = Arc::new(tenant_tokens(&cluster.api.url("/keys"), &client).await);
    let seen = Arc::new(Submissions::default());
    let load = tokio::spawn(load::run(
        client.clone(),
        cluster.api.url("/run-task"),
        tokens,
        TOTAL,
        CLIENTS,
        seen.clone(),
    ));
    wait_for_progress(&seen, TOTAL * 3 / 10).await;
    let (recovery, probe) = inject(fault, &mut cluster, &client, &seen).await;
    let _ = load.await;

    let mut accepted = seen.accepted.lock().await.clone();
    accepted.push(probe);
    let audit = Audit::run(&pool, &accepted, Duration::from_secs(120)).await;
    let stale_rejected = cluster
        .worker_counter(&client, "tasker_task_stale_results_total")
        .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap_or(-1);
    let mut problems = Vec::new();
    if stored != accepted.len() as i64 {
        problems.push(format!(
            "{stored} tasks stored for {} accepted",
            accepted.len()
        ));
    }
    problems.extend(audit.problems(accepted.len()));
    let per_tenant = seen.accepted_per_tenant.lock().await.clone();
    let stored_per_tenant = stored_per_tenant(&pool).await;
    for (index, accepted) in per_tenant.iter().enumerate() {
        let stored = stored_per_tenant
            .get(&tenant_name(index))
            .copied()
            .unwrap_or(0);
        if stored != *accepted as i64 {
            problems.push(format!(
                "tenant {}: {stored} tasks stored for {accepted} accepted",
                tenant_name(index)
            ));
        }
    }
    drop(cluster);
    Outcome {
        fault,
        submitted: seen.attempted.load(Ordering::SeqCst) + 1,
        stored,
        accepted: accepted.len(),
        audit,
        stale_rejected,
        recovery,
        problems,
    }
}

async fn wait_for_progress(seen: &Submissions, attempted: usize) {
    eventually(|| async { (seen.attempted.load(Ordering::SeqCst) >= attempted).then_some(()) })
        .await;
}

/// Injects the fault and measures recovery: the time from the moment the
/// fault took effect until a task submitted then has completed. The probe
/// runs while the fault is healed (processes restarted, PostgreSQL started,
/// the frozen worker thawed), so it also shows whether the rest of the
/// cluster carried on meanwhile.
async fn inject(
    fault: Fault,
    cluster: &mut Cluster,
    client: &reqwest::Client,
    seen: &Submissions,
) -> (Duration, Uuid) {
    if let Fault::KillWorkers = fault {
        // Two kills first; the third is the one recovery is measured from.
        for round in 0..2 {
            let worker = &mut cluster.workers[round];
            worker.sigkill();
            tokio::time::sleep(SETTLE).await;
            worker.restart();
            let progress = seen.attempted.load(Ordering::SeqCst);
            wait_for_progress(seen, (progress + TOTAL / 10).min(TOTAL)).await;
        }
    }
    disrupt(fault, cluster).await;
    let api = cluster.api.url("");
    let at = Instant::now();
    let timed_probe = async {
        let id = probe(&api, client).await;
        (at.elapsed(), id)
    };
    let (measured, ()) = tokio::join!(timed_probe, heal(fault, cluster));
    measured
}

async fn disrupt(fault: Fault, cluster: &mut Cluster) {
    match fault {
        Fault::KillWorkers => cluster.workers[0].sigkill(),
        Fault::FlushRedis => {
            let mut redis = redis_connection().await;
            let _: () = redis::cmd("FLUSHALL")
                .query_async(&mut redis)
                .await
                .expect("FLUSHALL");
        }
        Fault::RestartPostgres => pg_ctlcluster("stop").await,
        Fault::KillApi => cluster.api.sigkill(),
        Fault::FreezeWorker => cluster.workers[0].signal("STOP"),
        Fault::TerminateWorker => cluster.workers[0].signal("TERM"),
    }
}

async fn heal(fault: Fault, cluster: &mut Cluster) {
    match fault {
        Fault::KillWorkers => {
            tokio::time::sleep(SETTLE).await;
            cluster.workers[0].restart();
        }
        Fault::FlushRedis => {}
        Fault::RestartPostgres => {
            tokio::time::sleep(SETTLE).await;
            pg_ctlcluster("start").await;
        }
        Fault::KillApi => {
            tokio::time::sleep(SETTLE).await;
            cluster.api.restart();
        }
        Fault::FreezeWorker => {
            tokio::time::sleep(LEASE * 5 / 2).await;
            cluster.workers[0].signal("CONT");
        }
        Fault::TerminateWorker => {
            cluster.workers[0].wait_exit().await;
            cluster.workers[0].restart();
        }
    }
}

fn tenant_name(index: usize) -> String {
    format!("tenant-{index}")
}

/// One key per tenant (submit and read), made with the bootstrap admin key.
async fn tenant_tokens(keys_url: &str, client: &reqwest::Client) -> Vec<String> {
    let mut tokens = Vec::with_capacity(TENANTS);
    for index in 0..TENANTS {
        let body = json!({"tenant": tenant_name(index), "scopes": ["submit", "read"]});
        let token = eventually(|| async {
            let made: Value = client
                .post(keys_url)
                .bearer_auth(BOOTSTRAP_TOKEN)
                .json(&body)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            made["token"].as_str().map(str::to_owned)
        })
        .await;
        tokens.push(token);
    }
    tokens
}

async fn stored_per_tenant(pool: &sqlx::PgPool) -> std::collections::HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT tenant, count(*) FROM tasks GROUP BY tenant")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Submits one task (retrying until accepted) and waits for it to complete.
/// It runs on a queue of its own, so it measures the service, not the backlog.
async fn probe(api: &str, client: &reqwest::Client) -> Uuid {
    let url = format!("{api}/run-task");
    let body = json!({"task_name": "file_hash", "content": "probe"});
    let id = eventually(|| load::submit(client, &url, Some(BOOTSTRAP_TOKEN), &body, Some("probe")))
        .await;
    let task_url = format!("{api}/tasks/{id}");
    eventually(|| async {
        let task: Value = client
            .get(&task_url)
            .bearer_auth(BOOTSTRAP_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (task["status"] == "completed").then_some(())
    })
    .await;
    id
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(crate::support::REDIS_URL).expect("redis");
    client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("redis connection")
}

async fn pg_ctlcluster(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster (pg_ctlcluster)")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a PostgreSQL version directory");
    let mut command = tokio::process::Command::new("pg_ctlcluster");
    command.args(["--skip-systemctl-redirect", &version, "main", action]);
    if action == "stop" {
        command.args(["--mode", "fast"]);
    }
    let status = command.status().await.expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
    if action == "start" {
        tokio::time::timeout(PATIENCE, async {
            while sqlx::PgPool::connect(crate::support::PG_ADMIN_URL)
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("PostgreSQL back");
    }
}
