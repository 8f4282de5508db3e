//! The one error type that becomes an HTTP response. Every error body is
//! `{"error": {"code", "message", "details"}}` (see [`ErrorResponse`]);
//! 5xx bodies say little and the request log says all, once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::domain::TaskStatus;
pub use crate::error_body::{ErrorCode, ErrorDetail, ErrorResponse};
use crate::services::{ControlError, ReadError, SubmitError};
use crate::store;
use crate::tasks::SubmissionError;
use crate::telemetry::error_chain;

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
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state of what it names.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// The task's status does not allow the action; `details.status` says
    /// what it is.
    #[error("{message}")]
    StatusConflict { message: String, status: TaskStatus },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A browser request from another site (CSRF protection).
    #[error("{0}")]
    CrossSite(String),
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout { seconds: u64 },
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
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::StatusConflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::CrossSite(_) => StatusCode::FORBIDDEN,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidJson(_) => ErrorCode::InvalidJson,
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::UnknownTaskName { .. } => ErrorCode::UnknownTaskName,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict { code, .. } => *code,
            Self::StatusConflict { .. } => ErrorCode::StatusConflict,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::CrossSite(_) => ErrorCode::CrossSiteRequest,
            Self::RequestTimeout { .. } => ErrorCode::RequestTimeout,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::Unavailable { .. } => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Validation { details, .. } => details.clone(),
            Self::UnknownTaskName { valid, .. } => {
                json!({ "field": "task_name", "valid_task_names": valid })
            }
            Self::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            Self::StatusConflict { status, .. } => json!({ "status": status }),
            Self::Unavailable { dependency, .. } => json!({ "dependency": dependency }),
            Self::RateLimited { retry_after, .. } => {
                json!({ "retry_after_seconds": retry_after.as_secs_f64() })
            }
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
        let body = ErrorResponse::new(self.code(), self.message(), self.details());
        let mut response = body.into_response_with(self.status());
        let headers = response.headers_mut();
        match &self {
            // The rest of a refused or unread body is not worth reading.
            Self::PayloadTooLarge { .. } | Self::RequestTimeout { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up: a client waiting that long is admitted.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
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

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        match err {
            SubmitError::Invalid(err) => err.into(),
            SubmitError::Batch { field, message } => Self::validation(&field, message),
            SubmitError::BatchItem { index, error } => batch_item_error(index, error),
            err @ SubmitError::IdempotencyKeyReused { .. } => Self::Conflict {
                code: ErrorCode::IdempotencyKeyReused,
                message: err.to_string(),
            },
            err @ SubmitError::RateLimited { retry_after } => Self::RateLimited {
                message: err.to_string(),
                retry_after,
            },
            SubmitError::Store(err) => err.into(),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(err: ControlError) -> Self {
        match err {
            err @ (ControlError::NotFound(_) | ControlError::UnknownQueue { .. }) => {
                Self::NotFound(err.to_string())
            }
            ControlError::WrongStatus { status, .. } => Self::StatusConflict {
                message: err.to_string(),
                status,
            },
            err @ ControlError::StatusNotApplicable { .. } => {
                Self::validation("status", err.to_string())
            }
            ControlError::Store(err) => err.into(),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(err: crate::auth::AuthError) -> Self {
        match err {
            crate::auth::AuthError::Store(err) => err.into(),
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        match err {
            err @ ReadError::NotFound(_) => Self::NotFound(err.to_string()),
            ReadError::Store(err) => err.into(),
        }
    }
}

/// A refused batch item: its error, with `details.index` saying which.
fn batch_item_error(index: usize, err: SubmissionError) -> ApiError {
    let message = format!("tasks[{index}]: {err}");
    let mut details = match ApiError::from(err) {
        ApiError::UnknownTaskName { valid, .. } => {
            json!({ "field": "task_name", "valid_task_names": valid })
        }
        ApiError::Validation { details, .. } => details,
        _ => Value::Null,
    };
    if !details.is_object() {
        details = json!({});
    }
    details["index"] = json!(index);
    ApiError::Validation { message, details }
}
