//! API keys over the API, for admin keys: make, list, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::needs;
use crate::domain::Scope;
use crate::http::AppState;
use crate::http::auth::CallerOf;
use crate::http::error::{ApiError, ErrorResponse};
use crate::http::extract::{JsonBody, PathParam};
use crate::services::{KeyError, KeyRequest};
use crate::store::ApiKey;

/// A key to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    /// The tenant whose tasks the key submits and reads.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,99}$", example = "acme")]
    tenant: String,
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
    /// Submissions per second across every api replica (batch items count one each).
    #[schema(minimum = 1, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_number")]
    rate_per_second: Option<u32>,
    /// Tasks of the tenant running at once across every worker.
    #[schema(minimum = 1, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_number")]
    max_running: Option<u32>,
    /// Lifetime in seconds (up to 100 years); no expiry when absent.
    #[schema(minimum = 1, maximum = 3155760000_u64)]
    #[serde(default, deserialize_with = "whole_number")]
    expires_in_seconds: Option<u64>,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    description: Option<String>,
}

/// A whole number, also when written as a float with no fraction (`5.0`:
/// JSON Schema's `integer` allows it, so generated clients may send it).
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {number}")))
}

/// A key just made, with its token: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedKeyResponse {
    key: ApiKey,
    /// `Authorization: Bearer <token>`; only its hash is kept.
    #[schema(example = "tsk_0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")]
    token: String,
}

/// Every key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = KeyList)]
pub(crate) struct ListKeysResponse {
    keys: Vec<ApiKey>,
}

/// Make an API key (admin).
#[utoipa::path(post, path = "/keys", tag = "keys", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Made; the token is in this answer only", body = CreatedKeyResponse),
        (status = 401, description = "No or a bad API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key, or authentication is off", body = ErrorResponse),
        (status = 422, description = "An invalid field", body = ErrorResponse),
    ))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: CallerOf,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require_key_admin()?;
    let request: CreateKeyRequest = serde_path_to_error::deserialize(body).map_err(|err| {
        let field = err.path().to_string();
        ApiError::validation(&field, err.into_inner().to_string())
    })?;
    let (key, token) = state
        .api_keys
        .create(KeyRequest {
            tenant: request.tenant,
            scopes: request.scopes,
            rate: request.rate_per_second,
            max_running: request.max_running,
            expires_in: request
                .expires_in_seconds
                .map(std::time::Duration::from_secs),
            description: request.description,
        })
        .await?;
    tracing::info!(made = %key.id, "operator action: API key made");
    Ok((StatusCode::CREATED, Json(CreatedKeyResponse { key, token })).into_response())
}

/// List API keys (admin).
#[utoipa::path(get, path = "/keys", tag = "keys", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every key, newest first; never their tokens", body = ListKeysResponse),
        (status = 401, description = "No or a bad API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key, or authentication is off", body = ErrorResponse),
    ))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: CallerOf,
) -> Result<Json<ListKeysResponse>, ApiError> {
    caller.require_key_admin()?;
    let keys = state.api_keys.list(None).await?;
    Ok(Json(ListKeysResponse { keys }))
}

/// Revoke an API key (admin): it stops working on every api replica within
/// `auth.cache_seconds`.
#[utoipa::path(post, path = "/keys/{id}/revoke", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked (again, if it already was)", body = ApiKey),
        (status = 401, description = "No or a bad API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key, or authentication is off", body = ErrorResponse),
        (status = 404, description = "No such key", body = ErrorResponse),
    ))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: CallerOf,
    path: Result<PathParam<String>, ApiError>,
) -> Result<Json<ApiKey>, ApiError> {
    caller.require_key_admin()?;
    let PathParam(id) = path?;
    let key = state
        .api_keys
        .revoke(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no key with id {id}")))?;
    tracing::info!(revoked = %key.id, "operator action: API key revoked");
    Ok(Json(key))
}

// Key management needs an admin key, and a real one (`require_key_admin`):
// what `needs` declares for its operations and the document shows.
const _: () = assert!(matches!(
    (needs::create_key, needs::list_keys, needs::revoke_key),
    (Scope::Admin, Scope::Admin, Scope::Admin)
));

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Invalid { field, message } => ApiError::validation(field, message),
            KeyError::Store(err) => err.into(),
        }
    }
}
