//! Tasker: an asynchronous task execution service.
//!
//! ```text
//! cli ─▶ app ─▶ http ───┐             ┌─▶ store  (PostgreSQL: the source of truth)
//!             └▶ worker ┴─▶ services ─┼─▶ queue  (Redis: dispatch)
//!                  │                  ├─▶ cache  (Redis: terminal results)
//!                  └──────────────────┴─▶ tasks  (the task types and their registry)
//! ops serves /health, /ready and /metrics for both http and worker.
//! config, domain, error_body, keys, redis_pool, server, shutdown and
//! telemetry are used by every layer.
//! ```
//! `http` and `worker` never import each other; only `store` speaks SQL.
//! ARCHITECTURE.md at the root of the repository is the map.

pub mod app;
pub mod auth;
pub mod batching;
pub mod budget;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error_body;
pub mod http;
pub mod keys;
pub mod ops;
pub mod queue;
pub mod redis_pool;
pub mod retry_after;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod watch;
pub mod worker;
