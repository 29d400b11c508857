//! Persistence: one schema and one behaviour on SQLite and PostgreSQL.
//!
//! Every query is a `&'static str` next to the function that runs it, written once in SQL
//! that both backends accept (`$1` binds, `RETURNING`). The few statements that must differ
//! (row locks) say so where they are. Each backend gets its own embedded migrations.
//!
//! SQLite runs with one writer connection and a pool of readers: writes are serialized in
//! the process, in FIFO order, and never meet "database is locked"; WAL lets readers go on
//! while the writer works. On PostgreSQL, row locks serialize what must be serialized
//! (a tenant's quota, a pool's fill) and nothing else.

pub mod idempotency;
pub mod imports;
pub mod instances;
pub mod nodes;
pub mod pauses;
pub mod sessions;
pub mod tenants;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DurationRound, NaiveDateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::config::DatabaseUrl;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a caller waits for a connection (the SQLite writer included) before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits on a lock held by another process (e.g. `duffy admin`).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// Rows buffered between a SQLite connection's thread and the task reading them.
const SQLITE_ROW_BUFFER: usize = 4096;
/// Readers are cheap in WAL mode; a few cover the API's reads on a 2-core machine.
const SQLITE_READERS: u32 = 4;
/// PostgreSQL connections: enough for parallel requests plus background jobs.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Errors of the persistence layer; the API maps them to 409 or 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the row; `field` names the column that clashed.
    #[error("duplicate {field}")]
    Duplicate {
        /// The column whose value is already taken (`name`, `hostname`, `ipaddr`).
        field: &'static str,
    },
    /// Anything the database reported; callers treat it as an internal fault.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The transaction a request shared with others (a group of hand-outs) failed; the
    /// cause is logged once, by whoever ran it.
    #[error("database error in a shared transaction: {0}")]
    Shared(String),
    /// A JSON column held something that is not a JSON object.
    #[error("invalid JSON stored in {column}: {reason}")]
    CorruptJson {
        /// Which column held it.
        column: &'static str,
        /// What the parser said.
        reason: String,
    },
}

impl StoreError {
    /// Classifies a database error: unique violations name the column they hit.
    pub(crate) fn from_write(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            // PostgreSQL names the index; SQLite says "UNIQUE constraint failed: nodes.ipaddr".
            let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
            for field in ["api_key", "hostname", "ipaddr", "name"] {
                if text.contains(field) {
                    return StoreError::Duplicate { field };
                }
            }
        }
        StoreError::Database(err)
    }
}

/// Which database a [`Db`] talks to; decides the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A handle on the database: cheap to clone, shared by the API and the background jobs.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite: one writer connection (writes are serialized in-process) and a reader pool.
    Sqlite {
        /// The single connection every write transaction goes through.
        writer: SqlitePool,
        /// Read-only connections for queries outside write transactions.
        reader: SqlitePool,
    },
    /// PostgreSQL: one pool for everything.
    Postgres(PgPool),
}

/// A write transaction on either backend; dropped without `commit` it rolls back.
pub enum Tx {
    /// On the SQLite writer, begun with `BEGIN IMMEDIATE`.
    Sqlite(Transaction<'static, Sqlite>),
    /// On a PostgreSQL connection.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the connection pool used for reads.
macro_rules! on_reader {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { reader: $c, .. } => $body,
            $crate::store::Db::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the pool used for single-statement writes.
macro_rules! on_writer {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { writer: $c, .. } => $body,
            $crate::store::Db::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the connection of a write transaction.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Runs `$body` in a write transaction with `$sql` bound to the statement for its backend:
/// for the few statements that must differ (row locks SQLite does not have).
macro_rules! on_tx_per_backend {
    ($tx:expr, sqlite: $sqlite:expr, postgres: $postgres:expr, |$c:ident, $sql:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                let $sql: &'static str = $sqlite;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                let $sql: &'static str = $postgres;
                $body
            }
        }
    };
}

pub(crate) use {on_reader, on_tx, on_tx_per_backend, on_writer};

impl Db {
    /// Opens the configured database; SQLite files and their directory are created if missing.
    pub async fn connect(url: &DatabaseUrl) -> Result<Db, StoreError> {
        match url {
            DatabaseUrl::Sqlite { path } => Self::connect_sqlite(path).await,
            DatabaseUrl::Postgres { url } => {
                let options = PgConnectOptions::from_str(url.expose_secret())?;
                Self::connect_postgres(options).await
            }
        }
    }

    async fn connect_sqlite(path: &Path) -> Result<Db, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across application crashes; only an OS crash may lose
            // the last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            // Rows travel from SQLite's thread to ours through a bounded channel; the
            // default (50) makes a listing of thousands of nodes ping-pong between threads.
            .row_buffer_size(SQLITE_ROW_BUFFER)
            .foreign_keys(true);
        // A local file cannot drop a connection: no ping before each use (sqlx's default
        // costs a round trip to the connection's thread per transaction).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.read_only(true));
        Ok(Db::Sqlite { writer, reader })
    }

    /// Opens a PostgreSQL database from ready-made options (tests build them directly).
    pub async fn connect_postgres(options: PgConnectOptions) -> Result<Db, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Db::Postgres(pool))
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations; idempotent, run at every start and by `duffy migrate`.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite { writer, .. } => SQLITE_MIGRATIONS.run(writer).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction that reads before it writes can never fail to upgrade.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Closes every connection, waiting for the ones in use.
    pub async fn close(&self) {
        match self {
            Db::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Makes the transaction's changes permanent.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// The current time as the database stores it: naive UTC, truncated to microseconds so
/// both backends hold and compare exactly the same values.
pub fn now() -> NaiveDateTime {
    truncate(Utc::now().naive_utc())
}

/// A timestamp as sqlx stores it in SQLite (and PostgreSQL reads as `timestamp`), for
/// statements that take many rows as one JSON parameter: compared with stored values, it
/// must be the very same text.
pub fn db_time(t: NaiveDateTime) -> String {
    t.format("%F %T%.f").to_string()
}

/// Truncates a timestamp to the microsecond precision the database keeps.
pub fn truncate(t: NaiveDateTime) -> NaiveDateTime {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// A JSON object stored as TEXT, decoded when the row is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl TryFrom<String> for JsonObject {
    type Error = StoreError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(StoreError::CorruptJson {
                column: "data",
                reason: "not a JSON object".into(),
            }),
            Err(e) => Err(StoreError::CorruptJson {
                column: "data",
                reason: e.to_string(),
            }),
        }
    }
}

impl JsonObject {
    /// The text stored in the database.
    pub fn to_text(&self) -> String {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_truncated_to_microseconds() {
        let t = now();
        assert_eq!(t.and_utc().timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn json_object_rejects_non_objects() {
        assert!(JsonObject::try_from("[1]".to_string()).is_err());
        assert!(JsonObject::try_from("{".to_string()).is_err());
        let o = JsonObject::try_from(r#"{"b":1,"a":2}"#.to_string()).unwrap();
        // key order is kept as stored
        assert_eq!(o.to_text(), r#"{"b":1,"a":2}"#);
    }
}
