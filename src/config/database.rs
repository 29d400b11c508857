//! Database URLs: our `database.url` and the original's SQLAlchemy URLs (`docs/config.md` §3).
//!
//! SQLAlchemy and sqlx disagree on slashes: for SQLAlchemy `sqlite:///x.db` is the relative
//! file `x.db` and `sqlite:////x.db` the absolute `/x.db`, while sqlx reads `sqlite:///x.db` as
//! absolute. SQLAlchemy URLs are therefore translated by SQLAlchemy's rules, never passed through.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// Where the service keeps its data; the store opens a pool from it.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    /// An SQLite file, created if missing; the path `:memory:` means an in-memory database.
    Sqlite {
        /// The database file, absolute or relative to the working directory.
        path: PathBuf,
    },
    /// A PostgreSQL database, as a normalized `postgres://…` URL that may hold a password.
    Postgres {
        /// `postgres://[user[:password]@][host][:port][/database][?query]`.
        url: SecretString,
    },
}

impl DatabaseUrl {
    /// The PostgreSQL URL with any password replaced by `***`, for logs and banners.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => {
                match split_scheme(url.expose_secret()).and_then(|(_, rest)| PgParts::parse(rest)) {
                    Ok(mut parts) => {
                        if parts.password.is_some() {
                            parts.password = Some("***".to_owned());
                        }
                        parts.render()
                    }
                    Err(_) => "postgres://***".to_owned(),
                }
            }
        }
    }
}

/// Why a database URL was rejected. Messages never repeat the URL, which may hold a password.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DatabaseUrlError {
    /// The text has no `scheme://` prefix.
    #[error("not a database URL: expected sqlite://PATH or postgres://…")]
    NotAUrl,
    /// The scheme names a database or driver we do not support.
    #[error(
        "unsupported database URL scheme '{0}': expected sqlite:// or postgres:// (postgresql:// too)"
    )]
    UnsupportedScheme(String),
    /// `sqlite://` with nothing after it.
    #[error("the SQLite URL names no file: write sqlite:///abs/path.db or sqlite://relative.db")]
    EmptySqlitePath,
    /// A query string on our own `sqlite://PATH` form, which has none.
    #[error("query parameters are not supported in sqlite:// URLs")]
    SqliteQuery,
    /// The port is not a number in 1..=65535.
    #[error("invalid port in the PostgreSQL URL: expected 1..=65535")]
    InvalidPort,
    /// An IPv6 host with no closing bracket.
    #[error("invalid host in the PostgreSQL URL: unclosed '['")]
    InvalidHost,
}

/// A translated SQLAlchemy URL, with what is needed to compare `sync_url` and `async_url`.
#[derive(Debug, Clone)]
pub(crate) struct Translated {
    pub(crate) url: DatabaseUrl,
    /// Which database the URL names, ignoring driver, credentials and options.
    pub(crate) target: Target,
    /// An SQLite query string (driver options) was dropped.
    pub(crate) dropped_query: bool,
}

/// The identity of a database, so two URLs can be checked to name the same one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres {
        host: String,
        port: String,
        database: String,
    },
}

/// Parses our `database.url`: `sqlite://PATH`, `postgres://…` or `postgresql://…`.
///
/// Here `sqlite:///var/lib/duffy.db` is the absolute path and `sqlite://duffy.db` a relative one.
pub fn parse_database_url(text: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
    let text = text.trim();
    let (scheme, rest) = split_scheme(text)?;
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            if rest.contains('?') {
                return Err(DatabaseUrlError::SqliteQuery);
            }
            if rest.is_empty() {
                return Err(DatabaseUrlError::EmptySqlitePath);
            }
            Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(rest),
            })
        }
        "postgres" | "postgresql" => Ok(PgParts::parse(rest)?.into_url()),
        other => Err(DatabaseUrlError::UnsupportedScheme(other.to_owned())),
    }
}

/// Translates one of the original's SQLAlchemy URLs (`sync_url` or `async_url`).
///
/// `postgresql[+driver]://` becomes `postgres://`; `sqlite[+driver]:////abs` is `/abs` and
/// `sqlite[+driver]:///rel` is `rel`, by SQLAlchemy's rules.
pub fn translate_sqlalchemy_url(text: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
    translate(text).map(|t| t.url)
}

