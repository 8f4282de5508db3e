//! `tasker task submit --file`: many tasks from a JSON Lines file, in
//! batches through `POST /run-tasks`. A line the API refuses is left out
//! of its batch and reported by number; the others are still submitted.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{self, Client};
use super::output::{self, Format, Progress};
use super::remote::{Exit, Failure};

/// Long-polls at once while waiting for many tasks.
const CONCURRENT_WAITS: usize = 8;

/// How to submit the file.
pub struct Options<'a> {
    pub idempotency_key: Option<&'a str>,
    pub batch_size: usize,
    /// `--wait`: `Some(None)` as long as it takes.
    pub wait: Option<Option<Duration>>,
    pub format: Format,
}

/// A line of the file and its task.
type Line = (usize, Value);
/// A line number and why it was refused.
type Refusal = (usize, String);

/// Submits every line of `path` (stdin for `-`); with `--wait`, waits for
/// them all. Prints one line per accepted task, in the file's order.
pub async fn run(client: &Client, path: &Path, options: Options<'_>) -> Result<Exit, Failure> {
    let text = read(path)?;
    let (lines, mut refused) = parse(&text);
    let total = lines.len() + refused.len();
    if total == 0 {
        return Err(Failure::Usage(format!("no tasks in {}", path.display())));
    }
    let streaming = options.wait.is_none() && options.format == Format::Json;
    let mut progress = Progress::new("submitted", total);
    let submitted = submit_all(
        client,
        lines,
        &options,
        &mut refused,
        &mut progress,
        |line, id| {
            if streaming {
                output::print(&output::json_line(&json!({"line": line, "task_uuid": id})));
            }
        },
    )
    .await;
    progress.finish();
    let accepted = match submitted {
        Ok(accepted) => accepted,
        Err((accepted, err)) => {
            report(&mut refused);
            eprintln!(
                "note: stopped after {} accepted lines; the lines printed were submitted",
                accepted.len()
            );
            return Err(err);
        }
    };
    if options.format == Format::Table && options.wait.is_none() {
        let rows = accepted
            .iter()
            .map(|(line, id)| vec![line.to_string(), id.to_string()])
            .collect();
        output::print(&output::table(&["LINE", "TASK_UUID"], rows));
    }
    let mut exit = if refused.is_empty() {
        Exit::Success
    } else {
        Exit::TaskFailed
    };
    report(&mut refused);
    if let Some(limit) = options.wait {
        exit = exit.worst(wait_all(client, &accepted, limit, options.format).await?);
    }
    Ok(exit)
}

fn read(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|read| text = read)
    };
    read.map_err(|err| Failure::Usage(format!("cannot read {}: {err}", path.display())))?;
    Ok(text)
}

/// The tasks of the file by line number (from 1; blank lines skipped),
/// and the lines that are not JSON objects.
fn parse(text: &str) -> (Vec<Line>, Vec<Refusal>) {
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(body @ Value::Object(_)) => lines.push((number, body)),
            Ok(_) => refused.push((number, "invalid_json: not a JSON object".to_owned())),
            Err(err) => refused.push((number, format!("invalid_json: {err}"))),
        }
    }
    (lines, refused)
}

/// Submits `lines` in batches, in order, calling `accepted` for each task
/// stored. A refused item is set aside and its batch sent again without
/// it; a batch too large for the server is halved. On another error, the
/// tasks accepted until then come back with it.
async fn submit_all(
    client: &Client,
    lines: Vec<Line>,
    options: &Options<'_>,
    refused: &mut Vec<Refusal>,
    progress: &mut Progress,
    mut accepted: impl FnMut(usize, Uuid),
) -> Result<Vec<(usize, Uuid)>, (Vec<(usize, Uuid)>, Failure)> {
    let mut queue: VecDeque<Line> = lines.into();
    let mut size = options.batch_size.max(1);
    let mut done = Vec::with_capacity(queue.len());
    while !queue.is_empty() {
        let count = size.min(queue.len());
        let batch: Vec<&Value> = queue.iter().take(count).map(|(_, body)| body).collect();
        let key = options.idempotency_key.map(|key| {
            let first = queue.front().map_or(0, |(line, _)| *line);
            let last = queue.get(count - 1).map_or(0, |(line, _)| *line);
            format!("{key}-{first}-{last}-{count}")
        });
        match client.submit_batch(&batch, key.as_deref()).await {
            Ok(ids) => {
                for ((line, _), id) in queue.drain(..count).zip(ids) {
                    accepted(line, id);
                    done.push((line, id));
                }
            }
            Err(err) => match refused_item(&err, count) {
                Some(index) => {
                    if let Some((line, _)) = queue.remove(index) {
                        refused.push((line, refusal(&err)));
                    }
                }
                None if too_large(&err) && size > 1 => size /= 2,
                None => return Err((done, err.into())),
            },
        }
        progress.update(done.len() + refused.len());
    }
    Ok(done)
}

