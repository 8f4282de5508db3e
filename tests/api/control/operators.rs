//! Who may act, and the record of what operators did.

use super::*;

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
    let queues = app.send_as(Method::GET, "/queues", &acme).await;
    assert_eq!(queues.status(), 403);
    let queues = app.send_as(Method::GET, "/queues", &admin).await;
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
        .json_as(Method::GET, &format!("/tasks/{other}"), &globex)
        .await;
    assert_eq!(globex_task["status"], "cancelled");
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
    let cancel = || async {
        client
            .post(api.url(&format!("/tasks/{id}/cancel")))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(cancel().await, 200);
    let page = scrape().await;
    assert_eq!(metric(&page, series), Some(1.0), "{page}");
    // Cancelling it again changes nothing, and counts nothing.
    assert_eq!(cancel().await, 200);
    assert_eq!(metric(&scrape().await, series), Some(1.0));
    let completed = r#"tasker_tasks_completed_total{task_name="sum",status="completed"}"#;
    assert_eq!(metric(&scrape().await, completed), Some(0.0));
}
