//! The cached virtualenvs with the real clients from PyPI (`real-clients.md` §1):
//! python-cicoclient 0.4.7 in `.venv-compat/cico` and `duffy[client]` 3.4.0 in
//! `.venv-compat/duffy`.
//!
//! They live under the repository root (git-ignored), and each is created at most once per
//! test binary run, only when its check command does not already print the version under
//! test. An exclusive `flock` on `.venv-compat/<name>.lock` keeps two test processes from
//! installing into the same one at the same time (a virtualenv cannot be built elsewhere
//! and renamed into place: its scripts' shebangs name its absolute path).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tokio::sync::OnceCell;

/// One cached virtualenv: what goes into it and how to tell that it is complete.
struct Venv {
    /// The folder under `.venv-compat`, also the name of its lock file.
    name: &'static str,
    /// The package as a person would name it in a message.
    what: &'static str,
    /// The program (relative to the venv) and arguments whose output proves the install.
    check: &'static [&'static str],
    /// What the check prints (trimmed).
    expect: &'static str,
    /// The client and the dependency set known to work with it.
    requirements: &'static [&'static str],
}

/// python-cicoclient 0.4.7 (`cico`).
const CICO: Venv = Venv {
    name: "cico",
    what: "python-cicoclient==0.4.7",
    check: &["bin/cico", "--version"],
    expect: "cico 0.4.7",
    requirements: &[
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
    ],
};

/// `duffy[client]` 3.4.0: the original `duffy client`. The check imports the client part,
/// which `duffy --version` alone would not need.
const DUFFY: Venv = Venv {
    name: "duffy",
    what: "duffy[client]==3.4.0",
    check: &[
        "bin/python",
        "-c",
        "import duffy.client, duffy.version as v; print('duffy', v.__version__)",
    ],
    expect: "duffy 3.4.0",
    requirements: &[
        "duffy[client]==3.4.0",
        "httpx==0.28.1",
        "pydantic==2.14.3",
        "click==8.5.1",
        "pyxdg==0.28",
        "PyYAML==6.0.3",
    ],
};

/// The outcome of the one installation attempt of this run, shared by all tests.
static CICO_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();
/// The same for the duffy client.
static DUFFY_VENV: OnceCell<Result<PathBuf, String>> = OnceCell::const_new();

/// The cico virtualenv's folder, installed on first use; panics with the cause (and the way
/// to skip these tests) when it cannot be installed.
pub async fn cico_venv() -> PathBuf {
    cached(&CICO, &CICO_VENV).await
}

/// The `duffy[client]` 3.4.0 virtualenv's folder, installed on first use; panics like
/// [`cico_venv`]. Its `bin/duffy` is the original client: always call it by this full path.
pub async fn duffy_venv() -> PathBuf {
    cached(&DUFFY, &DUFFY_VENV).await
}

/// `venv`'s folder from `cell`, installing it on first use.
async fn cached(venv: &'static Venv, cell: &'static OnceCell<Result<PathBuf, String>>) -> PathBuf {
    let result = cell
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| ensure_installed(venv))
                .await
                .unwrap_or_else(|e| Err(format!("the installer thread failed: {e}")))
        })
        .await;
    match result {
        Ok(path) => path.clone(),
        Err(cause) => panic!(
            "cannot install the real {} for the compat tests: {cause}\n\
             Set DUFFY_SKIP_REAL_CLIENTS=1 to skip the compat tests knowingly.",
            venv.what
        ),
    }
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
            String::from_utf8_lossy(&text).trim() == venv.expect
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
        "compat: installed {} into {} in {:.1} s",
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
