//! Operator control: cancel, retry, bulk actions, pause and resume, and who
//! may do them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::processes::{Process, free_port, log_dir};
use crate::support::{TestApp, TestEnv, eventually, metric};

async fn cancel(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.post_json(&format!("/tasks/{id}/cancel"), json!({}))
        .await
}

async fn retry(app: &TestApp, id: Uuid) -> reqwest::Response {
    app.post_json(&format!("/tasks/{id}/retry"), json!({}))
        .await
}

/// The task as PostgreSQL has it (not the cache).
async fn stored(app: &TestApp, id: Uuid) -> (String, i32, Option<Value>) {
    sqlx::query_as("SELECT status, attempts, task_output FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.env.pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_pending_task_never_starts() {
    let mut app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let queue = app.get_json(&format!("/tasks/{id}/submission")).await["queue"]
        .as_str()
        .unwrap()
        .to_owned();
    let depth = |queues: Value| {
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue.as_str())
            .map(|q| q["depth"].clone())
    };
    assert_eq!(depth(app.get_json("/queues").await), Some(json!(1)));
    let response = cancel(&app, id).await;
    assert_eq!(response.status(), 200);
    // Its queue message is withdrawn: the queue no longer counts it.
    assert_eq!(depth(app.get_json("/queues").await), Some(json!(0)));
    let task: Value = response.json().await.unwrap();
    assert_eq!(task["status"], "cancelled");
    assert!(task["completed_at"].is_string(), "{task}");
    // Again: the same answer, not an error.
    let again = cancel(&app, id).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "cancelled");
    // Reads agree, from the cache as from PostgreSQL.
    let read = app.get(&format!("/tasks/{id}")).await;
    assert_eq!(read.headers()["x-tasker-cache"], "hit");
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "cancelled");

    // A worker starts, runs a task submitted after it, and never the cancelled one.
    app.start_worker().await;
    let later = app
        .submit(json!({"task_name": "sum", "a": 2, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(later).await["status"], "completed");
    assert_eq!(stored(&app, id).await, ("cancelled".into(), 0, None));
    let listed = app.get_json("/tasks?status=cancelled").await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(listed["tasks"][0]["task_uuid"], id.to_string());
}

#[tokio::test]
async fn a_finished_or_unknown_task_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(app.wait_terminal(id).await["status"], "completed");
    let response = cancel(&app, id).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "status_conflict", "{body}");
    assert_eq!(body["error"]["details"]["status"], "completed");
    assert_eq!(app.task(id).await["status"], "completed");

    assert_eq!(cancel(&app, Uuid::now_v7()).await.status(), 404);
    let bad = app.post_json("/tasks/not-a-uuid/cancel", json!({})).await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn a_running_llm_call_is_stopped_within_two_seconds_and_frees_its_permit() {
    // The first call would take a minute; the budget allows one call at once.
    let llm = FakeLlm::start(vec![Reply::ok("never").slow(Duration::from_secs(60))]).await;
    let app = TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.tasks.set("llm", "max_concurrency", 1);
        },
        true,
    )
    .await;
    let slow = app
        .submit(json!({"task_name": "query_llm", "prompt": "slow"}))
        .await;
    app.wait_status(slow, "running").await;
    eventually(|| async { (llm.received().len() == 1).then_some(()) }).await;
    // A waiter on the task wakes when it is cancelled.
    let waiter = {
        let url = app.url(&format!("/tasks/{slow}?wait=20"));
        let client = app.client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let task: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            (task, started.elapsed())
        })
    };
    let cancelled_at = Instant::now();
    let response = cancel(&app, slow).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );

    // The attempt let go of the LLM permit: the next call runs at once.
    let next = app
        .submit(json!({"task_name": "query_llm", "prompt": "next"}))
        .await;
    let task = app.wait_terminal(next).await;
    assert_eq!(task["status"], "completed", "{task}");
    let freed = cancelled_at.elapsed();
    assert!(
        freed < Duration::from_secs(2),
        "the attempt took {freed:?} to stop"
    );
    assert_eq!(
        task["attempts"], 1,
        "it never waited for the permit: {task}"
    );

    let (woken, waited) = waiter.await.unwrap();
    assert_eq!(woken["status"], "cancelled");
    assert!(
        waited < Duration::from_secs(10),
        "the waiter slept {waited:?}"
    );
    assert_eq!(
        stored(&app, slow).await,
        ("cancelled".into(), 1, None),
        "nothing the stopped attempt did was written"
    );
}

