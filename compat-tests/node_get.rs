//! `cico node get`: counts, releases, architectures, flavors and output formats, each
//! cross-checked against the session the v3 API shows.

use serde_json::{Value, json};

use crate::harness::{Backend, Cico, Duffy, Tenant, hostnames};
use crate::scenarios;

scenarios!(
    the_ci_recipe_prints_hostname_and_ssid,
    three_nodes_as_json_rows,
    an_architecture_maps_to_its_pool,
    a_flavor_maps_to_its_pool,
);

/// The tenant's only active session in v3; its id must be `ssid`.
async fn only_session(duffy: &Duffy, tenant: &Tenant, ssid: &str) -> Value {
    let sessions = duffy.v3_sessions(tenant).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = sessions[0].clone();
    assert_eq!(ssid, session["id"].to_string(), "ssid = the v3 session id");
    assert_eq!(session["active"], true);
    session
}

/// `cico node get -f value -c hostname -c comment`: one `HOST SSID` line per node.
async fn the_ci_recipe_prints_hostname_and_ssid(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-recipe", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let out = cico
        .run(&[
            "node",
            "get",
            "--release",
            "7",
            "--arch",
            "x86_64",
            "--retry-count",
            "2",
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
    assert_eq!(out.requests_to("/Node/get"), 1, "{out}");
    let fields = out.fields();
    assert_eq!(fields.len(), 1, "{out}");
    let (host, ssid) = (fields[0][0], fields[0][1]);
    let session = only_session(&duffy, &tenant, ssid).await;
    assert_eq!(hostnames(&session), [host]);
    assert_eq!(session["nodes"][0]["pool"], "c7-x86-64");
    assert_eq!(session["nodes"][0]["state"], "deployed");
}

/// `--count 3 --release 8 --arch x86_64 -f json`: three full inventory rows of one session.
async fn three_nodes_as_json_rows(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-three", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let out = cico
        .run(&[
            "node",
            "get",
            "--count",
            "3",
            "--release",
            "8",
            "--arch",
            "x86_64",
            "-f",
            "json",
        ])
        .await;
    out.assert_ok();
    assert_eq!(
        out.requests.first().map(String::as_str),
        Some(format!("/Node/get?key={}&arch=x86_64&ver=8&count=3", tenant.key).as_str()),
        "{out}"
    );
    let rows = out.rows();
    assert_eq!(rows.len(), 3, "{out}");
    let ssid = rows[0]["comment"]
        .as_str()
        .expect("comment is the ssid string");
    let session = only_session(&duffy, &tenant, ssid).await;
    let mut printed: Vec<String> = rows
        .iter()
        .map(|r| r["hostname"].as_str().expect("hostname").to_owned())
        .collect();
    printed.sort();
    assert_eq!(printed, hostnames(&session));
    for node in session["nodes"].as_array().expect("nodes") {
        let row = rows
            .iter()
            .find(|r| r["hostname"] == node["hostname"])
            .expect("a row per node");
        assert_eq!(
            row,
            &json!({
                "host_id": node["id"],
                "hostname": node["hostname"],
                "ip_address": node["ipaddr"],
                "chassis": null,
                "used_count": 1,
                "current_state": "Deployed",
                "comment": ssid,
                "distro": null,
                "rel": null,
                "centos_version": "8",
                "architecture": "x86_64",
                "node_pool": "c8-x86-64",
                "console_port": null,
                "flavor": null,
            })
        );
    }
}

/// `--arch aarch64 --release 8`: the flavor defaults to `tiny`, which the poolmap uses.
async fn an_architecture_maps_to_its_pool(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-arm", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let out = cico
        .run(&[
            "node",
            "get",
            "--arch",
            "aarch64",
            "--release",
            "8",
            "-f",
            "value",
            "-c",
            "hostname",
            "-c",
            "node_pool",
            "-c",
            "comment",
        ])
        .await;
    out.assert_ok();
    let fields = out.fields();
    assert_eq!(fields.len(), 1, "{out}");
    // cliff prints the selected columns in the table's order: hostname, comment, node_pool.
    assert_eq!(fields[0][2], "c8-aarch64-tiny", "{out}");
    let session = only_session(&duffy, &tenant, fields[0][1]).await;
    assert_eq!(hostnames(&session), [fields[0][0]]);
    assert_eq!(session["nodes"][0]["pool"], "c8-aarch64-tiny");
}

/// `--flavor medium` selects the flavored pool; a flavor no entry names falls through to
/// the entry without one. The default table format lists the host.
async fn a_flavor_maps_to_its_pool(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-flavor", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let medium = cico
        .run(&["node", "get", "--flavor", "medium", "-f", "json"])
        .await;
    medium.assert_ok();
    assert!(
        medium.requests[0].ends_with("&arch=x86_64&ver=7&flavor=medium&count=1"),
        "{medium}"
    );
    let rows = medium.rows();
    assert_eq!(rows.len(), 1, "{medium}");
    assert_eq!(rows[0]["node_pool"], "c7-x86-64-medium");
    let ssid = rows[0]["comment"].as_str().expect("ssid");
    let session = only_session(&duffy, &tenant, ssid).await;
    assert_eq!(session["nodes"][0]["pool"], "c7-x86-64-medium");

    let small = cico.run(&["node", "get", "--flavor", "small"]).await;
    small.assert_ok();
    let sessions = duffy.v3_sessions(&tenant).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let newest = sessions
        .iter()
        .max_by_key(|s| s["id"].as_i64())
        .expect("a session");
    assert_eq!(newest["nodes"][0]["pool"], "c7-x86-64");
    let host = newest["nodes"][0]["hostname"].as_str().expect("hostname");
    assert!(small.stdout.contains(host), "{small}");
    assert!(small.stdout.contains("| Deployed "), "{small}");
}
