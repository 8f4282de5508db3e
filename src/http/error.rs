//! The one error type that becomes an HTTP response. Every error body is
//! `{"error": {"code", "message", "details"}}`; 5xx bodies say little and
//! the request log says all, once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::store;
use crate::tasks::SubmissionError;
use crate::telemetry::logs::error_chain;

/// Error body of every failed request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "invalid field `a`: invalid type: string \"x\", expected a JSON number", "details": {"field": "a"}}}))]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `validation_failed`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context (the invalid field, the valid names, …), or null.
    #[schema(value_type = Object, nullable)]
    pub details: Value,
}

/// Internal detail of a 5xx, carried to the request log in the response
/// extensions so it is logged exactly once.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("unknown task_name `{name}`")]
    UnknownTaskName { name: String, valid: Vec<String> },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        detail: String,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            message: format!("invalid field `{field}`: {message}"),
            details: json!({ "field": field }),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Validation { .. } | Self::UnknownTaskName { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::Validation { .. } => "validation_failed",
            Self::UnknownTaskName { .. } => "unknown_task_name",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "idempotency_key_reused",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unavailable { .. } => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Validation { details, .. } => details.clone(),
            Self::UnknownTaskName { valid, .. } => {
                json!({ "field": "task_name", "valid_task_names": valid })
            }
            Self::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            Self::Unavailable { dependency, .. } => json!({ "dependency": dependency }),
            _ => Value::Null,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::UnknownTaskName { name, valid } => {
                format!(
                    "unknown task_name `{name}`; valid names: {}",
                    valid.join(", ")
                )
            }
            Self::Unavailable { dependency, .. } => {
                format!("{dependency} is unavailable; try again shortly")
            }
            other => other.to_string(),
        }
    }

    fn internal_detail(&self) -> Option<String> {
        match self {
            Self::Unavailable { detail, .. } | Self::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                details: self.details(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(detail) = self.internal_detail() {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        let detail = error_chain(&err);
        if err.is_unavailable() {
            Self::Unavailable {
                dependency: "postgres",
                detail,
            }
        } else {
            Self::Internal(detail)
        }
    }
}

impl From<SubmissionError> for ApiError {
    fn from(err: SubmissionError) -> Self {
        match err {
            SubmissionError::NotAnObject => Self::Validation {
                message: err.to_string(),
                details: Value::Null,
            },
            SubmissionError::MissingTaskName { ref valid } => Self::Validation {
                message: err.to_string(),
                details: json!({ "field": "task_name", "valid_task_names": valid }),
            },
            SubmissionError::UnknownTaskName { name, valid } => {
                Self::UnknownTaskName { name, valid }
            }
            SubmissionError::InvalidField(field) => Self::validation(&field.field, field.message),
        }
    }
}
