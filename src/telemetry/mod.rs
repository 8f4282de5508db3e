//! Logs and metrics.

mod json;
pub mod logs;
pub mod metrics;
pub mod traces;
