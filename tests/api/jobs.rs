//! Background work: fill, retire → deprovision → refill, expiry at `expires_at`, deadlines
//! of transient states, reconciliation after a restart.

use std::time::Duration;

use chrono::{DateTime, Utc};
use duffy::store::nodes::NodeState;
use duffy::store::{self};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Auth, Backend, Spawn, TestApp, load_config, spawn_app, spawn_app_unfilled, spawn_app_with,
    start_on,
};

/// Polls `check` every 50 ms for up to `secs` seconds.
async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 20 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .to_utc()
}

async fn pools_fill_to_their_level(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Spawn {
            fill: false,
            ..Spawn::default()
        },
    )
    .await;
    assert_eq!(app.levels("pool-a").await["ready"], 0);
    app.fill().await;
    assert_eq!(
        app.levels("pool-a").await,
        json!({"provisioning": 0, "ready": 5, "contextualizing": 0, "deployed": 0, "deprovisioning": 0})
    );
    assert_eq!(app.levels("pool-b").await["ready"], 2);
    // a full pool is left alone
    app.fill().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM nodes").await, 7);
    // a pool without a fill level is never filled
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE pool = 'unfilled'")
            .await,
        0
    );
}

async fn retired_nodes_are_deprovisioned_and_the_pool_refilled(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.request_session(app.admin_auth(), "pool-a", 3).await;
    assert_eq!(app.levels("pool-a").await["ready"], 2);
    app.fill().await;
    assert_eq!(
        app.levels("pool-a").await["ready"],
        5,
        "refilled after the hand-out"
    );
    let sid = a.session_id();
    app.retire(app.admin_auth(), sid).await;
    let report = app.deprovision().await;
    assert_eq!(report.done, 3);
    assert_eq!(app.levels("pool-a").await["deployed"], 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'done'")
            .await,
        3
    );
    // the session still tells which nodes it had, and the nodes which session they served
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions_nodes").await, 3);
}

async fn the_running_service_refills_and_deprovisions_by_itself(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Spawn {
            background_jobs: true,
            fill: false,
            ..Spawn::default()
        },
    )
    .await;
    assert!(
        eventually(10, || async { app.levels("pool-a").await["ready"] == 5 }).await,
        "filled at start"
    );
    let a = app.request_session(app.admin_auth(), "pool-a", 4).await;
    assert_eq!(a.status, 201);
    assert!(
        eventually(10, || async { app.levels("pool-a").await["ready"] == 5 }).await,
        "refilled right after the hand-out"
    );
    let sid = a.session_id();
    app.retire(app.admin_auth(), sid).await;
    assert!(
        app.eventually_count(10, "SELECT COUNT(*) FROM nodes WHERE state = 'done'", 4)
            .await,
        "deprovisioned right after the retire"
    );
}

async fn sessions_expire_at_their_expiry(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Spawn {
            background_jobs: true,
            ..Spawn::default()
        },
    )
    .await;
    let a = app
        .post(
            "/api/v1/tenants",
            app.admin_auth(),
            &json!({"name": "brief", "ssh_key": "k", "session_lifetime": "2s"}),
        )
        .await;
    let key = a.body["tenant"]["api_key"].as_str().unwrap().to_owned();
    assert!(eventually(10, || async { app.levels("pool-a").await["ready"] == 5 }).await);
    let s = app
        .request_session(Auth::Basic("brief", &key), "pool-a", 1)
        .await;
    assert_eq!(s.status, 201, "{}", s.text);
    let sid = s.session_id();
    let expires_at = ts(&s.body["session"]["expires_at"]);
    let path = format!("/api/v1/sessions/{sid}");
    let mut retired_at = None;
    for _ in 0..100 {
        let got = app.get(&path, Auth::Basic("brief", &key)).await;
        if got.body["session"]["active"] == false {
            retired_at = Some(ts(&got.body["session"]["retired_at"]));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retired_at = retired_at.expect("expired within 5 s");
    let late = retired_at - expires_at;
    // The periodic interval is 300 s: a retire this close to `expires_at` comes from the
    // timer set for it. (Not a benchmark: the bound only separates "at" from "minutes later".)
    assert!(
        late >= chrono::TimeDelta::zero() && late < chrono::TimeDelta::seconds(2),
        "retired {late} after expires_at"
    );
    assert!(
        app.eventually_count(10, "SELECT COUNT(*) FROM nodes WHERE state = 'done'", 1)
            .await,
        "its node is deprovisioned"
    );
}

async fn expiry_tick_retires_due_sessions_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let keep = app.request_session(app.admin_auth(), "pool-a", 1).await;
    let due = app.request_session(app.admin_auth(), "pool-a", 1).await;
    let due_id = due.session_id();
    // setting expires_at back to created_at makes it due now
    app.put(
        &format!("/api/v1/sessions/{due_id}"),
        app.admin_auth(),
        &json!({"expires_at": "-7h"}),
    )
    .await;
    assert_eq!(app.expire().await, vec![due_id]);
    assert_eq!(app.expire().await, Vec::<i64>::new());
    let keep_id = keep.session_id();
    let k = app
        .get(&format!("/api/v1/sessions/{keep_id}"), app.admin_auth())
        .await;
    assert_eq!(k.body["session"]["active"], true);
}

