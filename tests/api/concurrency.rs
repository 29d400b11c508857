//! Parallel requests: no node in two sessions, quotas hold (D#13).

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

both_backends!(
    fifty_requests_for_five_nodes,
    a_quota_holds_under_parallel_requests,
    parallel_retires_and_requests_stay_consistent,
);
