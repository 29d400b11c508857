//! Running `duffy client`, the original 3.4.0 from PyPI and ours, isolated and bounded.
//!
//! A [`ClientHome`] is one user's `HOME` (with `XDG_CONFIG_HOME=$HOME/.config`); every run
//! in it gets a cleared environment, no standard input, and is killed after 60 s, as cico's
//! runs are. The original is always called by its full path in the cached virtualenv, never
//! through `PATH`, where it would clash with our binary of the same name.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use super::cico::{Output, execute};
use super::venv::duffy_venv;

/// Which `duffy client` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cli {
    /// `duffy[client]` 3.4.0 from PyPI.
    Original,
    /// Our binary.
    Ours,
}

/// The client section of a Duffy configuration file, as CI jobs write it.
pub fn client_config(url: &str, name: &str, key: &str) -> String {
    format!("client:\n  url: {url}\n  auth:\n    name: {name}\n    key: {key}\n")
}

/// One user of `duffy client`: a `HOME` of its own.
pub struct ClientHome {
    home: TempDir,
}

impl ClientHome {
    /// A fresh `HOME` with no configuration.
    pub fn new() -> ClientHome {
        ClientHome {
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    /// A `HOME` whose `~/.config/duffy/client.yaml` points at `url` as `name` with `key`:
    /// found by both clients without `-c`.
    pub fn configured(url: &str, name: &str, key: &str) -> ClientHome {
        let home = ClientHome::new();
        home.file(".config/duffy/client.yaml", &client_config(url, name, key));
        home
    }

    /// Writes `text` to `relative` under `HOME` (creating folders) and returns its path.
    pub fn file(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("config folder");
        std::fs::write(&path, text).expect("write a file");
        path
    }

    /// Runs `duffy ARGS…` with the chosen client.
    pub async fn run(&self, cli: Cli, args: &[&str]) -> Output {
        let program = match cli {
            Cli::Original => duffy_venv().await.join("bin/duffy"),
            Cli::Ours => PathBuf::from(env!("CARGO_BIN_EXE_duffy")),
        };
        let mut command = self.command(program);
        command.args(args);
        execute(command, &format!("{cli:?} duffy {}", args.join(" "))).await
    }

    /// Runs the original `duffy ARGS…` once for each argument list, all in one Python
    /// process: click's own `CliRunner` calls the original command line as its script
    /// would (same code, same HTTP requests), and an uncaught exception exits 1 with its
    /// traceback on stderr, as the interpreter does. One interpreter start instead of one
    /// per run keeps the comparison of many answers short.
    pub async fn run_original_many(&self, runs: &[Vec<String>]) -> Vec<Output> {
        const DRIVER: &str = "import json, sys, traceback\n\
            from click.testing import CliRunner\n\
            from duffy.cli import cli\n\
            results = []\n\
            for args in json.load(open(sys.argv[1])):\n\
            \x20   r = CliRunner().invoke(cli, args, prog_name='duffy')\n\
            \x20   err = r.stderr_bytes.decode('utf-8', 'replace')\n\
            \x20   if r.exception is not None and not isinstance(r.exception, SystemExit):\n\
            \x20       err += ''.join(traceback.format_exception(*r.exc_info))\n\
            \x20   out = r.stdout_bytes.decode('utf-8', 'replace')\n\
            \x20   results.append({'status': r.exit_code, 'stdout': out, 'stderr': err})\n\
            json.dump(results, sys.stdout)\n";
        let input = self.home.path().join("runs.json");
        let runs_json = serde_json::to_string(runs).expect("runs as JSON");
        std::fs::write(&input, runs_json).expect("write the runs");
        let mut command = self.command(duffy_venv().await.join("bin/python"));
        command.args(["-c", DRIVER]).arg(&input);
        let out = execute(command, "the original client, in process").await;
        out.assert_ok();
        let results: Vec<Value> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(results.len(), runs.len(), "{out}");
        let each = out.elapsed / u32::try_from(runs.len().max(1)).expect("few runs");
        results
            .iter()
            .map(|r| Output {
                status: r["status"].as_i64().and_then(|s| i32::try_from(s).ok()),
                stdout: r["stdout"].as_str().expect("stdout").to_owned(),
                stderr: r["stderr"].as_str().expect("stderr").to_owned(),
                requests: Vec::new(),
                elapsed: each,
            })
            .collect()
    }

    /// What the original client's formatter prints for each `(format, body)`, newline
    /// included: the expected output of ours for answers the original cannot get.
    pub async fn original_formats(&self, bodies: &[(&str, Value)]) -> Vec<String> {
        const SCRIPT: &str = "import json, sys\n\
            from duffy.client import DuffyFormatter\n\
            texts = [DuffyFormatter.new_for_format(f).format(body) + '\\n'\n\
            \x20        for f, body in json.load(open(sys.argv[1]))]\n\
            json.dump(texts, sys.stdout)\n";
        let input = self.home.path().join("bodies.json");
        let bodies_json = serde_json::to_string(bodies).expect("bodies as JSON");
        std::fs::write(&input, bodies_json).expect("write the bodies");
        let mut command = self.command(duffy_venv().await.join("bin/python"));
        command.args(["-c", SCRIPT]).arg(&input);
        let out = execute(command, "the original formatter").await;
        out.assert_ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A command with this user's isolated environment.
    fn command(&self, program: PathBuf) -> Command {
        let mut command = super::isolated(program, self.home.path());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }
}
