//! Persistence: the database connection, entities, migrations and the queries the services use.

pub mod entities;
pub mod migrations;
pub mod pg_direct;
pub mod rbac;
pub mod sessions;
pub mod sqlite_direct;
pub mod throttle;
pub mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard};

use self::entities::login_throttle::Model as Counter;
use self::entities::user::Model as User;
use self::pg_direct::PgDirect;
use self::sessions::SessionGrant;
use self::sqlite_direct::SqliteDirect;

/// What the auth lookup of the current request confirmed, when [`Direct`] answered it: on
/// PostgreSQL the auth epoch read by a query sent during the request, on SQLite the generation
/// of kept answers that a `PRAGMA data_version` asked during the request left standing. An
/// answer kept at it is exact as of that moment, so the request's later lookups may serve it
/// without asking the database again (decisions 82, 93). Only the direct lookups make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed(i64);

/// The per-request lookups that skip sea-orm, on the backends that have them: on the calling
/// thread for a SQLite file, pipelined for PostgreSQL. Each answers `None` when the caller
/// should ask sea-orm instead.
#[derive(Debug, Clone)]
pub enum Direct {
    Sqlite(Arc<SqliteDirect>),
    Postgres(Arc<PgDirect>),
}

impl Direct {
    /// The SQLite lookups, which also rotate refresh tokens.
    pub fn sqlite(&self) -> Option<&Arc<SqliteDirect>> {
        match self {
            Self::Sqlite(direct) => Some(direct),
            Self::Postgres(_) => None,
        }
    }

    /// See [`sessions::find_with_user_and_grants`].
    pub async fn session_grant(&self, session_id: &str, now: DateTime<Utc>) -> Option<Option<SessionGrant>> {
        match self {
            Self::Sqlite(direct) => direct.session_grant(session_id),
            Self::Postgres(direct) => direct.session_grant(session_id, now).await,
        }
    }

    /// See [`throttle::find_with_user`]. Never kept: a login must see the latest password and
    /// counts.
    pub async fn login_lookup(&self, keys: &[String], login: &str) -> Option<(Vec<Counter>, Option<User>)> {
        match self {
            Self::Sqlite(direct) => direct.login_lookup(keys, login),
            Self::Postgres(direct) => direct.login_lookup(keys, login).await,
        }
    }

    /// See [`users::find_committed`].
    pub async fn user(&self, id: i64, confirmed: Option<Confirmed>) -> Option<Option<Arc<User>>> {
        match self {
            Self::Sqlite(direct) => direct.user(id, confirmed),
            Self::Postgres(direct) => direct.user(id, confirmed).await,
        }
    }
}

/// The one row (or none) a PostgreSQL statement answers, run prepared on sqlx's pool as sea-orm
/// would run it, but without sea-orm's `query_one_raw`, which wraps the query's large future in
/// several of its own and copies each as it starts. A login or a registration does little else
/// on the request threads, and on a small machine their time comes out of the password hashes'.
pub(crate) async fn pg_query_one(
    db: &DatabaseConnection,
    statement: Statement,
) -> Result<Option<QueryResult>, DbErr> {
    let (sql, values) = sqlx_parts(statement);
    sea_orm::sqlx::query_with(sea_orm::sqlx::AssertSqlSafe(sql), values)
        .fetch_optional(db.get_postgres_connection_pool())
        .await
        .map(|row| row.map(QueryResult::from))
        .map_err(sqlx_error)
}

/// A sea-orm statement as sqlx takes it: its text and its values.
pub(crate) fn sqlx_parts(statement: Statement) -> (String, SqlxValues) {
    let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
    (statement.sql, SqlxValues(values))
}

/// The error sea-orm itself reports for a failed query, so callers see one kind of error.
pub(crate) fn sqlx_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(err)))
}

/// Pool and timeout settings for [`connect`].
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: Option<u32>,
    pub acquire_timeout: Duration,
}

