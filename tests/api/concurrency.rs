//! Parallel requests: no node in two sessions, quotas hold (`docs/deviations.md` D#13).

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app_config};

const FIVE_READY: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 100}
nodepools:
  concrete:
    small:
      mechanism: {type: noop}
      fill-level: 5
    big:
      mechanism: {type: noop}
      fill-level: 30
"#;

async fn fifty_requests_for_five_nodes(backend: Backend) {
    let app = spawn_app_config(backend, FIVE_READY).await;
    let (_, key) = app.tenant("t", None).await;
    let requests = (0..50).map(|_| app.request_session(Auth::Basic("t", &key), "small", 1));
    let answers = join_all(requests).await;

    let granted: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 422).collect();
    assert_eq!(granted.len(), 5, "as many sessions as ready nodes");
    assert_eq!(
        refused.len(),
        45,
        "everything else is refused: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        refused
            .iter()
            .all(|a| a.detail() == &json!("can't reserve nodes: quantity=1 pool='small'"))
    );

    let mut nodes = HashSet::new();
    for a in &granted {
        for n in a.body["session"]["nodes"].as_array().unwrap() {
            assert!(
                nodes.insert(n["id"].as_i64().unwrap()),
                "node {} handed out twice",
                n["id"]
            );
        }
    }
    assert_eq!(nodes.len(), 5);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        5,
        "refused requests left no session"
    );
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT node_id) FROM sessions_nodes")
            .await,
        5
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions_nodes").await, 5);
}

async fn a_quota_holds_under_parallel_requests(backend: Backend) {
    let app = spawn_app_config(backend, FIVE_READY).await;
    let (_, key) = app.tenant("q", Some(4)).await;
    let requests = (0..20).map(|i| app.request_session(Auth::Basic("q", &key), "big", 1 + i % 2));
    let answers = join_all(requests).await;

    let held: i64 = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.body["session"]["nodes"].as_array().unwrap().len() as i64)
        .sum();
    // Ten requests ask for one node: whatever the order, the last free place is taken.
    assert_eq!(held, 4, "the tenant holds {held} nodes with a quota of 4");
    assert!(
        answers.iter().all(|a| a.status == 201 || a.status == 403),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let in_db = app
        .count("SELECT COUNT(*) FROM sessions_nodes sn JOIN sessions s ON s.id = sn.session_id WHERE s.retired_at IS NULL")
        .await;
    assert_eq!(in_db, held);
}

async fn parallel_retires_and_requests_stay_consistent(backend: Backend) {
    let app = spawn_app_config(backend, FIVE_READY).await;
    let (_, key) = app.tenant("t", None).await;
    let auth = Auth::Basic("t", &key);
    let first = join_all((0..10).map(|_| app.request_session(auth, "big", 2))).await;
    let ids: Vec<i64> = first
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.session_id())
        .collect();
    assert_eq!(ids.len(), 10);
    // retire each twice in parallel and ask for more at the same time
    let retires = ids.iter().flat_map(|id| {
        let path = format!("/api/v1/sessions/{id}");
        [path.clone(), path]
    });
    let app = &app;
    let retire_answers = join_all(
        retires.map(|p| async move { app.put(&p, auth, &json!({"active": false})).await }),
    )
    .await;
    let ok = retire_answers.iter().filter(|a| a.status == 200).count();
    let twice = retire_answers.iter().filter(|a| a.status == 422).count();
    assert_eq!(
        (ok, twice),
        (10, 10),
        "each session is retired exactly once"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL")
            .await,
        0
    );
    let report = app.deprovision().await;
    assert_eq!(report.done, 20);
}

/// Requests that share a hand-out transaction still get all their nodes or none: two
/// tenants with quotas ask in parallel for nodes of two pools at once, more than there are.
async fn mixed_parallel_requests_get_all_or_nothing(backend: Backend) {
    let app = spawn_app_config(backend, FIVE_READY).await;
    let (_, key_a) = app.tenant("a", Some(9)).await;
    let (_, key_b) = app.tenant("b", None).await;
    let app = &app;
    // Four requests of each kind: a asks for 3 big nodes (3 fit its quota); b asks for
    // 2 big and 2 small (the 5 small nodes serve two of them) or for 2 big only.
    let requests = (0..12).map(|i| {
        let (auth, specs) = match i % 3 {
            0 => (
                Auth::Basic("a", &key_a),
                json!([{"pool": "big", "quantity": 3}]),
            ),
            1 => (
                Auth::Basic("b", &key_b),
                json!([{"pool": "big", "quantity": 2}, {"pool": "small", "quantity": 2}]),
            ),
            _ => (
                Auth::Basic("b", &key_b),
                json!([{"pool": "big", "quantity": 2}]),
            ),
        };
        let wanted: i64 = specs
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["quantity"].as_i64().unwrap())
            .sum();
        async move {
            let answer = app
                .post("/api/v1/sessions", auth, &json!({"nodes_specs": specs}))
                .await;
            (i, wanted, answer)
        }
    });
    let answers = join_all(requests).await;

    let mut nodes = HashSet::new();
    let (mut of_a, mut small_taken, mut granted) = (0, 0, 0);
    for (i, wanted, answer) in &answers {
        match answer.status.as_u16() {
            201 => {
                granted += 1;
                let got = answer.body["session"]["nodes"].as_array().unwrap();
                assert_eq!(got.len() as i64, *wanted, "request {i} got {got:?}");
                for n in got {
                    assert!(nodes.insert(n["id"].as_i64().unwrap()), "node {n} twice");
                    small_taken += i64::from(n["pool"] == "small");
                }
                if i % 3 == 0 {
                    of_a += got.len() as i64;
                }
            }
            403 => assert_eq!(i % 3, 0, "only tenant a has a quota: {:?}", answer.body),
            422 => assert!(
                answer
                    .detail()
                    .as_str()
                    .unwrap()
                    .starts_with("can't reserve nodes"),
                "{:?}",
                answer.body
            ),
            other => panic!("request {i}: {other} {:?}", answer.body),
        }
    }
    assert_eq!(of_a, 9, "tenant a holds {of_a} nodes with a quota of 9");
    assert_eq!(small_taken, 4, "two requests got two small nodes each");
    assert_eq!(granted, 3 + 2 + 4, "every request that fits was granted");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        granted,
        "refused requests left no session"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions_nodes").await,
        nodes.len() as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'deployed'")
            .await,
        nodes.len() as i64,
        "no node was claimed for a refused request"
    );
}

both_backends!(
    fifty_requests_for_five_nodes,
    a_quota_holds_under_parallel_requests,
    parallel_retires_and_requests_stay_consistent,
    mixed_parallel_requests_get_all_or_nothing,
);
