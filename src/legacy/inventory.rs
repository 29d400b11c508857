//! `/Inventory`: the key's nodes as `[hostname, ssid]` pairs, or every node as a 14-column
//! row (`docs/legacy-v2.md` §5 f).
//!
//! A row's `centos_version`, `architecture` and `flavor` are those of the v2 request that
//! leads to the node's pool through `metaclient.poolmap`
//! ([`PoolMap::request_for`](super::poolmap::PoolMap::request_for)), looked
//! up once per pool; `chassis`, `distro`, `rel` and `console_port` come from the node's
//! `data.v2` when it was imported from a v2 database. Anything else v2 had is `null`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use reqwest::StatusCode as V3Status;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::reply::Response;

use super::Legacy;
use super::answer::V2Error;
use super::poolmap::PoolRequest;
use super::query::Params;
use crate::client::{Auth, ClientError, Node, Session};
use crate::http::json;
use crate::protocol::v3::{ErrorKind, REPORTED_FAILED};

/// The unkeyed inventory, shared by the requests that wait for the same fetch.
///
/// It lists every node, and when a hundred jobs ask at once each fetch would do the same
/// work. A request may only use a fetch that *started after it arrived*, so it never sees
/// a state older than its own arrival (a `/Node/get` that was answered before it is in
/// it); requests that arrive while a fetch runs wait and share the next one. One fetch
/// runs at a time. The fetch runs in the future of the request that leads it: if that
/// request goes away, nothing is stored and the next waiter fetches.
#[derive(Default)]
pub struct FullInventory {
    /// How many fetches have started.
    started: AtomicU64,
    /// The last fetch's number and its JSON body (or failure); the lock is held while a
    /// fetch runs.
    last: tokio::sync::Mutex<Option<(u64, Result<Bytes, ClientError>)>>,
}

