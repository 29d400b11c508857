//! `duffy admin`, `duffy config`, `duffy migrate` and `--version`, run as a user runs them,
//! with the original's output lines (`docs/cli.md` §2–§3).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{Auth, Backend, TestDb, load_config, start_on};

const BIN: &str = env!("CARGO_BIN_EXE_duffy");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn duffy(config: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("-c")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("duffy runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A configuration file next to a fresh SQLite database.
fn config_file(dir: &Path, db: &Path) -> PathBuf {
    let path = dir.join("duffy.yaml");
    std::fs::write(
        &path,
        format!(
            "database:\n  url: sqlite://{}\n{}",
            db.display(),
            crate::helpers::DEFAULT_CONFIG
        ),
    )
    .unwrap();
    path
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

#[test]
fn admin_commands_print_the_originals_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &dir.path().join("duffy.db"));

    let r = duffy(
        &cfg,
        &[
            "admin",
            "create-tenant",
            "--node-quota",
            "5",
            "--session-lifetime",
            "2h",
            "alice",
            "ssh-ed25519 AAAA alice",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key = r
        .stdout
        .trim()
        .strip_prefix("OK: alice: ")
        .expect(&r.stdout);
    assert!(is_uuid(key), "{key}");

    let r = duffy(&cfg, &["admin", "create-tenant", "alice", "k"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "ERROR: alice\nERROR DETAIL: tenant 'alice' already exists\n"
    );

    let r = duffy(&cfg, &["admin", "create-tenant", "--is-admin", "boss", "k"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        duffy(&cfg, &["admin", "list-tenants"]).stdout,
        "OK: alice\nOK: boss\n"
    );
    assert_eq!(
        duffy(&cfg, &["admin", "list-tenants", "--quiet"]).stdout,
        "alice\nboss\n"
    );

    let r = duffy(&cfg, &["admin", "show-tenant", "alice"]);
    assert_eq!(r.code, 0);
    let line = r.stdout.trim();
    let (head, created) = line.split_once(" created_at=").expect(line);
    assert_eq!(
        head,
        "OK: alice: id=1 node_quota=5 effective_node_quota=5 session_lifetime=2:00:00 \
         effective_session_lifetime=2:00:00 session_lifetime_max=None \
         effective_session_lifetime_max=12:00:00 active=True"
    );
    let (created, retired) = created.split_once(" retired_at=").unwrap();
    assert!(
        created.ends_with("+00:00") && created.len() >= 25,
        "{created}"
    );
    assert_eq!(retired, "None");

    let r = duffy(&cfg, &["admin", "update-tenant", "alice"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "ERROR: Either --ssh-key, --api-key, --node-quota, --session-lifetime or --session-lifetime-max must be set."
    );
    let r = duffy(
        &cfg,
        &[
            "admin",
            "update-tenant",
            "--api-key",
            "reset",
            "--node-quota",
            "none",
            "alice",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rest = r
        .stdout
        .trim()
        .strip_prefix("OK: alice: ssh_key=********** api_key=")
        .unwrap();
    let (new_key, rest) = rest.split_once(' ').unwrap();
    assert!(is_uuid(new_key) && new_key != key);
    assert_eq!(
        rest,
        "node_quota=None effective_node_quota=10 session_lifetime=2:00:00 effective_session_lifetime=2:00:00 \
         session_lifetime_max=None effective_session_lifetime_max=12:00:00"
    );
    let r = duffy(
        &cfg,
        &["admin", "update-tenant", "--ssh-key", "ssh-rsa B", "alice"],
    );
    assert!(r.stdout.contains(" api_key=********** "), "{}", r.stdout);

    assert_eq!(
        duffy(&cfg, &["admin", "retire-tenant", "alice"]).stdout,
        "OK: alice: active=False\n"
    );
    assert_eq!(duffy(&cfg, &["admin", "list-tenants"]).stdout, "OK: boss\n");
    assert_eq!(
        duffy(&cfg, &["admin", "list-tenants", "--all"]).stdout,
        "OK: alice\nOK: boss\n"
    );
    assert_eq!(
        duffy(&cfg, &["admin", "retire-tenant", "--unretire", "alice"]).stdout,
        "OK: alice: active=True\n"
    );

    let r = duffy(&cfg, &["admin", "show-tenant", "nobody"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR: nobody\nERROR DETAIL: Not Found\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_by_the_cli_work_against_the_api() {
    let db = TestDb::new(Backend::Sqlite).await;
    let duffy::config::DatabaseUrl::Sqlite { path } = db.url.clone() else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &path);
    let r = tokio::task::spawn_blocking(move || {
        duffy(&cfg, &["admin", "create-tenant", "ci", "ssh-ed25519 AAAA"])
    })
    .await
    .unwrap();
    let key = r
        .stdout
        .trim()
        .strip_prefix("OK: ci: ")
        .expect(&r.stdout)
        .to_owned();
    let app = start_on(db, load_config(crate::helpers::DEFAULT_CONFIG), false, true).await;
    let a = app
        .request_session(Auth::Basic("ci", &key), "pool-a", 1)
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
}

#[test]
fn config_commands_check_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &dir.path().join("duffy.db"));
    let r = duffy(&cfg, &["config", "check"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "OK.\nValidated configuration subkeys: database, defaults, nodepools\n"
        )
    );
    let r = duffy(&cfg, &["config", "dump"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("pool-a:") && r.stdout.contains("fill-level: 5"),
        "{}",
        r.stdout
    );

    // keys come out sorted, as the original's yaml.safe_dump writes them
    let unsorted = dir.path().join("unsorted.yaml");
    std::fs::write(
        &unsorted,
        "nodepools:\n  concrete:\n    z: {mechanism: {type: noop}, fill-level: 1}\n    a: {fill-level: 2, mechanism: {type: noop}}\ndefaults: {session-lifetime: 6h, node-quota: 1, session-lifetime-max: 7h}\n",
    )
    .unwrap();
    let dump = duffy(&unsorted, &["config", "dump"]).stdout;
    let order: Vec<usize> = [
        "defaults:",
        "node-quota",
        "session-lifetime:",
        "nodepools:",
        "  a:",
        "fill-level: 2",
        "  z:",
    ]
    .iter()
    .map(|k| dump.find(k).unwrap_or_else(|| panic!("{k} in {dump}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{dump}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "app:\n  port: 70000\n").unwrap();
    let r = duffy(&bad, &["config", "check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad.yaml") && r.stderr.contains("app.port"),
        "{}",
        r.stderr
    );
    let r = duffy(&bad, &["serve"]);
    assert_eq!(r.code, 1, "nothing runs on an invalid configuration");

    // the v2 layer's regexes and templates are checked too
    std::fs::write(
        &bad,
        "metaclient:\n  poolmap:\n    - {ver: '^(7$', pool: p}\n",
    )
    .unwrap();
    let r = duffy(&bad, &["config", "check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("metaclient.poolmap[0].ver: invalid regular expression '^(7$'"),
        "{}",
        r.stderr
    );
    let r = duffy(&bad, &["serve-legacy", "-p", "0"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("metaclient.poolmap[0].ver"),
        "{}",
        r.stderr
    );
}

#[test]
fn version_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &dir.path().join("duffy.db"));
    let r = duffy(&cfg, &["--version"]);
    assert_eq!(
        r.stdout,
        format!("Duffy, version {}\n", env!("CARGO_PKG_VERSION"))
    );
    for _ in 0..2 {
        let r = duffy(&cfg, &["migrate"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.starts_with("OK: database schema is up to date"),
            "{}",
            r.stdout
        );
    }
}

/// Log lines written to a pipe (a file, journald) carry no ANSI colour codes, with or
/// without `NO_COLOR`; nor does the command's own output.
#[test]
fn logs_to_a_pipe_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &dir.path().join("duffy.db"));
    // app.logging is accepted with a warning in the log.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("app:\n  logging:\n    version: 1\n");
    std::fs::write(&cfg, text).unwrap();
    for no_color in [None, Some("1")] {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(&cfg)
            .args(["config", "check"])
            .env("RUST_LOG", "warn")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().expect("duffy runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("app.logging is accepted but ignored"),
            "no warning logged: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "colour codes in the log: {stderr:?}"
        );
        assert!(!out.stdout.contains(&0x1b), "colour codes in the output");
    }
}

/// A `duffy serve` child process, killed when dropped; its stderr is collected as it comes.
pub(crate) struct Server {
    child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// `http://host:port`, from the banner.
    pub(crate) address: String,
}

impl Server {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM, as systemd does; what it logged.
    pub(crate) fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `duffy serve -p 0` on `config`; the server once its banner says it serves, or its
/// exit status and stderr when it stopped first.
pub(crate) fn start_serve(config: &Path) -> Result<Server, (i32, String)> {
    start_serve_logging(config, Some("error"))
}

/// [`start_serve`] with `RUST_LOG` set to `filter`, or unset (the log level of the
/// configuration, `info`).
pub(crate) fn start_serve_logging(
    config: &Path,
    filter: Option<&str>,
) -> Result<Server, (i32, String)> {
    start_serve_with(config, filter, &[], None)
}

/// [`start_serve_logging`] with more arguments to `serve` (e.g. `--legacy`), and with
/// `open_files` as its soft and hard limit of open files, when given.
pub(crate) fn start_serve_with(
    config: &Path,
    filter: Option<&str>,
    serve_args: &[&str],
    open_files: Option<u32>,
) -> Result<Server, (i32, String)> {
    use std::io::{BufRead, BufReader, Read};
    let mut command = match open_files {
        // The shell sets both limits, then becomes the server.
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
            c
        }
        None => Command::new(BIN),
    };
    match filter {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .arg("-c")
        .arg(config)
        .args(["serve", "-p", "0"])
        .args(serve_args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("duffy serve runs");
    let stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    // The banner's lines, read on a thread so that a server that says nothing cannot hang
    // the test: it is killed after the bound below.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so that the server's later lines never meet a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(line) if line.contains("Serving API on") => {
                let url = line.rsplit(' ').next().unwrap_or_default();
                return Ok(Server {
                    child,
                    stderr: Some(stderr),
                    address: url.trim_end_matches("/api/v1").to_owned(),
                });
            }
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // stdout closed: the server is ending; wait for its status without spinning.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err((
                status.code().unwrap_or(-1),
                stderr.join().unwrap_or_default(),
            ));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "duffy serve neither served nor stopped within 60 s"
        );
    }
}

/// One `duffy serve` per SQLite file: a second is refused with a clear message while
/// `duffy admin` keeps working beside the first, and a server killed with -9 leaves no lock
/// behind.
#[test]
fn a_second_server_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("duffy.db");
    let cfg = config_file(dir.path(), &db);
    let first = start_serve(&cfg).unwrap_or_else(|e| panic!("first server: {e:?}"));
    let Err((code, stderr)) = start_serve(&cfg) else {
        panic!("a second server started on the same SQLite file");
    };
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("another duffy serve is already running on the SQLite database")
            && stderr.contains(&db.display().to_string()),
        "{stderr}"
    );
    let admin = duffy(&cfg, &["admin", "list-tenants"]);
    assert_eq!(admin.code, 0, "{}", admin.stderr);
    // kill -9: the kernel drops the lock with the process.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let again = start_serve(&cfg).unwrap_or_else(|e| panic!("after kill -9: {e:?}"));
    drop(again);
}

/// A client's bad input, at scale and of every kind (garbage bytes, broken heads, wrong
/// methods, unknown paths, hostile bodies, wrong keys, connections dropped halfway), is
/// answered and logged below warning: the log's WARN and ERROR lines are for our faults.
#[test]
fn malformed_input_logs_nothing_at_warning_or_error() {
    // With the configured level, and with an operator's RUST_LOG.
    for filter in [None, Some("info")] {
        bad_input_round(filter);
    }
}

fn bad_input_round(filter: Option<&str>) {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &dir.path().join("duffy.db"));
    let server = start_serve_logging(&cfg, filter).unwrap_or_else(|e| panic!("{e:?}"));
    let host = server.address.trim_start_matches("http://").to_owned();
    let raw: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /api/v1/pools HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n".to_vec(),
        b"GET /api/v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        [b"GET /api/v1/pools HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; 200_000], b"\r\n\r\n".to_vec()].concat(),
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"a\"".to_vec(),
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n".to_vec(),
        b"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46d3Jvbmc=\r\n\r\n".to_vec(),
        b"DELETE /api/v1/pools HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /Node/get?key=%zz&ver=7 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"PUT /api/v1/sessions/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]".to_vec(),
        b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnull".to_vec(),
    ];
    let mut sent = 0;
    for round in 0..40 {
        for (i, request) in raw.iter().enumerate() {
            let Ok(mut stream) = std::net::TcpStream::connect(&host) else {
                continue;
            };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            // Every third connection is dropped halfway through its request.
            let cut = (round + i) % 3 == 0;
            let part = if cut {
                &request[..request.len() / 2]
            } else {
                &request[..]
            };
            let _ = stream.write_all(part);
            sent += 1;
            if !cut {
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
    }
    // The server still answers a proper request.
    let mut ok = std::net::TcpStream::connect(&host).unwrap();
    ok.write_all(b"GET /api/v1/pools HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let log = server.stop();
    assert!(sent >= 500, "only {sent} bad requests were sent");
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        loud.is_empty(),
        "RUST_LOG={filter:?}: {} warning/error line(s) for {sent} bad requests:\n{}",
        loud.len(),
        loud.join("\n")
    );
    assert!(log.contains(" INFO "), "the log was not captured: {log}");
}