/// [`translate_sqlalchemy_url`] plus the database's identity and what was dropped.
pub(crate) fn translate(text: &str) -> Result<Translated, DatabaseUrlError> {
    let text = text.trim();
    let (scheme, rest) = split_scheme(text)?;
    let lower = scheme.to_ascii_lowercase();
    let dialect = lower.split('+').next().unwrap_or_default();
    match dialect {
        "sqlite" => {
            let (location, query) = match rest.split_once('?') {
                Some((location, query)) => (location, Some(query)),
                None => (rest, None),
            };
            // SQLAlchemy: everything after the third slash is the path; none means in-memory.
            let file = location.strip_prefix('/').unwrap_or(location);
            let path = if file.is_empty() {
                PathBuf::from(":memory:")
            } else {
                PathBuf::from(file)
            };
            Ok(Translated {
                url: DatabaseUrl::Sqlite { path: path.clone() },
                target: Target::Sqlite(path),
                dropped_query: query.is_some_and(|q| !q.is_empty()),
            })
        }
        "postgresql" | "postgres" => {
            let parts = PgParts::parse(rest)?;
            let target = parts.target();
            Ok(Translated {
                url: parts.into_url(),
                target,
                dropped_query: false,
            })
        }
        _ => Err(DatabaseUrlError::UnsupportedScheme(scheme.to_owned())),
    }
}

/// Splits `scheme://rest`.
fn split_scheme(text: &str) -> Result<(&str, &str), DatabaseUrlError> {
    let (scheme, rest) = text.split_once("://").ok_or(DatabaseUrlError::NotAUrl)?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok((scheme, rest))
    } else {
        Err(DatabaseUrlError::NotAUrl)
    }
}

/// The pieces of a PostgreSQL URL, parsed the way SQLAlchemy's URL regex does.
#[derive(Debug, Clone, PartialEq)]
struct PgParts {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<String>,
    database: Option<String>,
    query: Option<String>,
}

impl PgParts {
    /// Parses what follows `scheme://`; user names and passwords are percent-decoded.
    fn parse(rest: &str) -> Result<Self, DatabaseUrlError> {
        // SQLAlchemy: `user[:password]@` where the user holds no ':' or '/' and the password
        // no '@'. A '@' after a '/' in the user part belongs to the path or query instead.
        let (userinfo, after) = match rest.split_once('@') {
            Some((info, after)) => {
                let user = info.split(':').next().unwrap_or_default();
                if user.contains('/') {
                    (None, rest)
                } else {
                    (Some(info), after)
                }
            }
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
                None => (Some(percent_decode(info)), None),
            },
            None => (None, None),
        };

