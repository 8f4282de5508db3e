//! Logs, metrics and traces.

mod errors;
mod json;
pub mod logs;
pub mod metrics;
pub mod traces;

pub use errors::error_chain;
