//! PostgreSQL or Redis going away: fast 503s, no lost submissions, and
//! recovery without a restart. The outage is played by a proxy in front of
//! the shared server, so other tests are not disturbed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tasker::config::SecretUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::processes::{Process, free_port, log_dir};
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

/// A `tasker api` process with `settings` on top of its own ports (and a
/// 1 s wait for a database connection), logging JSON to `<name>.log` in
/// the process log directory; and the base URL of its operations port.
fn api_process(name: &str, settings: &[(&str, String)]) -> (Process, String) {
    // For the tests' own HTTP clients.
    tasker::tls::install_crypto_provider();
    let (port, ops) = (free_port(), free_port());
    let own = [
        ("TASKER_API__LISTEN", format!("127.0.0.1:{port}")),
        ("TASKER_API__OPS_LISTEN", format!("127.0.0.1:{ops}")),
        ("TASKER_DATABASE__ACQUIRE_TIMEOUT_SECONDS", "1".to_owned()),
        ("TASKER_LOG__FORMAT", "json".to_owned()),
    ];
    let env = own
        .iter()
        .chain(settings)
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    let log = log_dir().join(format!("{name}.log"));
    let api = Process::spawn("api", port, env, log);
    (api, format!("http://127.0.0.1:{ops}"))
}

/// The JSON log lines of `process` whose `message` is `message`.
fn log_events(process: &Process, message: &str) -> Vec<Value> {
    process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == message)
        .collect()
}

/// Starts an api on the database at `url` (and the local Redis), waits
/// until it says it is not ready, and returns its log line explaining why
/// PostgreSQL failed the readiness check.
async fn readiness_failure(name: &str, url: String) -> (Process, Value) {
    let settings = [
        ("TASKER_DATABASE__URL", url),
        ("TASKER_REDIS__URL", crate::support::REDIS_URL.to_owned()),
    ];
    let (api, _) = api_process(name, &settings);
    let client = reqwest::Client::new();
    eventually(|| async {
        let response = client.get(api.url("/ready")).send().await.ok()?;
        (response.status() == 503).then_some(())
    })
    .await;
    let line = eventually(|| async {
        log_events(&api, "readiness check failed")
            .into_iter()
            .find(|event| event["dependency"] == "postgres")
    })
    .await;
    (api, line)
}

#[tokio::test]
async fn an_unreachable_database_is_explained_in_the_log() {
    // Nothing listens on port 9: every connection is refused.
    let url = "postgres://postgres@127.0.0.1:9/x".to_owned();
    let (api, readiness) = readiness_failure("explain-unreachable", url).await;
    let cause = readiness["error"].as_str().unwrap_or_default();
    assert!(cause.contains("unavailable"), "{readiness}");
    let client = reqwest::Client::new();
    let response = client
        .post(api.url("/run-task"))
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let line = eventually(|| async {
        api.log()
            .lines()
            .find(|line| line.contains("cannot connect to PostgreSQL"))
            .map(str::to_owned)
    })
    .await;
    assert!(line.to_ascii_lowercase().contains("refused"), "{line}");
}

/// The status of a submission to `api`.
async fn submit_status(api: &Process) -> u16 {
    reqwest::Client::new()
        .post(api.url("/run-task"))
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or_default()
}

/// Starts an api on `url`, which PostgreSQL refuses, and checks that the
/// readiness log names `cause` and that submissions answer 503.
async fn refused_by_the_database(name: &str, url: String, cause: &str) -> Process {
    let (api, readiness) = readiness_failure(name, url).await;
    let logged = readiness["error"].as_str().unwrap_or_default();
    assert!(logged.contains(cause), "{readiness}");
    assert_eq!(
        submit_status(&api).await,
        503,
        "the service cannot reach its database"
    );
    api
}

#[tokio::test]
async fn an_unknown_database_is_explained_in_the_log() {
    let database = format!("no_such_db_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@{PG_HOST}/{database}");
    let cause = format!("database \"{database}\" does not exist");
    refused_by_the_database("explain-unknown-database", url, &cause).await;
}

#[tokio::test]
async fn an_unknown_role_is_explained_in_the_log() {
    let url = format!("postgres://no_such_role_x@{PG_HOST}/postgres");
    let cause = "role \"no_such_role_x\" does not exist";
    refused_by_the_database("explain-unknown-role", url, cause).await;
}

#[tokio::test]
async fn a_wrong_password_is_explained_in_the_log_and_never_printed() {
    // The shared server trusts every login, so a stand-in refuses it the
    // way PostgreSQL refuses a wrong password.
    let (address, received) = refusing_postgres().await;
    let url = format!("postgres://tasker:wrong-pw-5e1c@{address}/tasker");
    let cause = "password authentication failed for user \"tasker\"";
    let api = refused_by_the_database("explain-password", url, cause).await;
    assert_eq!(
        received.lock().unwrap().as_deref(),
        Some("wrong-pw-5e1c"),
        "the password was sent to the server"
    );
    assert!(!api.log().contains("wrong-pw-5e1c"), "{}", api.log());
}

