//! Crashes under load: `duffy serve` processes killed with SIGKILL while v3 and v2 clients
//! keep asking for nodes and giving them back. Nothing the crash interrupted may end
//! failed; no node may be in two sessions; the quota holds throughout; a node is
//! provisioned once. The figures (kills, nodes in flight, take-over times) are printed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use duffy::store::Db;
use serde_json::{Value, json};

use crate::both_backends;
use crate::cli::{Server, start_serve_with};
use crate::helpers::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_duffy");
/// Each tenant's quota; the clients ask for more than that together.
const QUOTA: i64 = 3;
const FILL_LEVEL: i64 = 8;

fn config(db: &TestDb, journal: &Path) -> String {
    format!(
        r#"{database}
app: {{loglevel: info}}
defaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: {QUOTA}}}
tasks: {{lease: 2s}}
metaclient:
  poolmap:
    - {{ver: "9", arch: x86_64, pool: chaos}}
nodepools:
  concrete:
    chaos:
      mechanism: {{type: noop, noop: {{delay: 300ms, journal: "{journal}"}}}}
      fill-level: {FILL_LEVEL}
"#,
        database = db.yaml(),
        journal = journal.display()
    )
}

/// Creates a tenant with `duffy admin`; its API key.
fn create_tenant(config: &Path, name: &str) -> String {
    let out = std::process::Command::new(BIN)
        .arg("-c")
        .arg(config)
        .args(["admin", "create-tenant", name, "ssh-ed25519 AAAA chaos"])
        .output()
        .expect("duffy admin runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "create-tenant: {text} {:?}",
        out.stderr
    );
    text.trim().rsplit(' ').next().unwrap().to_owned()
}

