//! Real `tasker api` and `tasker worker` processes, with the signals tests
//! send them.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{PATIENCE, TestEnv, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_tasker");

/// One process and how to reach it.
pub struct Process {
    pub role: &'static str,
    pub port: u16,
    child: Child,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Process {
    /// Starts `tasker <role>` with exactly `env`, logging to `log`; `port`
    /// is where its HTTP answers.
    pub fn spawn(role: &'static str, port: u16, env: Vec<(String, String)>, log: PathBuf) -> Self {
        let child = start(role, &env, &log);
        Self {
            role,
            port,
            child,
            env,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Waits for the process to exit cleanly (after SIGTERM).
    pub async fn wait_exit(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit",
                self.role
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM",
            self.role
        );
    }

    /// Another process of the same role and environment, on ports of its
    /// own, logging to `log_name` in the log directory.
    pub fn twin(&self, log_name: &str) -> Self {
        let port = free_port();
        let env = self
            .env
            .iter()
            .map(|(key, value)| {
                let value = match key.as_str() {
                    "TASKER_API__LISTEN" | "TASKER_WORKER__LISTEN" => format!("127.0.0.1:{port}"),
                    "TASKER_API__OPS_LISTEN" => format!("127.0.0.1:{}", free_port()),
                    _ => value.clone(),
                };
                (key.clone(), value)
            })
            .collect();
        Self::spawn(self.role, port, env, log_dir().join(log_name))
    }

    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = start(self.role, &self.env, &self.log);
    }

    pub async fn wait_ready(&self, client: &reqwest::Client) {
        eventually(|| async {
            let ready = client.get(self.url("/ready")).send().await;
            ready.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(role: &str, env: &[(String, String)], log: &PathBuf) -> Child {
    let out = File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new(BINARY)
        .arg(role)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start tasker")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// An API and two workers on one test database.
pub struct Cluster {
    pub api: Process,
    pub workers: Vec<Process>,
}

impl Cluster {
    /// Starts the API and `workers` workers on `env`'s database and key
    /// prefix, with `extra` environment on top of the test defaults, and
    /// waits until all are ready. Logs go to `process-logs/<name>-*.log`
    /// under Cargo's temporary directory for tests.
    pub async fn start(
        env: &TestEnv,
        name: &str,
        workers: usize,
        extra: &[(&str, String)],
        client: &reqwest::Client,
    ) -> Self {
        let logs = log_dir();
        let base = [
            ("TASKER_DATABASE__URL", env.database_url()),
            ("TASKER_DATABASE__ACQUIRE_TIMEOUT_SECONDS", "2".into()),
            (
                "TASKER_REDIS__URL",
                env.config.redis.url.expose().to_owned(),
            ),
            ("TASKER_REDIS__KEY_PREFIX", env.prefix.clone()),
            ("TASKER_WORKER__RECONCILE_INTERVAL_SECONDS", "1".into()),
            ("TASKER_LOG__LEVEL", "warn".into()),
        ];
        let with = |own: (&str, String)| -> Vec<(String, String)> {
            base.iter()
                .chain(extra.iter())
                .chain(std::iter::once(&own))
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let (api_port, ops_port) = (free_port(), free_port());
        let mut api_env = with(("TASKER_API__LISTEN", format!("127.0.0.1:{api_port}")));
        api_env.push((
            "TASKER_API__OPS_LISTEN".into(),
            format!("127.0.0.1:{ops_port}"),
        ));
        let api = Process::spawn(
            "api",
            api_port,
            api_env,
            logs.join(format!("{name}-api.log")),
        );
        let workers = (0..workers)
            .map(|i| {
                let port = free_port();
                Process::spawn(
                    "worker",
                    port,
                    with(("TASKER_WORKER__LISTEN", format!("127.0.0.1:{port}"))),
                    logs.join(format!("{name}-worker{i}.log")),
                )
            })
            .collect();
        let cluster = Self { api, workers };
        tokio::time::timeout(PATIENCE, async {
            cluster.api.wait_ready(client).await;
            for worker in &cluster.workers {
                worker.wait_ready(client).await;
            }
        })
        .await
        .expect("cluster ready");
        cluster
    }

    /// Sum of a counter over the workers that are still alive.
    pub async fn worker_counter(&self, client: &reqwest::Client, name: &str) -> f64 {
        let mut total = 0.0;
        for worker in &self.workers {
            let Ok(response) = client.get(worker.url("/metrics")).send().await else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            total += text
                .lines()
                .filter(|line| line.starts_with(name))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }
}

/// Where process logs go.
pub fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("process-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// Runs `tasker` with `args` and only `env`, to completion; returns whether
/// it succeeded and everything it printed.
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tasker");
    let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
    printed.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}
