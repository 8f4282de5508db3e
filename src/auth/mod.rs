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

/// Most tokens remembered as unknown; past it that half of the cache
/// starts over, so a flood of made-up tokens neither grows memory nor
/// pushes out the keys in use (those are bounded by the keys that exist).
const MAX_UNKNOWN: usize = 10_000;

/// A token hash's lookup and when it was made.
type Lookup<T> = (Instant, T);

/// Turns `Authorization` headers into callers; cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    store: Store,
    enabled: bool,
    ttl: Duration,
    cache: Mutex<Cache>,
}

/// Lookups of the last `ttl`: keys found, and tokens that name no active
/// key (remembered too, so that retrying a bad token costs no query).
#[derive(Default)]
struct Cache {
    known: HashMap<Vec<u8>, Lookup<Authenticated>>,
    unknown: HashMap<Vec<u8>, Lookup<()>>,
}

impl Authenticator {
    pub fn new(store: Store, enabled: bool, ttl: Duration) -> Self {
        Self(Arc::new(Inner {
            store,
            enabled,
            ttl,
            cache: Mutex::new(Cache::default()),
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
        let fresh = |at: &Instant| at.elapsed() < self.0.ttl;
        if let Some((at, found)) = cache.known.get(hash)
            && fresh(at)
        {
            return Some(Some(found.clone()));
        }
        cache
            .unknown
            .get(hash)
            .filter(|(at, ())| fresh(at))
            .map(|_| None)
    }

    fn remember(&self, hash: Vec<u8>, found: Option<Authenticated>) {
        let mut cache = self.0.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match found {
            Some(found) => {
                cache.unknown.remove(&hash);
                cache.known.insert(hash, (now, found));
            }
            None => {
                cache.known.remove(&hash);
                if cache.unknown.len() >= MAX_UNKNOWN {
                    cache.unknown.clear();
                }
                cache.unknown.insert(hash, (now, ()));
            }
        }
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
