//! What `tasker task` and `tasker queue` print: the API's JSON (indented on
//! a terminal, one line otherwise), or aligned columns for people; and the
//! progress line of a long submission, on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The API's JSON: indented on a terminal, one line per answer otherwise.
    Json,
    /// Aligned columns, for people.
    Table,
}

/// Writes `text` and a newline to stdout. A reader that went away (`| head`)
/// is not an error worth a panic: the rest is dropped.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// The API's JSON: indented when a person reads stdout, one line when a
/// program does.
pub fn json(value: &Value) -> String {
    if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        json_line(value)
    }
}

/// One line of JSON, whatever stdout is (JSON Lines output).
pub fn json_line(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Tasks as columns: id, name, status, tenant, created, duration, attempts.
pub fn tasks_table(tasks: &[Value]) -> String {
    let rows = tasks.iter().map(|task| {
        vec![
            text(&task["task_uuid"]),
            text(&task["task_name"]),
            text(&task["status"]),
            text(&task["tenant"]),
            time(&task["created_at"]),
            duration_of(task),
            attempts(task),
        ]
    });
    table(
        &[
            "TASK_UUID",
            "NAME",
            "STATUS",
            "TENANT",
            "CREATED (UTC)",
            "DURATION",
            "ATTEMPTS",
        ],
        rows.collect(),
    )
}

/// One task, a field per line, its output and error included.
pub fn task_details(task: &Value) -> String {
    let mut rows = vec![
        vec!["task_uuid".into(), text(&task["task_uuid"])],
        vec!["task_name".into(), text(&task["task_name"])],
        vec!["status".into(), text(&task["status"])],
        vec!["tenant".into(), text(&task["tenant"])],
        vec!["attempts".into(), attempts(task)],
        vec!["created_at".into(), time(&task["created_at"])],
        vec!["started_at".into(), time(&task["started_at"])],
        vec!["completed_at".into(), time(&task["completed_at"])],
        vec!["duration".into(), duration_of(task)],
    ];
    if !task["next_attempt_at"].is_null() {
        rows.push(vec![
            "next_attempt_at".into(),
            time(&task["next_attempt_at"]),
        ]);
    }
    if !task["task_output"].is_null() {
        rows.push(vec!["output".into(), json_line(&task["task_output"])]);
    }
    if !task["error"].is_null() {
        rows.push(vec!["error".into(), text(&task["error"])]);
    }
    table(&[], rows)
}

/// Queues as columns: name, depth, oldest age, running, paused.
pub fn queues_table(queues: &[Value]) -> String {
    let rows = queues.iter().map(|queue| {
        let depth = queue["depth"]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |depth| depth.to_string());
        // An empty queue has no oldest task, whatever its age says.
        let oldest = queue["oldest_age_seconds"]
            .as_f64()
            .filter(|age| age.is_finite() && *age >= 0.0 && queue["depth"] != 0)
            .map_or_else(|| "-".to_owned(), |age| human(Duration::from_secs_f64(age)));
        let paused = if queue["paused"] == Value::Bool(true) {
            "yes"
        } else {
            "no"
        };
        vec![
            text(&queue["name"]),
            depth,
            oldest,
            text(&queue["running"]),
            paused.to_owned(),
        ]
    });
    table(
        &["NAME", "DEPTH", "OLDEST", "RUNNING", "PAUSED"],
        rows.collect(),
    )
}

/// Columns padded to their widest cell; no trailing spaces.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    if !headers.is_empty() {
        all.push(headers.iter().map(|h| (*h).to_owned()).collect());
    }
    all.extend(rows);
    let columns = all.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            all.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = all
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}

/// A JSON value as a cell: strings bare, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str()?.parse().ok()
}

fn time(value: &Value) -> String {
    timestamp(value).map_or_else(
        || text(value),
        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// How long the last attempt ran, once the task has finished.
fn duration_of(task: &Value) -> String {
    let (Some(started), Some(completed)) = (
        timestamp(&task["started_at"]),
        timestamp(&task["completed_at"]),
    ) else {
        return "-".into();
    };
    (completed - started)
        .to_std()
        .map_or_else(|_| "-".into(), human)
}

fn attempts(task: &Value) -> String {
    format!(
        "{}/{}",
        text(&task["attempts"]),
        text(&task["max_attempts"])
    )
}

/// `850ms`, `12.4s`, `3m07s`, `2h05m`.
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{}ms", duration.as_millis()),
        1..60 => format!("{:.1}s", duration.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A progress indicator on stderr: one line redrawn in place on a
/// terminal, a plain line every few seconds otherwise (a log, a CI job).
pub struct Progress {
    label: &'static str,
    total: usize,
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Self {
        Self {
            label,
            total,
            terminal: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Shows `done` of the total (now and then; always the last one).
    pub fn update(&mut self, done: usize) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        let due = self.last.is_none_or(|last| last.elapsed() >= every);
        if !due && done < self.total {
            return;
        }
        self.last = Some(Instant::now());
        let mut stderr = std::io::stderr().lock();
        let line = format!("{} {done}/{}", self.label, self.total);
        let _ = if self.terminal {
            let filled = (done * 30).checked_div(self.total).unwrap_or(30).min(30);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled));
            write!(stderr, "\r[{bar}] {line}\x1b[K")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
        self.drawn = true;
    }

    /// Ends the redrawn line, so what follows starts on its own.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            eprintln!();
        }
        self.drawn = false;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns_and_show_durations() {
        let task = json!({
            "task_uuid": "01a225a7-4c5f-7106-8edc-f70cbdb2a24d",
            "task_name": "sum",
            "status": "completed",
            "tenant": "default",
            "attempts": 1,
            "max_attempts": 3,
            "created_at": "2026-11-29T12:00:00.000000Z",
            "started_at": "2026-11-29T12:00:00.004000Z",
            "completed_at": "2026-11-29T12:00:00.009000Z",
        });
        let table = tasks_table(&[task]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert_eq!(
            lines[0].find("STATUS"),
            lines[1].find("completed"),
            "{table}"
        );
        assert!(lines[1].contains("2026-11-29 12:00:00"), "{table}");
        assert!(
            lines[1].contains("5ms") && lines[1].ends_with("1/3"),
            "{table}"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(12_400)), "12.4s");
        assert_eq!(human(Duration::from_secs(187)), "3m07s");
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }
}
