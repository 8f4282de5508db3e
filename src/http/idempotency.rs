//! The `Idempotency-Key` request header: validation and the fingerprint that
//! tells a replay of a request from a different request under the same key.

use axum::http::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

/// sha256 of the normalised request. serde_json maps keep their keys sorted,
/// so field order and defaults the client left out do not change it.
pub fn fingerprint(task_name: &str, parameters: &Value) -> String {
    let canonical = json!({ "task_name": task_name, "parameters": parameters });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_fingerprint_ignores_field_order() {
        let one: Value = serde_json::from_str(r#"{"a": 1, "b": 2}"#).unwrap_or_default();
        let two: Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap_or_default();
        assert_eq!(fingerprint("sum", &one), fingerprint("sum", &two));
        assert_ne!(
            fingerprint("sum", &one),
            fingerprint("sum", &json!({"a": 1, "b": 3}))
        );
        assert_ne!(fingerprint("sum", &one), fingerprint("other", &one));
    }

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
