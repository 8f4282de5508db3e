//! Bad input gets a clear JSON error and changes nothing.

use serde_json::{Value, json};

use crate::support::TestApp;

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"].get("details").is_some(), "{body}");
    body["error"].clone()
}

#[tokio::test]
async fn unknown_task_name_is_rejected_with_valid_names() {
    let app = TestApp::spawn_api_only().await;
    let error = error_of(
        app.post_task(json!({"task_name": "divide", "a": 1})).await,
        422,
    )
    .await;
    assert_eq!(error["code"], "unknown_task_name");
    let names = app.services.registry.names();
    assert_eq!(error["details"]["valid_task_names"], json!(names));
    for name in &names {
        assert!(error["message"].as_str().unwrap().contains(name.as_str()));
    }
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn missing_or_mistyped_fields_are_named() {
    let app = TestApp::spawn_api_only().await;
    let cases = [
        (json!({"task_name": "sum", "a": 1}), "b"),
        (json!({"task_name": "sum", "a": "one", "b": 2}), "a"),
        (json!({"task_name": "sum", "a": 1, "b": 2, "c": 3}), "c"),
        (
            json!({"task_name": "file_hash", "content": "x", "algorithm": "crc32"}),
            "algorithm",
        ),
        (json!({"task_name": "file_hash"}), "content"),
        (json!({"task_name": "query_llm", "prompt": ""}), "prompt"),
        (
            json!({"task_name": "query_llm", "prompt": "hi", "max_tokens": 0}),
            "max_tokens",
        ),
        (json!({"a": 1, "b": 2}), "task_name"),
        (json!({"task_name": 7}), "task_name"),
    ];
    for (body, field) in cases {
        let error = error_of(app.post_task(body.clone()).await, 422).await;
        assert_eq!(error["details"]["field"], field, "for {body}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "for {body}: {error}"
        );
    }
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_rejected() {
    let app = TestApp::spawn_api_only().await;
    let error = error_of(app.post_task(json!([1, 2])).await, 422).await;
    assert_eq!(error["code"], "validation_failed");
}

#[tokio::test]
async fn malformed_json_is_a_json_error() {
    let app = TestApp::spawn_api_only().await;
    for body in ["{\"task_name\": \"sum\",", "", "not json"] {
        let response = app
            .client
            .post(app.url("/run-task"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let error = error_of(response, 400).await;
        assert_eq!(error["code"], "invalid_json", "for {body:?}");
    }
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_nul_character_in_any_string_is_refused_by_name_not_a_500() {
    let app = TestApp::spawn_api_only().await;
    let cases = [
        (
            json!({"task_name": "file_hash", "content": "a\u{0}b"}),
            "content",
        ),
        (
            json!({"task_name": "query_llm", "prompt": "\u{0}"}),
            "prompt",
        ),
        (
            json!({"task_name": "sum", "a": 1, "b": 2, "\u{0}": 3}),
            "\u{0}",
        ),
    ];
    for (body, field) in cases {
        let error = error_of(app.post_task(body.clone()).await, 422).await;
        assert_eq!(error["code"], "validation_failed", "for {body}");
        assert_eq!(error["details"]["field"], field, "for {body}");
        assert!(
            error["message"].as_str().unwrap().contains("U+0000"),
            "for {body}: {error}"
        );
    }
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn_with(|c| c.api.max_body_bytes = 4096.try_into().unwrap(), false).await;
    let content = "x".repeat(5000);
    let response = app
        .post_task(json!({"task_name": "file_hash", "content": content}))
        .await;
    let error = error_of(response, 413).await;
    assert_eq!(error["code"], "payload_too_large");
    assert_eq!(error["details"]["limit_bytes"], 4096);
    let small = app
        .post_task(json!({"task_name": "file_hash", "content": "x".repeat(3000)}))
        .await;
    assert_eq!(small.status(), 202);
}

#[tokio::test]
async fn a_form_encoded_curl_body_is_read_as_json() {
    let app = TestApp::spawn_api_only().await;
    let response = app
        .client
        .post(app.url("/run-task"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"task_name":"sum","a":1,"b":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn unknown_and_malformed_task_ids_are_json_errors() {
    let app = TestApp::spawn_api_only().await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/tasks/{unknown}"),
        format!("/get-task-output?task_uuid={unknown}"),
    ] {
        let error = error_of(app.get(&path).await, 404).await;
        assert_eq!(error["code"], "not_found", "{path}");
    }
    for path in [
        "/tasks/not-a-uuid",
        "/get-task-output?task_uuid=12345",
        "/get-task-output",
    ] {
        let error = error_of(app.get(path).await, 422).await;
        assert_eq!(error["details"]["field"], "task_uuid", "{path}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = TestApp::spawn_api_only().await;
    let error = error_of(app.get("/nope").await, 404).await;
    assert_eq!(error["code"], "not_found");
    let error = error_of(app.get("/run-task").await, 405).await;
    assert_eq!(error["code"], "method_not_allowed");
}
