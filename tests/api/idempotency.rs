//! `Idempotency-Key`: the same key and request give the same task; the same
//! key with another request is a conflict; keys expire.

use serde_json::{Value, json};

use crate::support::{TestApp, wait_for_count};

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/run-task"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn task_uuid(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["task_uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_same_key_and_body_return_the_same_task_even_after_it_finished() {
    let app = TestApp::spawn().await;
    let body = json!({"task_name": "sum", "a": 1, "b": 2});
    let first = post_with_key(&app, "order-1", &body).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let id = task_uuid(first).await;
    app.wait_terminal(id.parse().unwrap()).await;

    let again = post_with_key(
        &app,
        "order-1",
        &json!({"b": 2, "a": 1, "task_name": "sum"}),
    )
    .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], format!("/tasks/{id}"));
    assert_eq!(task_uuid(again).await, id);
    assert_eq!(app.count_tasks().await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict() {
    let app = TestApp::spawn_api_only().await;
    post_with_key(&app, "k", &json!({"task_name": "sum", "a": 1, "b": 2})).await;
    let conflict = post_with_key(&app, "k", &json!({"task_name": "sum", "a": 1, "b": 3})).await;
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different request")
    );
    assert_eq!(app.count_tasks().await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_task() {
    let app = TestApp::spawn_api_only().await;
    let body = json!({"task_name": "file_hash", "content": "same"});
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/run-task"))
                .header("idempotency-key", "burst")
                .json(&body);
            tokio::spawn(request.send())
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for request in requests {
        ids.insert(task_uuid(request.await.unwrap().unwrap()).await);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count_tasks().await, 1);
}

#[tokio::test]
async fn an_expired_key_starts_afresh_and_expired_keys_are_purged() {
    let app = TestApp::spawn().await;
    let body = json!({"task_name": "sum", "a": 5, "b": 5});
    let first = task_uuid(post_with_key(&app, "daily", &body).await).await;
    let pool = app.env.pool().await;
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let second = task_uuid(post_with_key(&app, "daily", &body).await).await;
    assert_ne!(first, second);

    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    wait_for_count(&pool, "SELECT count(*) FROM idempotency_keys", 0).await;
}

#[tokio::test]
async fn a_malformed_key_is_rejected() {
    let app = TestApp::spawn_api_only().await;
    let response = post_with_key(
        &app,
        &"k".repeat(300),
        &json!({"task_name": "sum", "a": 1, "b": 1}),
    )
    .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["field"], "Idempotency-Key");
    assert_eq!(app.count_tasks().await, 0);
}
