//! The HTTP API against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod client;
mod console;
mod contract;
mod control;
mod errors;
mod hostile;
mod idempotency;
mod layout;
mod operations;
mod outages;
mod readme;
mod reads;
mod telemetry;
mod tenants;
