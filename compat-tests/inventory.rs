//! `cico inventory`: keyed, `--all` (and keyless), `--ssid`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Backend, Cico, Duffy, hostnames};
use crate::scenarios;

scenarios!(
    a_key_sees_only_its_own_nodes,
    all_lists_every_known_node,
    ssid_selects_one_session,
);

/// Gets nodes with `cico node get ARGS -f json` and returns the ssid.
async fn get(cico: &Cico, args: &[&str]) -> String {
    let mut command = vec!["node", "get"];
    command.extend_from_slice(args);
    command.extend_from_slice(&["-f", "json"]);
    let out = cico.run(&command).await;
    out.assert_ok();
    out.rows()[0]["comment"]
        .as_str()
        .expect("the ssid")
        .to_owned()
}

/// Keyed `inventory`: each tenant sees exactly the nodes of its sessions.
async fn a_key_sees_only_its_own_nodes(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let alice = duffy.tenant("ci-alice", 10).await;
    let bob = duffy.tenant("ci-bob", 10).await;
    duffy.wait_filled().await;
    let alice_cico = Cico::keyed(&duffy.endpoint(), &alice.key);
    let bob_cico = Cico::keyed(&duffy.endpoint(), &bob.key);
    let alice_ssid = get(&alice_cico, &["--count", "2"]).await;
    let bob_ssid = get(&bob_cico, &["--release", "8"]).await;

    for (cico, tenant, ssid) in [
        (&alice_cico, &alice, &alice_ssid),
        (&bob_cico, &bob, &bob_ssid),
    ] {
        let out = cico.run(&["inventory", "-f", "json"]).await;
        out.assert_ok();
        assert_eq!(
            out.requests,
            [
                format!("/Inventory?key={}", tenant.key),
                "/Inventory".to_owned()
            ],
            "{out}"
        );
        let rows = out.rows();
        let mut printed: Vec<String> = rows
            .iter()
            .map(|r| r["hostname"].as_str().expect("hostname").to_owned())
            .collect();
        printed.sort();
        let session = duffy.v3_session(tenant, ssid).await;
        assert_eq!(printed, hostnames(&session), "{out}");
        assert!(rows.iter().all(|r| r["comment"] == json!(ssid)), "{out}");
        assert!(
            rows.iter().all(|r| r["current_state"] == "Deployed"),
            "{out}"
        );
    }
}

/// `inventory --all`, and `inventory` with no key at all: one row per node that has a
/// hostname, with v2 state names, matching `GET /api/v1/nodes`.
async fn all_lists_every_known_node(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-all", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let ssid = get(&cico, &["--count", "2"]).await;
    // Settle: the hand-out is refilled and the slow pool's node is ready, so that the
    // inventory and the v3 listing see the same nodes.
    duffy.wait_filled().await;
    duffy.wait_ready(&[("c9s-slow", 1)]).await;

    let all = cico.run(&["inventory", "--all", "-f", "json"]).await;
    all.assert_ok();
    assert_eq!(all.requests, ["/Inventory"], "{all}");
    let keyless = Cico::new(&duffy.endpoint());
    let anonymous = keyless.run(&["inventory", "-f", "json"]).await;
    anonymous.assert_ok();
    assert_eq!(anonymous.rows(), all.rows());

    let nodes = duffy.v3_nodes().await;
    let expected: BTreeMap<String, Value> = nodes
        .iter()
        .filter(|n| n["hostname"].is_string() && n["state"] != "done")
        .map(|n| {
            let state = match n["state"].as_str().expect("state") {
                "ready" => "Ready",
                "deployed" => "Deployed",
                other => panic!("unexpected node state {other}: {n}"),
            };
            let comment = if n["state"] == "deployed" {
                json!(ssid)
            } else {
                Value::Null
            };
            // The poolmap request that leads to the pool (the compat configuration's).
            let (ver, arch, flavor) = match n["pool"].as_str().expect("pool") {
                "c7-x86-64" => (json!("7"), json!("x86_64"), Value::Null),
                "c7-x86-64-medium" => (json!("7"), json!("x86_64"), json!("medium")),
                "c8-x86-64" => (json!("8"), json!("x86_64"), Value::Null),
                "c8-aarch64-tiny" => (json!("8"), json!("aarch64"), json!("tiny")),
                "c9s-slow" => (json!("9-stream"), json!("x86_64"), Value::Null),
                "c6-never" => (json!("6"), json!("x86_64"), Value::Null),
                other => panic!("unexpected pool {other}: {n}"),
            };
            let row = json!({
                "host_id": n["id"],
                "hostname": n["hostname"],
                "ip_address": n["ipaddr"],
                "chassis": null,
                "used_count": n["used_count"],
                "current_state": state,
                "comment": comment,
                "distro": null,
                "rel": null,
                "centos_version": ver,
                "architecture": arch,
                "node_pool": n["pool"],
                "console_port": null,
                "flavor": flavor,
            });
            (n["hostname"].as_str().expect("hostname").to_owned(), row)
        })
        .collect();
    let printed: BTreeMap<String, Value> = all
        .rows()
        .into_iter()
        .map(|r| (r["hostname"].as_str().expect("hostname").to_owned(), r))
        .collect();
    // 5 + 2 + 3 + 2 + 1 ready, 2 deployed; the never-ready node has no hostname yet.
    assert_eq!(printed.len(), 15, "{all}");
    assert_eq!(printed, expected);

    // `-f csv | sed 1d` consumers rely on the column order.
    let csv = cico.run(&["inventory", "--all", "-f", "csv"]).await;
    csv.assert_ok();
    assert_eq!(
        csv.lines()[0],
        "\"host_id\",\"hostname\",\"ip_address\",\"chassis\",\"used_count\",\"current_state\",\
         \"comment\",\"distro\",\"rel\",\"centos_version\",\"architecture\",\"node_pool\",\
         \"console_port\",\"flavor\""
    );
    assert_eq!(csv.lines().len(), 16, "{csv}");
}

/// `inventory --ssid S` (keyed and with `--all`): only that session's nodes.
async fn ssid_selects_one_session(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-ssid", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let first = get(&cico, &[]).await;
    let second = get(&cico, &["--count", "2", "--release", "8"]).await;
    assert_ne!(first, second);

    for (ssid, count) in [(&first, 1), (&second, 2)] {
        let session = duffy.v3_session(&tenant, ssid).await;
        for all in [&[][..], &["--all"][..]] {
            let mut args = vec!["inventory", "--ssid", ssid.as_str()];
            args.extend_from_slice(all);
            args.extend_from_slice(&["-f", "value", "-c", "hostname", "-c", "comment"]);
            let out = cico.run(&args).await;
            out.assert_ok();
            let mut fields = out.fields();
            fields.sort();
            assert_eq!(fields.len(), count, "{out}");
            let printed: Vec<&str> = fields.iter().map(|f| f[0]).collect();
            assert_eq!(printed, hostnames(&session), "{out}");
            assert!(fields.iter().all(|f| f[1] == ssid), "{out}");
        }
    }
    let none = cico
        .run(&["inventory", "--ssid", "999999", "-f", "value"])
        .await;
    none.assert_ok();
    assert_eq!(none.stdout, "", "{none}");
}
