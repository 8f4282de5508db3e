//! The Messages API's answers: a reply turned into the task's output, and
//! errors and rate-limit headers turned into retryable, deferred or fatal
//! task errors that name the kind of failure but never the provider's text.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::{QueryLlmOutput, Usage};
use crate::tasks::TaskError;
use crate::telemetry::error_chain;

#[derive(Debug, Deserialize)]
pub(super) struct MessagesResponse {
    pub(super) model: String,
    pub(super) content: Vec<ContentBlock>,
    #[serde(default)]
    pub(super) stop_reason: Option<String>,
    pub(super) usage: Usage,
}

#[derive(Debug, Deserialize)]
pub(super) struct ContentBlock {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
}

pub(super) fn output(reply: MessagesResponse) -> QueryLlmOutput {
    let text: String = reply
        .content
        .iter()
        .filter(|block| block.kind == "text")
        .filter_map(|block| block.text.as_deref())
        .collect();
    QueryLlmOutput {
        text,
        model: reply.model,
        stop_reason: reply.stop_reason,
        usage: reply.usage,
    }
}

/// A task's `error` is shown to whoever reads the task: it says what kind
/// of failure it was, never the provider's address or its raw words, which
/// go to the worker's log.
pub(super) fn transport_error(err: &reqwest::Error) -> TaskError {
    tracing::warn!(error = %error_chain(err), "the LLM request failed");
    if err.is_timeout() {
        TaskError::retryable("the LLM request timed out")
    } else if err.is_connect() {
        TaskError::retryable("could not connect to the LLM API")
    } else {
        TaskError::retryable("the LLM request failed")
    }
}

pub(super) fn status_error(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
) -> TaskError {
    let detail = api_error_message(body).unwrap_or_else(|| truncate(body, 300));
    tracing::warn!(status = status.as_u16(), detail = %detail, "the LLM API refused the request");
    let message = match api_error_type(body) {
        Some(kind) => format!("the LLM API answered {status} ({kind})"),
        None => format!("the LLM API answered {status}"),
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        TaskError::Retryable {
            message,
            retry_after,
        }
    } else {
        TaskError::Fatal(message)
    }
}

/// The Messages API names the kind of error at `error.type`, a short
/// stable token (`authentication_error`, `rate_limit_error`, …): safe to
/// show, unlike the message beside it.
pub(super) fn api_error_type(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let kind = value.pointer("/error/type")?.as_str()?;
    let plain = !kind.is_empty()
        && kind.len() <= 40
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    plain.then(|| kind.to_owned())
}

/// The Messages API puts a readable message at `error.message`.
pub(super) fn api_error_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// How long until the provider's limits reset, when its rate-limit headers
/// say one of them is spent (`anthropic-ratelimit-*-remaining: 0`).
pub(super) fn limits_spent(headers: &HeaderMap) -> Option<Duration> {
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .into_iter()
        .filter(|kind| {
            headers
                .get(format!("anthropic-ratelimit-{kind}-remaining"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                == Some(0)
        })
        .filter_map(|kind| {
            let reset = headers
                .get(format!("anthropic-ratelimit-{kind}-reset"))?
                .to_str()
                .ok()?;
            let at = chrono::DateTime::parse_from_rfc3339(reset.trim()).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .max()
        .map(|wait| wait.max(Duration::from_millis(100)))
}

pub(super) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
