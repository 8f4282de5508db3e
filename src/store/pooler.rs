//! Behind a pooler in transaction mode (PgBouncer `pool_mode = transaction`):
//! every statement runs in its own transaction, unnamed, and nothing
//! outlives it on the server session.
//!
//! Such a pooler lends a server session to a client for one transaction
//! and takes it back as soon as the session is idle. Outside a transaction
//! that is after every `Sync`, and sqlx sends one between preparing a
//! statement (`Parse`, `Describe`) and running it (`Bind`, `Execute`): the
//! statement could be prepared on one server session and run on another,
//! whose unnamed statement is someone else's. Inside a transaction the
//! pooler keeps the session, so [`Db`] runs each statement given to the
//! pool as `BEGIN; SET LOCAL …; statement; COMMIT`, and returns only once
//! the commit is done. Statements are unnamed, so no prepared statement is
//! left behind for the next client of that server session; the `SET LOCAL`
//! settings are what a direct connection sends once, at start-up.

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo,
};
use sqlx::{AssertSqlSafe, Either, Execute, Executor, PgPool, Postgres, SqlStr};

/// Where the store's statements run: the pool, each statement in a
/// transaction of its own when `begin` is set (a transaction pooler).
#[derive(Debug, Clone, Copy)]
pub(super) struct Db<'p> {
    pub(super) pool: &'p PgPool,
    /// `BEGIN; SET LOCAL …` behind a transaction pooler, else `None`.
    pub(super) begin: Option<&'p str>,
}

/// A statement run unnamed (`Parse` with an empty name): nothing stays
/// prepared on the server session once its transaction ends.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

impl<'p> Executor<'p> for Db<'p> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let Some(begin) = self.begin else {
            return self.pool.fetch_many(query);
        };
        let pool = self.pool;
        let all = async move {
            let mut tx = pool.begin_with(AssertSqlSafe(begin)).await?;
            let results: Vec<_> = (&mut *tx).fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(results)
        };
        stream::once(all)
            .map_ok(|results| stream::iter(results.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let Some(begin) = self.begin else {
            return self.pool.fetch_optional(query);
        };
        let pool = self.pool;
        Box::pin(async move {
            let mut tx = pool.begin_with(AssertSqlSafe(begin)).await?;
            let row = (&mut *tx).fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

/// Connection settings for a transaction pooler: no statement cache, and
/// no start-up parameter PgBouncer refuses (`extra_float_digits`,
/// `options`); `application_name` and those it tracks stay.
pub(super) fn connect_options(options: PgConnectOptions) -> PgConnectOptions {
    options.statement_cache_capacity(0).extra_float_digits(None)
}

/// `BEGIN` followed by `settings` made transaction-local.
pub(super) fn begin_with_settings(settings: &[(&str, &str)]) -> String {
    let mut begin = String::from("BEGIN");
    for (name, value) in settings {
        begin.push_str(&format!("; SET LOCAL {name} = '{value}'"));
    }
    begin
}
