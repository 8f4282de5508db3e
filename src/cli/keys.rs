//! `tasker keys create | list | revoke`: API keys, straight in PostgreSQL,
//! for an operator with a shell on a pod (`kubectl exec`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app::Application;
use crate::domain::Scope;
use crate::services::{ApiKeys, KeyRequest};
use crate::store::ApiKey;

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Make a key; its token is printed once, on the last line.
    Create {
        /// The tenant whose tasks the key submits and reads.
        #[arg(long)]
        tenant: String,
        /// submit, read or admin; repeat for several.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Submissions per second across every api replica (batch items count one each).
        #[arg(long)]
        rate: Option<u32>,
        /// Tasks of the tenant running at once across every worker (a limit of the tenant).
        #[arg(long)]
        max_running: Option<u32>,
        /// Lifetime, e.g. 90d, 12h, 30m.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List keys (never their tokens).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key: it stops working on every api replica within `auth.cache_seconds`.
    Revoke {
        /// The key's id (from `tasker keys list`).
        id: String,
    },
}

/// Runs a `tasker keys` command.
pub async fn run(command: KeysCommand, app: &Application) -> anyhow::Result<()> {
    let store = &app.services().store;
    match command {
        KeysCommand::Create {
            tenant,
            scopes,
            rate,
            max_running,
            expires_in,
            description,
        } => {
            let keys = ApiKeys::new(store.clone());
            let request = KeyRequest {
                tenant,
                scopes,
                rate,
                max_running,
                expires_in,
                description,
            };
            let (key, token) = keys.create(request).await?;
            println!("{}", describe(&key));
            println!("The token is shown once; keep it secret:");
            println!("{token}");
        }
        KeysCommand::List { tenant } => {
            let keys = store
                .list_keys(tenant.as_deref())
                .await
                .context("listing keys")?;
            println!(
                "{:<22} {:<16} {:<20} {:<6} {:<10} {:<25}",
                "id", "tenant", "scopes", "rate", "state", "expires"
            );
            for key in keys {
                let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<22} {:<16} {:<20} {:<6} {:<10} {:<25}",
                    key.id,
                    key.tenant,
                    scopes.join(","),
                    key.rate_per_second.map_or("-".into(), |r| r.to_string()),
                    state(&key),
                    key.expires_at.map_or("never".into(), |at| at.to_rfc3339()),
                );
            }
        }
        KeysCommand::Revoke { id } => match store.revoke_key(&id, None).await? {
            Some(key) => println!("revoked {}", describe(&key)),
            None => bail!("no key with id {id}"),
        },
    }
    Ok(())
}

fn describe(key: &ApiKey) -> String {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    format!(
        "key {} of tenant {} ({}), {}",
        key.id,
        key.tenant,
        scopes.join(", "),
        state(key)
    )
}

fn state(key: &ApiKey) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

/// `90d`, `12h`, `30m`, `45s`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90d, 12h or 30m"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "d" => value * 86_400,
        _ => return Err(format!("`{text}`: use s, m, h or d")),
    };
    (seconds > 0)
        .then(|| Duration::from_secs(seconds))
        .ok_or_else(|| format!("`{text}` must be more than zero"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }
}
