//! `/tenants` (`docs/v3-api.md` §5–§6, `docs/deviations.md` D#11).

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app};

const TENANT_KEYS: [&str; 13] = [
    "retired_at",
    "active",
    "created_at",
    "name",
    "is_admin",
    "ssh_key",
    "node_quota",
    "session_lifetime",
    "session_lifetime_max",
    "id",
    "effective_node_quota",
    "effective_session_lifetime",
    "effective_session_lifetime_max",
];

async fn admins_create_tenants(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"name": "ci-project", "ssh_key": "ssh-ed25519 AAAA x\nssh-rsa BBBB y", "node_quota": 5, "session_lifetime": "2h", "extra": 1});
    let a = app.post("/api/v1/tenants", app.admin_auth(), &body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["action"], "post");
    let t = &a.body["tenant"];
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = TENANT_KEYS.to_vec();
    expected.push("api_key");
    assert_eq!(keys, expected);
    assert_eq!(
        t["ssh_key"], "ssh-ed25519 AAAA x\nssh-rsa BBBB y",
        "the create answer shows the key"
    );
    assert_eq!(t["node_quota"], 5);
    assert_eq!(t["effective_node_quota"], 5);
    assert_eq!(t["session_lifetime"], 7200);
    assert_eq!(t["effective_session_lifetime"], 7200.0);
    assert_eq!(t["session_lifetime_max"], json!(null));
    assert_eq!(t["effective_session_lifetime_max"], 43200.0);
    let key = t["api_key"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(key).unwrap().get_version_num(), 4);

    // the new key works, and later answers mask the SSH key
    let me = app
        .get("/api/v1/tenants", Auth::Basic("ci-project", key))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["tenants"][0]["ssh_key"], "**********");
    assert!(me.body["tenants"][0].get("api_key").is_none());

    let dup = app.post("/api/v1/tenants", app.admin_auth(), &body).await;
    assert_eq!(
        (dup.status.as_u16(), dup.detail()),
        (409, &json!("tenant 'ci-project' already exists"))
    );
}

async fn tenant_bodies_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app
        .post(
            "/api/v1/tenants",
            app.admin_auth(),
            &json!({"name": "x", "node_quota": 0}),
        )
        .await;
    assert_eq!(a.status, 422);
    let errors = a.detail().as_array().unwrap();
    assert_eq!(errors[0]["type"], "missing");
    assert_eq!(errors[0]["loc"], json!(["body", "ssh_key"]));
    assert_eq!(errors[0]["msg"], "Field required");
    assert_eq!(errors[1]["type"], "greater_than");
    assert_eq!(errors[1]["loc"], json!(["body", "node_quota"]));
    assert_eq!(errors[1]["ctx"], json!({"gt": 0}));

    let a = app
        .post(
            "/api/v1/tenants",
            app.admin_auth(),
            &json!({"name": "x", "ssh_key": "k", "session_lifetime": "-1h"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.detail()[0]["type"], "value_error");
    let a = app
        .request(
            reqwest::Method::POST,
            "/api/v1/tenants",
            app.admin_auth(),
            Some("{\"name\": "),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.detail()[0]["type"], "json_invalid");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tenants").await,
        1,
        "nothing was created"
    );

    let (_, key) = app.tenant("plain", None).await;
    let a = app
        .post(
            "/api/v1/tenants",
            Auth::Basic("plain", &key),
            &json!({"name": "y", "ssh_key": "k"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.detail()), (403, &json!("Forbidden")));
}

async fn tenants_see_themselves_and_admins_see_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, akey) = app.tenant("alice", None).await;
    let (bob, _) = app.tenant("bob", None).await;

    let a = app
        .get("/api/v1/tenants", Auth::Basic("alice", &akey))
        .await;
    let names: Vec<&str> = a.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice"]);
    let a = app.get("/api/v1/tenants", app.admin_auth()).await;
    let names: Vec<&str> = a.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice", "bob"]);

    assert_eq!(
        app.get(
            &format!("/api/v1/tenants/{}", alice.id),
            Auth::Basic("alice", &akey)
        )
        .await
        .status,
        200
    );
    // another tenant's id is 403 whether or not it exists (`docs/deviations.md` D#11)
    for id in [bob.id, 999] {
        let a = app
            .get(
                &format!("/api/v1/tenants/{id}"),
                Auth::Basic("alice", &akey),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (403, &json!("Forbidden")),
            "{id}"
        );
    }
    let a = app.get("/api/v1/tenants/999", app.admin_auth()).await;
    assert_eq!((a.status.as_u16(), a.detail()), (404, &json!("Not Found")));
    let a = app
        .get(&format!("/api/v1/tenants/{}", bob.id), app.admin_auth())
        .await;
    assert_eq!(a.body["tenant"]["name"], "bob");
}