impl FullInventory {
    /// The body of a fetch that started after this call, running `fetch` when none has.
    async fn get<F>(&self, fetch: F) -> Result<Bytes, ClientError>
    where
        F: AsyncFnOnce() -> Result<Bytes, ClientError>,
    {
        let arrived = self.started.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if let Some((number, result)) = last.as_ref()
            && *number > arrived
        {
            return result.clone();
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let result = fetch().await;
        *last = Some((number, result.clone()));
        result
    }
}

/// `/Inventory?key=K` or, without a key, `/Inventory`.
pub async fn inventory(legacy: &Legacy, params: Params) -> Result<Response, V2Error> {
    let rows = match params.key {
        Some(key) => {
            let sessions = legacy
                .client
                .list_sessions(&legacy.auth(&key))
                .await
                .map_err(refused)?;
            keyed_rows(sessions, |h| legacy.mangle(h))
        }
        None => {
            let body = legacy
                .inventory
                .get(async || {
                    let (nodes, sessions) = tokio::try_join!(
                        legacy.client.list_nodes(&Auth::Anonymous),
                        legacy.client.list_sessions(&Auth::Anonymous),
                    )?;
                    let rows = full_rows(
                        &nodes,
                        &sessions,
                        |h| legacy.mangle(h),
                        |pool| legacy.poolmap.request_for(pool),
                    );
                    // About 100 bytes a row: one allocation instead of a dozen doublings.
                    let mut body = Vec::with_capacity(rows.len() * 100 + 2);
                    serde_json::to_writer(&mut body, &rows)
                        .map(|()| Bytes::from(body))
                        .map_err(|e| ClientError::Unreadable {
                            status: V3Status::OK,
                            reason: e.to_string(),
                        })
                })
                .await
                .map_err(refused)?;
            let mut response = Response::new(body.into());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(response);
        }
    };
    Ok(json(StatusCode::OK, &rows))
}

/// Refused credentials mean an unknown key (or anonymous reads switched off); any other
/// refusal means the v3 API gave no usable answer.
fn refused(e: ClientError) -> V2Error {
    match e.kind() {
        Some(ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::QuotaExceeded) => {
            V2Error::InvalidKey
        }
        Some(
            ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Invalid
            | ErrorKind::NoNodes
            | ErrorKind::SessionRetired
            | ErrorKind::TenantRetired
            | ErrorKind::Unprocessable
            | ErrorKind::Internal
            | ErrorKind::Paused
            | ErrorKind::Unavailable,
        )
        | None => e.into(),
    }
}

/// One `[hostname, "ssid"]` pair per node of the active sessions, by session then node id.
pub fn keyed_rows(mut sessions: Vec<Session>, mangle: impl Fn(&str) -> String) -> Vec<Value> {
    sessions.retain(|s| s.active);
    sessions.sort_by_key(|s| s.id);
    let mut rows = Vec::new();
    for mut session in sessions {
        session.nodes.sort_by_key(|n| n.id);
        let ssid = session.id.to_string();
        for node in session.nodes {
            if let Some(hostname) = node.hostname.as_deref().filter(|h| !h.is_empty()) {
                rows.push(json!([mangle(hostname), ssid]));
            }
        }
    }
    rows
}

/// One 14-column row per known node with a (non-empty) hostname, one per hostname, by
/// node id. Rows borrow from `nodes` and are written straight to JSON: an inventory of
/// 10,000 nodes builds no `Value` per cell. `request_of` names the v2 request leading to a
/// pool; it is asked once per distinct pool.
pub fn full_rows<'a>(
    nodes: &'a [Node],
    sessions: &[Session],
    mangle: impl Fn(&str) -> String,
    request_of: impl Fn(&str) -> Option<Arc<PoolRequest>>,
) -> Vec<FullRow<'a>> {
    let ssid_of: HashMap<i64, i64> = sessions
        .iter()
        .filter(|s| s.active)
        .flat_map(|s| s.nodes.iter().map(|n| (n.id, s.id)))
        .collect();
    // Several nodes can share a hostname (a failed node and its replacement): keep the one
    // in an active session, else one not failed, else the newest.
    let mut chosen: HashMap<&str, &Node> = HashMap::with_capacity(nodes.len());
    let rank = |n: &Node| (ssid_of.contains_key(&n.id), n.state != "failed", n.id);
    for node in nodes {
        // cico pairs rows by substring: an empty name would pair with every host.
        let Some(hostname) = node.hostname.as_deref().filter(|h| !h.is_empty()) else {
            continue;
        };
        if node.state == "done" {
            continue;
        }
        match chosen.get(hostname) {
            Some(kept) if rank(kept) >= rank(node) => {}
            _ => {
                chosen.insert(hostname, node);
            }
        }
    }
    let mut requests: HashMap<&str, Option<Arc<PoolRequest>>> = HashMap::new();
    let mut rows: Vec<FullRow> = chosen
        .into_iter()
        .map(|(hostname, node)| FullRow {
            hostname: mangle(hostname),
            ssid: ssid_of.get(&node.id).copied(),
            request: node.pool.as_deref().and_then(|pool| {
                requests
                    .entry(pool)
                    .or_insert_with(|| request_of(pool))
                    .clone()
            }),
            node,
        })
        .collect();
    rows.sort_by_key(|row| row.node.id);
    rows
}

/// A row of the unkeyed inventory: `[id, hostname, ipaddr, chassis, used_count, state,
/// "ssid", distro, rel, ver, arch, pool, console_port, flavor]` (`docs/legacy-v2.md` §5 f).
pub struct FullRow<'a> {
    node: &'a Node,
    /// The hostname as v2 shows it.
    hostname: String,
    /// The active session holding the node; written as text.
    ssid: Option<i64>,
    /// The v2 request that leads to the node's pool, if any.
    request: Option<Arc<PoolRequest>>,
}

impl serde::Serialize for FullRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct AsText(i64);
        impl serde::Serialize for AsText {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }
        let n = self.node;
        let old = &n.data.v2;
        let request = self.request.as_deref();
        let mut row = serializer.serialize_tuple(14)?;
        row.serialize_element(&n.id)?;
        row.serialize_element(&self.hostname)?;
        row.serialize_element(&n.ipaddr)?;
        row.serialize_element(&old.chassis)?;
        row.serialize_element(&n.used_count)?;
        row.serialize_element(v2_state(n))?;
        row.serialize_element(&self.ssid.map(AsText))?;
        row.serialize_element(&old.distro)?;
        row.serialize_element(&old.rel)?;
        row.serialize_element(&request.map(|r| &r.ver))?;
        row.serialize_element(&request.map(|r| &r.arch))?;
        row.serialize_element(&n.pool)?;
        row.serialize_element(&old.console_port)?;
        row.serialize_element(&request.and_then(|r| r.flavor.as_ref()))?;
        row.end()
    }
}

