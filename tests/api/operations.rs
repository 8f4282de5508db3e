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
    let text = app.metrics().await;
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
    for statement in ["insert", "claim", "outcome", "quick"] {
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
        assert_eq!(task["properties"]["task_name"]["const"], json!(name));
        assert_eq!(task["properties"]["task_name"]["default"], json!(name));
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
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<script src="docs/init.js">"#), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    assert!(!html.contains("https://"), "nothing from a CDN: {html}");
    let init = app.get("/docs/init.js").await.text().await.unwrap();
    assert!(init.contains(r#"url: "openapi.json""#), "{init}");
    let slash = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "../docs");
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

#[test]
fn tasker_config_prints_the_effective_configuration_as_toml() {
    use crate::support::processes::run_to_end;
    let (ok, printed) = run_to_end(&["config"], &[]);
    assert!(ok, "{printed}");
    let table: toml::Table = printed.parse().unwrap();
    // Defaults spelled out, not hidden behind empty values.
    let queues = table["worker"]["queues"].as_array().unwrap();
    assert!(!queues.is_empty(), "{printed}");
    let task_queues = table["task_queues"].as_table().unwrap();
    let registry = tasker::tasks::Registry::new(&tasker::config::Config::default()).unwrap();
    for task in registry.iter() {
        assert_eq!(task_queues[task.name()].as_str(), Some(task.queue()));
    }
    assert!(table["api"]["ops_listen"].is_str());
    assert!(
        table["llm"]["model"].is_str(),
        "a task type's section is printed"
    );
}

#[test]
fn tasker_config_fails_naming_the_key() {
    use crate::support::processes::run_to_end;
    for (variable, value, key) in [
        (
            "TASKER_RETENTION__INTERVAL_SECONDS",
            "0",
            "retention.interval_seconds",
        ),
        ("TASKER_API__MAX_BATCH_SIZE", "0", "api.max_batch_size"),
        ("TASKER_TASK_QUEUES__DIVIDE", "x", "task_queues.divide"),
        ("TASKER_WORKER__QUEUES", "[\"nowhere\"]", "worker.queues"),
        ("TASKER_LLM__TIMEOUT_SECONDS", "0", "llm.timeout_seconds"),
        ("TASKER_DATABSE__URL", "postgres://x", "databse"),
    ] {
        let (ok, printed) = run_to_end(&["config"], &[(variable, value)]);
        assert!(!ok, "{variable}={value} was accepted");
        assert!(printed.contains(key), "{variable}={value}: {printed}");
    }
    let (ok, printed) = run_to_end(&["--config", "/nonexistent/tasker.toml", "config"], &[]);
    assert!(!ok);
    assert!(printed.contains("/nonexistent/tasker.toml"), "{printed}");
}

/// The metric families `docs/observability.md` lists: name, type and which
/// process exposes it (`API`, `worker` or `both`).
fn documented_metrics() -> Vec<(String, String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/observability.md"
    ))
    .expect("read docs/observability.md");
    let families: Vec<(String, String, String)> = doc
        .lines()
        .filter(|line| line.starts_with("| `tasker_"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_owned();
            let kind = cells[1].split_whitespace().next().unwrap_or("").to_owned();
            let exposed_by = cells.last().copied().unwrap_or("").to_owned();
            (name, kind, exposed_by)
        })
        .collect();
    assert!(families.len() > 10, "no metrics table found: {families:?}");
    families
}

/// What `promtool check metrics` checks, simply: every family has `# HELP`
/// and `# TYPE`, every sample belongs to a typed family, counters (and
/// only counters) end in `_total`, and units are base units in the name.
fn lint(page: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeMap::new();
    for line in page.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["#", "HELP", name, help @ ..] => {
                if help.is_empty() {
                    problems.push(format!("{name}: empty HELP"));
                }
                helped.insert((*name).to_owned());
            }
            ["#", "TYPE", name, kind] => {
                if !helped.contains(*name) {
                    problems.push(format!("{name}: no HELP before its TYPE"));
                }
                let counter = *kind == "counter";
                if counter != name.ends_with("_total") {
                    problems.push(format!("{name}: a {kind} (only counters end in _total)"));
                }
                for unit in ["_ms", "_milliseconds", "_minutes", "_hours", "_kb", "_mb"] {
                    if name.ends_with(unit) || name.contains(&format!("{unit}_")) {
                        problems.push(format!("{name}: not in base units ({unit})"));
                    }
                }
                typed.insert((*name).to_owned(), (*kind).to_owned());
            }
            ["#", ..] | [] => {}
            [series, ..] => {
                let name = series.split('{').next().unwrap_or(series);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        let base = name.strip_suffix(suffix)?;
                        (typed.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                    })
                    .unwrap_or(name);
                if !typed.contains_key(family) {
                    problems.push(format!("{name}: a sample without # TYPE"));
                }
            }
        }
    }
    problems
}

#[tokio::test]
async fn every_documented_metric_exists_from_start_up_and_passes_a_lint() {
    let app = TestApp::spawn().await;
    let documented = documented_metrics();
    for (process, page) in [
        ("API", app.metrics().await),
        ("worker", app.worker_metrics().await),
    ] {
        let problems = lint(&page);
        assert!(problems.is_empty(), "{process}: {problems:#?}");
        for (name, kind, exposed_by) in &documented {
            if exposed_by != process && exposed_by != "both" {
                continue;
            }
            assert!(
                page.contains(&format!("# TYPE {name} {kind}\n")),
                "{process} /metrics lacks `{name}` ({kind})"
            );
            let sample = page
                .lines()
                .any(|line| !line.starts_with('#') && line.starts_with(name.as_str()));
            assert!(sample, "{process} /metrics has no sample of `{name}`");
        }
        // And nothing undocumented.
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split_whitespace().next().unwrap_or("");
                assert!(
                    documented.iter().any(|(n, _, _)| n == name),
                    "`{name}` is exposed but not in docs/observability.md"
                );
            }
        }
    }
}

#[test]
fn the_lint_catches_what_promtool_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n";
    assert!(lint(good).is_empty(), "{:?}", lint(good));
    for bad in [
        "# TYPE a_total counter\na_total 0\n",
        "# HELP a A.\n# TYPE a counter\na 0\n",
        "# HELP a_total A.\n# TYPE a_total gauge\na_total 0\n",
        "# HELP a_ms A.\n# TYPE a_ms gauge\na_ms 0\n",
        "b 1\n",
    ] {
        assert!(!lint(bad).is_empty(), "{bad}");
    }
}
