//! Crashes under load, the scenarios `kill-9` and `takeover` of `duffy bench` (the tests
//! run them too, and assert on what they report).
//!
//! * `kill-9`: one `duffy serve --legacy` under v3 and v2 clients is killed with SIGKILL
//!   at several moments and started again on the same database;
//! * `takeover` (PostgreSQL): three instances on one database under load; one is killed,
//!   the others take its work over; it comes back while they are busy.
//!
//! The pool's noop mechanism is slow (0.3 s a run) so that runs are in flight at each
//! kill, and keeps a journal of what it did, so that work done twice shows. Three tenants
//! ask: v3 clients that send an `Idempotency-Key` and retry with it, v3 clients that do
//! not (they give up a request whose connection failed), and v2 clients. A session no
//! client got an answer for is an orphan. Figures, never verdicts: the tests decide.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server::{BenchDb, BenchError, Process, create_named_tenant};
use crate::store::{Db, on_reader};

/// Each tenant's quota; its two clients together may want more.
const QUOTA: i64 = 3;
/// The pool's fill level.
pub const FILL_LEVEL: i64 = 8;
/// The pool.
const POOL: &str = "chaos";
/// The lease of the instances: short, so that a take-over by lease shows in seconds.
const LEASE: &str = "2s";
/// The tenants: v3 clients with `Idempotency-Key`, v3 clients without, v2 clients.
pub const TENANTS: [&str; 3] = ["keyed", "plain", "v2"];
/// How long the run waits at most for something it expects (a fill, a settling).
const PATIENCE: Duration = Duration::from_secs(60);

const IN_FLIGHT: &str = "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL \
    AND state IN ('provisioning', 'contextualizing', 'deprovisioning')";
const UNTENDED: &str = "SELECT COUNT(*) FROM nodes n WHERE n.retired_at IS NULL \
    AND n.state IN ('provisioning', 'contextualizing', 'deprovisioning') \
    AND (n.owner IS NULL OR NOT EXISTS (SELECT 1 FROM instances i \
    WHERE i.id = n.owner AND i.stopped_at IS NULL))";
const FAILED: &str = "SELECT COUNT(*) FROM nodes WHERE state = 'failed'";
const DOUBLE: &str = "SELECT COUNT(*) FROM (SELECT sn.node_id FROM sessions_nodes sn \
    JOIN sessions s ON s.id = sn.session_id WHERE s.retired_at IS NULL \
    GROUP BY sn.node_id HAVING COUNT(*) > 1) d";
const OVER_QUOTA: &str = "SELECT COUNT(*) FROM (SELECT s.tenant_id FROM sessions_nodes sn \
    JOIN sessions s ON s.id = sn.session_id WHERE s.retired_at IS NULL \
    GROUP BY s.tenant_id HAVING COUNT(*) > 3) q";
const READY: &str = "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL AND state = 'ready'";
const HELD: &str = "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL AND state = 'deployed'";
const ACTIVE: &str = "SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL";
const SERVERS_STOPPED: &str =
    "SELECT COUNT(*) FROM instances WHERE role = 'serve' AND stopped_at IS NOT NULL";

/// What the clients of a run did.
#[derive(Default)]
struct Load {
    granted: AtomicUsize,
    refused: AtomicUsize,
    errors: AtomicUsize,
    /// Every session a client got an answer for.
    seen: Mutex<HashSet<i64>>,
}

/// What every run reports.
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// Nodes that ended `failed`.
    pub failed: i64,
    /// Samples of the database taken during the load.
    pub samples: i64,
    /// Nodes in two active sessions at once, summed over the samples.
    pub double_allocations: i64,
    /// Tenants over their quota, summed over the samples.
    pub over_quota: i64,
    /// Sessions granted to the clients.
    pub granted: usize,
    /// Requests refused (no node ready, quota).
    pub refused: usize,
    /// Requests that got no answer (a server being killed).
    pub client_errors: usize,
    /// Per tenant: sessions no client got an answer for.
    pub orphans: Vec<(&'static str, usize)>,
    /// Sessions still active after the clients stopped (orphans still held), retired then.
    pub left_active: usize,
    /// Whether everything was given back and the pool was full again, and how long it
    /// took after the load stopped.
    pub settled_in: Option<Duration>,
    /// Nodes the mechanism provisioned, and how many of them more than once.
    pub provisioned: usize,
    /// The same: should be 0.
    pub provisioned_twice: usize,
    /// Deprovisioning runs per node, summed (a taken-over node is deprovisioned again).
    pub deprovisioned: usize,
}

