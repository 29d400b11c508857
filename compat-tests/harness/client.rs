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

    /// What the original client's formatter prints for `body` in `format`, newline
    /// included: the expected output of ours for answers the original cannot get.
    pub async fn original_format(&self, format: &str, body: &Value) -> String {
        const SCRIPT: &str = "import json, sys\n\
            from duffy.client import DuffyFormatter\n\
            text = DuffyFormatter.new_for_format(sys.argv[1]).format(json.loads(sys.argv[2]))\n\
            sys.stdout.write(text + '\\n')\n";
        let mut command = self.command(duffy_venv().await.join("bin/python"));
        command.args(["-c", SCRIPT, format, &body.to_string()]);
        let out = execute(command, "the original formatter").await;
        out.assert_ok();
        out.stdout
    }

    /// A command with this user's isolated environment.
    fn command(&self, program: PathBuf) -> Command {
        let home = self.home.path();
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("LANG", "C.UTF-8")
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}
