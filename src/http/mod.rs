//! The HTTP API: state, router, errors, extractors, routes and the OpenAPI
//! document. Handlers talk to `Services`, never to SQL or Redis directly.

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
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::ApiConfig;
use crate::intake::Intake;
use crate::services::Services;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics;
use crate::watch::TaskWatch;

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
    pub(crate) services: Services,
    intake: Intake,
    watch: TaskWatch,
    idempotency_window: std::time::Duration,
    max_wait: std::time::Duration,
    max_batch_size: usize,
    metrics: Option<PrometheusHandle>,
    openapi_json: Arc<String>,
}

/// The whole API as a router, ready to serve or to call in tests. `watch`
/// wakes long-polling reads when their task finishes.
pub fn router(services: Services, config: &ApiConfig, watch: TaskWatch) -> Router {
    let document = openapi::document(&services.registry, config);
    let openapi_json = serde_json::to_string_pretty(&document).unwrap_or_default();
    // Half the database pool for group-committed submissions; the rest
    // stays free for reads.
    let intake = Intake::new(
        services.store.clone(),
        services.queue.clone(),
        services.store.max_connections() / 2,
    );
    let state = AppState(Arc::new(AppStateInner {
        services,
        intake,
        watch,
        idempotency_window: config.idempotency_window(),
        max_wait: std::time::Duration::from_secs(config.max_wait_seconds),
        max_batch_size: config.max_batch_size,
        metrics: metrics::install(),
        openapi_json: Arc::new(openapi_json),
    }));
    routes::router()
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(Extension(extract::BodyLimit(config.max_body_bytes)))
        .layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}

/// Serves `router` until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
