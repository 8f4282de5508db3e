//! What `tasker task` and `tasker queue` share: where the API is, the
//! token, the output format, the exit codes, and a small runtime of their
//! own. They need no configuration file, PostgreSQL or Redis.

use std::future::Future;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::client::{self, Client, status_of};
use super::output::Format;
use crate::domain::TaskStatus;

/// How to reach the API and what to print; valid after `task` or `queue`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The Tasker API.
    #[arg(
        long,
        global = true,
        env = "TASKER_URL",
        default_value = "http://localhost:8000",
        value_name = "URL"
    )]
    pub url: String,
    /// API key token, sent as `Authorization: Bearer` (needed when the
    /// server has `auth.enabled`).
    #[arg(
        long,
        global = true,
        env = "TASKER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// `json`: the API's answer; `table`: aligned columns, for people.
    #[arg(long, global = true, value_enum, default_value_t = Format::Json)]
    pub output: Format,
}

/// How a command that ran to its end went, as the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (with `--wait`: every task completed).
    Success,
    /// 1: with `--wait` a task failed or was cancelled; or lines of
    /// `--file` were refused.
    TaskFailed,
    /// 3: `--wait SECS` ran out before the task finished.
    Unfinished,
}

impl Exit {
    /// A task's exit code after waiting: 0 completed, 1 failed or
    /// cancelled, 3 not finished.
    pub fn of_task(task: &Value) -> Self {
        match status_of(task) {
            Some(TaskStatus::Completed) => Self::Success,
            Some(TaskStatus::Failed | TaskStatus::Cancelled) => Self::TaskFailed,
            _ => Self::Unfinished,
        }
    }

    /// The worse of two: a failure outweighs an unfinished task, which
    /// outweighs success.
    pub fn worst(self, other: Self) -> Self {
        let rank = |exit| match exit {
            Self::Success => 0,
            Self::Unfinished => 1,
            Self::TaskFailed => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Why a command stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The API refused, or could not be reached (exit code 1).
    #[error(transparent)]
    Client(#[from] client::Error),
    /// The input cannot be used: JSON that does not parse, a file that
    /// cannot be read (exit code 2, as for a bad flag).
    #[error("{0}")]
    Usage(String),
}

/// Runs `command` with a client of the API `args` name, and turns how it
/// ended into the process's exit code, printing any error on stderr.
pub fn run<F, Fut>(args: &ClientArgs, command: F) -> ExitCode
where
    F: FnOnce(Client, Format) -> Fut,
    Fut: Future<Output = Result<Exit, Failure>>,
{
    let ended = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::Usage(format!("cannot start the async runtime: {err}")))
        .and_then(|runtime| {
            let client = Client::new(&args.url, args.token.clone())
                .map_err(|err| Failure::Usage(err.to_string()))?;
            runtime.block_on(command(client, args.output))
        });
    match ended {
        Ok(Exit::Success) => ExitCode::SUCCESS,
        Ok(Exit::TaskFailed) => ExitCode::from(1),
        Ok(Exit::Unfinished) => ExitCode::from(3),
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Client(err)) => {
            eprintln!("error: {err}");
            if err.code() == Some("unauthorized") && args.token.is_none() {
                eprintln!("hint: give an API key with --token or TASKER_TOKEN");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_exit_code_follows_the_status() {
        let task = |status: &str| json!({ "status": status });
        assert_eq!(Exit::of_task(&task("completed")), Exit::Success);
        assert_eq!(Exit::of_task(&task("failed")), Exit::TaskFailed);
        assert_eq!(Exit::of_task(&task("cancelled")), Exit::TaskFailed);
        assert_eq!(Exit::of_task(&task("running")), Exit::Unfinished);
    }
}
