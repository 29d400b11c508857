//! The test harness: the real server on port 0 with a fresh database per test.
//!
//! `spawn_app(backend)` starts the whole application (API and, optionally, background jobs)
//! on 127.0.0.1:0. SQLite tests use a temporary file; PostgreSQL tests create a database of
//! their own inside the one `DUFFY_TEST_POSTGRES_URL` names and drop it afterwards. Without
//! that variable at build time the PostgreSQL variant of each test is ignored (`build.rs`).

use std::sync::Arc;

use duffy::app::{App, AppOptions};
use duffy::config::{self, Config, DatabaseUrl};
use duffy::contextualize::Contextualizer;
use duffy::engine::Engine;
use duffy::engine::jobs::{Deprovision, EnforceDeadlines, ExpireSessions, FillPools};
use duffy::engine::tenants::TenantRequest;
use duffy::mechanisms::Mechanism;
use duffy::store::tenants::Tenant;
use duffy::store::{self, Db};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

use crate::pg::PgDatabase;
pub use crate::pg::required_postgres_url;

/// Runs a test body on SQLite and on PostgreSQL: `mod NAME { fn sqlite(); fn postgres(); }`.
/// The PostgreSQL variant is ignored unless `DUFFY_TEST_POSTGRES_URL` was set when the tests
/// were built (`build.rs`); run anyway without it, it fails and says what to set.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(
                not(duffy_postgres_tests),
                ignore = "PostgreSQL variant: set DUFFY_TEST_POSTGRES_URL to run it"
            )]
            async fn postgres() {
                $crate::helpers::required_postgres_url();
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

/// A fresh database, removed when dropped.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<PgDatabase>,
}

impl TestDb {
    /// The `database:` section of a configuration that opens this database.
    pub fn yaml(&self) -> String {
        use secrecy::ExposeSecret;
        let url = match &self.url {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => url.expose_secret().to_owned(),
        };
        format!("database:\n  url: \"{url}\"\n")
    }

    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                TestDb {
                    url: DatabaseUrl::Sqlite {
                        path: dir.path().join("duffy.db"),
                    },
                    _dir: Some(dir),
                    _postgres: None,
                }
            }
            Backend::Postgres => {
                let database = PgDatabase::create().await;
                TestDb {
                    url: DatabaseUrl::Postgres {
                        url: database.url.clone().into(),
                    },
                    _dir: None,
                    _postgres: Some(database),
                }
            }
        }
    }
}

/// The configuration most tests use: two filled noop pools, one without a fill level, and
/// an abstract one.
pub const DEFAULT_CONFIG: &str = r#"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 10
nodepools:
  abstract:
    noop:
      mechanism:
        type: noop
  concrete:
    pool-a:
      extends: noop
      fill-level: 5
    pool-b:
      extends: noop
      fill-level: 2
    unfilled:
      extends: noop
"#;

/// A running application and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    pub engine: Arc<Engine>,
    pub client: reqwest::Client,
    pub admin: Tenant,
    pub admin_key: String,
    token: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    db: Option<TestDb>,
}

/// Options of [`spawn_app_with`].
pub struct Spawn<'a> {
    pub config: &'a str,
    pub background_jobs: bool,
    pub fill: bool,
}

impl Default for Spawn<'_> {
    fn default() -> Self {
        Spawn {
            config: DEFAULT_CONFIG,
            background_jobs: false,
            fill: true,
        }
    }
}

/// The default test app: no background jobs (tests tick them), pools filled once.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Spawn::default()).await
}

/// A test app on a configuration of the test's own, its pools still empty.
pub async fn spawn_app_unfilled(backend: Backend, config: &str) -> TestApp {
    spawn_app_with(
        backend,
        Spawn {
            config,
            fill: false,
            ..Spawn::default()
        },
    )
    .await
}

/// A test app on a configuration of the test's own.
pub async fn spawn_app_config(backend: Backend, config: &str) -> TestApp {
    spawn_app_with(
        backend,
        Spawn {
            config,
            ..Spawn::default()
        },
    )
    .await
}

pub fn load_config(yaml: &str) -> Config {
    config::from_yaml_str(yaml, "test.yaml")
        .expect("test config")
        .config
}

pub async fn spawn_app_with(backend: Backend, spawn: Spawn<'_>) -> TestApp {
    let db = TestDb::new(backend).await;
    start_on(
        db,
        load_config(spawn.config),
        spawn.background_jobs,
        spawn.fill,
    )
    .await
}

