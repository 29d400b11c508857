//! The `duffy` command: `serve`, `serve-legacy`, `migrate`, `import`, `config`, `admin`,
//! `client`, `replay`, `bench`.
//!
//! The configuration is loaded and validated before any subcommand runs, as the original
//! does; `main` only parses the arguments and hands over to [`run`].

pub mod admin;
pub mod client;
pub mod config_cmd;
pub mod import;
pub mod output;
pub mod replay;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, LogLevel};

/// `duffy [-l LEVEL] [-c FILE_OR_DIR]… COMMAND`
#[derive(Debug, Parser)]
#[command(
    name = "duffy",
    about = "Duffy hands CI jobs freshly installed test machines.",
    disable_version_flag = true
)]
pub struct Cli {
    /// Log level: critical, error, warning, info, debug or trace (default: app.loglevel).
    #[arg(short = 'l', long = "loglevel", global = true, value_parser = parse_loglevel)]
    pub loglevel: Option<LogLevel>,
    /// A configuration file or directory; repeatable; replaces /etc/duffy and
    /// $XDG_CONFIG_HOME/duffy.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        value_name = "FILE_OR_DIR"
    )]
    pub config: Vec<PathBuf>,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the background jobs.
    Serve(serve::ServeArgs),
    /// Serve the legacy v2 API alone, forwarding to a v3 server.
    ServeLegacy(serve::ServeLegacyArgs),
    /// Create or upgrade the database schema (also done by `serve` at start).
    Migrate,
    /// Bring tenants, nodes and sessions over from a Duffy 3.x or v2 database.
    Import(import::ImportArgs),
    /// Check or print the merged configuration.
    Config {
        /// check or dump
        #[command(subcommand)]
        command: config_cmd::ConfigCommand,
    },
    /// Manage tenants, nodes and pauses directly in the database (no server needed).
    Admin {
        /// The admin command.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Talk to a Duffy server's v3 API (the original client's commands and outputs).
    Client(client::ClientArgs),
    /// Replay recorded v2 traffic against a running server and report incompatibilities.
    Replay(replay::ReplayArgs),
    /// Load-test a server of its own (started on a fresh database) and print the figures.
    Bench(crate::bench::BenchArgs),
    /// The trivial handler `bench` compares `GET /pools` with (internal).
    #[command(hide = true)]
    BenchTrivial(crate::bench::TrivialArgs),
}

fn parse_loglevel(s: &str) -> Result<LogLevel, String> {
    s.parse::<LogLevel>().map_err(|e| e.to_string())
}

/// Runs the parsed command line and returns the process exit status.
pub async fn run(cli: Cli) -> ExitCode {
    if cli.version {
        println!("Duffy, version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        // Printing help to a closed stdout is not worth reporting.
        let _ = Cli::command().print_help();
        return ExitCode::from(2);
    };
    // Replay only speaks HTTP to a server: a missing or broken local configuration must
    // not stop it, so it runs before the configuration is loaded.
    // Nor does the benchmark (it writes its own). Its trivial handler does load the
    // configuration the benchmark wrote: it logs as the server under test does.
    let command = match command {
        Command::Replay(args) => return replay::run(args).await,
        Command::Bench(args) => return crate::bench::run(args).await,
        other => other,
    };
    let loaded = match config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let configured = match command {
        Command::ServeLegacy(_) => loaded.config.metaclient.loglevel,
        _ => loaded.config.app.loglevel,
    };
    let level = cli.loglevel.unwrap_or(configured);
    init_tracing(level);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match command {
        Command::Serve(args) => serve::run(args, loaded, level).await,
        Command::ServeLegacy(args) => serve::run_legacy(args, loaded, level).await,
        Command::Migrate => serve::migrate(&loaded).await,
        Command::Import(args) => import::run(args, &loaded).await,
        Command::Config { command } => config_cmd::run(command, &loaded),
        Command::Admin { command } => admin::run(command, loaded).await,
        Command::Client(args) => client::run(args, &loaded).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::BenchTrivial(args) => crate::bench::run_trivial(args).await,
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` when set, else by the level; the chatty
/// libraries (sqlx logs every statement at info) only speak up for warnings. They are
/// coloured only when stderr is a terminal and `NO_COLOR` is not set ([`use_colour`]): a
/// file, a pipe or journald gets plain text.
fn init_tracing(level: LogLevel) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // warp::filters::trace would log every 4xx again as a warning and every 5xx as an error,
    // after our own line: a client's mistake is not a warning. It stays off under `RUST_LOG`
    // too, unless `RUST_LOG` names it.
    const QUIET_TRACE: &str = "warp::filters::trace=off";
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) if spec.contains("warp::filters::trace") => Some(filter),
            Ok(filter) => QUIET_TRACE.parse().ok().map(|d| filter.add_directive(d)),
            Err(_) => None,
        },
        _ => None,
    };
    let filter = filter.unwrap_or_else(|| {
        EnvFilter::new(format!(
            "{},sqlx=warn,warp=error,{QUIET_TRACE},hyper=warn",
            level.tracing_directive()
        ))
    });
    // A second initialisation (tests calling `run` twice) is harmless.
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Whether log lines carry ANSI colour codes: only when the stream they go to is a
/// terminal, and not when `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
fn use_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Prints an error the way `duffy admin` and friends report them.
pub(crate) fn report_error(what: &str, detail: impl std::fmt::Display) -> ExitCode {
    eprintln!("ERROR: {what}");
    eprintln!("ERROR DETAIL: {detail}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_parses_its_options() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        // A subcommand's option named like a global one must not shadow it.
        let cli = Cli::try_parse_from([
            "duffy",
            "-l",
            "debug",
            "bench",
            "--scenario",
            "cycle",
            "--server-loglevel",
            "info",
        ])
        .expect("parses");
        assert!(matches!(cli.command, Some(Command::Bench(_))));
        assert!(cli.loglevel.is_some());
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        // NO_COLOR set to an empty string does not count (no-color.org).
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(true, Some(OsStr::new("0"))));
        // A file, a pipe, journald: never.
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
