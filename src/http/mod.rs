//! The HTTP API: state, router, errors, extractors, routes and the OpenAPI
//! document. Handlers turn HTTP into calls of the services and their
//! outcomes into responses; they never touch SQL or Redis.

pub mod error;
mod extract;
mod idempotency;
mod middleware;
pub mod openapi;
mod routes;
pub mod schemas;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};

use crate::config::ApiConfig;
use crate::domain::Origin;
use crate::ops::Ops;
use crate::services::{Reads, Submissions};
use crate::tasks::Registry;
use crate::telemetry::traces;

/// What every handler can reach. Cloned for every request, so one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    submissions: Submissions,
    reads: Reads,
    openapi_json: String,
}

/// The whole API as a router, ready to serve or to call in tests.
pub fn router(
    submissions: Submissions,
    reads: Reads,
    registry: &Registry,
    ops: &Ops,
    config: &ApiConfig,
) -> Router {
    let document = openapi::document(registry, config);
    let openapi_json = serde_json::to_string_pretty(&document).unwrap_or_default();
    let state = AppState(Arc::new(AppStateInner {
        submissions,
        reads,
        openapi_json,
    }));
    let limit = config.max_body_bytes.get();
    routes::router()
        .with_state(state)
        .merge(ops.router())
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(extract::BodyLimit(limit)))
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// Where a request's submissions come from: its id and its trace.
pub(crate) fn origin(request_id: &str) -> Origin {
    Origin {
        request_id: Some(request_id.to_owned()),
        trace_context: traces::traceparent(&tracing::Span::current()),
    }
}