        let host_end = after.find(['/', '?']).unwrap_or(after.len());
        let (hostport, tail) = after.split_at(host_end);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (inner, after_bracket) = v6.split_once(']').ok_or(DatabaseUrlError::InvalidHost)?;
            let port = match after_bracket.strip_prefix(':') {
                Some(p) => Some(p),
                None if after_bracket.is_empty() => None,
                None => return Err(DatabaseUrlError::InvalidHost),
            };
            (format!("[{inner}]"), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n.to_string()),
                _ => return Err(DatabaseUrlError::InvalidPort),
            },
            None => None,
        };

        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (tail, None),
        };
        let database = path
            .strip_prefix('/')
            .filter(|db| !db.is_empty())
            .map(str::to_owned);

        Ok(PgParts {
            user: user.filter(|u| !u.is_empty()),
            password,
            host,
            port,
            database,
            query: query.filter(|q| !q.is_empty()),
        })
    }

    /// The normalized `postgres://` form, with credentials percent-encoded for sqlx.
    fn render(&self) -> String {
        let mut out = String::from("postgres://");
        if let Some(user) = &self.user {
            out.push_str(&percent_encode(user));
            if let Some(password) = &self.password {
                out.push(':');
                if password == "***" {
                    out.push_str(password);
                } else {
                    out.push_str(&percent_encode(password));
                }
            }
            out.push('@');
        }
        out.push_str(&self.host);
        if let Some(port) = &self.port {
            out.push(':');
            out.push_str(port);
        }
        if let Some(db) = &self.database {
            out.push('/');
            out.push_str(db);
        }
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    fn target(&self) -> Target {
        Target::Postgres {
            host: self.host.to_ascii_lowercase(),
            port: self.port.clone().unwrap_or_else(|| "5432".to_owned()),
            database: self.database.clone().unwrap_or_default(),
        }
    }

    fn into_url(self) -> DatabaseUrl {
        DatabaseUrl::Postgres {
            url: SecretString::from(self.render()),
        }
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept literally, as SQLAlchemy's `unquote` does.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Encodes everything but RFC 3986 unreserved characters, so any password survives a URL parser.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &DatabaseUrl) -> String {
        match url {
            DatabaseUrl::Postgres { url } => url.expose_secret().to_owned(),
            DatabaseUrl::Sqlite { path } => panic!("expected postgres, got sqlite {path:?}"),
        }
    }

    fn sqlite(url: &DatabaseUrl) -> PathBuf {
        match url {
            DatabaseUrl::Sqlite { path } => path.clone(),
            DatabaseUrl::Postgres { .. } => panic!("expected sqlite"),
        }
    }

    #[test]
    fn our_sqlite_urls() {
        let abs = parse_database_url("sqlite:///var/lib/duffy/duffy.db").unwrap();
        assert_eq!(sqlite(&abs), PathBuf::from("/var/lib/duffy/duffy.db"));
        let rel = parse_database_url("sqlite://duffy.db").unwrap();
        assert_eq!(sqlite(&rel), PathBuf::from("duffy.db"));
        assert_eq!(
            parse_database_url("sqlite://").unwrap_err(),
            DatabaseUrlError::EmptySqlitePath
        );
        assert_eq!(
            parse_database_url("sqlite://x.db?mode=ro").unwrap_err(),
            DatabaseUrlError::SqliteQuery
        );
    }

    #[test]
    fn our_postgres_urls() {
        let url = parse_database_url("postgresql://duffy@db:5432/duffy").unwrap();
        assert_eq!(pg(&url), "postgres://duffy@db:5432/duffy");
        let socket = parse_database_url("postgres:///duffy").unwrap();
        assert_eq!(pg(&socket), "postgres:///duffy");
        assert!(matches!(
            parse_database_url("mysql://x/y").unwrap_err(),
            DatabaseUrlError::UnsupportedScheme(s) if s == "mysql"
        ));
        assert_eq!(
            parse_database_url("/var/lib/duffy.db").unwrap_err(),
            DatabaseUrlError::NotAUrl
        );
        assert_eq!(
            parse_database_url("postgres://h:99999/db").unwrap_err(),
            DatabaseUrlError::InvalidPort
        );
    }

    #[test]
    fn sqlalchemy_postgres_urls_are_translated() {
        let cases = [
            (
                "postgresql+psycopg2://duffy:secret@db.example.org/duffy",
                "postgres://duffy:secret@db.example.org/duffy",
            ),
            (
                "postgresql+asyncpg://duffy:secret@db.example.org:5433/duffy?sslmode=require",
                "postgres://duffy:secret@db.example.org:5433/duffy?sslmode=require",
            ),
            ("postgresql://u@[::1]:5432/d", "postgres://u@[::1]:5432/d"),
            ("postgresql:///duffy", "postgres:///duffy"),
            // A raw '/' or '@'-free oddity in the password is re-encoded for sqlx.
            ("postgresql://u:p/ss?w@h/d", "postgres://u:p%2Fss%3Fw@h/d"),
            ("postgresql://u:p%40ss@h/d", "postgres://u:p%40ss@h/d"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                pg(&translate_sqlalchemy_url(input).unwrap()),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn sqlalchemy_sqlite_urls_follow_sqlalchemy_slashes() {
        let abs = translate_sqlalchemy_url("sqlite:////var/lib/duffy/duffy.db").unwrap();
        assert_eq!(sqlite(&abs), PathBuf::from("/var/lib/duffy/duffy.db"));
        let rel = translate_sqlalchemy_url("sqlite:///duffy.db").unwrap();
        assert_eq!(sqlite(&rel), PathBuf::from("duffy.db"));
        let aio = translate_sqlalchemy_url("sqlite+aiosqlite:////abs/path").unwrap();
        assert_eq!(sqlite(&aio), PathBuf::from("/abs/path"));
        let mem = translate_sqlalchemy_url("sqlite:///:memory:").unwrap();
        assert_eq!(sqlite(&mem), PathBuf::from(":memory:"));
        let t = translate("sqlite:///x.db?check_same_thread=false").unwrap();
        assert!(t.dropped_query);
        assert!(translate_sqlalchemy_url("mysql+pymysql://h/d").is_err());
    }

    #[test]
    fn targets_compare_databases() {
        let sync = translate("postgresql+psycopg2://a:b@DB/duffy").unwrap();
        let asyn = translate("postgresql+asyncpg://c@db:5432/duffy").unwrap();
        assert_eq!(sync.target, asyn.target);
        let other = translate("postgresql+asyncpg://c@db/other").unwrap();
        assert_ne!(sync.target, other.target);
    }

    #[test]
    fn redaction_hides_passwords() {
        let url = parse_database_url("postgres://duffy:secret@db/duffy").unwrap();
        assert_eq!(url.redacted(), "postgres://duffy:***@db/duffy");
        assert!(!format!("{url:?}").contains("secret"));
    }
}
