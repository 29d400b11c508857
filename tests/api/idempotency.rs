//! `Idempotency-Key` on `POST /api/v1/sessions`: a retry gets the first session back and
//! never makes a second one, also when the retries run in parallel; another request with
//! the same key is refused; a request that got no session lets its key go.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app};

/// Asks for a session of `pool` with `key`: the status, the session id, whether the
/// answer says it replays an earlier one, and the body.
async fn ask(
    app: &TestApp,
    name: &str,
    api_key: &str,
    key: &str,
    pool: &str,
    n: i64,
) -> (StatusCode, Option<i64>, bool, Value) {
    let answer = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .basic_auth(name, Some(api_key))
        .header("Idempotency-Key", key)
        .json(&json!({"nodes_specs": [{"pool": pool, "quantity": n}]}))
        .send()
        .await
        .expect("request sent");
    let status = answer.status();
    let replayed = answer
        .headers()
        .get("idempotency-replayed")
        .is_some_and(|v| v == "true");
    let body: Value = answer.json().await.unwrap_or_default();
    (status, body["session"]["id"].as_i64(), replayed, body)
}

async fn a_retry_with_the_same_key_gets_the_same_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let (status, first, replayed, _) = ask(&app, "t", &key, "k-1", "pool-a", 1).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    let (status, again, replayed, body) = ask(&app, "t", &key, "k-1", "pool-a", 1).await;
    assert_eq!(
        (status, again, replayed),
        (StatusCode::CREATED, first, true)
    );
    assert_eq!(body["session"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL")
            .await,
        1,
        "one session, not two"
    );
    // Another key is another request; the same key from another tenant too.
    let (_, other, _, _) = ask(&app, "t", &key, "k-2", "pool-a", 1).await;
    assert!(other.is_some() && other != first);
    let (_, key_u) = app.tenant("u", None).await;
    let (status, theirs, replayed, _) = ask(&app, "u", &key_u, "k-1", "pool-a", 1).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    assert!(theirs != first);
}

async fn the_same_key_with_another_request_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let (status, _, _, _) = ask(&app, "t", &key, "k", "pool-a", 1).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, id, _, body) = ask(&app, "t", &key, "k", "pool-a", 2).await;
    assert_eq!((status, id), (StatusCode::UNPROCESSABLE_ENTITY, None));
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{body}"
    );
    for bad in ["", "with space", &"k".repeat(256)] {
        let (status, _, _, body) = ask(&app, "t", &key, bad, "pool-a", 1).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["header", "Idempotency-Key"])
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        1,
        "nothing else was created"
    );
}

async fn a_refused_request_lets_its_key_go(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let ready = app.levels("pool-a").await["ready"].as_i64().unwrap();
    let (status, _, _, _) = ask(&app, "t", &key, "k", "pool-a", ready + 1).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "can't reserve");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM idempotency_keys").await,
        0,
        "a request without a session keeps no key"
    );
    // So a retry with the same key is a new attempt, not a replay of the refusal.
    let (status, id, replayed, body) = ask(&app, "t", &key, "k", "pool-a", 1).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{body}");
    assert!(id.is_some());
}

async fn parallel_retries_make_one_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    let answers = join_all((0..12).map(|_| ask(&app, "t", &key, "same", "pool-a", 1))).await;
    let ids: std::collections::BTreeSet<Option<i64>> = answers.iter().map(|a| a.1).collect();
    assert!(
        answers.iter().all(|a| a.0 == StatusCode::CREATED),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert_eq!(ids.len(), 1, "one session for all: {ids:?}");
    assert_eq!(answers.iter().filter(|a| !a.2).count(), 1, "one made it");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

/// A claim left without a session for longer than any request takes to reserve its
/// nodes (its request was lost) is taken over by the retry, which then runs.
async fn an_abandoned_claim_is_taken_over(backend: Backend) {
    let app = spawn_app(backend).await;
    let (tenant, key) = app.tenant("t", None).await;
    let (status, first, _, _) = ask(&app, "t", &key, "k", "pool-a", 1).await;
    assert_eq!(status, StatusCode::CREATED);
    app.retire(crate::helpers::Auth::Basic("t", &key), first.unwrap())
        .await;
    // As if the request had claimed the key two minutes ago and never made its session.
    app.exec_at(
        "UPDATE idempotency_keys SET session_id = NULL, created_at = $1 WHERE tenant_id = $2",
        duffy::store::now() - chrono::TimeDelta::minutes(2),
        tenant.id,
    )
    .await;
    let (status, id, replayed, body) = ask(&app, "t", &key, "k", "pool-a", 1).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{body}");
    assert!(id.is_some() && id != first, "a session of its own");
}

both_backends!(
    an_abandoned_claim_is_taken_over,
    a_retry_with_the_same_key_gets_the_same_session,
    the_same_key_with_another_request_is_refused,
    a_refused_request_lets_its_key_go,
    parallel_retries_make_one_session,
);
