//! The API against hostile and careless clients, over real sockets: what
//! must not exhaust it, confuse it, or tell them more than they should
//! know. Timeouts are configured short so no test waits long. Here what
//! could exhaust it; input and leaks in their own files.

mod input;
mod leaks;

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
