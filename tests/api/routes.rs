//! Cross-cutting HTTP behaviour: unknown routes, wrong methods, request ids, body limits.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app};

async fn unknown_routes_and_methods_use_the_error_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/api/v1/nope",
        "/api/v1",
        "/index.html",
        "/api/v2/sessions",
        "/api/v1/sessions/1/nodes",
    ] {
        let a = app.get(path, Auth::None).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.body, json!({"detail": "Not Found"}), "{path}");
    }
    for (method, path) in [
        (Method::DELETE, "/api/v1/sessions"),
        (Method::PUT, "/api/v1/sessions"),
        (Method::POST, "/api/v1/sessions/1"),
        (Method::DELETE, "/api/v1/tenants/1"),
        (Method::POST, "/api/v1/pools"),
        (Method::DELETE, "/api/v1/nodes/1"),
        (Method::POST, "/api/v1/service"),
        (Method::POST, "/api/v1/overtime"),
    ] {
        let a = app.request(method.clone(), path, Auth::None, None).await;
        assert_eq!(a.status, 405, "{method} {path}");
        assert_eq!(a.body, json!({"detail": "Method Not Allowed"}));
    }
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let answers = [
        app.get("/api/v1/pools", Auth::None).await,
        app.get("/nope", Auth::None).await,
        app.get("/api/v1/sessions/1", Auth::None).await,
        app.post("/api/v1/sessions", app.admin_auth(), &json!({}))
            .await,
        app.request(Method::DELETE, "/api/v1/sessions", Auth::None, None)
            .await,
    ];
    let mut seen = std::collections::HashSet::new();
    for a in answers {
        let id = a
            .headers
            .get("x-request-id")
            .expect("x-request-id")
            .to_str()
            .unwrap()
            .to_owned();
        let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert!(seen.insert(id), "request ids are unique");
    }
}

async fn oversized_bodies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = format!(
        "{{\"nodes_specs\": [], \"x\": \"{}\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let a = app
        .request(
            Method::POST,
            "/api/v1/sessions",
            app.admin_auth(),
            Some(&big),
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.body, json!({"detail": "Request Entity Too Large"}));
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
}

both_backends!(
    unknown_routes_and_methods_use_the_error_envelope,
    every_response_carries_a_request_id,
    oversized_bodies_are_refused,
);
