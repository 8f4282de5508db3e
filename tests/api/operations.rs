//! Probes, metrics, the OpenAPI document and the docs page with its script.

use serde_json::{Value, json};

use tasker::config::SecretUrl;

use crate::support::proxy::FaultProxy;
use crate::support::{REDIS_HOST, TestApp, TestEnv, eventually, metric};

#[tokio::test]
async fn health_and_ready_report_the_dependencies() {
    let app = TestApp::spawn_api_only().await;
    let health: Value = app.get_json("/health").await;
    assert_eq!(health, json!({"status": "ok"}));
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["postgres"]["status"], "ok");
    assert_eq!(ready["checks"]["redis"]["status"], "ok");
}

#[tokio::test]
async fn metrics_count_submissions_and_requests() {
    let app = TestApp::spawn_api_only().await;
    app.submit(json!({"task_name": "file_hash", "content": "x"}))
        .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("tasker_tasks_submitted_total{task_name=\"file_hash\"}"),
        "{text}"
    );
    assert!(text.contains("tasker_http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/run-task\""), "{text}");
}

#[tokio::test]
async fn the_worker_port_serves_its_own_probes() {
    let app = TestApp::spawn().await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 1}))
        .await;
    app.wait_terminal(id).await;
    let health = app.worker_get("/health").await;
    assert_eq!(health.status(), 200);
    let ready = app.worker_get("/ready").await;
    assert_eq!(ready.status(), 200);
    let metrics = app.worker_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tasker_tasks_completed_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tasker_task_duration_seconds_bucket{"),
        "{metrics}"
    );
    // Group-commit sizes, counted in rows (the API and the worker share one
    // recorder in this test process).
    for statement in ["insert", "claim", "outcome"] {
        let series =
            format!("tasker_group_commit_rows_bucket{{statement=\"{statement}\",le=\"1\"}}");
        assert!(metrics.contains(&series), "no {series} in {metrics}");
    }
}

#[tokio::test]
async fn openapi_describes_the_task_union_and_every_error() {
    let app = TestApp::spawn_api_only().await;
    let doc: Value = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let union = &schemas["RunTaskRequest"];
    assert_eq!(union["discriminator"]["propertyName"], "task_name");
    let registry = &app.services.registry;
    assert_eq!(
        union["oneOf"].as_array().unwrap().len(),
        registry.names().len()
    );
    for name in registry.names() {
        let name = name.as_str();
        let reference = union["discriminator"]["mapping"][name].as_str().unwrap();
        let schema = reference.strip_prefix("#/components/schemas/").unwrap();
        let task = &schemas[schema];
        assert_eq!(task["properties"]["task_name"]["enum"], json!([name]));
        assert!(
            task["required"]
                .as_array()
                .unwrap()
                .contains(&json!("task_name"))
        );
    }
    assert!(
        schemas["SumTask"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("a"))
    );
    assert!(
        schemas["Algorithm"].is_object(),
        "referenced enums are included"
    );

    let run_task = &doc["paths"]["/run-task"]["post"];
    assert_eq!(
        run_task["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RunTaskRequest"
    );
    for status in ["202", "400", "413", "422", "503"] {
        assert!(
            run_task["responses"][status]["content"]["application/json"].is_object(),
            "{status}"
        );
    }
    for path in ["/get-task-output", "/tasks/{task_uuid}"] {
        let responses = &doc["paths"][path]["get"]["responses"];
        for status in ["200", "404", "422", "503"] {
            assert!(
                responses[status]["content"]["application/json"].is_object(),
                "{path} {status}"
            );
        }
    }
    assert!(schemas["ErrorResponse"]["properties"]["error"].is_object());
}

#[tokio::test]
async fn the_docs_page_loads_the_document_and_its_script_from_the_service() {
    let app = TestApp::spawn_api_only().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"url: "openapi.json""#), "{html}");
    assert!(!html.contains("https://"), "nothing from a CDN: {html}");
    let script = html
        .split(r#"<script src=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads a script");
    assert!(script.starts_with("docs/scalar.js?v="), "{script}");

    // Relative to /docs, as a browser resolves it.
    let response = app
        .client
        .get(app.url(&format!("/{script}")))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "accept-encoding");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let cache = headers["cache-control"].to_str().unwrap();
    assert!(cache.contains("max-age=31536000"), "{cache}");
    let gzipped = response.bytes().await.unwrap();
    assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "gzip magic number");

    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut plain)
        .unwrap();
    let scalar = String::from_utf8(plain).unwrap();
    assert!(scalar.contains("createApiReference"));
}

#[tokio::test]
async fn the_docs_script_is_sent_uncompressed_to_clients_without_gzip() {
    let app = TestApp::spawn_api_only().await;
    for accept_encoding in [None, Some("identity"), Some("br, gzip;q=0")] {
        let mut request = app.client.get(app.url("/docs/scalar.js"));
        if let Some(value) = accept_encoding {
            request = request.header("accept-encoding", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{accept_encoding:?}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{accept_encoding:?}"
        );
        assert_eq!(response.headers()["vary"], "accept-encoding");
        let script = response.text().await.unwrap();
        assert!(script.starts_with("(function(){"), "{accept_encoding:?}");
        assert!(script.contains("createApiReference"));
    }
}

#[tokio::test]
async fn on_shutdown_the_api_finishes_requests_in_flight_and_takes_no_new_ones() {
    // Redis stops answering, so GET /ready stays in flight until its timeout.
    let proxy = FaultProxy::start(REDIS_HOST).await;
    let mut env = TestEnv::new().await;
    env.config.redis.url = SecretUrl::new(format!("redis://{}", proxy.address));
    let app = TestApp::start(env, false).await;
    proxy.hang().await;
    let in_flight = tokio::spawn(app.client.get(app.url("/ready")).send());
    crate::support::eventually(|| async { (proxy.held() > 0).then_some(()) }).await;

    app.shutdown_api();
    crate::support::eventually(|| async {
        tokio::net::TcpStream::connect(app.address)
            .await
            .is_err()
            .then_some(())
    })
    .await;

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("redis"),
        "{body}"
    );
}

#[tokio::test]
async fn queue_depth_and_oldest_age_are_exposed_for_autoscaling() {
    let queue = format!("depth-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let own = queue.clone();
    let mut app =
        TestApp::spawn_with(move |c| _ = c.task_queues.insert("sum".into(), own), false).await;
    for i in 0..3 {
        app.submit(json!({"task_name": "sum", "a": i, "b": 1}))
            .await;
    }
    let depth = format!("tasker_queue_depth{{queue=\"{queue}\"}}");
    let age = format!("tasker_queue_oldest_age_seconds{{queue=\"{queue}\"}}");
    let page = app.metrics().await;
    assert_eq!(metric(&page, &depth), Some(3.0), "{page}");
    let oldest = metric(&page, &age).unwrap();
    assert!((0.0..60.0).contains(&oldest), "{oldest}");
    for series in [
        "tasker_db_pool_connections{state=\"max\"}",
        "tasker_redis_pool_connections{state=\"idle\"}",
    ] {
        assert!(metric(&page, series).is_some(), "{series} missing");
    }

    app.start_worker().await;
    eventually(|| async {
        let page = app.worker_metrics().await;
        (metric(&page, &depth) == Some(0.0) && metric(&page, &age) == Some(0.0)).then_some(())
    })
    .await;
}
