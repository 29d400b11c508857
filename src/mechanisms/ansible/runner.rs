//! One `ansible-playbook` run: a private directory with our callback plugin and the
//! extra-vars file, the child process bounded by a timeout, and its results read back.
//!
//! The run's environment selects our stdout callback (`callback.py`, written from the
//! binary), because ansible-core 2.19 no longer ships a `json` stdout callback. No
//! inventory is passed, so `hosts: localhost` is Ansible's implicit localhost, which runs
//! modules with `ansible-playbook`'s own Python: interpreter discovery cannot pick a
//! missing one. The working directory is the mechanism's `topdir`, so an `ansible.cfg`
//! there applies (as with the original's ansible-runner `project_dir`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::results::{self, TaskEvent};

/// The callback plugin, installed into every run's private directory.
const CALLBACK_SOURCE: &str = include_str!("callback.py");
/// The callback's name (`ANSIBLE_STDOUT_CALLBACK`) and file stem.
const CALLBACK_NAME: &str = "duffy_events";
/// How long the output readers may take after the process ended or was killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a playbook run produced no usable result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run's private directory or files could not be written.
    #[error("preparing the run: {0}")]
    Prepare(#[source] std::io::Error),
    /// `ansible-playbook` could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program as configured.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for `ansible-playbook` failed; the run was killed.
    #[error("waiting for ansible-playbook failed: {0}")]
    Wait(#[source] std::io::Error),
    /// The run took longer than the timeout and was killed.
    #[error("{playbook} timed out after {} s and was killed", timeout.as_secs_f64())]
    Timeout {
        /// The playbook.
        playbook: String,
        /// The configured bound.
        timeout: Duration,
    },
    /// `ansible-playbook` exited unsuccessfully.
    #[error("{playbook} failed ({status}): {summary}")]
    Failed {
        /// The playbook.
        playbook: String,
        /// How the process ended.
        status: ExitStatus,
        /// The failed tasks, else the tail of the output.
        summary: String,
    },
    /// The run succeeded but no `set_fact` set `duffy_out`.
    #[error("{playbook} succeeded but no set_fact task set duffy_out")]
    NoResult {
        /// The playbook.
        playbook: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The `ansible-playbook` program.
    pub program: &'a Path,
    /// The working directory; `playbook` is relative to it.
    pub topdir: &'a Path,
    /// The playbook.
    pub playbook: &'a str,
    /// All extra variables, `duffy_in` included, passed as `-e @file`.
    pub extra_vars: &'a Value,
    /// The bound on the run.
    pub timeout: Duration,
    /// The pool, for log lines.
    pub pool: &'a str,
}

impl Run<'_> {
    /// Runs the playbook and returns `duffy_out` of its last successful `set_fact`.
    pub async fn duffy_out(&self) -> Result<Value, RunError> {
        let dir = tempfile::Builder::new()
            .prefix("duffy-ansible-")
            .tempdir()
            .map_err(RunError::Prepare)?;
        let plugins = dir.path().join("callback_plugins");
        let vars_file = dir.path().join("extra-vars.json");
        let events_file = dir.path().join("events.jsonl");
        prepare(&plugins, &vars_file, self.extra_vars)
            .await
            .map_err(RunError::Prepare)?;

        let started = Instant::now();
        let ended = self.execute(&plugins, &vars_file, &events_file).await?;
        let events = match tokio::fs::read_to_string(&events_file).await {
            Ok(text) => results::parse_events(&text),
            Err(_) => Vec::new(),
        };
        tracing::debug!(
            pool.name = %self.pool,
            playbook = %self.playbook,
            elapsed_ms = started.elapsed().as_millis() as u64,
            stdout = %ended.stdout,
            stderr = %ended.stderr,
            "pool {}: ansible-playbook {} output", self.pool, self.playbook
        );
        match ended.status {
            None => Err(RunError::Timeout {
                playbook: self.playbook.to_owned(),
                timeout: self.timeout,
            }),
            Some(status) if !status.success() => Err(RunError::Failed {
                playbook: self.playbook.to_owned(),
                status,
                summary: summary(&events, &ended),
            }),
            Some(_) => results::duffy_out(&events)
                .cloned()
                .ok_or_else(|| RunError::NoResult {
                    playbook: self.playbook.to_owned(),
                }),
        }
    }

    /// Starts the process in its own process group and waits for it, killing the whole
    /// group when the timeout expires (`status: None`).
    async fn execute(
        &self,
        plugins: &Path,
        vars_file: &Path,
        events_file: &Path,
    ) -> Result<Ended, RunError> {
        let mut command = Command::new(self.program);
        command
            .arg(self.playbook)
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .current_dir(self.topdir)
            .env("ANSIBLE_STDOUT_CALLBACK", CALLBACK_NAME)
            .env("ANSIBLE_CALLBACK_PLUGINS", callback_path(plugins))
            .env("DUFFY_ANSIBLE_EVENTS", events_file)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_LOCALHOST_WARNING", "0")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        // Should this future be dropped (shutdown), the run's processes go with it.
        let mut guard = TreeGuard(child.id());
        let stdout = child.stdout.take().map(|s| tokio::spawn(read_all(s)));
        let stderr = child.stderr.take().map(|s| tokio::spawn(read_all(s)));
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => {
                kill_group(&mut child).await;
                guard.0 = None;
                return Err(RunError::Wait(e));
            }
            Err(_) => {
                tracing::warn!(pool.name = %self.pool, playbook = %self.playbook, timeout_s = self.timeout.as_secs_f64(), "pool {}: ansible-playbook {} timed out after {} s; killing it", self.pool, self.playbook, self.timeout.as_secs_f64());
                kill_group(&mut child).await;
                None
            }
        };
        guard.0 = None;
        Ok(Ended {
            status,
            stdout: drain(stdout).await,
            stderr: drain(stderr).await,
        })
    }
}

