//! API keys: their tokens, and who a request's token says is calling.
//!
//! A token is `tsk_` and 64 hex digits (256 random bits), shown once when
//! the key is made. Only its SHA-256 is stored; a slow hash is not needed
//! for a secret that is random rather than chosen by a person. Lookups are
//! cached in memory for `auth.cache_seconds`, which bounds how long a
//! revoked or expired key keeps working on a replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::domain::Caller;
use crate::store::{self, ApiKey, Store};

/// Every token starts with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "tsk_";

/// A new random token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// What is stored of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the API key is not valid (unknown, revoked or expired)")]
    Invalid,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A caller and the limits of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub caller: Caller,
    /// Submissions per second the key may make.
    pub rate_per_second: Option<u32>,
}

impl From<&ApiKey> for Authenticated {
    fn from(key: &ApiKey) -> Self {
        Self {
            caller: Caller {
                key_id: Some(key.id.clone()),
                tenant: key.tenant.clone(),
                scopes: key.scopes.clone(),
            },
            rate_per_second: key.rate_per_second.and_then(|r| u32::try_from(r).ok()),
        }
    }
}

/// Most cached lookups; past it the cache starts over (a flood of bad
/// tokens must not grow memory).
const MAX_CACHED: usize = 10_000;

/// A token hash's lookup: when it was made, and the key found (or none).
type Lookup = (Instant, Option<Authenticated>);

/// Turns `Authorization` headers into callers; cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    store: Store,
    enabled: bool,
    ttl: Duration,
    cache: Mutex<HashMap<Vec<u8>, Lookup>>,
}

impl Authenticator {
    pub fn new(store: Store, enabled: bool, ttl: Duration) -> Self {
        Self(Arc::new(Inner {
            store,
            enabled,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.enabled
    }

    /// The caller an `Authorization` header names; everyone is the
    /// anonymous default-tenant caller when authentication is off.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Authenticated, AuthError> {
        if !self.0.enabled {
            return Ok(Authenticated {
                caller: Caller::anonymous(),
                rate_per_second: None,
            });
        }
        let token = authorization
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        let hash = hash_token(token);
        if let Some(found) = self.cached(&hash) {
            return found.ok_or(AuthError::Invalid);
        }
        let found = self
            .0
            .store
            .active_key(&hash)
            .await?
            .map(|key| Authenticated::from(&key));
        self.remember(hash, found.clone());
        found.ok_or(AuthError::Invalid)
    }

    fn cached(&self, hash: &[u8]) -> Option<Option<Authenticated>> {
        let cache = self.0.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(hash)
            .filter(|(at, _)| at.elapsed() < self.0.ttl)
            .map(|(_, found)| found.clone())
    }

    fn remember(&self, hash: Vec<u8>, found: Option<Authenticated>) {
        let mut cache = self.0.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), found));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_the_same_each_time() {
        let (one, two) = (generate_token(), generate_token());
        assert_ne!(one, two);
        assert!(one.starts_with(TOKEN_PREFIX) && one.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&one), hash_token(&format!(" {one}\n")));
        assert_ne!(hash_token(&one), hash_token(&two));
    }
}
