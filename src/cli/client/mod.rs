//! A small typed client of the HTTP API, for `tasker task` and `tasker
//! queue`: one method per operation, the API's error body turned into
//! [`Error::Api`], a refused connection into an error naming the URL.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::TaskStatus;
use crate::retry_after::retry_after;
use crate::telemetry::error_chain;

/// The longest wait asked of one long-poll; the server caps it anyway
/// (`api.max_wait_seconds`, 30 by default) and the loop asks again.
const MAX_WAIT_PER_REQUEST: Duration = Duration::from_secs(30);
/// The least time between two reads of a task that is being waited for.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a request may take on top of the wait it asks for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause taken on a `429` (a longer `Retry-After` is waited in steps).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The largest page `GET /tasks` serves.
const MAX_PAGE: usize = 200;

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error body.
    #[error("{code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        details: Value,
        retry_after: Option<Duration>,
    },
    /// No answer: refused, timed out, TLS failed.
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// An answer that is not what the API sends (a proxy's page, say).
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected { url: String, reason: String },
    /// `--url` is not an http(s) URL.
    #[error("invalid --url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
}

impl Error {
    /// The API's error code, if the API answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The filters of `GET /tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub task_name: Option<String>,
    pub queue: Option<String>,
    pub tenant: Option<String>,
}

/// Tasks of a listing, newest first, and the cursor of what follows.
#[derive(Debug, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// The status of a task as the API answers it.
pub fn status_of(task: &Value) -> Option<TaskStatus> {
    task.get("status")?.as_str()?.parse().ok()
}

