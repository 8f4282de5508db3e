//! Workers running tasks against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod control;
mod delivery;
mod fairness;
mod flows;
mod leases;
mod llm;
mod migrations;
mod plans;
