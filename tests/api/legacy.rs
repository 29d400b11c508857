//! The v2 endpoints end to end: the translation layer in front of the real v3 API, on both
//! backends (`docs/legacy-v2.md` §5).

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::both_backends;
use crate::helpers::{
    Answer, Auth, Backend, TestApp, load_config, spawn_app_config, spawn_app_unfilled,
};

/// v2 requests map `9-stream` onto `virt` (5 ready nodes), `8`/`8-stream` onto the reusable
/// `metal` machines, `7` onto an abstract pool; inventory names lose `.noop.test`.
const V2_CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
metaclient:
  poolmap:
    - {ver: 9-stream, arch: x86_64, pool: "virt"}
    - {ver: "^(8|8-stream)$", pool: "metal"}
    - {ver: "7", pool: "noop"}
  mangle_hostname: "{{ hostname | replace('.noop.test', '.v2') }}"
nodepools:
  abstract:
    noop:
      mechanism: {type: noop, noop: {hostname: "{{ pool }}{{ id }}.noop.test"}}
  concrete:
    virt: {extends: noop, fill-level: 5}
    metal:
      mechanism: {type: noop}
      reuse-nodes: {kind: metal}
      fill-level: 2
"#;

const INSUFFICIENT: &str = "Insufficient Nodes in READY State";

async fn v2(app: &TestApp, path: &str) -> Answer {
    app.get(path, Auth::None).await
}

fn is_text(a: &Answer, text: &str) {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(a.text, text);
}

fn is_json(a: &Answer, status: u16, value: Value) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.body, value, "{}", a.text);
}

fn hosts(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_value(a.body["hosts"].clone()).unwrap_or_else(|_| panic!("{}", a.text))
}

fn ssid_in(a: &Answer) -> String {
    a.body["ssid"]
        .as_str()
        .unwrap_or_else(|| panic!("ssid is a string: {}", a.text))
        .to_owned()
}

async fn a_v2_job_gets_lists_and_returns_nodes(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let got = v2(
        &app,
        &format!("/Node/get?key={key}&ver=9-stream&arch=x86_64&count=2"),
    )
    .await;
    let hosts = hosts(&got);
    let ssid = ssid_in(&got);
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts.iter().all(|h| h.ends_with(".noop.test")),
        "full names: {hosts:?}"
    );
    // The ssid is the v3 session id, and the hosts are its nodes in id order.
    let session = app
        .get(&format!("/api/v1/sessions/{ssid}"), Auth::Bearer(&key))
        .await;
    let v3_hosts: Vec<&str> = session.body["session"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(v3_hosts, hosts);

    // Keyed inventory: mangled names with the ssid as text, each one a hostname of the full
    // inventory (cico looks them up there).
    let mangled: Vec<String> = hosts
        .iter()
        .map(|h| h.replace(".noop.test", ".v2"))
        .collect();
    let keyed = v2(&app, &format!("/Inventory?key={key}")).await;
    is_json(&keyed, 200, json!([[mangled[0], ssid], [mangled[1], ssid]]));
    let full = v2(&app, "/Inventory").await;
    assert_eq!(full.status, 200);
    let rows = full.body.as_array().unwrap();
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 14));
    let mine: Vec<&Value> = rows.iter().filter(|r| r[6] == json!(ssid)).collect();
    assert_eq!(mine.len(), 2, "{}", full.text);
    for (row, name) in mine.iter().zip(&mangled) {
        assert_eq!(row[1], json!(name));
        assert_eq!(row[4], 1, "used once");
        assert_eq!(row[5], "Deployed");
        assert_eq!(row[11], "virt");
    }
    let ready = rows.iter().filter(|r| r[5] == "Ready").count();
    assert!(
        ready >= 2,
        "the rest of the pool is listed as Ready: {}",
        full.text
    );

    // Another tenant may not return it; its owner may, once.
    let (_, other) = app.tenant("other", None).await;
    let path = |k: &str| format!("/Node/done?key={k}&ssid={ssid}");
    is_json(
        &v2(&app, &path(&other)).await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    is_json(&v2(&app, &path(&key)).await, 200, json!("Done"));
    let session = app
        .get(&format!("/api/v1/sessions/{ssid}"), Auth::Bearer(&key))
        .await;
    assert_eq!(session.body["session"]["active"], false);
    is_json(
        &v2(&app, &path(&key)).await,
        200,
        json!({"msg": "Session not in Prod"}),
    );
    is_json(
        &v2(&app, &format!("/Inventory?key={key}")).await,
        200,
        json!([]),
    );
}

