//! `duffy serve` and `duffy migrate`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, AppOptions};
use crate::config::{LoadedConfig, LogLevel};
use crate::engine::instances::Role;
use crate::legacy::{self, Legacy};

/// Prints a line of the banner. A server whose standard output was closed (a supervisor
/// that stopped reading it) carries on: the line is lost, not the service.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `duffy serve [-H HOST] [-p PORT] [--legacy]`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: app.host).
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Port to listen on (default: app.port; clamped to 1..65535; 0 picks a free port).
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i64>,
    /// Also serve the legacy v2 endpoints (/Node/get, /Inventory, …) on the same port
    /// (always on with the embedded default configuration).
    #[arg(long)]
    pub legacy: bool,
}

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs, loaded: LoadedConfig, level: LogLevel) -> ExitCode {
    raise_open_files_limit();
    let embedded = loaded.embedded;
    let config = Arc::new(loaded.config);
    let host = args.host.unwrap_or_else(|| config.app.host.clone());
    let port = port_or(args.port, config.app.port);
    let db = match app::open_database(&config).await {
        Ok(db) => db,
        Err(e) => return super::report_error("cannot open the database", e),
    };
    // Held until the server stops: a second `duffy serve` on the same SQLite file is refused.
    let _serving = match app::lock_for_serving(&app::database_url(&config)) {
        Ok(lock) => lock,
        Err(e) => return super::report_error("cannot start", e),
    };
    let engine = match app::build_engine(config.clone(), db, Role::Serve).await {
        Ok(engine) => Arc::new(engine),
        Err(e) => return super::report_error("cannot start", e),
    };
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => return super::report_error(&format!("cannot listen on {host}:{port}"), e),
    };
    // The embedded demo configuration serves old v2 jobs too, as `docs/config.md` promises.
    let options = AppOptions {
        legacy: args.legacy || embedded,
        ..AppOptions::default()
    };
    let app = match App::new(engine, listener, options) {
        Ok(app) => app,
        Err(e) => return super::report_error("cannot start", e),
    };
    let port = app.local_addr().map_or(port, |a| a.port());
    say!(" * Starting Duffy...");
    say!(" * Host address : {host}");
    say!(" * Port number  : {port}");
    say!(" * Log level    : {}", level.as_str());
    say!(" * Serving API docs on http://{host}:{port}/docs");
    say!(" * Serving API on http://{host}:{port}/api/v1");
    say!(" * Status page on http://{host}:{port}/ (metrics: /metrics)");
    if let Some(dest) = app.legacy_dest() {
        say!(" * Serving the legacy v2 API on http://{host}:{port}/ (forwarding to {dest})");
    }
    // With a real configuration, admins come from `duffy admin create-tenant --is-admin`.
    if embedded {
        match app::ensure_first_admin(app.engine()).await {
            Ok(Some((name, key))) => announce_first_admin(&name, &key),
            Ok(None) => {}
            Err(e) => return super::report_error("cannot create the first admin", e),
        }
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match app.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::report_error("duffy stopped", e),
    }
}

/// The port to bind: the original clamps it into 1..=65535; 0 (any free port) is ours, for
/// tests.
fn port_or(given: Option<i64>, configured: u16) -> u16 {
    match given {
        None => configured,
        Some(0) => 0,
        Some(p) => u16::try_from(p.clamp(1, 65535)).unwrap_or(u16::MAX),
    }
}

