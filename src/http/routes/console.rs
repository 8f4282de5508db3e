//! The operator console: one HTML page, one script and one stylesheet,
//! embedded in the binary so `/console` works with no internet access. The
//! page is static and needs no token; everything it shows comes from the
//! API, which checks the token the page sends. Not part of the OpenAPI
//! document: a page for people, not API.

use std::sync::LazyLock;

use axum::http::{HeaderName, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

const PAGE_TEMPLATE: &str = include_str!("../../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../../assets/console/console.js");
const STYLESHEET: &str = include_str!("../../../assets/console/console.css");

/// Route of the script.
pub(crate) const SCRIPT_ROUTE: &str = "/console/console.js";
/// Route of the stylesheet.
pub(crate) const STYLE_ROUTE: &str = "/console/console.css";

/// What the console may load and run: its own script and stylesheet, and
/// calls to this API; no inline script or style, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers of every console response (`nosniff` is on every response).
const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// The page is small and names its assets by hash: always revalidated, so
/// a new binary's console is seen at once.
const CACHE_PAGE: &str = "no-cache";
/// An asset never changes under its versioned URL.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

static PAGE: LazyLock<String> = LazyLock::new(|| {
    PAGE_TEMPLATE
        .replace("$script_url", &versioned(SCRIPT_ROUTE, SCRIPT))
        .replace("$style_url", &versioned(STYLE_ROUTE, STYLESHEET))
});

/// `console/<file>?v=<hash>`: relative to `/console`, so the page also
/// works when the service is mounted under a path prefix.
fn versioned(route: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!(
        "{}?v={}",
        route.trim_start_matches('/'),
        hex::encode(&digest[..8])
    )
}

/// The console page.
pub(crate) async fn console() -> Response {
    (
        PAGE_HEADERS,
        [(header::CACHE_CONTROL, CACHE_PAGE)],
        Html(PAGE.as_str()),
    )
        .into_response()
}

/// `/console/` is `/console`: a relative redirect, so it also works under
/// a path prefix.
pub(crate) async fn console_slash() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "../console")],
    )
        .into_response()
}

/// The console's script.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The console's stylesheet.
pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        PAGE_HEADERS,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_FOREVER),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_its_assets_relatively_with_a_version() {
        let page = PAGE.as_str();
        for (route, content) in [(SCRIPT_ROUTE, SCRIPT), (STYLE_ROUTE, STYLESHEET)] {
            let url = versioned(route, content);
            assert!(url.starts_with("console/console."), "{url}");
            assert!(page.contains(&format!("\"{url}\"")), "{url} in {page}");
        }
        assert!(!page.contains('$'), "every placeholder is filled: {page}");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere() {
        let page = PAGE.as_str();
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<style"), "{page}");
        assert!(!page.contains(" style="), "{page}");
        for text in [page, SCRIPT, STYLESHEET] {
            assert!(!text.contains("https://") && !text.contains("http://"));
        }
    }

    #[test]
    fn the_script_writes_no_markup_from_data() {
        // Everything from the API is set as text; markup is built with
        // createElement only.
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
        assert!(!SCRIPT.contains("eval("));
    }
}
