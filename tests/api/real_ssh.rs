//! Contextualization against a real sshd on loopback (`docs/v3-api.md` §12, `docs/deviations.md` D#14): the tenant's
//! key lands after the marker line at hand-out and leaves at deprovision, and a node whose
//! ssh fails is failed and replaced. See `sshd.rs` for the server and `DUFFY_SKIP_SSHD`.

use duffy::contextualize::MARKER;
use duffy::store::{self, nodes::NodeState};

use crate::both_backends;
use crate::helpers::{Auth, Backend, TestApp, TestDb, load_config, start_custom};
use crate::sshd::Sshd;

/// A pool whose noop nodes get the addresses 127.0.0.2, 127.0.0.3, … by id.
fn config(sshd: &Sshd, fill_level: u32) -> String {
    config_with(&sshd.app_config(), fill_level)
}

fn config_with(app: &str, fill_level: u32) -> String {
    format!(
        "{app}\ndefaults: {{session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}}\n\
         nodepools:\n  concrete:\n    ctx:\n      mechanism: {{type: noop, noop: \
         {{ipaddr: \"127.0.0.{{{{ id + 1 }}}}\"}}}}\n      contextualize: true\n      \
         fill-level: {fill_level}\n"
    )
}

/// The app with the Ssh contextualizer built from `app.ssh`, pools filled once.
async fn app_on(backend: Backend, sshd: &Sshd, fill_level: u32) -> TestApp {
    start_custom(
        TestDb::new(backend).await,
        load_config(&config(sshd, fill_level)),
        false,
        true,
        None,
        Vec::new(),
    )
    .await
}

async fn the_tenant_key_comes_with_the_node_and_goes_with_it(backend: Backend) {
    let Some(sshd) = Sshd::start(&["127.0.0.2"]) else {
        return;
    };
    let app = app_on(backend, &sshd, 1).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app.request_session(Auth::Basic("t", &key), "ctx", 1).await;
    assert_eq!(a.status, 201, "{}\nsshd: {}", a.text, sshd.log());
    assert_eq!(a.body["session"]["nodes"][0]["ipaddr"], "127.0.0.2");
    assert_eq!(a.body["session"]["nodes"][0]["state"], "deployed");
    assert_eq!(
        sshd.keys(),
        format!("{}{MARKER}\nssh-ed25519 AAAA t\n", sshd.initial_keys),
        "the node's own keys are kept and the tenant's follow the marker"
    );
    assert!(
        sshd.log().contains("Accepted publickey"),
        "Duffy logged in with the service key: {}",
        sshd.log()
    );

    let retired = app.retire(Auth::Basic("t", &key), a.session_id()).await;
    assert_eq!(retired.status, 200, "{}", retired.text);
    let report = app.deprovision().await;
    assert_eq!(report.done, 1);
    assert_eq!(
        sshd.keys(),
        sshd.initial_keys,
        "deprovisioning removed the marker and the tenant's key, nothing else"
    );
}

async fn a_node_whose_ssh_fails_is_replaced_until_none_is_left(backend: Backend) {
    // Nodes 1, 2, 3 get 127.0.0.2, .3, .4; only .3 has an sshd, the others refuse.
    let Some(sshd) = Sshd::start(&["127.0.0.3"]) else {
        return;
    };
    let app = app_on(backend, &sshd, 3).await;
    let (_, key) = app.tenant("t", None).await;
    let a = app.request_session(Auth::Basic("t", &key), "ctx", 1).await;
    assert_eq!(a.status, 201, "{}\nsshd: {}", a.text, sshd.log());
    let nodes = a.body["session"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0]["ipaddr"], "127.0.0.3",
        "the first node (127.0.0.2) failed and was replaced"
    );
    assert_eq!(
        sshd.keys(),
        format!("{}{MARKER}\nssh-ed25519 AAAA t\n", sshd.initial_keys)
    );
    let failed = store::nodes::in_state(app.engine.db(), NodeState::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].ipaddr.as_deref(), Some("127.0.0.2"));
    assert_eq!(
        failed[0].data.0["error"]["detail"],
        "contextualizing node failed"
    );

    // Only 127.0.0.4 is left, and it fails too: nothing to replace it with.
    let (_, other) = app.tenant("u", None).await;
    let b = app
        .request_session(Auth::Basic("u", &other), "ctx", 1)
        .await;
    assert_eq!(b.status, 503, "{}", b.text);
    assert_eq!(b.detail(), "contextualization of nodes failed");
    assert_eq!(b.headers["retry-after"], "0");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM nodes WHERE state = 'failed'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE retired_at IS NULL")
            .await,
        1,
        "the failed request left no session behind"
    );
    assert_eq!(
        sshd.keys(),
        format!("{}{MARKER}\nssh-ed25519 AAAA t\n", sshd.initial_keys),
        "the first tenant's hand-out is untouched"
    );
}

async fn a_node_whose_ssh_hangs_is_cut_off_and_replaced(backend: Backend) {
    // 127.0.0.2 accepts connections and never answers; 127.0.0.3 has the sshd.
    let Some(sshd) = Sshd::start(&["127.0.0.3"]) else {
        return;
    };
    let silent = tokio::net::TcpListener::bind(("127.0.0.2", sshd.port))
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let app = start_custom(
        TestDb::new(backend).await,
        // Long enough for the working sshd on a machine busy with other tests (1 s was
        // not, in CI); the hanging one is cut off at it all the same.
        load_config(&config_with(&sshd.app_config_with_timeout("3s"), 2)),
        false,
        true,
        None,
        Vec::new(),
    )
    .await;
    let (_, key) = app.tenant("t", None).await;
    let started = std::time::Instant::now();
    let a = app.request_session(Auth::Basic("t", &key), "ctx", 1).await;
    held.abort();
    assert_eq!(a.status, 201, "{}\nsshd: {}", a.text, sshd.log());
    assert_eq!(a.body["session"]["nodes"][0]["ipaddr"], "127.0.0.3");
    assert!(
        // Not a speed check: without the timeout the request would wait for the
        // contextualizing deadline (15 min).
        started.elapsed() < std::time::Duration::from_secs(120),
        "the hanging ssh was killed at its timeout, not waited for ({:?})",
        started.elapsed()
    );
    let failed = store::nodes::in_state(app.engine.db(), NodeState::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].ipaddr.as_deref(), Some("127.0.0.2"));
    assert_eq!(
        sshd.keys(),
        format!("{}{MARKER}\nssh-ed25519 AAAA t\n", sshd.initial_keys)
    );
}

both_backends!(
    a_node_whose_ssh_hangs_is_cut_off_and_replaced,
    the_tenant_key_comes_with_the_node_and_goes_with_it,
    a_node_whose_ssh_fails_is_replaced_until_none_is_left,
);
