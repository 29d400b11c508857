//! The operators' `duffy admin` commands (nodes, pauses, overtime), run as an operator runs
//! them, on the database of a running server: the server sees their effect at once.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Auth, Backend, TestApp, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

pub(crate) struct Cli {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    /// A configuration for `duffy admin` that opens the app's database and pools.
    fn beside(app: &TestApp) -> Cli {
        Cli::with_pools(app, crate::helpers::DEFAULT_CONFIG)
    }

    /// A configuration for `duffy admin` that opens the app's database, with pools (and
    /// the rest) of the test's own.
    pub(crate) fn with_pools(app: &TestApp, config_yaml: &str) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("duffy.yaml");
        std::fs::write(&config, format!("{}{config_yaml}", app.database_yaml())).unwrap();
        Cli { _dir: dir, config }
    }

    pub(crate) async fn admin(&self, args: &[&str]) -> Run {
        self.admin_logging(args, "error").await
    }

    /// Runs `duffy admin ARGS` with `RUST_LOG=filter`: its log lines go to stderr.
    pub(crate) async fn admin_logging(&self, args: &[&str], filter: &str) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(&self.config)
            .arg("admin")
            .args(args)
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .env("USER", "operator");
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("duffy runs"))
            .await
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub(crate) fn ok(run: &Run) -> &str {
    assert_eq!(run.code, 0, "{run:?}");
    &run.stdout
}

