//! Readiness: can this process reach PostgreSQL and Redis right now?

use serde::Serialize;

use crate::queue::Queue;
use crate::store::Store;
use crate::telemetry::logs::error_chain;

/// State of one dependency: `ok`, or what went wrong.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DependencyState {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Why it is unavailable; absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DependencyState {
    fn from_result<E: std::error::Error + 'static>(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self {
                status: "ok",
                error: None,
            },
            Err(err) => Self {
                status: "unavailable",
                error: Some(error_chain(&err)),
            },
        }
    }

    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Both dependencies, checked at once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub postgres: DependencyState,
    pub redis: DependencyState,
}

impl Readiness {
    pub async fn check(store: &Store, queue: &Queue) -> Self {
        let (postgres, redis) = tokio::join!(store.ping(), queue.ping());
        Self {
            postgres: DependencyState::from_result(postgres),
            redis: DependencyState::from_result(redis),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.postgres.is_ok() && self.redis.is_ok()
    }

    /// Names of the dependencies that are down, for messages.
    pub fn down(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if !self.postgres.is_ok() {
            down.push("postgres");
        }
        if !self.redis.is_ok() {
            down.push("redis");
        }
        down
    }
}