/// The v2 name of a node's state; a node reported failed by its tenant shows `Fail`.
fn v2_state(node: &Node) -> &str {
    let reported_failed = node
        .data
        .error
        .as_ref()
        .and_then(|e| e.get("detail"))
        .and_then(Value::as_str)
        == Some(REPORTED_FAILED);
    match node.state.as_str() {
        "unused" => "Active",
        "provisioning" => "Provisioning",
        "ready" => "Ready",
        "contextualizing" => "Contextualizing",
        "deployed" if reported_failed => "Fail",
        "deployed" => "Deployed",
        "deprovisioning" => "Deprovision",
        "failed" => "Fail",
        // v2's NodeSetAdmin put hosts into an admin state of this name.
        "downtime" => "Admin",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, hostname: Option<&str>, state: &str) -> Node {
        serde_json::from_value(json!({
            "id": id, "hostname": hostname, "ipaddr": format!("10.0.0.{id}"),
            "pool": "p", "state": state, "used_count": id, "data": {}
        }))
        .unwrap()
    }

    fn session(id: i64, active: bool, nodes: &[(i64, &str)]) -> Session {
        serde_json::from_value(json!({
            "id": id, "active": active, "tenant": {"id": 1, "name": "t"},
            "nodes": nodes.iter().map(|(i, h)| json!({"id": i, "hostname": h})).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    fn short(h: &str) -> String {
        h.replace(".example.test", ".ex")
    }

    /// A fetch that counts itself and answers its number, after `gate` opens.
    async fn counted(
        runs: &std::sync::atomic::AtomicUsize,
        gate: &tokio::sync::Semaphore,
    ) -> Result<Bytes, ClientError> {
        let number = runs.fetch_add(1, Ordering::SeqCst) + 1;
        let _open = gate.acquire().await;
        Ok(Bytes::from(number.to_string()))
    }

    #[tokio::test]
    async fn waiters_share_the_next_fetch_never_an_older_one() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let shared = Arc::new(FullInventory::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let spawn = || {
            let (shared, runs, gate) = (shared.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move { shared.get(async || counted(&runs, &gate).await).await })
        };
        let first = spawn();
        for _ in 0..1000 {
            if runs.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the first fetch started");
        // These arrive while fetch 1 runs: they must not get its answer.
        let later: Vec<_> = (0..5).map(|_| spawn()).collect();
        gate.add_permits(100);
        assert_eq!(first.await.unwrap().unwrap(), "1");
        for waiter in later {
            assert_eq!(waiter.await.unwrap().unwrap(), "2");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the five shared one fetch");
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_leaves_the_fetch_to_the_next() {
        let shared = FullInventory::default();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let closed = tokio::sync::Semaphore::new(0);
        let gone = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            shared.get(async || counted(&runs, &closed).await),
        )
        .await;
        assert!(gone.is_err(), "the leader was dropped mid-fetch");
        let open = tokio::sync::Semaphore::new(1);
        let body = shared.get(async || counted(&runs, &open).await).await;
        assert_eq!(body.unwrap(), "2");
    }

    #[test]
    fn full_rows_have_fourteen_columns_and_the_ssid_as_text() {
        let nodes = vec![
            node(2, Some("b.example.test"), "deployed"),
            node(1, Some("a.example.test"), "ready"),
            node(3, None, "provisioning"),
            node(5, Some(""), "provisioning"),
            node(4, Some("d.example.test"), "done"),
        ];
        let rows = full_rows(
            &nodes,
            &[session(7, true, &[(2, "b.example.test")])],
            short,
            |_| None,
        );
        assert_eq!(
            serde_json::to_string(&rows).unwrap(),
            concat!(
                r#"[[1,"a.ex","10.0.0.1",null,1,"Ready",null,null,null,null,null,"p",null,null],"#,
                r#"[2,"b.ex","10.0.0.2",null,2,"Deployed","7",null,null,null,null,"p",null,null]]"#
            )
        );
    }

    #[test]
    fn one_row_per_hostname() {
        let nodes = vec![
            node(1, Some("a.example.test"), "failed"),
            node(2, Some("a.example.test"), "ready"),
            node(3, Some("b.example.test"), "deployed"),
            node(4, Some("b.example.test"), "ready"),
            node(5, Some("c.example.test"), "failed"),
            node(6, Some("c.example.test"), "failed"),
        ];
        let rows = full_rows(
            &nodes,
            &[session(9, true, &[(3, "b.example.test")])],
            short,
            |_| None,
        );
        let ids: Vec<i64> = rows.iter().map(|r| r.node.id).collect();
        assert_eq!(ids, [2, 3, 6]);
    }

    #[test]
    fn pool_requests_and_imported_v2_columns_fill_their_columns() {
        let with = |id: i64, pool: Option<&str>, data: Value| -> Node {
            serde_json::from_value(json!({
                "id": id, "hostname": format!("h{id}"), "ipaddr": "10.0.0.1", "pool": pool,
                "state": "ready", "used_count": 0, "data": data
            }))
            .unwrap()
        };
        let imported = json!({"v2": {
            "chassis": "ch-3", "distro": "centos", "rel": "7.9.2009", "console_port": 7003,
            "comment": "5f1c2a", "ver": "7", "arch": "x86_64", "flavor": null, "ip": "x"
        }});
        let nodes = vec![
            with(1, Some("c7"), imported),
            with(2, Some("arm"), json!({})),
            with(
                3,
                Some("unmapped"),
                json!({"v2": {"chassis": {"odd": 1}, "rel": [7]}}),
            ),
            with(4, None, json!({"v2": "not an object"})),
            with(5, Some("c7"), json!({})),
        ];
        let asked = std::cell::RefCell::new(Vec::new());
        let request_of = |pool: &str| {
            asked.borrow_mut().push(pool.to_owned());
            let request = |ver: &str, arch: &str, flavor: Option<&str>| {
                Some(Arc::new(PoolRequest {
                    ver: ver.into(),
                    arch: arch.into(),
                    flavor: flavor.map(Into::into),
                }))
            };
            match pool {
                "c7" => request("7", "x86_64", None),
                "arm" => request("8", "aarch64", Some("tiny")),
                _ => None,
            }
        };
        let rows = full_rows(&nodes, &[], |h| h.to_owned(), request_of);
        assert_eq!(
            serde_json::to_value(&rows).unwrap(),
            json!([
                [
                    1, "h1", "10.0.0.1", "ch-3", 0, "Ready", null, "centos", "7.9.2009", "7",
                    "x86_64", "c7", 7003, null
                ],
                [
                    2, "h2", "10.0.0.1", null, 0, "Ready", null, null, null, "8", "aarch64", "arm",
                    null, "tiny"
                ],
                [
                    3, "h3", "10.0.0.1", null, 0, "Ready", null, null, null, null, null,
                    "unmapped", null, null
                ],
                [
                    4, "h4", "10.0.0.1", null, 0, "Ready", null, null, null, null, null, null,
                    null, null
                ],
                [
                    5, "h5", "10.0.0.1", null, 0, "Ready", null, null, null, "7", "x86_64", "c7",
                    null, null
                ],
            ])
        );
        let mut asked = asked.into_inner();
        asked.sort();
        assert_eq!(asked, ["arm", "c7", "unmapped"], "once per distinct pool");
    }

    #[test]
    fn states_in_v2_words() {
        let mut failed = node(1, Some("a"), "deployed");
        failed.data.error = Some(json!({"detail": REPORTED_FAILED}));
        assert_eq!(v2_state(&failed), "Fail");
        for (v3, v2) in [
            ("unused", "Active"),
            ("provisioning", "Provisioning"),
            ("ready", "Ready"),
            ("contextualizing", "Contextualizing"),
            ("deployed", "Deployed"),
            ("deprovisioning", "Deprovision"),
            ("failed", "Fail"),
            ("downtime", "Admin"),
        ] {
            assert_eq!(v2_state(&node(1, Some("a"), v3)), v2);
        }
    }

    #[test]
    fn keyed_rows_list_active_sessions_in_order() {
        let sessions = vec![
            session(5, true, &[(9, "z.example.test"), (3, "c.example.test")]),
            session(2, true, &[(4, "d.example.test")]),
            session(1, false, &[(1, "old.example.test")]),
        ];
        assert_eq!(
            serde_json::to_string(&keyed_rows(sessions, short)).unwrap(),
            r#"[["d.ex","2"],["c.ex","5"],["z.ex","5"]]"#
        );
    }
}
