//! Retiring a pool removed from the configuration (`PUT /api/v1/pools/{name}` with
//! `{"action": "retire"}`, and `duffy admin retire-pool`): refusals, what is retired and
//! kept, what a purge deletes, that it is all or nothing, and that the pool is gone from
//! the status page, `/metrics` and the listings afterwards.
//!
//! Each test makes nodes under a configuration that has `pool-gone`, then restarts the
//! application on the same database with a configuration that no longer has it.

use serde_json::{Value, json};

use crate::both_backends;
use crate::cli_admin::{Cli, ok};
use crate::helpers::{Auth, Backend, TestApp, load_config, spawn_app_config, start_on};

/// The configuration the nodes are made under.
const BEFORE: &str = r#"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 20
nodepools:
  concrete:
    kept:
      mechanism: {type: noop}
      fill-level: 2
    pool-gone:
      mechanism: {type: noop}
      fill-level: 3
"#;

/// The same without `pool-gone`.
const AFTER: &str = r#"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 20
nodepools:
  concrete:
    kept:
      mechanism: {type: noop}
      fill-level: 2
"#;

const GONE: &str = "/api/v1/pools/pool-gone";

/// Restarts the application on its database with another configuration, keeping the
/// admin's key (a restart does not print it again).
async fn restart(app: TestApp, config: &str) -> TestApp {
    let key = app.admin_key.clone();
    let db = app.stop().await;
    let mut app = start_on(db, load_config(config), false, false).await;
    app.admin_key = key;
    app
}

