//! The `duffy` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    duffy::cli::run(duffy::cli::Cli::parse()).await
}
