//! The original `duffy client` 3.4.0 against our `duffy serve`: every subcommand in every
//! format succeeds and agrees with the v3 API, and the error cases give the original's
//! results (`docs/cli.md` §5).

use serde_json::{Value, json};

use super::{FORMATS, flat_lines, yaml_value};
use crate::harness::cico::Output;
use crate::harness::client::client_config;
use crate::harness::{Backend, Cli, ClientHome, Duffy, Tenant};
use crate::scenarios;

scenarios!(
    every_subcommand_in_every_format,
    error_cases,
    ours_prints_what_the_original_prints
);

/// The API URL as CI jobs configure it.
fn api_url(duffy: &Duffy) -> String {
    format!("{}/api/v1", duffy.v3_base)
}

/// Runs the original `duffy client --format FORMAT ARGS…`; panics unless it succeeds.
async fn original(user: &ClientHome, format: &str, args: &[&str]) -> Output {
    let mut all = vec!["client", "--format", format];
    all.extend_from_slice(args);
    let out = user.run(Cli::Original, &all).await;
    out.assert_ok();
    out
}

/// Reads a printed answer back: JSON and YAML as data, flat as its lines, compared with
/// `expected` (a v3 answer) in the same form.
fn assert_agrees(format: &str, out: &Output, expected: &Value) {
    match format {
        "json" => assert_eq!(&out.json(), expected, "{out}"),
        "yaml" => assert_eq!(&yaml_value(out), expected, "{out}"),
        _ => assert_eq!(out.lines(), flat_lines(expected), "{out}"),
    }
}

/// Whether [`assert_agrees`] would pass.
fn agrees(format: &str, out: &Output, expected: &Value) -> bool {
    match data(format, out) {
        Some(body) => &body == expected,
        None => out.lines() == flat_lines(expected),
    }
}

/// The data an output holds, read back (flat has none: `None`).
fn data(format: &str, out: &Output) -> Option<Value> {
    match format {
        "json" => Some(out.json()),
        "yaml" => Some(yaml_value(out)),
        _ => None,
    }
}

/// The session id a `request-session` output names.
fn session_id(format: &str, out: &Output) -> i64 {
    match data(format, out) {
        Some(body) => body["session"]["id"].as_i64().expect(".session.id"),
        None => {
            let first = out.lines()[0].split(' ').next().expect("a field");
            let id = first.strip_prefix("session_id=").expect("session_id=…");
            id.parse().expect("an integer session id")
        }
    }
}

