//! The `noop` mechanism's knobs and the engine's rules for mechanism results
//! (`docs/v3-api.md` §11, `docs/config.md` §5).

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, spawn_app_config, spawn_app_unfilled};

const KNOBS: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    broken:
      mechanism: {type: noop, noop: {fail-rate: 1.0}}
      fill-level: 3
    named:
      mechanism:
        type: noop
        noop:
          hostname: "vm-{{ id }}.{{ pool }}.example.test"
          ipaddr: "10.9.0.{{ id }}"
      fill-level: 2
    clash:
      mechanism: {type: noop, noop: {ipaddr: "10.8.0.1"}}
      fill-level: 2
"#;

async fn failing_provisioning_leaves_no_rows(backend: Backend) {
    let app = spawn_app_unfilled(backend, KNOBS).await;
    let report = duffy::engine::jobs::FillPools::new(app.engine.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!(report.dropped, 3, "every node of the broken pool failed");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE pool = 'broken'")
            .await,
        0,
        "fresh rows are deleted"
    );
    assert_eq!(app.levels("broken").await["provisioning"], 0);
}

async fn templates_name_the_nodes(backend: Backend) {
    let app = spawn_app_config(backend, KNOBS).await;
    let a = app.request_session(app.admin_auth(), "named", 2).await;
    assert_eq!(a.status, 201, "{}", a.text);
    for n in a.body["session"]["nodes"].as_array().unwrap() {
        let id = n["id"].as_i64().unwrap();
        assert_eq!(n["hostname"], format!("vm-{id}.named.example.test"));
        assert_eq!(n["ipaddr"], format!("10.9.0.{id}"));
        assert_eq!(
            n["data"]["provision"],
            json!({"hostname": n["hostname"], "ipaddr": n["ipaddr"]})
        );
    }
}

async fn an_address_already_in_use_fails_the_newcomer(backend: Backend) {
    let app = spawn_app_config(backend, KNOBS).await;
    let levels = app.levels("clash").await;
    assert_eq!(levels["ready"], 1, "{levels}");
    let failed = app
        .count("SELECT COUNT(*) FROM nodes WHERE pool = 'clash' AND state = 'failed'")
        .await;
    assert_eq!(failed, 1);
    let nodes = app.get("/api/v1/nodes", Auth::None).await;
    let failed = nodes.body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "failed")
        .unwrap()
        .clone();
    assert_eq!(
        failed["data"]["error"]["detail"],
        "provisioning returned a ipaddr that a live node already has"
    );
}

const REUSE: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  abstract:
    physical:
      mechanism: {type: noop}
      reuse-nodes:
        architecture: "{{ architecture }}"
        generation: 2
  concrete:
    metal-aarch64:
      extends: physical
      architecture: aarch64
      fill-level: 1
"#;

async fn reusable_machines_cycle_back_to_unused(backend: Backend) {
    let app = spawn_app_unfilled(backend, REUSE).await;
    for (i, (arch, generation)) in [("x86_64", 2), ("aarch64", 1), ("aarch64", 2)]
        .into_iter()
        .enumerate()
    {
        let body = json!({"hostname": format!("m{i}.lab.test"), "ipaddr": format!("192.0.2.{}", i + 1), "data": {"architecture": arch, "generation": generation}});
        assert_eq!(
            app.post("/api/v1/nodes", app.admin_auth(), &body)
                .await
                .status,
            201
        );
    }
    app.fill().await;
    // only the aarch64 machine of generation 2 matches
    let ready = app.get("/api/v1/nodes", Auth::None).await.body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "ready")
        .map(|n| n["id"].as_i64().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(ready, vec![3]);
    let s = app
        .request_session(app.admin_auth(), "metal-aarch64", 1)
        .await;
    assert_eq!(s.status, 201, "{}", s.text);
    let sid = s.session_id();
    app.retire(app.admin_auth(), sid).await;
    let report = app.deprovision().await;
    assert_eq!(report.returned, 1);
    let node = app.get("/api/v1/nodes/3", app.admin_auth()).await.body["node"].clone();
    assert_eq!(node["state"], "unused");
    assert_eq!(
        (node["hostname"].as_str(), node["ipaddr"].as_str()),
        (Some("m2.lab.test"), Some("192.0.2.3")),
        "noop keeps a reused machine's identity"
    );
    assert_eq!(node["pool"], json!(null));
    assert_eq!(
        node["data"],
        json!({"architecture": "aarch64", "generation": 2}),
        "hand-out data is cleaned"
    );
    assert_eq!(node["used_count"], 1);
    assert_eq!(node["active"], true);
    // and the pool takes it again
    app.fill().await;
    assert_eq!(app.levels("metal-aarch64").await["ready"], 1);
}

