//! What clients must not learn or forge: internals in answers, metrics on
//! the public port, lines in the log.

use super::*;

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
