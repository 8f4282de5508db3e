//! Extractors whose rejections are our JSON errors, never axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;

/// A JSON request body as a [`Value`]; validation into types comes after.
/// The body is parsed as JSON whatever its `Content-Type` says, so a plain
/// `curl -d '{…}'` (sent as form data) works too.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::InvalidJson(rejection.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::InvalidJson("the request body is empty".into()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::InvalidJson(err.to_string()))
    }
}

/// The configured body limit, put in request extensions so the rejection can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Parses a task id given by a client, naming the parameter on failure.
pub fn parse_task_uuid(raw: &str, parameter: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|err| ApiError::validation(parameter, format!("not a valid UUID: {err}")))
}

/// The request id the request-context middleware chose for this request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(Uuid::new_v4().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_uuid_names_the_parameter() {
        let err = parse_task_uuid("not-a-uuid", "task_uuid").err();
        assert!(
            matches!(err, Some(ApiError::Validation { message, .. }) if message.contains("task_uuid"))
        );
        assert!(parse_task_uuid(&Uuid::nil().to_string(), "task_uuid").is_ok());
    }
}