async fn v2_failures_have_their_v2_answers(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", Some(6)).await;
    let get = |query: String| {
        let app = &app;
        async move { v2(app, &format!("/Node/get?{query}")).await }
    };
    let failed = |text: &str| json!(format!("Failed to allocate nodes: {text}"));
    is_json(
        &get("ver=9-stream".into()).await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    is_json(
        &get("key=&ver=9-stream".into()).await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    is_json(
        &get("key=not-a-key&ver=9-stream".into()).await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    is_json(
        &get(format!("key={key}&ver=9-stream&count=0")).await,
        200,
        failed("count must be an integer >= 1"),
    );
    is_json(
        &get(format!("key={key}&ver=6")).await,
        200,
        failed("no pool for ver=6 arch=x86_64 flavor="),
    );
    is_json(
        &get(format!("key={key}&ver=7&arch=aarch64")).await,
        200,
        failed("no pool for ver=7 arch=aarch64 flavor=tiny"),
    );
    is_json(
        &get(format!("key={key}&ver=7")).await,
        200,
        failed("no pool for ver=7 arch=x86_64 flavor="),
    );
    is_json(
        &get(format!("key={key}&ver=9-stream&count=6")).await,
        200,
        failed("count=6 exceeds the maximum of 5 for pool virt"),
    );
    is_json(
        &get(format!("key={key}&ver=9-stream&count=99999999999999999999")).await,
        200,
        failed("count=99999999999999999999 exceeds the maximum of 5 for pool virt"),
    );
    // `i_count` is the old spelling of `count`; `count` wins when both are given.
    assert_eq!(
        hosts(&get(format!("key={key}&ver=9-stream&i_count=3")).await).len(),
        3
    );
    assert_eq!(
        hosts(&get(format!("key={key}&ver=9-stream&i_count=5&count=2")).await).len(),
        2
    );
    is_json(
        &get(format!("key={key}&ver=9-stream&count=2")).await,
        200,
        failed("quota exceeded: requested nodes (2) + current allocation (5) = 7 > 6"),
    );
    // metal has two machines registered below; asking for both when one is ready: retry.
    for (i, kind) in ["metal", "other"].iter().enumerate() {
        let body = json!({"hostname": format!("m{i}.lab.test"), "ipaddr": format!("192.0.2.{}", i + 1), "data": {"kind": kind}});
        assert_eq!(
            app.post("/api/v1/nodes", app.admin_auth(), &body)
                .await
                .status,
            201
        );
    }
    app.fill().await;
    let (_, roomy) = app.tenant("roomy", None).await;
    is_text(
        &get(format!("key={roomy}&ver=8&count=2")).await,
        INSUFFICIENT,
    );

    for endpoint in ["done", "fail"] {
        let at = |query: &str| {
            let app = &app;
            let path = format!("/Node/{endpoint}?{query}");
            async move { v2(app, &path).await }
        };
        let invalid_session = json!({"msg": "Invalid session ID"});
        is_json(
            &at("ssid=1").await,
            403,
            json!({"msg": "Invalid duffy key"}),
        );
        is_json(
            &at(&format!("key={key}")).await,
            403,
            invalid_session.clone(),
        );
        is_json(
            &at(&format!("key={key}&ssid=578e1a0b")).await,
            403,
            invalid_session.clone(),
        );
        is_json(
            &at(&format!("key={key}&ssid=999999")).await,
            403,
            invalid_session,
        );
        is_json(
            &at("key=not-a-key&ssid=1").await,
            403,
            json!({"msg": "Invalid duffy key"}),
        );
    }
    is_json(
        &v2(&app, "/Inventory?key=not-a-key").await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    let post = app
        .request(reqwest::Method::POST, "/Node/get", Auth::None, None)
        .await;
    is_json(&post, 405, json!({"detail": "Method Not Allowed"}));
    is_json(
        &v2(&app, "/Node/list").await,
        404,
        json!({"detail": "Not Found"}),
    );
}

/// `/Node/fail` then `/Node/done`: the machines go through deprovisioning and end failed;
/// nobody gets them again.
async fn failed_nodes_are_never_handed_out_again(backend: Backend) {
    let app = spawn_app_unfilled(backend, V2_CONFIG).await;
    for i in 1..=3 {
        let body = json!({"hostname": format!("m{i}.lab.test"), "ipaddr": format!("192.0.2.{i}"), "data": {"kind": "metal"}});
        assert_eq!(
            app.post("/api/v1/nodes", app.admin_auth(), &body)
                .await
                .status,
            201
        );
    }
    app.fill().await;
    let (_, key) = app.tenant("job", None).await;
    let got = v2(&app, &format!("/Node/get?key={key}&ver=8-stream&count=2")).await;
    let failed: HashSet<String> = hosts(&got).into_iter().collect();
    let ssid = ssid_in(&got);
    is_json(
        &v2(&app, &format!("/Node/fail?key={key}&ssid={ssid}")).await,
        200,
        json!("Done"),
    );
    // Held for the tenant (expiry pushed out), shown as failed.
    let session = app
        .get(&format!("/api/v1/sessions/{ssid}"), Auth::Bearer(&key))
        .await;
    assert_eq!(session.body["session"]["active"], true);
    let full = v2(&app, "/Inventory").await;
    let states: Vec<(&str, &str)> = full
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[1].as_str().unwrap(), r[5].as_str().unwrap()))
        .collect();
    for host in &failed {
        assert!(states.contains(&(host.as_str(), "Fail")), "{states:?}");
    }
    is_json(
        &v2(&app, &format!("/Node/done?key={key}&ssid={ssid}")).await,
        200,
        json!("Done"),
    );
    let report = app.deprovision().await;
    assert_eq!((report.failed, report.returned), (2, 0));
    app.fill().await;
    // Only the third machine can serve now; twice in a row, it is the only one handed out.
    is_text(
        &v2(&app, &format!("/Node/get?key={key}&ver=8&count=2")).await,
        INSUFFICIENT,
    );
    for _ in 0..2 {
        let got = v2(&app, &format!("/Node/get?key={key}&ver=8&count=1")).await;
        let host = &hosts(&got)[0];
        assert!(!failed.contains(host), "{host} was reported failed");
        assert_eq!(host, "m3.lab.test");
        v2(
            &app,
            &format!("/Node/done?key={key}&ssid={}", ssid_in(&got)),
        )
        .await;
        app.deprovision().await;
        app.fill().await;
    }
    let nodes = app.get("/api/v1/nodes", Auth::None).await;
    for node in nodes.body["nodes"].as_array().unwrap() {
        if failed.contains(node["hostname"].as_str().unwrap()) {
            assert_eq!(node["state"], "failed");
            assert_eq!(node["used_count"], 1);
        }
    }
}

async fn parallel_v2_requests_never_share_a_node(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let path = format!("/Node/get?key={key}&ver=9-stream&count=1");
    let answers = futures::future::join_all((0..20).map(|_| v2(&app, &path))).await;
    let mut seen = HashSet::new();
    let mut insufficient = 0;
    for a in &answers {
        if a.text == INSUFFICIENT {
            insufficient += 1;
        } else {
            for host in hosts(a) {
                assert!(seen.insert(host.clone()), "{host} handed out twice");
            }
        }
    }
    assert_eq!((seen.len(), insufficient), (5, 15));
}

/// Any query string, however broken, gets a 4xx or a v2 answer: never a 5xx.
async fn malformed_queries_never_fail_the_server(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", Some(3)).await;
    let value = prop_oneof![
        Just(key.clone()),
        Just(String::new()),
        "[0-9]{1,30}",
        "-[0-9]{1,20}",
        "(9-stream|8|7|x86_64|aarch64|tiny)",
        "%[0-9a-zA-Z%]{0,4}",
        "[a-zA-Z0-9 +;,/?:@$!'()*\\[\\]\\.~_-]{0,24}",
        "\\PC{0,12}",
        "[a-z]{3000,5000}",
    ];
    let name = prop_oneof![
        "(key|ver|arch|flavor|count|i_count|ssid|exclude_host)",
        "(count|key|ssid)\\[[a-z0-9]{0,3}\\]",
        "[a-z%\\[\\]]{0,6}",
    ];
    let pair = (name, value).prop_map(|(n, v)| format!("{n}={v}"));
    let query = prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&"));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&query, |query| {
            for endpoint in ["/Node/get", "/Node/done", "/Node/fail", "/Inventory"] {
                let a = handle.block_on(v2(&app, &format!("{endpoint}?{query}")));
                prop_assert!(
                    a.status.as_u16() < 500,
                    "{endpoint}?{query} answered {}: {}",
                    a.status,
                    a.text
                );
                prop_assert!(!a.text.is_empty(), "{endpoint}?{query}: empty body");
            }
            Ok(())
        })
    });
    result.unwrap();
    // A very long value and a bare `?`.
    // (an http URI holds at most 64 KiB)
    let long = "9".repeat(60_000);
    for path in [
        format!("/Node/get?key={key}&count={long}"),
        "/Inventory?".into(),
    ] {
        let a = v2(&app, &path).await;
        assert!(a.status.as_u16() < 500, "{}", a.status);
    }
    // The server still serves.
    assert_eq!(v2(&app, "/Inventory").await.status, 200);
}

