//! The operator console at `/console`: static files served by the binary,
//! readable without a token, with a strict policy, and no part of the API's
//! document.

use reqwest::Response;
use serde_json::Value;

use crate::support::TestApp;

async fn app_with_auth() -> TestApp {
    TestApp::spawn_with(|c| c.auth.enabled = true, false).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `src` or `href` of the page's first reference to `prefix…`.
fn linked(html: &str, prefix: &str) -> String {
    let start = html
        .find(&format!("\"{prefix}"))
        .unwrap_or_else(|| panic!("the page links {prefix}: {html}"));
    let rest = &html[start + 1..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn assert_strict_policy(response: &Response) {
    let csp = header(response, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "x-frame-options"), "DENY");
}

#[tokio::test]
async fn the_console_and_its_assets_are_served_without_a_token_when_auth_is_on() {
    let app = app_with_auth().await;
    assert_eq!(app.get("/tasks").await.status(), 401, "the API needs one");

    let page = app.get("/console").await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert_strict_policy(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Tasker console</title>"), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // Relative to /console, as a browser resolves them.
    for (prefix, content_type, marker) in [
        ("console/console.js?v=", "text/javascript", "sessionStorage"),
        ("console/console.css?v=", "text/css", ":focus-visible"),
    ] {
        let url = linked(&html, prefix);
        let asset = app.get(&format!("/{url}")).await;
        assert_eq!(asset.status(), 200, "{url}");
        assert!(header(&asset, "content-type").starts_with(content_type));
        assert!(header(&asset, "cache-control").contains("immutable"));
        assert_strict_policy(&asset);
        assert!(asset.text().await.unwrap().contains(marker), "{url}");
    }
}

#[tokio::test]
async fn the_console_slash_redirects_to_the_page() {
    let app = TestApp::spawn_api_only().await;
    let slash = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "../console");
    assert_eq!(app.get("/console/missing.js").await.status(), 404);
}

#[tokio::test]
async fn the_console_is_not_part_of_the_api_document() {
    let app = TestApp::spawn_api_only().await;
    let document: Value = app.get_json("/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.contains_key("/tasks"));
    assert!(
        paths.keys().all(|path| !path.starts_with("/console")),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
}
