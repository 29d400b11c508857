//! A pool whose mechanism keeps failing backs off instead of spinning: each failed round
//! doubles the pause up to `tasks.fill-backoff.max`, the pool detail says so, and the
//! first round that delivers a node clears it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use duffy::config::Pool;
use duffy::mechanisms::{Deprovisioned, Mechanism, MechanismError, NodeInput};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Auth, Backend, TestApp, TestDb, load_config, start_custom};

/// Fails while `down` is set; counts its provisioning runs.
#[derive(Default)]
struct Provider {
    down: AtomicBool,
    /// Fails the runs for odd node ids only.
    odd_down: AtomicBool,
    runs: AtomicUsize,
}

impl Mechanism for Provider {
    fn provision<'a>(
        &'a self,
        _pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Vec<Value>, MechanismError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst)
                || (self.odd_down.load(Ordering::SeqCst) && nodes.iter().any(|n| n.id % 2 == 1))
            {
                return Err(MechanismError("provider down".into()));
            }
            Ok(nodes
                .iter()
                .map(|n| json!({"ipaddr": format!("127.3.0.{}", n.id), "hostname": format!("n{}", n.id)}))
                .collect())
        })
    }

    fn deprovision<'a>(
        &'a self,
        _pool: &'a Pool,
        _nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Deprovisioned, MechanismError>> {
        Box::pin(async { Ok(Deprovisioned::All) })
    }
}

const CONFIG: &str = r#"
tasks: {fill-backoff: {min: 0.4, max: 0.8}}
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    flaky:
      mechanism: {type: noop}
      fill-level: 1
"#;

async fn app_with(backend: Backend, provider: Arc<Provider>, jobs: bool) -> TestApp {
    start_custom(
        TestDb::new(backend).await,
        load_config(CONFIG),
        jobs,
        !jobs,
        None,
        vec![("flaky", provider)],
    )
    .await
}

async fn detail(app: &TestApp) -> Value {
    let a = app.get("/api/v1/pools/flaky", Auth::None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["pool"].clone()
}

async fn a_failing_pool_backs_off_and_says_so(backend: Backend) {
    let provider = Arc::new(Provider::default());
    provider.down.store(true, Ordering::SeqCst);
    let app = app_with(backend, provider.clone(), false).await;
    // the start-up fill failed once
    assert_eq!(provider.runs.load(Ordering::SeqCst), 1);
    let pool = detail(&app).await;
    assert_eq!(pool["backoff"]["failures"], 1);
    assert_eq!(pool["backoff"]["delay"], 0.4);
    assert_eq!(pool["backoff"]["error"], "provider down");
    assert!(pool["backoff"]["until"].is_string());
    assert_eq!(pool["levels"]["ready"], 0);

    // while it backs off, fill rounds leave it alone
    app.fill().await;
    app.fill().await;
    assert_eq!(provider.runs.load(Ordering::SeqCst), 1, "no spinning");

    // after the pause it is tried again, and the pause doubles up to the cap
    tokio::time::sleep(Duration::from_millis(450)).await;
    app.fill().await;
    assert_eq!(provider.runs.load(Ordering::SeqCst), 2);
    assert_eq!(detail(&app).await["backoff"]["delay"], 0.8);
    tokio::time::sleep(Duration::from_millis(850)).await;
    app.fill().await;
    assert_eq!(provider.runs.load(Ordering::SeqCst), 3);
    let pool = detail(&app).await;
    assert_eq!(pool["backoff"]["failures"], 3);
    assert_eq!(pool["backoff"]["delay"], 0.8, "capped");

    // the provider recovers: the next round fills the pool and the detail is the original's
    provider.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(850)).await;
    app.fill().await;
    assert_eq!(provider.runs.load(Ordering::SeqCst), 4);
    let pool = detail(&app).await;
    assert_eq!(pool["levels"]["ready"], 1);
    let keys: Vec<&String> = pool.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "fill-level", "levels"]);
}

async fn the_fill_job_retries_after_the_pause(backend: Backend) {
    let provider = Arc::new(Provider::default());
    provider.down.store(true, Ordering::SeqCst);
    let app = app_with(backend, provider.clone(), true).await;
    // the background fill fails, waits, and tries again on its own: 0.4 s, then 0.8 s
    tokio::time::sleep(Duration::from_millis(900)).await;
    let runs = provider.runs.load(Ordering::SeqCst);
    assert_eq!(runs, 2, "one try at start, one retry after the first pause");
    provider.down.store(false, Ordering::SeqCst);
    assert!(
        app.eventually_count(5, "SELECT COUNT(*) FROM nodes WHERE state = 'ready'", 1)
            .await,
        "the pool was filled once the provider recovered"
    );
    assert_eq!(provider.runs.load(Ordering::SeqCst), 3);
    assert!(detail(&app).await.get("backoff").is_none());
}

async fn a_partly_failing_round_does_not_pause_the_pool(backend: Backend) {
    let provider = Arc::new(Provider::default());
    provider.odd_down.store(true, Ordering::SeqCst);
    let config = CONFIG.replace("fill-level: 1", "fill-level: 2");
    let app = start_custom(
        TestDb::new(backend).await,
        load_config(&config),
        false,
        true,
        None,
        vec![("flaky", provider.clone())],
    )
    .await;
    // two parallel runs, one failed: the pool got a node, so it is not paused
    assert_eq!(provider.runs.load(Ordering::SeqCst), 2);
    let pool = detail(&app).await;
    assert_eq!(pool["levels"]["ready"], 1);
    assert!(pool.get("backoff").is_none(), "{pool}");
    app.fill().await;
    assert_eq!(
        provider.runs.load(Ordering::SeqCst),
        3,
        "filled again at once"
    );
}

both_backends!(
    a_partly_failing_round_does_not_pause_the_pool,
    a_failing_pool_backs_off_and_says_so,
    the_fill_job_retries_after_the_pause,
);
