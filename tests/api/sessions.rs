//! `/sessions` (`docs/v3-api.md` §7–§8, `docs/deviations.md` D#3–D#7).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Answer, Auth, Backend, spawn_app};

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .to_utc()
}

async fn a_session_gets_ready_nodes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app
        .post(
            "/api/v1/sessions",
            Auth::Basic("t", &key),
            &json!({"tenant_id": null, "nodes_specs": [{"pool": "pool-a", "quantity": 2, "x": 1}, {"pool": "pool-b", "quantity": 1}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["action"], "post");
    let s = &a.body["session"];
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "retired_at",
            "active",
            "created_at",
            "id",
            "expires_at",
            "tenant",
            "data",
            "nodes"
        ]
    );
    assert_eq!(s["active"], true);
    assert_eq!(
        s["data"],
        json!({"nodes_specs": [{"quantity": 2, "pool": "pool-a"}, {"quantity": 1, "pool": "pool-b"}]})
    );
    assert_eq!(
        ts(&s["expires_at"]) - ts(&s["created_at"]),
        TimeDelta::hours(6)
    );
    assert_eq!(s["tenant"]["name"], "t");
    assert_eq!(s["tenant"]["ssh_key"], "**********");
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let keys: Vec<&str> = nodes[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "hostname", "ipaddr", "comment", "pool", "reusable", "data", "id", "state"
        ]
    );
    for n in nodes {
        assert_eq!(n["state"], "deployed");
        assert_eq!(n["comment"], json!(null));
        assert_eq!(n["data"]["nodes_spec"]["pool"], n["pool"]);
        assert!(n["data"]["provision"]["ipaddr"].is_string());
    }
    assert_eq!(nodes.iter().filter(|n| n["pool"] == "pool-a").count(), 2);
    assert_eq!(app.levels("pool-a").await["deployed"], 2);

    // the node's hand-outs are counted
    let id = nodes[0]["id"].as_i64().unwrap();
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), Auth::Basic("t", &key))
        .await;
    assert_eq!(node.body["node"]["used_count"], 1);
}

async fn a_request_gets_all_its_nodes_or_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app
        .post(
            "/api/v1/sessions",
            Auth::Basic("t", &key),
            &json!({"nodes_specs": [{"pool": "pool-a", "quantity": 2}, {"pool": "pool-b", "quantity": 3}]}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (422, &json!("can't reserve nodes: quantity=3 pool='pool-b'"))
    );
    for unknown in ["nope", "noop", "unfilled"] {
        let a = app
            .request_session(Auth::Basic("t", &key), unknown, 1)
            .await;
        assert_eq!(
            a.detail(),
            &json!(format!("can't reserve nodes: quantity=1 pool='{unknown}'"))
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        0,
        "no session left behind"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions_nodes").await, 0);
    assert_eq!(
        app.levels("pool-a").await["ready"],
        5,
        "nothing stays claimed"
    );
}

async fn quotas_hold(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("small", Some(3)).await;
    assert_eq!(
        app.request_session(Auth::Basic("small", &key), "pool-a", 2)
            .await
            .status,
        201
    );
    let a = app
        .request_session(Auth::Basic("small", &key), "pool-a", 2)
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (
            403,
            &json!("quota exceeded: requested nodes (2) + current allocation (2) = 4 > 3")
        )
    );
    assert_eq!(
        app.request_session(Auth::Basic("small", &key), "pool-b", 1)
            .await
            .status,
        201
    );
    // admins have no quota
    let a = app.request_session(app.admin_auth(), "pool-a", 3).await;
    assert_eq!(a.status, 201, "{}", a.text);
}

async fn admins_act_for_other_tenants(backend: Backend) {
    let app = spawn_app(backend).await;
    let (t, key) = app.tenant("t", Some(1)).await;
    let (other, _) = app.tenant("other", None).await;
    let spec = json!([{"pool": "pool-a", "quantity": 1}]);
    let a = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"tenant_id": t.id, "nodes_specs": spec}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["session"]["tenant"]["name"], "t");
    // the quota is the target's
    let a = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"tenant_id": t.id, "nodes_specs": spec}),
        )
        .await;
    assert_eq!(a.status, 403);
    let a = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"tenant_id": 999, "nodes_specs": spec}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (422, &json!("can't find tenant with id 999"))
    );
    let a = app
        .post(
            "/api/v1/sessions",
            Auth::Basic("t", &key),
            &json!({"tenant_id": other.id, "nodes_specs": spec}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (403, &json!("can't create session for other tenant"))
    );
    app.put(
        &format!("/api/v1/tenants/{}", other.id),
        app.admin_auth(),
        &json!({"active": false}),
    )
    .await;
    let a = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"tenant_id": other.id, "nodes_specs": spec}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (422, &json!("tenant 'other' isn't active"))
    );
}

