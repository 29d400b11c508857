//! Our real server binary, its database and its tenants.
//!
//! On SQLite a test runs one `duffy serve --legacy`; on PostgreSQL it runs a `duffy serve`
//! on a database of its own and a separate `duffy serve-legacy` forwarding to it. Either
//! way the test gets a [`Duffy`] with the v2 endpoint for cico and the v3 URL to cross-check.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// Which database (and so which server layout) a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one `duffy serve --legacy`.
    Sqlite,
    /// PostgreSQL, `duffy serve` plus a separate `duffy serve-legacy`.
    Postgres,
}

use super::pg::PgDatabase;
pub use super::pg::required_postgres_url;

/// The SSH key every test tenant gets (noop pools never use it).
const SSH_KEY: &str = "ssh-ed25519 AAAA x";

/// How long a server may take to print its port, and an admin command to finish.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The configuration of every compat test; `{database}` is filled in.
///
/// Hostnames are `<pool>-<id>.ci.test`: valid FQDNs, distinct, and none a substring of
/// another (cico pairs inventory rows with Node/get hosts by substring).
const CONFIG: &str = r#"
app:
  host: 127.0.0.1
  loglevel: info
database:
  url: "{database}"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 10
metaclient:
  poolmap:
    - {ver: "7", arch: x86_64, flavor: medium, pool: c7-x86-64-medium}
    - {ver: "7", arch: x86_64, pool: c7-x86-64}
    - {ver: "8", arch: x86_64, pool: c8-x86-64}
    - {ver: "8", arch: aarch64, pool: "c8-aarch64-{{ flavor }}"}
    - {ver: 9-stream, pool: c9s-slow}
    - {ver: "6", pool: c6-never}
nodepools:
  abstract:
    noop:
      mechanism:
        type: noop
        noop:
          hostname: "{{ pool }}-{{ id }}.ci.test"
  concrete:
    c7-x86-64:
      extends: noop
      architecture: x86_64
      fill-level: 5
    c7-x86-64-medium:
      extends: noop
      architecture: x86_64
      fill-level: 2
    c8-x86-64:
      extends: noop
      architecture: x86_64
      fill-level: 3
    c8-aarch64-tiny:
      extends: noop
      architecture: aarch64
      fill-level: 2
    # Provisioning takes a few seconds: empty right after the start, then one node.
    c9s-slow:
      extends: noop
      fill-level: 1
      mechanism:
        type: noop
        noop:
          hostname: "{{ pool }}-{{ id }}.ci.test"
          delay: 5s
    # Never ready while a test runs.
    c6-never:
      extends: noop
      fill-level: 1
      mechanism:
        type: noop
        noop:
          hostname: "{{ pool }}-{{ id }}.ci.test"
          delay: 1h
"#;

/// The pools that fill at once, with their fill levels.
pub const INSTANT_POOLS: &[(&str, i64)] = &[
    ("c7-x86-64", 5),
    ("c7-x86-64-medium", 2),
    ("c8-x86-64", 3),
    ("c8-aarch64-tiny", 2),
];

/// A tenant created with `duffy admin create-tenant`.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's name.
    pub name: String,
    /// Its API key, which is also its legacy key.
    pub key: String,
}

/// A raw v2 answer.
#[derive(Debug)]
pub struct Raw {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub text: String,
}

impl Raw {
    /// Status and body parsed as JSON (as `json.loads` would); panics if it is not JSON.
    pub fn json(&self) -> (u16, Value) {
        let body =
            serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        (self.status, body)
    }
}

/// A running server process; killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

/// A test's own Duffy: servers, configuration, database, and an HTTP client for the v3 API.
pub struct Duffy {
    /// The v2 base URL without a trailing slash, e.g. `http://127.0.0.1:4711`.
    pub legacy_base: String,
    /// The v3 base URL, e.g. `http://127.0.0.1:4711` (the same as the legacy one on SQLite).
    pub v3_base: String,
    /// A client for cross-checks: no proxy, bounded.
    pub http: reqwest::Client,
    config: PathBuf,
    backend: Backend,
    url: String,
    // Fields drop in order: the servers go before their database.
    servers: Vec<Server>,
    database: Option<PgDatabase>,
    dir: TempDir,
}