/// What the kill loop reports.
#[derive(Debug, Clone, Default)]
pub struct KillReport {
    /// The backend.
    pub backend: &'static str,
    /// Nodes in a transient state right after each kill.
    pub in_flight: Vec<i64>,
    /// From each kill to no node left untended (the restart included).
    pub taken_over_after: Vec<Duration>,
    /// The rest.
    pub common: Common,
}

/// What the three-instance run reports.
#[derive(Debug, Clone, Default)]
pub struct TakeoverReport {
    /// Nodes the killed instance owned in a transient state when it died.
    pub owned_at_kill: i64,
    /// From the kill to none of them left with it (`None`: not within the patience).
    pub taken_over_after: Option<Duration>,
    /// `data.taken_over.from_instance` of every node taken over, and the killed one's id.
    pub taken_from: Vec<Option<i64>>,
    /// The killed instance.
    pub killed: i64,
    /// Servers found dead (the killed one only, if nothing was wrongly taken over).
    pub servers_stopped: i64,
    /// The rest.
    pub common: Common,
}

/// A run's database, configuration and clients.
struct Run {
    exe: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    journal: PathBuf,
    store: Db,
    tenants: Vec<(String, String)>,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
    logs: usize,
}

impl Run {
    async fn new(exe: &Path, db: &BenchDb, dir: &Path) -> Result<Run, BenchError> {
        let journal = dir.join("journal");
        let config = dir.join("chaos.yaml");
        std::fs::write(&config, config_yaml(db, &journal))?;
        let mut tenants = Vec::new();
        for name in TENANTS {
            let (_, key) = create_named_tenant(&config, name).await?;
            tenants.push((name.to_owned(), key));
        }
        Ok(Run {
            exe: exe.to_owned(),
            dir: dir.to_owned(),
            config,
            journal,
            store: Db::connect(&db.url).await?,
            tenants,
            load: Arc::new(Load::default()),
            stop: Arc::new(AtomicBool::new(false)),
            logs: 0,
        })
    }

    /// Starts a server; its log is a file of its own in the run's directory.
    async fn serve(&mut self) -> Result<Process, BenchError> {
        self.logs += 1;
        let log = self.dir.join(format!("server-{}.log", self.logs));
        Process::serve(&self.exe, &self.config, &log).await
    }

    async fn count(&self, sql: &'static str) -> Result<i64, BenchError> {
        on_reader!(&self.store, c => sqlx::query_scalar(sql).fetch_one(c).await)
            .map_err(|e| BenchError::Database(e.to_string()))
    }

