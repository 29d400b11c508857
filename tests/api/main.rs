//! Integration tests: the real server on port 0, a fresh database per test, every test on
//! SQLite and (with `DUFFY_TEST_POSTGRES_URL`) on PostgreSQL.

#![expect(
    clippy::unwrap_used,
    reason = "a failing test should stop at the failing line"
)]

mod helpers;
#[path = "../common/mariadb.rs"]
mod mariadb;
#[path = "../common/pg.rs"]
mod pg;
#[path = "../common/process.rs"]
mod process;
#[path = "../common/skip.rs"]
mod skip;
#[path = "../common/venv.rs"]
mod venv;

mod admin;
mod ansible;
mod auth;
mod backoff;
mod bench;
mod browser;
mod chaos;
mod cli;
mod cli_admin;
mod client;
mod concurrency;
mod connections;
mod contextualize;
mod docs;
mod idempotency;
mod jobs;
mod legacy;
mod legacy_admin;
mod mariadb_harness;
mod mechanisms;
mod metrics;
mod nodes;
mod pools;
mod readme;
mod real_ssh;
mod recycle;
mod replay;
mod retire_pool;
mod robustness;
mod routes;
mod sessions;
mod sshd;
mod status;
mod store;
mod system;
mod tenants;
