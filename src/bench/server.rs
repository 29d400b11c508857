//! The server under test: a `duffy serve` child process on a fresh database of its own,
//! its configuration, the data seeded into it, and what the database says afterwards.
//!
//! The server runs in its own process so that its memory can be read (`/proc/PID/status`)
//! and its runtime is not shared with the load generator's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::DatabaseUrl;
use crate::engine::instances::Role;
use crate::engine::tenants::TenantRequest;
use crate::store::nodes::NodeState;
use crate::store::{self, Db, Tx, on_tx};

/// The pool the cycle scenarios take nodes from.
pub const POOL: &str = "bench";
/// The pool the inventory's nodes are seeded into (no fill level: nothing refills it).
pub const INVENTORY_POOL: &str = "inventory";
/// How long the server may take to start and fill its pool.
const START_LIMIT: Duration = Duration::from_secs(120);

/// What can stop a benchmark before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The database could not be set up.
    #[error("database: {0}")]
    Database(String),
    /// A file of the run could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server did not start or stopped.
    #[error("the server under test: {0}")]
    Server(String),
}

impl From<store::StoreError> for BenchError {
    fn from(e: store::StoreError) -> Self {
        BenchError::Database(e.to_string())
    }
}

/// A database of the benchmark's own: a SQLite file in the run's directory, or a fresh
/// database on the PostgreSQL server named, dropped again at the end.
pub struct BenchDb {
    /// Where it is.
    pub url: DatabaseUrl,
    /// The PostgreSQL server's URL and the database created there, to drop at the end.
    created: Option<(String, String)>,
}

impl BenchDb {
    /// `sqlite` makes a file in `dir`; a `postgres://` URL names the server (and a database
    /// to connect to for creating the benchmark's own).
    pub async fn create(database: &str, dir: &Path) -> Result<BenchDb, BenchError> {
        if database == "sqlite" {
            return Ok(BenchDb {
                url: DatabaseUrl::Sqlite {
                    path: dir.join("bench.db"),
                },
                created: None,
            });
        }
        if !(database.starts_with("postgres://") || database.starts_with("postgresql://")) {
            return Err(BenchError::Database(format!(
                "--database takes `sqlite` or a postgres:// URL, not `{database}`"
            )));
        }
        let name = format!("duffy_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(database)
            .await
            .map_err(|e| BenchError::Database(e.to_string()))?;
        // A generated name, never user input: quoting it is all that is needed.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .map_err(|e| BenchError::Database(e.to_string()))?;
        Ok(BenchDb {
            url: DatabaseUrl::Postgres {
                url: pg_url(database, &name).into(),
            },
            created: Some((database.to_owned(), name)),
        })
    }

    /// Drops a PostgreSQL database the benchmark created.
    pub async fn drop_created(&self) {
        if let Some((server, name)) = &self.created
            && let Ok(mut conn) = sqlx::PgConnection::connect(server).await
        {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
            {
                eprintln!("could not drop the benchmark database {name}: {e}");
            }
        }
    }

    /// The URL as the configuration file writes it.
    pub fn config_url(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => url.expose_secret().to_owned(),
        }
    }