    /// Waits up to [`PATIENCE`] for `done`; how long it took.
    async fn until<F, Fut>(&self, mut done: F) -> Option<Duration>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if done().await {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn filled(&self) -> Result<(), BenchError> {
        match self
            .until(|| async { self.count(READY).await.is_ok_and(|n| n == FILL_LEVEL) })
            .await
        {
            Some(_) => Ok(()),
            None => Err(BenchError::Server(format!(
                "the pool did not fill to {FILL_LEVEL} within {PATIENCE:?}"
            ))),
        }
    }

    /// Starts the clients of each tenant against its address.
    fn clients(&self, addresses: &[Arc<RwLock<String>>]) -> Vec<tokio::task::JoinHandle<()>> {
        let mut clients = Vec::new();
        for (i, (name, key)) in self.tenants.iter().enumerate() {
            let address = &addresses[i % addresses.len()];
            for _ in 0..2 {
                let (a, l, s) = (address.clone(), self.load.clone(), self.stop.clone());
                clients.push(match name.as_str() {
                    "v2" => tokio::spawn(v2_client(a, key.clone(), l, s)),
                    _ => {
                        let keyed = name == "keyed";
                        tokio::spawn(v3_client(a, (name.clone(), key.clone()), keyed, l, s))
                    }
                });
            }
        }
        clients
    }

    /// Samples the quota and "one session per node" until the load stops.
    fn sampler(&self) -> tokio::task::JoinHandle<(i64, i64, i64)> {
        let (store, stop) = (self.store.clone(), self.stop.clone());
        tokio::spawn(async move {
            let (mut samples, mut double, mut over) = (0, 0, 0);
            let count = |sql: &'static str| {
                let store = store.clone();
                async move {
                    on_reader!(&store, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await)
                        .unwrap_or(0)
                }
            };
            while !stop.load(Ordering::SeqCst) {
                double += count(DOUBLE).await;
                over += count(OVER_QUOTA).await;
                samples += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (samples, double, over)
        })
    }

    /// Stops the clients, gives back what is left, waits for the pool to be full again,
    /// and reads the figures every run has.
    async fn finish(
        &self,
        clients: Vec<tokio::task::JoinHandle<()>>,
        sampler: tokio::task::JoinHandle<(i64, i64, i64)>,
        base: &str,
    ) -> Result<Common, BenchError> {
        self.stop.store(true, Ordering::SeqCst);
        for c in clients {
            let _ = c.await;
        }
        let (samples, double_allocations, over_quota) = sampler.await.unwrap_or_default();
        let left_active = retire_leftovers(base, &self.tenants).await;
        let settled_in = self
            .until(|| async {
                let zero = |sql| async move { self.count(sql).await.is_ok_and(|n| n == 0) };
                zero(ACTIVE).await
                    && zero(IN_FLIGHT).await
                    && zero(HELD).await
                    && self.count(READY).await.is_ok_and(|n| n == FILL_LEVEL)
            })
            .await;
        let (provisioned, deprovisioned) = journal(&self.journal);
        let seen = self.load.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut orphans = Vec::new();
        for tenant in TENANTS {
            orphans.push((tenant, self.orphans(tenant, &seen).await?));
        }
        Ok(Common {
            failed: self.count(FAILED).await?,
            samples,
            double_allocations,
            over_quota,
            granted: self.load.granted.load(Ordering::SeqCst),
            refused: self.load.refused.load(Ordering::SeqCst),
            client_errors: self.load.errors.load(Ordering::SeqCst),
            orphans,
            left_active,
            settled_in,
            provisioned: provisioned.len(),
            provisioned_twice: provisioned.values().filter(|n| **n > 1).count(),
            deprovisioned: deprovisioned.values().sum(),
        })
    }

    /// The sessions of `tenant` no client got an answer for.
    async fn orphans(&self, tenant: &str, seen: &HashSet<i64>) -> Result<usize, BenchError> {
        const SQL: &str = "SELECT s.id FROM sessions s JOIN tenants t ON t.id = s.tenant_id \
            WHERE t.name = $1";
        let ids: Vec<i64> = on_reader!(&self.store, c => sqlx::query_scalar(SQL)
            .bind(tenant)
            .fetch_all(c)
            .await)
        .map_err(|e| BenchError::Database(e.to_string()))?;
        Ok(ids.iter().filter(|id| !seen.contains(id)).count())
    }
}

/// The configuration of a run.
fn config_yaml(db: &BenchDb, journal: &Path) -> String {
    format!(
        r#"app: {{loglevel: warning}}
database: {{url: "{url}"}}
defaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: {QUOTA}}}
tasks: {{lease: {LEASE}}}
metaclient:
  poolmap:
    - {{ver: "9", arch: x86_64, pool: {POOL}}}
nodepools:
  concrete:
    {POOL}:
      mechanism: {{type: noop, noop: {{delay: 300ms, journal: "{journal}"}}}}
      fill-level: {FILL_LEVEL}
"#,
        url = db.config_url(),
        journal = journal.display()
    )
}

