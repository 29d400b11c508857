//! Build-time switches for the tests.
//!
//! `cfg(duffy_postgres_tests)` is set when `DUFFY_TEST_POSTGRES_URL` is set (and not empty)
//! while building. Without it, the PostgreSQL variant of each test is compiled with
//! `#[ignore = "PostgreSQL variant: …"]`, so that a plain `cargo test` reports those
//! variants as ignored instead of counting them as passed (see CONTRIBUTING.md). The URL
//! itself is read again when the tests run; only its presence matters here. Changing its
//! value re-runs this script, which rebuilds the crate.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DUFFY_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(duffy_postgres_tests)");
    if std::env::var_os("DUFFY_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=duffy_postgres_tests");
    }
}
