use super::reply::ContentBlock;
use super::*;
use reqwest::header::{HeaderMap, RETRY_AFTER};

#[test]
fn server_errors_are_retryable() {
    for status in [500, 502, 503, 529] {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
        let err = status_error(status, "{}", None);
        assert!(matches!(err, TaskError::Retryable { .. }), "{status}");
    }
}

#[test]
fn other_client_errors_are_fatal_and_name_only_the_kind() {
    let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens too large for key sk-1"}}"#;
    let err = status_error(StatusCode::BAD_REQUEST, body, None);
    assert!(
        matches!(&err, TaskError::Fatal(m) if m.contains("invalid_request_error") && !m.contains("sk-1")),
        "{err:?}"
    );
    let err = status_error(
        StatusCode::UNAUTHORIZED,
        "<html>internal host 10.1.2.3</html>",
        None,
    );
    assert!(matches!(&err, TaskError::Fatal(m) if m.contains("401") && !m.contains("10.1.2.3")));
}

#[test]
fn max_tokens_accepts_whole_numbers_in_either_form() {
    let parse = |v: Value| serde_json::from_value::<QueryLlmParams>(v).map(|p| p.max_tokens);
    assert_eq!(
        parse(json!({"prompt": "p", "max_tokens": 64})).ok(),
        Some(Some(64))
    );
    assert_eq!(
        parse(json!({"prompt": "p", "max_tokens": 64.0})).ok(),
        Some(Some(64))
    );
    assert_eq!(parse(json!({"prompt": "p"})).ok(), Some(None));
    assert!(parse(json!({"prompt": "p", "max_tokens": 64.5})).is_err());
    assert!(parse(json!({"prompt": "p", "max_tokens": -1})).is_err());
    assert!(parse(json!({"prompt": "p", "max_tokens": "64"})).is_err());
}

#[test]
fn spent_limits_say_how_long_to_wait() {
    let mut headers = HeaderMap::new();
    assert_eq!(limits_spent(&headers), None);
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc3339();
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        reqwest::header::HeaderValue::from_static("0"),
    );
    headers.insert(
        "anthropic-ratelimit-requests-reset",
        reqwest::header::HeaderValue::from_str(&reset)
            .unwrap_or(reqwest::header::HeaderValue::from_static("x")),
    );
    let wait = limits_spent(&headers).unwrap_or_default();
    assert!(
        wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        reqwest::header::HeaderValue::from_static("7"),
    );
    assert_eq!(limits_spent(&headers), None);
    assert_eq!(estimate_tokens("abcdefgh", 100), 102);
}

#[test]
fn retry_after_seconds_are_read() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, reqwest::header::HeaderValue::from_static("2"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    headers.insert(
        RETRY_AFTER,
        reqwest::header::HeaderValue::from_static("soon"),
    );
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn text_blocks_are_joined_and_usage_kept() {
    let reply = MessagesResponse {
        model: "m".into(),
        content: vec![
            ContentBlock {
                kind: "text".into(),
                text: Some("Bon".into()),
            },
            ContentBlock {
                kind: "tool_use".into(),
                text: None,
            },
            ContentBlock {
                kind: "text".into(),
                text: Some("jour".into()),
            },
        ],
        stop_reason: Some("end_turn".into()),
        usage: Usage {
            input_tokens: 3,
            output_tokens: 2,
        },
    };
    let out = output(reply);
    assert_eq!(out.text, "Bonjour");
    assert_eq!(out.usage.output_tokens, 2);
}