const SLOW: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
tasks:
  deadlines:
    provisioning: 1s
    contextualizing: 1s
    deprovisioning: 1s
nodepools:
  concrete:
    slow:
      mechanism: {type: noop, noop: {delay: 1h}}
      fill-level: 2
    quick:
      mechanism: {type: noop}
      fill-level: 2
"#;

async fn nodes_stuck_past_their_deadline_are_failed(backend: Backend) {
    let app = spawn_app_unfilled(backend, SLOW).await;
    // the slow pool's provisioning hangs; claim its nodes and start the runs in the background
    let runs = app
        .engine
        .claim_fill(&duffy::engine::FillScope::All)
        .await
        .unwrap();
    let engine = app.engine.clone();
    let mut quick = Vec::new();
    for run in runs {
        if run.pool == "slow" {
            let engine = engine.clone();
            tokio::spawn(async move { engine.provision(run).await });
        } else {
            quick.push(engine.provision(run).await);
        }
    }
    assert_eq!(app.levels("slow").await["provisioning"], 2);
    assert_eq!(
        app.deadlines().await.provisioning_failed,
        Vec::<i64>::new(),
        "not yet"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = app.deadlines().await;
    assert_eq!(report.provisioning_failed.len(), 2);
    assert_eq!(app.levels("slow").await["provisioning"], 0);
    let failed = store::nodes::in_state(app.engine.db(), NodeState::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    let detail = failed[0].data.0["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("provisioning did not finish within 0:00:01"),
        "{detail}"
    );
    assert_eq!(
        app.levels("quick").await["ready"],
        2,
        "other pools are untouched"
    );
}

/// Leaves nodes in every transient state, as a crash would.
async fn crash_midway(app: &TestApp) -> (i64, i64, i64) {
    let now = store::now();
    let mut tx = app.engine.db().begin().await.unwrap();
    let me = app.engine.instance();
    let provisioning = store::nodes::insert_provisioning(&mut tx, "quick", now, 1, me)
        .await
        .unwrap()
        .remove(0);
    tx.commit().await.unwrap();
    // a hand-out interrupted during contextualization, and a deprovisioning run cut short
    let nodes = store::nodes::in_state(app.engine.db(), NodeState::Ready)
        .await
        .unwrap();
    let (mut handing, mut taking) = (nodes[0].clone(), nodes[1].clone());
    let mut tx = app.engine.db().begin().await.unwrap();
    let new = store::sessions::NewSession {
        tenant_id: app.admin.id,
        expires_at: None,
        data: Default::default(),
    };
    let session = store::sessions::insert_all(&mut tx, now, &[new])
        .await
        .unwrap()
        .remove(0);
    handing.state = NodeState::Contextualizing;
    (handing.owner, handing.run_pool) = (Some(me.0), Some("quick".into()));
    store::nodes::save(&mut tx, &handing, NodeState::Ready)
        .await
        .unwrap();
    store::sessions::link_all(&mut tx, &[(session.id, handing.id, "quick", &handing.data)])
        .await
        .unwrap();
    taking.state = NodeState::Deprovisioning;
    (taking.pool, taking.owner, taking.run_pool) = (None, Some(me.0), Some("quick".into()));
    store::nodes::save(&mut tx, &taking, NodeState::Ready)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (provisioning.id, handing.id, taking.id)
}

/// What a process left midway is taken over by the next one and continued, not failed:
/// deprovisioned again, or (a provisioning) handed to the deprovisioning and dropped.
async fn a_restart_takes_over_nodes_left_midway(backend: Backend) {
    let app = spawn_app_unfilled(backend, SLOW).await;
    let quick: Vec<_> = app
        .engine
        .claim_fill(&duffy::engine::FillScope::All)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.pool == "quick")
        .collect();
    for run in quick {
        app.engine.provision(run).await;
    }
    let (provisioning, handing, taking) = crash_midway(&app).await;
    let db = app.stop().await;

    // start again on the same database, with the background jobs (the take-over runs first)
    let app = start_on(db, load_config(SLOW), true, false).await;
    let node = |id: i64| {
        let engine = app.engine.clone();
        async move { store::nodes::by_id(engine.db(), id).await.unwrap().unwrap() }
    };
    assert!(
        eventually(10, || async {
            node(handing).await.state == NodeState::Done
        })
        .await,
        "a node interrupted in hand-out is taken back and deprovisioned"
    );
    for id in [provisioning, taking] {
        assert!(
            eventually(10, || async { node(id).await.state == NodeState::Done }).await,
            "node {id} is deprovisioned (again), not failed: {:?}",
            node(id).await
        );
    }
    let p = node(provisioning).await;
    assert_eq!(p.data.0["taken_over"]["state"], "provisioning");
    assert!(!p.data.0.contains_key("error"), "{:?}", p.data);
    let t = node(taking).await;
    assert_eq!(t.data.0["taken_over"]["state"], "deprovisioning");
    assert_eq!((t.pool, t.owner, t.run_pool), (None, None, None));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL")
            .await,
        0,
        "its session was retired"
    );
    // (the refill may have new nodes provisioning already; only the crashed ones matter)
    for id in [provisioning, handing, taking] {
        assert!(
            !node(id).await.state.is_transient(),
            "node {id} left in a transient state"
        );
    }
    assert!(
        eventually(10, || async { app.levels("quick").await["ready"] == 2 }).await,
        "and the pool refills"
    );
}

