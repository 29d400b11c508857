//! The `duffy` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's allocator: listings of thousands of nodes allocate many
/// small values from several threads, where glibc is slower and keeps more memory (see
/// README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    duffy::cli::run(duffy::cli::Cli::parse()).await
}
