//! Tasker: an asynchronous task execution service.
//!
//! ```text
//! cli ─▶ http ───┐            ┌─▶ store  (PostgreSQL: the source of truth)
//!      └▶ worker ┴─▶ services ┼─▶ queue  (Redis: dispatch)
//!                             ├─▶ cache  (Redis: terminal results)
//!                             └─▶ tasks  (the task types and their registry)
//! config, domain, shutdown and telemetry are used by every layer.
//! ```
//! `http` and `worker` never import each other; only `store` speaks SQL.

pub mod batching;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod health;
pub mod http;
pub mod intake;
pub mod queue;
pub mod redis_pool;
pub mod services;
pub mod shutdown;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod watch;
pub mod worker;
