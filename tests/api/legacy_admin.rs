//! The v2 admin paths (`/NodeSetAdmin`, `/NodeRecover`, `/PauseService`, `/ResumeService`,
//! `/Overtime`, `/Help`) through the translation layer, in front of the real v3 API.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Answer, Auth, Backend, TestApp, spawn_app_config};

const V2_CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
metaclient:
  poolmap:
    - {ver: 9-stream, pool: "virt"}
    - {ver: "8", pool: "small"}
nodepools:
  concrete:
    virt: {mechanism: {type: noop}, fill-level: 3}
    small: {mechanism: {type: noop}, fill-level: 1}
"#;

const INSUFFICIENT: &str = "Insufficient Nodes in READY State";

async fn v2(app: &TestApp, path: &str) -> Answer {
    app.get(path, Auth::None).await
}

fn done(a: &Answer) {
    assert_eq!(
        (a.status.as_u16(), &a.text),
        (200, &"\"Done\"".to_owned()),
        "{a:?}"
    );
}

fn msg(a: &Answer, status: u16, text: &str) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.body, json!({"msg": text}), "{}", a.text);
}

async fn node_set_admin_and_recover(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let admin = &app.admin_key;
    let id = app.node_ids("state=ready&pool=small").await[0];

    done(
        &v2(
            &app,
            &format!("/NodeSetAdmin/{id}?key={admin}&reason=bad+disk"),
        )
        .await,
    );
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(node.body["node"]["state"], "downtime");
    assert_eq!(node.body["node"]["data"]["downtime"]["reason"], "bad disk");
    // The only ready node of the pool is out: v2 clients are told to retry.
    let got = v2(&app, &format!("/Node/get?key={key}&ver=8")).await;
    assert_eq!(
        (got.status.as_u16(), got.text.as_str()),
        (200, INSUFFICIENT)
    );
    // The unkeyed inventory shows it in v2's admin state.
    let inv = v2(&app, "/Inventory").await;
    let row = inv
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == id)
        .cloned()
        .unwrap();
    assert_eq!(row[5], "Admin");

    done(&v2(&app, &format!("/NodeRecover/{id}?key={admin}")).await);
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(node.body["node"]["state"], "ready");
    assert_eq!(
        node.body["node"]["data"]["admin_log"][1]["reason"],
        "v2 NodeRecover call"
    );
    let got = v2(&app, &format!("/Node/get?key={key}&ver=8")).await;
    assert_eq!(got.status, 200);
    assert!(got.body["hosts"].is_array(), "{}", got.text);

    // Refusals.
    msg(
        &v2(&app, &format!("/NodeRecover/{id}?key={admin}")).await,
        409,
        &format!("node {id} is deployed: only a node in downtime can be recovered"),
    );
    msg(
        &v2(&app, &format!("/NodeSetAdmin/999999?key={admin}")).await,
        404,
        "Invalid node ID",
    );
    msg(
        &v2(&app, &format!("/NodeSetAdmin/abc?key={admin}")).await,
        404,
        "Invalid node ID",
    );
    msg(
        &v2(&app, &format!("/NodeSetAdmin/{id}")).await,
        403,
        "Invalid duffy key",
    );
    msg(
        &v2(
            &app,
            &format!("/NodeSetAdmin/{id}?key=00000000-0000-0000-0000-000000000000"),
        )
        .await,
        403,
        "Invalid duffy key",
    );
    assert_eq!(app.get("/NodeSetAdmin/", Auth::None).await.status, 404);
}

