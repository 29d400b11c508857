//! Putting the service together: database, engine, background jobs and the API, on a
//! listener the caller bound (tests bind port 0), until a cancellation token fires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;

use crate::config::{Config, DatabaseUrl};
use crate::contextualize::Ssh;
use crate::engine::instances::{self, Role};
use crate::engine::jobs::{Jobs, Takeover};
use crate::engine::{self, Engine, EngineError};
use crate::legacy::{self, Legacy};
use crate::mechanisms::{self, Mechanisms};
use crate::store::{Db, StoreError};
use crate::{api, http, store};

/// How long shutdown waits for running mechanism runs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The service could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration lacks what the engine needs.
    #[error(transparent)]
    Setup(#[from] engine::SetupError),
    /// A pool's mechanism cannot be set up.
    #[error(transparent)]
    Mechanism(#[from] mechanisms::SetupError),
    /// Start-up reconciliation failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The v2 layer cannot be set up from `metaclient.*`.
    #[error(transparent)]
    Legacy(#[from] legacy::SetupError),
    /// The listener's address cannot be read.
    #[error("cannot read the listening address: {0}")]
    Listener(#[from] std::io::Error),
    /// Another `duffy serve` holds the SQLite database.
    #[error(
        "another duffy serve is already running on the SQLite database {0}: SQLite allows one \
         server at a time (duffy admin works beside it; use PostgreSQL for several instances)"
    )]
    AlreadyServing(String),
    /// The lock file beside the SQLite database cannot be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Held while `duffy serve` runs on an SQLite database: an exclusive lock on the file
/// `<database>.lock` beside it, so that a second server on the same file is refused. The
/// kernel lets the lock go when the process ends, however it ends (a `kill -9` too), so a
/// restart never finds a stale lock. PostgreSQL needs none.
#[derive(Debug)]
pub struct ServeLock {
    _file: Option<std::fs::File>,
}

/// Takes the [`ServeLock`] of `url`'s database: nothing for PostgreSQL or an in-memory
/// SQLite database; for an SQLite file, its lock, or [`AppError::AlreadyServing`] when
/// another process holds it. Call it after [`open_database`], which makes the directory.
pub fn lock_for_serving(url: &DatabaseUrl) -> Result<ServeLock, AppError> {
    let DatabaseUrl::Sqlite { path } = url else {
        return Ok(ServeLock { _file: None });
    };
    if path.as_os_str() == ":memory:" {
        return Ok(ServeLock { _file: None });
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let shown = lock_path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| AppError::Lock {
            path: shown.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(ServeLock { _file: Some(file) }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(AppError::AlreadyServing(path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(AppError::Lock {
            path: shown,
            source,
        }),
    }
}

/// Choices the command line (or a test) makes about a running service.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Run the background jobs (tests turn them off and call `tick()` themselves).
    pub background_jobs: bool,
    /// How long shutdown waits for mechanism runs.
    pub shutdown_grace: Duration,
    /// Also serve the v2 endpoints (`duffy serve --legacy`).
    pub legacy: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            background_jobs: true,
            shutdown_grace: SHUTDOWN_GRACE,
            legacy: false,
        }
    }
}

/// A service ready to run.
pub struct App {
    engine: Arc<Engine>,
    listener: TcpListener,
    options: AppOptions,
    legacy: Option<Arc<Legacy>>,
}

/// Where Duffy keeps its files when the configuration does not say:
/// `$XDG_DATA_HOME/duffy`, else `~/.local/share/duffy`.
pub fn data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("share"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("duffy")
}

/// The database to use: the configured one, else an SQLite file in the data directory.
pub fn database_url(config: &Config) -> DatabaseUrl {
    config
        .database
        .url
        .clone()
        .unwrap_or_else(|| DatabaseUrl::Sqlite {
            path: data_dir().join("duffy.db"),
        })
}

/// Opens and migrates the configured database.
pub async fn open_database(config: &Config) -> Result<Db, StoreError> {
    let db = Db::connect(&database_url(config)).await?;
    db.migrate().await?;
    Ok(db)
}

/// Builds an engine on a migrated database with the pools' mechanisms, registering this
/// process as an instance in `role`.
pub async fn build_engine(config: Arc<Config>, db: Db, role: Role) -> Result<Engine, AppError> {
    let mechanisms = Mechanisms::from_config(&config)?;
    let ssh = Arc::new(Ssh::from_config(&config.app.ssh));
    let instance = instances::register(&db, role).await?;
    Ok(Engine::new(db, config, mechanisms, ssh, instance)?)
}

impl App {
    /// Assembles the service on `listener`. With `options.legacy`, the v2 layer forwards
    /// to `metaclient.dest`, by default to this very listener.
    pub fn new(
        engine: Arc<Engine>,
        listener: TcpListener,
        options: AppOptions,
    ) -> Result<App, AppError> {
        let legacy = if options.legacy {
            let metaclient = &engine.config().metaclient;
            let base = match &metaclient.dest {
                Some(dest) => dest.trim_end_matches('/').to_owned(),
                None => format!("http://{}", loopback(listener.local_addr()?)),
            };
            let legacy = Legacy::new(metaclient, &format!("{base}/api/v1"))?
                .with_metrics(engine.metrics().clone());
            Some(Arc::new(legacy))
        } else {
            None
        };
        Ok(App {
            engine,
            listener,
            options,
            legacy,
        })
    }

    /// The v3 URL the v2 layer forwards to, when it is served.
    pub fn legacy_dest(&self) -> Option<&str> {
        self.legacy.as_deref().map(Legacy::api_url)
    }

    /// The engine, for tests and for the first-admin set-up.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Where the API listens (the real port when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Takes over what dead instances left behind, starts the background jobs and serves the
    /// API until `shutdown` fires; then stops the jobs and closes the database.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let tracker = self.engine.runs().clone();
        let jobs = if self.options.background_jobs {
            Takeover::new(self.engine.clone())
                .start_up(&tracker)
                .await?;
            Some(Jobs::start(
                self.engine.clone(),
                shutdown.child_token(),
                tracker,
            ))
        } else {
            None
        };
        let v3 = api::server_routes(api::State {
            engine: self.engine.clone(),
        });
        let routes = match self.legacy {
            Some(legacy) => v3.or(legacy::routes(legacy)).unify().boxed(),
            None => v3,
        };
        http::serve(
            self.listener,
            routes,
            self.engine.metrics().clone(),
            self.engine.config().app.connections,
            shutdown,
        )
        .await;
        tracing::info!("API stopped; stopping background jobs");
        if let Some(jobs) = jobs {
            jobs.shutdown(self.options.shutdown_grace).await;
            tracing::debug!("background jobs stopped");
        }
        self.engine.instance_stopped().await;
        self.engine.db().close().await;
        tracing::info!("database closed; duffy stopped");
        Ok(())
    }
}

/// The address a client on this machine reaches `addr` at: a wildcard bind is reached on
/// loopback.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Creates the first admin when the database has no tenant at all; returns its name and
/// plain API key (shown once by the caller).
pub async fn ensure_first_admin(engine: &Engine) -> Result<Option<(String, String)>, EngineError> {
    if store::tenants::count(engine.db()).await? > 0 {
        return Ok(None);
    }
    let (tenant, key) = engine
        .create_tenant(engine::tenants::TenantRequest {
            name: "admin".into(),
            ssh_key: String::new(),
            is_admin: true,
            node_quota: None,
            session_lifetime: None,
            session_lifetime_max: None,
        })
        .await?;
    Ok(Some((tenant.name, key)))
}
