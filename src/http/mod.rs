//! The HTTP API: state, router, errors, extractors, routes and the OpenAPI
//! document. Handlers turn HTTP into calls of the services and their
//! outcomes into responses; they never touch SQL or Redis.

mod auth;
pub mod error;
mod extract;
mod idempotency;
mod middleware;
pub mod openapi;
mod routes;
pub mod schemas;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authenticator;
use crate::config::ApiConfig;
use crate::domain::Origin;
use crate::ops::Ops;
use crate::services::{ApiKeys, Control, Reads, Submissions};
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

/// The services the API's handlers call.
pub struct Handlers {
    pub submissions: Submissions,
    pub reads: Reads,
    pub api_keys: ApiKeys,
    pub control: Control,
}

pub struct AppStateInner {
    submissions: Submissions,
    reads: Reads,
    api_keys: ApiKeys,
    control: Control,
    openapi_json: String,
}

/// The public API as a router, ready to serve or to call in tests. Its
/// `/health` and `/ready` come from `ops`; `/metrics` is only on the
/// operations port.
pub fn router(
    handlers: Handlers,
    authenticator: Authenticator,
    registry: &Registry,
    ops: &Ops,
    config: &ApiConfig,
) -> Router {
    let document = openapi::document(registry, config);
    crate::telemetry::metrics::register_http_series(openapi::successful_operations(&document));
    let openapi_json = serde_json::to_string_pretty(&document).unwrap_or_default();
    let state = AppState(Arc::new(AppStateInner {
        submissions: handlers.submissions,
        reads: handlers.reads,
        api_keys: handlers.api_keys,
        control: handlers.control,
        openapi_json,
    }));
    let limit = config.max_body_bytes.get();
    let policy = middleware::EdgePolicy::new(limit, config.allowed_origins.clone());
    let tasks = routes::tasks().route_layer(axum::middleware::from_fn_with_state(
        authenticator,
        auth::authenticate,
    ));
    let router = tasks
        .merge(routes::public())
        .with_state(state)
        .merge(ops.probes())
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(extract::BodyLimits {
            max_bytes: limit,
            read_timeout: config.body_read_timeout(),
        }))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            middleware::edge_guard,
        ));
    with_cors(router, &config.allowed_origins)
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// Pages of the listed origins may call the API from a browser (and read
/// its answers); with none listed, no CORS header is ever sent.
fn with_cors(router: Router, origins: &[String]) -> Router {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return router;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(idempotency::HEADER),
            HeaderName::from_static(middleware::REQUEST_ID_HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static(middleware::REQUEST_ID_HEADER),
            HeaderName::from_static(idempotency::REPLAYED_HEADER),
            routes::CACHE_HEADER,
        ]);
    router.layer(cors)
}

/// Where a request's submissions come from: its id and its trace (the
/// tenant and rate come from its key, see `auth::CallerOf::origin`).
fn origin(request_id: &str) -> Origin {
    Origin {
        request_id: Some(request_id.to_owned()),
        trace_context: traces::traceparent(&tracing::Span::current()),
        ..Origin::default()
    }
}
