//! Running the real `cico` CLI and the `CicoWrapper` library, isolated and bounded.
//!
//! Each [`Cico`] has a `HOME` of its own (so no `~/.duffy.key` of the machine leaks in) and
//! runs its commands with a cleared environment: no `CICO_API_KEY` unless the test sets it,
//! no proxy variables. Every cico run writes cliff's debug log to a file of its own, from
//! which [`Output::requests`] lists the HTTP requests cico sent.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use super::venv::cico_venv;

/// The 14 inventory columns cico prints, in order.
pub const COLUMNS: [&str; 14] = [
    "host_id",
    "hostname",
    "ip_address",
    "chassis",
    "used_count",
    "current_state",
    "comment",
    "distro",
    "rel",
    "centos_version",
    "architecture",
    "node_pool",
    "console_port",
    "flavor",
];

/// How long a client may run before it is killed.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// A client side: an endpoint, a `HOME`, an optional key, extra environment.
pub struct Cico {
    home: TempDir,
    endpoint: String,
    key: Option<String>,
    env: Vec<(String, String)>,
    runs: AtomicUsize,
}

/// What a client run did.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`None` when killed by a signal).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The request targets cico logged (`/Node/get?key=…`), in order; empty for Python runs.
    pub requests: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Cico {
    /// A client of `endpoint` (which must end in `/`) with no key anywhere.
    pub fn new(endpoint: &str) -> Cico {
        Cico {
            home: tempfile::tempdir().expect("temp HOME"),
            endpoint: endpoint.to_owned(),
            key: None,
            env: Vec::new(),
            runs: AtomicUsize::new(0),
        }
    }

    /// A client that passes `--api-key KEY` on every cico command line.
    pub fn keyed(endpoint: &str, key: &str) -> Cico {
        Cico {
            key: Some(key.to_owned()),
            ..Cico::new(endpoint)
        }
    }

    /// Sets an environment variable for every later run.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// This client's `HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs `cico --endpoint EP [--api-key K] ARGS…`.
    pub async fn run(&self, args: &[&str]) -> Output {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let log = self.home.path().join(format!("cico-{n}.log"));
        let mut command = self.command(cico_venv().await.join("bin/cico"));
        command.arg("--log-file").arg(&log);
        command.args(["--endpoint", &self.endpoint]);
        if let Some(key) = &self.key {
            command.args(["--api-key", key]);
        }
        command.args(args);
        let mut out = execute(command, &format!("cico {}", args.join(" "))).await;
        out.requests = logged_requests(&log);
        out
    }

    /// Runs `SCRIPT` with the virtualenv's Python; `ENDPOINT` and `ARGS` are in `sys.argv`.
    pub async fn python(&self, script: &str, args: &[&str]) -> Output {
        let mut command = self.command(cico_venv().await.join("bin/python"));
        command.args(["-c", script, &self.endpoint]).args(args);
        execute(command, "python").await
    }

    /// A command with this client's isolated environment.
    fn command(&self, program: PathBuf) -> Command {
        let mut command = super::isolated(program, self.home.path());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// Runs `command` to completion within [`CLIENT_LIMIT`].
pub(super) async fn execute(mut command: Command, what: &str) -> Output {
    let started = Instant::now();
    let out = tokio::time::timeout(CLIENT_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("`{what}` did not finish within {CLIENT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Output {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        requests: Vec::new(),
        elapsed: started.elapsed(),
    }
}

/// The request targets in a cliff log: urllib3 logs `"GET /Node/get?… HTTP/1.1" 200 34`.
fn logged_requests(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = &line[line.find("\"GET ")? + 5..];
            Some(rest[..rest.find(" HTTP/")?].to_owned())
        })
        .collect()
}

impl Output {
    /// Panics (showing everything) unless the run exited 0 with an empty stderr.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.status == Some(0) && self.stderr.is_empty(),
            "expected success, got {self}"
        );
        self
    }

    /// Panics unless the run exited 1 with exactly `message` on stderr and nothing on stdout.
    pub fn assert_fails_with(&self, message: &str) -> &Self {
        assert_eq!(
            (self.status, self.stderr.trim_end(), self.stdout.as_str()),
            (Some(1), message, ""),
            "{self}"
        );
        self
    }

    /// The requests to one path (`/Node/get`, `/Inventory`, …), with or without a query.
    pub fn requests_to(&self, path: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.split('?').next() == Some(path))
            .count()
    }

    /// Stdout split into lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Stdout of `-f value` split into lines of space-separated fields.
    pub fn fields(&self) -> Vec<Vec<&str>> {
        self.stdout
            .lines()
            .map(|l| l.split(' ').collect())
            .collect()
    }

    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// The rows `-f json` printed, each checked to have the 14 inventory columns in order.
    pub fn rows(&self) -> Vec<Value> {
        let rows = self.json().as_array().expect("a JSON list").clone();
        for row in &rows {
            let keys: Vec<&str> = row
                .as_object()
                .expect("a row object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, COLUMNS, "{self}");
        }
        rows
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?} after {:.1} s\n--- stdout ---\n{}--- stderr ---\n{}--- requests ---\n{}",
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr,
            self.requests.join("\n")
        )
    }
}