/// `duffy serve-legacy [-H HOST] [-p PORT] [-D URL]`
#[derive(Debug, Args)]
pub struct ServeLegacyArgs {
    /// Address to listen on (default: metaclient.host).
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Port to listen on (default: metaclient.port; clamped to 1..65535; 0 picks a free
    /// port).
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i64>,
    /// The v3 server's base URL, without /api/v1 (default: metaclient.dest, else
    /// http://127.0.0.1:8080).
    #[arg(short = 'D', long = "dest", value_name = "URL")]
    pub dest: Option<String>,
}

/// The original metaclient's default destination.
pub const DEFAULT_DEST: &str = "http://127.0.0.1:8080";

/// Runs the v2 translation layer alone, forwarding to a v3 server, until Ctrl-C or SIGTERM.
pub async fn run_legacy(args: ServeLegacyArgs, loaded: LoadedConfig, level: LogLevel) -> ExitCode {
    raise_open_files_limit();
    let metaclient = &loaded.config.metaclient;
    let host = args.host.unwrap_or_else(|| metaclient.host.clone());
    let port = port_or(args.port, metaclient.port);
    let dest = args
        .dest
        .or_else(|| metaclient.dest.clone())
        .unwrap_or_else(|| DEFAULT_DEST.to_owned());
    let api_url = format!("{}/api/v1", dest.trim_end_matches('/'));
    let legacy = match Legacy::new(metaclient, &api_url) {
        Ok(legacy) => Arc::new(legacy),
        Err(e) => return super::report_error("cannot start", e),
    };
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => return super::report_error(&format!("cannot listen on {host}:{port}"), e),
    };
    let port = listener.local_addr().map_or(port, |a| a.port());
    say!(" * Starting Duffy Metaclient for Legacy Support...");
    say!(" * Host address : {host}");
    say!(" * Port number  : {port}");
    say!(" * Destination address : {dest}");
    say!(" * Log level    : {}", level.as_str());
    say!(" * Serving the legacy v2 API on http://{host}:{port}/");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    legacy::serve(listener, legacy, loaded.config.app.connections, shutdown).await;
    ExitCode::SUCCESS
}

/// Shows the first admin's key once and keeps a copy readable only by the user.
fn announce_first_admin(name: &str, key: &str) {
    let dir = app::data_dir();
    let path = dir.join("admin.key");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| write_private(&path, &format!("{key}\n")))
        .is_ok();
    say!(" * Created the first admin tenant '{name}' with API key: {key}");
    if written {
        say!(
            " * The key is also in {} (readable by you only)",
            path.display()
        );
    } else {
        say!(
            " * (could not write it to {}; note it now, it is not shown again)",
            path.display()
        );
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Cancels `token` on Ctrl-C or SIGTERM.
async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM: {e}");
            let _ = ctrl_c.await;
            token.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
    token.cancel();
}

/// `duffy migrate`: brings the database schema up to date.
pub async fn migrate(loaded: &LoadedConfig) -> ExitCode {
    match app::open_database(&loaded.config).await {
        Ok(db) => {
            say!("OK: database schema is up to date ({:?})", db.backend());
            db.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => super::report_error("migrating the database failed", e),
    }
}

/// Raises the soft limit of open files to the hard limit, logging both: each client
/// connection is a file, and the common soft limit of 1,024 would otherwise cap the
/// service far below `app.connections.max`.
fn raise_open_files_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let shown = |n: Option<u64>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        match raised_soft_limit(limit.current, limit.maximum) {
            None => tracing::info!(
                files.soft = limit.current,
                files.hard = limit.maximum,
                "open files limit: {} (hard limit {})",
                shown(limit.current),
                shown(limit.maximum)
            ),
            Some(to) => {
                let new = Rlimit {
                    current: Some(to),
                    maximum: limit.maximum,
                };
                match setrlimit(Resource::Nofile, new) {
                    Ok(()) => tracing::info!(
                        files.soft = to,
                        files.was = limit.current,
                        files.hard = limit.maximum,
                        "open files limit raised from {} to {} (the hard limit)",
                        shown(limit.current),
                        to
                    ),
                    Err(e) => tracing::warn!(
                        files.soft = limit.current,
                        files.hard = limit.maximum,
                        error = %e,
                        "cannot raise the open files limit from {} to {}: {e}",
                        shown(limit.current),
                        to
                    ),
                }
            }
        }
    }
}

/// The soft limit to set: the hard one when it is higher (an unlimited hard limit is kept
/// as it is, at most a million files, the kernel's usual `nr_open`); `None` to leave it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn raised_soft_limit(soft: Option<u64>, hard: Option<u64>) -> Option<u64> {
    const CEILING: u64 = 1 << 20;
    let target = hard.unwrap_or(CEILING);
    match soft {
        None => None,
        Some(soft) if soft >= target => None,
        Some(_) => Some(target),
    }
}

#[cfg(test)]
mod tests {
    use super::raised_soft_limit;

    #[test]
    fn the_soft_limit_rises_to_the_hard_one() {
        assert_eq!(raised_soft_limit(Some(1024), Some(524_288)), Some(524_288));
        assert_eq!(raised_soft_limit(Some(524_288), Some(524_288)), None);
        assert_eq!(raised_soft_limit(Some(1024), None), Some(1 << 20));
        assert_eq!(raised_soft_limit(None, None), None);
        assert_eq!(raised_soft_limit(Some(4096), Some(1024)), None);
    }
}
