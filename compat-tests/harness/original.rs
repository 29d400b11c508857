//! The original Duffy 3.4.0's database, made by the original itself: `duffy setup-db`,
//! `duffy admin create-tenant`, and `fixtures/duffy3/seed.py`, which writes nodes and
//! sessions through the original's own models. It is the source of `duffy import`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;
use tokio::time::timeout;

use super::pg::PgDatabase;
use super::server::{Backend, Tenant};
use super::venv::duffy_app_venv;

/// A bound on each run of the original (the first `setup-db` imports a lot of Python).
const LIMIT: Duration = Duration::from_secs(180);

/// A database of the original, on SQLite or PostgreSQL.
pub struct Original {
    /// The URL as the original's `database.sqlalchemy.sync_url` says it.
    pub sync_url: String,
    /// The original's configuration file.
    pub config: PathBuf,
    venv: PathBuf,
    _database: Option<PgDatabase>,
    dir: TempDir,
}

impl Original {
    /// A fresh database with the original's schema (`setup-db`).
    pub async fn create(backend: Backend) -> Original {
        let venv = duffy_app_venv().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let (sync_url, async_url) = match &database {
            // Four slashes: SQLAlchemy's absolute path.
            None => {
                let path = dir.path().join("original.db");
                (
                    format!("sqlite:///{}", path.display()),
                    format!("sqlite+aiosqlite:///{}", path.display()),
                )
            }
            Some(db) => {
                let rest = db.url.split_once("://").expect("a URL").1;
                (
                    format!("postgresql+psycopg2://{rest}"),
                    format!("postgresql+asyncpg://{rest}"),
                )
            }
        };
        let config = dir.path().join("duffy.yaml");
        std::fs::write(
            &config,
            format!(
                "app:\n  loglevel: warning\n\
                 database:\n  sqlalchemy:\n    sync_url: \"{sync_url}\"\n    async_url: \"{async_url}\"\n\
                 tasks:\n  celery:\n    broker_url: \"redis://127.0.0.1:1/0\"\n    result_backend: \"redis://127.0.0.1:1/0\"\n  \
                 locking:\n    url: \"redis://127.0.0.1:1/0\"\n\
                 defaults:\n  session-lifetime: 6h\n  session-lifetime-max: 12h\n  node-quota: 10\n"
            ),
        )
        .expect("write the original's config");
        let original = Original {
            sync_url,
            config,
            venv,
            _database: database,
            dir,
        };
        original.duffy(&["setup-db"]).await;
        original
    }

    /// The test's folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the original `duffy -c CONFIG ARGS…`; panics unless it succeeds; its stdout.
    pub async fn duffy(&self, args: &[&str]) -> String {
        let mut command = Command::new(self.venv.join("bin/duffy"));
        command.arg("-c").arg(&self.config).args(args);
        self.run(command, args).await
    }

    /// Creates a tenant with the original's `admin create-tenant NAME KEY OPTIONS…`.
    pub async fn tenant(&self, name: &str, options: &[&str]) -> Tenant {
        let mut args = vec!["admin", "create-tenant"];
        args.extend_from_slice(options);
        args.extend([name, "ssh-ed25519 AAAA imported"]);
        let out = self.duffy(&args).await;
        let prefix = format!("OK: {name}: ");
        let key = out
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("create-tenant printed no key: {out:?}"));
        Tenant {
            name: name.to_owned(),
            key: key.trim().to_owned(),
        }
    }

    /// Runs `fixtures/duffy3/seed.py CONFIG ARGS…` with the original's Python; the JSON it
    /// prints.
    pub async fn seed(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/duffy3/seed.py");
        let mut command = Command::new(self.venv.join("bin/python"));
        command.arg(script).arg(&self.config).args(args);
        let out = self.run(command, args).await;
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("seed.py printed {out:?}: {e}"))
    }

    async fn run(&self, mut command: Command, args: &[&str]) -> String {
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("LANG", "C.UTF-8")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = timeout(LIMIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("the original's {args:?} timed out"))
            .expect("run the original");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the original's {args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}
