//! The README's promise: `duffy serve` with no configuration at all runs on the embedded
//! default, creates the first admin, fills the pools, and the walk-through works as printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

/// The walk-through's command lines, taken from the README.
fn walkthrough() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- walkthrough")
        .expect("walk-through marker in README.md");
    let block = &readme[start..];
    let body = &block[block.find("```sh\n").expect("code block") + 6..];
    let body = &body[..body.find("```").expect("end of code block")];
    body.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_as_printed() {
    assert!(
        !std::path::Path::new("/etc/duffy").exists(),
        "/etc/duffy exists on this machine: the embedded default cannot be tested here"
    );
    let home = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "-p", "0"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env_remove("XDG_DATA_HOME")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start duffy serve");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut port = None;
    let mut admin_line = None;
    let mut docs_line = None;
    let banner = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(" * Serving API docs on ") {
                docs_line = Some(line.clone());
            }
            if let Some(p) = line.strip_prefix(" * Port number  : ") {
                port = Some(p.trim().to_owned());
            }
            if line.contains("Created the first admin tenant 'admin'") {
                admin_line = Some(line);
                break;
            }
        }
    });
    banner.await.expect("the banner within a minute");
    let port = port.expect("the port in the banner");
    assert_eq!(
        docs_line.as_deref(),
        Some(format!(" * Serving API docs on http://127.0.0.1:{port}/docs").as_str())
    );
    let admin_line = admin_line.expect("the first admin is announced");
    let key_file = home.path().join(".local/share/duffy/admin.key");
    let key = std::fs::read_to_string(&key_file).expect("admin.key written");
    assert!(
        admin_line.ends_with(key.trim()),
        "the printed key is the one in the file"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only the user may read the key");

    // the pools fill by themselves
    let client = reqwest::Client::new();
    let pool = format!("http://127.0.0.1:{port}/api/v1/pools/virt-noop-centos-9s-x86_64");
    let mut ready = 0;
    for _ in 0..200 {
        let body: serde_json::Value = client
            .get(&pool)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready = body["pool"]["levels"]["ready"].as_i64().unwrap_or(0);
        if ready == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 3, "the default pool fills to its level");

    // run the README's lines in one shell, as a user would type them
    const CUT: &str = "-----8<-----";
    let script: String = walkthrough()
        .iter()
        .map(|line| {
            format!(
                "{}\necho; echo '{CUT}'\n",
                line.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            )
        })
        .collect();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .await
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let outputs: Vec<&str> = stdout.split(CUT).map(str::trim).collect();
    let json = |i: usize| -> serde_json::Value {
        serde_json::from_str(outputs[i])
            .unwrap_or_else(|e| panic!("line {} printed {:?}: {e}", i + 1, outputs[i]))
    };
    assert_eq!(json(0)["pools"].as_array().unwrap().len(), 4);
    assert_eq!(outputs[1], "", "the key line prints nothing");
    let session = json(2);
    assert_eq!(session["action"], "post", "{session}");
    assert_eq!(session["session"]["id"], 1);
    assert_eq!(session["session"]["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(json(3)["session"]["active"], true);
    assert_eq!(json(4)["pool"]["name"], "virt-noop-centos-9s-x86_64");
    assert_eq!(json(4)["pool"]["levels"]["deployed"], 2);
    let retired = json(5);
    assert_eq!(retired["action"], "put");
    assert_eq!(retired["session"]["active"], false);
    // the embedded configuration serves the v2 API on the same port
    let v2 = json(6);
    assert_eq!(v2["ssid"], "2", "{v2}");
    let host = v2["hosts"][0].as_str().unwrap();
    assert!(host.starts_with("virt-noop-centos-9s-x86-64-"), "{host}");
    assert_eq!(json(7), serde_json::json!([[host, "2"]]));

    // v2's default request, as a bare script or a plain `cico node get` sends it, gets a
    // node of the CentOS 7 pool (once that pool has filled).
    let pool = format!("http://127.0.0.1:{port}/api/v1/pools/virt-noop-centos-7-x86_64");
    for _ in 0..200 {
        let body: serde_json::Value = client
            .get(&pool)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["pool"]["levels"]["ready"].as_i64() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bare: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{port}/Node/get?key={}",
            key.trim()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bare["ssid"], "3", "{bare}");
    let hosts = bare["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{bare}");
    assert!(
        hosts[0]
            .as_str()
            .unwrap()
            .starts_with("virt-noop-centos-7-x86-64-"),
        "{bare}"
    );
    server.kill().await.ok();
}