async fn an_empty_request_is_an_empty_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app
        .post(
            "/api/v1/sessions",
            app.admin_auth(),
            &json!({"nodes_specs": []}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["session"]["nodes"], json!([]));
    assert_eq!(a.body["session"]["data"], json!({"nodes_specs": []}));
}

async fn bad_requests_are_422_and_leave_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let auth = Auth::Basic("t", &key);
    let cases: [(&str, &str, &[&str]); 10] = [
        (
            r#"{"nodes_specs": [{"pool": "pool-a", "quantity": 0}]}"#,
            "greater_than_equal",
            &["body", "nodes_specs", "0", "quantity"],
        ),
        (
            r#"{"nodes_specs": [{"pool": "pool-a", "quantity": -1}]}"#,
            "greater_than_equal",
            &["body", "nodes_specs", "0", "quantity"],
        ),
        (
            r#"{"nodes_specs": [{"pool": "pool-a", "quantity": 1000000000000}]}"#,
            "less_than_equal",
            &["body", "nodes_specs", "0", "quantity"],
        ),
        (
            r#"{"nodes_specs": [{"pool": "pool-a", "quantity": 99999999999999999999999}]}"#,
            "less_than_equal",
            &["body", "nodes_specs", "0", "quantity"],
        ),
        (
            r#"{"nodes_specs": [{"pool": "pool-a", "quantity": "many"}]}"#,
            "int_parsing",
            &["body", "nodes_specs", "0", "quantity"],
        ),
        (
            r#"{"nodes_specs": [{"pool": 5, "quantity": 1}]}"#,
            "string_type",
            &["body", "nodes_specs", "0", "pool"],
        ),
        (
            r#"{"nodes_specs": "pool-a"}"#,
            "list_type",
            &["body", "nodes_specs"],
        ),
        (r#"{}"#, "missing", &["body", "nodes_specs"]),
        (r#"[1, 2]"#, "model_attributes_type", &["body"]),
        (r#"{"nodes_specs": [}"#, "json_invalid", &["body", "17"]),
    ];
    for (body, kind, loc) in cases {
        let a = app
            .request(reqwest::Method::POST, "/api/v1/sessions", auth, Some(body))
            .await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        let e = &a.detail()[0];
        assert_eq!(e["type"], kind, "{body}: {}", a.text);
        let got: Vec<String> = e["loc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.to_string().trim_matches('"').to_owned())
            .collect();
        assert_eq!(got, loc, "{body}");
        assert!(e["msg"].is_string() && e.get("input").is_some(), "{body}");
    }
    let a = app
        .request(reqwest::Method::POST, "/api/v1/sessions", auth, Some(""))
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(app.levels("pool-a").await["ready"], 5);
}

async fn sessions_are_shown_to_their_tenant_and_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, akey) = app.tenant("alice", None).await;
    let (_, bkey) = app.tenant("bob", None).await;
    let a = app
        .request_session(Auth::Basic("alice", &akey), "pool-a", 1)
        .await;
    let sid = a.session_id();
    let b = app
        .request_session(Auth::Basic("bob", &bkey), "pool-a", 1)
        .await;
    assert_eq!(b.status, 201);

    let path = format!("/api/v1/sessions/{sid}");
    let got = app.get(&path, Auth::Basic("alice", &akey)).await;
    assert_eq!(
        (got.status.as_u16(), got.body["action"].clone()),
        (200, json!("get"))
    );
    assert_eq!(got.body["session"]["id"], sid);
    assert_eq!(app.get(&path, app.admin_auth()).await.status, 200);
    let other = app.get(&path, Auth::Basic("bob", &bkey)).await;
    assert_eq!(other.status, 403);
    let missing = app
        .get("/api/v1/sessions/999", Auth::Basic("alice", &akey))
        .await;
    assert_eq!(
        (missing.status.as_u16(), missing.detail()),
        (404, &json!("Not Found"))
    );
    // percent-escaped ids are decoded, as the original does
    let escaped = format!("/api/v1/sessions/%3{}", sid % 10);
    if sid < 10 {
        let got = app.get(&escaped, Auth::Basic("alice", &akey)).await;
        assert_eq!(got.status, 200, "{escaped}: {}", got.text);
    }
    let bad = app
        .get("/api/v1/sessions/x1", Auth::Basic("alice", &akey))
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.detail()[0]["loc"].clone()),
        (422, json!(["path", "id"]))
    );

    // lists: own sessions for tenants, all for admins
    let own = app
        .get("/api/v1/sessions", Auth::Basic("alice", &akey))
        .await;
    assert_eq!(own.body["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["sessions"][0]["tenant"]["ssh_key"], "**********");
    let all = app.get("/api/v1/sessions", app.admin_auth()).await;
    assert_eq!(all.body["sessions"].as_array().unwrap().len(), 2);

    // retired sessions leave the lists but can still be read
    let r = app
        .put(
            &path,
            Auth::Basic("alice", &akey),
            &json!({"active": false, "expires_at": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/sessions", Auth::Basic("alice", &akey))
            .await
            .body["sessions"],
        json!([])
    );
    let got = app.get(&path, Auth::Basic("alice", &akey)).await;
    assert_eq!(got.body["session"]["active"], false);
}

async fn retiring_releases_the_nodes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app
        .request_session(Auth::Basic("t", &key), "pool-a", 2)
        .await;
    let sid = a.session_id();
    let path = format!("/api/v1/sessions/{sid}");
    let r = app
        .put(
            &path,
            Auth::Basic("t", &key),
            &json!({"active": false, "expires_at": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["action"], "put");
    let s = &r.body["session"];
    assert_eq!(s["active"], false);
    assert!(s["retired_at"].is_string());
    assert!(
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == json!(null))
    );

    let again = app
        .put(&path, Auth::Basic("t", &key), &json!({"active": false}))
        .await;
    assert_eq!(
        (again.status.as_u16(), again.detail().clone()),
        (422, json!(format!("session {sid} is retired")))
    );
    let noop = app.put(&path, Auth::Basic("t", &key), &json!({})).await;
    assert_eq!(noop.status, 422, "a retired session accepts nothing");

    let report = app.deprovision().await;
    assert_eq!(report.done, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM nodes WHERE state = 'done' AND retired_at IS NOT NULL AND pool IS NULL").await, 2);
}

async fn session_updates_check_existence_and_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, akey) = app.tenant("alice", None).await;
    let (_, bkey) = app.tenant("bob", None).await;
    let sid = (app
        .request_session(Auth::Basic("alice", &akey), "pool-a", 1)
        .await)
        .session_id();
    // `docs/deviations.md` D#3: 404 with or without expires_at
    for body in [json!({"active": false}), json!({"expires_at": "+1h"})] {
        let a = app
            .put("/api/v1/sessions/999", Auth::Basic("alice", &akey), &body)
            .await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (404, &json!("Not Found")),
            "{body}"
        );
    }
    let a = app
        .put(
            &format!("/api/v1/sessions/{sid}"),
            Auth::Basic("bob", &bkey),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(a.status, 403);
    let a = app
        .put(
            &format!("/api/v1/sessions/{sid}"),
            Auth::Basic("alice", &akey),
            &json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{{}} is a no-op");
    assert_eq!(a.body["session"]["active"], true);
    let a = app
        .put(
            &format!("/api/v1/sessions/{sid}"),
            app.admin_auth(),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(a.status, 200, "admins may retire any session");
}

async fn extending_is_clamped(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let auth = Auth::Basic("t", &key);
    let created = app.request_session(auth, "pool-a", 1).await;
    let sid = created.session_id();
    let created_at = ts(&created.body["session"]["created_at"]);
    let path = format!("/api/v1/sessions/{sid}");
    let expiry = |a: &Answer| ts(&a.body["session"]["expires_at"]) - created_at;

    let a = app.put(&path, auth, &json!({"expires_at": "+1h"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(expiry(&a), TimeDelta::hours(7));
    let a = app.put(&path, auth, &json!({"expires_at": "+1d"})).await;
    assert_eq!(
        expiry(&a),
        TimeDelta::hours(12),
        "clamped to the maximum lifetime"
    );
    let a = app.put(&path, auth, &json!({"expires_at": "-2d"})).await;
    assert_eq!(expiry(&a), TimeDelta::zero(), "never before created_at");
    let a = app
        .put(&path, app.admin_auth(), &json!({"expires_at": "+5d"}))
        .await;
    assert_eq!(expiry(&a), TimeDelta::days(5), "admins are not clamped");

    // absolute times: an offset is converted (`docs/deviations.md` D#5)
    let at = (created_at + TimeDelta::hours(3))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let a = app
        .put(&path, auth, &json!({"expires_at": at.to_rfc3339()}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(expiry(&a), TimeDelta::hours(3));

    for bad in [
        json!({"expires_at": 3600}),
        json!({"expires_at": "1h"}),
        json!({"expires_at": "soon"}),
        json!({"active": "perhaps"}),
    ] {
        let a = app.put(&path, auth, &bad).await;
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
        assert!(a.detail().is_array());
    }
}

async fn failed_nodes_are_held_and_never_reused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let auth = Auth::Basic("t", &key);
    let sid = (app.request_session(auth, "pool-a", 1).await).session_id();
    let path = format!("/api/v1/sessions/{sid}");
    let a = app
        .put(
            &path,
            auth,
            &json!({"expires_at": "+6h", "fail_nodes": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let node = &a.body["session"]["nodes"][0];
    assert_eq!(
        node["state"], "deployed",
        "the tenant keeps the node for debugging"
    );
    assert_eq!(
        node["data"]["error"]["detail"],
        "node reported failed by tenant"
    );
    assert!(
        node["data"]["error"]["failed_at"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );

    app.put(&path, auth, &json!({"active": false})).await;
    let report = app.deprovision().await;
    assert_eq!((report.failed, report.done), (1, 0));
    let id = node["id"].as_i64().unwrap();
    let n = app.get(&format!("/api/v1/nodes/{id}"), auth).await;
    assert_eq!(n.body["node"]["state"], "failed");
}

const TWO_MACHINES: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    metal:
      mechanism: {type: noop}
      reuse-nodes: {kind: metal}
      fill-level: 2
"#;

async fn the_least_used_ready_node_goes_first(backend: Backend) {
    let app = crate::helpers::spawn_app_unfilled(backend, TWO_MACHINES).await;
    let auth = app.admin_auth();
    for i in 1..=2 {
        let body = json!({"hostname": format!("m{i}.lab.test"), "ipaddr": format!("192.0.2.{i}"), "data": {"kind": "metal"}});
        assert_eq!(app.post("/api/v1/nodes", auth, &body).await.status, 201);
    }
    app.fill().await;
    let node_of = |a: &Answer| a.body["session"]["nodes"][0]["id"].as_i64().unwrap();
    // equally used: the lower id goes first; then it comes back with one use more
    let first = app.request_session(auth, "metal", 1).await;
    assert_eq!(node_of(&first), 1);
    app.retire(auth, first.session_id()).await;
    assert_eq!(app.deprovision().await.returned, 1);
    app.fill().await;
    assert_eq!(app.levels("metal").await["ready"], 2);
    // now node 2 (never used) goes before node 1 (used once), against id order
    let second = app.request_session(auth, "metal", 1).await;
    assert_eq!(node_of(&second), 2, "{}", second.text);
    let third = app.request_session(auth, "metal", 1).await;
    assert_eq!(node_of(&third), 1);
}

both_backends!(
    a_session_gets_ready_nodes,
    a_request_gets_all_its_nodes_or_none,
    quotas_hold,
    admins_act_for_other_tenants,
    an_empty_request_is_an_empty_session,
    bad_requests_are_422_and_leave_nothing,
    sessions_are_shown_to_their_tenant_and_admins,
    retiring_releases_the_nodes,
    session_updates_check_existence_and_owner,
    extending_is_clamped,
    failed_nodes_are_held_and_never_reused,
    the_least_used_ready_node_goes_first,
);
