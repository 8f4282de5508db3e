//! Serving a router on a listener until shutdown: the API's port and every
//! operations port go through here.

use axum::Router;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

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
