//! `GET /metrics`: valid Prometheus text, and counters that move as requests come.

use prometheus_parse::{LineInfo, Scrape, Value as Sample};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, TestApp, spawn_app};

/// Scrapes `/metrics`, checking that every line is Prometheus text.
async fn scrape(app: &TestApp) -> Scrape {
    let a = app.get("/metrics", Auth::None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for line in a.text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "not Prometheus text: {line:?}"
        );
    }
    Scrape::parse(a.text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The value of the sample `name` whose labels include `labels` (0 when absent). For a
/// histogram, its count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => f64::NAN,
        })
        .sum()
}

async fn metrics_follow_what_happens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", Some(3)).await;
    let t = Auth::Basic("t", &key);

    let first = scrape(&app).await;
    assert_eq!(
        value(
            &first,
            "duffy_nodes",
            &[("pool", "pool-a"), ("state", "ready")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &first,
            "duffy_nodes",
            &[("pool", "pool-a"), ("state", "deployed")]
        ),
        0.0
    );
    // The initial fill: one provisioning run per node (run-parallel), all fine.
    assert_eq!(
        value(
            &first,
            "duffy_mechanism_runs_total",
            &[
                ("pool", "pool-a"),
                ("phase", "provision"),
                ("outcome", "ok")
            ]
        ),
        5.0
    );
    assert_eq!(
        value(
            &first,
            "duffy_mechanism_run_seconds",
            &[("pool", "pool-a"), ("phase", "provision")]
        ),
        5.0
    );
    assert_eq!(
        value(&first, "duffy_allocations_paused", &[("scope", "*")]),
        0.0
    );

    let granted = app.request_session(t, "pool-a", 2).await;
    assert_eq!(granted.status, 201);
    assert_eq!(app.request_session(t, "pool-a", 2).await.status, 403); // quota
    assert_eq!(app.request_session(t, "pool-b", 3).await.status, 403); // quota, too
    assert_eq!(app.request_session(t, "pool-b", 1).await.status, 201);
    let (_, key2) = app.tenant("u", None).await;
    let u = Auth::Basic("u", &key2);
    assert_eq!(app.request_session(u, "pool-b", 2).await.status, 422); // 1 left
    app.put(
        "/api/v1/service",
        app.admin_auth(),
        &json!({"paused": true}),
    )
    .await;
    assert_eq!(app.request_session(u, "pool-a", 1).await.status, 503);
    let second = scrape(&app).await;
    let outcome = |s: &Scrape, o: &str| value(s, "duffy_session_requests_total", &[("outcome", o)]);
    assert_eq!(outcome(&second, "granted"), 2.0);
    assert_eq!(outcome(&second, "quota"), 2.0);
    assert_eq!(outcome(&second, "cant_reserve"), 1.0);
    assert_eq!(outcome(&second, "paused"), 1.0);
    assert_eq!(value(&second, "duffy_handout_seconds", &[]), 2.0);
    assert_eq!(
        value(&second, "duffy_sessions_active", &[("tenant", "t")]),
        2.0
    );
    assert_eq!(
        value(&second, "duffy_sessions_active", &[("tenant", "u")]),
        0.0
    );
    assert_eq!(
        value(
            &second,
            "duffy_nodes",
            &[("pool", "pool-a"), ("state", "deployed")]
        ),
        2.0
    );
    assert_eq!(
        value(&second, "duffy_allocations_paused", &[("scope", "*")]),
        1.0
    );
    let posts = |s: &Scrape, status: &str| {
        value(
            s,
            "duffy_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/v1/sessions"),
                ("status", status),
            ],
        )
    };
    assert_eq!(posts(&second, "201"), 2.0);
    assert_eq!(posts(&second, "403"), 2.0);
    assert_eq!(posts(&second, "503"), 1.0);
    assert_eq!(
        value(
            &second,
            "duffy_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ),
        1.0,
        "the first scrape is counted once it is answered"
    );

    // Retiring and deprovisioning move the runs and the levels.
    app.put(
        "/api/v1/service",
        app.admin_auth(),
        &json!({"paused": false}),
    )
    .await;
    assert_eq!(app.retire(t, granted.session_id()).await.status, 200);
    assert_eq!(app.deprovision().await.done, 2);
    let third = scrape(&app).await;
    assert_eq!(
        value(
            &third,
            "duffy_mechanism_runs_total",
            &[
                ("pool", "pool-a"),
                ("phase", "deprovision"),
                ("outcome", "ok")
            ]
        ),
        2.0
    );
    assert_eq!(
        value(&third, "duffy_sessions_active", &[("tenant", "t")]),
        1.0
    );
    assert_eq!(
        value(
            &third,
            "duffy_nodes",
            &[("pool", "pool-a"), ("state", "deployed")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &third,
            "duffy_http_requests_total",
            &[("route", "/api/v1/sessions/:id"), ("method", "PUT")]
        ),
        1.0
    );
}

async fn v2_calls_are_counted_by_endpoint_and_outcome(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    // No poolmap in the default configuration: every /Node/get finds no pool.
    for _ in 0..3 {
        app.get(&format!("/Node/get?key={key}"), Auth::None).await;
    }
    app.get("/Node/get", Auth::None).await;
    app.get("/Inventory", Auth::None).await;
    app.get("/Help", Auth::None).await;
    let s = scrape(&app).await;
    let calls = |endpoint: &str, outcome: &str| {
        value(
            &s,
            "duffy_v2_calls_total",
            &[("endpoint", endpoint), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("/Node/get", "allocation_failed"), 3.0);
    assert_eq!(calls("/Node/get", "invalid_key"), 1.0);
    assert_eq!(calls("/Inventory", "ok"), 1.0);
    assert_eq!(calls("/Help", "ok"), 1.0);
    // The unkeyed inventory asks the v3 API for nodes: an HTTP request like any other.
    assert_eq!(
        value(
            &s,
            "duffy_http_requests_total",
            &[("route", "/api/v1/nodes")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "duffy_http_requests_total", &[("route", "/Node/get")]),
        4.0
    );
}

both_backends!(
    metrics_follow_what_happens,
    v2_calls_are_counted_by_endpoint_and_outcome,
);
