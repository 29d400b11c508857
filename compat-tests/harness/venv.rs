//! The cached virtualenv with the real python-cicoclient 0.4.7 (`real-clients.md` §1).
//!
//! It lives in `.venv-compat/cico` under the repository root (git-ignored) and is created
//! at most once per test binary run, only when `bin/cico --version` does not already print
//! `cico 0.4.7`. An exclusive `flock` on `.venv-compat/cico.lock` keeps two test processes
//! from installing into it at the same time (a virtualenv cannot be built elsewhere and
//! renamed into place: its scripts' shebangs name its absolute path).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tokio::sync::OnceCell;

/// What `cico --version` prints for the version under test.
const VERSION: &str = "cico 0.4.7";

/// The client and the dependency set known to work with it (`real-clients.md` §1).
const REQUIREMENTS: &[&str] = &[
    "python-cicoclient==0.4.7",
    "cliff==4.17.0",
    "cmd2==4.3.1",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "six==1.17.0",
    "pbr==7.1.3",
    "stevedore==5.10.0",
    "PrettyTable==3.18.0",
    "PyYAML==6.0.3",
];

/// The outcome of the one installation attempt of this run, shared by all tests.
static CICO_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

/// The virtualenv's folder, installed on first use; panics with the cause (and the way to
/// skip these tests) when it cannot be installed.
pub async fn cico_venv() -> PathBuf {
    let result = CICO_VENV
        .get_or_init(|| async {
            tokio::task::spawn_blocking(ensure_installed)
                .await
                .unwrap_or_else(|e| Err(format!("the installer thread failed: {e}")))
        })
        .await;
    match result {
        Ok(path) => path.clone(),
        Err(cause) => panic!(
            "cannot install the real python-cicoclient 0.4.7 for the compat tests: {cause}\n\
             Set DUFFY_SKIP_REAL_CLIENTS=1 to skip the compat tests knowingly."
        ),
    }
}

/// The cached virtualenv, creating it if it is missing or incomplete.
fn ensure_installed() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-compat");
    let venv = root.join("cico");
    if has_cico(&venv) {
        return Ok(venv);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let lock_path = root.join("cico.lock");
    let lock = File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another process may have finished the installation while this one waited.
    if !has_cico(&venv) {
        install(&venv)?;
    }
    drop(lock);
    Ok(venv)
}

/// Whether `venv` holds a working cico of the version under test.
fn has_cico(venv: &Path) -> bool {
    Command::new(venv.join("bin/cico"))
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text).trim() == VERSION
        })
}

/// Creates `venv` from scratch with `python3` from `PATH` and installs the pinned set.
fn install(venv: &Path) -> Result<(), String> {
    let started = Instant::now();
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .map_err(|e| format!("removing the incomplete {}: {e}", venv.display()))?;
    }
    let created = run(Command::new("python3").args(["-m", "venv"]).arg(venv));
    if let Err(e) = created {
        let _ = std::fs::remove_dir_all(venv);
        return Err(format!("`python3 -m venv {}` failed: {e}", venv.display()));
    }
    // Short network bounds: an unreachable index should fail in about a minute, not ten.
    let installed = run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(["--timeout", "20", "--retries", "2"])
        .args(REQUIREMENTS));
    if let Err(e) = installed {
        // Leave nothing half-installed behind: the next run starts over.
        let _ = std::fs::remove_dir_all(venv);
        return Err(format!(
            "`pip install python-cicoclient==0.4.7` failed (is PyPI reachable from here?): {e}"
        ));
    }
    if !has_cico(venv) {
        return Err(format!(
            "{} does not print `{VERSION}` after the installation",
            venv.join("bin/cico").display()
        ));
    }
    eprintln!(
        "compat: installed python-cicoclient 0.4.7 into {} in {:.1} s",
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs an installer command to completion; the error carries its status and output tail.
fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{}\n{}", out.status, tail.join("\n")))
}
