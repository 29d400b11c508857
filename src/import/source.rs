//! Where `duffy import` reads from: a Duffy 3.x database (SQLite or PostgreSQL, named by
//! a SQLAlchemy URL as the original's `database.sqlalchemy.sync_url`) or a Duffy v2
//! database (MariaDB/MySQL). The source is only ever read.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::ImportError;
use crate::config::{self, DatabaseUrl};

/// How long connecting to the source may take before the import gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A source database, parsed but not yet opened.
#[derive(Debug, Clone)]
pub enum Source {
    /// The original Duffy 3.x: its SQLite file or PostgreSQL database.
    Duffy3(DatabaseUrl),
    /// A Duffy v2 MariaDB (or MySQL) database, as `mysql://user:pass@host:port/db`.
    V2 {
        /// The URL in the form sqlx reads (`mysql://…`), password included.
        url: SecretString,
    },
}

/// Why a source could not be named.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL's scheme names no database we import from.
    #[error(
        "unsupported source URL scheme '{0}': expected sqlite:// or postgresql:// (a Duffy 3.x \
         database, SQLAlchemy spellings such as postgresql+psycopg:// too) or mysql:// (a Duffy v2 database)"
    )]
    Scheme(String),
    /// The URL does not parse.
    #[error("invalid source URL: {0}")]
    Invalid(String),
    /// `--from-config` could not be read.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// `--from-config` names no database.
    #[error("{path}: no database.sqlalchemy.sync_url in this configuration")]
    NoSyncUrl {
        /// The file or directory read.
        path: PathBuf,
    },
}

