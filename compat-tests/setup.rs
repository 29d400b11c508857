//! The harness itself: the installed client, our servers, tenants and the pools' fill.

use crate::harness::{Backend, Cico, Duffy};
use crate::scenarios;

scenarios!(the_harness_runs_the_real_client_against_our_servers);

async fn the_harness_runs_the_real_client_against_our_servers(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-harness", 10).await;
    assert_eq!(tenant.key.len(), 36, "a UUID key: {tenant:?}");
    duffy.wait_filled().await;
    let cico = Cico::new(&duffy.endpoint());
    let version = cico.run(&["--version"]).await;
    assert_eq!(version.stdout.trim(), "cico 0.4.7", "{version}");
    // A fresh HOME holds no key: cico refuses before sending anything.
    let out = cico.run(&["node", "get"]).await;
    out.assert_fails_with("The requested operation requires an API key.");
    assert!(out.requests.is_empty(), "{out}");
    let out = cico.run(&["inventory", "--all"]).await;
    assert_eq!(out.requests, ["/Inventory"], "{out}");
    assert!(duffy.v3_sessions(&tenant).await.is_empty());
}