async fn pause_and_resume_service(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let admin = &app.admin_key;
    let held = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    let ssid = held.body["ssid"].as_str().unwrap().to_owned();

    done(&v2(&app, &format!("/PauseService?key={admin}&reason=upgrade")).await);
    let got = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    assert_eq!(
        (got.status.as_u16(), got.text.as_str()),
        (200, INSUFFICIENT)
    );
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"]["reason"], "upgrade");
    // Giving nodes back works while paused.
    done(&v2(&app, &format!("/Node/done?key={key}&ssid={ssid}")).await);
    done(&v2(&app, &format!("/ResumeService?key={admin}")).await);
    let got = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    assert!(got.body["hosts"].is_array(), "{}", got.text);

    // One pool.
    done(&v2(&app, &format!("/PauseService?key={admin}&pool=small")).await);
    let got = v2(&app, &format!("/Node/get?key={key}&ver=8")).await;
    assert_eq!(got.text, INSUFFICIENT);
    let got = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    assert!(got.body["hosts"].is_array(), "{}", got.text);
    done(&v2(&app, &format!("/ResumeService?key={admin}&pool=small")).await);
    let got = v2(&app, &format!("/Node/get?key={key}&ver=8")).await;
    assert!(got.body["hosts"].is_array(), "{}", got.text);
    msg(
        &v2(&app, &format!("/PauseService?key={admin}&pool=nope")).await,
        404,
        "Invalid pool",
    );
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"], Value::Null);
    assert_eq!(s.body["service"]["paused_pools"], json!([]));
}

async fn overtime_in_v2(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let admin = &app.admin_key;
    let old = v2(&app, &format!("/Node/get?key={key}&ver=9-stream")).await;
    let new = v2(&app, &format!("/Node/get?key={key}&ver=8")).await;
    let old_ssid: i64 = old.body["ssid"].as_str().unwrap().parse().unwrap();
    app.exec_at(
        "UPDATE sessions SET created_at = $1 WHERE id = $2",
        duffy::store::now() - chrono::TimeDelta::minutes(61),
        old_ssid,
    )
    .await;
    let a = v2(&app, &format!("/Overtime?key={admin}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = a.body.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", a.text);
    assert_eq!(rows[0]["ssid"], old_ssid.to_string());
    assert_eq!(rows[0]["hostname"], old.body["hosts"][0]);
    assert_eq!(rows[0]["tenant"], "job");
    assert_eq!(rows[0]["minutes"], 61);
    let a = v2(&app, &format!("/Overtime?key={admin}&minutes=0")).await;
    assert_eq!(a.body.as_array().unwrap().len(), 2, "{}", a.text);
    assert!(new.body["hosts"].is_array());
    msg(
        &v2(&app, &format!("/Overtime?key={admin}&minutes=soon")).await,
        400,
        "minutes must be an integer >= 0",
    );
}

async fn non_admins_are_refused_everywhere(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let (_, key) = app.tenant("job", None).await;
    let id = app.node_ids("state=ready&pool=small").await[0];
    for path in [
        format!("/NodeSetAdmin/{id}?key={key}"),
        format!("/NodeRecover/{id}?key={key}"),
        format!("/PauseService?key={key}"),
        format!("/PauseService?key={key}&pool=small"),
        format!("/ResumeService?key={key}"),
        format!("/Overtime?key={key}"),
    ] {
        msg(&v2(&app, &path).await, 403, "Admin key required");
    }
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(node.body["node"]["state"], "ready");
    let s = app.get("/api/v1/service", Auth::None).await;
    assert_eq!(s.body["service"]["paused"], Value::Null);
}

async fn help_lists_the_v2_calls(backend: Backend) {
    let app = spawn_app_config(backend, V2_CONFIG).await;
    let a = v2(&app, "/Help").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    for call in [
        "/Node/get",
        "/Node/done",
        "/Node/fail",
        "/Inventory",
        "/NodeSetAdmin/",
        "/NodeRecover/",
        "/PauseService",
        "/ResumeService",
        "/Overtime",
        "/Help",
    ] {
        assert!(a.text.contains(call), "{call} missing from /Help");
    }
    let a = app
        .request(reqwest::Method::POST, "/Help", Auth::None, None)
        .await;
    assert_eq!(a.status, 405);
}

both_backends!(
    node_set_admin_and_recover,
    pause_and_resume_service,
    overtime_in_v2,
    non_admins_are_refused_everywhere,
    help_lists_the_v2_calls,
);