#[tokio::test]
async fn a_late_outcome_of_a_cancelled_attempt_is_fenced_out() {
    let app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    // A worker that never heard of the cancel still holds the attempt.
    let store = &app.services.store;
    let claimed = store
        .claim(id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancel(&app, id).await.status(), 200);
    let late = store
        .complete(id, claimed.attempt, &json!({"result": 3}))
        .await
        .unwrap();
    assert!(late.is_none(), "the late write was discarded");
    let renewed = store
        .renew_leases(
            &[tasker::store::Lease {
                task_id: id,
                attempt: claimed.attempt,
            }],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(renewed.is_empty(), "its heartbeat finds the lease gone");
    assert_eq!(stored(&app, id).await, ("cancelled".into(), 1, None));
}

#[tokio::test]
async fn a_cancel_racing_completion_has_exactly_one_winner_and_the_task_shows_it() {
    let llm = FakeLlm::start_with_delay(Vec::new(), Duration::from_millis(5)).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let mut outcomes = (0, 0);
    for i in 0..60 {
        // Quick tasks finish inside their claim's transaction; LLM tasks
        // on the ordinary path: both race the cancel.
        let body = if i % 2 == 0 {
            json!({"task_name": "sum", "a": i, "b": 1})
        } else {
            json!({"task_name": "query_llm", "prompt": format!("p{i}")})
        };
        let id = app.submit(body).await;
        if i % 3 == 1 {
            tokio::time::sleep(Duration::from_millis(i as u64 % 7)).await;
        }
        let response = cancel(&app, id).await;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        let task = app.wait_terminal(id).await;
        let (in_db, _, output) = stored(&app, id).await;
        match status {
            200 => {
                outcomes.0 += 1;
                assert_eq!(answer["status"], "cancelled");
                assert_eq!(in_db, "cancelled", "{task}");
                assert!(output.is_none(), "a cancelled task has no output: {task}");
            }
            409 => {
                outcomes.1 += 1;
                assert_eq!(
                    answer["error"]["details"]["status"], "completed",
                    "{answer}"
                );
                assert_eq!(in_db, "completed", "{task}");
            }
            other => panic!("cancel answered {other}: {answer}"),
        }
        assert_eq!(task["status"], in_db.as_str(), "the read agrees: {task}");
    }
    println!("cancel won {} times, completion {}", outcomes.0, outcomes.1);
    assert_eq!(outcomes.0 + outcomes.1, 60);
}

#[tokio::test]
async fn a_failed_task_is_retried_with_a_fresh_budget_keeping_its_error_until_it_ends() {
    let llm = FakeLlm::start(vec![Reply::error(400, "invalid_request_error", "nope")]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), false).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    // Not failed yet: nothing to retry.
    let early = retry(&app, id).await;
    assert_eq!(early.status(), 409);
    assert_eq!(
        early.json::<Value>().await.unwrap()["error"]["details"]["status"],
        "pending"
    );
    let mut app = app;
    let worker = app.start_worker().await;
    let failed = app.wait_terminal(id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 1);
    // Cached as failed; the retry must not leave that copy behind.
    assert_eq!(
        app.get(&format!("/tasks/{id}")).await.headers()["x-tasker-cache"],
        "hit"
    );
    app.stop_worker(worker).await;

    let response = retry(&app, id).await;
    assert_eq!(response.status(), 200);
    let pending: Value = response.json().await.unwrap();
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["attempts"], 1, "attempts keep counting");
    let budget = app
        .services
        .registry
        .get("query_llm")
        .unwrap()
        .retry_policy()
        .max_attempts;
    assert_eq!(
        pending["max_attempts"],
        budget + 1,
        "one spent + a fresh budget of {budget}"
    );
    assert!(
        pending["error"].as_str().unwrap().contains("400"),
        "the last error stays visible: {pending}"
    );
    assert!(pending["completed_at"].is_null());
    let read = app.get(&format!("/tasks/{id}")).await;
    assert_ne!(read.headers()["x-tasker-cache"], "hit");
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "pending");

    app.start_worker().await;
    let done = app.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "a new fencing token, never a reused one"
    );
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        retry(&app, id).await.status(),
        409,
        "a completed task is not retried"
    );
}