/// A test's storage and configuration before its servers start: a test that imports a
/// database first runs `duffy import` here ([`Prepared::duffy`]), then starts the servers.
pub struct Prepared {
    backend: Backend,
    /// The database URL our configuration names.
    pub url: String,
    /// The configuration directory (`-c`): the compat configuration plus the test's own.
    pub config: PathBuf,
    database: Option<PgDatabase>,
    dir: TempDir,
}

impl Prepared {
    /// Fresh storage for `backend` and a configuration of the compat file plus `extra`
    /// (YAML, deep-merged over it).
    pub async fn new(backend: Backend, extra: &str) -> Prepared {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let url = match &database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("duffy.db").display()),
        };
        let config = dir.path().join("conf");
        std::fs::create_dir(&config).expect("config dir");
        std::fs::write(
            config.join("00-compat.yaml"),
            CONFIG.replace("{database}", &url),
        )
        .expect("write the config");
        let extra = if extra.trim().is_empty() {
            "{}\n"
        } else {
            extra
        };
        std::fs::write(config.join("10-test.yaml"), extra).expect("write the test's config");
        Prepared {
            backend,
            url,
            config,
            database,
            dir,
        }
    }

    /// The test's own folder (it goes away with the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `duffy -c CONFIG ARGS…` (bounded) and returns its status, stdout and stderr.
    pub async fn duffy(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duffy"));
        command
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("duffy {args:?} timed out"))
            .expect("run duffy");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts the server(s) on this storage.
    pub async fn start(self) -> Duffy {
        let Prepared {
            backend,
            url,
            config,
            database,
            dir,
        } = self;
        let cfg = config.to_str().expect("UTF-8 temp path").to_owned();
        let mut servers = Vec::new();
        let (legacy_port, v3_port) = match backend {
            Backend::Sqlite => {
                let server = Server::start(
                    "serve --legacy",
                    dir.path(),
                    &[
                        "-c",
                        &cfg,
                        "serve",
                        "--legacy",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        "0",
                    ],
                )
                .await;
                let port = server.port;
                servers.push(server);
                (port, port)
            }
            Backend::Postgres => {
                let v3 = Server::start(
                    "serve",
                    dir.path(),
                    &["-c", &cfg, "serve", "-H", "127.0.0.1", "-p", "0"],
                )
                .await;
                let dest = format!("http://127.0.0.1:{}", v3.port);
                let v3_port = v3.port;
                servers.push(v3);
                let legacy = Server::start(
                    "serve-legacy",
                    dir.path(),
                    &[
                        "-c",
                        &cfg,
                        "serve-legacy",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        "0",
                        "-D",
                        &dest,
                    ],
                )
                .await;
                let legacy_port = legacy.port;
                servers.push(legacy);
                (legacy_port, v3_port)
            }
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Duffy {
            legacy_base: format!("http://127.0.0.1:{legacy_port}"),
            v3_base: format!("http://127.0.0.1:{v3_port}"),
            http,
            config,
            backend,
            url,
            servers,
            database,
            dir,
        }
    }
}

impl Duffy {
    /// Starts our server(s) for `backend` on fresh storage, with the compat configuration.
    pub async fn start(backend: Backend) -> Duffy {
        Prepared::new(backend, "").await.start().await
    }