/// kill -9 of the one server under load at each moment of `kills` after it started,
/// each time started again on the same database.
pub async fn kill_loop(
    exe: &Path,
    db: &BenchDb,
    dir: &Path,
    kills: &[Duration],
) -> Result<KillReport, BenchError> {
    let mut run = Run::new(exe, db, dir).await?;
    let mut server = run.serve().await?;
    run.filled().await?;
    let address = Arc::new(RwLock::new(server.url.clone()));
    let clients = run.clients(std::slice::from_ref(&address));
    let sampler = run.sampler();
    let mut report = KillReport {
        backend: db.backend(),
        ..KillReport::default()
    };
    for wait in kills {
        tokio::time::sleep(*wait).await;
        let killed = Instant::now();
        server.stop().await;
        report.in_flight.push(run.count(IN_FLIGHT).await?);
        server = run.serve().await?;
        if let Ok(mut a) = address.write() {
            a.clone_from(&server.url);
        }
        run.until(|| async { run.count(UNTENDED).await.is_ok_and(|n| n == 0) })
            .await;
        report.taken_over_after.push(killed.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.common = run.finish(clients, sampler, &server.url).await?;
    server.stop().await;
    run.store.close().await;
    Ok(report)
}

/// Three instances on one PostgreSQL database under load (each tenant's clients on one
/// of them); the first is killed, its clients turn to another; then it comes back.
pub async fn three_instances(
    exe: &Path,
    db: &BenchDb,
    dir: &Path,
) -> Result<TakeoverReport, BenchError> {
    let mut run = Run::new(exe, db, dir).await?;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(run.serve().await?);
    }
    run.filled().await?;
    let addresses: Vec<_> = servers
        .iter()
        .map(|s| Arc::new(RwLock::new(s.url.clone())))
        .collect();
    let clients = run.clients(&addresses);
    let sampler = run.sampler();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let victim = servers.remove(0);
    let pid = i64::from(victim.pid().unwrap_or_default());
    const INSTANCE: &str =
        "SELECT id FROM instances WHERE pid = $1 AND role = 'serve' AND stopped_at IS NULL";
    let killed: i64 = on_reader!(&run.store, c => sqlx::query_scalar(INSTANCE)
        .bind(pid)
        .fetch_one(c)
        .await)
    .map_err(|e| BenchError::Database(e.to_string()))?;
    let owned = |id: i64| {
        let store = run.store.clone();
        async move {
            const SQL: &str = "SELECT COUNT(*) FROM nodes WHERE owner = $1 AND retired_at IS NULL \
                AND state IN ('provisioning', 'contextualizing', 'deprovisioning')";
            on_reader!(&store, c => sqlx::query_scalar::<_, i64>(SQL).bind(id).fetch_one(c).await)
                .unwrap_or(-1)
        }
    };
    let started = Instant::now();
    victim.stop().await;
    let owned_at_kill = owned(killed).await;
    if let Ok(mut a) = addresses[0].write() {
        a.clone_from(&servers[0].url);
    }
    let taken_over_after = run
        .until(|| async { owned(killed).await == 0 })
        .await
        .map(|_| started.elapsed());

    // It comes back while the others are busy.
    let back = run.serve().await?;
    if let Ok(mut a) = addresses[0].write() {
        a.clone_from(&back.url);
    }
    servers.push(back);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let common = run.finish(clients, sampler, &servers[0].url).await?;
    const TAKEN: &str = "SELECT data FROM nodes WHERE data LIKE '%taken_over%'";
    let data: Vec<String> =
        on_reader!(&run.store, c => sqlx::query_scalar(TAKEN).fetch_all(c).await)
            .map_err(|e| BenchError::Database(e.to_string()))?;
    let taken_from = data
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).ok()?["taken_over"]["from_instance"].as_i64())
        .collect();
    let report = TakeoverReport {
        owned_at_kill,
        taken_over_after,
        taken_from,
        killed,
        servers_stopped: run.count(SERVERS_STOPPED).await?,
        common,
    };
    for server in servers {
        server.stop().await;
    }
    run.store.close().await;
    Ok(report)
}

/// The HTTP client of one of the run's clients.
fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()
}