impl Source {
    /// Parses `--from URL`.
    pub fn parse(text: &str) -> Result<Source, SourceError> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| SourceError::Invalid("expected scheme://…".into()))?;
        let lower = scheme.to_ascii_lowercase();
        let dialect = lower.split('+').next().unwrap_or_default();
        match dialect {
            "sqlite" | "postgresql" | "postgres" => config::translate_sqlalchemy_url(text)
                .map(Source::Duffy3)
                .map_err(|e| SourceError::Invalid(e.to_string())),
            "mysql" | "mariadb" => {
                let url = format!("mysql://{rest}");
                // Parsed once here so that a malformed URL fails before anything else.
                MySqlConnectOptions::from_str(&url)
                    .map_err(|e| SourceError::Invalid(redact(&e.to_string(), rest)))?;
                Ok(Source::V2 {
                    url: SecretString::from(url),
                })
            }
            _ => Err(SourceError::Scheme(scheme.to_owned())),
        }
    }

    /// `--from-config PATH`: the original's configuration file or directory, whose
    /// `database.sqlalchemy.sync_url` names the source.
    pub fn from_config(path: &Path) -> Result<Source, SourceError> {
        let url = config::original_sync_url(path)?.ok_or_else(|| SourceError::NoSyncUrl {
            path: path.to_path_buf(),
        })?;
        Source::parse(&url)
    }

    /// The source for messages and the record of imports: no password.
    pub fn redacted(&self) -> String {
        match self {
            Source::Duffy3(url) => url.redacted(),
            Source::V2 { url } => {
                let text = url.expose_secret();
                match text.split_once("://").and_then(|(_, rest)| {
                    let (info, after) = rest.split_once('@')?;
                    let user = info.split(':').next().unwrap_or_default();
                    Some(if info.contains(':') {
                        format!("mysql://{user}:***@{after}")
                    } else {
                        format!("mysql://{user}@{after}")
                    })
                }) {
                    Some(shown) => shown,
                    None => text.to_owned(),
                }
            }
        }
    }

    /// Opens the source read-only.
    pub(crate) async fn open(&self) -> Result<SourceDb, ImportError> {
        let unreachable = |reason: String| ImportError::Unreachable {
            url: self.redacted(),
            reason,
        };
        match self {
            Source::Duffy3(DatabaseUrl::Sqlite { path }) => {
                if !path.exists() {
                    let mut reason = format!("no such file: {}", path.display());
                    if path.is_relative() && Path::new("/").join(path).exists() {
                        reason.push_str(&format!(
                            " (SQLAlchemy URLs name a relative path after three slashes: \
                             sqlite:////{} is the absolute one)",
                            path.display()
                        ));
                    }
                    return Err(unreachable(reason));
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .create_if_missing(false);
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map(SourceDb::Sqlite)
                    .map_err(|e| unreachable(e.to_string()))
            }
            Source::Duffy3(DatabaseUrl::Postgres { url }) => {
                let options = PgConnectOptions::from_str(url.expose_secret())
                    .map_err(|e| unreachable(e.to_string()))?;
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    // Nothing the import does may change the source.
                    .after_connect(|c, _| {
                        Box::pin(async move {
                            sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                                .execute(c)
                                .await
                                .map(|_| ())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map(SourceDb::Postgres)
                    .map_err(|e| unreachable(e.to_string()))
            }
            Source::V2 { url } => {
                let options = MySqlConnectOptions::from_str(url.expose_secret())
                    .map_err(|e| unreachable(e.to_string()))?;
                MySqlPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map(SourceDb::MySql)
                    .map_err(|e| unreachable(e.to_string()))
            }
        }
    }
}

/// Replaces the password part of `rest` (`user:pass@…`) wherever it shows in `text`.
fn redact(text: &str, rest: &str) -> String {
    match rest
        .split_once('@')
        .and_then(|(info, _)| info.split_once(':'))
    {
        Some((_, password)) if !password.is_empty() => text.replace(password, "***"),
        _ => text.to_owned(),
    }
}

/// An open source database.
pub(crate) enum SourceDb {
    /// A Duffy 3.x SQLite file, opened read-only.
    Sqlite(SqlitePool),
    /// A Duffy 3.x PostgreSQL database, in read-only transactions.
    Postgres(PgPool),
    /// A Duffy v2 MariaDB database.
    MySql(MySqlPool),
}

/// One source row, every column as text (`None` for SQL NULL); the queries cast.
pub(crate) type TextRow = Vec<Option<String>>;

impl SourceDb {
    /// Runs `sql` (which must select text columns) and hands each row to `each`.
    pub(crate) async fn each_row<F>(
        &self,
        sql: &'static str,
        mut each: F,
    ) -> Result<(), ImportError>
    where
        F: FnMut(TextRow) -> Result<(), ImportError>,
    {
        use futures::TryStreamExt;
        macro_rules! rows {
            ($pool:expr) => {{
                let mut stream = sqlx::query(sql).fetch($pool);
                while let Some(row) = stream.try_next().await.map_err(ImportError::Source)? {
                    let mut cells = Vec::with_capacity(row.columns().len());
                    for i in 0..row.columns().len() {
                        cells.push(
                            row.try_get::<Option<String>, _>(i)
                                .map_err(ImportError::Source)?,
                        );
                    }
                    each(cells)?;
                }
            }};
        }
        match self {
            SourceDb::Sqlite(pool) => rows!(pool),
            SourceDb::Postgres(pool) => rows!(pool),
            SourceDb::MySql(pool) => rows!(pool),
        }
        Ok(())
    }

    /// All rows of `sql` at once (small tables).
    pub(crate) async fn rows(&self, sql: &'static str) -> Result<Vec<TextRow>, ImportError> {
        let mut all = Vec::new();
        self.each_row(sql, |row| {
            all.push(row);
            Ok(())
        })
        .await?;
        Ok(all)
    }

    /// The names of the tables the source holds.
    pub(crate) async fn tables(&self) -> Result<Vec<String>, ImportError> {
        let sql = match self {
            SourceDb::Sqlite(_) => "SELECT name FROM sqlite_master WHERE type = 'table'",
            SourceDb::Postgres(_) => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema()"
            }
            SourceDb::MySql(_) => {
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE()"
            }
        };
        Ok(self
            .rows(sql)
            .await?
            .into_iter()
            .filter_map(|mut r| r.pop().flatten())
            .collect())
    }

    /// Closes the connection.
    pub(crate) async fn close(&self) {
        match self {
            SourceDb::Sqlite(pool) => pool.close().await,
            SourceDb::Postgres(pool) => pool.close().await,
            SourceDb::MySql(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_kind_of_source() {
        for url in [
            "sqlite:////var/lib/duffy/duffy.db",
            "sqlite+pysqlite:///duffy.db",
            "postgresql://duffy@db/duffy",
            "postgresql+psycopg://duffy:pw@db:5433/duffy",
            "postgresql+psycopg2://duffy@db/duffy",
            "postgresql+asyncpg://duffy@db/duffy",
            "postgres://duffy@db/duffy",
        ] {
            assert!(matches!(Source::parse(url), Ok(Source::Duffy3(_))), "{url}");
        }
        for url in [
            "mysql://duffy:pw@127.0.0.1:3306/duffy",
            "mysql+pymysql://duffy:pw@127.0.0.1/duffy",
            "mariadb://duffy@localhost/duffy",
        ] {
            assert!(matches!(Source::parse(url), Ok(Source::V2 { .. })), "{url}");
        }
        let e = Source::parse("oracle://x@y/z").unwrap_err();
        assert!(e.to_string().contains("'oracle'"), "{e}");
        assert!(Source::parse("duffy.db").is_err());
    }

    #[test]
    fn sqlalchemy_slashes_and_redaction() {
        match Source::parse("sqlite:////abs/duffy.db").unwrap() {
            Source::Duffy3(DatabaseUrl::Sqlite { path }) => {
                assert_eq!(path, PathBuf::from("/abs/duffy.db"))
            }
            other => panic!("{other:?}"),
        }
        let s = Source::parse("postgresql+psycopg://duffy:secret@db/duffy").unwrap();
        assert!(!s.redacted().contains("secret"), "{}", s.redacted());
        let s = Source::parse("mysql://duffy:secret@db:3306/duffy").unwrap();
        assert_eq!(s.redacted(), "mysql://duffy:***@db:3306/duffy");
    }
}
