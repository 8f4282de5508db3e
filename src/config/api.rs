//! `[api]`: the HTTP API's addresses and the limits its clients meet.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// Most `api.max_connections`: about the most descriptors a Linux process
/// may open (`fs.nr_open`), far below what the connection gate can count.
pub(super) const MAX_CONNECTIONS: usize = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The public port: the task API, `/docs`, `/health`, `/ready`.
    pub listen: SocketAddr,
    /// The operations port: `/health`, `/ready` and `/metrics`, which the
    /// public port does not serve.
    pub ops_listen: SocketAddr,
    /// Larger request bodies are refused with 413 (at least 1024).
    pub max_body_bytes: NonZeroUsize,
    /// Time a client has to send a request's head (also between requests
    /// on a kept-alive connection).
    pub header_read_timeout_seconds: NonZeroU64,
    /// Time a client has to send a request's whole body.
    pub body_read_timeout_seconds: NonZeroU64,
    /// Connections open at once (at most 1,000,000); more are answered
    /// 503 and closed.
    pub max_connections: NonZeroUsize,
    /// Reads waiting (`wait=`) at once in this process (at least 1); more
    /// are answered at once with the task's current state. To turn waiting
    /// off, set `max_wait_seconds = 0` instead.
    pub max_waiters: usize,
    /// Web origins (`https://app.example.com`) whose pages may call the
    /// API from a browser; other browsers' cross-site requests get 403.
    pub allowed_origins: Vec<String>,
    /// How long an `Idempotency-Key` keeps mapping to its task.
    pub idempotency_window_seconds: NonZeroU64,
    /// Upper bound on `wait` of a long-polling read; 0 turns waiting off.
    pub max_wait_seconds: u64,
    /// Most tasks one `POST /run-tasks` may carry.
    pub max_batch_size: NonZeroUsize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            ops_listen: SocketAddr::from(([0, 0, 0, 0], 8002)),
            max_body_bytes: super::nonzero_usize(1024 * 1024),
            header_read_timeout_seconds: super::nonzero_u64(10),
            body_read_timeout_seconds: super::nonzero_u64(30),
            max_connections: super::nonzero_usize(4096),
            max_waiters: 2048,
            allowed_origins: Vec::new(),
            idempotency_window_seconds: super::nonzero_u64(24 * 3600),
            max_wait_seconds: 30,
            max_batch_size: super::nonzero_usize(100),
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            "api.max_body_bytes",
            self.max_body_bytes.get() >= 1024,
            "must be at least 1024",
        )?;
        check(
            "api.max_connections",
            self.max_connections.get() <= MAX_CONNECTIONS,
            &format!("must be at most {MAX_CONNECTIONS}"),
        )?;
        // 0 would refuse every wait while counting each read as refused;
        // `max_wait_seconds = 0` is how waiting is turned off.
        check(
            "api.max_waiters",
            self.max_waiters >= 1,
            "must be at least 1 (to turn waiting off, set api.max_wait_seconds = 0)",
        )?;
        check(
            "api.ops_listen",
            self.ops_listen != self.listen || self.listen.port() == 0,
            "must differ from api.listen",
        )?;
        for origin in &self.allowed_origins {
            let valid = reqwest::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.has_host()
                    && url.path() == "/"
                    && url.query().is_none()
            });
            check(
                "api.allowed_origins",
                valid,
                &format!("`{origin}` is not an origin such as https://app.example.com"),
            )?;
        }
        Ok(())
    }

    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_seconds.get())
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_seconds)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds.get())
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_seconds.get())
    }
}
