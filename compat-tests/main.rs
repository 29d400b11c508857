//! Compat tests: the real python-cicoclient 0.4.7 (`cico` CLI and `CicoWrapper`) from PyPI
//! against our real server binary, on SQLite (`duffy serve --legacy`) and, with
//! `DUFFY_TEST_POSTGRES_URL`, on PostgreSQL (`duffy serve-legacy` in front of `duffy serve`);
//! and the original `duffy client` 3.4.0 against our server and against our own client.
//!
//! The clients are installed once into `.venv-compat/cico` and `.venv-compat/duffy` (see
//! `harness::venv`); `DUFFY_SKIP_REAL_CLIENTS=1` skips every test here. See
//! `compat-tests/README.md`.

#![expect(
    clippy::unwrap_used,
    reason = "a failing test should stop at the failing line"
)]

mod harness;

mod client;
mod formats;
mod import;
mod import_v2;
mod inventory;
mod keys;
mod node_done;
mod node_get;
mod raw_http;
mod retry;
mod setup;
mod wrapper;
