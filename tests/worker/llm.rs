//! `query_llm` against a local server speaking the Messages API.

use std::time::Duration;

use serde_json::json;

use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::{TestApp, eventually, metric, retry_budget};

async fn app_with(llm: &FakeLlm, key: Option<&str>, timeout_seconds: u64) -> TestApp {
    TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.tasks.set("llm", "api_key", key.unwrap_or(""));
            c.tasks.set("llm", "model", "claude-test");
            c.tasks.set("llm", "timeout_seconds", timeout_seconds);
        },
        true,
    )
    .await
}

/// An api and a worker on `llm` with one setting of the fleet's LLM budget.
async fn app_with_budget(llm: &FakeLlm, setting: &str, value: u64) -> TestApp {
    TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.tasks.set("llm", setting, value);
        },
        true,
    )
    .await
}

#[tokio::test]
async fn a_prompt_is_answered_with_text_model_and_usage() {
    let llm = FakeLlm::start(vec![Reply::ok("Bonjour !")]).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(
            json!({"task_name": "query_llm", "prompt": "Say hello in French", "max_tokens": 50}),
        )
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["task_output"]["text"], "Bonjour !");
    assert_eq!(task["task_output"]["model"], "claude-test");
    assert_eq!(
        task["task_output"]["usage"],
        json!({"input_tokens": 7, "output_tokens": 3})
    );

    let received = llm.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.headers["x-api-key"], "sk-test");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(request.body["model"], "claude-test");
    assert_eq!(request.body["max_tokens"], 50);
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": "Say hello in French"}])
    );
}

#[tokio::test]
async fn a_rate_limit_waits_without_spending_an_attempt() {
    let llm = FakeLlm::start(vec![Reply::rate_limited(), Reply::ok("second time lucky")]).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    // Two runs, but the 429 was the provider's limit, not the task's fault:
    // the attempt it took was given back.
    assert_eq!(task["attempts"], 2);
    assert_eq!(
        task["max_attempts"],
        retry_budget("query_llm") + 1,
        "{task}"
    );
    assert_eq!(task["task_output"]["text"], "second time lucky");
    assert_eq!(llm.received().len(), 2);
    assert_eq!(
        llm.received()[1].body["max_tokens"],
        1024,
        "the configured default"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_attempts_run_out() {
    let budget = retry_budget("query_llm");
    let failures = (0..budget).map(|_| Reply {
        retry_after: Some("0"),
        ..Reply::error(503, "overloaded_error", "busy")
    });
    let llm = FakeLlm::start(failures.collect()).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["attempts"], budget);
    assert_eq!(task["max_attempts"], budget);
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains("503") && error.contains(&format!("gave up after {budget} attempts")),
        "{error}"
    );
    assert_eq!(llm.received().len(), budget as usize);
}

#[tokio::test]
async fn a_client_error_fails_at_once() {
    let llm = FakeLlm::start(vec![Reply::error(
        400,
        "invalid_request_error",
        "prompt is too long",
    )])
    .await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["attempts"], 1);
    // The kind of error, not the provider's words or address.
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains("400") && error.contains("invalid_request_error"),
        "{task}"
    );
    assert!(!error.contains("prompt is too long"), "{task}");
    assert!(!error.contains(&llm.base_url()), "{task}");
}

#[tokio::test]
async fn an_unreachable_provider_is_not_named_in_the_error() {
    let llm = FakeLlm::start(Vec::new()).await;
    let app = TestApp::spawn_with(
        |c| {
            llm.configure(c);
            // Nothing listens here; the worker log has the address, the task not.
            c.tasks
                .set("llm", "base_url", "http://127.0.0.1:9/secret-path");
        },
        true,
    )
    .await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = crate::support::eventually(|| async {
        let task = app.task(id).await;
        task["error"].is_string().then_some(task)
    })
    .await;
    let error = task["error"].as_str().unwrap();
    assert!(error.contains("could not connect to the LLM API"), "{task}");
    assert!(
        !error.contains("127.0.0.1") && !error.contains("secret-path"),
        "{task}"
    );
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let llm = FakeLlm::start(vec![
        Reply::ok("late").slow(Duration::from_secs(3)),
        Reply::ok("on time"),
    ])
    .await;
    let app = app_with(&llm, Some("sk-test"), 1).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 2);
    assert_eq!(task["task_output"]["text"], "on time");
}

