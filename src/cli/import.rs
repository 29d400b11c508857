//! `duffy import --from URL | --from-config PATH [--dry-run] [--ignore-active-sessions]`:
//! brings a Duffy 3.x or v2 deployment into the database of the configuration in force.
//!
//! The report goes to stdout; an error is one line on stderr (`Error: <table> row <id>:
//! <reason>` for a row that cannot be imported) with exit status 1, and then the target is
//! unchanged.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::app;
use crate::config::LoadedConfig;
use crate::import::{self, Options, Source};

/// `duffy import`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "from_config"])))]
pub struct ImportArgs {
    /// The source database: sqlite:///… or postgresql[+driver]://… (Duffy 3.x, as its
    /// database.sqlalchemy.sync_url), or mysql://user:pass@host:port/db (Duffy v2).
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// The original's configuration file or directory: its database.sqlalchemy.sync_url
    /// names the source.
    #[arg(long, value_name = "PATH")]
    from_config: Option<PathBuf>,
    /// Read everything and print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import a v2 database that still has active sessions, leaving them and their hosts out.
    #[arg(long)]
    ignore_active_sessions: bool,
}

/// Runs the import and prints its report.
pub async fn run(args: ImportArgs, loaded: &LoadedConfig) -> ExitCode {
    let source = match (&args.from, &args.from_config) {
        (Some(url), _) => Source::parse(url),
        (None, Some(path)) => Source::from_config(path),
        (None, None) => unreachable_source(),
    };
    let source = match source {
        Ok(source) => source,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        dry_run: args.dry_run,
        ignore_active_sessions: args.ignore_active_sessions,
    };
    let target = app::database_url(&loaded.config);
    tracing::debug!(source = %source.redacted(), target = %target.redacted(), dry_run = options.dry_run, "importing");
    match import::run(&source, &loaded.config, &target, options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap's argument group makes one of the two required.
fn unreachable_source() -> Result<Source, import::SourceError> {
    Err(import::SourceError::Invalid(
        "give --from URL or --from-config PATH".into(),
    ))
}
