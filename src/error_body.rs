//! The JSON shape of every error answer, `{"error": {"code", "message",
//! "details"}}`, and the closed set of codes. Below `http` and `worker`
//! because both answer with it (the worker on its probe port).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// Every code the service answers with; stable, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON (400).
    InvalidJson,
    /// A missing or invalid field, named in `details.field` (422).
    ValidationFailed,
    /// `details.valid_task_names` lists the valid ones (422).
    UnknownTaskName,
    /// No or a bad API key (401).
    Unauthorized,
    /// The API key lacks the scope this needs (403).
    Forbidden,
    /// No such task or route (404).
    NotFound,
    /// An `Idempotency-Key` sent again with a different request (409).
    IdempotencyKeyReused,
    /// The task's status does not allow the action, named in
    /// `details.status` (409): cancelling a finished task, retrying one
    /// that has not failed.
    StatusConflict,
    /// Wrong method for the route (405).
    MethodNotAllowed,
    /// A browser request from a site not in `api.allowed_origins` (403).
    CrossSiteRequest,
    /// The request body did not arrive in time (408).
    RequestTimeout,
    /// Body over `api.max_body_bytes` (413).
    PayloadTooLarge,
    /// The API key's submission rate is spent; `Retry-After` says when (429).
    RateLimited,
    /// A dependency is unreachable, named in `details.dependency` (503).
    ServiceUnavailable,
    /// `/ready`: a dependency is down, `details.checks` says which (503).
    NotReady,
    /// Anything else (500); the log has the detail.
    InternalError,
}

/// Error body of every failed request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "invalid field `a`: invalid type: string \"x\", expected a JSON number", "details": {"field": "a"}}}))]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context (the invalid field, the valid names, …), or null.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Value>>, required = true)]
    pub details: Value,
}

impl ErrorResponse {
    pub fn new(code: ErrorCode, message: impl Into<String>, details: Value) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                details,
            },
        }
    }

    /// This body with `status`, as a response.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        (status, Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_strings() {
        let body = ErrorResponse::new(ErrorCode::NotReady, "x", Value::Null);
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(json["error"]["code"], "not_ready");
    }
}
