//! Per-request context: the request id, one log event, and HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

use super::error::InternalDetail;
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
    let method = request.method().clone();
    // Named by the method alone, per OpenTelemetry's HTTP conventions: the
    // route template is only known after routing, and is recorded then.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.name = %method,
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
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!(m::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(m::HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_millis() as u64;
    span.in_scope(|| match response.extensions().get::<InternalDetail>() {
        Some(detail) => tracing::error!(duration_ms, error = %detail.0, "request failed"),
        None => tracing::info!(duration_ms, "request finished"),
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
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
    fn plain_request_ids_are_kept_and_odd_ones_replaced() {
        assert!(is_valid_request_id("abc-123_x.y:z"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id(&"x".repeat(129)));
    }
}
