//! Admin controls through the v3 API: node downtime and recovery, retiring and re-running
//! nodes, pausing allocations, overtime, node filters; and 403 for everyone else.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app, spawn_app_config};

/// One pool with a single node: the downtime tests need "the only ready node".
const ONE_NODE: &str = r#"
defaults:
  session-lifetime: 6h
  session-lifetime-max: 12h
  node-quota: 10
nodepools:
  concrete:
    solo:
      mechanism: {type: noop}
      fill-level: 1
    other:
      mechanism: {type: noop}
      fill-level: 1
"#;

async fn a_node_in_downtime_is_never_handed_out(backend: Backend) {
    let app = spawn_app_config(backend, ONE_NODE).await;
    let (_, key) = app.tenant("t", None).await;
    let ready = app.node_ids("state=ready&pool=solo").await;
    assert_eq!(ready.len(), 1);
    let id = ready[0];

    let a = app
        .act(id, json!({"action": "downtime", "reason": "disk errors"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["node"]["state"], "downtime");
    let downtime = &a.body["node"]["data"]["downtime"];
    assert_eq!(downtime["by"], "admin");
    assert_eq!(downtime["reason"], "disk errors");
    assert_eq!(downtime["from"], "ready");
    assert_eq!(a.body["node"]["data"]["admin_log"][0]["action"], "downtime");

    // It was the only ready node: nothing to hand out until the pool refills.
    let r = app.request_session(Auth::Basic("t", &key), "solo", 1).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.detail(), "can't reserve nodes: quantity=1 pool='solo'");
    // A second downtime changes nothing and keeps the first record.
    let again = app
        .act(id, json!({"action": "downtime", "reason": "other"}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["node"]["data"]["downtime"]["reason"],
        "disk errors"
    );

    // The fill job replaces it and never touches it.
    app.fill().await;
    assert_eq!(app.node_ids("state=downtime").await, [id]);
    let ready = app.node_ids("state=ready&pool=solo").await;
    assert_eq!(ready.len(), 1);
    assert_ne!(ready[0], id);
    let granted = app.request_session(Auth::Basic("t", &key), "solo", 1).await;
    assert_eq!(granted.status, 201, "{}", granted.text);
    assert_ne!(granted.body["session"]["nodes"][0]["id"], id);

    // Recovered, it is ready again in its pool.
    let a = app
        .act(id, json!({"action": "recover", "reason": "disk replaced"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["node"]["state"], "ready");
    assert!(a.body["node"]["data"].get("downtime").is_none());
    let log = a.body["node"]["data"]["admin_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["action"], "recover");
    assert_eq!(log[1]["reason"], "disk replaced");
    let granted = app.request_session(Auth::Basic("t", &key), "solo", 1).await;
    assert_eq!(granted.status, 201, "{}", granted.text);
    assert_eq!(granted.body["session"]["nodes"][0]["id"], id);
}

async fn a_held_node_in_downtime_stays_out_of_the_cycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let s = app
        .request_session(Auth::Basic("t", &key), "pool-b", 1)
        .await;
    assert_eq!(s.status, 201);
    let sid = s.session_id();
    let id = s.body["session"]["nodes"][0]["id"].as_i64().unwrap();
    assert_eq!(app.act(id, json!({"action": "downtime"})).await.status, 200);
    // Held: the tenant's to give back, not the admin's to move.
    let a = app.act(id, json!({"action": "deprovision"})).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(
        a.detail(),
        &json!(format!(
            "node {id} is held by session {sid}: retire the session first"
        ))
    );
    assert_eq!(app.retire(Auth::Basic("t", &key), sid).await.status, 200);
    // The session ended but the node is out of service: the deprovisioning job leaves it.
    let report = app.deprovision().await;
    assert_eq!((report.done, report.failed), (0, 0));
    assert_eq!(app.node_ids("state=downtime").await, [id]);
    // Back to deployed with no session: the deprovisioning job takes it.
    let a = app.act(id, json!({"action": "recover"})).await;
    assert_eq!(a.body["node"]["state"], "deployed");
    assert_eq!(app.deprovision().await.done, 1);
    let a = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(a.body["node"]["state"], "done");
}

async fn admins_retire_and_rerun_nodes(backend: Backend) {
    let app = spawn_app(backend).await;
    let ready = app.node_ids("state=ready&pool=pool-b").await;
    assert_eq!(ready.len(), 2);
    let (a_id, b_id) = (ready[0], ready[1]);

    // A ready node cannot be forgotten; a failed one can.
    let a = app
        .act(a_id, json!({"action": "retire", "reason": "x"}))
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    app.exec_at(
        "UPDATE nodes SET state = 'failed', pool = NULL, state_changed_at = $1 WHERE id = $2",
        duffy::store::now(),
        a_id,
    )
    .await;
    // A failed node outside any pool needs the pool to provision it in.
    let a = app.act(a_id, json!({"action": "provision"})).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(
        a.detail(),
        &json!(format!(
            "node {a_id} is in no pool: name the pool whose mechanism should run"
        ))
    );
    let a = app
        .act(
            a_id,
            json!({"action": "provision", "pool": "nope", "reason": "r"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.detail(),
        &json!("pool 'nope' is not a configured concrete pool")
    );
    let a = app
        .act(
            a_id,
            json!({"action": "provision", "pool": "pool-b", "reason": "reinstall"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["node"]["state"], "provisioning");
    assert_eq!(a.body["node"]["pool"], "pool-b");
    assert!(
        app.eventually_count(
            10,
            "SELECT COUNT(*) FROM nodes WHERE state = 'ready' AND pool = 'pool-b'",
            2
        )
        .await
    );
    let a = app
        .get(&format!("/api/v1/nodes/{a_id}"), app.admin_auth())
        .await;
    assert_eq!(a.body["node"]["state"], "ready");
    assert!(a.body["node"]["data"].get("error").is_none());
    let log = &a.body["node"]["data"]["admin_log"][0];
    assert_eq!(
        (log["action"].clone(), log["by"].clone()),
        (json!("provision"), json!("admin"))
    );
    assert_eq!(log["from"], "failed");

    // Deprovisioning a ready node: the pool loses it (non-reusable: done) and refills.
    let a = app
        .act(b_id, json!({"action": "deprovision", "reason": "recycle"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        app.eventually_count(
            10,
            "SELECT COUNT(*) FROM nodes WHERE state = 'done' AND retired_at IS NOT NULL",
            1
        )
        .await
    );
    let a = app
        .get(&format!("/api/v1/nodes/{b_id}"), app.admin_auth())
        .await;
    assert_eq!(a.body["node"]["state"], "done");

    // A registered machine never used can be retired, once.
    let reg = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"hostname": "m1.example.test", "ipaddr": "127.0.9.1"}),
        )
        .await;
    let m = reg.body["node"]["id"].as_i64().unwrap();
    let a = app
        .act(m, json!({"action": "retire", "reason": "decommissioned"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["node"]["state"], "done");
    assert_eq!(a.body["node"]["active"], false);
    let a = app.act(m, json!({"action": "recover"})).await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.detail(),
        &json!(format!("node {m} is done: it is retired"))
    );
}

async fn node_actions_refuse_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.node_ids("state=ready").await[0];
    let a = app.act(id, json!({"action": "bogus"})).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.body["detail"][0]["type"], "enum");
    assert_eq!(a.body["detail"][0]["loc"], json!(["body", "action"]));
    let a = app.act(id, json!({"reason": 5})).await;
    assert_eq!(a.status, 422);
    let kinds: Vec<&str> = a.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["missing", "string_type"]);
    let a = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/nodes/{id}"),
            app.admin_auth(),
            Some("{"),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["detail"][0]["type"], "json_invalid");
    let a = app.act(999_999, json!({"action": "downtime"})).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (404, json!({"detail": "Not Found"}))
    );
    let a = app
        .put(
            "/api/v1/nodes/abc",
            app.admin_auth(),
            &json!({"action": "downtime"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["detail"][0]["loc"], json!(["path", "id"]));
    let a = app.act(id, json!({"action": "recover"})).await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.detail(),
        &json!(format!(
            "node {id} is ready: only a node in downtime can be recovered"
        ))
    );
    // Nothing changed along the way.
    let a = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(a.body["node"]["state"], "ready");
    assert!(a.body["node"]["data"].get("admin_log").is_none());
}

async fn nodes_can_be_listed_by_state_and_pool(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.node_ids("").await.len(), 7);
    assert_eq!(app.node_ids("pool=pool-b").await.len(), 2);
    assert_eq!(app.node_ids("state=ready&pool=pool-a").await.len(), 5);
    assert_eq!(app.node_ids("state=failed,downtime").await.len(), 0);
    assert_eq!(app.node_ids("pool=nope").await.len(), 0);
    let a = app.get("/api/v1/nodes?state=ready,bogus", Auth::None).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.body["detail"][0]["loc"], json!(["query", "state"]));
    assert_eq!(a.body["detail"][0]["input"], "bogus");
}

async fn paused_allocations_answer_503_until_resumed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    let held = app.request_session(t, "pool-a", 1).await;
    assert_eq!(held.status, 201);

    let a = app
        .put(
            "/api/v1/service",
            app.admin_auth(),
            &json!({"paused": true, "reason": "database upgrade"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["service"]["paused"]["by"], "admin");
    assert_eq!(a.body["service"]["paused"]["reason"], "database upgrade");
    let r = app.request_session(t, "pool-a", 1).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.detail(), "allocations are paused: database upgrade");
    assert_eq!(r.headers["retry-after"], "60");
    // Sessions already granted keep working and can be given back.
    assert_eq!(app.retire(t, held.session_id()).await.status, 200);
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"]["reason"], "database upgrade");

    let a = app
        .put(
            "/api/v1/service",
            app.admin_auth(),
            &json!({"paused": false}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["service"]["paused"], Value::Null);
    assert_eq!(app.request_session(t, "pool-a", 1).await.status, 201);

    // One pool only.
    let a = app
        .put(
            "/api/v1/pools/pool-b",
            app.admin_auth(),
            &json!({"paused": true, "reason": "hypervisor down"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["pool"]["paused"]["reason"], "hypervisor down");
    let r = app.request_session(t, "pool-b", 1).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.detail(),
        "allocations from pool 'pool-b' are paused: hypervisor down"
    );
    assert_eq!(app.request_session(t, "pool-a", 1).await.status, 201);
    let both = app
        .post(
            "/api/v1/sessions",
            t,
            &json!({"nodes_specs": [{"pool": "pool-a", "quantity": 1}, {"pool": "pool-b", "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        both.status, 503,
        "a request touching a paused pool is refused whole"
    );
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused_pools"][0]["pool"], "pool-b");
    let p = app.get("/api/v1/pools/pool-b", Auth::None).await;
    assert_eq!(p.body["pool"]["paused"]["by"], "admin");
    let a = app
        .put(
            "/api/v1/pools/pool-b",
            app.admin_auth(),
            &json!({"paused": false}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body["pool"].get("paused").is_none());
    assert_eq!(app.request_session(t, "pool-b", 1).await.status, 201);

    // Unknown and abstract pools, bad bodies.
    let a = app
        .put(
            "/api/v1/pools/nope",
            app.admin_auth(),
            &json!({"paused": true}),
        )
        .await;
    assert_eq!(a.status, 404);
    let a = app
        .put(
            "/api/v1/pools/noop",
            app.admin_auth(),
            &json!({"paused": true}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    let a = app
        .put(
            "/api/v1/service",
            app.admin_auth(),
            &json!({"paused": "maybe"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["detail"][0]["loc"], json!(["body", "paused"]));
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"], Value::Null);
    assert_eq!(s.body["service"]["paused_pools"], json!([]));
}

async fn overtime_lists_exactly_the_nodes_past_the_threshold(backend: Backend) {
    let app = spawn_app(backend).await;
    let (t, key) = app.tenant("t", None).await;
    let auth = Auth::Basic("t", &key);
    let old = app.request_session(auth, "pool-a", 2).await;
    let recent = app.request_session(auth, "pool-a", 1).await;
    let fresh = app.request_session(auth, "pool-b", 1).await;
    let now = duffy::store::now();
    let set_created = "UPDATE sessions SET created_at = $1 WHERE id = $2";
    app.exec_at(
        set_created,
        now - chrono::TimeDelta::minutes(90),
        old.session_id(),
    )
    .await;
    app.exec_at(
        set_created,
        now - chrono::TimeDelta::minutes(30),
        recent.session_id(),
    )
    .await;
    let node_ids = |a: &crate::helpers::Answer| -> Vec<i64> {
        a.body["session"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_i64().unwrap())
            .collect()
    };
    let listed = |a: &crate::helpers::Answer| -> Vec<i64> {
        a.body["overtime"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_i64().unwrap())
            .collect()
    };

    let a = app.get("/api/v1/overtime", app.admin_auth()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(listed(&a), node_ids(&old));
    let first = &a.body["overtime"][0];
    assert_eq!(first["session_id"], old.session_id());
    assert_eq!(first["tenant"], json!({"id": t.id, "name": "t"}));
    assert_eq!(first["held_minutes"], 90);
    assert_eq!(first["state"], "deployed");

    let a = app
        .get("/api/v1/overtime?minutes=20", app.admin_auth())
        .await;
    let mut want = node_ids(&old);
    want.extend(node_ids(&recent));
    assert_eq!(listed(&a), want);
    let a = app
        .get("/api/v1/overtime?minutes=120", app.admin_auth())
        .await;
    assert_eq!(listed(&a), Vec::<i64>::new());
    // Retired sessions hold nothing.
    assert_eq!(app.retire(auth, old.session_id()).await.status, 200);
    let a = app.get("/api/v1/overtime", app.admin_auth()).await;
    assert_eq!(listed(&a), Vec::<i64>::new());
    assert_eq!(fresh.status, 201);

    for bad in ["-1", "abc", "1.5e99"] {
        let a = app
            .get(&format!("/api/v1/overtime?minutes={bad}"), app.admin_auth())
            .await;
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
        assert_eq!(a.body["detail"][0]["loc"], json!(["query", "minutes"]));
    }
}

async fn only_admins_may_operate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let id = app.node_ids("state=ready").await[0];
    let calls: [(reqwest::Method, String, Option<Value>); 5] = [
        (
            reqwest::Method::PUT,
            format!("/api/v1/nodes/{id}"),
            Some(json!({"action": "downtime"})),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/service".into(),
            Some(json!({"paused": true})),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/pools/pool-a".into(),
            Some(json!({"paused": true})),
        ),
        (reqwest::Method::GET, "/api/v1/overtime".into(), None),
        // Even a malformed body: auth is checked first.
        (
            reqwest::Method::PUT,
            "/api/v1/service".into(),
            Some(json!({"paused": 3})),
        ),
    ];
    for (method, path, body) in calls {
        let body = body.map(|b| b.to_string());
        let a = app
            .request(
                method.clone(),
                &path,
                Auth::Basic("t", &key),
                body.as_deref(),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.body.clone()),
            (403, json!({"detail": "Forbidden"})),
            "{method} {path}"
        );
        let a = app
            .request(method.clone(), &path, Auth::None, body.as_deref())
            .await;
        assert_eq!(a.status, 401, "{method} {path}");
    }
    let a = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(a.body["node"]["state"], "ready");
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"], Value::Null);
}

/// A noop pool whose runs take a while, so that two overlap.
const SLOW: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    slow:
      mechanism: {type: noop, noop: {delay: 500ms}}
      fill-level: 1
"#;

async fn a_late_run_never_overwrites_a_newer_action(backend: Backend) {
    let app = spawn_app_config(backend, SLOW).await;
    let id = app.node_ids("state=ready&pool=slow").await[0];
    // Two provisioning runs overlap: the first is still going when the second is asked for.
    let a = app
        .act(id, json!({"action": "provision", "reason": "first"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = app
        .act(id, json!({"action": "provision", "reason": "second"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        app.eventually_count(
            10,
            "SELECT COUNT(*) FROM nodes WHERE pool = 'slow' AND state = 'ready'",
            1
        )
        .await
    );
    // Both runs are over well after this; only the second one's outcome may stand.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(node.body["node"]["state"], "ready");
    let reasons: Vec<&str> = node.body["node"]["data"]["admin_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["first", "second"], "{}", node.text);
}

both_backends!(
    a_late_run_never_overwrites_a_newer_action,
    a_node_in_downtime_is_never_handed_out,
    a_held_node_in_downtime_stays_out_of_the_cycle,
    admins_retire_and_rerun_nodes,
    node_actions_refuse_bad_requests,
    nodes_can_be_listed_by_state_and_pool,
    paused_allocations_answer_503_until_resumed,
    overtime_lists_exactly_the_nodes_past_the_threshold,
    only_admins_may_operate,
);