/// list-pools, show-pool, request-session (one pool, then two pools in one call),
/// list-sessions, show-session and retire-session, each in json, yaml and flat, configured
/// through `~/.config/duffy`; then the same answer through `-c FILE` and through options
/// alone.
async fn every_subcommand_in_every_format(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("client-all", 10).await;
    duffy.wait_filled().await;
    let user = ClientHome::configured(&api_url(&duffy), &tenant.name, &tenant.key);
    for format in FORMATS {
        let out = original(&user, format, &["list-pools"]).await;
        let pools = duffy.v3_get("/pools", None).await;
        assert_agrees(format, &out, &pools);
        if let Some(body) = data(format, &out) {
            let names: Vec<&str> = body["pools"]
                .as_array()
                .expect(".pools")
                .iter()
                .map(|p| p["name"].as_str().expect(".pools[].name"))
                .collect();
            assert!(names.contains(&"c7-x86-64"), "{names:?}");
        }

        // Levels may move while the client runs (a retired session's nodes leave the
        // pool): the output shows the pool as it was before or after.
        duffy.wait_filled().await;
        let before = duffy.v3_get("/pools/c7-x86-64", None).await;
        let out = original(&user, format, &["show-pool", "c7-x86-64"]).await;
        let after = duffy.v3_get("/pools/c7-x86-64", None).await;
        let expected = if agrees(format, &out, &after) {
            after
        } else {
            before
        };
        assert_agrees(format, &out, &expected);
        if let Some(body) = data(format, &out) {
            assert_eq!(body["pool"]["levels"]["ready"], 5, "{out}");
        }

        let one = request(
            &duffy,
            &tenant,
            &user,
            format,
            &["pool=c7-x86-64,quantity=1"],
        )
        .await;
        let pools = |s: &Value| -> Vec<Value> {
            let nodes = s["nodes"].as_array().expect("nodes");
            let mut pools: Vec<Value> = nodes.iter().map(|n| n["pool"].clone()).collect();
            pools.sort_by_key(Value::to_string);
            pools
        };
        assert_eq!(pools(&one), [json!("c7-x86-64")]);
        let two = request(
            &duffy,
            &tenant,
            &user,
            format,
            &["pool=c7-x86-64,quantity=1", "pool=c8-x86-64,quantity=2"],
        )
        .await;
        assert_eq!(pools(&two), ["c7-x86-64", "c8-x86-64", "c8-x86-64"]);
        assert_eq!(
            two["data"]["nodes_specs"],
            json!([
                {"quantity": 1, "pool": "c7-x86-64"},
                {"quantity": 2, "pool": "c8-x86-64"}
            ])
        );

        let out = original(&user, format, &["list-sessions"]).await;
        let listed = duffy.v3_get("/sessions", Some(&tenant)).await;
        assert_agrees(format, &out, &listed);
        let ids: Vec<&Value> = listed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .map(|s| &s["id"])
            .collect();
        assert!(
            ids.contains(&&one["id"]) && ids.contains(&&two["id"]),
            "{listed}"
        );

        let id = one["id"].to_string();
        let out = original(&user, format, &["show-session", &id]).await;
        let shown = duffy
            .v3_get(&format!("/sessions/{id}"), Some(&tenant))
            .await;
        assert_agrees(format, &out, &shown);

        let id = two["id"].to_string();
        let out = original(&user, format, &["retire-session", &id]).await;
        assert_retired(format, &out, &two);
        let after = duffy.v3_session(&tenant, &id).await;
        assert_eq!(after["active"], false, "{after}");
    }

    // One answer, three ways to configure the client: the same stdout.
    let expected = original(&user, "json", &["list-sessions"]).await;
    let other = ClientHome::new();
    let file = other.file(
        "client.yaml",
        &client_config(&api_url(&duffy), &tenant.name, &tenant.key),
    );
    let file = file.to_str().expect("UTF-8 path");
    let with_file = other
        .run(Cli::Original, &["-c", file, "client", "list-sessions"])
        .await;
    assert_eq!(with_file.assert_ok().stdout, expected.stdout);
    let url = api_url(&duffy);
    let with_options = ClientHome::new()
        .run(
            Cli::Original,
            &[
                "client",
                "--url",
                &url,
                "--auth-name",
                &tenant.name,
                "--auth-key",
                &tenant.key,
                "list-sessions",
            ],
        )
        .await;
    assert_eq!(with_options.assert_ok().stdout, expected.stdout);
}

/// `request-session SPECS…` in `format`: the answer is the new session as v3 shows it
/// (`action` post), with one node per requested unit. Returns the session.
async fn request(
    duffy: &Duffy,
    tenant: &Tenant,
    user: &ClientHome,
    format: &str,
    specs: &[&str],
) -> Value {
    duffy.wait_filled().await;
    let mut args = vec!["request-session"];
    args.extend_from_slice(specs);
    let out = original(user, format, &args).await;
    let id = session_id(format, &out).to_string();
    let session = duffy.v3_session(tenant, &id).await;
    assert_eq!(session["active"], true, "{session}");
    match data(format, &out) {
        Some(body) => {
            assert_eq!(body["action"], "post", "{out}");
            assert_eq!(body["session"], session, "{out}");
            let nodes = body["session"]["nodes"].as_array().expect(".session.nodes");
            for node in nodes {
                let ip = node["ipaddr"].as_str().expect(".session.nodes[].ipaddr");
                assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{out}");
            }
            let hostname = body["session"]["nodes"][0]["hostname"].as_str();
            assert!(hostname.is_some_and(|h| h.ends_with(".ci.test")), "{out}");
        }
        None => assert_eq!(
            out.lines(),
            flat_lines(&json!({ "session": session })),
            "{out}"
        ),
    }
    session
}