    /// Stops the server(s) (killed, as a crash would) and hands back their storage.
    pub async fn stop(mut self) -> Prepared {
        for mut server in std::mem::take(&mut self.servers) {
            let _ = server.child.kill().await;
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Prepared {
            backend: self.backend,
            url: self.url.clone(),
            config: self.config.clone(),
            database: self.database.take(),
            dir,
        }
    }

    /// The endpoint as cico wants it: with the trailing slash.
    pub fn endpoint(&self) -> String {
        format!("{}/", self.legacy_base)
    }

    /// Creates a tenant with `duffy admin create-tenant NAME KEY --node-quota N`.
    pub async fn tenant(&self, name: &str, node_quota: u32) -> Tenant {
        let quota = node_quota.to_string();
        let out = self
            .admin(&["create-tenant", name, SSH_KEY, "--node-quota", &quota])
            .await;
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

    /// Runs `duffy -c CFG admin ARGS…` and returns its stdout; panics unless it succeeds.
    async fn admin(&self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duffy"));
        command
            .arg("-c")
            .arg(&self.config)
            .arg("admin")
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = timeout(START_LIMIT, command.output())
            .await
            .expect("duffy admin timed out")
            .expect("run duffy admin");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "duffy admin {args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A raw `GET` on the v2 layer (`/Node/get?…`), as scripts send it.
    pub async fn v2_get(&self, path_and_query: &str) -> Raw {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.legacy_base))
            .send()
            .await
            .expect("v2 request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("v2 body");
        Raw {
            status,
            content_type,
            text,
        }
    }

    /// `GET` on the v3 API, anonymously or as `tenant` (Basic auth); the JSON answer.
    pub async fn v3_get(&self, path: &str, tenant: Option<&Tenant>) -> Value {
        let mut request = self.http.get(format!("{}/api/v1{path}", self.v3_base));
        if let Some(t) = tenant {
            request = request.basic_auth(&t.name, Some(&t.key));
        }
        let response = request.send().await.expect("v3 request");
        let status = response.status();
        let body: Value = response.json().await.expect("v3 JSON");
        assert_eq!(status, 200, "GET /api/v1{path}: {body}");
        body
    }

    /// The tenant's sessions as `GET /api/v1/sessions` lists them.
    pub async fn v3_sessions(&self, tenant: &Tenant) -> Vec<Value> {
        let body = self.v3_get("/sessions", Some(tenant)).await;
        body["sessions"].as_array().expect("sessions").clone()
    }

    /// One session as `GET /api/v1/sessions/{id}` shows it to its tenant.
    pub async fn v3_session(&self, tenant: &Tenant, id: &str) -> Value {
        self.v3_get(&format!("/sessions/{id}"), Some(tenant))
            .await
            .get("session")
            .cloned()
            .expect("session")
    }

    /// All nodes as `GET /api/v1/nodes` lists them.
    pub async fn v3_nodes(&self) -> Vec<Value> {
        let body = self.v3_get("/nodes", None).await;
        body["nodes"].as_array().expect("nodes").clone()
    }

    /// How many nodes of `pool` are ready.
    pub async fn ready(&self, pool: &str) -> i64 {
        let body = self.v3_get(&format!("/pools/{pool}"), None).await;
        body["pool"]["levels"]["ready"]
            .as_i64()
            .expect("ready level")
    }

    /// Waits (bounded) until each pool has at least the given number of ready nodes.
    pub async fn wait_ready(&self, pools: &[(&str, i64)]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for &(pool, want) in pools {
            loop {
                let have = self.ready(pool).await;
                if have >= want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "pool {pool}: {have} ready nodes, waited for {want}"
                );
                sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until every instantly provisioned pool is full.
    pub async fn wait_filled(&self) {
        self.wait_ready(INSTANT_POOLS).await;
    }
}

/// The hostnames of a v3 session's nodes, sorted.
pub fn hostnames(session: &Value) -> Vec<String> {
    let mut names: Vec<String> = session["nodes"]
        .as_array()
        .expect("session nodes")
        .iter()
        .map(|n| n["hostname"].as_str().expect("node hostname").to_owned())
        .collect();
    names.sort();
    names
}

impl Drop for Duffy {
    fn drop(&mut self) {
        // A failing test shows what the servers said.
        if std::thread::panicking() {
            for server in &self.servers {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                eprintln!("--- log of `duffy {}` ---\n{log}--- end ---", server.name);
            }
        }
    }
}

impl Server {
    /// Starts `duffy ARGS…` and reads its port from the banner (bounded wait).
    async fn start(name: &'static str, dir: &Path, args: &[&str]) -> Server {
        let log = dir.join(format!("{}.log", name.replace([' ', '-'], "_")));
        let stderr = std::fs::File::create(&log).expect("server log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_duffy"))
            .args(args)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn duffy");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let port = timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let port = line.strip_prefix(" * Port number  : ").map(str::trim);
                let port = port.and_then(|p| p.parse::<u16>().ok());
                banner.push(line);
                if port.is_some() {
                    return port;
                }
            }
            None
        })
        .await;
        let Ok(Some(port)) = port else {
            let _ = child.start_kill();
            panic!(
                "`duffy {}` printed no port within {START_LIMIT:?}:\n{}\n{}",
                args.join(" "),
                banner.join("\n"),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        // Keep reading so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            name,
            child,
            port,
            log,
        }
    }
}
