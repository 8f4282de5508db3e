#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn endpoints_keep_a_base_path_and_encode_segments() {
    let client = Client::new("http://example.test/tasker/", None).unwrap();
    let url = client.endpoint(&["queues", "a b/c", "pause"]).unwrap();
    assert_eq!(
        url.as_str(),
        "http://example.test/tasker/queues/a%20b%2Fc/pause"
    );
    let client = Client::new("http://example.test", None).unwrap();
    assert_eq!(
        client.endpoint(&["tasks"]).unwrap().as_str(),
        "http://example.test/tasks"
    );
}

#[test]
fn only_http_urls_are_accepted() {
    for url in ["localhost:8000", "ftp://example.test", "not a url"] {
        assert!(
            matches!(Client::new(url, None), Err(Error::BadUrl { .. })),
            "{url}"
        );
    }
}

#[test]
fn error_bodies_become_codes_and_other_bodies_name_the_status() {
    let body = r#"{"error":{"code":"not_found","message":"no task","details":null}}"#;
    let err = api_error(StatusCode::NOT_FOUND, body, None);
    assert_eq!(err.to_string(), "not_found: no task");
    let err = api_error(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>", None);
    assert_eq!(err.code(), Some("http_502"));
    assert!(err.to_string().contains("bad gateway"), "{err}");
}
