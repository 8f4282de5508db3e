//! The `Idempotency-Key` request header: validation. What a key means is
//! the submission service's business.

use axum::http::HeaderMap;
use serde_json::json;

use super::error::ApiError;

pub const HEADER: &str = "idempotency-key";
/// Set on a `202` that returns the task of an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;

/// The key, if the request has one; a malformed key is a 422.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(|c| c.is_control()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

fn invalid() -> ApiError {
    ApiError::Validation {
        message: format!(
            "invalid header `Idempotency-Key`: 1 to {MAX_KEY_LEN} visible ASCII characters"
        ),
        details: json!({ "field": "Idempotency-Key" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_are_validated() {
        let mut headers = HeaderMap::new();
        assert!(matches!(key(&headers), Ok(None)));
        headers.insert(HEADER, HeaderValue::from_static("order-42"));
        assert_eq!(key(&headers).ok().flatten().as_deref(), Some("order-42"));
        headers.insert(HEADER, HeaderValue::from_static(""));
        assert!(key(&headers).is_err());
        let long = HeaderValue::from_str(&"k".repeat(256)).unwrap_or(HeaderValue::from_static(""));
        headers.insert(HEADER, long);
        assert!(key(&headers).is_err());
    }
}