#[tokio::test]
async fn a_cancelled_task_can_be_retried() {
    let mut app = TestApp::spawn_api_only().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    assert_eq!(cancel(&app, id).await.status(), 200);
    let response = retry(&app, id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "pending");
    app.start_worker().await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["task_output"]["result"], 3);
}

#[tokio::test]
async fn bulk_actions_act_on_every_match_and_only_on_matches() {
    let mut app = TestApp::spawn_api_only().await;
    // 1,150 sums (more than one batch) and 40 file hashes.
    for chunk in 0..12 {
        let tasks: Vec<Value> = (0..100)
            .map(|i| {
                if chunk == 11 && i >= 50 {
                    json!({"task_name": "file_hash", "content": format!("c{i}")})
                } else {
                    json!({"task_name": "sum", "a": i, "b": chunk})
                }
            })
            .collect();
        let response = app.post_json("/run-tasks", json!({"tasks": tasks})).await;
        assert_eq!(response.status(), 202);
    }
    let refused = app.post_json("/tasks/cancel", json!({})).await;
    assert_eq!(refused.status(), 422, "no filter and no `all`");
    for wrong in [
        json!({"status": "completed"}),
        json!({"all": false}),
        json!({"tenant": ""}),
        json!({"status": null}),
    ] {
        let response = app.post_json("/tasks/cancel", wrong.clone()).await;
        assert_eq!(response.status(), 422, "{wrong}");
    }

    let response = app
        .post_json(
            "/tasks/cancel",
            json!({"task_name": "sum", "queue": "default"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"cancelled": 1150})
    );
    let counts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT task_name, status, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(&app.env.pool().await)
            .await
            .unwrap();
    assert_eq!(
        counts,
        vec![
            ("file_hash".into(), "pending".into(), 50),
            ("sum".into(), "cancelled".into(), 1150)
        ]
    );
    let page = app
        .get_json("/tasks?status=cancelled&queue=default&limit=5")
        .await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 5);

    let response = app
        .post_json("/tasks/retry", json!({"status": "cancelled"}))
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"retried": 1150})
    );
    app.start_worker().await;
    eventually(|| async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(&app.env.pool().await)
            .await
            .unwrap();
        (done == 1200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_paused_queue_keeps_its_tasks_pending_until_resumed() {
    let llm = FakeLlm::start(Vec::new()).await;
    let mut app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let queues = app.get_json("/queues").await;
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "llm"]);
    assert_eq!(queues["queues"][0]["paused"], false);

    let paused = app.post_json("/queues/default/pause", json!({})).await;
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    assert!(paused["paused_at"].is_string());
    assert_eq!(
        metric(
            &app.metrics().await,
            r#"tasker_queue_paused{queue="default"}"#
        ),
        Some(1.0)
    );
    let unknown = app.post_json("/queues/nope/pause", json!({})).await;
    assert_eq!(unknown.status(), 404);

    let held: Vec<Uuid> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
                    .await,
            );
        }
        ids
    };
    // The other queue runs meanwhile.
    let other = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    assert_eq!(app.wait_terminal(other).await["status"], "completed");
    let figures = app.get_json("/queues").await;
    assert_eq!(figures["queues"][0]["depth"], 5, "{figures}");

    // The worker restarts, then the flag vanishes from Redis (a flush): the
    // pause holds, since PostgreSQL keeps it and the worker read it there.
    app.stop_worker(0).await;
    app.start_worker().await;
    let mut redis = app.env.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(app.services.keys.paused("default"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let proof = app
        .submit(json!({"task_name": "query_llm", "prompt": "after restart"}))
        .await;
    assert_eq!(app.wait_terminal(proof).await["status"], "completed");
    // Twice the reconcile interval and the pause refresh: nothing moved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &held {
        assert_eq!(stored(&app, *id).await.0, "pending");
    }
    let flag: Option<String> = redis::cmd("GET")
        .arg(app.services.keys.paused("default"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(flag.is_some(), "the worker set the flag again");

    let resumed = app.post_json("/queues/default/resume", json!({})).await;
    assert_eq!(resumed.json::<Value>().await.unwrap()["paused"], false);
    for id in held {
        assert_eq!(app.wait_terminal(id).await["status"], "completed");
    }
    assert_eq!(
        metric(
            &app.metrics().await,
            r#"tasker_queue_paused{queue="default"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn operator_actions_follow_scopes_and_tenants() {
    let app = TestApp::spawn_with(|c| c.auth.enabled = true, false).await;
    let acme = app.key("acme", &["submit", "read"], None).await;
    let reader = app.key("acme", &["read"], None).await;
    let globex = app.key("globex", &["submit", "read"], None).await;
    let admin = app.key("ops", &["admin"], None).await;
    let submit = |token: &str| {
        app.as_key(Method::POST, "/run-task", token)
            .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
            .send()
    };
    let body: Value = submit(&acme).await.unwrap().json().await.unwrap();
    let id = body["task_uuid"].as_str().unwrap().to_owned();
    let post = |path: &str, token: &str| {
        app.as_key(Method::POST, path, token)
            .json(&json!({}))
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    let cancel_path = format!("/tasks/{id}/cancel");
    assert_eq!(status(post(&cancel_path, &reader).await.unwrap()), 403);
    assert_eq!(
        status(post(&cancel_path, &globex).await.unwrap()),
        404,
        "another tenant's task does not exist for it"
    );
    assert_eq!(status(post(&cancel_path, &acme).await.unwrap()), 200);
    assert_eq!(
        status(post(&format!("/tasks/{id}/retry"), &acme).await.unwrap()),
        200
    );
    assert_eq!(status(post(&cancel_path, &admin).await.unwrap()), 200);
    for path in ["/tasks/cancel", "/tasks/retry", "/queues/default/pause"] {
        let response = app
            .as_key(Method::POST, path, &acme)
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let queues = app
        .as_key(Method::GET, "/queues", &acme)
        .send()
        .await
        .unwrap();
    assert_eq!(queues.status(), 403);
    let queues = app
        .as_key(Method::GET, "/queues", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(queues.status(), 200);
    let anonymous = app.post_json(&cancel_path, json!({})).await;
    assert_eq!(anonymous.status(), 401);

    // An admin's bulk retry reaches every tenant; a tenant filter narrows it.
    let other: Value = submit(&globex).await.unwrap().json().await.unwrap();
    let other = other["task_uuid"].as_str().unwrap().to_owned();
    post(&format!("/tasks/{other}/cancel"), &globex)
        .await
        .unwrap();
    let narrowed = app
        .as_key(Method::POST, "/tasks/retry", &admin)
        .json(&json!({"tenant": "acme", "status": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        narrowed.json::<Value>().await.unwrap(),
        json!({"retried": 1})
    );
    let globex_task: Value = app
        .as_key(Method::GET, &format!("/tasks/{other}"), &globex)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(globex_task["status"], "cancelled");
}

/// How many tasks of this test's database are in each status.
async fn by_status(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM tasks GROUP BY 1")
        .fetch_all(&app.env.pool().await)
        .await
        .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn a_bulk_cancel_racing_a_worker_leaves_no_task_pending() {
    const TASKS: i64 = 2_500;
    let mut app = TestApp::spawn_api_only().await;
    for chunk in 0..TASKS / 100 {
        let tasks: Vec<Value> = (0..100)
            .map(|i| json!({"task_name": "sum", "a": i, "b": chunk}))
            .collect();
        let response = app.post_json("/run-tasks", json!({"tasks": tasks})).await;
        assert_eq!(response.status(), 202);
    }
    // Once the worker is up to speed, the cancel starts where it drains
    // the queue (the oldest task): tasks finish under the cancel's first
    // page, which then changes fewer than it holds without being the last.
    app.start_worker().await;
    eventually(|| async {
        let done = by_status(&app).await.get("completed").copied();
        (done >= Some(300)).then_some(())
    })
    .await;
    let response = app
        .post_json("/tasks/cancel", json!({"task_name": "sum"}))
        .await;
    assert_eq!(response.status(), 200);
    let answered = response.json::<Value>().await.unwrap()["cancelled"]
        .as_i64()
        .unwrap();

    // Whatever the worker had not finished is cancelled, at once.
    let counts = by_status(&app).await;
    let count = |status: &str| counts.get(status).copied().unwrap_or(0);
    assert_eq!(count("pending") + count("running"), 0, "{counts:?}");
    assert_eq!(count("cancelled"), answered, "{counts:?}");
    assert_eq!(count("completed") + answered, TASKS, "{counts:?}");
    assert!(
        answered > 0,
        "the worker finished every task before the cancel: {counts:?}"
    );
    println!(
        "the worker finished {}, the cancel took {answered}",
        count("completed")
    );
}

/// A real `tasker api` with authentication on and JSON logs, and the URL
/// of its `/metrics`. A process of its own: in-process apps share one
/// metrics recorder (and reset it when they start) and one log.
async fn api_process(env: &TestEnv, name: &str, client: &reqwest::Client) -> (Process, String) {
    let (port, ops_port) = (free_port(), free_port());
    let settings = [
        ("TASKER_DATABASE__URL", env.database_url()),
        (
            "TASKER_REDIS__URL",
            env.config.redis.url.expose().to_owned(),
        ),
        ("TASKER_REDIS__KEY_PREFIX", env.prefix.clone()),
        ("TASKER_API__LISTEN", format!("127.0.0.1:{port}")),
        ("TASKER_API__OPS_LISTEN", format!("127.0.0.1:{ops_port}")),
        ("TASKER_AUTH__ENABLED", "true".to_owned()),
        ("TASKER_LOG__LEVEL", "info".to_owned()),
        ("TASKER_LOG__FORMAT", "json".to_owned()),
    ];
    let api = Process::spawn(
        "api",
        port,
        settings
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
        log_dir().join(format!("{name}-api.log")),
    );
    api.wait_ready(client).await;
    (api, format!("http://127.0.0.1:{ops_port}/metrics"))
}

/// Makes a key of `tenant` with `scopes` on `env`'s database; returns its
/// id and token.
async fn key_on(env: &TestEnv, tenant: &str, scopes: &[&str]) -> (String, String) {
    let services = tasker::services::Services::build(&env.config).unwrap();
    let request = tasker::services::KeyRequest {
        tenant: tenant.into(),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        rate: None,
        max_running: None,
        expires_in: None,
        description: None,
    };
    let keys = tasker::services::ApiKeys::new(services.store.clone());
    let (key, token) = keys.create(request).await.unwrap();
    services.store.close().await;
    (key.id, token)
}

/// Submits a `sum` as `token` to `api`; returns its id.
async fn submit_as(api: &Process, client: &reqwest::Client, token: &str) -> String {
    let response = client
        .post(api.url("/run-task"))
        .bearer_auth(token)
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn operator_actions_are_logged_with_the_key_that_made_them() {
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let (api, _) = api_process(&env, "control-key-logs", &client).await;
    let (tenant_key, tenant_token) = key_on(&env, "acme", &["submit", "read"]).await;
    let (admin_key, admin_token) = key_on(&env, "ops", &["admin"]).await;
    let post = |path: &str, token: &str, body: Value| {
        client
            .post(api.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let id = submit_as(&api, &client, &tenant_token).await;
    let cancelled = post(&format!("/tasks/{id}/cancel"), &tenant_token, json!({}));
    assert_eq!(cancelled.await.unwrap().status(), 200);
    submit_as(&api, &client, &tenant_token).await;
    let bulk = post("/tasks/cancel", &admin_token, json!({"tenant": "acme"}));
    assert_eq!(
        bulk.await.unwrap().json::<Value>().await.unwrap()["cancelled"],
        1
    );
    let paused = post("/queues/default/pause", &admin_token, json!({}));
    assert_eq!(paused.await.unwrap().status(), 200);

    for (message, key) in [
        ("task cancelled", &tenant_key),
        ("tasks cancelled in bulk", &admin_key),
        ("queue paused", &admin_key),
    ] {
        let line = eventually(|| async {
            api.log()
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| line["message"] == message)
        })
        .await;
        assert_eq!(line["key_id"], key.as_str(), "{line}");
        if message == "task cancelled" {
            assert_eq!(line["task_id"], id.as_str(), "{line}");
        }
    }
    assert!(
        !api.log().contains(&tenant_token) && !api.log().contains(&admin_token),
        "tokens never reach the log"
    );
}

#[tokio::test]
async fn cancelling_a_pending_task_counts_it_as_completed_with_status_cancelled() {
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let (api, metrics) = api_process(&env, "control-cancel-metric", &client).await;
    let (_, token) = key_on(&env, "acme", &["submit", "read"]).await;
    let series = r#"tasker_tasks_completed_total{task_name="sum",status="cancelled"}"#;
    let scrape = || async {
        client
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(metric(&scrape().await, series), Some(0.0));

    let id = submit_as(&api, &client, &token).await;
    let response = client
        .post(api.url(&format!("/tasks/{id}/cancel")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = scrape().await;
    assert_eq!(metric(&page, series), Some(1.0), "{page}");
    // Cancelling it again changes nothing, and counts nothing.
    let again = client
        .post(api.url(&format!("/tasks/{id}/cancel")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(metric(&scrape().await, series), Some(1.0));
    let completed = r#"tasker_tasks_completed_total{task_name="sum",status="completed"}"#;
    assert_eq!(metric(&scrape().await, completed), Some(0.0));
}

#[tokio::test]
async fn queue_figures_show_running_tasks_and_the_age_of_the_oldest_waiting_one() {
    let llm = FakeLlm::start(vec![Reply::ok("never").slow(Duration::from_secs(60))]).await;
    let app = TestApp::spawn_with(|c| llm.configure(c), true).await;
    let figures = |name: &'static str| {
        let app = &app;
        async move {
            let queues = app.get_json("/queues").await;
            queues["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["name"] == name)
                .unwrap_or_else(|| panic!("no queue {name} in {queues}"))
                .clone()
        }
    };
    for name in ["default", "llm"] {
        let queue = figures(name).await;
        assert_eq!(
            (
                &queue["depth"],
                &queue["running"],
                &queue["oldest_age_seconds"]
            ),
            (&json!(0), &json!(0), &json!(0.0)),
            "{queue}"
        );
    }

    // A long LLM call runs in its queue, and only there.
    let slow = app
        .submit(json!({"task_name": "query_llm", "prompt": "slow"}))
        .await;
    app.wait_status(slow, "running").await;
    let llm_queue = figures("llm").await;
    assert_eq!(
        (&llm_queue["running"], &llm_queue["depth"]),
        (&json!(1), &json!(0)),
        "{llm_queue}"
    );
    assert_eq!(figures("default").await["running"], 0);

    // A paused queue holds what is submitted to it, and its oldest task ages.
    let paused = app.post_json("/queues/default/pause", json!({})).await;
    assert_eq!(paused.status(), 200);
    let submitted = Instant::now();
    for i in 0..3 {
        app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
            .await;
    }
    let held = eventually(|| async {
        let queue = figures("default").await;
        (queue["oldest_age_seconds"].as_f64()? >= 0.05).then_some(queue)
    })
    .await;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE queue = 'default' AND status = 'pending'",
    )
    .fetch_one(&app.env.pool().await)
    .await
    .unwrap();
    assert_eq!((waiting, &held["depth"]), (3, &json!(3)), "{held}");
    assert_eq!(held["running"], 0, "{held}");
    let age = held["oldest_age_seconds"].as_f64().unwrap();
    assert!(
        age <= submitted.elapsed().as_secs_f64(),
        "the oldest task is {age}s old, submitted {:?} ago",
        submitted.elapsed()
    );
    eventually(|| async {
        let older = figures("default").await["oldest_age_seconds"].as_f64()?;
        (older > age).then_some(())
    })
    .await;

    // Stopped, the long call no longer counts as running.
    assert_eq!(cancel(&app, slow).await.status(), 200);
    assert_eq!(figures("llm").await["running"], 0);
}
