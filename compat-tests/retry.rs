//! cico's retry rule (docs/legacy-v2.md §1): "no node ready" is not JSON, so cico waits and asks
//! again; hard failures are JSON strings, reported after a single request.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Backend, Cico, Duffy, hostnames};
use crate::scenarios;

scenarios!(
    node_get_waits_until_a_node_is_ready,
    node_get_gives_up_when_no_node_comes,
    hard_failures_are_not_retried,
);

/// The slow pool is still provisioning its only node when cico starts asking; cico keeps
/// asking and gets the node once it is ready.
async fn node_get_waits_until_a_node_is_ready(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-patient", 10).await;
    // Provisioning takes 5 s from the server's start: nothing is ready yet.
    assert_eq!(duffy.ready("c9s-slow").await, 0);
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let out = cico
        .run(&[
            "node",
            "get",
            "--release",
            "9-stream",
            "--retry-count",
            "20",
            "--retry-interval",
            "1",
            "-f",
            "value",
            "-c",
            "hostname",
            "-c",
            "comment",
        ])
        .await;
    out.assert_ok();
    assert!(out.requests_to("/Node/get") > 1, "{out}");
    let fields = out.fields();
    assert_eq!(fields.len(), 1, "{out}");
    let session = duffy.v3_session(&tenant, fields[0][1]).await;
    assert_eq!(hostnames(&session), [fields[0][0]]);
    assert_eq!(session["nodes"][0]["pool"], "c9s-slow");
}

/// No node becomes ready: after `--retry-count 2` cico gives up with its message, having
/// sent three requests one interval apart. The raw answer is v2's plain text.
async fn node_get_gives_up_when_no_node_comes(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-hopeless", 10).await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let out = cico
        .run(&[
            "node",
            "get",
            "--release",
            "6",
            "--retry-count",
            "2",
            "--retry-interval",
            "1",
        ])
        .await;
    out.assert_fails_with("The requested operation failed as no inventory is available.");
    assert_eq!(out.requests_to("/Node/get"), 3, "{out}");
    assert!(out.elapsed >= Duration::from_secs(2), "{out}");

    let raw = duffy
        .v2_get(&format!(
            "/Node/get?key={}&arch=x86_64&ver=6&count=1",
            tenant.key
        ))
        .await;
    assert_eq!(
        (raw.status, raw.text.as_str()),
        (200, "Insufficient Nodes in READY State"),
        "{raw:?}"
    );
    assert!(raw.content_type.starts_with("text/plain"), "{raw:?}");
    assert!(duffy.v3_sessions(&tenant).await.is_empty());
}

/// Quota exceeded, no pool, a bad count: cico prints the server's string and exits 1 after
/// one request, retries notwithstanding; no session is created.
async fn hard_failures_are_not_retried(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-limited", 2).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--count", "3"],
            "Failed to allocate nodes: quota exceeded: requested nodes (3) + current \
             allocation (0) = 3 > 2",
        ),
        (
            &["--release", "5"],
            "Failed to allocate nodes: no pool for ver=5 arch=x86_64 flavor=",
        ),
        (
            &["--count", "6"],
            "Failed to allocate nodes: count=6 exceeds the maximum of 5 for pool c7-x86-64",
        ),
        (
            &["--count", "0"],
            "Failed to allocate nodes: count must be an integer >= 1",
        ),
    ];
    for (args, message) in cases {
        let mut command = vec!["node", "get", "--retry-count", "3", "--retry-interval", "1"];
        command.extend_from_slice(args);
        let out = cico.run(&command).await;
        out.assert_fails_with(message);
        assert_eq!(out.requests_to("/Node/get"), 1, "{out}");
        let raw = duffy.v2_get(&out.requests[0]).await;
        assert_eq!(raw.json(), (200, json!(message)), "{raw:?}");
    }
    assert!(duffy.v3_sessions(&tenant).await.is_empty());
}
