//! Logs and traces of real `tasker` processes: request ids and trace
//! context follow a task from the request into the worker, and secrets
//! never reach the output.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::processes::{Cluster, Process, free_port, log_dir, run_to_end};
use crate::support::{TestEnv, eventually};

/// A local OTLP/HTTP receiver (JSON encoding) keeping every span it gets.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[derive(Clone, Debug)]
struct Span {
    component: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    route: String,
    /// (trace id, span id) of every linked span.
    links: Vec<(String, String)>,
}

impl Collector {
    async fn start(&self) -> String {
        let collector = self.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: String| {
                let collector = collector.clone();
                async move {
                    collector.receive(&body);
                    "{}"
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    fn receive(&self, body: &str) {
        let export: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let mut spans = self.spans.lock().unwrap();
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            let component = attribute(&resource["resource"]["attributes"], "tasker.component");
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                    spans.push(Span {
                        component: component.clone(),
                        trace_id: text("traceId"),
                        span_id: text("spanId"),
                        parent_span_id: text("parentSpanId"),
                        name: text("name"),
                        route: attribute(&span["attributes"], "http.route"),
                        links: span["links"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|link| {
                                let text =
                                    |key: &str| link[key].as_str().unwrap_or_default().to_owned();
                                (text("traceId"), text("spanId"))
                            })
                            .collect(),
                    });
                }
            }
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute(attributes: &Value, key: &str) -> String {
    attributes
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

#[tokio::test]
async fn one_trace_runs_from_the_request_through_the_queue_into_the_worker() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let llm = crate::support::fake_llm::FakeLlm::start(vec![crate::support::fake_llm::Reply::ok(
        "traced",
    )])
    .await;
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let settings = [
        ("TASKER_OTEL__ENDPOINT", endpoint),
        ("TASKER_OTEL__PROTOCOL", "http/json".to_owned()),
        ("TASKER_LOG__LEVEL", "info".to_owned()),
        ("TASKER_LLM__BASE_URL", llm.base_url()),
        ("TASKER_LLM__API_KEY", "sk-test".to_owned()),
    ];
    let mut cluster = Cluster::start(&env, "traces", 1, &settings, &client).await;
    let response = client
        .post(cluster.api.url("/run-task"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let submission: Value = client
        .get(cluster.api.url(&format!("/tasks/{id}/submission")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(submission["trace_id"], TRACE_ID, "{submission}");
    // A task of a type that is claimed, run and finished apart (an LLM
    // call), in a trace of its own.
    let llm_trace = "1af7651916cd43dd8448eb211c80319d";
    let slow = client
        .post(cluster.api.url("/run-task"))
        .header("traceparent", format!("00-{llm_trace}-{CALLER_SPAN}-01"))
        .json(&json!({"task_name": "query_llm", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    let slow_id = slow.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [&id, &slow_id] {
        let url = cluster.api.url(&format!("/tasks/{id}"));
        eventually(|| async {
            let task: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (task["status"] == "completed").then_some(())
        })
        .await;
    }

    // A clean shutdown flushes the spans still batched.
    for process in std::iter::once(&mut cluster.api).chain(cluster.workers.iter_mut()) {
        process.signal("TERM");
        process.wait_exit().await;
    }
    let spans = collector.spans();
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let request = trace
        .iter()
        .find(|s| s.name == "POST" && s.route == "/run-task")
        .unwrap_or_else(|| panic!("no request span in {trace:#?}"));
    assert_eq!(request.component, "api");
    assert_eq!(
        request.parent_span_id, CALLER_SPAN,
        "the caller's span is the parent"
    );
    let run = trace
        .iter()
        .find(|s| s.name == "run task")
        .unwrap_or_else(|| panic!("no worker span in {trace:#?}"));
    assert_eq!(run.component, "worker");
    let by_id: HashMap<&str, &Span> = trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let parent = by_id
        .get(run.parent_span_id.as_str())
        .expect("the worker span's parent is in the trace");
    assert_eq!(parent.component, "api");
    assert!(trace.iter().any(|s| s.name == "store_and_dispatch"));
    // `sum` is quick: one claim-and-finish serves a batch, linked to the
    // trace of every task it carries.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "claim and finish quick tasks"
                && s.links.iter().any(|(trace, _)| trace == TRACE_ID)),
        "no quick-task span linked to the trace in {spans:#?}"
    );
    let llm_spans: Vec<&Span> = spans.iter().filter(|s| s.trace_id == llm_trace).collect();
    for name in ["run task", "claim", "complete"] {
        assert!(
            llm_spans.iter().any(|s| s.name == name),
            "no `{name}` span in {llm_spans:#?}"
        );
    }
    // The group commit that stored the task serves many requests: it is
    // linked to this request's span rather than parented by it.
    let request_link = (TRACE_ID.to_owned(), request.span_id.clone());
    assert!(
        spans
            .iter()
            .any(|s| s.name == "store_tasks" && s.links.contains(&request_link)),
        "no `store_tasks` span linked to the request in {spans:#?}"
    );
}

#[tokio::test]
async fn the_request_id_is_on_every_worker_line_about_the_task() {
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let settings = [
        ("TASKER_LOG__LEVEL", "info".to_owned()),
        ("TASKER_LOG__FORMAT", "json".to_owned()),
    ];
    let cluster = Cluster::start(&env, "request-id", 1, &settings, &client).await;
    let response = client
        .post(cluster.api.url("/run-task"))
        .header("x-request-id", "order-7-attempt-1")
        .json(&json!({"task_name": "sum", "a": 1, "b": 2}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["task_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let worker = &cluster.workers[0];
    let lines = eventually(|| async {
        let lines: Vec<Value> = worker
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["task_id"] == id.as_str())
            .collect();
        lines
            .iter()
            .any(|l| l["message"] == "task completed")
            .then_some(lines)
    })
    .await;
    assert!(lines.len() >= 2, "{lines:#?}");
    for line in &lines {
        assert_eq!(line["request_id"], "order-7-attempt-1", "{line}");
        assert_eq!(line["task_name"], "sum", "{line}");
        assert_eq!(line["attempt"], 1, "{line}");
        for field in ["timestamp", "level", "message", "target"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let completed = lines
        .iter()
        .find(|l| l["message"] == "task completed")
        .unwrap();
    assert!(completed["duration_ms"].is_u64(), "{completed}");
    let api_lines: Vec<Value> = cluster
        .api
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["request_id"] == "order-7-attempt-1")
        .collect();
    assert!(
        api_lines.iter().any(|l| l["message"] == "request finished"
            && l["http.response.status_code"] == 202
            && l["http.route"] == "/run-task"),
        "{api_lines:#?}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let env = [
        (
            "TASKER_DATABASE__URL",
            "postgres://tasker:hunter2-db-secret@127.0.0.1:9/tasker",
        ),
        ("TASKER_REDIS__URL", "redis://:redis-secret-pw@127.0.0.1:9"),
        ("TASKER_LLM__API_KEY", "sk-ant-never-print-me"),
        ("TASKER_LOG__LEVEL", "debug"),
    ];
    for format in ["json", "text"] {
        let env: Vec<_> = env
            .iter()
            .copied()
            .chain([("TASKER_LOG__FORMAT", format)])
            .collect();
        let (succeeded, printed) = run_to_end(&["migrate"], &env);
        assert!(!succeeded, "migrate cannot reach 127.0.0.1:9");
        assert!(printed.contains("configuration loaded"), "{printed}");
        assert!(
            printed.contains("127.0.0.1:9"),
            "hosts stay visible: {printed}"
        );
        for secret in [
            "hunter2-db-secret",
            "redis-secret-pw",
            "sk-ant-never-print-me",
        ] {
            assert!(
                !printed.contains(secret),
                "{secret} printed in {format} logs:\n{printed}"
            );
        }
    }
}

/// Every JSON line `process` has printed so far.
fn json_lines(process: &Process) -> Vec<Value> {
    process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Probes come every few seconds from every kubelet: a passing `/health`
/// is logged at debug, never at info.
#[tokio::test]
async fn a_passing_health_probe_is_logged_at_debug_only() {
    let env = TestEnv::new().await;
    let client = reqwest::Client::new();
    let settings = [
        ("TASKER_LOG__LEVEL", "info,tasker=debug".to_owned()),
        ("TASKER_LOG__FORMAT", "json".to_owned()),
    ];
    let cluster = Cluster::start(&env, "quiet-probes", 0, &settings, &client).await;
    let response = client.get(cluster.api.url("/health")).send().await;
    assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
    let lines = eventually(|| async {
        let lines: Vec<Value> = json_lines(&cluster.api)
            .into_iter()
            .filter(|line| line["http.route"] == "/health")
            .collect();
        lines
            .iter()
            .any(|line| line["message"] == "request finished")
            .then_some(lines)
    })
    .await;
    for line in &lines {
        assert_eq!(line["level"], "DEBUG", "{line}");
    }
}

/// The start-up line says what the process runs against in plain fields,
/// not a debug dump of the configuration (`Config { … }`, `Some(…)`).
#[test]
fn the_configuration_line_has_plain_fields() {
    for format in ["json", "text"] {
        let env = [
            // Refused at once: the line is printed before the failure.
            ("TASKER_DATABASE__URL", "postgres://postgres@127.0.0.1:9/x"),
            ("TASKER_LOG__LEVEL", "info"),
            ("TASKER_LOG__FORMAT", format),
        ];
        let (_, printed) = run_to_end(&["migrate"], &env);
        let line = printed
            .lines()
            .find(|line| line.contains("configuration loaded"))
            .unwrap_or_else(|| panic!("no configuration line ({format}):\n{printed}"));
        for dump in ["Config {", "Some(", "None", "SecretUrl"] {
            assert!(!line.contains(dump), "{dump} in {format}: {line}");
        }
        if format == "json" {
            let fields: Value = serde_json::from_str(line).unwrap();
            assert_eq!(fields["command"], "migrate", "{line}");
            assert_eq!(fields["redis_mode"], "standalone", "{line}");
            for field in ["database", "redis", "redis_key_prefix"] {
                assert!(fields[field].is_string(), "{field}: {line}");
            }
            let values = fields.as_object().into_iter().flat_map(|f| f.values());
            for value in values {
                assert!(!value.is_object() && !value.is_array(), "{line}");
            }
        }
    }
}

/// With Redis unreachable from the start, the API says why once: the
/// refusal appears once in the line (drivers repeat their source's message
/// in their own), and probing again adds no line while the cause holds.
#[tokio::test]
async fn an_unreachable_redis_at_start_up_is_explained_once() {
    let env = TestEnv::new().await;
    let (port, ops) = (free_port(), free_port());
    let settings = [
        ("TASKER_DATABASE__URL", env.database_url()),
        // Nothing listens on port 9: every connection is refused.
        ("TASKER_REDIS__URL", "redis://127.0.0.1:9".to_owned()),
        ("TASKER_REDIS__KEY_PREFIX", env.prefix.clone()),
        ("TASKER_API__LISTEN", format!("127.0.0.1:{port}")),
        ("TASKER_API__OPS_LISTEN", format!("127.0.0.1:{ops}")),
        ("TASKER_LOG__LEVEL", "info".to_owned()),
        ("TASKER_LOG__FORMAT", "json".to_owned()),
    ];
    let settings = settings
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let api = Process::spawn("api", port, settings, log_dir().join("redis-down-api.log"));
    let client = reqwest::Client::new();
    for _ in 0..2 {
        eventually(|| async {
            let ready = client.get(api.url("/ready")).send().await.ok()?;
            (ready.status() == 503).then_some(())
        })
        .await;
    }
    // Each probe's request line comes after whatever the probe logged.
    let lines = eventually(|| async {
        let lines = json_lines(&api);
        let probes = lines
            .iter()
            .filter(|line| line["http.route"] == "/ready" && line["message"] == "request finished")
            .count();
        (probes >= 2).then_some(lines)
    })
    .await;
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "readiness check failed" && line["dependency"] == "redis")
        .collect();
    assert_eq!(failures.len(), 1, "{lines:#?}");
    let error = failures[0]["error"].as_str().unwrap_or_default();
    assert_eq!(error.matches("refused").count(), 1, "{error}");
    for line in &lines {
        let error = line["error"].as_str().unwrap_or_default();
        let parts: Vec<&str> = error.split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(part), "{part:?} twice in {line}");
        }
    }
}