    /// Which backend, for the report.
    pub fn backend(&self) -> &'static str {
        match self.url {
            DatabaseUrl::Sqlite { .. } => "SQLite",
            DatabaseUrl::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// `server_url` with its database replaced by `name`, query kept.
fn pg_url(server_url: &str, name: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The configuration of the server under test.
pub fn config_yaml(db: &BenchDb, fill_level: u32, loglevel: &str) -> String {
    format!(
        r#"app:
  loglevel: {loglevel}
database:
  url: "{url}"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 1000000
metaclient:
  poolmap:
    - {{ver: 9-stream, pool: {POOL}}}
nodepools:
  concrete:
    {POOL}:
      mechanism: {{type: noop}}
      fill-level: {fill_level}
    {INVENTORY_POOL}:
      mechanism: {{type: noop}}
"#,
        url = db.config_url()
    )
}

/// Migrates the database and creates the tenant the clients act as; returns its key.
pub async fn create_tenant(config_path: &Path) -> Result<(i64, String), BenchError> {
    create_named_tenant(config_path, "bench").await
}

/// Migrates the database and creates the tenant `name` (its quota the configuration's
/// default); returns its id and key.
pub async fn create_named_tenant(
    config_path: &Path,
    name: &str,
) -> Result<(i64, String), BenchError> {
    let loaded = crate::config::load(&[config_path.to_path_buf()])
        .map_err(|e| BenchError::Database(format!("bench configuration: {e}")))?;
    let config = Arc::new(loaded.config);
    let db = crate::app::open_database(&config).await?;
    let engine = crate::app::build_engine(config, db.clone(), Role::Admin)
        .await
        .map_err(|e| BenchError::Database(e.to_string()))?;
    let (tenant, key) = engine
        .create_tenant(TenantRequest {
            name: name.into(),
            ssh_key: format!("ssh-ed25519 AAAA {name}"),
            is_admin: false,
            node_quota: None,
            session_lifetime: None,
            session_lifetime_max: None,
        })
        .await
        .map_err(|e| BenchError::Database(e.to_string()))?;
    engine.instance_stopped().await;
    db.close().await;
    Ok((tenant.id, key))
}

/// Seeds `nodes` ready nodes into the inventory pool and `sessions` retired sessions of
/// `tenant_id`, each linked to one of those nodes: the history of a busy site.
pub async fn seed(db: &Db, tenant_id: i64, nodes: u32, sessions: u32) -> Result<(), BenchError> {
    const NODES: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
        INSERT INTO nodes (created_at, hostname, ipaddr, state, pool, reusable, data, \
            used_count, state_changed_at) \
        SELECT $2, 'inv-' || i || '.bench.test', \
            '10.' || (i / 65536) || '.' || ((i / 256) % 256) || '.' || (i % 256), \
            'ready', $3, FALSE, '{\"provision\": {}}', i % 7, $2 FROM n";
    const SESSIONS: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
        INSERT INTO sessions (created_at, retired_at, tenant_id, expires_at, data) \
        SELECT $2, $2, $3, $2, '{\"nodes_specs\": [{\"quantity\": 1, \"pool\": \"inventory\"}]}' FROM n";
    const LINKS: &str = "INSERT INTO sessions_nodes (session_id, node_id, pool, data) \
        SELECT s.id, (SELECT MIN(id) FROM nodes WHERE pool = $2) + (s.id % $3), $2, '{}' \
        FROM sessions s WHERE s.tenant_id = $1 AND s.retired_at IS NOT NULL";
    let now = store::now();
    let mut tx: Tx = db.begin().await?;
    let nodes_i = i64::from(nodes);
    on_tx!(&mut tx, c => sqlx::query(NODES).bind(nodes_i).bind(now).bind(INVENTORY_POOL)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(|e| BenchError::Database(e.to_string()))?;
    if sessions > 0 && nodes > 0 {
        on_tx!(&mut tx, c => sqlx::query(SESSIONS).bind(i64::from(sessions)).bind(now).bind(tenant_id)
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(|e| BenchError::Database(e.to_string()))?;
        on_tx!(&mut tx, c => sqlx::query(LINKS).bind(tenant_id).bind(INVENTORY_POOL).bind(nodes_i)
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(|e| BenchError::Database(e.to_string()))?;
    }
    tx.commit().await?;
    // A site's database has statistics (autovacuum keeps them); a freshly seeded one has
    // none until autovacuum comes by, and the planner's guesses would measure that instead.
    if let Db::Postgres(pool) = db {
        sqlx::query("ANALYZE")
            .execute(pool)
            .await
            .map_err(|e| BenchError::Database(e.to_string()))?;
    }
    Ok(())
}

/// A child process serving HTTP on loopback (the server under test, or the trivial
/// handler it is compared with), killed when dropped.
pub struct Process {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Process {
    /// Starts `duffy ARGS…` (this very executable), waits for its banner's port line and
    /// keeps reading its output so that it never blocks; its log goes to `log`.
    pub async fn start(args: &[&str], log: &Path) -> Result<Process, BenchError> {
        Process::start_exe(&std::env::current_exe()?, args, log).await
    }

    /// `exe -c CONFIG serve --legacy` on a free loopback port: the server under test.
    pub async fn serve(exe: &Path, config: &Path, log: &Path) -> Result<Process, BenchError> {
        let config = config.to_string_lossy();
        let args = [
            "-c",
            &config,
            "serve",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
            "--legacy",
        ];
        Process::start_exe(exe, &args, log).await
    }

    /// [`Process::start`] of the executable `exe` (a test names the `duffy` binary).
    pub async fn start_exe(exe: &Path, args: &[&str], log: &Path) -> Result<Process, BenchError> {
        let mut child = Command::new(exe)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Server("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = line.strip_prefix(" * Port number  : ") {
                    return Some(p.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            BenchError::Server(format!("it did not start: {}", tail.trim()))
        })?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Process {
            url: format!("http://127.0.0.1:{port}"),
            child,
        })
    }

    /// The process id, for reading its memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the process with SIGKILL, as a crash would, and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Resident memory of a process now and at its peak, in bytes (`VmRSS`, `VmHWM`).
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Waits until `pool` has `ready` ready nodes.
pub async fn wait_for_ready(db: &Db, pool: &str, ready: i64) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let counts = store::nodes::count_by_pool_state(db).await?;
        let now = counts
            .iter()
            .find(|(p, s, _)| p.as_deref() == Some(pool) && *s == NodeState::Ready)
            .map_or(0, |(_, _, n)| *n);
        if now >= ready {
            return Ok(());
        }
        if started.elapsed() > START_LIMIT {
            return Err(BenchError::Server(format!(
                "pool {pool} has {now} of {ready} ready nodes after {START_LIMIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the database says after a run.
#[derive(Debug, Clone, Default)]
pub struct Aftermath {
    /// Active sessions (every client retired what it got: this should be 0).
    pub active_sessions: usize,
    /// Nodes in provisioning, contextualizing or deprovisioning after settling, and
    /// deployed ones no session holds.
    pub transient_nodes: i64,
    /// How long the background jobs took to settle.
    pub settled_in: Duration,
    /// Node counts of the benchmark pool by state.
    pub levels: Vec<(NodeState, i64)>,
}

/// Waits (up to 30 s) for the background jobs to finish what the run left them, then
/// counts what is left.
pub async fn aftermath(db: &Db) -> Result<Aftermath, BenchError> {
    let started = Instant::now();
    loop {
        let counts = store::nodes::count_by_pool_state(db).await?;
        let transient: i64 = counts
            .iter()
            .filter(|(_, s, _)| s.is_transient())
            .map(|(_, _, n)| n)
            .sum();
        let active_sessions = store::sessions::list_active(db, None).await?.len();
        // Deployed nodes with no session left are the deprovisioning job's, still to come.
        let orphans: i64 = counts
            .iter()
            .filter(|(_, s, _)| *s == NodeState::Deployed && active_sessions == 0)
            .map(|(_, _, n)| n)
            .sum();
        if transient + orphans == 0 || started.elapsed() > Duration::from_secs(30) {
            return Ok(Aftermath {
                active_sessions,
                transient_nodes: transient + orphans,
                settled_in: started.elapsed(),
                levels: counts
                    .into_iter()
                    .filter(|(p, _, _)| p.as_deref() == Some(POOL))
                    .map(|(_, s, n)| (s, n))
                    .collect(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh directory for a run's files.
pub fn run_dir(keep: bool) -> Result<(PathBuf, Option<tempfile::TempDir>), BenchError> {
    let dir = tempfile::Builder::new().prefix("duffy-bench-").tempdir()?;
    if keep {
        let path = dir.keep();
        Ok((path, None))
    } else {
        Ok((dir.path().to_path_buf(), Some(dir)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_the_benchmark_database() {
        assert_eq!(
            pg_url("postgres://u@127.0.0.1:5432/test", "b"),
            "postgres://u@127.0.0.1:5432/b"
        );
        assert_eq!(
            pg_url("postgres://u@h/test?sslmode=disable", "b"),
            "postgres://u@h/b?sslmode=disable"
        );
        assert_eq!(pg_url("postgres://h", "b"), "postgres://h/b");
    }
}
