//! The OpenAPI document and Swagger UI: the document is pinned by a snapshot (an accidental
//! contract change fails here), served as generated, and the UI is served from the binary.

use crate::helpers::{Auth, Backend, spawn_app};

#[test]
fn the_openapi_document_is_pinned() {
    insta::assert_json_snapshot!("openapi", duffy::api::docs::openapi());
}

#[test]
fn every_v3_route_is_documented() {
    let doc = serde_json::to_value(duffy::api::docs::openapi()).unwrap();
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /api/v1/nodes",
            "GET /api/v1/nodes/{id}",
            "GET /api/v1/overtime",
            "GET /api/v1/pools",
            "GET /api/v1/pools/{name}",
            "GET /api/v1/service",
            "GET /api/v1/sessions",
            "GET /api/v1/sessions/{id}",
            "GET /api/v1/tenants",
            "GET /api/v1/tenants/{id}",
            "POST /api/v1/nodes",
            "POST /api/v1/sessions",
            "POST /api/v1/tenants",
            "PUT /api/v1/nodes/{id}",
            "PUT /api/v1/pools/{name}",
            "PUT /api/v1/service",
            "PUT /api/v1/sessions/{id}",
            "PUT /api/v1/tenants/{id}",
        ]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_ui_are_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let generated = serde_json::to_value(duffy::api::docs::openapi()).unwrap();
    for path in ["/api/v1/openapi.json", "/openapi.json"] {
        let a = app.get(path, Auth::None).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.body, generated, "{path}");
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/docs/");
    let page = app.get("/docs/", Auth::None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("swagger-ui-bundle.js"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );
    let init = app.get("/docs/swagger-initializer.js", Auth::None).await;
    assert!(
        init.text.contains(r#""url": "/api/v1/openapi.json""#),
        "{}",
        init.text
    );
    assert!(
        init.text.contains(r#""validatorUrl": "none""#),
        "{}",
        init.text
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js", Auth::None).await;
    assert_eq!(bundle.status, 200);
    assert!(bundle.text.len() > 100_000);
    let missing = app.get("/docs/nope.js", Auth::None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, serde_json::json!({"detail": "Not Found"}));
}
