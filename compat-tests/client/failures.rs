//! Our `duffy client` when it cannot even ask (`docs/cli.md` §4–§5): an unreachable server, a bad
//! URL, no configuration, a key in the configuration file that is not a UUID. Each is one
//! line on stderr, nothing on stdout and a non-zero exit, where the original dumps a
//! traceback (its results are checked too, to keep the comparison honest).

use std::net::TcpListener;

use super::one_line_error;
use crate::harness::cico::Output;
use crate::harness::client::client_config;
use crate::harness::{Cli, ClientHome, skipped};

/// The key of a tenant that does not need to exist.
const KEY: &str = "6f1c2a43-6d5e-4a8f-9a49-9c2b6f6d3e71";

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// Whether a run failed: a non-zero exit and nothing on stdout.
fn failed(out: &Output) -> bool {
    out.status.is_some_and(|s| s != 0) && out.stdout.is_empty()
}

/// Each failure with both clients: ours a one-line error, the original some failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_failures_are_one_line_errors() {
    if skipped() {
        return;
    }
    let closed = format!("http://127.0.0.1:{}/api/v1", closed_port());
    let auth = ["--auth-name", "t", "--auth-key", KEY];
    let empty = ClientHome::new();
    let empty_dir = empty.file("conf.d/.keep", "");
    let empty_dir = empty_dir.parent().expect("conf.d").to_str().expect("UTF-8");
    let bad_key = ClientHome::new();
    let bad_key_file = bad_key.file("client.yaml", &client_config(&closed, "t", "notauuid"));
    let bad_key_file = bad_key_file.to_str().expect("UTF-8");
    let bad_key_home = ClientHome::new();
    bad_key_home.file(
        ".config/duffy/client.yaml",
        &client_config(&closed, "t", "notauuid"),
    );

    // (what, home, arguments, a text the message must hold, and the original's too)
    let cases: Vec<(&str, &ClientHome, Vec<&str>, &str, &str)> = vec![
        (
            "unreachable server",
            &empty,
            [
                &["client", "--url", closed.as_str()][..],
                &auth,
                &["list-pools"],
            ]
            .concat(),
            "",
            "ConnectError",
        ),
        (
            "--url notaurl",
            &empty,
            [&["client", "--url", "notaurl"][..], &auth, &["list-pools"]].concat(),
            "",
            "",
        ),
        (
            "--url ftp://x",
            &empty,
            [
                &["client", "--url", "ftp://x"][..],
                &auth,
                &["show-session", "1"],
            ]
            .concat(),
            "",
            "",
        ),
        (
            "-c an empty folder, no options",
            &empty,
            vec!["-c", empty_dir, "client", "list-sessions"],
            "",
            "KeyError: 'client'",
        ),
        (
            "a HOME without configuration, no options",
            &empty,
            vec!["client", "list-pools"],
            "",
            "KeyError: 'client'",
        ),
        (
            "a non-UUID key in -c FILE",
            &bad_key,
            vec!["-c", bad_key_file, "client", "list-pools"],
            "Input should be a valid UUID",
            "Input should be a valid UUID",
        ),
        (
            "a non-UUID key in ~/.config/duffy",
            &bad_key_home,
            vec!["client", "list-sessions"],
            "Input should be a valid UUID",
            "Input should be a valid UUID",
        ),
    ];
    let mut problems = Vec::new();
    for (what, home, args, ours_says, theirs_says) in cases {
        let theirs = home.run(Cli::Original, &args).await;
        assert!(
            failed(&theirs) && theirs.stderr.contains(theirs_says),
            "original, {what}: {theirs}"
        );
        let ours = home.run(Cli::Ours, &args).await;
        if !(failed(&ours) && one_line_error(&ours) && ours.stderr.contains(ours_says)) {
            problems.push(format!(
                "{what} (`duffy {}`): ours is not a one-line error{}:\n{ours}",
                args.join(" "),
                if ours_says.is_empty() {
                    String::new()
                } else {
                    format!(" saying {ours_says:?}")
                }
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
