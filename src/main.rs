//! The `duffy` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's allocator: listings of thousands of nodes allocate many
/// small values from several threads, where glibc is slower and keeps more memory. Its
/// v2 line (Cargo feature `v2`): v3 returned freed memory only a second later, so
/// concurrent listings of 10,000 nodes peaked at 130 to 160 MB instead of about 105 MB
/// (README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("duffy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(duffy::cli::run(duffy::cli::Cli::parse()))
}

/// Transparent huge pages off for this process, before any thread starts. The allocator
/// asks for them on its arenas, and each 2 MiB page is resident as soon as one byte of
/// it is used: the server's heap is small and spread over eight threads, and huge pages
/// added 12 MB when idle and 26 MB at the peak of 1-client inventories, at the same speed
/// (README "Performance"). Where the kernel refuses, nothing else changes.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