async fn tenant_updates_show_the_key_as_documented(backend: Backend) {
    let app = spawn_app(backend).await;
    let (t, old_key) = app.tenant("t", None).await;
    let path = format!("/api/v1/tenants/{}", t.id);

    let a = app
        .put(&path, app.admin_auth(), &json!({"api_key": "reset"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["action"], "put");
    let new_key = a.body["tenant"]["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Basic("t", &old_key))
            .await
            .status,
        401,
        "the old key is dead at once"
    );
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Basic("t", &new_key))
            .await
            .status,
        200
    );

    let a = app
        .put(
            &path,
            app.admin_auth(),
            &json!({"ssh_key": "ssh-ed25519 CCCC", "node_quota": 3, "session_lifetime_max": "1d"}),
        )
        .await;
    assert_eq!(a.body["tenant"]["api_key"], "**********");
    assert_eq!(a.body["tenant"]["node_quota"], 3);
    assert_eq!(a.body["tenant"]["session_lifetime_max"], 86400);
    let a = app
        .put(&path, app.admin_auth(), &json!({"node_quota": null}))
        .await;
    assert_eq!(a.body["tenant"]["node_quota"], json!(null));
    assert_eq!(a.body["tenant"]["effective_node_quota"], 10);

    let explicit = "00000000-0000-4000-8000-000000000001";
    let a = app
        .put(&path, app.admin_auth(), &json!({"api_key": explicit}))
        .await;
    assert_eq!(a.body["tenant"]["api_key"], "**********");
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Basic("t", explicit))
            .await
            .status,
        200
    );

    let a = app.put(&path, app.admin_auth(), &json!({})).await;
    assert_eq!(a.status, 422);
    let types: Vec<&str> = a
        .detail()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["missing", "value_error"]);
}

async fn retiring_a_tenant_ends_its_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (t, key) = app.tenant("t", None).await;
    let s = app
        .request_session(Auth::Basic("t", &key), "pool-a", 1)
        .await;
    assert_eq!(s.status, 201);
    let sid = s.session_id();
    let path = format!("/api/v1/tenants/{}", t.id);

    let a = app
        .put(&path, app.admin_auth(), &json!({"active": false}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["tenant"]["active"], false);
    assert_eq!(a.body["tenant"]["api_key"], json!(null));
    assert_eq!(app.expire().await, vec![sid], "its sessions expire at once");
    let report = app.deprovision().await;
    assert_eq!(report.done, 1);

    let a = app
        .put(&path, app.admin_auth(), &json!({"ssh_key": "x"}))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.detail().clone()),
        (422, json!(format!("tenant t (id={}) is retired", t.id)))
    );
    let a = app
        .put(&path, app.admin_auth(), &json!({"active": false}))
        .await;
    assert_eq!(a.status, 422, "retiring twice");
    let a = app
        .put(&path, app.admin_auth(), &json!({"active": true}))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["tenant"]["active"].clone()),
        (200, json!(true))
    );
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Basic("t", &key))
            .await
            .status,
        200
    );
}

async fn tenant_updates_check_admin_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    for path in ["/api/v1/tenants/999", "/api/v1/tenants/abc"] {
        let a = app.put(path, Auth::Basic("t", &key), &json!({})).await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (403, &json!("Forbidden")),
            "{path}"
        );
    }
    let a = app
        .put(
            "/api/v1/tenants/999",
            app.admin_auth(),
            &json!({"active": true}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.detail()), (404, &json!("Not Found")));
}

async fn a_tenant_retired_after_authentication_gets_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (stale, _) = app.tenant("t", None).await;
    app.put(
        &format!("/api/v1/tenants/{}", stale.id),
        app.admin_auth(),
        &json!({"active": false}),
    )
    .await;
    // the engine reads the tenant again under its lock: the row authenticated a moment ago
    // no longer counts
    let specs = vec![duffy::engine::sessions::NodesSpec {
        pool: "pool-a".into(),
        quantity: 1,
    }];
    let err = app
        .engine
        .request_session(&stale, None, specs.clone())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Forbidden");
    let err = app
        .engine
        .request_session(&app.admin, Some(stale.id), specs)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "tenant 't' isn't active");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn api_keys_are_unique_and_lifetimes_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, _) = app.tenant("a", None).await;
    let (b, _) = app.tenant("b", None).await;
    let key = "00000000-0000-4000-8000-00000000000a";
    assert_eq!(
        app.put(
            &format!("/api/v1/tenants/{}", a.id),
            app.admin_auth(),
            &json!({"api_key": key})
        )
        .await
        .status,
        200
    );
    let dup = app
        .put(
            &format!("/api/v1/tenants/{}", b.id),
            app.admin_auth(),
            &json!({"api_key": key}),
        )
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.detail()),
        (409, &json!("this API key is already in use"))
    );
    for lifetime in ["99999999w", "36501d"] {
        let r = app
            .put(
                &format!("/api/v1/tenants/{}", a.id),
                app.admin_auth(),
                &json!({"session_lifetime": lifetime}),
            )
            .await;
        assert_eq!(r.status, 422, "{lifetime}: {}", r.text);
    }
    let r = app
        .put(
            &format!("/api/v1/tenants/{}", a.id),
            app.admin_auth(),
            &json!({"session_lifetime_max": "36500d"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

both_backends!(
    a_tenant_retired_after_authentication_gets_nothing,
    api_keys_are_unique_and_lifetimes_bounded,
    admins_create_tenants,
    tenant_bodies_are_validated,
    tenants_see_themselves_and_admins_see_all,
    tenant_updates_show_the_key_as_documented,
    retiring_a_tenant_ends_its_sessions,
    tenant_updates_check_admin_first,
);
