//! Secrets in the configuration, held by `secrecy` so they never print:
//! `Debug` shows a redacted form, and only `expose_secret` gives the text.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serializer};

/// A connection URL whose password is a secret: logs and `tasker config`
/// show it with the password replaced, so the host stays visible.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`; `***` alone when it is
    /// not a URL with a host (it might be a bare secret).
    pub fn redacted(&self) -> String {
        match reqwest::Url::parse(self.expose()) {
            Ok(mut url) if url.has_host() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            _ => "***".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl serde::Serialize for SecretUrl {
    /// Serialised only to be shown (`tasker config`): redacted.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Serialises an optional secret as `"***"` (or nothing when unset): for
/// `#[serde(serialize_with)]` on secret fields, which are only ever
/// serialised to be shown.
pub fn redact_optional<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("***"),
        None => serializer.serialize_none(),
    }
}

/// An empty secret (say `TASKER_LLM__API_KEY=` from an unset shell
/// variable) means none, so the code can say which key to set.
pub fn non_empty(secret: Option<SecretString>) -> Option<SecretString> {
    secret.filter(|s| !s.expose_secret().trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_never_prints() {
        let url = SecretUrl::new("postgres://tasker:hunter2@db:5432/tasker");
        let printed = format!("{url:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db:5432"), "{printed}");
        assert_eq!(SecretUrl::new("not a url").redacted(), "***");
    }
}