#[tokio::test]
async fn without_a_key_the_task_fails_saying_which_key_to_set() {
    let llm = FakeLlm::start(vec![]).await;
    let app = app_with(&llm, None, 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "failed");
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains("llm.api_key") && error.contains("TASKER_LLM__API_KEY"),
        "{error}"
    );
    assert!(llm.received().is_empty());
}

#[tokio::test]
async fn a_waiting_retry_shows_attempts_the_last_error_and_the_next_attempt_time() {
    let wait = Reply {
        retry_after: Some("30"),
        ..Reply::error(429, "rate_limit_error", "slow down")
    };
    let llm = FakeLlm::start(vec![wait]).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = crate::support::eventually(|| async {
        let task = app.task(id).await;
        (task["attempts"] == 1 && task["status"] == "pending").then_some(task)
    })
    .await;
    assert!(task["error"].as_str().unwrap().contains("429"), "{task}");
    let next: chrono::DateTime<chrono::Utc> =
        task["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(20) && wait <= chrono::Duration::seconds(30),
        "{wait}"
    );
    assert!(task["completed_at"].is_null());
}

#[tokio::test]
async fn the_fleet_never_has_more_calls_in_flight_than_its_budget() {
    let llm = FakeLlm::start_with_delay(Vec::new(), Duration::from_millis(150)).await;
    let mut app = TestApp::spawn_with(
        |c| {
            llm.configure(c);
            c.tasks.set("llm", "max_concurrency", 3);
            c.worker.concurrency = 32.try_into().unwrap();
        },
        false,
    )
    .await;
    app.start_worker().await;
    app.start_worker().await;
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(
            app.submit(json!({"task_name": "query_llm", "prompt": format!("p{i}")}))
                .await,
        );
    }
    for id in ids {
        let task = app.wait_terminal(id).await;
        assert_eq!(task["status"], "completed", "{task}");
    }
    assert_eq!(llm.received().len(), 24, "one call per task");
    let most = llm.most_at_once();
    assert!(most <= 3, "{most} calls at once across two workers");
    assert!(most >= 2, "the budget was used ({most} at most at once)");
    // Every permit was given back.
    let mut redis = app.env.redis().await;
    let held: u64 = redis::cmd("ZCARD")
        .arg(app.services.keys.owned("llm", "permits"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(held, 0);
}

#[tokio::test]
async fn permits_held_by_a_dead_worker_expire() {
    let llm = FakeLlm::start(Vec::new()).await;
    let app = app_with_budget(&llm, "max_concurrency", 2).await;
    // A worker that was killed mid-call left both permits taken, with
    // little of their lifetime left.
    let mut redis = app.env.redis().await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let permits = app.services.keys.owned("llm", "permits");
    let _: () = redis::cmd("ZADD")
        .arg(&permits)
        .arg(now_ms + 1_500)
        .arg("dead-1")
        .arg(now_ms + 1_500)
        .arg("dead-2")
        .query_async(&mut redis)
        .await
        .unwrap();
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(llm.received().len(), 1);
    assert!(
        task["max_attempts"].as_i64().unwrap() > i64::from(retry_budget("query_llm")),
        "it waited for a permit without spending attempts: {task}"
    );
    let deferred = metric(
        &app.worker_metrics().await,
        r#"tasker_llm_deferred_total{reason="concurrency"}"#,
    );
    assert!(deferred.unwrap_or(0.0) >= 1.0, "{deferred:?}");
}

#[tokio::test]
async fn a_spent_token_budget_defers_the_next_call() {
    // Each reply reports 4,000 tokens used; the fleet may use 6,000 a minute.
    let mut heavy = Reply::ok("long answer");
    heavy.body["usage"] = json!({"input_tokens": 3_000, "output_tokens": 1_000});
    let llm = FakeLlm::start(vec![heavy.clone(), heavy]).await;
    let app = app_with_budget(&llm, "tokens_per_minute", 6_000).await;
    for _ in 0..2 {
        let id = app
            .submit(json!({"task_name": "query_llm", "prompt": "hi", "max_tokens": 10}))
            .await;
        assert_eq!(app.wait_terminal(id).await["status"], "completed");
    }
    // 8,000 tokens in the last seconds: the next call waits its turn.
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi", "max_tokens": 10}))
        .await;
    let task = eventually(|| async {
        let task = app.task(id).await;
        task["error"].is_string().then_some(task)
    })
    .await;
    assert_eq!(task["status"], "pending", "{task}");
    assert!(
        task["error"]
            .as_str()
            .unwrap()
            .contains("llm.tokens_per_minute"),
        "{task}"
    );
    let next: chrono::DateTime<chrono::Utc> =
        task["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(60),
        "{wait}"
    );
    assert_eq!(llm.received().len(), 2, "the third call was not made");
    // The recorder is the process's, shared with other tests.
    let used = metric(
        &app.worker_metrics().await,
        r#"tasker_llm_tokens_total{kind="used"}"#,
    );
    assert!(used.unwrap_or(0.0) >= 8_000.0, "{used:?}");
}

#[tokio::test]
async fn a_provider_s_spent_limit_holds_the_whole_fleet() {
    let mut spent = Reply::ok("last one for now");
    spent.reset_in = Some(Duration::from_secs(30));
    let llm = FakeLlm::start(vec![spent]).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let first = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    assert_eq!(app.wait_terminal(first).await["status"], "completed");
    let second = app
        .submit(json!({"task_name": "query_llm", "prompt": "again"}))
        .await;
    let task = eventually(|| async {
        let task = app.task(second).await;
        task["error"].is_string().then_some(task)
    })
    .await;
    assert_eq!(task["status"], "pending", "{task}");
    assert!(
        task["error"].as_str().unwrap().contains("asked to wait"),
        "{task}"
    );
    assert_eq!(
        llm.received().len(),
        1,
        "no call while the provider's limit is spent"
    );
}

#[tokio::test]
async fn a_killed_worker_s_permits_are_free_again_within_seconds() {
    use crate::support::TestEnv;
    use crate::support::processes::Cluster;

    // The first two calls hang: the worker making them is killed mid-call.
    let hang = Reply::ok("never seen").slow(Duration::from_secs(120));
    let llm = FakeLlm::start(vec![hang.clone(), hang]).await;
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let settings = [
        ("TASKER_LLM__BASE_URL", llm.base_url()),
        ("TASKER_LLM__API_KEY", "sk-test".to_owned()),
        ("TASKER_LLM__MAX_CONCURRENCY", "2".to_owned()),
        ("TASKER_WORKER__LEASE_SECONDS", "2".to_owned()),
    ];
    let mut cluster = Cluster::start(&env, "llm-permits-sigkill", 1, &settings, &client).await;
    let mut ids = Vec::new();
    for prompt in ["one", "two"] {
        let response = client
            .post(cluster.api.url("/run-task"))
            .json(&json!({"task_name": "query_llm", "prompt": prompt}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(body["task_uuid"].as_str().unwrap().to_owned());
    }
    eventually(|| async { (llm.received().len() == 2).then_some(()) }).await;
    let permits = tasker::keys::Keys::new(env.prefix.clone()).owned("llm", "permits");
    let mut redis = env.redis().await;
    let held: u64 = redis::cmd("ZCARD")
        .arg(&permits)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(held, 2, "both permits taken by the calls in flight");

    cluster.workers[0].sigkill();
    let killed = std::time::Instant::now();
    cluster.workers[0].restart();
    // Their leases expire, they are recovered, and they call again once the
    // dead worker's permits have expired: seconds, not the call timeout.
    for id in &ids {
        let task: serde_json::Value = eventually(|| async {
            let url = cluster.api.url(&format!("/tasks/{id}?wait=5"));
            let task: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
            (task["status"] == "completed").then_some(task)
        })
        .await;
        // Runs that waited for a permit gave their attempt back: two were
        // spent, the killed one and the last.
        let left = task["max_attempts"].as_i64().unwrap() - task["attempts"].as_i64().unwrap();
        assert_eq!(left, 3, "{task}");
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(25),
        "permits freed after {took:?}"
    );
    assert_eq!(llm.received().len(), 4);
}

#[tokio::test]
async fn a_call_refused_for_the_provider_s_rate_gives_its_token_estimate_back() {
    // Each call is estimated at 2,001 tokens against 6,000 a minute: three
    // 429s kept on the budget would leave no room for the fourth call for
    // about 17 s; given back, it is made at once.
    let mut replies: Vec<Reply> = (0..3).map(|_| Reply::rate_limited()).collect();
    replies.push(Reply::ok("finally"));
    let llm = FakeLlm::start(replies).await;
    let app = app_with_budget(&llm, "tokens_per_minute", 6_000).await;
    let started = std::time::Instant::now();
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi", "max_tokens": 2_000}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(llm.received().len(), 4);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the refused calls' estimates held the budget: {:?}",
        started.elapsed()
    );
}