/// A `retire-session` output: the session `before`, now inactive with a `retired_at`.
fn assert_retired(format: &str, out: &Output, before: &Value) {
    let mut hostnames: Vec<String> = before["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["hostname"].as_str().expect("hostname").to_owned())
        .collect();
    hostnames.sort();
    match data(format, out) {
        Some(body) => {
            assert_eq!(body["action"], "put", "{out}");
            let session = &body["session"];
            assert_eq!(
                (&session["id"], &session["active"]),
                (&before["id"], &json!(false))
            );
            assert!(session["retired_at"].is_string(), "{out}");
            let mut got: Vec<String> = session["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| n["hostname"].as_str().expect("hostname").to_owned())
                .collect();
            got.sort();
            assert_eq!(got, hostnames, "{out}");
        }
        None => {
            let mut got = Vec::new();
            for line in out.lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields[0], format!("session_id={}", before["id"]), "{out}");
                assert_eq!(fields[1], "active=FALSE", "{out}");
                assert!(fields[3].starts_with("retired_at='"), "{out}");
                got.push(fields[5].trim_start_matches("hostname=").replace('\'', ""));
            }
            got.sort();
            assert_eq!(got, hostnames, "{out}");
        }
    }
}

/// The error table of `docs/cli.md` §5, run against our server: API errors print the
/// `{"error": …}` wrapper with exit 0 (json and yaml), the flat format crashes, client-side
/// checks stop before anything is sent.
async fn error_cases(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("client-errors", 3).await;
    duffy.wait_filled().await;
    let user = ClientHome::configured(&api_url(&duffy), &tenant.name, &tenant.key);
    let wrapper = |detail: &str| {
        format!("{{\n    \"error\": {{\n        \"detail\": \"{detail}\"\n    }}\n}}\n")
    };

    let out = original(&user, "json", &["show-session", "999"]).await;
    assert_eq!(out.stdout, wrapper("Not Found"));
    let out = original(&user, "yaml", &["show-session", "999"]).await;
    assert_eq!(out.stdout, "error:\n  detail: Not Found\n\n");

    let out = original(&user, "json", &["--auth-key", "wrong", "list-sessions"]).await;
    assert_eq!(out.stdout, wrapper("Unauthorized"));
    let unknown = "00000000-0000-0000-0000-000000000000";
    let out = original(&user, "json", &["--auth-key", unknown, "list-sessions"]).await;
    assert_eq!(out.stdout, wrapper("Unauthorized"));

    let out = original(
        &user,
        "json",
        &["request-session", "pool=c7-x86-64,quantity=4"],
    )
    .await;
    assert_eq!(
        out.stdout,
        wrapper("quota exceeded: requested nodes (4) + current allocation (0) = 4 > 3")
    );

    let out = original(
        &user,
        "json",
        &["request-session", "pool=c7-x86-64,quantity=1"],
    )
    .await;
    let id = out.json()["session"]["id"].to_string();
    let out = original(
        &user,
        "json",
        &["request-session", "pool=c8-x86-64,quantity=3"],
    )
    .await;
    assert_eq!(
        out.stdout,
        wrapper("quota exceeded: requested nodes (3) + current allocation (1) = 4 > 3")
    );
    original(&user, "json", &["retire-session", &id]).await;
    let out = original(&user, "json", &["retire-session", &id]).await;
    assert_eq!(out.stdout, wrapper(&format!("session {id} is retired")));
    let out = original(&user, "yaml", &["retire-session", &id]).await;
    assert_eq!(
        out.stdout,
        format!("error:\n  detail: session {id} is retired\n\n")
    );

    let out = user
        .run(
            Cli::Original,
            &["client", "--format", "flat", "show-session", "999"],
        )
        .await;
    assert_eq!((out.status, out.stdout.as_str()), (Some(1), ""), "{out}");
    assert!(
        out.stderr
            .trim_end()
            .ends_with("AttributeError: 'dict' object has no attribute 'error'"),
        "{out}"
    );

    let sessions = duffy.v3_sessions(&tenant).await.len();
    let out = user
        .run(Cli::Original, &["client", "request-session", "pool=x"])
        .await;
    assert_eq!((out.status, out.stdout.as_str()), (Some(2), ""), "{out}");
    assert!(
        out.stderr
            .contains("Both `pool` and `quantity` must be set"),
        "{out}"
    );
    let out = user
        .run(
            Cli::Original,
            &["client", "request-session", "pool=c7-x86-64,quantity=0"],
        )
        .await;
    assert_eq!((out.status, out.stdout.as_str()), (Some(1), ""), "{out}");
    assert!(
        out.stderr.contains("ValidationError") && out.stderr.contains("greater_than_equal"),
        "{out}"
    );
    assert_eq!(duffy.v3_sessions(&tenant).await.len(), sessions);
}

