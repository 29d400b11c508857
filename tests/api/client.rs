//! Our `duffy client` against the test app: requests, exit statuses and one-line errors
//! (`docs/cli.md` §4–§5). Its outputs are compared byte for byte with the original client in
//! `compat-tests/`.

use serde_json::Value;
use tokio::process::Command;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `duffy client ARGS…` in an empty HOME with an empty configuration folder.
async fn client(args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(home.path())
        .arg("client")
        .args(args)
        .env("HOME", home.path())
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("duffy runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn as_tenant(app: &TestApp, name: &str, key: &str, args: &[&str]) -> Run {
    let url = format!("{}/api/v1", app.address);
    let mut all = vec!["--url", &url, "--auth-name", name, "--auth-key", key];
    all.extend(args);
    client(&all).await
}

async fn every_command_works_and_errors_exit_1(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", Some(3)).await;
    let run = |args: &'static [&'static str]| as_tenant(&app, "t", &key, args);

    let pools = run(&["list-pools"]).await;
    assert_eq!(pools.code, 0, "{}", pools.stderr);
    assert_eq!(pools.json()["pools"][0]["name"], "pool-a");
    assert!(
        pools.stdout.starts_with("{\n    \"action\": \"get\","),
        "4-space indent"
    );
    assert_eq!(
        run(&["show-pool", "pool-a"]).await.json()["pool"]["levels"]["ready"],
        5
    );

    let created = run(&[
        "request-session",
        "pool=pool-a,quantity=1",
        "pool=pool-b,quantity=1",
    ])
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let session = created.json()["session"].clone();
    let id = session["id"].as_i64().unwrap().to_string();
    let pools: Vec<&str> = session["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pool"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["pool-a", "pool-b"]);
    assert_eq!(
        run(&["list-sessions"]).await.json()["sessions"][0]["id"],
        session["id"]
    );
    let shown = as_tenant(&app, "t", &key, &["show-session", &id]).await;
    assert_eq!(shown.json()["session"]["nodes"], session["nodes"]);
    let extended = as_tenant(&app, "t", &key, &["extend-session", &id, "1h"]).await;
    assert_eq!(extended.code, 0, "{}", extended.stderr);
    assert_ne!(
        extended.json()["session"]["expires_at"],
        session["expires_at"]
    );

    // Errors: the original's wrapper on stdout, exit 1.
    let quota = run(&["request-session", "pool=pool-a,quantity=2"]).await;
    assert_eq!(quota.code, 1);
    assert_eq!(
        quota.stdout,
        "{\n    \"error\": {\n        \"detail\": \"quota exceeded: requested nodes (2) + current allocation (2) = 4 > 3\"\n    }\n}\n"
    );
    let retired = as_tenant(&app, "t", &key, &["retire-session", &id]).await;
    assert_eq!(
        (retired.code, &retired.json()["session"]["active"]),
        (0, &Value::Bool(false))
    );
    let twice = as_tenant(&app, "t", &key, &["retire-session", &id]).await;
    assert_eq!(twice.code, 1);
    assert_eq!(
        twice.json(),
        serde_json::json!({"error": {"detail": format!("session {id} is retired")}})
    );
    let missing = run(&["show-session", "999"]).await;
    assert_eq!(
        (missing.code, missing.json()),
        (1, serde_json::json!({"error": {"detail": "Not Found"}}))
    );
    let flat = run(&["--format", "flat", "show-session", "999"]).await;
    assert_eq!(
        (flat.code, flat.stdout.as_str()),
        (1, "error='Not Found'\n")
    );
    let wrong = as_tenant(&app, "t", "not-the-key", &["list-sessions"]).await;
    assert_eq!(
        (wrong.code, wrong.json()),
        (1, serde_json::json!({"error": {"detail": "Unauthorized"}}))
    );
}

async fn bad_arguments_are_refused_before_sending(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.tenant("t", None).await;
    for (args, code, message) in [
        (
            vec!["request-session", "pool=pool-a"],
            2,
            "Both `pool` and `quantity` must be set",
        ),
        (
            vec!["request-session", "pool=a,pool=b,quantity=1"],
            2,
            "Duplicate key: pool",
        ),
        (
            vec!["request-session", "pool=pool-a,quantity=0"],
            1,
            "invalid quantity '0'",
        ),
        (vec!["show-session", "abc"], 2, "invalid value 'abc'"),
        (vec!["extend-session", "1", "soon"], 2, "invalid duration"),
    ] {
        let r = as_tenant(&app, "t", &key, &args).await;
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let sessions = app.count("SELECT COUNT(*) FROM sessions").await;
    assert_eq!(sessions, 0, "nothing was sent");
}

/// Problems that are not the server's answer: one line on stderr, a non-zero exit.
#[tokio::test]
async fn failures_without_an_answer_are_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let unreachable = format!("http://127.0.0.1:{closed}/api/v1");
    let creds = ["--auth-name", "t", "--auth-key", "k"];
    for (url, message) in [
        (unreachable.as_str(), "Error: cannot reach the Duffy API: "),
        ("notaurl", "Error: invalid Duffy API URL 'notaurl'"),
        (
            "ftp://h/api/v1",
            "Error: invalid Duffy API URL 'ftp://h/api/v1'",
        ),
    ] {
        let mut args = vec!["--url", url];
        args.extend(creds);
        args.push("list-pools");
        let r = client(&args).await;
        assert_ne!(r.code, 0);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.starts_with(message), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = client(&["list-pools"]).await;
    assert_ne!(r.code, 0);
    assert_eq!(
        r.stderr,
        "Error: no API URL: give --url or set client.url in the configuration\n"
    );
    // A configuration file whose key is not a UUID.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.yaml");
    std::fs::write(
        &file,
        "client:\n  url: http://127.0.0.1:1/api/v1\n  auth:\n    name: t\n    key: notauuid\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&file)
        .args(["client", "list-pools"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("client.auth.key: Input should be a valid UUID"),
        "{stderr}"
    );
}

both_backends!(
    every_command_works_and_errors_exit_1,
    bad_arguments_are_refused_before_sending,
);