/// Opens a pool for `url`. For SQLite the file (and its folder) is created if missing and the
/// database runs in WAL mode, which lets readers proceed while one writer commits.
pub async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<DatabaseConnection> {
    let backend = backend_of(url)?;
    if backend == DbBackend::Sqlite {
        ensure_sqlite_dir(url)?;
    }
    let default_max = match backend {
        // SQLite serialises writers anyway; a few connections serve concurrent reads.
        DbBackend::Sqlite => 8,
        _ => 16,
    };
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(pool.max_connections.unwrap_or(default_max))
        .min_connections(1)
        .acquire_timeout(pool.acquire_timeout)
        .connect_timeout(pool.acquire_timeout)
        .sqlx_logging(false)
        // sqlx pings a connection on every checkout by default: a second round trip per
        // query (on SQLite, a second hand-off to the connection's thread). Only connections
        // that sat idle long enough to have been dropped by the server are pinged.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    let db = Database::connect(opts)
        .await
        .with_context(|| format!("connecting to the database at {}", redact_url(url)))?;
    Ok(db)
}

/// Which backend a URL names.
pub fn backend_of(url: &str) -> anyhow::Result<DbBackend> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(DbBackend::Sqlite),
        "postgres" | "postgresql" => Ok(DbBackend::Postgres),
        "mysql" | "mariadb" => Ok(DbBackend::MySql),
        _ => anyhow::bail!(
            "DATABASE_URL must start with sqlite://, postgres:// or mysql:// (got {})",
            redact_url(url)
        ),
    }
}

fn ensure_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let opts = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL {url}"))?;
    if let Some(dir) = Path::new(opts.get_filename()).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    Ok(())
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    // A password may also travel as a query parameter (`?password=…`); drop the whole query
    // then rather than parse it.
    if let Some((base, query)) = url.split_once('?')
        && query.to_ascii_lowercase().contains("password")
    {
        return format!("{}?***", redact_url(base));
    }
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Connections of the pool behind a [`DatabaseConnection`], for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: u32,
    pub in_use: u32,
    pub max: u32,
}

/// How many of the pool's connections are idle and in use, and its size limit; `None` for a
/// closed or disconnected pool.
pub fn pool_stats(db: &DatabaseConnection) -> Option<PoolStats> {
    fn of<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> Option<PoolStats> {
        if pool.is_closed() {
            return None;
        }
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        Some(PoolStats {
            idle,
            in_use: size - idle,
            max: pool.options().get_max_connections(),
        })
    }
    // The getters panic on a mismatched backend, so the backend is asked first.
    match db.get_database_backend() {
        DbBackend::Sqlite => of(db.get_sqlite_connection_pool()),
        DbBackend::Postgres => of(db.get_postgres_connection_pool()),
        DbBackend::MySql => of(db.get_mysql_connection_pool()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// `SELECT 1`: is the database answering?
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(|_| ())
}

/// Is this error the database (or the pool) being unreachable, rather than a bad query?
pub fn is_unavailable(err: &DbErr) -> bool {
    matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        || matches!(err, DbErr::Exec(e) | DbErr::Query(e) if {
            let text = e.to_string();
            text.contains("PoolTimedOut")
                || text.contains("pool timed out")
                || text.contains("Connection refused")
                || text.contains("connection closed")
                || text.contains("broken pipe")
                || text.contains("error communicating with database")
                // PostgreSQL ending sessions as it stops (57P01) or refusing them while it stops
                // or starts (57P03): a query in flight at that moment is an outage, not a bug.
                || text.contains("terminating connection due to administrator command")
                || text.contains("the database system is shutting down")
                || text.contains("the database system is starting up")
                // MySQL/MariaDB losing the server mid-query (2006, 2013).
                || text.contains("server has gone away")
                || text.contains("Lost connection to")
                // SQLite's busy timeout ran out: contention, worth a retry, not a bug.
                || text.contains("database is locked")
        })
}

/// A transaction that is rolled back promptly when dropped uncommitted (an early return or `?`
/// in a use case). sea-orm, through sqlx, otherwise defers that rollback until the pooled
/// connection is next used, and on SQLite the write lock stays held until then, so unrelated
/// writers time out. On SQLite it also holds the database's [write turn](write_turn).
pub struct Tx {
    txn: Option<sea_orm::DatabaseTransaction>,
    turn: Option<OwnedMutexGuard<()>>,
}

/// How long SQLite waits for a lock another connection holds (`busy_timeout`), and how long a
/// transaction waits for its write turn.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a transaction; see [`Tx`].
///
/// On SQLite it is `BEGIN IMMEDIATE`: the use cases read, then write, in one transaction, and a
/// deferred transaction that turns into a writer while another connection writes fails at once
/// with `SQLITE_BUSY` (or `SQLITE_BUSY_SNAPSHOT`) instead of waiting for the busy timeout, so
/// two concurrent admin writes could answer 503. Taking the write lock up front makes them
/// queue. Other backends ignore the mode.
pub async fn begin(db: &DatabaseConnection) -> Result<Tx, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let turn = match db.get_database_backend() {
        DbBackend::Sqlite => Some(write_turn(db).await?),
        _ => None,
    };
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(Tx {
        txn: Some(db.begin_with_options(options).await?),
        turn,
    })
}

/// SQLite has one writer at a time. When write transactions meet at SQLite's lock, the loser
/// sleeps and polls (1, 2, 5, 10 … 100 ms), so under a burst of refreshes or registrations
/// most of the time goes to sleeping and the slowest waits for hundreds of milliseconds. This
/// process's write transactions on one database file therefore take turns on an async lock
/// first, which wakes the next one the moment the previous one ends; SQLite's own lock still
/// orders them against other processes and against single-statement writes.
pub(super) async fn write_turn(db: &DatabaseConnection) -> Result<OwnedMutexGuard<()>, DbErr> {
    take_turn(turn_of(db)).await
}

/// The write-turn lock of the SQLite file behind `db`, one per file in the process.
pub(super) fn turn_of(db: &DatabaseConnection) -> Arc<Mutex<()>> {
    static TURNS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut turns = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    turns.entry(sqlite_file(db)).or_default().clone()
}

/// Waits for `turn`, for at most the busy timeout.
pub(super) async fn take_turn(turn: Arc<Mutex<()>>) -> Result<OwnedMutexGuard<()>, DbErr> {
    tokio::time::timeout(SQLITE_BUSY_TIMEOUT, turn.lock_owned())
        .await
        // Worded as SQLite words it, so that it is reported as contention (503), not a bug.
        .map_err(|_| {
            DbErr::Query(sea_orm::RuntimeErr::Internal(
                "database is locked (waited for the write turn)".into(),
            ))
        })
}

/// The file name of the SQLite database behind `db` (`:memory:` and the like included).
pub(super) fn sqlite_file(db: &DatabaseConnection) -> PathBuf {
    db.get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf()
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), DbErr> {
        let result = match self.txn.take() {
            Some(txn) => txn.commit().await,
            None => Ok(()),
        };
        self.turn.take();
        result
    }

    pub async fn rollback(mut self) -> Result<(), DbErr> {
        let result = match self.txn.take() {
            Some(txn) => txn.rollback().await,
            None => Ok(()),
        };
        self.turn.take();
        result
    }
}

