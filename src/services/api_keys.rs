//! Making, listing and revoking API keys: for `tasker keys` and for admin
//! keys over the API.

use std::time::Duration;

use crate::auth::{generate_token, hash_token};
use crate::domain::{Scope, is_valid_tenant};
use crate::store::{self, ApiKey, NewKey, Store, new_key_id};

/// The longest `expires_in` a key may have: 100 years of 365.25 days.
pub const MAX_KEY_LIFETIME_SECS: u64 = 3_155_760_000;

/// The `description` column's length, in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// A key to make.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub tenant: String,
    pub scopes: Vec<Scope>,
    /// Submissions per second.
    pub rate: Option<u32>,
    /// Tasks of the tenant running at once (a limit of the tenant).
    pub max_running: Option<u32>,
    pub expires_in: Option<Duration>,
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// API keys; cheap to clone.
#[derive(Clone)]
pub struct ApiKeys {
    store: Store,
}

impl ApiKeys {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Makes a key; returns it with its token, which is never shown again.
    pub async fn create(&self, request: KeyRequest) -> Result<(ApiKey, String), KeyError> {
        let invalid = |field, message: &str| KeyError::Invalid {
            field,
            message: message.to_owned(),
        };
        if !is_valid_tenant(&request.tenant) {
            return Err(invalid(
                "tenant",
                "1 to 100 of a-z, 0-9, _ and -, starting with a letter or digit",
            ));
        }
        if request
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains('\0'))
        {
            return Err(invalid(
                "description",
                "must be at most 200 characters, none of them NUL",
            ));
        }
        if request.scopes.is_empty() {
            return Err(invalid("scopes", "at least one of submit, read, admin"));
        }
        for (field, limit) in [("rate", request.rate), ("max_running", request.max_running)] {
            if limit.is_some_and(|n| n == 0 || i32::try_from(n).is_err()) {
                return Err(invalid(field, "must be between 1 and 2147483647"));
            }
        }
        if request
            .expires_in
            .is_some_and(|d| d.is_zero() || d.as_secs() > MAX_KEY_LIFETIME_SECS)
        {
            return Err(invalid(
                "expires_in",
                "must be between 1 second and 100 years",
            ));
        }
        let expires_at = request
            .expires_in
            .map(|d| {
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                    .ok_or_else(|| invalid("expires_in", "is too long"))
            })
            .transpose()?;
        let token = generate_token();
        let key = NewKey {
            id: new_key_id(),
            token_hash: hash_token(&token),
            tenant: request.tenant.clone(),
            scopes: request.scopes,
            rate_per_second: request.rate.map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
            description: request.description,
            expires_at,
            max_running: request
                .max_running
                .map(|max| i32::try_from(max).unwrap_or(i32::MAX)),
        };
        // The key and its tenant's limit are made together or not at all.
        let made = self.store.create_key(&key).await?;
        tracing::info!(key_id = %made.id, tenant = %made.tenant, "API key created");
        Ok((made, token))
    }

    /// Every key, or one tenant's.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, KeyError> {
        Ok(self.store.list_keys(tenant).await?)
    }

    /// Revokes key `id`; `None` when there is no such key.
    pub async fn revoke(&self, id: &str) -> Result<Option<ApiKey>, KeyError> {
        let revoked = self.store.revoke_key(id, None).await?;
        if revoked.is_some() {
            tracing::info!(key_id = %id, "API key revoked");
        }
        Ok(revoked)
    }
}