/// `duffy serve-legacy`'s set-up: the layer on its own listener forwarding to another
/// server, with a usermap entry (Basic auth) beside a key it does not list (Bearer).
async fn a_standalone_layer_forwards_to_a_v3_server(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, listed) = app.tenant("listed", None).await;
    let (_, unlisted) = app.tenant("unlisted", None).await;
    let yaml = V2_CONFIG.replace(
        "metaclient:\n",
        &format!("metaclient:\n  usermap: {{\"{listed}\": listed}}\n"),
    );
    let config = load_config(&yaml);
    let legacy =
        duffy::legacy::Legacy::new(&config.metaclient, &format!("{}/api/v1", app.address)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let token = CancellationToken::new();
    let server = tokio::spawn(duffy::legacy::serve(
        listener,
        Arc::new(legacy),
        config.app.connections,
        token.clone(),
    ));
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = &client;
        let address = &address;
        async move {
            let r = client.get(format!("{address}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    for key in [&listed, &unlisted] {
        let (status, body) = get(format!("/Node/get?key={key}&ver=9-stream")).await;
        assert_eq!(status, 200, "{body}");
        let ssid = body["ssid"].as_str().unwrap().to_owned();
        let (_, keyed) = get(format!("/Inventory?key={key}")).await;
        assert_eq!(keyed.as_array().unwrap().len(), 1);
        assert_eq!(keyed[0][1], json!(ssid));
        assert_eq!(
            get(format!("/Node/done?key={key}&ssid={ssid}")).await,
            (200, json!("Done"))
        );
    }
    // The v3 API is not served by the standalone layer; its own metrics are.
    assert_eq!(get("/api/v1/pools".into()).await.0, 404);
    let metrics = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"duffy_v2_calls_total{endpoint="/Node/get",outcome="ok"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"duffy_http_requests_total{method="GET",route="/Node/done",status="200"} 2"#
        ),
        "{metrics}"
    );
    token.cancel();
    server.await.unwrap();
}