impl std::ops::Deref for Tx {
    type Target = sea_orm::DatabaseTransaction;

    fn deref(&self) -> &Self::Target {
        match &self.txn {
            Some(txn) => txn,
            // Only commit, rollback and drop take the transaction, and they consume `self`.
            None => unreachable!("transaction used after it ended"),
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let turn = self.turn.take();
        if let Some(txn) = self.txn.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = txn.rollback().await {
                    tracing::warn!(error = %err, "rolling back a transaction failed");
                }
                // The next writer's turn comes once this one has really ended.
                drop(turn);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_stops_or_starts_is_unavailable_not_an_internal_error() {
        use sea_orm::RuntimeErr;
        for text in [
            "error returned from database: terminating connection due to administrator command",
            "error returned from database: the database system is shutting down",
            "error returned from database: the database system is starting up",
            "error returned from database: 2006 (HY000): MySQL server has gone away",
            "pool timed out while waiting for an open connection",
        ] {
            assert!(
                is_unavailable(&DbErr::Query(RuntimeErr::Internal(text.into()))),
                "{text}"
            );
            assert!(
                is_unavailable(&DbErr::Exec(RuntimeErr::Internal(text.into()))),
                "{text}"
            );
        }
        let other = DbErr::Query(RuntimeErr::Internal("syntax error at or near \"SELEC\"".into()));
        assert!(!is_unavailable(&other));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact_url("sqlite://data/users.db"), "sqlite://data/users.db");
        assert_eq!(
            redact_url("postgres://db/app?user=app&password=s3cret"),
            "postgres://db/app?***"
        );
    }

    #[test]
    fn backends_are_recognised_by_scheme() {
        assert_eq!(backend_of("sqlite://x.db").unwrap(), DbBackend::Sqlite);
        assert_eq!(backend_of("postgresql://h/db").unwrap(), DbBackend::Postgres);
        assert_eq!(backend_of("mysql://h/db").unwrap(), DbBackend::MySql);
        assert!(backend_of("redis://h").is_err());
    }
}
