//! `[auth]`: API keys. Off by default (every caller is the `default` tenant
//! with every scope); the Helm chart turns it on.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, SecretString, check, non_empty, redact_optional};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require `Authorization: Bearer <token>` on the task API.
    pub enabled: bool,
    /// A token (32 characters or more) made an admin key of
    /// `bootstrap_tenant` at start-up: the first key, from which the others
    /// are made. Usually from a Secret (`TASKER_AUTH__BOOTSTRAP_TOKEN_FILE`).
    #[serde(serialize_with = "redact_optional")]
    pub bootstrap_token: Option<SecretString>,
    pub bootstrap_tenant: String,
    /// How long a key looked up stays trusted in memory: a revoked or
    /// expired key stops working on every replica within this time.
    pub cache_seconds: NonZeroU64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bootstrap_token: None,
            bootstrap_tenant: "admin".into(),
            cache_seconds: super::nonzero_u64(5),
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "auth.bootstrap_tenant",
            crate::domain::is_valid_tenant(&self.bootstrap_tenant),
            "must be 1 to 100 of a-z, 0-9, _ and -, starting with a letter or digit",
        )?;
        if let Some(token) = self.bootstrap_token() {
            use secrecy::ExposeSecret;
            check(
                "auth.bootstrap_token",
                token.expose_secret().trim().len() >= 32,
                "must be at least 32 characters",
            )?;
        }
        Ok(())
    }

    /// The bootstrap token, unless empty.
    pub fn bootstrap_token(&self) -> Option<SecretString> {
        non_empty(self.bootstrap_token.clone())
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_seconds.get())
    }
}