/// An instance on another machine (its process cannot be seen from here) is dead only
/// once its heartbeat is older than the lease, and only for an instance whose own
/// heartbeat has run a whole lease: after an outage of the database, every heartbeat is
/// old, and the first instance back must not take the others' work.
async fn a_silent_instance_elsewhere_is_dead_after_the_lease(backend: Backend) {
    const CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
tasks: {lease: 1s}
nodepools:
  concrete:
    quick:
      mechanism: {type: noop}
      fill-level: 1
"#;
    use duffy::engine::jobs::Takeover;
    use duffy::store::instances::{self, NewInstance};
    let app = spawn_app_unfilled(backend, CONFIG).await;
    let long_ago = store::now() - chrono::TimeDelta::minutes(5);
    let elsewhere = NewInstance {
        role: "serve",
        host: "elsewhere.example.test".into(),
        pid: 1,
        process_space: "another/machine".into(),
        version: "0",
    };
    let other = instances::register(app.engine.db(), &elsewhere, long_ago)
        .await
        .unwrap();
    let mut tx = app.engine.db().begin().await.unwrap();
    let node = store::nodes::insert_provisioning(&mut tx, "quick", store::now(), 1, other)
        .await
        .unwrap()
        .remove(0);
    tx.commit().await.unwrap();
    let state = |id: i64| {
        let engine = app.engine.clone();
        async move { store::nodes::by_id(engine.db(), id).await.unwrap().unwrap() }
    };

    let mut takeover = Takeover::new(app.engine.clone());
    let first = takeover.tick().await.unwrap();
    assert!(
        first.dead.is_empty() && first.provisioning.is_empty(),
        "judged before this instance's own heartbeat covered a lease: {first:?}"
    );
    assert_eq!(state(node.id).await.owner, Some(other.0));

    // Heartbeats without a gap for a whole lease (1 s): now the silence counts.
    let mut report = first;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        report = takeover.tick().await.unwrap();
        if !report.dead.is_empty() {
            break;
        }
    }
    assert_eq!(report.dead, vec![other.0]);
    assert_eq!(report.provisioning, vec![node.id]);
    let taken = state(node.id).await;
    assert_eq!(
        taken.state,
        NodeState::Done,
        "deprovisioned and dropped: {taken:?}"
    );
    assert_eq!(taken.data.0["taken_over"]["from_instance"], other.0);
    let live: Vec<i64> = instances::live(app.engine.db())
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        live,
        vec![app.engine.instance().0],
        "the silent one is stopped"
    );
}

