//! Cached virtualenvs of real Python tools from PyPI (the original clients, ansible-core),
//! shared by the integration tests (`tests/api`) and the compat tests (`compat-tests`),
//! each of which includes this file with `#[path]`.
//!
//! They live in `.venv-compat/<name>` under the repository root (git-ignored), and each is
//! created at most once per test binary run, only when its check command does not already
//! print the version under test. An exclusive `flock` on `.venv-compat/<name>.lock` keeps
//! two test processes from installing into the same one at the same time (a virtualenv
//! cannot be built elsewhere and renamed into place: its scripts' shebangs name its absolute
//! path). pip's network bounds are short, so an unreachable index fails in about a minute.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tokio::sync::OnceCell;

/// One cached virtualenv: what goes into it and how to tell that it is complete.
pub struct Venv {
    /// The folder under `.venv-compat`, also the name of its lock file.
    pub name: &'static str,
    /// The package as a person would name it in a message.
    pub what: &'static str,
    /// The program (relative to the venv) and arguments whose output proves the install.
    pub check: &'static [&'static str],
    /// The first line the check prints (trimmed).
    pub expect: &'static str,
    /// The client and the dependency set known to work with it.
    pub requirements: &'static [&'static str],
}

/// `venv`'s folder from `cell`, installed on first use (once per test binary, under a
/// lock between processes); the error says why it could not be installed.
pub async fn cached(
    venv: &'static Venv,
    cell: &'static OnceCell<Result<PathBuf, String>>,
) -> Result<PathBuf, String> {
    cell.get_or_init(|| async {
        tokio::task::spawn_blocking(|| ensure_installed(venv))
            .await
            .unwrap_or_else(|e| Err(format!("the installer thread failed: {e}")))
    })
    .await
    .clone()
}

/// The cached virtualenv, creating it if it is missing or incomplete.
fn ensure_installed(venv: &Venv) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-compat");
    let dir = root.join(venv.name);
    if is_complete(venv, &dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let lock_path = root.join(format!("{}.lock", venv.name));
    let lock = File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another process may have finished the installation while this one waited.
    if !is_complete(venv, &dir) {
        install(venv, &dir)?;
    }
    drop(lock);
    Ok(dir)
}

/// Whether `dir` holds a working client of the version under test.
fn is_complete(venv: &Venv, dir: &Path) -> bool {
    let [program, args @ ..] = venv.check else {
        return false;
    };
    Command::new(dir.join(program))
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text).lines().next().map(str::trim) == Some(venv.expect)
        })
}

/// Creates `dir` from scratch with `python3` from `PATH` and installs the pinned set.
fn install(venv: &Venv, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| format!("removing the incomplete {}: {e}", dir.display()))?;
    }
    let created = run(Command::new("python3").args(["-m", "venv"]).arg(dir));
    if let Err(e) = created {
        let _ = std::fs::remove_dir_all(dir);
        return Err(format!("`python3 -m venv {}` failed: {e}", dir.display()));
    }
    // Short network bounds: an unreachable index should fail in about a minute, not ten.
    let installed = run(Command::new(dir.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(["--timeout", "20", "--retries", "2"])
        .args(venv.requirements));
    if let Err(e) = installed {
        // Leave nothing half-installed behind: the next run starts over.
        let _ = std::fs::remove_dir_all(dir);
        return Err(format!(
            "`pip install {}` failed (is PyPI reachable from here?): {e}",
            venv.what
        ));
    }
    if !is_complete(venv, dir) {
        return Err(format!(
            "`{}` in {} does not print `{}` after the installation",
            venv.check.join(" "),
            dir.display(),
            venv.expect
        ));
    }
    eprintln!(
        "installed {} into {} in {:.1} s",
        venv.what,
        dir.display(),
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