/// The index of the batch item the API refused, if that is the error.
fn refused_item(err: &client::Error, count: usize) -> Option<usize> {
    let client::Error::Api {
        status, details, ..
    } = err
    else {
        return None;
    };
    let index = usize::try_from(details.get("index")?.as_u64()?).ok()?;
    (*status == StatusCode::UNPROCESSABLE_ENTITY && index < count).then_some(index)
}

/// The batch is over the server's `api.max_batch_size` or body limit.
fn too_large(err: &client::Error) -> bool {
    match err {
        client::Error::Api {
            status, details, ..
        } => {
            *status == StatusCode::PAYLOAD_TOO_LARGE
                || (*status == StatusCode::UNPROCESSABLE_ENTITY && details["field"] == "tasks")
        }
        _ => false,
    }
}

/// The API's reason, without the `tasks[i]: ` that names the batch index.
fn refusal(err: &client::Error) -> String {
    match err {
        client::Error::Api { code, message, .. } => {
            let message = match message.split_once("]: ") {
                Some((index, rest)) if index.starts_with("tasks[") => rest,
                _ => message,
            };
            format!("{code}: {message}")
        }
        other => other.to_string(),
    }
}

fn report(refused: &mut [Refusal]) {
    refused.sort_by_key(|(line, _)| *line);
    for (line, reason) in refused.iter() {
        eprintln!("error: line {line}: {reason}");
    }
    if !refused.is_empty() {
        eprintln!("error: {} lines refused", refused.len());
    }
}

/// Waits for every task (`limit` for all of them together), printing each
/// finished one in the file's order; the worst outcome is the exit code.
async fn wait_all(
    client: &Client,
    accepted: &[(usize, Uuid)],
    limit: Option<Duration>,
    format: Format,
) -> Result<Exit, Failure> {
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
    let mut waits = futures_util::stream::iter(accepted.iter().copied())
        .map(|(line, id)| async move {
            let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            client.wait_for(id, left).await.map(|task| (line, task))
        })
        .buffered(CONCURRENT_WAITS);
    let mut progress = Progress::new("finished", accepted.len());
    let mut exit = Exit::Success;
    let mut finished = 0;
    let mut tasks = Vec::new();
    while let Some(waited) = waits.next().await {
        let (line, task) = match waited {
            Ok(waited) => waited,
            Err(err) => {
                progress.finish();
                return Err(err.into());
            }
        };
        exit = exit.worst(Exit::of_task(&task));
        finished += 1;
        progress.update(finished);
        match format {
            Format::Json => {
                output::print(&output::json_line(&json!({"line": line, "task": task})));
            }
            Format::Table => tasks.push(task),
        }
    }
    progress.finish();
    if format == Format::Table {
        output::print(&output::tasks_table(&tasks));
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_from_one_and_blank_ones_skipped() {
        let text = "{\"task_name\": \"sum\"}\n\n[1]\n{oops\n{\"task_name\": \"x\"}\n";
        let (lines, refused) = parse(text);
        let numbers: Vec<usize> = lines.iter().map(|(line, _)| *line).collect();
        assert_eq!(numbers, [1, 5]);
        let numbers: Vec<usize> = refused.iter().map(|(line, _)| *line).collect();
        assert_eq!(numbers, [3, 4]);
    }

    #[test]
    fn a_refusal_drops_the_batch_index() {
        let err = client::Error::Api {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unknown_task_name".into(),
            message: "tasks[3]: unknown task_name `x`".into(),
            details: json!({"index": 3, "field": "task_name"}),
            retry_after: None,
        };
        assert_eq!(refused_item(&err, 10), Some(3));
        assert_eq!(refused_item(&err, 3), None);
        assert_eq!(refusal(&err), "unknown_task_name: unknown task_name `x`");
        assert!(!too_large(&err));
    }
}
