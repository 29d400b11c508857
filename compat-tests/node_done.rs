//! `cico node done SSID`: the session's rows are printed and the v3 session is retired;
//! nobody else can retire it.

use serde_json::json;

use crate::harness::{Backend, Cico, Duffy, hostnames};
use crate::scenarios;

scenarios!(node_done_retires_the_session, another_key_cannot_retire_it);

/// `node done S` prints the session's rows (as they were before) and retires it in v3;
/// afterwards the keyed inventory is empty and a second `done` is told "Session not in Prod".
async fn node_done_retires_the_session(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-done", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &tenant.key);
    let got = cico
        .run(&[
            "node", "get", "--count", "2", "-f", "value", "-c", "comment",
        ])
        .await;
    got.assert_ok();
    let ssid = got.fields()[0][0].to_owned();
    let session = duffy.v3_session(&tenant, &ssid).await;
    assert_eq!(session["active"], true);

    let done = cico
        .run(&[
            "node",
            "done",
            &ssid,
            "-f",
            "value",
            "-c",
            "hostname",
            "-c",
            "current_state",
            "-c",
            "comment",
        ])
        .await;
    done.assert_ok();
    assert_eq!(
        done.requests,
        [
            format!("/Inventory?key={}", tenant.key),
            "/Inventory".to_owned(),
            format!("/Node/done?key={}&ssid={ssid}", tenant.key),
        ],
        "{done}"
    );
    let mut fields = done.fields();
    fields.sort();
    let names = hostnames(&session);
    let expected: Vec<Vec<&str>> = names
        .iter()
        .map(|h| vec![h.as_str(), "Deployed", ssid.as_str()])
        .collect();
    assert_eq!(fields, expected, "{done}");

    let after = duffy.v3_session(&tenant, &ssid).await;
    assert_eq!(after["active"], false, "{after}");
    assert!(duffy.v3_sessions(&tenant).await.is_empty());
    let inventory = cico.run(&["inventory", "-f", "value"]).await;
    inventory.assert_ok();
    assert_eq!(inventory.stdout, "", "{inventory}");

    // Again: cico ignores the answer, which is v2's.
    let again = cico.run(&["node", "done", &ssid, "-f", "value"]).await;
    again.assert_ok();
    assert_eq!(
        duffy
            .v2_get(&format!("/Node/done?key={}&ssid={ssid}", tenant.key))
            .await
            .json(),
        (200, json!({"msg": "Session not in Prod"}))
    );
}

/// Another tenant's `node done S`, and an unknown key's, leave the session active.
async fn another_key_cannot_retire_it(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let owner = duffy.tenant("ci-owner", 10).await;
    let other = duffy.tenant("ci-other", 10).await;
    duffy.wait_filled().await;
    let cico = Cico::keyed(&duffy.endpoint(), &owner.key);
    let got = cico
        .run(&["node", "get", "-f", "value", "-c", "comment"])
        .await;
    got.assert_ok();
    let ssid = got.fields()[0][0].to_owned();

    let intruder = Cico::keyed(&duffy.endpoint(), &other.key);
    let out = intruder.run(&["node", "done", &ssid, "-f", "value"]).await;
    // Its own keyed inventory is empty, so it prints nothing and sends Node/done.
    out.assert_ok();
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(out.requests_to("/Node/done"), 1, "{out}");
    assert_eq!(
        duffy
            .v2_get(&format!("/Node/done?key={}&ssid={ssid}", other.key))
            .await
            .json(),
        (403, json!({"msg": "Invalid duffy key"}))
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        duffy
            .v2_get(&format!("/Node/done?key={unknown}&ssid={ssid}"))
            .await
            .json(),
        (403, json!({"msg": "Invalid duffy key"}))
    );
    assert_eq!(
        duffy
            .v2_get(&format!("/Node/done?key={}&ssid=424242", owner.key))
            .await
            .json(),
        (403, json!({"msg": "Invalid session ID"}))
    );
    assert_eq!(duffy.v3_session(&owner, &ssid).await["active"], true);
}
