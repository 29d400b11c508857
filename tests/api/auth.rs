//! Authentication (`docs/v3-api.md` §1, `docs/deviations.md` D#1, D#2, D#12).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app, spawn_app_config};

async fn auth_failures_have_the_originals_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("alice", None).await;

    let a = app.get("/api/v1/tenants", Auth::None).await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (401, &json!("Not authenticated"))
    );
    assert_eq!(a.headers["www-authenticate"], "Basic realm=\"duffy\"");

    let a = app.get("/api/v1/tenants", Auth::Header("Digest abc")).await;
    assert_eq!(
        (a.status.as_u16(), a.detail()),
        (401, &json!("Not authenticated"))
    );

    for bad in [
        "Basic !!!".to_owned(),
        format!("Basic {}", STANDARD.encode("no-colon")),
    ] {
        let a = app.get("/api/v1/tenants", Auth::Header(&bad)).await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (401, &json!("Invalid authentication credentials"))
        );
        assert_eq!(a.headers["www-authenticate"], "Basic realm=\"duffy\"");
    }

    for auth in [
        Auth::Basic("nobody", &key),
        Auth::Basic("alice", "wrong"),
        Auth::Bearer("wrong"),
    ] {
        let a = app.get("/api/v1/tenants", auth).await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (401, &json!("Unauthorized"))
        );
        assert!(a.headers.get("www-authenticate").is_none());
    }

    let a = app.get("/api/v1/tenants", Auth::Basic("alice", &key)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["tenants"][0]["name"], "alice");
}

async fn bearer_keys_find_their_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("bob", None).await;
    let a = app.get("/api/v1/tenants", Auth::Bearer(&key)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["tenants"][0]["name"], "bob");
    let a = app.request_session(Auth::Bearer(&key), "pool-a", 1).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["session"]["tenant"]["name"], "bob");
}

async fn retired_tenants_are_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let (tenant, key) = app.tenant("carol", None).await;
    let a = app
        .put(
            &format!("/api/v1/tenants/{}", tenant.id),
            app.admin_auth(),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    for auth in [Auth::Basic("carol", &key), Auth::Bearer(&key)] {
        let a = app.get("/api/v1/tenants", auth).await;
        assert_eq!((a.status.as_u16(), a.detail()), (403, &json!("Forbidden")));
    }
}

async fn bcrypt_keys_from_the_original_still_work(backend: Backend) {
    let app = spawn_app(backend).await;
    let (tenant, _) = app.tenant("legacy", None).await;
    // A tenant imported from the original Duffy keeps its bcrypt hash.
    let key = "a8b9899d-b128-59a1-aa86-754920b7f5ed";
    let mut imported = tenant.clone();
    imported.api_key = bcrypt::hash(key, 4).unwrap();
    let mut tx = app.engine.db().begin().await.unwrap();
    duffy::store::tenants::save(&mut tx, &imported)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for _ in 0..2 {
        // the second check is served from the cache
        let a = app.get("/api/v1/tenants", Auth::Basic("legacy", key)).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Basic("legacy", "wrong"))
            .await
            .status,
        401
    );
    // bcrypt keys cannot be found by the key alone
    assert_eq!(
        app.get("/api/v1/tenants", Auth::Bearer(key)).await.status,
        401
    );
}

async fn auth_errors_win_over_validation_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/api/v1/sessions", "/api/v1/tenants", "/api/v1/nodes"] {
        let a = app
            .request(reqwest::Method::POST, path, Auth::None, Some("{not json"))
            .await;
        assert_eq!(a.status, 401, "{path}");
    }
    let a = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/sessions/abc",
            Auth::Basic("x", "y"),
            Some("[]"),
        )
        .await;
    assert_eq!(a.status, 401);
}

async fn anonymous_reads_follow_the_switch(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("dave", None).await;
    assert_eq!(
        app.request_session(Auth::Basic("dave", &key), "pool-a", 1)
            .await
            .status,
        201
    );

    // on (the default): pools, nodes and all active sessions without credentials
    assert_eq!(app.get("/api/v1/pools", Auth::None).await.status, 200);
    assert_eq!(
        app.get("/api/v1/pools/pool-a", Auth::None).await.status,
        200
    );
    assert_eq!(app.get("/api/v1/nodes", Auth::None).await.status, 200);
    // the header is not even looked at on pools and nodes
    assert_eq!(
        app.get("/api/v1/pools", Auth::Basic("x", "y")).await.status,
        200
    );
    let a = app.get("/api/v1/sessions", Auth::None).await;
    assert_eq!(a.status, 200);
    let sessions = a.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    // anonymous readers see only the tenant's id and name
    assert_eq!(
        sessions[0]["tenant"],
        json!({"id": sessions[0]["tenant"]["id"], "name": "dave"})
    );
    // an unknown scheme on the optional-auth endpoint is anonymous, as Starlette treats it
    let a = app
        .get("/api/v1/sessions", Auth::Header("Digest abc"))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body["sessions"][0]["tenant"].as_object().unwrap().len(),
        2
    );
    // a wrong header on the optional-auth endpoint still fails
    assert_eq!(
        app.get("/api/v1/sessions", Auth::Basic("dave", "wrong"))
            .await
            .status,
        401
    );
    // GET /nodes/{id} always needs auth
    assert_eq!(app.get("/api/v1/nodes/1", Auth::None).await.status, 401);

    // off: everything needs a tenant
    let config = format!(
        "app:\n  anonymous-read: false\n{}",
        crate::helpers::DEFAULT_CONFIG
    );
    let app = spawn_app_config(backend, &config).await;
    for path in [
        "/api/v1/pools",
        "/api/v1/pools/pool-a",
        "/api/v1/nodes",
        "/api/v1/sessions",
    ] {
        let a = app.get(path, Auth::None).await;
        assert_eq!(
            (a.status.as_u16(), a.detail()),
            (401, &json!("Not authenticated")),
            "{path}"
        );
        assert_eq!(app.get(path, app.admin_auth()).await.status, 200, "{path}");
    }
}

both_backends!(
    auth_failures_have_the_originals_answers,
    bearer_keys_find_their_tenant,
    retired_tenants_are_forbidden,
    bcrypt_keys_from_the_original_still_work,
    auth_errors_win_over_validation_errors,
    anonymous_reads_follow_the_switch,
);
