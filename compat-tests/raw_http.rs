//! kbsingh/centos-ci-scripts' flow over plain HTTP: `Node/get` on a base URL without a
//! trailing slash, `json.loads`, `ssh root@<host>` for each host, `Node/done`.

use std::time::Duration;

use serde_json::json;
use tokio::process::Command;

use crate::harness::{Backend, Duffy, hostnames};
use crate::scenarios;

scenarios!(the_centos_ci_scripts_flow);

/// Whether `name` is a fully qualified host name: RFC 1123 labels, at least one dot.
fn is_fqdn(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `ssh -G root@HOST` (resolves the configuration, connects nowhere) accepts the host.
async fn assert_ssh_accepts(host: &str) {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("/usr/bin/ssh")
            .args(["-F", "/dev/null", "-G", &format!("root@{host}")])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh -G timed out")
    .expect("run /usr/bin/ssh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh -G root@{host}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Vec<&str> = stdout.lines().collect();
    assert!(
        config.contains(&format!("hostname {host}").as_str()),
        "{stdout}"
    );
    assert!(config.contains(&"user root"), "{stdout}");
}

/// The script's loop for one `count` spelling: get, check every host, release.
async fn get_ssh_done(duffy: &Duffy, count_param: &str, count: usize) {
    let tenant = duffy.tenant(&format!("ci-script-{count_param}"), 10).await;
    let key = &tenant.key;
    let raw = duffy
        .v2_get(&format!(
            "/Node/get?key={key}&ver=7&arch=x86_64&{count_param}={count}"
        ))
        .await;
    assert_eq!(raw.status, 200, "{raw:?}");
    assert!(raw.content_type.starts_with("application/json"), "{raw:?}");
    let (_, body) = raw.json();
    let hosts: Vec<String> = body["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h.as_str().expect("a host name").to_owned())
        .collect();
    let ssid = body["ssid"].as_str().expect("the ssid is a string");
    assert_eq!(hosts.len(), count, "{body}");
    let session = duffy.v3_session(&tenant, ssid).await;
    assert_eq!(ssid, session["id"].to_string());
    // Full names, in node-id order.
    let mut by_id: Vec<(i64, String)> = session["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let id = n["id"].as_i64().expect("id");
            (id, n["hostname"].as_str().expect("hostname").to_owned())
        })
        .collect();
    by_id.sort();
    let names: Vec<String> = by_id.into_iter().map(|(_, h)| h).collect();
    assert_eq!(hosts, names);
    let mut sorted = hosts.clone();
    sorted.sort();
    assert_eq!(sorted, hostnames(&session));
    for host in &hosts {
        assert!(is_fqdn(host), "{host:?} is not a fully qualified host name");
        assert_ssh_accepts(host).await;
    }

    let done = duffy
        .v2_get(&format!("/Node/done?key={key}&ssid={ssid}"))
        .await;
    assert_eq!(done.json(), (200, json!("Done")), "{done:?}");
    assert_eq!(duffy.v3_session(&tenant, ssid).await["active"], false);
}

/// `count` (since Nov 2015) and the older `i_count`.
async fn the_centos_ci_scripts_flow(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    duffy.wait_filled().await;
    get_ssh_done(&duffy, "count", 1).await;
    get_ssh_done(&duffy, "i_count", 2).await;
}

#[test]
fn fqdn_syntax() {
    if crate::harness::skipped() {
        return;
    }
    assert!(is_fqdn("c7-x86-64-1.ci.test"));
    assert!(is_fqdn("n1.crusty.ci.centos.org"));
    assert!(!is_fqdn("localhost"));
    assert!(!is_fqdn("virt-x86_64-1.noop.test"));
    assert!(!is_fqdn("-a.b"));
    assert!(!is_fqdn("a..b"));
}