async fn the_unkeyed_inventory_needs_anonymous_reads(backend: Backend) {
    let yaml = format!("app: {{anonymous-read: false}}\n{V2_CONFIG}");
    let app = spawn_app_config(backend, &yaml).await;
    let (_, key) = app.tenant("job", None).await;
    is_json(
        &v2(&app, "/Inventory").await,
        403,
        json!({"msg": "Invalid duffy key"}),
    );
    // Keyed calls still work.
    is_json(
        &v2(&app, &format!("/Inventory?key={key}")).await,
        200,
        json!([]),
    );
    let got = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    assert_eq!(hosts(&got).len(), 1);
}

/// Pools reached by exact, regex and templated entries; one shadowed by an earlier entry,
/// one that no entry names.
const INVENTORY_CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
metaclient:
  poolmap:
    - {ver: "7", arch: x86_64, flavor: medium, pool: c7-medium}
    - {ver: "7", arch: x86_64, pool: c7}
    - {ver: "^(8|8-stream)$", arch: aarch64, pool: "c8-aarch64-{{ flavor }}"}
    - {ver: "7", arch: x86_64, flavor: "^(small|large)$", pool: shadowed}
nodepools:
  abstract:
    noop:
      mechanism: {type: noop, noop: {hostname: "{{ pool }}-{{ id }}.noop.test"}}
  concrete:
    c7-medium: {extends: noop, fill-level: 1}
    c7: {extends: noop, fill-level: 2}
    c8-aarch64-tiny: {extends: noop, fill-level: 1}
    shadowed: {extends: noop, fill-level: 1}
    spare: {extends: noop, fill-level: 1}
"#;

