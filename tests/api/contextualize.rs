//! Handing nodes over with SSH keys (`docs/v3-api.md` §7 steps 5–8, `docs/deviations.md` D#14), with a contextualizer
//! that fails on chosen addresses instead of a real ssh.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use duffy::contextualize::{ContextError, Contextualizer};
use duffy::store::{self, nodes::NodeState};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, TestApp, TestDb, load_config, start_custom};

/// Fails contextualization on the addresses in `broken`; records what it was asked to do.
#[derive(Default)]
struct Flaky {
    broken: Mutex<HashSet<String>>,
    pushed: Mutex<Vec<(String, String)>>,
    cleaned: Mutex<Vec<String>>,
}

impl Contextualizer for Flaky {
    fn contextualize<'a>(
        &'a self,
        ipaddr: &'a str,
        ssh_key: &'a str,
    ) -> BoxFuture<'a, Result<(), ContextError>> {
        async move {
            self.pushed
                .lock()
                .unwrap()
                .push((ipaddr.to_owned(), ssh_key.to_owned()));
            if self.broken.lock().unwrap().contains(ipaddr) {
                Err(ContextError("connection refused".into()))
            } else {
                Ok(())
            }
        }
        .boxed()
    }

    fn decontextualize<'a>(&'a self, ipaddr: &'a str) -> BoxFuture<'a, Result<(), ContextError>> {
        async move {
            self.cleaned.lock().unwrap().push(ipaddr.to_owned());
            Ok(())
        }
        .boxed()
    }
}

const CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    ctx:
      mechanism: {type: noop}
      contextualize: true
      fill-level: 3
    plain:
      mechanism: {type: noop}
      fill-level: 1
"#;

async fn app_with(backend: Backend, contextualizer: Arc<dyn Contextualizer>) -> TestApp {
    start_custom(
        TestDb::new(backend).await,
        load_config(CONFIG),
        false,
        true,
        Some(contextualizer),
        Vec::new(),
    )
    .await
}

async fn ready_ips(app: &TestApp) -> Vec<String> {
    let mut nodes = store::nodes::in_state(app.engine.db(), NodeState::Ready)
        .await
        .unwrap();
    nodes.retain(|n| n.pool.as_deref() == Some("ctx"));
    nodes.into_iter().map(|n| n.ipaddr.unwrap()).collect()
}

async fn the_tenants_key_is_pushed(backend: Backend) {
    let flaky = Arc::new(Flaky::default());
    let app = app_with(backend, flaky.clone()).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app
        .post("/api/v1/sessions", Auth::Basic("t", &key), &json!({"nodes_specs": [{"pool": "ctx", "quantity": 2}, {"pool": "plain", "quantity": 1}]}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(
        a.body["session"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "deployed")
    );
    let pushed = flaky.pushed.lock().unwrap().clone();
    assert_eq!(
        pushed.len(),
        2,
        "only the pool that contextualizes is contextualized"
    );
    assert!(pushed.iter().all(|(_, k)| k == "ssh-ed25519 AAAA t"));
}

async fn a_node_that_fails_is_replaced(backend: Backend) {
    let flaky = Arc::new(Flaky::default());
    let app = app_with(backend, flaky.clone()).await;
    let ips = ready_ips(&app).await;
    flaky.broken.lock().unwrap().insert(ips[0].clone());
    let a = app.request_session(app.admin_auth(), "ctx", 1).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let nodes = a.body["session"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_ne!(
        nodes[0]["ipaddr"],
        ips[0].as_str(),
        "a replacement was handed out"
    );
    assert_eq!(nodes[0]["state"], "deployed");
    let failed = store::nodes::in_state(app.engine.db(), NodeState::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].ipaddr.as_deref(), Some(ips[0].as_str()));
    assert_eq!(
        failed[0].data.0["error"]["detail"],
        "contextualizing node failed"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions_nodes").await,
        1,
        "the failed node left the session"
    );
}

async fn no_replacement_left_is_503(backend: Backend) {
    let flaky = Arc::new(Flaky::default());
    let app = app_with(backend, flaky.clone()).await;
    let ips = ready_ips(&app).await;
    // two of three nodes are broken; asking for two: one works, one fails, its
    // replacement fails too, and then no ready node is left
    flaky
        .broken
        .lock()
        .unwrap()
        .extend([ips[0].clone(), ips[2].clone()]);
    let (_, key) = app.tenant("t", Some(2)).await;
    let a = app.request_session(Auth::Basic("t", &key), "ctx", 2).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"detail": "contextualization of nodes failed"})
    );
    assert_eq!(a.headers["retry-after"], "0");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        0,
        "the session is undone"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions_nodes").await, 0);
    // the node that was contextualized was cleaned and is ready again
    assert_eq!(ready_ips(&app).await, vec![ips[1].clone()]);
    assert!(flaky.cleaned.lock().unwrap().contains(&ips[1]));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'failed'")
            .await,
        2
    );
    // and the quota is free again
    let again = app.request_session(Auth::Basic("t", &key), "ctx", 1).await;
    assert_eq!(again.status, 201, "{}", again.text);
}