/// The ids in `OK: <id>: …` lines.
fn ids(run: &Run) -> Vec<i64> {
    ok(run)
        .lines()
        .map(|l| {
            l.strip_prefix("OK: ")
                .and_then(|l| l.split(':').next())
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect()
}

async fn nodes_go_down_and_come_back_from_the_command_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let cli = Cli::beside(&app);
    let (_, key) = app.tenant("t", None).await;
    let ready = ids(&cli
        .admin(&["list-nodes", "--state", "ready", "--pool", "pool-b"])
        .await);
    assert_eq!(ready.len(), 2);
    let line = ok(&cli.admin(&["list-nodes", "--pool", "pool-b"]).await).to_owned();
    assert!(
        line.starts_with(&format!(
            "OK: {}: state=ready pool=pool-b hostname=",
            ready[0]
        )),
        "{line}"
    );

    let id = ready[0].to_string();
    let r = cli
        .admin(&["downtime-node", &id, "--reason", "flaky NIC"])
        .await;
    assert_eq!(ok(&r), format!("OK: {id}: state=downtime\n"));
    // One of the two ready nodes is out: a request for two cannot be served.
    let a = app
        .request_session(Auth::Basic("t", &key), "pool-b", 2)
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    let node = app
        .get(&format!("/api/v1/nodes/{id}"), app.admin_auth())
        .await;
    assert_eq!(
        node.body["node"]["data"]["downtime"]["by"],
        "duffy admin (operator)"
    );
    assert_eq!(node.body["node"]["data"]["downtime"]["reason"], "flaky NIC");
    assert_eq!(
        ids(&cli.admin(&["list-nodes", "--state", "downtime"]).await),
        [ready[0]]
    );

    let r = cli.admin(&["recover-node", &id]).await;
    assert_eq!(ok(&r), format!("OK: {id}: state=ready\n"));
    let a = app
        .request_session(Auth::Basic("t", &key), "pool-b", 2)
        .await;
    assert_eq!(a.status, 201, "{}", a.text);

    // Refusals are the usual two ERROR lines and exit status 1.
    let r = cli.admin(&["retire-node", &id]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "ERROR: node {id}\nERROR DETAIL: node {id} is held by session {}: retire the session first\n",
            a.session_id()
        )
    );
    let r = cli.admin(&["list-nodes", "--state", "bogus"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("unknown node state 'bogus'"),
        "{}",
        r.stderr
    );
}

async fn runs_started_from_the_command_line_are_waited_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let cli = Cli::beside(&app);
    let ready = ids(&cli
        .admin(&["list-nodes", "--state", "ready", "--pool", "pool-b"])
        .await);
    let (a, b) = (ready[0].to_string(), ready[1].to_string());
    let r = cli
        .admin(&["deprovision-node", &a, "--reason", "recycle"])
        .await;
    assert_eq!(ok(&r), format!("OK: {a}: state=done\n"));
    let r = cli
        .admin(&["provision-node", &b, "--reason", "reinstall"])
        .await;
    assert_eq!(ok(&r), format!("OK: {b}: state=ready\n"));
    let node = app
        .get(&format!("/api/v1/nodes/{b}"), app.admin_auth())
        .await;
    assert_eq!(
        node.body["node"]["data"]["admin_log"][0]["action"],
        "provision"
    );
    let r = cli.admin(&["provision-node", &b, "--pool", "noop"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!("ERROR: node {b}\nERROR DETAIL: pool 'noop' is not a configured concrete pool\n")
    );
    let r = cli.admin(&["deprovision-node", "999999"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR: node 999999\nERROR DETAIL: Not Found\n")
    );
}

async fn pauses_and_overtime_from_the_command_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let cli = Cli::beside(&app);
    let (_, key) = app.tenant("t", None).await;
    let t = Auth::Basic("t", &key);
    let held = app.request_session(t, "pool-a", 1).await;

    assert_eq!(
        ok(&cli
            .admin(&["pause-allocations", "--reason", "maintenance"])
            .await),
        "OK: service: paused\n"
    );
    let a = app.request_session(t, "pool-a", 1).await;
    assert_eq!(
        (a.status.as_u16(), a.detail().clone()),
        (503, json!("allocations are paused: maintenance"))
    );
    assert_eq!(
        ok(&cli.admin(&["pause-allocations", "--pool", "pool-b"]).await),
        "OK: pool-b: paused\n"
    );
    let listed = ok(&cli.admin(&["list-pauses"]).await).to_owned();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("OK: service: paused_at="), "{listed}");
    assert!(
        lines[0].ends_with("paused_by=duffy admin (operator) reason=maintenance"),
        "{listed}"
    );
    assert!(lines[1].starts_with("OK: pool-b: "), "{listed}");
    assert_eq!(
        ok(&cli.admin(&["resume-allocations"]).await),
        "OK: service: resumed\n"
    );
    assert_eq!(app.request_session(t, "pool-a", 1).await.status, 201);
    assert_eq!(app.request_session(t, "pool-b", 1).await.status, 503);
    assert_eq!(
        ok(&cli.admin(&["resume-allocations", "--pool", "pool-b"]).await),
        "OK: pool-b: resumed\n"
    );
    assert_eq!(app.request_session(t, "pool-b", 1).await.status, 201);
    let r = cli.admin(&["pause-allocations", "--pool", "nope"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR: nope\nERROR DETAIL: Not Found\n")
    );

    app.exec_at(
        "UPDATE sessions SET created_at = $1 WHERE id = $2",
        duffy::store::now() - chrono::TimeDelta::minutes(75),
        held.session_id(),
    )
    .await;
    let node = held.body["session"]["nodes"][0]["id"].as_i64().unwrap();
    let listed = ok(&cli.admin(&["list-overtime"]).await).to_owned();
    assert!(
        listed.starts_with(&format!("OK: {node}: hostname=")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            " session={} tenant=t held_since=",
            held.session_id()
        )) && listed.ends_with(" minutes=75\n"),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1);
    assert_eq!(
        ids(&cli.admin(&["list-overtime", "--minutes", "0"]).await).len(),
        3
    );
    let r = cli.admin(&["list-overtime", "--minutes", "-5"]).await;
    assert_eq!(r.code, 2, "{r:?}");
}

both_backends!(
    nodes_go_down_and_come_back_from_the_command_line,
    runs_started_from_the_command_line_are_waited_for,
    pauses_and_overtime_from_the_command_line,
);
