//! `query_llm`: sends a prompt to an LLM over the Anthropic Messages API.
//! Rate limits, server errors and timeouts are retryable; other client
//! errors are not.

mod budget;
mod settings;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{FieldError, RetryPolicy, Task, TaskEnv, TaskError};
use crate::config::{ConfigError, ExposeSecret, SecretString};
use crate::telemetry::error_chain;

pub use settings::LlmSettings;

const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Upper bound on `max_tokens`, well above what current models accept.
const MAX_TOKENS_LIMIT: u32 = 128_000;

pub struct QueryLlm {
    budget: Option<budget::LlmBudget>,
    client: reqwest::Client,
    messages_url: String,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
    default_max_tokens: u32,
}

/// Parameters of `query_llm`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryLlmParams {
    /// The user message sent to the model.
    #[schema(
        example = "Say hello in French.",
        min_length = 1,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub prompt: String,
    /// Upper bound on the reply's length, in tokens (default from `llm.default_max_tokens`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(minimum = 1, maximum = 128000)]
    pub max_tokens: Option<u32>,
}

/// A whole number, also when written with a zero fraction (`64.0`): JSON
/// Schema's `integer` allows that form, so the contract does too.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "expected a whole number from 1 to {MAX_TOKENS_LIMIT}, got {number}"
            ))
        })
}

/// Output of `query_llm`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryLlmOutput {
    /// The reply's text blocks, joined.
    #[schema(example = "Bonjour !")]
    pub text: String,
    /// The model that answered.
    #[schema(example = "claude-sonnet-4-5")]
    pub model: String,
    /// Why the model stopped, as the provider says (`end_turn`, `max_tokens`, …).
    #[schema(example = "end_turn", required = true)]
    pub stop_reason: Option<String>,
    pub usage: Usage,
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    model: String,
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// Tokens the call used, as the provider counted them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl QueryLlm {
    async fn send(
        &self,
        api_key: &SecretString,
        body: &Value,
    ) -> Result<QueryLlmOutput, TaskError> {
        let response = self
            .client
            .post(&self.messages_url)
            .header("x-api-key", api_key.expose_secret())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body)
            .send()
            .await
            .map_err(|err| transport_error(&err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let spent = limits_spent(response.headers());
        let text = response.text().await.map_err(|err| {
            tracing::warn!(error = %error_chain(&err), "reading the LLM reply failed");
            TaskError::retryable("reading the LLM reply failed")
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The provider's limits are the fleet's: everyone waits, and
            // the task waits without spending an attempt.
            let wait = retry_after.or(spent).unwrap_or(Duration::from_secs(5));
            if let Some(budget) = &self.budget {
                budget.hold_off(wait).await;
            }
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "the LLM API answered 429; waiting"
            );
            return Err(budget::defer(
                "provider",
                "the LLM provider is rate limiting (429); waiting",
                wait,
            ));
        }
        if let (Some(wait), Some(budget)) = (spent, &self.budget) {
            // Answered, but its limits are spent until the reset.
            budget.hold_off(wait).await;
        }
        if !status.is_success() {
            return Err(status_error(status, &text, retry_after));
        }
        let reply: MessagesResponse = serde_json::from_str(&text).map_err(|err| {
            TaskError::fatal(format!(
                "the LLM reply is not a Messages API response: {err}"
            ))
        })?;
        Ok(output(reply))
    }
}

impl Task for QueryLlm {
    const NAME: &'static str = "query_llm";
    const DEFAULT_QUEUE: &'static str = "llm";
    const DESCRIPTION: &'static str = "Sends `prompt` to the configured LLM (Anthropic Messages API). \
         Output: `{\"text\", \"model\", \"stop_reason\", \"usage\"}`.";
    type Params = QueryLlmParams;
    type Output = QueryLlmOutput;
    type Settings = LlmSettings;

    fn build(settings: LlmSettings, env: &TaskEnv) -> Result<Self, ConfigError> {
        crate::tls::install_crypto_provider();
        let timeout = settings.timeout();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .map_err(|err| ConfigError::Invalid {
                key: "llm".into(),
                reason: format!("cannot build the HTTP client: {err}"),
            })?;
        Ok(Self {
            budget: budget::LlmBudget::new(&settings, env),
            client,
            messages_url: format!("{}/v1/messages", settings.base_url.trim_end_matches('/')),
            api_key: settings.api_key(),
            model: settings.model.clone(),
            timeout,
            default_max_tokens: settings.default_max_tokens.get(),
        })
    }

    fn example() -> QueryLlmParams {
        QueryLlmParams {
            prompt: "Say hello in French.".into(),
            max_tokens: Some(64),
        }
    }