/// A number from the database, with the pool's name bound as `$1`.
async fn count(app: &TestApp, sql: &'static str, pool: &str) -> i64 {
    match app.engine.db() {
        duffy::store::Db::Sqlite { reader, .. } => sqlx::query_scalar(sql)
            .bind(pool)
            .fetch_one(reader)
            .await
            .unwrap(),
        duffy::store::Db::Postgres(p) => sqlx::query_scalar(sql)
            .bind(pool)
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

/// Ids from the database, with the pool's name bound as `$1`.
async fn ids(app: &TestApp, sql: &'static str, pool: &str) -> Vec<i64> {
    match app.engine.db() {
        duffy::store::Db::Sqlite { reader, .. } => sqlx::query_scalar(sql)
            .bind(pool)
            .fetch_all(reader)
            .await
            .unwrap(),
        duffy::store::Db::Postgres(p) => sqlx::query_scalar(sql)
            .bind(pool)
            .fetch_all(p)
            .await
            .unwrap(),
    }
}

/// Runs a statement (test set-up the API has no call for).
async fn execute(app: &TestApp, sql: &'static str) {
    match app.engine.db() {
        duffy::store::Db::Sqlite { writer, .. } => {
            sqlx::raw_sql(sql).execute(writer).await.unwrap();
        }
        duffy::store::Db::Postgres(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

/// Every node that was ever the pool's: in it, or handed out from it.
const NODES_EVER: &str = "SELECT id FROM nodes WHERE pool = $1 \
    OR id IN (SELECT node_id FROM sessions_nodes WHERE pool = $1) ORDER BY id";
const LIVE_IN_POOL: &str = "SELECT COUNT(*) FROM nodes WHERE pool = $1 AND retired_at IS NULL";
const LINKS: &str = "SELECT COUNT(*) FROM sessions_nodes WHERE pool = $1";

async fn retire(app: &TestApp, body: Value) -> crate::helpers::Answer {
    app.put(GONE, app.admin_auth(), &body).await
}

/// The first node of a session answer.
fn first_node(a: &crate::helpers::Answer) -> i64 {
    a.body["session"]["nodes"][0]["id"].as_i64().unwrap()
}

async fn a_retired_pool_disappears_and_its_history_stays_until_purged(backend: Backend) {
    let app = spawn_app_config(backend, BEFORE).await;
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    // History: a session of the pool alone, one of the pool and another, both over.
    let alone = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(alone.status, 201, "{}", alone.text);
    let mixed = app
        .post(
            "/api/v1/sessions",
            t,
            &json!({"nodes_specs": [
                {"pool": "pool-gone", "quantity": 1},
                {"pool": "kept", "quantity": 1}
            ]}),
        )
        .await;
    assert_eq!(mixed.status, 201, "{}", mixed.text);
    let mixed_kept_node = mixed.body["session"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["pool"] == "kept")
        .map(|n| n["id"].as_i64().unwrap())
        .unwrap();
    for s in [&alone, &mixed] {
        assert_eq!(app.retire(t, s.session_id()).await.status, 200);
    }
    assert_eq!(app.deprovision().await.done, 3);
    app.fill().await;
    // Live: a session holding one of its nodes, a node in downtime, a pause.
    let held = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(held.status, 201, "{}", held.text);
    let held_node = first_node(&held);
    let other = app.request_session(t, "kept", 1).await;
    assert_eq!(other.status, 201, "{}", other.text);
    let down = app.node_ids("state=ready&pool=pool-gone").await[0];
    assert_eq!(
        app.act(down, json!({"action": "downtime", "reason": "flaky"}))
            .await
            .status,
        200
    );
    let a = app
        .put(
            GONE,
            app.admin_auth(),
            &json!({"paused": true, "reason": "being removed"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let app = restart(app, AFTER).await;
    // Unconfigured, the pool still shows wherever its live nodes or its pause do.
    let page = app.get("/", Auth::None).await;
    assert!(page.text.contains("pool-gone"), "{}", page.text);
    let metrics = app.get("/metrics", Auth::None).await.text;
    assert!(
        metrics.contains(r#"duffy_nodes{pool="pool-gone",state="downtime"} 1"#),
        "{metrics}"
    );
    assert_eq!(app.node_ids("pool=pool-gone").await.len(), 3);

    // Refused while configured, and while a session holds one of its nodes.
    let a = app
        .put(
            "/api/v1/pools/kept",
            app.admin_auth(),
            &json!({"action": "retire"}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (
            409,
            json!({"detail": "pool 'kept' is still configured: remove it from the configuration \
                and restart the server before retiring it"})
        )
    );
    let a = retire(&app, json!({"action": "retire"})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (
            409,
            json!({"detail": format!(
                "nodes of pool 'pool-gone' are held by active session {}: retire it first",
                held.session_id()
            )})
        )
    );
    assert_eq!(app.node_ids("pool=pool-gone").await.len(), 3);

    // The session ends; its node fails at once (no pool to deprovision it with) and
    // leaves the pool's name behind, but it is still the pool's.
    assert_eq!(app.retire(t, held.session_id()).await.status, 200);
    assert_eq!(app.deprovision().await.done, 0);
    let a = app
        .get(&format!("/api/v1/nodes/{held_node}"), app.admin_auth())
        .await;
    assert_eq!(
        (&a.body["node"]["state"], &a.body["node"]["pool"]),
        (&json!("failed"), &Value::Null)
    );
    assert_eq!(count(&app, LINKS, "pool-gone").await, 3);

    let a = retire(&app, json!({"action": "retire", "reason": "replaced"})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (
            200,
            json!({"action": "put", "pool": {
                "name": "pool-gone",
                "retired": {"nodes": 3},
                "purged": null,
                "pause_lifted": true
            }})
        ),
        "{}",
        a.text
    );
    assert_eq!(count(&app, LIVE_IN_POOL, "pool-gone").await, 0);
    for id in [held_node, down] {
        let a = app
            .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
            .await;
        let node = &a.body["node"];
        assert_eq!(
            (&node["state"], &node["active"]),
            (&json!("done"), &json!(false))
        );
        let log = node["data"]["admin_log"].as_array().unwrap();
        let last = log.last().unwrap();
        assert_eq!(
            (&last["action"], &last["by"], &last["reason"]),
            (&json!("retire-pool"), &json!("admin"), &json!("replaced"))
        );
    }
    // History is kept.
    assert_eq!(count(&app, LINKS, "pool-gone").await, 3);
    for s in [&alone, &mixed, &held] {
        let a = app
            .get(
                &format!("/api/v1/sessions/{}", s.session_id()),
                app.admin_auth(),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // Gone from the status page, the metrics and the listings.
    let page = app.get("/", Auth::None).await;
    assert_eq!(page.status, 200);
    assert!(!page.text.contains("pool-gone"), "{}", page.text);
    let metrics = app.get("/metrics", Auth::None).await.text;
    assert!(!metrics.contains("pool-gone"), "{metrics}");
    assert!(
        metrics.contains(r#"duffy_nodes{pool="kept",state="ready"}"#),
        "{metrics}"
    );
    assert!(app.node_ids("pool=pool-gone").await.is_empty());
    let nodes = app.get("/api/v1/nodes", Auth::None).await;
    assert!(!nodes.text.contains("pool-gone"), "{}", nodes.text);
    let pools = app.get("/api/v1/pools", Auth::None).await;
    assert_eq!(
        pools.body["pools"],
        json!([{"name": "kept", "fill-level": 2}])
    );
    let service = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(service.body["service"]["paused_pools"], json!([]));

    // Again: nothing live is left, the history still names the pool.
    let a = retire(&app, json!({"action": "retire"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["pool"]["retired"], json!({"nodes": 0}));
    assert_eq!(a.body["pool"]["pause_lifted"], false);

    // The purge deletes the pool's nodes, their links, and the sessions that had no other.
    let ever = ids(&app, NODES_EVER, "pool-gone").await;
    assert_eq!(
        ever.len(),
        5,
        "3 filled, 2 refilled after the first two sessions"
    );
    let a = retire(&app, json!({"action": "retire", "purge": true})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (
            200,
            json!({"action": "put", "pool": {
                "name": "pool-gone",
                "retired": {"nodes": 0},
                "purged": {"nodes": 5, "sessions_nodes": 3, "sessions": 2},
                "pause_lifted": false
            }})
        ),
        "{}",
        a.text
    );
    assert!(ids(&app, NODES_EVER, "pool-gone").await.is_empty());
    for id in &ever {
        let a = app
            .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
            .await;
        assert_eq!(a.status, 404, "node {id}: {}", a.text);
    }
    assert_eq!(count(&app, LINKS, "pool-gone").await, 0);
    for s in [&alone, &held] {
        let a = app
            .get(
                &format!("/api/v1/sessions/{}", s.session_id()),
                app.admin_auth(),
            )
            .await;
        assert_eq!(a.status, 404, "{}", a.text);
    }
    // The session that also held a node of another pool stays, with that node.
    let a = app
        .get(
            &format!("/api/v1/sessions/{}", mixed.session_id()),
            app.admin_auth(),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let left: Vec<i64> = a.body["session"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [mixed_kept_node]);
    let a = app
        .get(
            &format!("/api/v1/sessions/{}", other.session_id()),
            app.admin_auth(),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), &a.body["session"]["active"]),
        (200, &json!(true))
    );
    // Now nothing names the pool at all.
    let a = retire(&app, json!({"action": "retire", "purge": true})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (404, json!({"detail": "Not Found"}))
    );
}

async fn retiring_is_for_admins_with_a_valid_body(backend: Backend) {
    let app = spawn_app_config(backend, BEFORE).await;
    let (_, key) = app.tenant("t", None).await;
    let body = json!({"action": "retire"});
    let a = app.put(GONE, Auth::Basic("t", &key), &body).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (403, json!({"detail": "Forbidden"}))
    );
    let a = app.put(GONE, Auth::None, &body).await;
    assert_eq!(a.status, 401, "{}", a.text);
    // Checked before the body: a non-admin learns nothing from a bad one.
    let a = app
        .put(GONE, Auth::Basic("t", &key), &json!({"action": "explode"}))
        .await;
    assert_eq!(a.status, 403, "{}", a.text);

    let invalid = |a: &crate::helpers::Answer| {
        assert_eq!(a.status, 422, "{}", a.text);
        let e = &a.detail()[0];
        (e["type"].clone(), e["loc"].clone())
    };
    let a = retire(&app, json!({"action": "retire", "paused": true})).await;
    assert_eq!(
        invalid(&a),
        (json!("value_error"), json!(["body", "paused"]))
    );
    let a = retire(&app, json!({"action": "explode"})).await;
    assert_eq!(invalid(&a), (json!("enum"), json!(["body", "action"])));
    assert_eq!(a.detail()[0]["msg"], "Input should be 'retire'");
    let a = retire(&app, json!({"action": "retire", "purge": "maybe"})).await;
    assert_eq!(
        invalid(&a),
        (json!("bool_parsing"), json!(["body", "purge"]))
    );
    let a = retire(
        &app,
        json!({"action": "retire", "paused": false, "purge": 7}),
    )
    .await;
    assert_eq!(a.detail().as_array().unwrap().len(), 2, "{}", a.text);
    let a = app
        .request(
            reqwest::Method::PUT,
            GONE,
            app.admin_auth(),
            Some("{\"action\": "),
        )
        .await;
    assert_eq!(invalid(&a).0, json!("json_invalid"));
    // None of them paused anything.
    let service = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(service.body["service"]["paused_pools"], json!([]));

    // An unknown pool is 404, a configured one 409.
    let a = app
        .put(
            "/api/v1/pools/never-heard-of",
            app.admin_auth(),
            &json!({"action": "retire", "purge": true}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (404, json!({"detail": "Not Found"}))
    );
    let a = retire(&app, json!({"action": "retire"})).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(app.node_ids("pool=pool-gone").await.len(), 3);

    // The pause body works as it did.
    let a = retire(&app, json!({"paused": true, "reason": "r"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["action"], "put");
    assert_eq!(a.body["pool"]["name"], "pool-gone");
    assert_eq!(a.body["pool"]["levels"]["ready"], 3);
    assert_eq!(a.body["pool"]["paused"]["reason"], "r");
    let a = retire(&app, json!({"paused": false})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["pool"].get("paused").is_none(), "{}", a.text);
    let a = retire(&app, json!({})).await;
    assert_eq!(invalid(&a), (json!("missing"), json!(["body", "paused"])));
}

async fn a_purged_pools_ids_are_never_handed_out_again(backend: Backend) {
    let app = spawn_app_config(backend, BEFORE).await;
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    // The pool's newest node and session are the newest of all.
    let s = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(s.status, 201, "{}", s.text);
    assert_eq!(app.retire(t, s.session_id()).await.status, 200);
    assert_eq!(app.deprovision().await.done, 1);
    app.fill().await;
    let last = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(last.status, 201, "{}", last.text);
    assert_eq!(app.retire(t, last.session_id()).await.status, 200);
    let app = restart(app, AFTER).await;
    let max_node = count(
        &app,
        "SELECT MAX(id) FROM nodes WHERE pool = $1",
        "pool-gone",
    )
    .await;
    assert_eq!(app.count("SELECT MAX(id) FROM nodes").await, max_node);
    let max_session = last.session_id();
    assert_eq!(app.count("SELECT MAX(id) FROM sessions").await, max_session);

    let a = retire(&app, json!({"action": "retire", "purge": true})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["pool"]["purged"]["sessions"], 2, "{}", a.text);
    assert!(app.count("SELECT MAX(id) FROM nodes").await < max_node);

    // New rows: a session, and the node that replaces the one it took.
    let s = app.request_session(t, "kept", 1).await;
    assert_eq!(s.status, 201, "{}", s.text);
    assert!(
        s.session_id() > max_session,
        "{} <= {max_session}",
        s.session_id()
    );
    app.fill().await;
    let newest = count(&app, "SELECT MAX(id) FROM nodes WHERE pool = $1", "kept").await;
    assert!(newest > max_node, "{newest} <= {max_node}");
    let a = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"hostname": "metal-1.example.org", "ipaddr": "192.0.2.10"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(
        a.body["node"]["id"].as_i64().unwrap() > newest,
        "{}",
        a.text
    );
}

/// Makes deleting node rows fail, so that a purge fails at its last statement.
const REFUSE_NODE_DELETES_SQLITE: &str = "CREATE TRIGGER refuse_node_delete BEFORE DELETE ON nodes \
    BEGIN SELECT RAISE(ABORT, 'node rows are kept'); END";
const REFUSE_NODE_DELETES_POSTGRES: &str = "CREATE FUNCTION refuse_node_delete() RETURNS trigger \
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'node rows are kept'; END $$; \
    CREATE TRIGGER refuse_node_delete BEFORE DELETE ON nodes \
    FOR EACH ROW EXECUTE FUNCTION refuse_node_delete()";

async fn a_purge_that_fails_half_way_changes_nothing(backend: Backend) {
    let app = spawn_app_config(backend, BEFORE).await;
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    let s = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(app.retire(t, s.session_id()).await.status, 200);
    assert_eq!(app.deprovision().await.done, 1);
    let a = app
        .put(GONE, app.admin_auth(), &json!({"paused": true}))
        .await;
    assert_eq!(a.status, 200);
    let app = restart(app, AFTER).await;
    match backend {
        Backend::Sqlite => execute(&app, REFUSE_NODE_DELETES_SQLITE).await,
        Backend::Postgres => execute(&app, REFUSE_NODE_DELETES_POSTGRES).await,
    }
    let live = app.node_ids("pool=pool-gone").await;
    assert_eq!(live.len(), 2);
    let sessions = app.count("SELECT COUNT(*) FROM sessions").await;

    let a = retire(&app, json!({"action": "retire", "purge": true})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (500, json!({"detail": "Internal Server Error"}))
    );
    // The nodes retired, the pause lifted, the session and links deleted before the
    // failing statement: all undone.
    assert_eq!(app.node_ids("pool=pool-gone").await, live);
    assert_eq!(count(&app, LIVE_IN_POOL, "pool-gone").await, 2);
    assert_eq!(count(&app, LINKS, "pool-gone").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, sessions);
    let service = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(
        service.body["service"]["paused_pools"][0]["pool"],
        "pool-gone"
    );

    match backend {
        Backend::Sqlite => execute(&app, "DROP TRIGGER refuse_node_delete").await,
        Backend::Postgres => execute(&app, "DROP TRIGGER refuse_node_delete ON nodes").await,
    }
    let a = retire(&app, json!({"action": "retire", "purge": true})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["pool"],
        json!({
            "name": "pool-gone",
            "retired": {"nodes": 2},
            "purged": {"nodes": 3, "sessions_nodes": 1, "sessions": 1},
            "pause_lifted": true
        })
    );
}

/// Duffy's own lines from `info` up (sqlx would log every statement).
const LOG_INFO: &str = "info,sqlx=warn";

async fn retire_pool_from_the_command_line(backend: Backend) {
    let app = spawn_app_config(backend, BEFORE).await;
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    let held = app.request_session(t, "pool-gone", 1).await;
    assert_eq!(held.status, 201, "{}", held.text);
    let app = restart(app, AFTER).await;

    // The command's configuration decides: with the pool in it, it is refused.
    let configured = Cli::with_pools(&app, BEFORE);
    let r = configured.admin(&["retire-pool", "pool-gone"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "ERROR: pool-gone\nERROR DETAIL: pool 'pool-gone' is still configured: remove it \
             from the configuration and restart the server before retiring it\n"
        ),
        "{r:?}"
    );
    let cli = Cli::with_pools(&app, AFTER);
    let r = cli.admin(&["retire-pool", "nope"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR: nope\nERROR DETAIL: Not Found\n")
    );
    // A refusal is logged, but never as an error.
    let r = cli
        .admin_logging(&["retire-pool", "pool-gone", "--purge"], LOG_INFO)
        .await;
    assert_eq!(r.code, 1, "{r:?}");
    let detail = format!(
        "nodes of pool 'pool-gone' are held by active session {}: retire it first",
        held.session_id()
    );
    assert!(
        r.stderr
            .ends_with(&format!("ERROR: pool-gone\nERROR DETAIL: {detail}\n")),
        "{}",
        r.stderr
    );
    let logged: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("ERROR: ") && !l.starts_with("ERROR DETAIL: "))
        .collect();
    assert!(logged.iter().all(|l| !l.contains("ERROR")), "{}", r.stderr);
    assert!(
        logged.iter().any(|l| l.contains(" INFO ")
            && l.contains("retiring pool pool-gone refused")
            && l.contains("pool.name=pool-gone")
            && l.contains("pool.purge=true")),
        "{}",
        r.stderr
    );
    assert_eq!(app.node_ids("pool=pool-gone").await.len(), 3);

    assert_eq!(app.retire(t, held.session_id()).await.status, 200);
    let r = cli
        .admin_logging(
            &["retire-pool", "pool-gone", "--reason", "replaced"],
            LOG_INFO,
        )
        .await;
    assert_eq!(
        r.stdout, "OK: pool-gone: retired_nodes=3 pause_lifted=False\n",
        "{r:?}"
    );
    assert!(
        r.stderr.contains(" INFO ")
            && r.stderr.contains(
                "pool pool-gone retired by duffy admin (operator): 3 live node(s) retired"
            )
            && r.stderr.contains("pool.retired_nodes=3"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(" WARN ")
            && r.stderr
                .contains("3 node(s) retired without deprovisioning"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("ERROR"), "{}", r.stderr);
    // The running server sees it at once.
    assert!(app.node_ids("pool=pool-gone").await.is_empty());
    let a = app
        .get(
            &format!("/api/v1/nodes/{}", first_node(&held)),
            app.admin_auth(),
        )
        .await;
    let log = a.body["node"]["data"]["admin_log"].as_array().unwrap();
    assert_eq!(
        (&log.last().unwrap()["by"], &log.last().unwrap()["reason"]),
        (&json!("duffy admin (operator)"), &json!("replaced"))
    );

    let r = cli.admin(&["retire-pool", "pool-gone", "--purge"]).await;
    assert_eq!(
        ok(&r),
        "OK: pool-gone: retired_nodes=0 pause_lifted=False purged_nodes=3 \
         purged_sessions_nodes=1 purged_sessions=1\n"
    );
    let r = cli.admin(&["retire-pool", "pool-gone"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR: pool-gone\nERROR DETAIL: Not Found\n")
    );
}

both_backends!(
    a_retired_pool_disappears_and_its_history_stays_until_purged,
    retiring_is_for_admins_with_a_valid_body,
    a_purged_pools_ids_are_never_handed_out_again,
    a_purge_that_fails_half_way_changes_nothing,
    retire_pool_from_the_command_line,
);
