//! Per-request context (the request id, one log event, HTTP metrics with
//! bounded labels) and the edge checks every request passes before any
//! handler reads it: a declared body over the limit, and browser requests
//! from other sites.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use super::error::{ApiError, InternalDetail};
use super::extract::RequestId;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// The route template that served a request, passed outward to the log.
#[derive(Clone)]
struct RouteTemplate(String);

/// Innermost layer, on matched routes only: records the route template.
pub async fn record_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteTemplate(route));
    }
    response
}

/// Outermost layer: takes or makes the request id, echoes it, logs the
/// request once and records its count and latency.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    // A client may send any token as a method: only known ones become a
    // label or a span name, so made-up methods cannot grow either.
    let method = known_method(request.method());
    let quiet = is_probe(request.uri().path());
    // Named by the method alone, per OpenTelemetry's HTTP conventions: the
    // route template is only known after routing, and is recorded then.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        key_id = tracing::field::Empty,
        otel.name = method,
        otel.kind = "server",
    );
    traces::adopt_request_parent(&span, request.headers());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    span.record("http.route", route.as_str());
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!(m::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(m::HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_millis() as u64;
    span.in_scope(|| match response.extensions().get::<InternalDetail>() {
        Some(detail) => tracing::error!(duration_ms, error = %detail.0, "request failed"),
        // Probes arrive every few seconds from every kubelet: debug only.
        None if quiet && status.is_success() => tracing::debug!(duration_ms, "request finished"),
        None => tracing::info!(duration_ms, "request finished"),
    });
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The method as a label: the standard ones by name, anything else `OTHER`.
fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// What the edge lets through; shared by every request.
#[derive(Debug, Clone)]
pub struct EdgePolicy(Arc<EdgePolicyInner>);

#[derive(Debug)]
struct EdgePolicyInner {
    max_body_bytes: usize,
    /// `scheme://host[:port]` of web pages allowed to call the API.
    allowed_origins: Vec<String>,
}

impl EdgePolicy {
    pub fn new(max_body_bytes: usize, allowed_origins: Vec<String>) -> Self {
        let allowed_origins = allowed_origins
            .into_iter()
            .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Self(Arc::new(EdgePolicyInner {
            max_body_bytes,
            allowed_origins,
        }))
    }

    /// Why a request must be refused before it is read, if it must.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.0.max_body_bytes as u64) {
            return Some(ApiError::PayloadTooLarge {
                limit: self.0.max_body_bytes,
            });
        }
        if !is_safe(method) {
            return self.cross_site(headers);
        }
        None
    }

    /// A browser sends `Sec-Fetch-Site` and `Origin` with a request one web
    /// page makes to another site; `curl` and API clients send neither.
    /// Such a request may change state only when its origin is listed (or
    /// is this very host, as for the built-in pages).
    fn cross_site(&self, headers: &HeaderMap) -> Option<ApiError> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let allowed = origin.is_some_and(|origin| self.is_allowed(origin, headers));
        let fetch_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if fetch_site.eq_ignore_ascii_case("cross-site") && !allowed {
            return Some(ApiError::CrossSite(
                "a cross-site request from a browser; list its origin in api.allowed_origins"
                    .into(),
            ));
        }
        match origin {
            Some(origin) if !allowed => Some(ApiError::CrossSite(format!(
                "origin `{}` is not allowed; list it in api.allowed_origins",
                origin.chars().take(100).collect::<String>()
            ))),
            _ => None,
        }
    }

    fn is_allowed(&self, origin: &str, headers: &HeaderMap) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.0.allowed_origins.contains(&origin) {
            return true;
        }
        // Same origin: the page was served by this host (the docs page).
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a == h)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses, before any handler reads it, a request whose declared body is
/// over the limit or that a browser sent from another site.
pub async fn edge_guard(
    State(policy): State<EdgePolicy>,
    request: Request,
    next: Next,
) -> Response {
    match policy.refusal(request.method(), request.headers()) {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}

/// Accept a client's id only if it is short and plain, so it is safe to log
/// and to store.
fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_are_one_label() {
        let odd = Method::from_bytes(b"BREW").unwrap_or(Method::GET);
        assert_eq!(known_method(&odd), "OTHER");
        assert_eq!(known_method(&Method::POST), "POST");
    }

    #[test]
    fn browser_requests_from_other_sites_are_refused() {
        let policy = EdgePolicy::new(1024, vec!["https://app.example.com/".into()]);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let post = Method::POST;
        // curl: neither header.
        assert!(policy.refusal(&post, &headers(&[])).is_none());
        assert!(
            policy
                .refusal(&post, &headers(&[("origin", "https://evil.example")]))
                .is_some()
        );
        assert!(
            policy
                .refusal(&post, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_some()
        );
        assert!(
            policy
                .refusal(
                    &post,
                    &headers(&[
                        ("origin", "https://app.example.com"),
                        ("sec-fetch-site", "cross-site")
                    ])
                )
                .is_none()
        );
        let same = headers(&[("origin", "http://tasker:8000"), ("host", "tasker:8000")]);
        assert!(policy.refusal(&post, &same).is_none());
        assert!(
            policy
                .refusal(
                    &Method::GET,
                    &headers(&[("origin", "https://evil.example")])
                )
                .is_none()
        );
        let big = headers(&[("content-length", "1025")]);
        assert!(matches!(
            policy.refusal(&Method::GET, &big),
            Some(ApiError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_replaced() {
        assert!(is_valid_request_id("abc-123_x.y:z"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id(&"x".repeat(129)));
    }
}
