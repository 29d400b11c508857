//! Programs of the machine the tests need (sshd, Chromium): bounded runs, and installing a
//! missing Debian package once, as root, or failing with what to do about it.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// How long an `apt-get` may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// Runs a command with an empty stdin to its end within `limit`; its output, or why it did
/// not finish.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    crate::process::run_bounded(cmd, None, limit)
}

/// Makes sure `program` exists, installing the Debian `package` once if it does not (as
/// root, with `apt-get`). Panics with the cause and the way out (`skip_var`) when it
/// cannot.
pub fn ensure_debian_package(program: &str, package: &str, skip_var: &str) {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(program).exists() {
        return;
    }
    let advice = format!("Install {package}, or set {skip_var}=1 to skip these tests.");
    let uid = Command::new("id").arg("-u").output().map_or_else(
        |_| String::new(),
        |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
    );
    assert!(
        uid == "0",
        "{program} is missing and cannot be installed: not running as root (uid {uid:?}). {advice}"
    );
    let install = || {
        run_bounded(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            INSTALL_LIMIT,
        )
    };
    let mut outcome = install();
    if !matches!(&outcome, Ok(o) if o.status.success()) {
        // The package lists may be missing in a fresh container.
        let _ = run_bounded(Command::new("apt-get").arg("update"), INSTALL_LIMIT);
        outcome = install();
    }
    match outcome {
        Ok(o) if o.status.success() && Path::new(program).exists() => {}
        Ok(o) => panic!(
            "{program} is missing and `apt-get install -y {package}` failed ({}): {}\n{advice}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            panic!("{program} is missing and {package} could not be installed: {e}\n{advice}")
        }
    }
}

/// Whether `var` asks to skip a group of tests; says so, visibly, when it does.
pub fn skipped(var: &str, what: &str) -> bool {
    crate::skip::requested(var, what)
}
