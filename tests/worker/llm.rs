//! `query_llm` against a local server speaking the Messages API.

use std::time::Duration;

use serde_json::json;

use crate::support::TestApp;
use crate::support::fake_llm::{FakeLlm, Reply};

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
async fn a_rate_limit_is_retried_and_the_task_completes() {
    let llm = FakeLlm::start(vec![Reply::rate_limited(), Reply::ok("second time lucky")]).await;
    let app = app_with(&llm, Some("sk-test"), 10).await;
    let id = app
        .submit(json!({"task_name": "query_llm", "prompt": "hi"}))
        .await;
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 2);
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
    let failures = (0..5).map(|_| Reply {
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
    assert_eq!(task["attempts"], 5);
    assert_eq!(task["max_attempts"], 5);
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains("503") && error.contains("gave up after 5 attempts"),
        "{error}"
    );
    assert_eq!(llm.received().len(), 5);
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
