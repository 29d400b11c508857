//! `duffy replay FILE… --against URL`: replays recorded v2 traffic against a running server.
//!
//! It speaks HTTP only, so it needs no configuration and no database; the library side is
//! [`crate::replay`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::replay::{Options, Replayer};

/// `duffy replay FILE… --against URL [--key KEY] [--var NAME=VALUE]… [--timeout SECONDS]`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recorded v2 traffic: `*.jsonl` request/answer records; any other file is read as a
    /// web-server access log.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The v2 base URL to replay against, e.g. http://127.0.0.1:9090/ (a path prefix is
    /// kept).
    #[arg(long, value_name = "URL")]
    pub against: String,
    /// The API key: fills {{key}} in records and replaces every key= value of access-log
    /// requests.
    #[arg(
        long,
        value_name = "KEY",
        env = "DUFFY_REPLAY_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// Fills the placeholder {{NAME}} in records (repeatable), e.g. a second tenant's key.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// How long one request may take, answer included.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Replays the files: exit 0 when everything replayed is compatible, 1 when anything
/// differs, failed or nothing was replayed, 2 on a usage error.
pub async fn run(args: ReplayArgs) -> ExitCode {
    let options = Options {
        against: args.against,
        key: args.key,
        vars: args.vars,
        timeout: Duration::from_secs(args.timeout),
    };
    let replayer = match Replayer::new(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match replayer.run(&args.files, std::io::stdout().lock()).await {
        Ok(summary) if summary.passed() => ExitCode::SUCCESS,
        Ok(summary) => {
            if summary.replayed() == 0 {
                eprintln!("Error: nothing was replayed");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(2)
        }
    }
}
