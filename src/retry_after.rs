//! `Retry-After` in seconds, read the same way by Tasker's HTTP clients:
//! the LLM task's of its provider, and the CLI's of the API (neither sends
//! an HTTP date).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The wait a `Retry-After` header asks for, when it holds a finite,
/// non-negative number of seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}
