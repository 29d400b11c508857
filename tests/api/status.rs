//! `GET /`: the status page, as HTML (the browser tests look at it rendered).

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app_config};

const CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    virt: {mechanism: {type: noop}, fill-level: 4}
    broken: {mechanism: {type: noop, noop: {fail-rate: 1.0}}, fill-level: 2}
"#;

async fn the_status_page_shows_pools_sessions_and_trouble(backend: Backend) {
    let app = spawn_app_config(backend, CONFIG).await;
    let (_, key) = app.tenant("ci-job", None).await;
    assert_eq!(
        app.request_session(Auth::Basic("ci-job", &key), "virt", 1)
            .await
            .status,
        201
    );
    let id = app
        .take_down_and_pause(
            "virt",
            "<script>alert(1)</script> & more",
            "hypervisor upgrade",
        )
        .await;

    let page = app.get("/", Auth::None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let html = &page.text;
    assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
    // No external assets: no src, no stylesheet or script from elsewhere.
    assert!(!html.contains("src="), "{html}");
    assert!(
        !html.contains("<script"),
        "user text must be escaped: {html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; more"),
        "{html}"
    );
    // Each pool has a bar, its segments carry their counts.
    assert!(
        html.contains(r#"<tr class="pool" data-pool="virt">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<tr class="pool" data-pool="broken">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"data-state="ready" data-count="2" style="width: 50.0%""#),
        "{html}"
    );
    assert!(
        html.contains(r#"data-state="deployed" data-count="1" style="width: 25.0%""#),
        "{html}"
    );
    assert!(html.contains("hypervisor upgrade"));
    assert!(html.contains(r#"class="badge paused""#));
    assert!(
        html.contains("<td>ci-job</td><td class=\"num\">1</td>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"<tr data-node="{id}">"#)),
        "{html}"
    );
    // The broken pool's provisioning failed at start: its error is listed.
    assert!(html.contains("<td>broken</td><td>provision</td>"), "{html}");
}

async fn the_status_page_asks_for_credentials_without_anonymous_reads(backend: Backend) {
    let config = format!("app: {{anonymous-read: false}}\n{CONFIG}");
    let app = spawn_app_config(backend, &config).await;
    let a = app.get("/", Auth::None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.headers["www-authenticate"], "Basic realm=\"duffy\"");
    let a = app.get("/", app.admin_auth()).await;
    assert_eq!(a.status, 200);
    let a = app.get("/metrics", Auth::None).await;
    assert_eq!(a.status, 401);
}

both_backends!(
    the_status_page_shows_pools_sessions_and_trouble,
    the_status_page_asks_for_credentials_without_anonymous_reads,
);