/// A client of one Tasker API; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client of the API at `base` (e.g. `http://localhost:8000`), sending
    /// `token` as a bearer token when given.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: base.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(base).map_err(|err| bad(&err.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(bad("must be an http:// or https:// URL"));
        }
        // reqwest's builder panics without a rustls provider (https:// URLs).
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tasker-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| bad(&error_chain(&err)))?;
        Ok(Self {
            http,
            base: parsed,
            token: token.filter(|token| !token.is_empty()),
        })
    }

    /// `POST /run-task`; waits out `429`s as `Retry-After` says.
    pub async fn submit(&self, body: &Value, idempotency_key: Option<&str>) -> Result<Uuid, Error> {
        #[derive(Deserialize)]
        struct Accepted {
            task_uuid: Uuid,
        }
        let url = self.endpoint(&["run-task"])?;
        let answer: Accepted = self.submission(url, body, idempotency_key).await?;
        Ok(answer.task_uuid)
    }

    /// `POST /run-tasks`: the ids in the order of `bodies`; waits out `429`s.
    pub async fn submit_batch(
        &self,
        bodies: &[&Value],
        idempotency_key: Option<&str>,
    ) -> Result<Vec<Uuid>, Error> {
        #[derive(Deserialize)]
        struct Accepted {
            task_uuids: Vec<Uuid>,
        }
        let url = self.endpoint(&["run-tasks"])?;
        let body = json!({ "tasks": bodies });
        let answer: Accepted = self.submission(url.clone(), &body, idempotency_key).await?;
        if answer.task_uuids.len() != bodies.len() {
            return Err(Error::Unexpected {
                url: url.to_string(),
                reason: format!("{} ids for {} tasks", answer.task_uuids.len(), bodies.len()),
            });
        }
        Ok(answer.task_uuids)
    }

    /// `GET /tasks/{id}`, waiting up to `wait` for it to finish.
    pub async fn task(&self, id: Uuid, wait: Duration) -> Result<Value, Error> {
        let mut url = self.endpoint(&["tasks", &id.to_string()])?;
        if !wait.is_zero() {
            url.query_pairs_mut()
                .append_pair("wait", &format!("{:.3}", wait.as_secs_f64()));
        }
        self.call(Method::GET, url, None, None, wait).await
    }

    /// The task once it has finished, long-polling as long as it takes, or
    /// its state when `limit` runs out first.
    pub async fn wait_for(&self, id: Uuid, limit: Option<Duration>) -> Result<Value, Error> {
        use tokio::time::Instant;
        let deadline = limit.map(|limit| Instant::now() + limit);
        loop {
            let asked = Instant::now();
            let left = deadline.map(|deadline| deadline.saturating_duration_since(asked));
            let wait = left.map_or(MAX_WAIT_PER_REQUEST, |left| left.min(MAX_WAIT_PER_REQUEST));
            let task = self.task(id, wait).await?;
            let finished = status_of(&task).is_some_and(TaskStatus::is_terminal);
            if finished || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(task);
            }
            // A server whose `api.max_wait_seconds` is shorter answers
            // early: ask again, but never in a tight loop.
            let pause = MIN_POLL_INTERVAL.saturating_sub(asked.elapsed());
            let pause = deadline.map_or(pause, |deadline| {
                pause.min(deadline.saturating_duration_since(Instant::now()))
            });
            tokio::time::sleep(pause).await;
        }
    }

    /// `GET /tasks`, following pages until `limit` tasks or the last page;
    /// starts after `cursor` when given.
    pub async fn list(
        &self,
        filter: &TaskFilter,
        limit: usize,
        mut cursor: Option<String>,
    ) -> Result<TaskPage, Error> {
        let mut tasks = Vec::new();
        loop {
            let page_size = limit.saturating_sub(tasks.len()).clamp(1, MAX_PAGE);
            let mut url = self.endpoint(&["tasks"])?;
            {
                let mut query = url.query_pairs_mut();
                let status = filter.status.map(TaskStatus::as_str);
                let pairs = [
                    ("status", status),
                    ("task_name", filter.task_name.as_deref()),
                    ("queue", filter.queue.as_deref()),
                    ("tenant", filter.tenant.as_deref()),
                    ("cursor", cursor.as_deref()),
                ];
                for (name, value) in pairs {
                    if let Some(value) = value {
                        query.append_pair(name, value);
                    }
                }
                query.append_pair("limit", &page_size.to_string());
            }
            let page: TaskPage = self
                .call(Method::GET, url, None, None, Duration::ZERO)
                .await?;
            tasks.extend(page.tasks);
            cursor = page.next_cursor;
            if cursor.is_none() || tasks.len() >= limit {
                tasks.truncate(limit);
                return Ok(TaskPage {
                    tasks,
                    next_cursor: cursor,
                });
            }
        }
    }

    /// `POST /tasks/{id}/cancel`: the task, cancelled.
    pub async fn cancel(&self, id: Uuid) -> Result<Value, Error> {
        let url = self.endpoint(&["tasks", &id.to_string(), "cancel"])?;
        self.post(url).await
    }

    /// `POST /tasks/{id}/retry`: the task, pending again.
    pub async fn retry(&self, id: Uuid) -> Result<Value, Error> {
        let url = self.endpoint(&["tasks", &id.to_string(), "retry"])?;
        self.post(url).await
    }

    /// `GET /queues`: `{"queues": [...]}`.
    pub async fn queues(&self) -> Result<Value, Error> {
        let url = self.endpoint(&["queues"])?;
        self.call(Method::GET, url, None, None, Duration::ZERO)
            .await
    }

    /// `POST /queues/{name}/pause`: the queue.
    pub async fn pause(&self, name: &str) -> Result<Value, Error> {
        self.post(self.endpoint(&["queues", name, "pause"])?).await
    }

    /// `POST /queues/{name}/resume`: the queue.
    pub async fn resume(&self, name: &str) -> Result<Value, Error> {
        self.post(self.endpoint(&["queues", name, "resume"])?).await
    }

    /// A URL under the base, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::BadUrl {
                url: self.base.to_string(),
                reason: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn post(&self, url: Url) -> Result<Value, Error> {
        self.call(Method::POST, url, Some(&json!({})), None, Duration::ZERO)
            .await
    }

    /// A submission: nothing is stored on a `429`, so it is sent again
    /// once `Retry-After` has passed.
    async fn submission<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<T, Error> {
        loop {
            let sent = self
                .call(
                    Method::POST,
                    url.clone(),
                    Some(body),
                    idempotency_key,
                    Duration::ZERO,
                )
                .await;
            match sent {
                Err(Error::Api {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    retry_after,
                    ..
                }) => {
                    let pause = retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(pause.clamp(Duration::from_millis(50), MAX_RETRY_AFTER))
                        .await;
                }
                other => return other,
            }
        }
    }

    /// One request; a 2xx JSON body is decoded as `T`, anything else is an [`Error`].
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        wait: Duration,
    ) -> Result<T, Error> {
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(wait + REQUEST_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |err: reqwest::Error| Error::Unreachable {
            url: self.base.to_string(),
            cause: error_chain(&err.without_url()),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|err| Error::Unexpected {
                url: url.to_string(),
                reason: format!("{status} with a body that is not the expected JSON: {err}"),
            });
        }
        Err(api_error(status, &text, retry_after))
    }
}

/// The API's error body, or a stand-in naming the HTTP status when the
/// body is not one (a proxy's error page).
fn api_error(status: StatusCode, text: &str, retry_after: Option<Duration>) -> Error {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        message: String,
        #[serde(default)]
        details: Value,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(Body { error }) => Error::Api {
            status,
            code: error.code,
            message: error.message,
            details: error.details,
            retry_after,
        },
        Err(_) => {
            let excerpt: String = text.trim().chars().take(200).collect();
            Error::Api {
                status,
                code: format!("http_{}", status.as_u16()),
                message: if excerpt.is_empty() {
                    status.to_string()
                } else {
                    format!("{status}: {excerpt}")
                },
                details: Value::Null,
                retry_after,
            }
        }
    }
}

#[cfg(test)]
mod tests;