/// Starts the application on an existing database (a "restart" when one ran there before).
pub async fn start_on(db: TestDb, config: Config, background_jobs: bool, fill: bool) -> TestApp {
    start_custom(db, config, background_jobs, fill, None, Vec::new()).await
}

/// Like [`start_on`], with a contextualizer of the test's own.
pub async fn start_custom(
    db: TestDb,
    mut config: Config,
    background_jobs: bool,
    fill: bool,
    contextualizer: Option<Arc<dyn Contextualizer>>,
    mechanisms: Vec<(&str, Arc<dyn Mechanism>)>,
) -> TestApp {
    config.database.url = Some(db.url.clone());
    let config = Arc::new(config);
    let store = Db::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut by_pool = duffy::mechanisms::Mechanisms::from_config(&config).expect("mechanisms");
    for (pool, mechanism) in mechanisms {
        by_pool.insert(pool, mechanism);
    }
    let contextualizer = contextualizer
        .unwrap_or_else(|| Arc::new(duffy::contextualize::Ssh::from_config(&config.app.ssh)));
    let instance =
        duffy::engine::instances::register(&store, duffy::engine::instances::Role::Serve)
            .await
            .expect("register the instance");
    let engine = Engine::new(store, config, by_pool, contextualizer, instance).expect("engine");
    let engine = Arc::new(engine);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let (admin, admin_key) = match store::tenants::by_name(engine.db(), "admin")
        .await
        .expect("query")
    {
        Some(admin) => (admin, String::new()),
        None => engine
            .create_tenant(TenantRequest {
                name: "admin".into(),
                ssh_key: "ssh-ed25519 AAAA admin".into(),
                is_admin: true,
                node_quota: None,
                session_lifetime: None,
                session_lifetime_max: None,
            })
            .await
            .expect("admin"),
    };
    let app = App::new(
        engine.clone(),
        listener,
        AppOptions {
            background_jobs,
            legacy: true,
            ..AppOptions::default()
        },
    )
    .expect("app");
    let token = CancellationToken::new();
    let handle = tokio::spawn({
        let token = token.clone();
        async move {
            app.run(token).await.expect("app runs");
        }
    });
    let test_app = TestApp {
        address,
        engine,
        client: reqwest::Client::new(),
        admin,
        admin_key,
        token,
        handle: Some(handle),
        db: Some(db),
    };
    if fill && !background_jobs {
        test_app.fill().await;
    }
    test_app
}

/// An answer: status, headers and the body parsed as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn detail(&self) -> &Value {
        &self.body["detail"]
    }

    /// The id of the session in a session answer.
    pub fn session_id(&self) -> i64 {
        self.body["session"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no session in {}", self.text))
    }
}

/// Credentials for a request.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    Header(&'a str),
}

