//! The load: a bounded number of submissions from a bounded number of
//! concurrent clients, recording which ones were accepted. Clients behave as
//! a careful client should: each task carries an `Idempotency-Key`, and a
//! submission that got no answer or a 5xx is retried (a bounded number of
//! times), which is safe precisely because of the key. Tasks are spread over
//! several tenants, each submitting with its own API key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Submissions of one task, the first included.
const RETRIES: usize = 100;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// What the clients saw.
#[derive(Default)]
pub struct Submissions {
    pub attempted: AtomicUsize,
    pub accepted: Mutex<Vec<Uuid>>,
    /// Accepted tasks per tenant, by the tenant's index in the tokens.
    pub accepted_per_tenant: Mutex<Vec<usize>>,
}

/// Every tenth task is a slow `query_llm`, so faults find work in flight.
fn task(i: usize) -> Value {
    if i.is_multiple_of(10) {
        json!({"task_name": "query_llm", "prompt": format!("task {i}")})
    } else {
        json!({"task_name": "sum", "a": i, "b": 1})
    }
}

/// Submits `total` tasks to `url` from `clients` concurrent clients, task
/// `i` with the token of tenant `i % tokens.len()`.
pub async fn run(
    client: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    total: usize,
    clients: usize,
    seen: Arc<Submissions>,
) {
    run_keyed(client, url, tokens, total, clients, seen, "load").await;
}

/// As [`run`], with idempotency keys `<keys>-<i>`: a second load on the
/// same database needs keys of its own, or it replays the first. With no
/// tokens, submissions carry none (authentication off).
pub async fn run_keyed(
    client: reqwest::Client,
    url: String,
    tokens: Arc<Vec<String>>,
    total: usize,
    clients: usize,
    seen: Arc<Submissions>,
    keys: &'static str,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, next, seen, tokens) = (
                client.clone(),
                url.clone(),
                next.clone(),
                seen.clone(),
                tokens.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return;
                    }
                    seen.attempted.fetch_add(1, Ordering::SeqCst);
                    let key = format!("{keys}-{i}");
                    let tenant = i % tokens.len().max(1);
                    let token = tokens.get(tenant).map(String::as_str);
                    for _ in 0..RETRIES {
                        if let Some(id) = submit(&client, &url, token, &task(i), Some(&key)).await {
                            seen.accepted.lock().await.push(id);
                            if !tokens.is_empty() {
                                let mut per_tenant = seen.accepted_per_tenant.lock().await;
                                if per_tenant.len() < tokens.len() {
                                    per_tenant.resize(tokens.len(), 0);
                                }
                                per_tenant[tenant] += 1;
                            }
                            break;
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// One submission; `Some` only for a 2xx answer with a task id.
pub async fn submit(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Option<Uuid> {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["task_uuid"].as_str()?.parse().ok()
}