/// Counts rows with a query on the test's own connection.
async fn count(db: &Db, sql: &'static str) -> i64 {
    match db {
        Db::Sqlite { reader, .. } => sqlx::query_scalar(sql).fetch_one(reader).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

const IN_FLIGHT: &str = "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL \
    AND state IN ('provisioning', 'contextualizing', 'deprovisioning')";
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

/// What the clients did.
#[derive(Default)]
struct Load {
    granted: AtomicUsize,
    refused: AtomicUsize,
    errors: AtomicUsize,
    /// Every session a client got an answer for.
    seen: std::sync::Mutex<std::collections::HashSet<i64>>,
}

/// The sessions of `tenant` that no client ever got an answer for: created, and lost
/// to their client.
async fn orphans(store: &Db, tenant: &str, seen: &std::collections::HashSet<i64>) -> usize {
    const SQL: &str = "SELECT s.id FROM sessions s JOIN tenants t ON t.id = s.tenant_id \
        WHERE t.name = $1";
    let ids: Vec<i64> = match store {
        Db::Sqlite { reader, .. } => sqlx::query_scalar(SQL).bind(tenant).fetch_all(reader).await,
        Db::Postgres(pool) => sqlx::query_scalar(SQL).bind(tenant).fetch_all(pool).await,
    }
    .unwrap();
    ids.iter().filter(|id| !seen.contains(id)).count()
}

/// The tenants of a chaos run: v3 clients with `Idempotency-Key`, v3 clients without,
/// v2 clients (whose protocol has no key; the v2 layer sends one to v3 itself).
const TENANTS: [&str; 3] = ["keyed", "plain", "v2"];

/// Retires what each tenant still holds, as its operator would after its clients stopped
/// (a session lost to its client is held until it expires otherwise); how many.
async fn retire_leftovers(base: &str, tenants: &[(String, String)]) -> usize {
    let http = reqwest::Client::new();
    let mut retired = 0;
    for (name, key) in tenants {
        let listed: Value = http
            .get(format!("{base}/api/v1/sessions"))
            .basic_auth(name, Some(key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for session in listed["sessions"].as_array().into_iter().flatten() {
            let id = session["id"].as_i64().unwrap();
            let answer = http
                .put(format!("{base}/api/v1/sessions/{id}"))
                .basic_auth(name, Some(key))
                .json(&json!({"active": false}))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "retiring session {id}");
            retired += 1;
        }
    }
    retired
}

/// Starts the clients of one tenant against `address`.
fn clients_of(
    tenant: &(String, String),
    address: &Arc<RwLock<String>>,
    load: &Arc<Load>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|_| {
            let (a, l, s) = (address.clone(), load.clone(), stop.clone());
            match tenant.0.as_str() {
                "v2" => tokio::spawn(v2_client(a, tenant.1.clone(), l, s)),
                name => tokio::spawn(v3_client(a, tenant.clone(), name == "keyed", l, s)),
            }
        })
        .collect()
}

/// A v3 client: asks for a node, holds it a moment, retires the session; again. With
/// `keyed`, each request carries an `Idempotency-Key` and is sent again with it after a
/// connection failure, as `duffy client` does; without, a failed request is given up.
async fn v3_client(
    address: Arc<RwLock<String>>,
    (tenant, key): (String, String),
    keyed: bool,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let idempotency = uuid::Uuid::new_v4().to_string();
        let mut answer = None;
        for _ in 0..100 {
            let base = address.read().unwrap().clone();
            let mut request = http
                .post(format!("{base}/api/v1/sessions"))
                .basic_auth(&tenant, Some(&key))
                .json(&json!({"nodes_specs": [{"pool": "chaos", "quantity": "1"}]}));
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
        load.seen.lock().unwrap().insert(id);
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..50 {
            let base = address.read().unwrap().clone();
            let retired = http
                .put(format!("{base}/api/v1/sessions/{id}"))
                .basic_auth(&tenant, Some(&key))
                .json(&json!({"active": false}))
                .send()
                .await;
            match retired {
                Ok(a) if a.status().is_success() || a.status() == 404 => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A v2 client: `/Node/get` one node, `/Node/done` it; again.
async fn v2_client(
    address: Arc<RwLock<String>>,
    key: String,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let base = address.read().unwrap().clone();
        let asked = http
            .get(format!(
                "{base}/Node/get?key={key}&ver=9&arch=x86_64&count=1"
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
        if let Ok(id) = ssid.parse::<i64>() {
            load.seen.lock().unwrap().insert(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..50 {
            let base = address.read().unwrap().clone();
            let done = http
                .get(format!("{base}/Node/done?key={key}&ssid={ssid}"))
                .send()
                .await;
            match done {
                Ok(a) if a.status().is_success() => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// How often each node id was provisioned and deprovisioned, from the noop journal.
fn journal(path: &Path) -> (HashMap<i64, usize>, HashMap<i64, usize>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut provisioned, mut deprovisioned) = (HashMap::new(), HashMap::new());
    for line in text.lines() {
        let (phase, id) = line.split_once(' ').unwrap();
        let id: i64 = id.parse().unwrap();
        let map = if phase == "provision" {
            &mut provisioned
        } else {
            &mut deprovisioned
        };
        *map.entry(id).or_insert(0) += 1;
    }
    (provisioned, deprovisioned)
}

/// Waits, bounded, until the database says `done`; how long it took.
async fn settle<F, Fut>(limit: Duration, mut done: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Starts a server on `config` serving v2 too.
fn serve(config: &Path) -> Server {
    start_serve_with(config, Some("warn"), &["--legacy"], None).expect("duffy serve starts")
}

/// kill -9 under v3 and v2 load, three times, each time restarting on the same database.
async fn kill_9_under_load_fails_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let config_path = dir.path().join("duffy.yaml");
    std::fs::write(&config_path, config(&db, &journal_path)).unwrap();
    let keys: Vec<(String, String)> = TENANTS
        .iter()
        .map(|t| (t.to_string(), create_tenant(&config_path, t)))
        .collect();
    let store = Db::connect(&db.url).await.unwrap();

    let mut server = serve(&config_path);
    if settle(Duration::from_secs(30), || async {
        count(&store, READY).await == FILL_LEVEL
    })
    .await
    .is_none()
    {
        let ready = count(&store, READY).await;
        panic!(
            "the pool did not fill: {ready} ready; log:\n{}",
            server.stop()
        );
    }
    let address = Arc::new(RwLock::new(server.address.clone()));
    let (load, stop) = (Arc::new(Load::default()), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = keys
        .iter()
        .flat_map(|tenant| clients_of(tenant, &address, &load, &stop))
        .collect();
    // The quota and "one session per node", sampled while everything runs.
    let sampler = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let (mut samples, mut double, mut over) = (0, 0, 0);
            while !stop.load(Ordering::SeqCst) {
                double += count(&store, DOUBLE).await;
                over += count(&store, OVER_QUOTA).await;
                samples += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (samples, double, over)
        }
    });

    let mut in_flight = Vec::new();
    let mut recovered = Vec::new();
    for wait_ms in [700u64, 1100, 900] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let killed = Instant::now();
        server.kill9();
        in_flight.push(count(&store, IN_FLIGHT).await);
        server = serve(&config_path);
        *address.write().unwrap() = server.address.clone();
        // Taken over: no transient node is owned by a stopped instance any more.
        let untended = "SELECT COUNT(*) FROM nodes n WHERE n.retired_at IS NULL \
            AND n.state IN ('provisioning', 'contextualizing', 'deprovisioning') \
            AND (n.owner IS NULL OR NOT EXISTS (SELECT 1 FROM instances i \
            WHERE i.id = n.owner AND i.stopped_at IS NULL))";
        settle(Duration::from_secs(20), || async {
            count(&store, untended).await == 0
        })
        .await;
        recovered.push(killed.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let (samples, double, over) = sampler.await.unwrap();
    let leftovers = retire_leftovers(&server.address, &keys).await;

    // Everything given back: the pool settles at its fill level, nothing in flight.
    let settled = settle(Duration::from_secs(60), || async {
        count(&store, ACTIVE).await == 0
            && count(&store, IN_FLIGHT).await == 0
            && count(&store, HELD).await == 0
            && count(&store, READY).await == FILL_LEVEL
    })
    .await;
    let failed = count(&store, FAILED).await;
    let (provisioned, deprovisioned) = journal(&journal_path);
    let twice: Vec<_> = provisioned.iter().filter(|(_, n)| **n > 1).collect();
    let seen = load.seen.lock().unwrap().clone();
    let mut lost = Vec::new();
    for tenant in TENANTS {
        lost.push((tenant, orphans(&store, tenant, &seen).await));
    }
    let log = server.stop();
    eprintln!(
        "chaos {backend:?}: orphan sessions {lost:?} ({leftovers} left active, retired by hand); kills {}, nodes in flight at each kill {in_flight:?}, all taken \
         over (restart included) {recovered:?} after each kill, failed {failed}, sessions granted {} refused {} \
         client errors {}, samples {samples} (double allocations {double}, over quota {over}), \
         nodes provisioned {} deprovisioned {}",
        in_flight.len(),
        load.granted.load(Ordering::SeqCst),
        load.refused.load(Ordering::SeqCst),
        load.errors.load(Ordering::SeqCst),
        provisioned.len(),
        deprovisioned.values().sum::<usize>(),
    );
    assert!(
        in_flight.iter().sum::<i64>() > 0,
        "the kills interrupted no run"
    );
    assert_eq!(failed, 0, "nodes failed by the crashes; last log:\n{log}");
    assert_eq!(
        (double, over),
        (0, 0),
        "double allocation or quota exceeded"
    );
    assert!(
        settled.is_some(),
        "the service did not settle; last log:\n{log}"
    );
    assert!(twice.is_empty(), "nodes provisioned twice: {twice:?}");
    assert!(
        load.granted.load(Ordering::SeqCst) > 0,
        "no session was granted"
    );
    store.close().await;
}

both_backends!(kill_9_under_load_fails_nothing);

/// Three instances on one PostgreSQL database under load; one is killed with -9. The
/// others take its work over within the lease and a heartbeat period, nothing is done
/// twice, and when it comes back, it touches none of their live work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(duffy_postgres_tests),
    ignore = "PostgreSQL variant: set DUFFY_TEST_POSTGRES_URL to run it"
)]
async fn three_instances_take_over_from_a_killed_one() {
    crate::helpers::required_postgres_url();
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal");
    let config_path = dir.path().join("duffy.yaml");
    std::fs::write(&config_path, config(&db, &journal_path)).unwrap();
    let keys: Vec<(String, String)> = TENANTS
        .iter()
        .map(|t| (t.to_string(), create_tenant(&config_path, t)))
        .collect();
    let store = Db::connect(&db.url).await.unwrap();
    let mut servers: Vec<Server> = (0..3).map(|_| serve(&config_path)).collect();
    assert!(
        settle(Duration::from_secs(30), || async {
            count(&store, READY).await == FILL_LEVEL
        })
        .await
        .is_some(),
        "the pool fills"
    );
    // Each tenant's clients go to one instance, as a load balancer might send them.
    let addresses: Vec<_> = servers
        .iter()
        .map(|s| Arc::new(RwLock::new(s.address.clone())))
        .collect();
    let (load, stop) = (Arc::new(Load::default()), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = keys
        .iter()
        .zip(&addresses)
        .flat_map(|(tenant, address)| clients_of(tenant, address, &load, &stop))
        .collect();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let victim = servers.remove(0);
    let pid = i64::from(victim.pid());
    let id: i64 = match &store {
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT id FROM instances WHERE pid = $1 AND role = 'serve' AND stopped_at IS NULL",
        )
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap(),
        Db::Sqlite { .. } => unreachable!(),
    };
    let owned_by = |id: i64| {
        let store = store.clone();
        async move {
            match &store {
                Db::Postgres(pool) => sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM nodes WHERE owner = $1 AND retired_at IS NULL \
                     AND state IN ('provisioning', 'contextualizing', 'deprovisioning')",
                )
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap(),
                Db::Sqlite { .. } => unreachable!(),
            }
        }
    };
    let killed = Instant::now();
    victim.kill9();
    let owned_at_kill = owned_by(id).await;
    // Its clients turn to another instance.
    *addresses[0].write().unwrap() = servers[0].address.clone();
    let takeover = settle(Duration::from_secs(20), || async {
        owned_by(id).await == 0
    })
    .await
    .map(|_| killed.elapsed());

    // It comes back while the others are busy, and must leave their work alone.
    let restarted = serve(&config_path);
    *addresses[0].write().unwrap() = restarted.address.clone();
    servers.push(restarted);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    retire_leftovers(&servers[0].address, &keys).await;
    let settled = settle(Duration::from_secs(60), || async {
        count(&store, ACTIVE).await == 0
            && count(&store, IN_FLIGHT).await == 0
            && count(&store, HELD).await == 0
            && count(&store, READY).await == FILL_LEVEL
    })
    .await;
    let dead_servers = count(
        &store,
        "SELECT COUNT(*) FROM instances WHERE role = 'serve' AND stopped_at IS NOT NULL",
    )
    .await;
    let taken_from: Vec<Value> = match &store {
        Db::Postgres(pool) => {
            sqlx::query_scalar::<_, String>("SELECT data FROM nodes WHERE data LIKE '%taken_over%'")
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|d| {
                    serde_json::from_str::<Value>(d).unwrap()["taken_over"]["from_instance"].clone()
                })
                .collect()
        }
        Db::Sqlite { .. } => unreachable!(),
    };
    let failed = count(&store, FAILED).await;
    let (provisioned, deprovisioned) = journal(&journal_path);
    let twice: Vec<_> = provisioned.iter().filter(|(_, n)| **n > 1).collect();
    let logs: Vec<String> = servers.into_iter().map(Server::stop).collect();
    eprintln!(
        "three instances: the killed one owned {owned_at_kill} node(s) in flight; all taken over \
         {takeover:?} after the kill (tasks.lease 2s); nodes taken over from {:?}; failed \
         {failed}; sessions granted {}; nodes provisioned {} (none twice: {}), deprovisioning \
         runs {}",
        taken_from,
        load.granted.load(Ordering::SeqCst),
        provisioned.len(),
        twice.is_empty(),
        deprovisioned.values().sum::<usize>(),
    );
    assert!(
        takeover.is_some(),
        "its nodes were not taken over; logs:\n{logs:?}"
    );
    assert!(
        taken_from.iter().all(|from| from.as_i64() == Some(id)),
        "work of a live instance was taken over: {taken_from:?}"
    );
    assert_eq!(dead_servers, 1, "only the killed instance is dead");
    assert_eq!(failed, 0, "nodes failed; logs:\n{logs:?}");
    assert!(
        settled.is_some(),
        "the service did not settle; logs:\n{logs:?}"
    );
    assert!(twice.is_empty(), "nodes provisioned twice: {twice:?}");
    store.close().await;
}
