//! `GET /nodes`, `GET /nodes/{id}`, `POST /nodes`.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app};

async fn nodes_list_live_nodes_with_used_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.get("/api/v1/nodes", Auth::None).await;
    assert_eq!(a.status, 200);
    let nodes = a.body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7, "5 in pool-a, 2 in pool-b");
    let keys: Vec<&str> = nodes[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "retired_at",
            "active",
            "created_at",
            "hostname",
            "ipaddr",
            "comment",
            "pool",
            "reusable",
            "data",
            "id",
            "state",
            "used_count"
        ]
    );
    assert!(
        nodes
            .iter()
            .all(|n| n["state"] == "ready" && n["used_count"] == 0)
    );
    let ids: Vec<i64> = nodes.iter().map(|n| n["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending id order");
    let n = &nodes[0];
    assert_eq!(n["data"]["provision"]["hostname"], n["hostname"]);
    assert!(
        n["ipaddr"].as_str().unwrap().starts_with("127."),
        "noop nodes live on loopback"
    );
}

async fn a_node_is_shown_to_any_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app.get("/api/v1/nodes/1", Auth::Basic("t", &key)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["action"], "get");
    assert_eq!(a.body["node"]["id"], 1);
    let a = app.get("/api/v1/nodes/999", Auth::Basic("t", &key)).await;
    assert_eq!((a.status.as_u16(), a.detail()), (404, &json!("Not Found")));
    let a = app.get("/api/v1/nodes/abc", Auth::Basic("t", &key)).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.detail()[0]["type"], "int_parsing");
    assert_eq!(a.detail()[0]["loc"], json!(["path", "id"]));
}

async fn admins_register_nodes(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"hostname": "metal-1.example.test", "ipaddr": "192.0.2.10", "data": {"architecture": "aarch64"}});
    let a = app.post("/api/v1/nodes", app.admin_auth(), &body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let node = &a.body["node"];
    assert_eq!(a.body["action"], "post");
    assert_eq!(node["state"], "unused");
    assert_eq!(node["reusable"], true);
    assert_eq!(node["pool"], json!(null));
    assert_eq!(node["data"], json!({"architecture": "aarch64"}));

    let dup = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"hostname": "metal-1.example.test", "ipaddr": "192.0.2.11"}),
        )
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.detail()),
        (
            409,
            &json!("node with hostname 'metal-1.example.test' already exists")
        )
    );
    let dup = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"hostname": "metal-2.example.test", "ipaddr": "192.0.2.10"}),
        )
        .await;
    assert_eq!(
        (dup.status.as_u16(), dup.detail()),
        (409, &json!("node with ipaddr '192.0.2.10' already exists"))
    );

    let bad = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"hostname": "x", "ipaddr": "not-an-ip", "reusable": "maybe"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let types: Vec<&str> = bad
        .detail()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ip_any_address", "bool_parsing"]);
    let bad = app
        .post(
            "/api/v1/nodes",
            app.admin_auth(),
            &json!({"ipaddr": "192.0.2.99"}),
        )
        .await;
    assert_eq!(bad.detail()[0]["loc"], json!(["body", "hostname"]));

    let (_, key) = app.tenant("t", None).await;
    let a = app
        .post("/api/v1/nodes", Auth::Basic("t", &key), &body)
        .await;
    assert_eq!((a.status.as_u16(), a.detail()), (403, &json!("Forbidden")));
}

both_backends!(
    nodes_list_live_nodes_with_used_count,
    a_node_is_shown_to_any_tenant,
    admins_register_nodes,
);
