//! A local HTTP server that speaks the Anthropic Messages API, answering
//! from a script and recording what it was sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<&'static str>,
    pub delay: Duration,
    /// Says the request limit is spent until this long from now
    /// (`anthropic-ratelimit-requests-remaining: 0`).
    pub reset_in: Option<Duration>,
}

impl Reply {
    pub fn ok(text: &str) -> Self {
        Self {
            status: 200,
            body: json!({
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 7, "output_tokens": 3}
            }),
            retry_after: None,
            delay: Duration::ZERO,
            reset_in: None,
        }
    }

    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({"type": "error", "error": {"type": kind, "message": message}}),
            retry_after: None,
            delay: Duration::ZERO,
            reset_in: None,
        }
    }

    pub fn rate_limited() -> Self {
        Self {
            retry_after: Some("0"),
            ..Self::error(429, "rate_limit_error", "slow down")
        }
    }

    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Delay of the success returned once the script has run out.
    default_delay: Duration,
    /// Calls being answered now, and the most there ever were at once.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

pub struct FakeLlm {
    pub address: SocketAddr,
    script: Script,
}

impl FakeLlm {
    /// Answers with `replies` in order, then with success forever.
    pub async fn start(replies: Vec<Reply>) -> Self {
        Self::start_with_delay(replies, Duration::ZERO).await
    }

    /// As `start`, the unscripted successes taking `default_delay` each.
    pub async fn start_with_delay(replies: Vec<Reply>, default_delay: Duration) -> Self {
        let script = Script {
            replies: Arc::new(Mutex::new(replies.into())),
            received: Arc::default(),
            default_delay,
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(script.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake llm");
        let address = listener.local_addr().expect("fake llm address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, script }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Points `config` at this server, with an API key.
    pub fn configure(&self, config: &mut tasker::config::Config) {
        config.tasks.set("llm", "base_url", self.base_url());
        config.tasks.set("llm", "api_key", "sk-test");
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.received.lock().expect("lock").clone()
    }

    /// The most calls it was answering at one time.
    pub fn most_at_once(&self) -> usize {
        self.script
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn messages(State(script): State<Script>, headers: HeaderMap, body: String) -> Response {
    use std::sync::atomic::Ordering;
    let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    script.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = answer(&script, headers, body).await;
    script.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(script: &Script, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    script
        .received
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    let reply = script
        .replies
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| Reply::ok("Bonjour").slow(script.default_delay));
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).expect("status");
    let mut response = (status, axum::Json(reply.body)).into_response();
    if let Some(wait) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", wait.parse().expect("header"));
    }
    if let Some(reset_in) = reply.reset_in {
        let reset = chrono::Utc::now() + chrono::Duration::from_std(reset_in).expect("duration");
        let headers = response.headers_mut();
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            "0".parse().expect("header"),
        );
        headers.insert(
            "anthropic-ratelimit-requests-reset",
            reset.to_rfc3339().parse().expect("header"),
        );
    }
    response
}
