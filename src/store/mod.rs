//! PostgreSQL: every SQL statement Tasker runs lives in this module.

/// The columns every `TaskRecord` is read from, optionally qualified by a
/// table name. A macro so statements stay `&'static str` (sqlx refuses SQL
/// built at run time).
macro_rules! record_columns {
    () => {
        record_columns!("")
    };
    ($t:literal) => {
        concat!(
            $t,
            "id, ",
            $t,
            "task_name, ",
            $t,
            "tenant, ",
            $t,
            "status, ",
            $t,
            "task_output, ",
            $t,
            "error, ",
            $t,
            "attempts, ",
            $t,
            "max_attempts, ",
            $t,
            "run_after, ",
            $t,
            "created_at, ",
            $t,
            "started_at, ",
            $t,
            "completed_at"
        )
    };
}

/// A `WITH locked AS (…)` that locks the rows of the ids in `$1` in id
/// order: the running ones, or those of the status given. Every statement
/// that writes several task rows named by id starts with it, so two of them
/// (a worker's heartbeat and its outcome writes, a hand-back at shutdown,
/// two workers claiming a batch delivered twice, two reconcilers stamping
/// the same lost tasks) always lock in the same order and cannot deadlock,
/// whatever plan the planner picks for the rest. The rows are found by
/// primary key (`id = ANY($1)`), and the status is tested as `(…) IS TRUE`
/// so no status index can serve it (see `store::tasks`).
macro_rules! lock_in_id_order {
    () => {
        lock_in_id_order!("running")
    };
    ($status:literal) => {
        concat!(
            "WITH locked AS (SELECT id FROM tasks WHERE id = ANY($1) \
             AND (status = '",
            $status,
            "') IS TRUE ORDER BY id FOR UPDATE) "
        )
    };
}

mod control;
mod idempotency;
mod keys;
mod leases;
mod listing;
mod pooler;
mod quick;
mod tasks;

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{DatabaseConfig, Pooler};

pub use control::{Action, Changed, Pause, TaskMatch};
pub use idempotency::IdempotentInsert;
pub use keys::{ApiKey, NewKey, new_key_id};
pub use leases::{Lease, Recovered};
pub use listing::TaskFilter;
pub use quick::{QuickClaim, QuickOutcome, QuickWrite};
pub use tasks::{DispatchCandidate, FinalOutcome, FinalWrite};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Settings of every session Tasker opens, sent with the connection (no
/// round trip). Every statement Tasker runs finds its rows through an
/// index; with sequential scans priced out, the planner never picks one
/// because statistics are missing (a new install), stale (after a burst or
/// a TRUNCATE) or say the table is small, which would read the whole table
/// for each batch. Bitmap scans are priced out for the same reason: a
/// bitmap reads every index entry in range before a `LIMIT` can stop it, so
/// a batch of 1,000 deletes from a backlog of a million expired tasks
/// would read the million, batch after batch (docs/decisions.md, "Indexes
/// of the tasks table").
///
/// A session left idle inside a transaction (a quick task's claim, when its
/// worker froze) is ended after `idle_in_transaction_session_timeout`, so
/// the rows it locked go back to other workers (see `store::quick`); quick
/// tasks run well within it.
const SESSION_SETTINGS: [(&str, &str); 3] = [
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("idle_in_transaction_session_timeout", "15s"),
];

/// A pooled connection idle this long is pinged before it is used.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server cannot be reached or is refusing work: retry later.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("invalid database URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    /// The error of a statement written for several callers at once, as
    /// each of them sees it.
    #[error("{detail}")]
    Shared { unavailable: bool, detail: String },
}

impl Error {
    /// True when the database is down or overloaded rather than the request bad.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::TimedOut(_) => true,
            Self::Shared { unavailable, .. } => *unavailable,
            _ => false,
        }
    }

    /// A copy for each caller of a statement written for several.
    pub fn share(&self) -> Self {
        Self::Shared {
            unavailable: self.is_unavailable(),
            detail: crate::telemetry::error_chain(self),
        }
    }

    fn from_sqlx(err: sqlx::Error) -> Self {
        if is_connectivity_error(&err) {
            Self::Unavailable(err)
        } else {
            Self::Query(err)
        }
    }
}

impl From<crate::batching::BatchLost> for Error {
    fn from(lost: crate::batching::BatchLost) -> Self {
        Self::Shared {
            unavailable: false,
            detail: lost.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_connectivity_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutdown / cannot connect now;
            // 53300: too many connections; 28: login refused; 3D000: no
            // such database (never the request's fault).
            ["08", "57P", "28"].iter().any(|p| code.starts_with(p))
                || code == "53300"
                || code == "3D000"
        }),
        _ => false,
    }
}

/// Handle on the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// `BEGIN; SET LOCAL …` when a transaction pooler stands between us
    /// and PostgreSQL (see `store::pooler`); `None` for a direct connection.
    begin: Option<Arc<str>>,
    query_timeout: Duration,
    diagnosis: Diagnosis,
}

