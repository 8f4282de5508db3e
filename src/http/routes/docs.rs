//! The interactive API reference: a small HTML page and the Scalar script it
//! loads, both served by the binary so `/docs` works with no internet access.
//! Neither is part of the OpenAPI document: they are pages for people, not API.

use std::io::Read;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{Html, IntoResponse, Response};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::http::error::ApiError;

/// `dist/browser/standalone.js` of `@scalar/api-reference`, gzipped; where it
/// comes from and how to update it: `assets/scalar/README.md`.
static SCALAR_JS_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/scalar/standalone.js.gz"
));

/// Route of the script. The page links it relatively, with a hash of the
/// embedded file, so it works behind a path prefix and may be cached forever.
pub(crate) const SCRIPT_ROUTE: &str = "/docs/scalar.js";

/// The script never changes under a given URL (see [`script_url`]).
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

const PAGE_TEMPLATE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Tasker API</title>
  <link rel="icon" href="data:,">
</head>
<body>
  <div id="tasker-api-reference"></div>
  <script src="$script_url"></script>
  <script src="docs/init.js"></script>
</body>
</html>
"##;

/// Starts Scalar on the page. A file of its own, not an inline script, so
/// the page's Content-Security-Policy can refuse every inline script.
const INIT_JS: &str = r##"Scalar.createApiReference("#tasker-api-reference", {
  url: "openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  // The token field is shown at once: paste an API key, then "Test Request".
  authentication: { preferredSecurityScheme: "bearer" },
});
"##;

/// Route of [`INIT_JS`].
pub(crate) const INIT_ROUTE: &str = "/docs/init.js";

/// What the docs page may load and run: its own scripts, the document,
/// Scalar's inline styles; never framed by another site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The headers of every docs response (`nosniff` is on every response).
const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

static PAGE: LazyLock<String> =
    LazyLock::new(|| PAGE_TEMPLATE.replace("$script_url", &script_url()));

/// The uncompressed script, made on first use for the rare client that
/// cannot take gzip.
static SCALAR_JS: OnceCell<Bytes> = OnceCell::const_new();

/// `docs/scalar.js?v=<hash>`: relative to `/docs`, so the page also works
/// when the service is mounted under a path prefix.
fn script_url() -> String {
    let digest = Sha256::digest(SCALAR_JS_GZ);
    format!(
        "{}?v={}",
        SCRIPT_ROUTE.trim_start_matches('/'),
        hex::encode(&digest[..8])
    )
}

/// Interactive API documentation (Scalar), reading `/openapi.json`.
pub(crate) async fn docs() -> Response {
    (PAGE_HEADERS, Html(PAGE.as_str())).into_response()
}

/// `/docs/` is `/docs`: a relative redirect, so it also works under a
/// path prefix.
pub(crate) async fn docs_slash() -> Response {
    (
        axum::http::StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "../docs")],
    )
        .into_response()
}

/// The script that starts Scalar.
pub(crate) async fn init_js() -> Response {
    (
        PAGE_HEADERS,
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        INIT_JS,
    )
        .into_response()
}

/// The Scalar script, gzipped when the client accepts it.
pub(crate) async fn scalar_js(headers: HeaderMap) -> Response {
    const HEADERS: [(HeaderName, &str); 3] = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, CACHE_FOREVER),
        (header::VARY, "accept-encoding"),
    ];
    if accepts_gzip(&headers) {
        return (
            PAGE_HEADERS,
            HEADERS,
            [(header::CONTENT_ENCODING, "gzip")],
            Bytes::from_static(SCALAR_JS_GZ),
        )
            .into_response();
    }
    let plain = SCALAR_JS
        .get_or_try_init(|| async {
            tokio::task::spawn_blocking(|| gunzip(SCALAR_JS_GZ))
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| err.to_string())
        })
        .await;
    match plain {
        Ok(script) => (PAGE_HEADERS, HEADERS, script.clone()).into_response(),
        Err(err) => ApiError::Internal(format!("cannot decompress the Scalar script: {err}"))
            .into_response(),
    }
}

fn gunzip(compressed: &[u8]) -> std::io::Result<Bytes> {
    let mut plain = Vec::new();
    GzDecoder::new(compressed).read_to_end(&mut plain)?;
    Ok(Bytes::from(plain))
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`), else `*`,
/// with a quality above zero. No header means no gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let quality = parts
            .find_map(|param| {
                let (name, value) = param.split_once('=')?;
                name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
            })
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        let acceptable = quality > 0.0;
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(acceptable);
        } else if coding == "*" {
            any = Some(acceptable);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepts(values: &[&'static str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_only_when_the_client_accepts_it() {
        assert!(accepts(&["gzip, deflate, br, zstd"]));
        assert!(accepts(&["br;q=1.0, GZip;q=0.5"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["br", "gzip"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(
            !accepts(&["gzip;q=0, *"]),
            "an explicit refusal wins over *"
        );
        assert!(!accepts(&["gzip;q=nonsense"]));
    }

    #[test]
    fn the_embedded_script_is_scalar() {
        let script = gunzip(SCALAR_JS_GZ).unwrap_or_default();
        assert!(script.len() > 1_000_000, "{} bytes", script.len());
        let text = String::from_utf8_lossy(&script);
        assert!(text.contains("createApiReference"));
    }

    #[test]
    fn the_page_links_the_script_relatively_with_a_version() {
        let page = PAGE.as_str();
        let url = script_url();
        assert!(url.starts_with("docs/scalar.js?v="), "{url}");
        assert_eq!(url.len(), "docs/scalar.js?v=".len() + 16);
        assert!(page.contains(&format!(r#"<script src="{url}">"#)), "{page}");
        assert!(INIT_JS.contains(r#"url: "openapi.json""#));
        assert!(
            page.contains(r#"<script src="docs/init.js">"#) && !page.contains("<script>"),
            "no inline script: {page}"
        );
        assert!(
            !page.contains("https://"),
            "the page loads nothing from elsewhere"
        );
    }
}