both_backends!(
    failing_provisioning_leaves_no_rows,
    templates_name_the_nodes,
    an_address_already_in_use_fails_the_newcomer,
    reusable_machines_cycle_back_to_unused,
);

/// A mechanism whose answers the test chooses.
struct Scripted {
    provision: Result<(), String>,
    deprovision: Result<Option<Vec<serde_json::Value>>, String>,
}

impl duffy::mechanisms::Mechanism for Scripted {
    fn provision<'a>(
        &'a self,
        _pool: &'a duffy::config::Pool,
        nodes: &'a [duffy::mechanisms::NodeInput],
    ) -> futures::future::BoxFuture<
        'a,
        Result<Vec<serde_json::Value>, duffy::mechanisms::MechanismError>,
    > {
        Box::pin(async move {
            self.provision
                .clone()
                .map_err(duffy::mechanisms::MechanismError)?;
            // no hostname: the engine falls back to reverse DNS, then to the address
            Ok(nodes
                .iter()
                .map(|n| json!({"ipaddr": format!("127.2.0.{}", n.id), "extra": n.id}))
                .collect())
        })
    }

    fn deprovision<'a>(
        &'a self,
        _pool: &'a duffy::config::Pool,
        _nodes: &'a [duffy::mechanisms::NodeInput],
    ) -> futures::future::BoxFuture<
        'a,
        Result<duffy::mechanisms::Deprovisioned, duffy::mechanisms::MechanismError>,
    > {
        Box::pin(async move {
            match self.deprovision.clone() {
                Ok(Some(entries)) => Ok(duffy::mechanisms::Deprovisioned::Entries(entries)),
                Ok(None) => Ok(duffy::mechanisms::Deprovisioned::All),
                Err(e) => Err(duffy::mechanisms::MechanismError(e)),
            }
        })
    }
}

const SCRIPTED: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    scripted:
      mechanism: {type: noop}
      fill-level: 2
"#;

async fn scripted(backend: Backend, mechanism: Scripted) -> crate::helpers::TestApp {
    crate::helpers::start_custom(
        crate::helpers::TestDb::new(backend).await,
        crate::helpers::load_config(SCRIPTED),
        false,
        true,
        None,
        vec![("scripted", std::sync::Arc::new(mechanism))],
    )
    .await
}

async fn mechanism_results_follow_the_originals_rules(backend: Backend) {
    // a failing provisioning run: fresh rows are deleted
    let app = scripted(
        backend,
        Scripted {
            provision: Err("boom".into()),
            deprovision: Ok(None),
        },
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM nodes").await, 0);

    // results without hostname: the address stands in; the whole entry is kept
    let app = scripted(
        backend,
        Scripted {
            provision: Ok(()),
            deprovision: Ok(None),
        },
    )
    .await;
    let s = app.request_session(app.admin_auth(), "scripted", 2).await;
    let node = &s.body["session"]["nodes"][0];
    assert!(node["hostname"].is_string(), "{node}");
    assert_eq!(node["data"]["provision"]["extra"], node["id"]);
    // no deprovisioning step (`docs/deviations.md` D#8): the nodes are done
    let sid = s.session_id();
    app.retire(app.admin_auth(), sid).await;
    assert_eq!(app.deprovision().await.done, 2);

    // a failing deprovisioning run: every node failed
    let app = scripted(
        backend,
        Scripted {
            provision: Ok(()),
            deprovision: Err("gone".into()),
        },
    )
    .await;
    let s = app.request_session(app.admin_auth(), "scripted", 2).await;
    let sid = s.session_id();
    app.retire(app.admin_auth(), sid).await;
    assert_eq!(app.deprovision().await.failed, 2);
    let nodes =
        duffy::store::nodes::in_state(app.engine.db(), duffy::store::nodes::NodeState::Failed)
            .await
            .unwrap();
    assert!(nodes.iter().all(
        |n| n.data.0["error"]["detail"] == "deprovisioning mechanism failed" && n.pool.is_none()
    ));

    // entries that match only one node: the other failed
    let app = scripted(
        backend,
        Scripted {
            provision: Ok(()),
            deprovision: Ok(Some(vec![json!({"extra": 1})])),
        },
    )
    .await;
    let s = app.request_session(app.admin_auth(), "scripted", 2).await;
    let sid = s.session_id();
    app.retire(app.admin_auth(), sid).await;
    let report = app.deprovision().await;
    assert_eq!((report.done, report.failed), (1, 1));
    let failed =
        duffy::store::nodes::in_state(app.engine.db(), duffy::store::nodes::NodeState::Failed)
            .await
            .unwrap();
    assert_eq!(
        failed[0].data.0["error"]["detail"],
        "deprovisioning node failed"
    );
}

both_backends!(mechanism_results_follow_the_originals_rules);
