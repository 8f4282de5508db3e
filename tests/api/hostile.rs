//! The API against hostile and careless clients, over real sockets: what
//! must not exhaust it, confuse it, or tell them more than they should
//! know. Timeouts are configured short so no test waits long.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, eventually, metric};

/// Upper bound on any single socket wait in these tests.
const SOCKET_PATIENCE: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address).await.unwrap()
}

/// Everything the server sends until it closes the connection (or
/// `SOCKET_PATIENCE` passes, which fails the test).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(SOCKET_PATIENCE, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

/// The first response on `stream` (head and a body of Content-Length).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + SOCKET_PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, stream.read(&mut buffer)).await;
        let n = read.expect("a response in time").unwrap_or(0);
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn_api_only().await;
    let before = app.metrics().await.len();
    for i in 0..40 {
        let mut stream = connect(&app).await;
        let method = format!("BREW{i}{}", "X".repeat(200));
        let request =
            format!("{method} /run-task HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    }
    let page = app.metrics().await;
    assert!(!page.contains("BREW"), "a made-up method became a label");
    let series = r#"tasker_http_requests_total{method="OTHER",route="unmatched",status="405"}"#;
    assert_eq!(metric(&page, series), Some(40.0), "{page}");
    assert!(
        page.len() < before + 4_000,
        "the page grew from {before} to {} bytes",
        page.len()
    );
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = TestApp::spawn_with(
        |c| c.api.header_read_timeout_seconds = 1.try_into().unwrap(),
        false,
    )
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(SOCKET_PATIENCE, trickle).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(SOCKET_PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn_with(
        |c| c.api.header_read_timeout_seconds = 1.try_into().unwrap(),
        false,
    )
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing more is sent: the next request's head never comes.
    let rest = read_to_close(&mut stream).await;
    assert!(rest.is_empty(), "{rest}");
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_nothing_is_stored() {
    let app = TestApp::spawn_with(
        |c| c.api.body_read_timeout_seconds = 1.try_into().unwrap(),
        false,
    )
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /run-task HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"task_name\": \"sum\",",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = TestApp::spawn_api_only().await;
    let mut stream = connect(&app).await;
    // Declares 100 MB and sends none of it: the answer comes at once.
    stream
        .write_all(b"POST /run-task HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_and_closed() {
    let app = TestApp::spawn_with(|c| c.api.max_connections = 4.try_into().unwrap(), false).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut over = connect(&app).await;
    let answer = read_to_close(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    // One leaves: a new connection is served again.
    drop(held.pop());
    eventually(|| async {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        read_to_close(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
    let page = app.metrics().await;
    assert!(metric(&page, "tasker_http_connections_refused_total") >= Some(1.0));
}

#[tokio::test]
async fn waiters_over_the_cap_are_answered_at_once() {
    let app = TestApp::spawn_with(|c| c.api.max_waiters = 2, false).await;
    let id = app
        .submit(json!({"task_name": "sum", "a": 1, "b": 2}))
        .await;
    let path = format!("/tasks/{id}?wait=20");
    let waiting: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.client.get(app.url(&path)).send()))
        .collect();
    eventually(|| async {
        let page = app.metrics().await;
        (metric(&page, "tasker_longpoll_waiters") == Some(2.0)).then_some(())
    })
    .await;
    let started = Instant::now();
    let third: Value = app.get_json(&path).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(third["status"], "pending");
    let page = app.metrics().await;
    assert_eq!(metric(&page, "tasker_longpoll_refused_total"), Some(1.0));
    for handle in waiting {
        handle.abort();
    }
}

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

#[tokio::test]
async fn request_ids_cannot_inject_lines_or_grow_unbounded() {
    let app = TestApp::spawn_api_only().await;
    for odd in ["a b", "x\u{7f}", &"y".repeat(500), "<script>"] {
        let Ok(response) = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", odd)
            .send()
            .await
        else {
            continue;
        };
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed, odd, "an unsafe id is replaced, not echoed");
        assert!(echoed.len() <= 128);
    }
}

#[tokio::test]
async fn readiness_names_no_internals() {
    let mut env = crate::support::TestEnv::new().await;
    env.config.database.url =
        tasker::config::SecretUrl::new("postgres://no_such_role_x@127.0.0.1:5432/no_such_db");
    let app = TestApp::start(env, false).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    for internal in ["no_such_role_x", "no_such_db", "role", "127.0.0.1", "5432"] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "not_ready");
    let postgres = &body["error"]["details"]["checks"]["postgres"];
    assert_eq!(postgres["status"], "unavailable");
    assert!(postgres["reason"].is_string(), "{body}");
}

/// The whole answer to one raw `request` on `address`, sent as is.
async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_to_close(&mut stream).await
}

#[tokio::test]
async fn metrics_are_served_on_the_operations_port_only() {
    let app = TestApp::spawn_api_only().await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let answer = exchange(app.address, get("/metrics").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    // Nothing that looks like the path, or asks for it another way, finds
    // the page either.
    for request in [
        get("/metrics/"),
        get("/Metrics"),
        get("//metrics"),
        get("/./metrics"),
        get("/%6detrics"),
        get("/metrics?format=prometheus"),
        get("http://x/metrics"),
        "HEAD /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_owned(),
        "POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_owned(),
    ] {
        let answer = exchange(app.address, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{request:?}: {answer}"
        );
        assert!(!answer.contains("# TYPE"), "{request:?}: {answer}");
    }
    // The operations port serves it, and only the operations.
    let page = exchange(app.ops_address, get("/metrics").as_bytes()).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("# TYPE tasker_http_requests_total"), "{page}");
    let submit = "POST /run-task HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                  content-length: 38\r\nconnection: close\r\n\r\n{\"task_name\":\"sum\",\"a\":1,\"b\":2,\"c\":0}";
    let answer = exchange(app.ops_address, submit.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|c| c.api.max_body_bytes = 1024.try_into().unwrap(), false).await;
    for path in ["/run-task", "/run-tasks"] {
        let mut stream = connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Three chunks of 512 bytes (no Content-Length to refuse early), and
        // no last chunk: the server must stop reading on its own. A write
        // may fail once the server has answered and closed.
        let opening = r#"{"task_name":"file_hash","content":""#;
        let mut body = opening.to_owned();
        body.push_str(&"a".repeat(3 * 512 - opening.len()));
        for chunk in body.as_bytes().chunks(512) {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            if stream.write_all(&framed).await.is_err() {
                break;
            }
        }
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }
    assert_eq!(app.count_tasks().await, 0);
}

#[tokio::test]
async fn a_chunked_body_that_stalls_is_answered_408_and_nothing_is_stored() {
    let app = TestApp::spawn_with(
        |c| c.api.body_read_timeout_seconds = 1.try_into().unwrap(),
        false,
    )
    .await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    let chunk = r#"{"task_name": "sum","#;
    let request = format!(
        "POST /run-task HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Nothing more: neither the rest nor the last chunk comes.
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(app.count_tasks().await, 0);
}

/// Header values a client could use to forge a log line: line breaks in
/// every form, terminal escapes, NUL, Unicode line separators, and text
/// that would close a JSON string. Each carries `FORGED`.
const FORGERIES: [&[u8]; 10] = [
    b"x-request-id: a\r\nFORGED-1 ERROR tasker: forged line\r\n",
    b"x-request-id: a\nFORGED-2 ERROR forged\n",
    b"x-request-id: a\rFORGED-3 ERROR forged\r\n",
    b"x-request-id: FORGED-4\x1b[2K\x1b[1A\r\n",
    b"x-request-id: FORGED-5\x00ERROR\r\n",
    b"x-request-id: FORGED-6 \xe2\x80\xa8 \xc2\x85 ERROR\r\n",
    b"x-request-id: FORGED-7\",\"level\":\"ERROR\",\"message\":\"x\r\n",
    b"x-request-id: FORGED-8\\n{\\\"level\\\":\\\"ERROR\\\"}\r\n",
    b"x-request-id: FORGED-9\x7f\r\nuser-agent: FORGED-9\r\n",
    b"traceparent: 00-FORGED-10\r\norigin: https://FORGED-10.example\r\n",
];

#[tokio::test]
async fn header_values_cannot_forge_log_lines() {
    use crate::support::processes::Cluster;
    let env = crate::support::TestEnv::new().await;
    let client = reqwest::Client::new();
    for format in ["json", "text"] {
        let settings = [
            ("TASKER_LOG__LEVEL", "info".to_owned()),
            ("TASKER_LOG__FORMAT", format.to_owned()),
        ];
        let name = format!("forged-{format}");
        let cluster = Cluster::start(&env, &name, 0, &settings, &client).await;
        let api = &cluster.api;
        let address: std::net::SocketAddr = format!("127.0.0.1:{}", api.port).parse().unwrap();
        // Requests hyper refuses as malformed get its 400 and reach no
        // handler; the others are answered (and logged) by the service,
        // which echoes a request id.
        let mut served = 0;
        for (method, path) in [("GET", "/no-such-page"), ("POST", "/run-task")] {
            for header in FORGERIES {
                let mut request =
                    format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n")
                        .into_bytes();
                if method == "POST" {
                    request.extend_from_slice(b"content-length: 2\r\n");
                }
                request.extend_from_slice(header);
                request.extend_from_slice(b"\r\n");
                if method == "POST" {
                    request.extend_from_slice(b"{}");
                }
                let answer = exchange(address, &request).await;
                assert!(answer.starts_with("HTTP/1.1 "), "no answer: {answer}");
                let head = answer.split("\r\n\r\n").next().unwrap_or_default();
                assert!(!head.contains("FORGED"), "echoed: {answer}");
                served += usize::from(answer.contains("x-request-id: "));
            }
        }
        // A plain id is logged: the log is being read.
        let marker = format!("plain-id-{format}");
        let request = format!(
            "GET /no-such-page HTTP/1.1\r\nhost: x\r\nx-request-id: {marker}\r\n\
             connection: close\r\n\r\n"
        );
        exchange(address, request.as_bytes()).await;
        let log = eventually(|| async {
            let log = api.log();
            log.contains(&marker).then_some(log)
        })
        .await;
        let finished = log
            .lines()
            .filter(|line| line.contains("request finished"))
            .count();
        assert!(
            served > 0 && finished > served,
            "{finished} requests logged, {served} served:\n{log}"
        );
        for line in log.lines() {
            assert!(!line.contains("FORGED"), "{format} log: {line}");
            assert!(!line.contains('\u{1b}'), "{format} log: {line:?}");
            assert!(!line.contains('\r'), "{format} log: {line:?}");
            // Every line is one event: a JSON object, or text that starts
            // with its timestamp.
            if format == "json" {
                let parsed = serde_json::from_str::<Value>(line);
                assert!(parsed.is_ok(), "not one JSON object: {line:?}");
            } else {
                let stamped = line.as_bytes().first().is_some_and(u8::is_ascii_digit);
                assert!(stamped, "not an event of its own: {line:?}");
            }
        }
    }
}
