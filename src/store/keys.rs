//! API keys and tenants' limits. A key's token is never stored: only its
//! SHA-256, looked up on every authenticated request (through a short
//! in-memory cache, see `auth`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Error, Result, Store};
use crate::domain::Scope;

/// A key as stored (never its token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Names the key in logs and in `tasker keys revoke`.
    #[schema(example = "key_5f2c9a1e7b3d4c60")]
    pub id: String,
    #[schema(example = "acme")]
    pub tenant: String,
    pub scopes: Vec<Scope>,
    /// Submissions per second it may make; null: no limit.
    #[schema(required = true)]
    pub rate_per_second: Option<i32>,
    #[schema(required = true)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it stops working; null: never.
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; null while it works.
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub rate_per_second: Option<i32>,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Sets its tenant's running limit, in the same statement.
    pub max_running: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    tenant: String,
    scopes: Vec<String>,
    rate_per_second: Option<i32>,
    description: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = Error;

    fn try_from(row: KeyRow) -> Result<Self> {
        let scopes = row
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|err| Error::Corrupt(format!("key {}: {err}", row.id)))?;
        Ok(Self {
            id: row.id,
            tenant: row.tenant,
            scopes,
            rate_per_second: row.rate_per_second,
            description: row.description,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

const KEY_COLUMNS: &str =
    "id, tenant, scopes, rate_per_second, description, created_at, expires_at, revoked_at";

impl Store {
    /// Stores a new key.
    pub async fn create_key(&self, key: &NewKey) -> Result<ApiKey> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        let row: KeyRow = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "WITH tenant_limit AS ( \
                       INSERT INTO tenants (name, max_running) \
                       SELECT $3, $8::integer WHERE $8::integer IS NOT NULL \
                       ON CONFLICT (name) DO UPDATE SET max_running = EXCLUDED.max_running, \
                       updated_at = now()) \
                     INSERT INTO api_keys (id, token_hash, tenant, scopes, rate_per_second, \
                     description, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING {KEY_COLUMNS}"
                )))
                .bind(&key.id)
                .bind(&key.token_hash)
                .bind(&key.tenant)
                .bind(scopes)
                .bind(key.rate_per_second)
                .bind(&key.description)
                .bind(key.expires_at)
                .bind(key.max_running)
                .fetch_one(self.db()),
            )
            .await?;
        row.try_into()
    }

    /// Every key (of `tenant` when given), newest first.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys \
                     WHERE ($1::varchar IS NULL OR tenant = $1) ORDER BY created_at DESC, id"
                )))
                .bind(tenant)
                .fetch_all(self.db()),
            )
            .await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    /// Revokes key `id` (of `tenant` when given); `None` when there is no
    /// such key. Revoking twice keeps the first time.
    pub async fn revoke_key(&self, id: &str, tenant: Option<&str>) -> Result<Option<ApiKey>> {
        let row: Option<KeyRow> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) \
                     WHERE id = $1 AND ($2::varchar IS NULL OR tenant = $2) \
                     RETURNING {KEY_COLUMNS}"
                )))
                .bind(id)
                .bind(tenant)
                .fetch_optional(self.db()),
            )
            .await?;
        row.map(ApiKey::try_from).transpose()
    }

    /// The key whose token hashes to `hash`, if it is neither revoked nor
    /// expired.
    pub async fn active_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        let row: Option<KeyRow> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE token_hash = $1 \
                     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                )))
                .bind(hash)
                .fetch_optional(self.db()),
            )
            .await?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Makes `id` an admin key of `tenant` whose token hashes to `hash`:
    /// created, or re-keyed and reinstated when the token changed.
    pub async fn ensure_admin_key(&self, id: &str, tenant: &str, hash: &[u8]) -> Result<()> {
        self.bounded(
            sqlx::query(
                "INSERT INTO api_keys (id, token_hash, tenant, scopes, description) \
                 VALUES ($1, $2, $3, ARRAY['admin'], 'bootstrap key (auth.bootstrap_token)') \
                 ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, \
                 tenant = EXCLUDED.tenant, scopes = EXCLUDED.scopes, revoked_at = NULL, \
                 expires_at = NULL WHERE api_keys.token_hash <> EXCLUDED.token_hash",
            )
            .bind(id)
            .bind(hash)
            .bind(tenant)
            .execute(self.db()),
        )
        .await?;
        Ok(())
    }

    /// Sets (or clears, with `None`) how many of `tenant`'s tasks may run at once.
    pub async fn set_max_running(&self, tenant: &str, max_running: Option<i32>) -> Result<()> {
        self.bounded(
            sqlx::query(
                "INSERT INTO tenants (name, max_running) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET max_running = EXCLUDED.max_running, \
                 updated_at = now()",
            )
            .bind(tenant)
            .bind(max_running)
            .execute(self.db()),
        )
        .await?;
        Ok(())
    }

    /// Every tenant with a running limit, and the limit.
    pub async fn running_limits(&self) -> Result<Vec<(String, i32)>> {
        self.bounded(
            sqlx::query_as(
                "SELECT name, max_running FROM tenants WHERE max_running IS NOT NULL ORDER BY name",
            )
            .fetch_all(self.db()),
        )
        .await
    }
}

/// A fresh key id: `key_` and 16 hex digits.
pub fn new_key_id() -> String {
    let id = Uuid::new_v4().simple().to_string();
    format!("key_{}", &id[..16])
}
