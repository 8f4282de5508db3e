//! `tasker task submit | get | list | cancel | retry`: tasks over the HTTP
//! API (see [`remote`](super::remote) for the flags they share).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{Client, TaskFilter};
use super::output::{self, Format};
use super::remote::{Exit, Failure};
use super::submit_file;
use crate::domain::TaskStatus;

#[derive(Debug, Clone, Subcommand)]
pub enum TaskCommand {
    /// Submit a task and print its id, or with --wait the finished task.
    Submit(SubmitArgs),
    /// Print a task: status, output, error, attempts, timestamps.
    Get {
        /// The task's id.
        id: Uuid,
        /// Wait for it to finish (at most SECS when given); then exit 1 if
        /// it failed or was cancelled, 3 if it has not finished.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        wait: Option<Option<Duration>>,
    },
    /// List tasks, newest first, following pages up to --limit.
    List(ListArgs),
    /// Cancel a pending or running task and print it.
    Cancel {
        /// The task's id.
        id: Uuid,
    },
    /// Retry a failed or cancelled task (fresh attempt budget) and print it.
    Retry {
        /// The task's id.
        id: Uuid,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// The body of POST /run-task, e.g. '{"task_name": "sum", "a": 1, "b": 2}';
    /// `-` reads it from stdin.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    json: Option<String>,
    /// A JSON Lines file (`-` for stdin), one body per line, submitted in
    /// batches through POST /run-tasks; prints one line per accepted task.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Makes submitting again safe: the same key and body give the same
    /// task. With --file each batch sends KEY-<first line>-<last line>-<count>.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Wait for the task(s) to finish (at most SECS when given) and print
    /// them; exit 1 if one failed or was cancelled, 3 if one has not finished.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    wait: Option<Option<Duration>>,
    /// Tasks per POST /run-tasks with --file (halved if the server's
    /// `api.max_batch_size` or body limit is smaller).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only tasks in this status: pending, running, completed, failed, cancelled.
    #[arg(long)]
    status: Option<TaskStatus>,
    /// Only tasks of this type.
    #[arg(long, value_name = "NAME")]
    task_name: Option<String>,
    /// Only tasks of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only this tenant's tasks (admin keys).
    #[arg(long)]
    tenant: Option<String>,
    /// How many tasks at most (pages of up to 200 are followed).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Start after this `next_cursor` of an earlier listing.
    #[arg(long)]
    cursor: Option<String>,
}

/// Runs a `tasker task` command.
pub async fn run(command: TaskCommand, client: Client, format: Format) -> Result<Exit, Failure> {
    match command {
        TaskCommand::Submit(args) => submit(&client, args, format).await,
        TaskCommand::Get { id, wait } => {
            let task = match wait {
                None => client.task(id, Duration::ZERO).await?,
                Some(limit) => client.wait_for(id, limit).await?,
            };
            show_task(&task, format);
            Ok(wait.map_or(Exit::Success, |_| Exit::of_task(&task)))
        }
        TaskCommand::List(args) => list(&client, args, format).await,
        TaskCommand::Cancel { id } => {
            show_task(&client.cancel(id).await?, format);
            Ok(Exit::Success)
        }
        TaskCommand::Retry { id } => {
            show_task(&client.retry(id).await?, format);
            Ok(Exit::Success)
        }
    }
}

async fn submit(client: &Client, args: SubmitArgs, format: Format) -> Result<Exit, Failure> {
    let key = args.idempotency_key.as_deref();
    if let Some(path) = &args.file {
        let batch = submit_file::Options {
            idempotency_key: key,
            batch_size: usize::from(args.batch_size),
            wait: args.wait,
            format,
        };
        return submit_file::run(client, path, batch).await;
    }
    let body = read_body(args.json.as_deref().unwrap_or("-"))?;
    let id = client.submit(&body, key).await?;
    let Some(limit) = args.wait else {
        match format {
            Format::Json => output::print(&output::json(&json!({ "task_uuid": id }))),
            Format::Table => output::print(&id.to_string()),
        }
        return Ok(Exit::Success);
    };
    let task = client.wait_for(id, limit).await.inspect_err(|_| {
        eprintln!("note: task {id} was accepted; `tasker task get {id}` reads it");
    })?;
    show_task(&task, format);
    Ok(Exit::of_task(&task))
}

async fn list(client: &Client, args: ListArgs, format: Format) -> Result<Exit, Failure> {
    let filter = TaskFilter {
        status: args.status,
        task_name: args.task_name,
        queue: args.queue,
        tenant: args.tenant,
    };
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let page = client.list(&filter, limit, args.cursor).await?;
    match format {
        Format::Json => output::print(&output::json(&json!({
            "tasks": page.tasks,
            "next_cursor": page.next_cursor,
        }))),
        Format::Table => {
            output::print(&output::tasks_table(&page.tasks));
            if let Some(cursor) = page.next_cursor {
                eprintln!("more: --cursor {cursor}");
            }
        }
    }
    Ok(Exit::Success)
}

fn show_task(task: &Value, format: Format) {
    match format {
        Format::Json => output::print(&output::json(task)),
        Format::Table => output::print(&output::task_details(task)),
    }
}

/// The JSON argument, or stdin for `-`: one JSON object.
fn read_body(argument: &str) -> Result<Value, Failure> {
    let text = if argument == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| Failure::Usage(format!("cannot read the task from stdin: {err}")))?;
        text
    } else {
        argument.to_owned()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(body @ Value::Object(_)) => Ok(body),
        Ok(_) => Err(Failure::Usage(
            "the task must be a JSON object, e.g. '{\"task_name\": \"sum\", \"a\": 1, \"b\": 2}'"
                .into(),
        )),
        Err(err) => Err(Failure::Usage(format!("the task is not valid JSON: {err}"))),
    }
}

/// Seconds, whole or fractional, 0 or more.
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| Duration::from_secs_f64(seconds.min(f64::from(u32::MAX))))
        .ok_or_else(|| {
            "expected a number of seconds (give the task before --wait, or write --wait=SECS)"
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_seconds() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "soon", "NaN", "{\"task_name\": \"sum\"}"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_json_objects_are_tasks() {
        assert!(read_body(r#"{"task_name": "sum", "a": 1, "b": 2}"#).is_ok());
        assert!(matches!(read_body("[1, 2]"), Err(Failure::Usage(_))));
        assert!(matches!(read_body("{nope"), Err(Failure::Usage(_))));
    }
}
