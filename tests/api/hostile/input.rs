//! Input a careful service refuses or keeps unambiguous: cross-site
//! requests, duplicate keys, numbers, retried batches, bad bodies, paths.

use super::*;

#[tokio::test]
async fn browser_requests_from_other_sites_are_refused_and_store_nothing() {
    let app = TestApp::spawn_with(
        |c| c.api.allowed_origins = vec!["https://console.example.com".into()],
        false,
    )
    .await;
    let body = r#"{"task_name": "sum", "a": 1, "b": 2}"#;
    let post = |headers: &[(&'static str, &'static str)]| {
        let mut request = app.client.post(app.url("/run-task")).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for headers in [
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", "null")][..],
    ] {
        let response = post(headers).await.unwrap();
        assert_eq!(response.status(), 403, "{headers:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "cross_site_request");
    }
    assert_eq!(app.count_tasks().await, 0);

    // curl -d: no Origin, no Sec-Fetch-Site.
    assert_eq!(post(&[]).await.unwrap().status(), 202);
    // A listed origin, cross-site or not, and its preflight.
    let allowed = post(&[
        ("origin", "https://console.example.com"),
        ("sec-fetch-site", "cross-site"),
    ])
    .await
    .unwrap();
    assert_eq!(allowed.status(), 202);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://console.example.com"
    );
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/run-task"))
        .header("origin", "https://console.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(app.count_tasks().await, 2);
}

#[tokio::test]
async fn a_key_given_twice_is_refused_naming_it() {
    let app = TestApp::spawn_api_only().await;
    let response = app
        .client
        .post(app.url("/run-task"))
        .body(r#"{"task_name":"query_llm","task_name":"sum","a":1,"b":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["details"]["field"], "task_name", "{error}");
    let nested = app
        .client
        .post(app.url("/run-tasks"))
        .body(
            r#"{"tasks":[{"task_name":"sum","a":1,"b":2},{"task_name":"sum","a":1,"a":5,"b":2}]}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(nested.status(), 422);
    let error: Value = nested.json().await.unwrap();
    assert_eq!(error["error"]["details"]["field"], "tasks[1].a", "{error}");
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn numbers_keep_their_kind_through_storage() {
    let app = TestApp::spawn().await;
    let float = app
        .client
        .post(app.url("/run-task"))
        .body(r#"{"task_name":"sum","a":1e16,"b":1}"#)
        .send()
        .await
        .unwrap();
    let id = float.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let task = app.wait_terminal(id).await;
    let result = &task["task_output"]["result"];
    assert!(result.is_f64(), "a float sum: {task}");
    assert_eq!(result.as_f64(), Some(1e16 + 1.0));

    let big = app
        .client
        .post(app.url("/run-task"))
        .body(r#"{"task_name":"sum","a":1e19,"b":1}"#)
        .send()
        .await
        .unwrap();
    let id = big.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let task = app.wait_terminal(id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["task_output"]["result"].as_f64(), Some(1e19));

    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let task = app.wait_terminal(id).await;
    assert!(task["task_output"]["result"].is_u64(), "{task}");
}

#[tokio::test]
async fn a_retried_batch_with_its_key_is_stored_once() {
    let app = TestApp::spawn_api_only().await;
    let batch = json!({"tasks": [
        {"task_name": "sum", "a": 1, "b": 2},
        {"task_name": "file_hash", "content": "x"},
    ]});
    let send = |body: Value| {
        app.client
            .post(app.url("/run-tasks"))
            .header("idempotency-key", "nightly-42")
            .json(&body)
            .send()
    };
    let first = send(batch.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send(batch).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count_tasks().await, 2);

    let other = send(json!({"tasks": [{"task_name": "sum", "a": 9, "b": 9}]}))
        .await
        .unwrap();
    assert_eq!(other.status(), 409);
    assert_eq!(app.count_tasks().await, 2);
}

#[tokio::test]
async fn bodies_that_already_fail_safely_keep_failing_safely() {
    let app = TestApp::spawn_api_only().await;
    let post = |body: Vec<u8>| app.client.post(app.url("/run-task")).body(body).send();
    // Deeply nested: refused by the parser's depth limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let response = post(deep).await.unwrap();
    assert_eq!(response.status(), 400);
    // Not UTF-8.
    let response = post(vec![b'{', 0xff, 0xfe, b'}']).await.unwrap();
    assert_eq!(response.status(), 400);
    // U+0000 anywhere: PostgreSQL could not store it.
    let response = post(br#"{"task_name":"file_hash","content":"a\u0000b"}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn paths_that_climb_out_of_the_docs_find_nothing() {
    let app = TestApp::spawn_api_only().await;
    for path in [
        "/docs/../../etc/passwd",
        "/docs/%2e%2e/%2e%2e/etc/passwd",
        "/docs/scalar.js/..%2f..%2fCargo.toml",
        "/docs//etc/passwd",
        "/..%2f..%2fetc/passwd",
    ] {
        let mut stream = connect(&app).await;
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut stream).await;
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{path}: {answer}"
        );
        assert!(!answer.contains("root:"), "{path}");
        assert!(!answer.contains("[package]"), "{path}");
    }
}