impl TestApp {
    /// Stops the application and returns its database (to start again on it).
    pub async fn stop(mut self) -> TestDb {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app stopped cleanly");
        }
        self.db.take().expect("database")
    }

    pub fn admin_auth(&self) -> Auth<'_> {
        Auth::Basic("admin", &self.admin_key)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&str>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        req = match auth {
            Auth::None => req,
            Auth::Basic(name, key) => req.basic_auth(name, Some(key)),
            Auth::Bearer(key) => req.bearer_auth(key),
            Auth::Header(value) => req.header("authorization", value),
        };
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = req.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Answer {
        self.request(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: &Value) -> Answer {
        self.request(Method::POST, path, auth, Some(&body.to_string()))
            .await
    }

    pub async fn put(&self, path: &str, auth: Auth<'_>, body: &Value) -> Answer {
        self.request(Method::PUT, path, auth, Some(&body.to_string()))
            .await
    }

    /// Retires a session the way the API's clients do.
    pub async fn retire(&self, auth: Auth<'_>, sid: i64) -> Answer {
        self.put(
            &format!("/api/v1/sessions/{sid}"),
            auth,
            &serde_json::json!({"active": false}),
        )
        .await
    }

    /// Creates a tenant directly through the engine; returns it with its key.
    pub async fn tenant(&self, name: &str, node_quota: Option<i64>) -> (Tenant, String) {
        self.engine
            .create_tenant(TenantRequest {
                name: name.into(),
                ssh_key: format!("ssh-ed25519 AAAA {name}"),
                is_admin: false,
                node_quota,
                session_lifetime: None,
                session_lifetime_max: None,
            })
            .await
            .expect("tenant")
    }

    /// One full fill round, waiting for the provisioning.
    pub async fn fill(&self) {
        FillPools::new(self.engine.clone())
            .tick()
            .await
            .expect("fill");
    }

    /// One deprovisioning round, waiting for the runs.
    pub async fn deprovision(&self) -> duffy::engine::lifecycle::DeprovisionReport {
        Deprovision::new(self.engine.clone())
            .tick()
            .await
            .expect("deprovision")
    }

    pub async fn expire(&self) -> Vec<i64> {
        ExpireSessions::new(self.engine.clone())
            .tick()
            .await
            .expect("expire")
    }

    pub async fn deadlines(&self) -> duffy::engine::jobs::deadlines::SweepReport {
        EnforceDeadlines::new(self.engine.clone())
            .tick()
            .await
            .expect("deadlines")
    }

    /// `levels` of a pool as the API reports them.
    pub async fn levels(&self, pool: &str) -> Value {
        let a = self.get(&format!("/api/v1/pools/{pool}"), Auth::None).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["pool"]["levels"].clone()
    }

    /// The ids of `GET /api/v1/nodes?{query}` (e.g. `state=ready&pool=p`), in id order.
    pub async fn node_ids(&self, query: &str) -> Vec<i64> {
        let a = self
            .get(&format!("/api/v1/nodes?{query}"), Auth::None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("no nodes in {}", a.text))
            .iter()
            .filter_map(|n| n["id"].as_i64())
            .collect()
    }

    /// An admin's `PUT /api/v1/nodes/{id}` (downtime, recover, retire, …).
    pub async fn act(&self, id: i64, body: Value) -> Answer {
        self.put(&format!("/api/v1/nodes/{id}"), self.admin_auth(), &body)
            .await
    }

    /// The trouble the status page shows: the first ready node of `pool` taken down, then
    /// the pool paused, both by the admin; returns the node's id.
    pub async fn take_down_and_pause(&self, pool: &str, downtime: &str, pause: &str) -> i64 {
        let id = self.node_ids(&format!("state=ready&pool={pool}")).await[0];
        let a = self
            .act(
                id,
                serde_json::json!({"action": "downtime", "reason": downtime}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let a = self
            .put(
                &format!("/api/v1/pools/{pool}"),
                self.admin_auth(),
                &serde_json::json!({"paused": true, "reason": pause}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        id
    }

    /// Requests a session of `quantity` nodes of `pool`.
    pub async fn request_session(&self, auth: Auth<'_>, pool: &str, quantity: i64) -> Answer {
        self.post(
            "/api/v1/sessions",
            auth,
            &serde_json::json!({"nodes_specs": [{"pool": pool, "quantity": quantity}]}),
        )
        .await
    }

    /// Runs SQL against the test database (checks that need to look under the API).
    pub async fn count(&self, sql: &'static str) -> i64 {
        match self.engine.db() {
            Db::Sqlite { reader, .. } => sqlx::query_scalar(sql)
                .fetch_one(reader)
                .await
                .expect("sql"),
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.expect("sql"),
        }
    }
}

impl TestApp {
    /// The `database:` section of a configuration that opens this app's database (for
    /// commands run beside it).
    pub fn database_yaml(&self) -> String {
        self.db.as_ref().expect("database").yaml()
    }

    /// Runs a statement with a timestamp and an id bound as `$1` and `$2` (setting up
    /// states the API cannot reach quickly, such as a session granted hours ago).
    pub async fn exec_at(&self, sql: &'static str, t: chrono::NaiveDateTime, id: i64) {
        match self.engine.db() {
            Db::Sqlite { writer, .. } => {
                sqlx::query(sql)
                    .bind(t)
                    .bind(id)
                    .execute(writer)
                    .await
                    .expect("sql");
            }
            Db::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(t)
                    .bind(id)
                    .execute(pool)
                    .await
                    .expect("sql");
            }
        }
    }

    /// Waits (up to `secs` seconds) until `sql` counts `n`; whether it did.
    pub async fn eventually_count(&self, secs: u64, sql: &'static str, n: i64) -> bool {
        for _ in 0..secs * 20 {
            if self.count(sql).await == n {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
