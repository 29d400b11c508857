//! The compat harness: the cached client virtualenvs ([`venv`]), our server processes
//! ([`server`]) and isolated, bounded client runs ([`cico`], [`client`] for `duffy client`).

pub mod cico;
pub mod client;
#[path = "../../tests/common/mariadb.rs"]
#[allow(dead_code, reason = "the import tests use part of the shared harness")]
pub mod mariadb;
pub mod original;
#[path = "../../tests/common/pg.rs"]
mod pg;
#[path = "../../tests/common/process.rs"]
mod process;
mod server;
#[path = "../../tests/common/skip.rs"]
mod skip;
pub mod venv;

pub use cico::Cico;
pub use client::{Cli, ClientHome};
pub use server::{Backend, Duffy, Prepared, Tenant, hostnames, required_postgres_url};

/// A client process isolated in `home`: its own `HOME` and `XDG_CONFIG_HOME`, nothing else
/// from the machine's environment but a minimal `PATH`, no stdin, killed with its handle.
pub fn isolated(program: std::path::PathBuf, home: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("LANG", "C.UTF-8")
        .current_dir(home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Whether `DUFFY_SKIP_REAL_CLIENTS` asks to skip the compat tests; says so, visibly, when
/// it does.
pub fn skipped() -> bool {
    skip::requested("DUFFY_SKIP_REAL_CLIENTS", "compat test")
}

/// Runs each scenario on SQLite (`serve --legacy`) and on PostgreSQL (`serve` +
/// `serve-legacy`): `mod NAME { fn sqlite(); fn postgres(); }`. The PostgreSQL variant is
/// ignored unless `DUFFY_TEST_POSTGRES_URL` was set when the tests were built (`build.rs`).
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if $crate::harness::skipped() {
                    return;
                }
                super::$name($crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(duffy_postgres_tests),
                ignore = "PostgreSQL variant: set DUFFY_TEST_POSTGRES_URL to run it"
            )]
            async fn postgres() {
                if $crate::harness::skipped() {
                    return;
                }
                $crate::harness::required_postgres_url();
                super::$name($crate::harness::Backend::Postgres).await
            }
        }
    )*};
}