/// Speaks just enough of PostgreSQL's protocol to ask for a password and
/// refuse it, as PostgreSQL does a wrong one (SQLSTATE 28P01). Returns its
/// address and the last password it was sent.
async fn refusing_postgres() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Option<String>>>) {
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(None));
    let last = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let last = last.clone();
            tokio::spawn(async move {
                // Startup packets (length, then body) until the StartupMessage:
                // encryption requests are declined with `N`.
                for _ in 0..3 {
                    let Ok(len) = stream.read_u32().await else {
                        return;
                    };
                    let mut body = vec![0; (len as usize).saturating_sub(4).min(10_000)];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let code = body
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if !matches!(code, Some(SSL_REQUEST | GSSENC_REQUEST)) {
                        break;
                    }
                    if stream.write_all(b"N").await.is_err() {
                        return;
                    }
                }
                // AuthenticationCleartextPassword, then the PasswordMessage.
                if stream
                    .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                    .await
                    .is_err()
                {
                    return;
                }
                let (Ok(b'p'), Ok(len)) = (stream.read_u8().await, stream.read_u32().await) else {
                    return;
                };
                let mut password = vec![0; (len as usize).saturating_sub(4).min(10_000)];
                if stream.read_exact(&mut password).await.is_err() {
                    return;
                }
                let password = String::from_utf8_lossy(&password);
                *last.lock().unwrap() = Some(password.trim_end_matches('\0').to_owned());
                let fields: &[u8] = b"SFATAL\0VFATAL\0C28P01\0\
                    Mpassword authentication failed for user \"tasker\"\0\0";
                let mut error = vec![b'E'];
                error.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                error.extend_from_slice(fields);
                let _ = stream.write_all(&error).await;
            });
        }
    });
    (address, received)
}

#[tokio::test]
async fn secrets_reach_no_answer_and_no_log_line_even_while_dependencies_fail() {
    const SECRETS: [&str; 3] = ["pg-secret-7f3a", "redis-secret-9c1d", "sk-ant-secret-4b2e"];
    let postgres = FaultProxy::start(PG_HOST).await;
    let redis = FaultProxy::start(REDIS_HOST).await;
    let env = TestEnv::new().await;
    let settings = [
        (
            "TASKER_DATABASE__URL",
            format!(
                "postgres://postgres:{}@{}/{}",
                SECRETS[0], postgres.address, env.database
            ),
        ),
        // The shared Redis lets its default user in with any password.
        (
            "TASKER_REDIS__URL",
            format!("redis://default:{}@{}", SECRETS[1], redis.address),
        ),
        ("TASKER_REDIS__KEY_PREFIX", env.prefix.clone()),
        ("TASKER_LLM__API_KEY", SECRETS[2].to_owned()),
        ("TASKER_LOG__LEVEL", "debug".to_owned()),
    ];
    let (api, ops) = api_process("secrets", &settings);
    let client = reqwest::Client::new();
    api.wait_ready(&client).await;

    // Answers of every kind, first with both dependencies up...
    let mut answers = String::new();
    let mut record = |status: reqwest::StatusCode, body: String| {
        answers.push_str(&format!("{status} {body}\n"));
    };
    let submit = |body: Value| client.post(api.url("/run-task")).json(&body).send();
    let accepted = submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let gets = [
        api.url(&format!("/tasks/{id}")),
        api.url("/no-such-page"),
        api.url("/ready"),
        api.url("/openapi.json"),
        format!("{ops}/ready"),
        format!("{ops}/metrics"),
    ];
    for url in &gets {
        let response = client.get(url).send().await.unwrap();
        record(response.status(), response.text().await.unwrap());
    }
    let refused = submit(json!({"task_name": "query_llm"})).await.unwrap();
    assert_eq!(refused.status(), 422);
    record(refused.status(), refused.text().await.unwrap());

    // ...then with both down.
    postgres.cut().await;
    redis.cut().await;
    let failed = submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    record(failed.status(), failed.text().await.unwrap());
    for url in &gets {
        let response = client.get(url).send().await.unwrap();
        record(response.status(), response.text().await.unwrap());
    }
    assert!(answers.contains("503 "), "{answers}");
    // Every failure has reached the log, with its cause.
    let causes = eventually(|| async {
        let events = log_events(&api, "readiness check failed");
        let down = |name: &str| events.iter().any(|e| e["dependency"] == name);
        (down("postgres") && down("redis")).then_some(events)
    })
    .await;
    assert!(
        causes
            .iter()
            .all(|e| e["error"].as_str().is_some_and(|c| !c.is_empty())),
        "{causes:?}"
    );
    let log = api.log();
    assert!(log.contains("request failed"), "{log}");
    assert!(
        log.contains(&postgres.address.to_string()),
        "hosts stay visible: {log}"
    );
    for secret in SECRETS {
        assert!(!answers.contains(secret), "{secret} answered:\n{answers}");
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}
