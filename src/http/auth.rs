//! Authentication at the edge: the API key of a request (when `auth` is
//! on), and the caller handlers act for.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::auth::{Authenticated, Authenticator};
use crate::domain::{Caller, Origin, RateLimit, Scope};

/// Resolves the request's key into an [`Authenticated`] caller for the
/// handlers, or answers 401 (no key, or one that is unknown, revoked or
/// expired). Only the task API passes through here: probes, metrics and
/// the docs never need a token.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match authenticator.authenticate(authorization).await {
        Ok(authenticated) => {
            if let Some(key_id) = &authenticated.caller.key_id {
                tracing::Span::current().record("key_id", key_id.as_str());
            }
            request.extensions_mut().insert(authenticated);
            next.run(request).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The caller of a request that passed [`authenticate`].
pub struct CallerOf(pub Authenticated);

impl CallerOf {
    /// The caller, if it holds `scope` (`admin` holds every scope); else 403.
    pub fn require(&self, scope: Scope) -> Result<&Caller, ApiError> {
        let caller = &self.0.caller;
        if caller.may(scope) {
            Ok(caller)
        } else {
            Err(ApiError::Forbidden(format!(
                "this API key lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }

    /// An admin caller holding a real key. Key management needs one even
    /// when authentication is off: there every caller is the anonymous
    /// admin, and a key minted then would keep its power once auth is on.
    pub fn require_key_admin(&self) -> Result<&Caller, ApiError> {
        let caller = self.require(Scope::Admin)?;
        if caller.key_id.is_none() {
            return Err(ApiError::Forbidden(
                "API keys are managed over the API only while `auth.enabled` is on; \
                 use `tasker keys` on a server"
                    .into(),
            ));
        }
        Ok(caller)
    }

    /// Where a submission by this caller comes from.
    pub fn origin(&self, request_id: &str) -> Origin {
        let mut origin = super::origin(request_id);
        origin.tenant = self.0.caller.tenant.clone();
        origin.rate = match (&self.0.caller.key_id, self.0.rate_per_second) {
            (Some(key_id), Some(per_second)) => Some(RateLimit {
                key_id: key_id.clone(),
                per_second,
            }),
            _ => None,
        };
        origin
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CallerOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .map(CallerOf)
            .ok_or_else(|| ApiError::Internal("a task route without authentication".into()))
    }
}