both_backends!(
    the_tenants_key_is_pushed,
    a_node_that_fails_is_replaced,
    no_replacement_left_is_503,
);

/// Holds every contextualization for a while, so that a test can act in between.
struct Slow(std::time::Duration);

impl Contextualizer for Slow {
    fn contextualize<'a>(
        &'a self,
        _ip: &'a str,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<(), ContextError>> {
        async move {
            tokio::time::sleep(self.0).await;
            Ok(())
        }
        .boxed()
    }

    fn decontextualize<'a>(&'a self, _ip: &'a str) -> BoxFuture<'a, Result<(), ContextError>> {
        async { Ok(()) }.boxed()
    }
}

async fn a_session_retired_during_hand_out_is_not_granted(backend: Backend) {
    let slow = Arc::new(Slow(std::time::Duration::from_millis(600)));
    let app = app_with(backend, slow).await;
    let request = app.request_session(app.admin_auth(), "ctx", 1);
    let retire = async {
        // the session is visible (its nodes contextualizing) while the keys are pushed
        for _ in 0..100 {
            let list = app.get("/api/v1/sessions", app.admin_auth()).await;
            if let Some(id) = list.body["sessions"][0]["id"].as_i64() {
                return app
                    .put(
                        &format!("/api/v1/sessions/{id}"),
                        app.admin_auth(),
                        &json!({"active": false}),
                    )
                    .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the session never showed up");
    };
    let (granted, retired) = futures::join!(request, retire);
    assert_eq!(retired.status, 200, "{}", retired.text);
    assert_eq!(
        (granted.status.as_u16(), granted.detail()),
        (503, &json!("contextualization of nodes failed"))
    );
    // the node is not left behind: it is deprovisioned like any node of a retired session
    let report = app.deprovision().await;
    assert_eq!(report.done, 1);
}

both_backends!(a_session_retired_during_hand_out_is_not_granted);

async fn a_client_that_hangs_up_leaves_no_half_done_allocation(backend: Backend) {
    let slow = Arc::new(Slow(std::time::Duration::from_millis(600)));
    let app = app_with(backend, slow).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(150))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/api/v1/sessions", app.address))
        .basic_auth("admin", Some(&app.admin_key))
        .json(&json!({"nodes_specs": [{"pool": "ctx", "quantity": 1}]}))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up before the answer");
    // the allocation goes on without its client and ends consistent: a granted session
    // whose node is deployed, nothing left contextualizing
    assert!(
        app.eventually_count(5, "SELECT COUNT(*) FROM nodes WHERE state = 'deployed'", 1)
            .await,
        "the hand-out was finished"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'contextualizing'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL")
            .await,
        1
    );
}

both_backends!(a_client_that_hangs_up_leaves_no_half_done_allocation);