    fn check(&self, params: &QueryLlmParams) -> Result<(), FieldError> {
        if params.prompt.trim().is_empty() {
            return Err(FieldError::new("prompt", "must not be empty"));
        }
        match params.max_tokens {
            Some(n) if n == 0 || n > MAX_TOKENS_LIMIT => Err(FieldError::new(
                "max_tokens",
                format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
            )),
            _ => Ok(()),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    fn timeout(&self) -> Duration {
        // The HTTP client gives up first, with a clearer error.
        self.timeout + Duration::from_secs(5)
    }

    async fn run(&self, params: QueryLlmParams) -> Result<QueryLlmOutput, TaskError> {
        let Some(api_key) = &self.api_key else {
            return Err(TaskError::fatal(
                "no LLM API key is configured: set llm.api_key \
                 (TASKER_LLM__API_KEY, or TASKER_LLM__API_KEY_FILE naming a file)",
            ));
        };
        let max_tokens = params.max_tokens.unwrap_or(self.default_max_tokens);
        let call = match &self.budget {
            Some(budget) => Some(
                budget
                    .enter(estimate_tokens(&params.prompt, max_tokens))
                    .await?,
            ),
            None => None,
        };
        let body = json!({
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": params.prompt}],
        });
        let answer = self.send(api_key, &body).await;
        if let Some(call) = call {
            let used = answer
                .as_ref()
                .ok()
                .map(|output| output.usage.input_tokens + output.usage.output_tokens);
            call.settle(used).await;
        }
        answer
    }
}

fn output(reply: MessagesResponse) -> QueryLlmOutput {
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
fn transport_error(err: &reqwest::Error) -> TaskError {
    tracing::warn!(error = %error_chain(err), "the LLM request failed");
    if err.is_timeout() {
        TaskError::retryable("the LLM request timed out")
    } else if err.is_connect() {
        TaskError::retryable("could not connect to the LLM API")
    } else {
        TaskError::retryable("the LLM request failed")
    }
}

fn status_error(status: StatusCode, body: &str, retry_after: Option<Duration>) -> TaskError {
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
fn api_error_type(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let kind = value.pointer("/error/type")?.as_str()?;
    let plain = !kind.is_empty()
        && kind.len() <= 40
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    plain.then(|| kind.to_owned())
}

/// The Messages API puts a readable message at `error.message`.
fn api_error_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A generous guess of a call's tokens before it is made: the prompt at
/// about four characters a token, and every token the reply may use. The
/// reply's `usage` corrects it.
fn estimate_tokens(prompt: &str, max_tokens: u32) -> u64 {
    (prompt.chars().count() as u64).div_ceil(4) + u64::from(max_tokens)
}

/// How long until the provider's limits reset, when its rate-limit headers
/// say one of them is spent (`anthropic-ratelimit-*-remaining: 0`).
fn limits_spent(headers: &HeaderMap) -> Option<Duration> {
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_retryable() {
        for status in [500, 502, 503, 529] {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
            let err = status_error(status, "{}", None);
            assert!(matches!(err, TaskError::Retryable { .. }), "{status}");
        }
    }

    #[test]
    fn other_client_errors_are_fatal_and_name_only_the_kind() {
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens too large for key sk-1"}}"#;
        let err = status_error(StatusCode::BAD_REQUEST, body, None);
        assert!(
            matches!(&err, TaskError::Fatal(m) if m.contains("invalid_request_error") && !m.contains("sk-1")),
            "{err:?}"
        );
        let err = status_error(
            StatusCode::UNAUTHORIZED,
            "<html>internal host 10.1.2.3</html>",
            None,
        );
        assert!(
            matches!(&err, TaskError::Fatal(m) if m.contains("401") && !m.contains("10.1.2.3"))
        );
    }

    #[test]
    fn max_tokens_accepts_whole_numbers_in_either_form() {
        let parse = |v: Value| serde_json::from_value::<QueryLlmParams>(v).map(|p| p.max_tokens);
        assert_eq!(
            parse(json!({"prompt": "p", "max_tokens": 64})).ok(),
            Some(Some(64))
        );
        assert_eq!(
            parse(json!({"prompt": "p", "max_tokens": 64.0})).ok(),
            Some(Some(64))
        );
        assert_eq!(parse(json!({"prompt": "p"})).ok(), Some(None));
        assert!(parse(json!({"prompt": "p", "max_tokens": 64.5})).is_err());
        assert!(parse(json!({"prompt": "p", "max_tokens": -1})).is_err());
        assert!(parse(json!({"prompt": "p", "max_tokens": "64"})).is_err());
    }

    #[test]
    fn spent_limits_say_how_long_to_wait() {
        let mut headers = HeaderMap::new();
        assert_eq!(limits_spent(&headers), None);
        let reset = (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc3339();
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            reqwest::header::HeaderValue::from_static("0"),
        );
        headers.insert(
            "anthropic-ratelimit-requests-reset",
            reqwest::header::HeaderValue::from_str(&reset)
                .unwrap_or(reqwest::header::HeaderValue::from_static("x")),
        );
        let wait = limits_spent(&headers).unwrap_or_default();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            reqwest::header::HeaderValue::from_static("7"),
        );
        assert_eq!(limits_spent(&headers), None);
        assert_eq!(estimate_tokens("abcdefgh", 100), 102);
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, reqwest::header::HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn text_blocks_are_joined_and_usage_kept() {
        let reply = MessagesResponse {
            model: "m".into(),
            content: vec![
                ContentBlock {
                    kind: "text".into(),
                    text: Some("Bon".into()),
                },
                ContentBlock {
                    kind: "tool_use".into(),
                    text: None,
                },
                ContentBlock {
                    kind: "text".into(),
                    text: Some("jour".into()),
                },
            ],
            stop_reason: Some("end_turn".into()),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 2,
            },
        };
        let out = output(reply);
        assert_eq!(out.text, "Bonjour");
        assert_eq!(out.usage.output_tokens, 2);
    }
}
