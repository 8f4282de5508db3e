//! Serving a router on a listener until shutdown: the API's port and every
//! operations port go through here, with the limits a public port needs.
//!
//! axum's own `serve` sets no timer, so hyper's header-read timeout never
//! fires and a client trickling header lines holds its connection forever;
//! it also accepts connections until the process runs out of descriptors.
//! This loop bounds both: a connection must send a whole request head
//! within `header_read_timeout` (also between requests on a kept-alive
//! connection), and past `max_connections` a new connection is answered
//! with a 503 and closed at once.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;
use crate::telemetry::metrics as m;

/// What a port allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a request's head.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Limits {
    /// For ports only operators and probes reach.
    pub const OPERATIONS: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 256,
    };
}

/// The answer to a connection over the limit: complete, so the client sees
/// why, and closing, so it holds nothing.
static OVER_CAPACITY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"error":{"code":"service_unavailable","message":"too many open connections; try again shortly","details":null}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Serves `router` until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    limits: Limits,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors or a connection reset while queued:
                // keep serving the ones already open.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(m::HTTP_CONNECTIONS_REFUSED).increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        metrics::gauge!(m::HTTP_CONNECTIONS).increment(1.0);
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a timeout): nothing to add.
            let _ = connection.await;
            metrics::gauge!(m::HTTP_CONNECTIONS).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn refuse(mut stream: TcpStream) {
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&OVER_CAPACITY).await?;
        stream.shutdown().await
    })
    .await;
    drop(written);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = String::from_utf8_lossy(&OVER_CAPACITY);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(json["error"]["code"], "service_unavailable");
    }
}
