//! `GET /pools` and `GET /pools/{name}`.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app};

async fn pools_list_concrete_pools_with_a_fill_level(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.get("/api/v1/pools", Auth::None).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.text,
        r#"{"action":"get","pools":[{"name":"pool-a","fill-level":5},{"name":"pool-b","fill-level":2}]}"#
    );
}

async fn a_pool_shows_its_levels(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    assert_eq!(
        app.request_session(Auth::Basic("t", &key), "pool-a", 2)
            .await
            .status,
        201
    );
    let a = app.get("/api/v1/pools/pool-a", Auth::None).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.text,
        r#"{"action":"get","pool":{"name":"pool-a","fill-level":5,"levels":{"provisioning":0,"ready":3,"contextualizing":0,"deployed":2,"deprovisioning":0}}}"#
    );
}

async fn unknown_and_unfilled_pools_are_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.get("/api/v1/pools/nope", Auth::None).await;
    assert_eq!(
        (a.status.as_u16(), a.body.clone()),
        (404, json!({"detail": "Not Found"}))
    );
    // abstract pools and pools without a fill level are found but cannot report levels
    for name in ["noop", "unfilled"] {
        let a = app.get(&format!("/api/v1/pools/{name}"), Auth::None).await;
        assert_eq!(
            (a.status.as_u16(), a.body.clone()),
            (422, json!({"detail": "Unprocessable Entity"})),
            "{name}"
        );
    }
}

both_backends!(
    pools_list_concrete_pools_with_a_fill_level,
    a_pool_shows_its_levels,
    unknown_and_unfilled_pools_are_errors,
);
