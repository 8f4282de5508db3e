//! `query_llm`: sends a prompt to an LLM over the Anthropic Messages API.
//! Rate limits, server errors and timeouts are retryable; other client
//! errors are not.

mod budget;
mod budget_metrics;
mod reply;
mod settings;

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{FieldError, RetryPolicy, Task, TaskEnv, TaskError};
use crate::config::{ConfigError, ExposeSecret, SecretString};
use crate::telemetry::error_chain;

use crate::retry_after::retry_after;
use reply::{MessagesResponse, limits_spent, output, status_error, transport_error};
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
        crate::telemetry::metrics::add_task_metrics(budget_metrics::METRICS);
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
            let used = match &answer {
                Ok(output) => Some(output.usage.input_tokens + output.usage.output_tokens),
                // Refused for the provider's rate: it counted nothing, so
                // the estimate is given back.
                Err(TaskError::Deferred { .. }) => Some(0),
                // It may have counted the prompt: the estimate stands.
                Err(_) => None,
            };
            call.settle(used).await;
        }
        answer
    }
}

/// A generous guess of a call's tokens before it is made: the prompt at
/// about four characters a token, and every token the reply may use. The
/// reply's `usage` corrects it.
fn estimate_tokens(prompt: &str, max_tokens: u32) -> u64 {
    (prompt.chars().count() as u64).div_ceil(4) + u64::from(max_tokens)
}

#[cfg(test)]
mod tests;
