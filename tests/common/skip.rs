//! Tests skipped knowingly (`DUFFY_SKIP_…=1`), and saying so where it can be seen.
//!
//! Shared by the integration tests (`tests/api`) and the compat tests (`compat-tests`), each
//! of which includes this file with `#[path]`. A test cannot mark itself skipped once it
//! runs: it returns early and libtest counts it as passed. So the test writes one line to
//! the process's stderr itself; `eprintln!` would be captured by libtest and shown only for
//! a failing test.

use std::io::Write;

/// Whether `var` asks to skip a group of tests (set to anything but empty or `0`). When it
/// does, writes one line naming the test and the variable, past libtest's capture.
pub fn requested(var: &str, what: &str) -> bool {
    let skip = std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        // libtest runs each test on a thread named after it.
        let thread = std::thread::current();
        let test = thread.name().filter(|n| *n != "main").unwrap_or("a test");
        let _ = writeln!(
            std::io::stderr(),
            "note: {test}: {what} skipped because {var} is set; counted as passed"
        );
    }
    skip
}