/// Runs our `duffy client ARGS…` (json); panics unless it succeeds; the answer.
async fn ours(user: &ClientHome, args: &[&str]) -> Value {
    let out = user.run(Cli::Ours, &[&["client"][..], args].concat()).await;
    out.assert_ok();
    out.json()
}

/// Our client against the same server state as the original: sessions requested and retired
/// with ours, then every reading subcommand in every format with both (the original in one
/// process), stdout byte for byte; an unknown session differs only in our exit status 1
/// and our flat `error='Not Found'`.
async fn ours_prints_what_the_original_prints(backend: Backend) {
    let duffy = Duffy::start(backend).await;
    let tenant = duffy.tenant("client-both", 10).await;
    duffy.wait_filled().await;
    let user = ClientHome::configured(&api_url(&duffy), &tenant.name, &tenant.key);
    let two = ours(
        &user,
        &[
            "request-session",
            "pool=c7-x86-64,quantity=2",
            "pool=c8-x86-64,quantity=1",
        ],
    )
    .await;
    assert_eq!(two["action"], "post", "{two}");
    let kept = two["session"]["id"].to_string();
    let gone = ours(
        &user,
        &["request-session", "pool=c8-aarch64-tiny,quantity=1"],
    )
    .await;
    let gone = gone["session"]["id"].to_string();
    let retired = ours(&user, &["retire-session", &gone]).await;
    assert_eq!(retired["session"]["active"], false, "{retired}");
    // Let deprovisioning and the refill settle: nothing moves while both clients read.
    duffy.wait_filled().await;
    for _ in 0..100 {
        let session = duffy.v3_session(&tenant, &gone).await;
        if session["nodes"][0]["pool"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let reads: [&[&str]; 6] = [
        &["list-pools"],
        &["show-pool", "c8-x86-64"],
        &["list-sessions"],
        &["show-session", &kept],
        &["show-session", &gone],
        &["show-session", "999"],
    ];
    let runs: Vec<Vec<String>> = reads
        .iter()
        .flat_map(|args| {
            FORMATS.map(|format| {
                let head = ["client", "--format", format];
                head.iter()
                    .chain(args.iter())
                    .map(|a| (*a).to_owned())
                    .collect()
            })
        })
        .collect();
    let theirs = user.run_original_many(&runs).await;
    for (args, theirs) in runs.iter().zip(&theirs) {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = user.run(Cli::Ours, &argv).await;
        let what = format!("`duffy {}`", args.join(" "));
        if args.last().is_some_and(|a| a == "999") {
            assert_eq!(ours.status, Some(1), "{what}: {ours}");
            if args[2] == "flat" {
                assert_eq!(theirs.status, Some(1), "{what}: {theirs}");
                assert_eq!(ours.stdout, "error='Not Found'\n", "{what}");
                continue;
            }
            assert_eq!(theirs.status, Some(0), "{what}: {theirs}");
        } else {
            assert_eq!(theirs.status, Some(0), "{what}: {theirs}");
            ours.assert_ok();
        }
        assert_eq!(
            ours.stdout, theirs.stdout,
            "{what}: ours and the original differ"
        );
    }
}
