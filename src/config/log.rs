//! `[log]`: format and filter of the logs.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `text`; unset means JSON, except `tasker dev` which prints text.
    pub format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `tasker=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: None,
            level: "info,sqlx=warn".into(),
        }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map(drop)
            .map_err(|err| ConfigError::Invalid {
                key: "log.level".into(),
                reason: format!("is not a valid filter: {err}"),
            })
    }
}