/// Says why the database cannot be reached. A pool that cannot connect
/// reports only that it timed out waiting for a connection; a direct
/// attempt names the cause (connection refused, authentication failed, no
/// such database), which is logged when it changes, at most every 30 s.
#[derive(Clone)]
struct Diagnosis {
    options: PgConnectOptions,
    last: Arc<Mutex<Option<(Instant, String)>>>,
}

impl Diagnosis {
    const EVERY: Duration = Duration::from_secs(30);

    fn explain(&self) {
        let due = {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            last.as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= Self::EVERY)
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !due {
            return;
        }
        let this = self.clone();
        runtime.spawn(async move {
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                <sqlx::postgres::PgConnection as sqlx::Connection>::connect_with(&this.options),
            )
            .await;
            let cause = match attempt {
                Ok(Ok(connection)) => {
                    drop(connection);
                    return;
                }
                Ok(Err(err)) => crate::telemetry::error_chain(&err),
                Err(_) => "connecting timed out after 5 s".to_owned(),
            };
            let mut last = this.last.lock().unwrap_or_else(PoisonError::into_inner);
            let repeated = last
                .as_ref()
                .is_some_and(|(at, seen)| *seen == cause && at.elapsed() < Self::EVERY * 10);
            *last = Some((Instant::now(), cause.clone()));
            drop(last);
            if !repeated {
                tracing::error!(error = %cause, "cannot connect to PostgreSQL");
            }
        });
    }
}

impl Store {
    /// Creates the pool without connecting, so a process starts (and reports
    /// not ready) while PostgreSQL is down, and connects once it is back.
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(config.url.expose())
            .map_err(Error::InvalidUrl)?
            .application_name("tasker");
        let (options, begin) = match config.pooler {
            Pooler::None => (options.options(SESSION_SETTINGS), None),
            Pooler::Transaction => (
                pooler::connect_options(options),
                Some(pooler::begin_with_settings(&SESSION_SETTINGS).into()),
            ),
        };
        Ok(Self {
            pool: Self::pool_options(config).connect_lazy_with(options.clone()),
            begin,
            query_timeout: config.query_timeout(),
            diagnosis: Diagnosis {
                options,
                last: Arc::default(),
            },
        })
    }

    fn pool_options(config: &DatabaseConfig) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(config.max_connections.get())
            .acquire_timeout(config.acquire_timeout())
            // sqlx pings every connection it hands out, a round trip per
            // statement. It also pings on release, so a connection in
            // steady use is known good: only one that sat idle (the
            // server may have restarted meanwhile) is checked first.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_CHECK_AFTER {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
    }

    /// Creates the configured database when it does not exist yet, so a
    /// fresh PostgreSQL needs no manual `createdb`.
    pub async fn create_database_if_missing(config: &DatabaseConfig) -> Result<bool> {
        use sqlx::migrate::MigrateDatabase;
        let url = config.url.expose();
        let exists = sqlx::Postgres::database_exists(url)
            .await
            .map_err(Error::from_sqlx)?;
        if !exists {
            sqlx::Postgres::create_database(url)
                .await
                .map_err(Error::from_sqlx)?;
        }
        Ok(!exists)
    }

    /// Applies pending migrations. Safe to run twice, and from several
    /// processes at once: sqlx serialises them with an advisory lock.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(Error::Migrate)
    }

    /// Succeeds when the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        self.bounded(sqlx::query("SELECT 1").execute(self.db()))
            .await
            .map(|_| ())
    }

    /// Closes every connection; used at shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The most connections the pool opens.
    pub fn max_connections(&self) -> usize {
        self.pool.options().get_max_connections() as usize
    }

    /// Connections of the pool: (open, idle, max), for the pool gauges.
    pub fn pool_stats(&self) -> (usize, usize, usize) {
        let max = self.pool.options().get_max_connections();
        (
            self.pool.size() as usize,
            self.pool.num_idle(),
            max as usize,
        )
    }

    /// Where a statement outside a transaction of ours runs: the pool, or
    /// behind a transaction pooler a transaction of its own.
    fn db(&self) -> pooler::Db<'_> {
        pooler::Db {
            pool: &self.pool,
            begin: self.begin.as_deref(),
        }
    }

    /// Begins a transaction, with the session settings made local to it
    /// behind a transaction pooler.
    async fn begin(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        match &self.begin {
            None => self.pool.begin().await,
            Some(begin) => {
                self.pool
                    .begin_with(sqlx::AssertSqlSafe(begin.clone()))
                    .await
            }
        }
    }

    /// Whether statements may stay prepared on their connection (`persistent`):
    /// not behind a transaction pooler, whose next transaction may be elsewhere.
    fn named(&self) -> bool {
        self.begin.is_none()
    }

    /// Runs one database call under the query timeout, so a server that
    /// stopped answering fails the call instead of hanging it; boxed, since
    /// inline it made every caller's future about 20 KB (docs/performance.md).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.query_timeout, Box::pin(call)).await {
            Ok(Err(sqlx::Error::PoolTimedOut)) => {
                self.diagnosis.explain();
                Err(Error::Unavailable(sqlx::Error::PoolTimedOut))
            }
            Ok(result) => result.map_err(Error::from_sqlx),
            Err(_) => Err(Error::TimedOut(self.query_timeout)),
        }
    }
}