/// The unkeyed inventory's `centos_version`, `architecture` and `flavor` are the v2 request
/// leading to each node's pool, `null` where none does; an imported node's `data.v2` fills
/// `chassis`, `distro`, `rel` and `console_port`.
async fn the_unkeyed_inventory_shows_the_request_behind_each_pool(backend: Backend) {
    let app = spawn_app_config(backend, INVENTORY_CONFIG).await;
    let imported = json!({
        "hostname": "old-host.lab.test", "ipaddr": "192.0.2.7", "pool": "c7",
        "data": {"v2": {"chassis": "chassis-3", "distro": "centos", "rel": "7.9.2009",
                        "console_port": 7003, "ver": "6", "arch": "i386", "comment": "1a2b3c"}}
    });
    let created = app.post("/api/v1/nodes", app.admin_auth(), &imported).await;
    assert_eq!(created.status, 201, "{created:?}");
    let (_, key) = app.tenant("job", None).await;
    // v2's default request gets one of the c7 nodes.
    let got = v2(&app, &format!("/Node/get?key={key}")).await;
    let host = hosts(&got)[0].clone();
    assert!(host.starts_with("c7-"), "{host}");
    let ssid = ssid_in(&got);

    let full = v2(&app, "/Inventory").await;
    assert_eq!(full.status, 200, "{full:?}");
    let rows = full.body.as_array().unwrap();
    // 1 + 2 + 1 + 1 + 1 filled nodes and the imported one.
    assert_eq!(rows.len(), 7, "{}", full.text);
    let expected = |pool: &str| match pool {
        "c7-medium" => json!(["7", "x86_64", "medium"]),
        "c7" => json!(["7", "x86_64", null]),
        "c8-aarch64-tiny" => json!(["8", "aarch64", "tiny"]),
        "shadowed" | "spare" => json!([null, null, null]),
        other => panic!("unexpected pool {other}"),
    };
    for row in rows {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 14);
        let pool = row[11].as_str().unwrap();
        assert_eq!(json!([row[9], row[10], row[13]]), expected(pool), "{row:?}");
        let v2_columns = json!([row[3], row[7], row[8], row[12]]);
        if row[1] == "old-host.lab.test" {
            assert_eq!(v2_columns, json!(["chassis-3", "centos", "7.9.2009", 7003]));
            assert_eq!(row[5], "Active");
            assert_eq!(row[6], Value::Null, "an old v2 comment is not an ssid");
        } else {
            assert_eq!(v2_columns, json!([null, null, null, null]), "{row:?}");
        }
        if row[1] == json!(host) {
            assert_eq!(row[6], json!(ssid));
            assert_eq!(row[5], "Deployed");
        }
    }
    // The same again: the lookups are remembered, the answer does not change.
    assert_eq!(v2(&app, "/Inventory").await.body, full.body);
}

/// With the embedded default configuration, a bare `/Node/get?key=K` (v2's default request,
/// `ver=7 arch=x86_64`, as a plain `cico node get` sends it) gets a node.
async fn the_embedded_default_serves_v2_s_default_request(backend: Backend) {
    let app = spawn_app_config(backend, duffy::config::EMBEDDED_DEFAULT).await;
    let (_, key) = app.tenant("job", None).await;
    let got = v2(&app, &format!("/Node/get?key={key}")).await;
    let hosts = hosts(&got);
    assert_eq!(hosts.len(), 1, "{got:?}");
    assert!(
        hosts[0].starts_with("virt-noop-centos-7-x86-64-"),
        "{hosts:?}"
    );
    let ssid = ssid_in(&got);
    let session = app
        .get(&format!("/api/v1/sessions/{ssid}"), Auth::Bearer(&key))
        .await;
    assert_eq!(
        session.body["session"]["nodes"][0]["pool"],
        "virt-noop-centos-7-x86_64"
    );
    // cico's defaults spelled out.
    let cico = v2(
        &app,
        &format!("/Node/get?key={key}&arch=x86_64&ver=7&count=1"),
    )
    .await;
    assert_eq!(
        cico.body["hosts"].as_array().map(Vec::len),
        Some(1),
        "{cico:?}"
    );
    // Its inventory rows: the request of each pool, none for the metal pool no entry names.
    let full = v2(&app, "/Inventory").await;
    for row in full.body.as_array().unwrap() {
        let expected = match row[11].as_str().unwrap() {
            "virt-noop-centos-7-x86_64" => json!(["7", "x86_64", null]),
            "virt-noop-centos-8s-x86_64" => json!(["8-stream", "x86_64", null]),
            "virt-noop-centos-9s-x86_64" => json!(["9-stream", "x86_64", null]),
            "metal-noop-centos-9s-x86_64" => json!([null, null, null]),
            other => panic!("unexpected pool {other}"),
        };
        assert_eq!(json!([row[9], row[10], row[13]]), expected, "{row}");
    }
}

both_backends!(
    the_unkeyed_inventory_shows_the_request_behind_each_pool,
    the_embedded_default_serves_v2_s_default_request,
    a_v2_job_gets_lists_and_returns_nodes,
    v2_failures_have_their_v2_answers,
    failed_nodes_are_never_handed_out_again,
    parallel_v2_requests_never_share_a_node,
    malformed_queries_never_fail_the_server,
    a_standalone_layer_forwards_to_a_v3_server,
    the_unkeyed_inventory_needs_anonymous_reads,
);