/// Kills a run's process tree when dropped while still armed (holding the child's pid).
struct TreeGuard(Option<u32>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_tree(pid);
        }
    }
}

/// How the process ended: its status (`None` when killed) and what it printed.
struct Ended {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// `ANSIBLE_CALLBACK_PLUGINS` for a run: our plugin's folder first, then whatever the
/// server's environment already names (so site callbacks stay loadable).
fn callback_path(plugins: &Path) -> std::ffi::OsString {
    let mut path = plugins.as_os_str().to_owned();
    if let Some(existing) = std::env::var_os("ANSIBLE_CALLBACK_PLUGINS").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(existing);
    }
    path
}

/// Writes the callback plugin and the extra-vars file.
async fn prepare(plugins: &Path, vars_file: &Path, extra_vars: &Value) -> std::io::Result<()> {
    tokio::fs::create_dir_all(plugins).await?;
    tokio::fs::write(plugins.join(format!("{CALLBACK_NAME}.py")), CALLBACK_SOURCE).await?;
    let vars = serde_json::to_vec(extra_vars).map_err(std::io::Error::other)?;
    tokio::fs::write(vars_file, vars).await
}

/// Kills the child and every process it started: Ansible's workers call `setsid`, so they
/// leave the process group; they are found as descendants in `/proc`. A worker could fork
/// and leave the group between the look and the kill, so the tree is first stopped
/// (`SIGSTOP`) until looking again finds nobody new, then killed. The child is then reaped.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::task::spawn_blocking(move || kill_tree(pid)).await;
    }
    let _ = child.kill().await;
}

/// Stops `pid`'s group and descendants until no new process shows up, then kills them all.
fn kill_tree(pid: u32) {
    // No `libc` (unsafe code is forbidden here): the `kill` utility sends the signals.
    let signal = |name: &str, targets: &[String]| {
        let _ = std::process::Command::new("kill")
            .arg(name)
            .arg("--")
            .args(targets)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let mut targets = tree_targets(pid);
    for _ in 0..10 {
        signal("-STOP", &targets);
        let again = tree_targets(pid);
        let grown = again.iter().any(|t| !targets.contains(t));
        targets = again;
        if !grown {
            break;
        }
    }
    signal("-KILL", &targets);
}

/// `kill` arguments for a run's whole tree: its process group and every descendant.
fn tree_targets(pid: u32) -> Vec<String> {
    let mut targets = vec![format!("-{pid}")];
    targets.extend(descendants(pid).into_iter().map(|p| p.to_string()));
    targets
}

/// The processes below `root` (children, grandchildren, …) as `/proc` shows them now.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(pid, ppid)| *ppid == parent && !found.contains(pid))
                .map(|(pid, _)| *pid)
                .collect::<Vec<_>>(),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// Reads a pipe to its end.
async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The text a reader collected, waiting a bounded time (a grandchild that left the process
/// group could keep the pipe open).
async fn drain(reader: Option<tokio::task::JoinHandle<String>>) -> String {
    let Some(reader) = reader else {
        return String::new();
    };
    let abort = reader.abort_handle();
    match tokio::time::timeout(DRAIN_TIMEOUT, reader).await {
        Ok(Ok(text)) => text,
        _ => {
            abort.abort();
            String::new()
        }
    }
}

/// What a failed run's warning says: the failed tasks, else the end of its output.
fn summary(events: &[TaskEvent], ended: &Ended) -> String {
    let failures = results::failures(events);
    if !failures.is_empty() {
        return failures.join("; ");
    }
    let tail = results::tail(&ended.stderr, 3);
    if tail.is_empty() {
        results::one_line(&results::tail(&ended.stdout, 3))
    } else {
        results::one_line(&tail)
    }
}

/// The path a configured program resolves to, for log lines and checks: as given when it
/// has a slash, else the first match on `PATH`.
pub fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return program.is_file().then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_whole_tree_is_found_and_killed() {
        // a child in a new session, as Ansible's workers are, with a grandchild of its own
        let mut child = Command::new("sh")
            .args(["-c", "setsid sh -c 'sleep 31.5' & wait"])
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = descendants(pid);
            if found.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(found.len() >= 2, "{found:?}");
        kill_group(&mut child).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for p in found {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            assert!(matches!(state, None | Some("Z")), "{p} still runs: {stat}");
        }
    }

    #[test]
    fn a_program_resolves_on_path_or_as_given() {
        assert!(resolve_program(Path::new("sh")).is_some());
        assert!(resolve_program(Path::new("/nonexistent/ansible-playbook")).is_none());
        assert!(resolve_program(Path::new("duffy-no-such-program")).is_none());
    }
}
