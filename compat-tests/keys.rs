//! API keys: missing, unknown, and found where cico looks for them (`--api-key`,
//! `$CICO_API_KEY`, `~/.duffy.key`, `~/duffy.key`).

use serde_json::json;

use crate::harness::{Backend, Cico, Duffy};
use crate::scenarios;

scenarios!(
    a_missing_key_is_refused_before_sending,
    an_unknown_key_gets_nothing,
    the_key_comes_from_the_environment_or_home,
);

/// No key anywhere: cico refuses at once; the raw endpoints answer 403.
async fn a_missing_key_is_refused_before_sending(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    duffy.wait_filled().await;
    let cico = Cico::new(&duffy.endpoint());
    for args in [&["node", "get"][..], &["node", "done", "1"][..]] {
        let out = cico.run(args).await;
        out.assert_fails_with("The requested operation requires an API key.");
        assert!(out.requests.is_empty(), "{out}");
    }
    let invalid = (403, json!({"msg": "Invalid duffy key"}));
    for path in [
        "/Node/get",
        "/Node/get?key=&ver=7",
        "/Node/done?ssid=1",
        "/Node/fail?ssid=1",
    ] {
        assert_eq!(duffy.v2_get(path).await.json(), invalid, "{path}");
    }
    let sessions = duffy.v3_get("/sessions", None).await;
    assert_eq!(sessions["sessions"], json!([]));
}

/// An unknown key: no nodes, no session. Node/get answers a JSON object without `hosts`,
/// which cico reports as `'hosts'` (docs/legacy-v2.md §1, retry rule 5), with no retry.
async fn an_unknown_key_gets_nothing(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    duffy.wait_filled().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let cico = Cico::keyed(&duffy.endpoint(), &unknown);
    let out = cico
        .run(&["node", "get", "--retry-count", "2", "--retry-interval", "1"])
        .await;
    out.assert_fails_with("'hosts'");
    assert_eq!(out.requests_to("/Node/get"), 1, "{out}");
    let inventory = cico.run(&["inventory"]).await;
    assert_eq!((inventory.status, inventory.stdout.as_str()), (Some(1), ""));

    let invalid = (403, json!({"msg": "Invalid duffy key"}));
    for path in [
        format!("/Node/get?key={unknown}&arch=x86_64&ver=7&count=1"),
        format!("/Inventory?key={unknown}"),
        format!("/Node/done?key={unknown}&ssid=1"),
    ] {
        assert_eq!(duffy.v2_get(&path).await.json(), invalid, "{path}");
    }
    let sessions = duffy.v3_get("/sessions", None).await;
    assert_eq!(sessions["sessions"], json!([]));
}

/// `$CICO_API_KEY`, `~/.duffy.key` and `~/duffy.key` each work, with nothing on the
/// command line.
async fn the_key_comes_from_the_environment_or_home(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("ci-keys", 10).await;
    duffy.wait_filled().await;

    let mut from_env = Cico::new(&duffy.endpoint());
    from_env.set_env("CICO_API_KEY", &tenant.key);
    let got = from_env
        .run(&["node", "get", "-f", "value", "-c", "comment"])
        .await;
    got.assert_ok();
    let ssid = got.fields()[0][0].to_owned();
    assert_eq!(duffy.v3_session(&tenant, &ssid).await["active"], true);

    let dotted = Cico::new(&duffy.endpoint());
    std::fs::write(
        dotted.home().join(".duffy.key"),
        format!("{}\n", tenant.key),
    )
    .unwrap();
    let listed = dotted
        .run(&["inventory", "-f", "value", "-c", "comment"])
        .await;
    listed.assert_ok();
    assert_eq!(listed.stdout, format!("{ssid}\n"), "{listed}");

    let plain = Cico::new(&duffy.endpoint());
    std::fs::write(plain.home().join("duffy.key"), &tenant.key).unwrap();
    let done = plain
        .run(&["node", "done", &ssid, "-f", "value", "-c", "comment"])
        .await;
    done.assert_ok();
    assert_eq!(done.stdout, format!("{ssid}\n"), "{done}");
    assert_eq!(duffy.v3_session(&tenant, &ssid).await["active"], false);
}