/// A v3 client: asks for a node, holds it a moment, retires the session; again. With
/// `keyed`, each request carries an `Idempotency-Key` and is sent again with it after a
/// connection failure or a 5xx, as `duffy client` does; without, such a request is given
/// up.
async fn v3_client(
    address: Arc<RwLock<String>>,
    (tenant, key): (String, String),
    keyed: bool,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    let Some(http) = client() else {
        return;
    };
    let base = || address.read().map(|a| a.clone()).unwrap_or_default();
    while !stop.load(Ordering::SeqCst) {
        let idempotency = uuid::Uuid::new_v4().to_string();
        let mut answer = None;
        for _ in 0..100 {
            let mut request = http
                .post(format!("{}/api/v1/sessions", base()))
                .basic_auth(&tenant, Some(&key))
                .json(&json!({"nodes_specs": [{"pool": POOL, "quantity": "1"}]}));
            if keyed {
                request = request.header("Idempotency-Key", &idempotency);
            }
            match request.send().await {
                Ok(a) if !a.status().is_server_error() => {
                    answer = Some(a);
                    break;
                }
                _ => {
                    load.errors.fetch_add(1, Ordering::SeqCst);
                    if !keyed {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let Some(answer) = answer else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if answer.status() != 201 {
            load.refused.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        load.granted.fetch_add(1, Ordering::SeqCst);
        let body: Value = answer.json().await.unwrap_or_default();
        let id = body["session"]["id"].as_i64().unwrap_or_default();
        if let Ok(mut seen) = load.seen.lock() {
            seen.insert(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        give_back(|| {
            http.put(format!("{}/api/v1/sessions/{id}", base()))
                .basic_auth(&tenant, Some(&key))
                .json(&json!({"active": false}))
        })
        .await;
    }
}

/// A v2 client: `/Node/get` one node, `/Node/done` it; again.
async fn v2_client(
    address: Arc<RwLock<String>>,
    key: String,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    let Some(http) = client() else {
        return;
    };
    let base = || address.read().map(|a| a.clone()).unwrap_or_default();
    while !stop.load(Ordering::SeqCst) {
        let asked = http
            .get(format!(
                "{}/Node/get?key={key}&ver=9&arch=x86_64&count=1",
                base()
            ))
            .send()
            .await;
        let Ok(answer) = asked else {
            load.errors.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let body: Value = answer.json().await.unwrap_or_default();
        let Some(ssid) = body["ssid"].as_str().map(str::to_owned) else {
            load.refused.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        load.granted.fetch_add(1, Ordering::SeqCst);
        if let (Ok(id), Ok(mut seen)) = (ssid.parse::<i64>(), load.seen.lock()) {
            seen.insert(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        give_back(|| http.get(format!("{}/Node/done?key={key}&ssid={ssid}", base()))).await;
    }
}

/// Sends a give-back (a retire, a `/Node/done`) until it is answered: a server being
/// restarted does not answer for a moment.
async fn give_back<F: Fn() -> reqwest::RequestBuilder>(request: F) {
    for _ in 0..50 {
        match request().send().await {
            Ok(a) if a.status().is_success() || a.status() == 404 => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Retires what each tenant still holds, as its operator would once its clients stopped
/// (a session lost to its client is held until it expires otherwise); how many.
async fn retire_leftovers(base: &str, tenants: &[(String, String)]) -> usize {
    let http = reqwest::Client::new();
    let mut retired = 0;
    for (name, key) in tenants {
        let listed: Value = match http
            .get(format!("{base}/api/v1/sessions"))
            .basic_auth(name, Some(key))
            .send()
            .await
        {
            Ok(a) => a.json().await.unwrap_or_default(),
            Err(_) => continue,
        };
        for session in listed["sessions"].as_array().into_iter().flatten() {
            let Some(id) = session["id"].as_i64() else {
                continue;
            };
            let answer = http
                .put(format!("{base}/api/v1/sessions/{id}"))
                .basic_auth(name, Some(key))
                .json(&json!({"active": false}))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                retired += 1;
            }
        }
    }
    retired
}

/// How often each node id was provisioned and deprovisioned, from the noop journal.
fn journal(path: &Path) -> (HashMap<i64, usize>, HashMap<i64, usize>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut provisioned, mut deprovisioned) = (HashMap::new(), HashMap::new());
    for line in text.lines() {
        let Some((phase, id)) = line.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<i64>() else {
            continue;
        };
        let map = if phase == "provision" {
            &mut provisioned
        } else {
            &mut deprovisioned
        };
        *map.entry(id).or_insert(0) += 1;
    }
    (provisioned, deprovisioned)
}

impl fmt::Display for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "    nodes failed {}; double allocations {} and tenants over quota {} in {} samples",
            self.failed, self.double_allocations, self.over_quota, self.samples
        )?;
        writeln!(
            f,
            "    sessions granted {}, refused {}, requests without an answer {}",
            self.granted, self.refused, self.client_errors
        )?;
        let orphans: Vec<String> = self
            .orphans
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        writeln!(
            f,
            "    orphan sessions (no client got them): {} ({} still active at the end, retired by hand)",
            orphans.join(", "),
            self.left_active
        )?;
        writeln!(
            f,
            "    settled (pool full, nothing in flight) {} after the load stopped",
            self.settled_in
                .map_or("NOT".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        )?;
        write!(
            f,
            "    mechanism: {} nodes provisioned ({} more than once), {} deprovisionings",
            self.provisioned, self.provisioned_twice, self.deprovisioned
        )
    }
}

impl fmt::Display for KillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after: Vec<String> = self
            .taken_over_after
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect();
        writeln!(
            f,
            "kill-9 on {}: {} kills; nodes in flight at each {:?}; all taken over (restart included) {} after each",
            self.backend,
            self.in_flight.len(),
            self.in_flight,
            after.join(", ")
        )?;
        write!(f, "{}", self.common)
    }
}

impl fmt::Display for TakeoverReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from_others = self
            .taken_from
            .iter()
            .filter(|from| **from != Some(self.killed))
            .count();
        writeln!(
            f,
            "takeover, three instances on PostgreSQL (tasks.lease {LEASE}): the killed one owned {} node(s) in flight, all taken over {} after the kill; {} node(s) taken over, {} of them from a live instance; servers found dead {}",
            self.owned_at_kill,
            self.taken_over_after
                .map_or("NOT".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
            self.taken_from.len(),
            from_others,
            self.servers_stopped
        )?;
        write!(f, "{}", self.common)
    }
}
