//! `[llm]`: the settings of `query_llm`.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, SecretString, check, non_empty, redact_optional};
use crate::tasks::TaskSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// Messages API base URL.
    pub base_url: String,
    /// Anthropic API key; `query_llm` tasks fail, naming this key, without it.
    #[serde(serialize_with = "redact_optional")]
    pub api_key: Option<SecretString>,
    pub model: String,
    /// HTTP timeout of one call.
    pub timeout_seconds: NonZeroU64,
    /// `max_tokens` when a task gives none.
    pub default_max_tokens: NonZeroU32,
    /// LLM calls in flight at once across every worker; no limit when unset.
    pub max_concurrency: Option<NonZeroU32>,
    /// Tokens (estimated before a call, corrected after) per minute across
    /// every worker; no limit when unset.
    pub tokens_per_minute: Option<NonZeroU64>,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
            model: "claude-sonnet-4-5".into(),
            timeout_seconds: crate::config::nonzero_u64(60),
            default_max_tokens: crate::config::nonzero_u32(1024),
            max_concurrency: None,
            tokens_per_minute: None,
        }
    }
}

impl TaskSettings for LlmSettings {
    const SECTION: Option<&'static str> = Some("llm");

    fn validate(&self) -> Result<(), ConfigError> {
        check(
            "llm.base_url",
            reqwest::Url::parse(&self.base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "must be an http:// or https:// URL",
        )?;
        check("llm.model", !self.model.is_empty(), "must not be empty")
    }
}

impl LlmSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.get())
    }

    /// The key, unless it is empty (an unset shell variable gives `""`).
    pub fn api_key(&self) -> Option<SecretString> {
        non_empty(self.api_key.clone())
    }
}
