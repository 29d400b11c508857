//! `max-ready-age`: ready nodes older than their pool's limit are replaced, a few at a time,
//! and the pool never has fewer ready nodes than its fill level meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, Spawn, TestApp, spawn_app_config, spawn_app_with};

/// Provisioning takes a moment, so a pool that dropped nodes before their replacements
/// were ready would show it.
const AGING: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
tasks:
  periodic:
    fill-pools: {interval: 1h}
nodepools:
  concrete:
    fresh:
      mechanism: {type: noop, noop: {delay: 150ms}}
      fill-level: 4
      max-ready-age: 1s
    kept:
      mechanism: {type: noop}
      fill-level: 1
"#;

const READY: &str =
    "SELECT COUNT(*) FROM nodes WHERE pool = 'fresh' AND state = 'ready' AND retired_at IS NULL";

/// Watches the pool's ready count until stopped; returns the lowest count seen.
struct Watch {
    stop: Arc<AtomicBool>,
    lowest: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(app: &Arc<TestApp>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let lowest = Arc::new(AtomicI64::new(i64::MAX));
        let task = tokio::spawn({
            let (app, stop, lowest) = (app.clone(), stop.clone(), lowest.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    lowest.fetch_min(app.count(READY).await, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Watch { stop, lowest, task }
    }

    async fn lowest(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.lowest.load(Ordering::SeqCst)
    }
}

async fn stale_ready_nodes_are_replaced_while_the_pool_stays_full(backend: Backend) {
    let app = Arc::new(spawn_app_config(backend, AGING).await);
    let originals = app.node_ids("state=ready&pool=fresh").await;
    assert_eq!(originals.len(), 4);
    let kept = app.node_ids("state=ready&pool=kept").await;
    let watch = Watch::start(&app);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Each round replaces at most a quarter of the fill level (here one node).
    let mut rounds = 0;
    loop {
        app.fill().await;
        rounds += 1;
        assert!(app.count(READY).await >= 4);
        let left = app.node_ids("state=ready&pool=fresh").await;
        if originals.iter().all(|id| !left.contains(id)) {
            break;
        }
        assert!(
            rounds < 30,
            "still not recycled after {rounds} rounds: {left:?}"
        );
    }
    assert!(rounds >= 4, "one node at a time: {rounds} rounds");
    assert!(
        watch.lowest().await >= 4,
        "the pool dropped below its fill level"
    );
    for id in &originals {
        let a = app
            .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
            .await;
        assert_eq!(a.body["node"]["state"], "done", "{}", a.text);
    }
    // Pools without max-ready-age keep their nodes.
    assert_eq!(app.node_ids("state=ready&pool=kept").await, kept);
}

async fn the_fill_job_recycles_on_its_own(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(
            backend,
            Spawn {
                config: AGING,
                background_jobs: true,
                fill: false,
            },
        )
        .await,
    );
    assert!(app.eventually_count(10, READY, 4).await);
    let originals = app.node_ids("state=ready&pool=fresh").await;
    let watch = Watch::start(&app);
    let mut recycled = false;
    for _ in 0..200 {
        let left = app.node_ids("state=ready&pool=fresh").await;
        if originals.iter().all(|id| !left.contains(id)) {
            recycled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recycled,
        "the original ready nodes were not replaced within 10 s"
    );
    assert!(
        watch.lowest().await >= 4,
        "the pool dropped below its fill level"
    );
}

both_backends!(
    stale_ready_nodes_are_replaced_while_the_pool_stays_full,
    the_fill_job_recycles_on_its_own,
);
