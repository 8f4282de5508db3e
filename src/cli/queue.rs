//! `tasker queue list | pause | resume`: queues over the HTTP API (admin
//! keys when authentication is on).

use clap::Subcommand;

use super::client::Client;
use super::output::{self, Format};
use super::remote::{Exit, Failure};

#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Every queue: depth, oldest waiting task, running, paused.
    List,
    /// Pause a queue: workers take none of its tasks (they stay pending).
    Pause {
        /// The queue, e.g. `llm`.
        name: String,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue, e.g. `llm`.
        name: String,
    },
}

/// Runs a `tasker queue` command.
pub async fn run(command: QueueCommand, client: Client, format: Format) -> Result<Exit, Failure> {
    let answer = match &command {
        QueueCommand::List => client.queues().await?,
        QueueCommand::Pause { name } => client.pause(name).await?,
        QueueCommand::Resume { name } => client.resume(name).await?,
    };
    let text = match format {
        Format::Json => output::json(&answer),
        Format::Table => {
            let queues = match &command {
                QueueCommand::List => answer["queues"].as_array().cloned().unwrap_or_default(),
                _ => vec![answer],
            };
            output::queues_table(&queues)
        }
    };
    output::print(&text);
    Ok(Exit::Success)
}