/// Unused nodes assigned to a pool (as `duffy import` makes of v2 hosts, or as an admin
/// registers them with a pool) are what the pool's fill provisions first; only the rest of
/// the fill level is made new.
async fn unused_nodes_assigned_to_a_pool_are_provisioned_first(backend: Backend) {
    const CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    metal:
      mechanism: {type: noop}
      fill-level: 3
"#;
    let app = spawn_app_unfilled(backend, CONFIG).await;
    let mut ids = Vec::new();
    for i in 1..=4 {
        let body = json!({"hostname": format!("host-{i}.example.test"), "ipaddr": format!("192.0.2.{i}"), "pool": "metal"});
        let a = app.post("/api/v1/nodes", app.admin_auth(), &body).await;
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(a.body["node"]["state"], "unused");
        ids.push(a.body["node"]["id"].as_i64().unwrap());
    }
    app.fill().await;
    // Three of the four registered nodes were provisioned, nothing new was made.
    let ready = app.node_ids("state=ready").await;
    assert_eq!(ready.len(), 3, "{ready:?}");
    assert!(ready.iter().all(|id| ids.contains(id)), "{ready:?} {ids:?}");
    assert_eq!(app.node_ids("state=unused").await.len(), 1);
    // A session takes two: the refill takes the last registered node, then makes one.
    let a = app.request_session(app.admin_auth(), "metal", 2).await;
    assert_eq!(a.status, 201, "{}", a.text);
    app.fill().await;
    let ready = app.node_ids("state=ready").await;
    assert_eq!(ready.len(), 3, "{ready:?}");
    assert!(app.node_ids("state=unused").await.is_empty());
    let made: Vec<&i64> = ready.iter().filter(|id| !ids.contains(id)).collect();
    assert_eq!(
        made.len(),
        1,
        "one new node beside the registered ones: {ready:?}"
    );
}

both_backends!(
    unused_nodes_assigned_to_a_pool_are_provisioned_first,
    pools_fill_to_their_level,
    retired_nodes_are_deprovisioned_and_the_pool_refilled,
    the_running_service_refills_and_deprovisions_by_itself,
    sessions_expire_at_their_expiry,
    expiry_tick_retires_due_sessions_only,
    nodes_stuck_past_their_deadline_are_failed,
    a_restart_takes_over_nodes_left_midway,
    a_silent_instance_elsewhere_is_dead_after_the_lease,
);

mod deprovisioning {
    use super::*;

    /// Nodes leave their pool when deprovisioning starts (`docs/v3-api.md` §10).
    async fn nodes_leave_their_pool_when_deprovisioning_starts(backend: Backend) {
        let app = spawn_app(backend).await;
        let a = app.request_session(app.admin_auth(), "pool-b", 2).await;
        let sid = a.session_id();
        app.retire(app.admin_auth(), sid).await;
        let runs = app.engine.claim_deprovision().await.unwrap();
        assert_eq!(runs.iter().map(|r| r.nodes.len()).sum::<usize>(), 2);
        assert!(
            runs.iter().all(|r| r.pool == "pool-b"),
            "each run knows its pool"
        );
        let mid = store::nodes::in_state(app.engine.db(), NodeState::Deprovisioning)
            .await
            .unwrap();
        assert_eq!(mid.len(), 2);
        assert!(mid.iter().all(|n| n.pool.is_none()));
        assert_eq!(
            app.levels("pool-b").await["deprovisioning"],
            0,
            "as the original: levels count pool members"
        );
        let got = app
            .get(&format!("/api/v1/sessions/{sid}"), app.admin_auth())
            .await;
        assert!(
            got.body["session"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["pool"] == json!(null))
        );
        for run in runs {
            app.engine.deprovision(run).await;
        }
        assert_eq!(
            app.count("SELECT COUNT(*) FROM nodes WHERE state = 'done'")
                .await,
            2
        );
    }

    both_backends!(nodes_leave_their_pool_when_deprovisioning_starts);
}
