//! A PostgreSQL database of a test's own inside `DUFFY_TEST_POSTGRES_URL`, dropped with it.
//!
//! Shared by the integration tests (`tests/api`) and the compat tests (`compat-tests`), each
//! of which includes this file with `#[path]`.
//!
//! The PostgreSQL variants of the tests are ignored unless the variable was set when the
//! tests were built (`cfg(duffy_postgres_tests)`, see `build.rs`); one that runs anyway
//! (`cargo test -- --include-ignored`, or a test binary run without the variable) fails
//! with [`required_postgres_url`]'s message rather than passing without running.

use sqlx::Connection;

/// The PostgreSQL URL tests create their databases in, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("DUFFY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The PostgreSQL URL a PostgreSQL variant runs on; panics, saying what to set, without it.
pub fn required_postgres_url() -> String {
    postgres_url().unwrap_or_else(|| {
        panic!(
            "DUFFY_TEST_POSTGRES_URL is not set, and this PostgreSQL variant needs it: set it to \
             a PostgreSQL server where the user may create databases (e.g. \
             postgres://postgres@127.0.0.1:5432/postgres). Without it, `cargo test` reports \
             the PostgreSQL variants as ignored."
        )
    })
}

/// A fresh database `duffy_t_<uuid>` on the server of `DUFFY_TEST_POSTGRES_URL`.
pub struct PgDatabase {
    /// Its URL: the same server and options, another database name.
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    /// Creates the database; panics when `DUFFY_TEST_POSTGRES_URL` is unset or unusable.
    pub async fn create() -> PgDatabase {
        let admin = required_postgres_url();
        let name = format!("duffy_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to DUFFY_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let (base, query) = admin
            .split_once('?')
            .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
        let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
        let url = match query {
            Some(q) => format!("{prefix}/{name}?{q}"),
            None => format!("{prefix}/{name}"),
        };
        PgDatabase { url, admin, name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = std::mem::take(&mut self.admin);
        let name = std::mem::take(&mut self.name);
        // Drop cannot await: do it on a runtime of its own. FORCE ends the connections of
        // servers that were killed rather than stopped.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}
