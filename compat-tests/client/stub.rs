//! Our `duffy client` and the original 3.4.0, byte for byte, on the same canned answers.
//!
//! Two live runs would differ in ids and timestamps, so both clients talk to a wiremock stub
//! instead. Its answers are bodies captured once per run from our real server (pools, a
//! two-node session, a session with nodes in three pools, several sessions, a retired one,
//! and its errors), plus crafted ones built from them: non-ASCII, long strings, quotes and
//! shell characters, YAML look-alikes, empty lists, nulls, unsorted nodes. For each
//! subcommand and format the test compares stdout and exit status (`docs/cli.md` §5–§6: equal on
//! success; on API errors the same json/yaml stdout with our exit 1, our flat `error='…'`
//! where the original crashes), and the requests both clients sent. Every difference is
//! collected and shown as a diff.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{FORMATS, one_line_error, shell_quoted};
use crate::harness::cico::Output;
use crate::harness::client::client_config;
use crate::harness::{Backend, Cli, ClientHome, Duffy, Tenant, skipped};

/// The tenant both clients authenticate as against the stub.
const NAME: &str = "stub-tenant";
/// Its key.
const KEY: &str = "6f1c2a43-6d5e-4a8f-9a49-9c2b6f6d3e71";

/// One HTTP answer: status, content type and body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    /// A JSON answer.
    fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// The body as JSON; panics if it is not.
    fn value(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// The answers of our real server that the cases start from.
struct Captured {
    pools: Answer,
    pool: Answer,
    /// POST, two nodes of one pool.
    two_nodes: Answer,
    /// POST, nodes in three pools.
    three_pools: Answer,
    /// GET of the two-node session.
    session: Answer,
    sessions: Answer,
    /// PUT `active: false`.
    retired: Answer,
    /// GET of the retired session once its nodes left their pool.
    retired_later: Answer,
    not_found: Answer,
    unauthorized: Answer,
    quota: Answer,
    cannot_reserve: Answer,
    retired_twice: Answer,
    unknown_pool: Answer,
    /// A 422 whose detail is pydantic's list.
    validation: Answer,
}

/// The captured answers, fetched once per run from a server that is stopped right after.
static CAPTURED: OnceCell<Captured> = OnceCell::const_new();

/// Our server's answers, captured on first use.
async fn captured() -> &'static Captured {
    CAPTURED.get_or_init(capture).await
}

/// Starts our server on SQLite, makes the sessions and errors, keeps the raw bodies.
async fn capture() -> Captured {
    let duffy = Duffy::start(Backend::Sqlite).await;
    let tenant = duffy.tenant("capture", 10).await;
    duffy.wait_filled().await;
    let post = |specs: Value| json!({ "tenant_id": null, "nodes_specs": specs });
    let two_nodes = call(
        &duffy,
        Method::POST,
        "/sessions",
        Some(&tenant),
        Some(post(json!([{"quantity": 2, "pool": "c7-x86-64"}]))),
    )
    .await;
    let three_pools = call(
        &duffy,
        Method::POST,
        "/sessions",
        Some(&tenant),
        Some(post(json!([
            {"quantity": 1, "pool": "c8-x86-64"},
            {"quantity": 2, "pool": "c7-x86-64-medium"},
            {"quantity": 1, "pool": "c7-x86-64"},
        ]))),
    )
    .await;
    let third = call(
        &duffy,
        Method::POST,
        "/sessions",
        Some(&tenant),
        Some(post(json!([{"quantity": 1, "pool": "c8-aarch64-tiny"}]))),
    )
    .await;
    for answer in [&two_nodes, &three_pools, &third] {
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let id = two_nodes.value()["session"]["id"].clone();
    let third_id = third.value()["session"]["id"].clone();
    let session = call(
        &duffy,
        Method::GET,
        &format!("/sessions/{id}"),
        Some(&tenant),
        None,
    )
    .await;
    let sessions = call(&duffy, Method::GET, "/sessions", Some(&tenant), None).await;
    let retire = json!({"active": false, "expires_at": null});
    let third_path = format!("/sessions/{third_id}");
    let retired = call(
        &duffy,
        Method::PUT,
        &third_path,
        Some(&tenant),
        Some(retire.clone()),
    )
    .await;
    let retired_twice = call(
        &duffy,
        Method::PUT,
        &third_path,
        Some(&tenant),
        Some(retire),
    )
    .await;
    // Deprovisioning takes the nodes out of their pool: `pool` becomes null.
    let mut retired_later = call(&duffy, Method::GET, &third_path, Some(&tenant), None).await;
    for _ in 0..50 {
        if retired_later.value()["session"]["nodes"][0]["pool"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        retired_later = call(&duffy, Method::GET, &third_path, Some(&tenant), None).await;
    }
    let wrong = Tenant {
        key: "00000000-0000-0000-0000-000000000000".to_owned(),
        ..tenant.clone()
    };
    let captured = Captured {
        pools: call(&duffy, Method::GET, "/pools", None, None).await,
        pool: call(&duffy, Method::GET, "/pools/c7-x86-64", None, None).await,
        two_nodes,
        three_pools,
        session,
        sessions,
        retired,
        retired_later,
        not_found: call(&duffy, Method::GET, "/sessions/999", Some(&tenant), None).await,
        unauthorized: call(&duffy, Method::GET, "/sessions", Some(&wrong), None).await,
        quota: call(
            &duffy,
            Method::POST,
            "/sessions",
            Some(&tenant),
            Some(post(json!([{"quantity": 9, "pool": "c7-x86-64"}]))),
        )
        .await,
        cannot_reserve: call(
            &duffy,
            Method::POST,
            "/sessions",
            Some(&tenant),
            Some(post(json!([{"quantity": 1, "pool": "no-such-pool"}]))),
        )
        .await,
        retired_twice,
        unknown_pool: call(&duffy, Method::GET, "/pools/no-such-pool", None, None).await,
        validation: call(
            &duffy,
            Method::POST,
            "/sessions",
            Some(&tenant),
            Some(post(json!([{"quantity": 0, "pool": "c7-x86-64"}]))),
        )
        .await,
    };
    let statuses = [
        (&captured.not_found, 404),
        (&captured.unauthorized, 401),
        (&captured.quota, 403),
        (&captured.cannot_reserve, 422),
        (&captured.retired_twice, 422),
        (&captured.unknown_pool, 404),
        (&captured.validation, 422),
    ];
    for (answer, status) in statuses {
        assert_eq!(answer.status, status, "{answer:?}");
    }
    captured
}

/// One v3 request to our server, the raw answer kept.
async fn call(
    duffy: &Duffy,
    verb: Method,
    path: &str,
    tenant: Option<&Tenant>,
    body: Option<Value>,
) -> Answer {
    let mut request = duffy
        .http
        .request(verb, format!("{}/api/v1{path}", duffy.v3_base));
    if let Some(t) = tenant {
        request = request.basic_auth(&t.name, Some(&t.key));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("v3 request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("v3 body");
    Answer {
        status,
        content_type: "application/json",
        body,
    }
}

/// A command and the canned answer it gets.
struct Case {
    /// What the case is about, for the report.
    name: &'static str,
    /// The subcommand and its arguments (after `client --format F`).
    args: Vec<String>,
    /// The request the answer is for.
    method: &'static str,
    path: String,
    answer: Answer,
    /// Extra headers of the answer.
    headers: Vec<(&'static str, &'static str)>,
}

impl Case {
    /// `args` answered with `answer` at `METHOD /api/v1PATH`.
    fn new(name: &'static str, args: &[&str], route: (&'static str, &str), answer: Answer) -> Case {
        Case {
            name,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            method: route.0,
            path: format!("/api/v1{}", route.1),
            answer,
            headers: Vec::new(),
        }
    }

    /// The status the subcommand expects (`docs/cli.md` §5).
    fn expected_status(&self) -> u16 {
        if self.args[0] == "request-session" {
            201
        } else {
            200
        }
    }
}

/// What a request that reached the stub looked like, as far as both clients must agree.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    method: String,
    target: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// The requests the stub received after the first `skip`.
async fn sent_since(server: &MockServer, skip: usize) -> Vec<Sent> {
    let requests = server.received_requests().await.expect("request recording");
    requests
        .iter()
        .skip(skip)
        .map(|r| {
            let header = |name: &str| {
                r.headers
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            let target = match r.url.query() {
                Some(q) => format!("{}?{q}", r.url.path()),
                None => r.url.path().to_owned(),
            };
            Sent {
                method: r.method.to_string(),
                target,
                authorization: header("authorization"),
                content_type: header("content-type"),
                body: String::from_utf8_lossy(&r.body).into_owned(),
            }
        })
        .collect()
}

/// `duffy -c CONFIG client --format FORMAT ARGS…`.
fn invocation(config: &str, format: &str, args: &[String]) -> Vec<String> {
    let head = ["-c", config, "client", "--format", format].map(str::to_owned);
    [&head[..], args].concat()
}

/// Runs `invocation` with `cli` in its own process; its output and the requests it sent.
async fn run(
    server: &MockServer,
    user: &ClientHome,
    cli: Cli,
    invocation: &[String],
) -> (Output, Vec<Sent>) {
    let before = sent_since(server, 0).await.len();
    let args: Vec<&str> = invocation.iter().map(String::as_str).collect();
    let out = user.run(cli, &args).await;
    (out, sent_since(server, before).await)
}

/// A stub answering `case`.
async fn stub(case: &Case) -> MockServer {
    let server = MockServer::start().await;
    let mut template = ResponseTemplate::new(case.answer.status).set_body_raw(
        case.answer.body.clone().into_bytes(),
        case.answer.content_type,
    );
    for (name, value) in &case.headers {
        template = template.insert_header(*name, *value);
    }
    Mock::given(method(case.method))
        .and(path(case.path.as_str()))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// A configuration file in `user`'s `HOME` pointing at `server`; its path.
fn configure(user: &ClientHome, server: &MockServer, name: &str) -> String {
    let url = format!("{}/api/v1", server.uri());
    let file = user.file(&format!("{name}.yaml"), &client_config(&url, NAME, KEY));
    file.to_str().expect("UTF-8 path").to_owned()
}

/// How the original treats an answer (`docs/cli.md` §5, responses).
enum Kind {
    /// The expected status: the body is printed.
    Success,
    /// An error status with a JSON object holding a string `detail`: the wrapper, exit 0.
    ApiError(String),
    /// An error status (a redirect too) with another body: the original crashes (httpx
    /// HTTPStatusError); ours prints the wrapper with the detail as received.
    OddError(Value),
    /// A 2xx other than the expected one: both exit 1 with nothing on stdout.
    Unexpected,
}

/// What kind of answer `case` gives.
fn kind(case: &Case) -> Kind {
    let answer = &case.answer;
    if answer.status == case.expected_status() {
        return Kind::Success;
    }
    // A redirect is not followed but treated as an error (`docs/cli.md` §5).
    if answer.status < 300 {
        return Kind::Unexpected;
    }
    match serde_json::from_str::<Value>(&answer.body) {
        Ok(Value::Object(body)) => match body.get("detail") {
            Some(Value::String(detail)) => Kind::ApiError(detail.clone()),
            Some(detail) => Kind::OddError(detail.clone()),
            None => Kind::OddError(Value::Object(body)),
        },
        Ok(other) => Kind::OddError(other),
        Err(_) => Kind::OddError(Value::String(answer.body.clone())),
    }
}

/// Runs every case in every format with both clients and panics with every difference.
///
/// The original runs in one process for all cases ([`ClientHome::run_original_many`]);
/// ours runs as a process per case and format. Each case has a stub of its own, so the
/// requests each client sent are told apart.
async fn compare(cases: Vec<Case>) {
    let user = ClientHome::new();
    let mut stubs = Vec::new();
    let mut invocations = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let server = stub(case).await;
        let config = configure(&user, &server, &format!("case-{i}"));
        for format in FORMATS {
            invocations.push(invocation(&config, format, &case.args));
        }
        stubs.push(server);
    }
    let theirs = user.run_original_many(&invocations).await;
    let mut wrappers = Vec::new();
    for case in &cases {
        if let Kind::OddError(detail) = kind(case) {
            for format in ["json", "yaml"] {
                wrappers.push((format, json!({ "error": { "detail": detail } })));
            }
        }
    }
    let mut wrappers = if wrappers.is_empty() {
        Vec::new()
    } else {
        user.original_formats(&wrappers).await
    }
    .into_iter();

    let mut problems = Vec::new();
    for (i, (case, server)) in cases.iter().zip(&stubs).enumerate() {
        let their_requests = sent_since(server, 0).await;
        assert_eq!(
            their_requests.len(),
            FORMATS.len(),
            "[{}] the original should send one request per run: {their_requests:?}",
            case.name
        );
        for (j, format) in FORMATS.into_iter().enumerate() {
            let theirs = &theirs[i * FORMATS.len() + j];
            let (ours, our_requests) = run(
                server,
                &user,
                Cli::Ours,
                &invocations[i * FORMATS.len() + j],
            )
            .await;
            let label = format!(
                "[{}] `duffy client --format {format} {}`",
                case.name,
                case.args.join(" ")
            );
            if our_requests[..] != their_requests[j..=j] {
                problems.push(format!(
                    "{label}: the requests differ\n  original: {:?}\n  ours:     {our_requests:?}",
                    their_requests[j]
                ));
            }
            let wrapper = match (kind(case), format) {
                (Kind::OddError(_), "json" | "yaml") => wrappers.next(),
                _ => None,
            };
            for problem in check(case, format, theirs, &ours, wrapper) {
                problems.push(format!("{label}: {problem}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} difference(s) between our `duffy client` and the original:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// The differences between our run and the original's for one case and format, after
/// checking that the original behaved as documented (a failure there is the harness's).
/// `wrapper` is what the original's formatter prints for the error wrapper of an answer it
/// cannot process itself (json and yaml).
fn check(
    case: &Case,
    format: &str,
    theirs: &Output,
    ours: &Output,
    wrapper: Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let exit = |status: Option<i32>| format!("ours exits {:?}, wanted {status:?}", ours.status);
    expect(
        !(ours.stderr.contains("Traceback") || ours.stderr.contains("panicked")),
        format!("ours dumps a trace on stderr: {}", ours.stderr),
    );
    match kind(case) {
        Kind::Success => {
            assert!(
                theirs.status == Some(0) && theirs.stderr.is_empty(),
                "original: {theirs}"
            );
            expect(ours.status == Some(0), exit(Some(0)));
            expect(
                ours.stderr.is_empty(),
                format!("ours writes to stderr: {:?}", ours.stderr),
            );
        }
        Kind::ApiError(detail) if format == "flat" => {
            assert_eq!((theirs.status, theirs.stdout.as_str()), (Some(1), ""));
            assert!(
                theirs
                    .stderr
                    .contains("AttributeError: 'dict' object has no attribute 'error'"),
                "original: {theirs}"
            );
            expect(ours.status == Some(1), exit(Some(1)));
            let wanted = format!("error={}\n", shell_quoted(&detail));
            expect(
                ours.stdout == wanted,
                format!(
                    "ours prints not the documented `error=…` line (- wanted, + ours):\n{}",
                    diff(&wanted, &ours.stdout)
                ),
            );
            return problems;
        }
        Kind::ApiError(_) => {
            assert_eq!(theirs.status, Some(0), "original: {theirs}");
            expect(ours.status == Some(1), exit(Some(1)));
        }
        Kind::OddError(detail) => {
            assert_eq!((theirs.status, theirs.stdout.as_str()), (Some(1), ""));
            assert!(
                theirs.stderr.contains("HTTPStatusError"),
                "original: {theirs}"
            );
            expect(ours.status == Some(1), exit(Some(1)));
            match wrapper {
                Some(wanted) => expect(
                    ours.stdout == wanted,
                    format!(
                        "ours prints not the wrapper with the detail as received \
                         (- wanted, + ours):\n{}",
                        diff(&wanted, &ours.stdout)
                    ),
                ),
                None => expect(
                    ours.stdout.starts_with("error=") && ours.stdout.lines().count() == 1,
                    format!("ours prints no `error=…` line for the detail {detail}: {ours}"),
                ),
            }
            return problems;
        }
        Kind::Unexpected => {
            assert_eq!((theirs.status, theirs.stdout.as_str()), (Some(1), ""));
            expect(ours.status == Some(1), exit(Some(1)));
            expect(
                ours.stdout.is_empty(),
                format!("ours prints on stdout: {:?}", ours.stdout),
            );
            expect(
                one_line_error(ours),
                format!("ours gives no one-line error: {:?}", ours.stderr),
            );
            return problems;
        }
    }
    expect(
        ours.stdout == theirs.stdout,
        format!(
            "stdout differs (- original, + ours):\n{}",
            diff(&theirs.stdout, &ours.stdout)
        ),
    );
    problems
}

/// A line diff of `old` and `new` (longest common subsequence), with `-`/`+`/` ` marks and
/// lines shown escaped so that spaces and non-ASCII are visible.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut lines) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push(format!("   {:?}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            lines.push(format!(" + {:?}", b[j]));
            j += 1;
        } else {
            lines.push(format!(" - {:?}", a[i]));
            i += 1;
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------
// Crafted answers

/// `session` with its nodes replaced by copies of its first node holding these values.
fn with_nodes(session: &Value, nodes: &[(Value, Value, Value)]) -> Value {
    let mut session = session.clone();
    let template = session["nodes"][0].clone();
    let nodes: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (pool, hostname, ipaddr))| {
            let mut node = template.clone();
            node["id"] = json!(100 + i);
            node["pool"] = pool.clone();
            node["hostname"] = hostname.clone();
            node["ipaddr"] = ipaddr.clone();
            node["data"]["provision"]["hostname"] = hostname.clone();
            node["data"]["provision"]["ipaddr"] = ipaddr.clone();
            node
        })
        .collect();
    session["nodes"] = Value::Array(nodes);
    session
}

/// A `(pool, hostname, ipaddr)` triple of strings.
fn node(pool: &str, hostname: &str, ipaddr: &str) -> (Value, Value, Value) {
    (json!(pool), json!(hostname), json!(ipaddr))
}

/// `{"action": ACTION, "session": SESSION}`.
fn envelope(action: &str, session: Value) -> Value {
    json!({ "action": action, "session": session })
}

/// The two-node session as the captured GET shows it.
async fn base_session() -> Value {
    captured().await.session.value()["session"].clone()
}

/// Non-ASCII hostnames, pools, data keys and values (json escapes them, PyYAML too).
async fn non_ascii() -> Value {
    let mut session = with_nodes(
        &base_session().await,
        &[
            node("c7-x86-64", "nœud-1.exämple.test", "127.0.0.1"),
            node("c7-x86-64", "узел-2.тест", "127.0.0.2"),
            node("pööl-ü", "ノード3.test", "::1"),
        ],
    );
    session["nodes"][0]["data"]["provision"]["motd"] = json!("Grüße 🚀 «ok» €");
    session["nodes"][1]["data"]["clé"] = json!("valeur");
    envelope("get", session)
}

/// Long hostnames, long text with and without spaces (PyYAML folds at 80 columns), and a
/// key longer than 128 characters (PyYAML writes it as a complex `? ` key).
async fn long_strings() -> Value {
    let long_host = format!("{}.example.test", "a".repeat(90));
    let mut session = with_nodes(
        &base_session().await,
        &[node("c7-x86-64", &long_host, "127.0.0.1")],
    );
    let words = "The quick brown fox jumps over the lazy dog; ".repeat(8);
    let data = &mut session["nodes"][0]["data"];
    data["motd"] = json!(words);
    data["token"] = json!("x".repeat(200));
    data["mixed"] = json!(format!("{} {}", "y".repeat(100), "short words here"));
    data["k".repeat(130)] = json!("a long key");
    envelope("post", session)
}

/// Quotes, backslashes, shell and YAML indicator characters, ANSI escape sequences.
async fn quotes() -> Value {
    let mut session = with_nodes(
        &base_session().await,
        &[
            node("c7-x86-64", "it's.test", "127.0.0.1"),
            node("c7-x86-64", "say \"hi\".test", "127.0.0.2"),
            node("c7-x86-64", "back\\slash $(x) `y` with space", "127.0.0.3"),
            node("c7-x86-64", "tab\there", "127.0.0.4"),
            // click.echo drops ANSI sequences on a pipe: the flat line loses them.
            node("c7-x86-64", "ansi-\u{1b}[1mbold\u{1b}[0m.test", "127.0.0.5"),
        ],
    );
    let tricky = [
        "multi\nline\n",
        "colon: value",
        "# hash",
        "- dash",
        "*star",
        "&amp",
        "!bang",
        "%pct",
        "@at",
        "`tick`",
        "{brace}",
        "[bracket]",
        "a, b",
        "? q",
        "| pipe",
        "> gt",
        "'single'",
        "\"double\"",
        "a'b\"c",
        "end with colon:",
        "trailing\\",
        "ctrl\u{1}char",
        "\u{7f}del",
    ];
    session["nodes"][0]["data"]["tricky"] = json!(tricky.as_slice());
    envelope("get", session)
}

/// Strings that YAML would read as something else unless quoted.
async fn yaml_look_alikes() -> Value {
    let mut session = base_session().await;
    let strings = [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "true",
        "False",
        "NULL",
        "null",
        "~",
        "1",
        "1.5",
        "-1",
        "+1",
        "0x1F",
        "0o17",
        "017",
        "1e3",
        "1_000",
        "12:30",
        "190:20:30",
        "2026-11-22",
        "2026-11-22 10:00:00",
        ".inf",
        "-.Inf",
        ".nan",
        "",
        " lead",
        "trail ",
        "=",
        "<<",
        "-",
        "0.",
        ".5",
    ];
    session["data"]["strings"] = json!(strings.as_slice());
    envelope("get", session)
}

/// Nulls where the schema allows them, in a session with one node.
async fn nulls() -> Value {
    let mut session = with_nodes(
        &base_session().await,
        &[(Value::Null, Value::Null, Value::Null)],
    );
    session["expires_at"] = Value::Null;
    session["nodes"][0]["state"] = Value::Null;
    session["tenant"]["node_quota"] = Value::Null;
    session["tenant"]["retired_at"] = Value::Null;
    envelope("get", session)
}

/// Two sessions (one retired) with nodes out of order and the numbers our server sends.
async fn unsorted_and_numbers() -> Value {
    let base = base_session().await;
    let mut first = with_nodes(
        &base,
        &[
            node("b-pool", "h2.test", "10.0.0.2"),
            node("a-pool", "h9.test", "10.0.0.9"),
            node("b-pool", "h1.test", "10.0.0.3"),
            node("a-pool", "h9.test", "10.0.0.1"),
        ],
    );
    first["data"]["numbers"] = json!([0.5, 0.001, 1234.567, 21600.0, -3, 0, 9007199254740993_i64]);
    first["tenant"]["effective_session_lifetime"] = json!(0.5);
    let mut second = with_nodes(&base, &[node("a-pool", "z.test", "10.0.1.1")]);
    second["id"] = json!(77);
    second["active"] = json!(false);
    second["retired_at"] = json!("2026-11-22T02:40:02Z");
    json!({"action": "get", "sessions": [first, second]})
}

/// A session without nodes and with empty containers.
async fn empty_session() -> Value {
    let mut session = base_session().await;
    session["nodes"] = json!([]);
    session["data"] = json!({"nodes_specs": [], "extra": {}});
    envelope("get", session)
}

// ---------------------------------------------------------------------------------------
// The tests

/// `list-pools` and `show-pool`: our server's answers, an empty list, and crafted pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_equal_the_original() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let crafted_pools = json!({"action": "get", "pools": [
        {"name": "zero", "fill-level": 0},
        {"name": "pööl it's", "fill-level": 3},
        {"name": "no-level"},
        {"name": "underscore", "fill_level": 2},
    ]});
    let mut crafted_pool = c.pool.value();
    crafted_pool["pool"]["name"] = json!("name with 'quotes' and ü");
    compare(vec![
        Case::new(
            "our pools",
            &["list-pools"],
            ("GET", "/pools"),
            c.pools.clone(),
        ),
        Case::new(
            "no pools",
            &["list-pools"],
            ("GET", "/pools"),
            Answer::json(200, &json!({"action": "get", "pools": []})),
        ),
        Case::new(
            "crafted pools",
            &["list-pools"],
            ("GET", "/pools"),
            Answer::json(200, &crafted_pools),
        ),
        Case::new(
            "our pool",
            &["show-pool", "c7-x86-64"],
            ("GET", "/pools/c7-x86-64"),
            c.pool.clone(),
        ),
        Case::new(
            "crafted pool",
            &["show-pool", "c7-x86-64"],
            ("GET", "/pools/c7-x86-64"),
            Answer::json(200, &crafted_pool),
        ),
    ])
    .await;
}

/// `request-session`: one pool, three pools in one call, a crafted answer with long
/// strings, one with no nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_session_equals_the_original() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let mut empty = empty_session().await;
    empty["action"] = json!("post");
    compare(vec![
        Case::new(
            "our two-node session",
            &["request-session", "pool=c7-x86-64,quantity=2"],
            ("POST", "/sessions"),
            c.two_nodes.clone(),
        ),
        Case::new(
            "our session in three pools",
            &[
                "request-session",
                "pool=c8-x86-64,quantity=1",
                "pool=c7-x86-64-medium,quantity=2",
                "pool=c7-x86-64,quantity=1",
            ],
            ("POST", "/sessions"),
            c.three_pools.clone(),
        ),
        Case::new(
            "long strings",
            &["request-session", "pool=c7-x86-64,quantity=1"],
            ("POST", "/sessions"),
            Answer::json(201, &long_strings().await),
        ),
        Case::new(
            "no nodes",
            &["request-session", "pool=c7-x86-64,quantity=1"],
            ("POST", "/sessions"),
            Answer::json(201, &empty),
        ),
    ])
    .await;
}

/// The original in one process ([`ClientHome::run_original_many`]) behaves as its real
/// runs do (stdout, exit status, the last line of stderr, the requests), and those send
/// exactly the bodies of `docs/cli.md` §5 with Basic auth; ours sends the same requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_the_originals() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let server = stub(&Case::new(
        "POST",
        &["request-session"],
        ("POST", "/sessions"),
        c.two_nodes.clone(),
    ))
    .await;
    for (verb, route, answer) in [
        ("PUT", "/api/v1/sessions/5", &c.retired),
        ("GET", "/api/v1/sessions/999", &c.not_found),
    ] {
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(answer.status)
                    .set_body_raw(answer.body.clone().into_bytes(), answer.content_type),
            )
            .mount(&server)
            .await;
    }
    let user = ClientHome::new();
    let config = configure(&user, &server, "stub");
    let two_specs = ["request-session", "pool=P,quantity=2", "pool=Q,quantity=1"];
    let runs: Vec<Vec<String>> = [
        ("json", &two_specs[..]),
        ("yaml", &two_specs),
        ("flat", &two_specs),
        ("json", &["retire-session", "5"]),
        ("flat", &["show-session", "999"]),
        ("json", &["request-session", "pool=x"]),
        ("json", &["request-session", "pool=x,quantity=0"]),
    ]
    .iter()
    .map(|(format, args)| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        invocation(&config, format, &args)
    })
    .collect();

    let mut real = Vec::new();
    for args in &runs {
        real.push(run(&server, &user, Cli::Original, args).await);
    }
    let before = sent_since(&server, 0).await.len();
    let in_process = user.run_original_many(&runs).await;
    let sent_in_process = sent_since(&server, before).await;
    let last_line = |out: &Output| out.stderr.trim_end().lines().last().map(str::to_owned);
    for ((real, _), fast) in real.iter().zip(&in_process) {
        assert_eq!(
            (real.status, &real.stdout, last_line(real)),
            (fast.status, &fast.stdout, last_line(fast)),
            "real run:\n{real}\nin process:\n{fast}"
        );
    }
    let sent_real: Vec<Sent> = real.iter().flat_map(|(_, sent)| sent.clone()).collect();
    assert_eq!(sent_real, sent_in_process);

    let auth = "Basic c3R1Yi10ZW5hbnQ6NmYxYzJhNDMtNmQ1ZS00YThmLTlhNDktOWMyYjZmNmQzZTcx";
    let post =
        r#"{"tenant_id":null,"nodes_specs":[{"quantity":2,"pool":"P"},{"quantity":1,"pool":"Q"}]}"#;
    let expected: Vec<(&str, &str, &str)> = vec![
        ("POST", "/api/v1/sessions", post),
        ("POST", "/api/v1/sessions", post),
        ("POST", "/api/v1/sessions", post),
        (
            "PUT",
            "/api/v1/sessions/5",
            r#"{"active":false,"expires_at":null}"#,
        ),
        ("GET", "/api/v1/sessions/999", ""),
    ];
    let seen: Vec<(&str, &str, &str)> = sent_real
        .iter()
        .map(|s| (s.method.as_str(), s.target.as_str(), s.body.as_str()))
        .collect();
    assert_eq!(seen, expected);
    for sent in &sent_real {
        assert_eq!(sent.authorization.as_deref(), Some(auth), "{sent:?}");
    }

    let mut problems = Vec::new();
    for ((args, (_, theirs)), i) in runs.iter().zip(&real).zip(0..) {
        let (ours, sent) = run(&server, &user, Cli::Ours, args).await;
        if &sent != theirs {
            problems.push(format!(
                "run {i} `duffy {}`: the requests differ\n  original: {theirs:?}\n  ours:     {sent:?}\n{ours}",
                args.join(" ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// `list-sessions`: ours (three sessions), none, crafted quotes, unsorted nodes and numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sessions_equals_the_original() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let mut quoted = quotes().await;
    let session = quoted["session"].take();
    quoted = json!({"action": "get", "sessions": [session]});
    compare(vec![
        Case::new(
            "our sessions",
            &["list-sessions"],
            ("GET", "/sessions"),
            c.sessions.clone(),
        ),
        Case::new(
            "no sessions",
            &["list-sessions"],
            ("GET", "/sessions"),
            Answer::json(200, &json!({"action": "get", "sessions": []})),
        ),
        Case::new(
            "quotes and shell characters",
            &["list-sessions"],
            ("GET", "/sessions"),
            Answer::json(200, &quoted),
        ),
        Case::new(
            "unsorted nodes, numbers",
            &["list-sessions"],
            ("GET", "/sessions"),
            Answer::json(200, &unsorted_and_numbers().await),
        ),
    ])
    .await;
}

/// `show-session` and `retire-session`: ours (active, retired, retired and deprovisioned),
/// and crafted non-ASCII, YAML look-alikes, nulls, no nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_equal_the_original() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let show =
        |name, answer| Case::new(name, &["show-session", "5"], ("GET", "/sessions/5"), answer);
    compare(vec![
        show("our session", c.session.clone()),
        show("our retired session", c.retired_later.clone()),
        show("non-ASCII", Answer::json(200, &non_ascii().await)),
        show(
            "YAML look-alikes",
            Answer::json(200, &yaml_look_alikes().await),
        ),
        show("nulls", Answer::json(200, &nulls().await)),
        show("no nodes", Answer::json(200, &empty_session().await)),
        Case::new(
            "our retired session",
            &["retire-session", "5"],
            ("PUT", "/sessions/5"),
            c.retired.clone(),
        ),
    ])
    .await;
}

/// Our server's API errors (`{"detail": str}`): json/yaml stdout equal with our exit 1;
/// flat `error='…'` with exit 1 where the original crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_differ_only_as_documented() {
    if skipped() {
        return;
    }
    let c = captured().await;
    compare(vec![
        Case::new(
            "unknown session",
            &["show-session", "999"],
            ("GET", "/sessions/999"),
            c.not_found.clone(),
        ),
        Case::new(
            "wrong key",
            &["list-sessions"],
            ("GET", "/sessions"),
            c.unauthorized.clone(),
        ),
        Case::new(
            "quota exceeded",
            &["request-session", "pool=c7-x86-64,quantity=9"],
            ("POST", "/sessions"),
            c.quota.clone(),
        ),
        Case::new(
            "no such pool",
            &["request-session", "pool=no-such-pool,quantity=1"],
            ("POST", "/sessions"),
            c.cannot_reserve.clone(),
        ),
        Case::new(
            "retired twice",
            &["retire-session", "5"],
            ("PUT", "/sessions/5"),
            c.retired_twice.clone(),
        ),
        Case::new(
            "unknown pool",
            &["show-pool", "no-such-pool"],
            ("GET", "/pools/no-such-pool"),
            c.unknown_pool.clone(),
        ),
    ])
    .await;
}

/// An error body with more than `detail` (another server's): the original's wrapper keeps
/// every key, `detail` first, then the others in the order received; non-ASCII escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_keep_extra_keys() {
    if skipped() {
        return;
    }
    let forbidden =
        json!({"hint": "ask an admin", "detail": "Zugriff verweigert: it's ü", "n": null});
    compare(vec![Case::new(
        "extra keys, non-ASCII",
        &["show-session", "5"],
        ("GET", "/sessions/5"),
        Answer::json(403, &forbidden),
    )])
    .await;
}

/// Answers the original cannot process: a 422 with pydantic's list, a plain-text 500, a 200
/// to POST, a redirect (followed by neither).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_answers_fail_cleanly() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let mut ok_instead_of_created = c.two_nodes.clone();
    ok_instead_of_created.status = 200;
    let mut redirect = Case::new(
        "redirect",
        &["show-session", "5"],
        ("GET", "/sessions/5"),
        Answer {
            status: 307,
            content_type: "text/plain",
            body: String::new(),
        },
    );
    redirect.headers.push(("location", "/api/v1/sessions/6"));
    compare(vec![
        Case::new(
            "validation error",
            &["request-session", "pool=c7-x86-64,quantity=1"],
            ("POST", "/sessions"),
            c.validation.clone(),
        ),
        Case::new(
            "plain-text 500",
            &["list-pools"],
            ("GET", "/pools"),
            Answer {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: "Internal Server Error".to_owned(),
            },
        ),
        Case::new(
            "200 instead of 201",
            &["request-session", "pool=c7-x86-64,quantity=2"],
            ("POST", "/sessions"),
            ok_instead_of_created,
        ),
        redirect,
    ])
    .await;
}

/// Checks made before anything is sent: both clients refuse the same arguments, and the
/// stub receives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_checks_send_nothing() {
    if skipped() {
        return;
    }
    let server = MockServer::start().await;
    let user = ClientHome::new();
    let config = configure(&user, &server, "stub");
    // (arguments, what the usage error says, or None for a failed `quantity` check)
    let cases: [(&[&str], Option<&str>); 9] = [
        (
            &["request-session", "pool=x"],
            Some("Both `pool` and `quantity` must be set"),
        ),
        (
            &["request-session", "pool=x,quantity=1,pool=y"],
            Some("Duplicate key: pool"),
        ),
        (&["request-session"], Some("")),
        (&["show-session", "abc"], Some("")),
        (&["retire-session", "1.5"], Some("")),
        (&["--format", "xml", "list-pools"], Some("")),
        (&["request-session", "pool=x,quantity=0"], None),
        (&["request-session", "pool=x,quantity=-1"], None),
        (&["request-session", "pool=x,quantity=abc"], None),
    ];
    let runs: Vec<Vec<String>> = cases
        .iter()
        .map(|(args, _)| {
            let head = ["-c", config.as_str(), "client"];
            head.iter()
                .chain(args.iter())
                .map(|a| (*a).to_owned())
                .collect()
        })
        .collect();
    let theirs = user.run_original_many(&runs).await;
    let mut problems = Vec::new();
    for ((args, (_, usage)), theirs) in runs.iter().zip(&cases).zip(&theirs) {
        let ours = user
            .run(
                Cli::Ours,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;
        let ok = match usage {
            Some(message) => {
                assert_eq!(theirs.status, Some(2), "original: {theirs}");
                assert!(theirs.stderr.contains(message), "original: {theirs}");
                ours.status == Some(2) && ours.stderr.contains(message)
            }
            None => {
                assert_eq!(theirs.status, Some(1), "original: {theirs}");
                assert!(
                    theirs.stderr.contains("ValidationError"),
                    "original: {theirs}"
                );
                ours.status.is_some_and(|s| s != 0) && one_line_error(&ours)
            }
        };
        if !ok || !ours.stdout.is_empty() {
            problems.push(format!("`duffy {}`: ours {ours}", args.join(" ")));
        }
    }
    let sent = sent_since(&server, 0).await;
    assert!(sent.is_empty(), "sent: {sent:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Ours only: `extend-session ID DURATION` sends `{"expires_at": "+…"}` and prints the
/// answer as the original's formatter would; an error answer as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_session_prints_like_the_original() {
    if skipped() {
        return;
    }
    let c = captured().await;
    let mut extended = c.session.value();
    extended["action"] = json!("put");
    let detail = c.retired_twice.value()["detail"].clone();
    let error = json!({"error": {"detail": detail}});
    let user = ClientHome::new();
    let mut bodies: Vec<(&str, Value)> = FORMATS.map(|f| (f, extended.clone())).to_vec();
    bodies.extend(["json", "yaml"].map(|f| (f, error.clone())));
    let wanted = user.original_formats(&bodies).await;
    let mut problems = Vec::new();

    let case = Case::new(
        "extended",
        &["extend-session"],
        ("PUT", "/sessions/5"),
        Answer::json(200, &extended),
    );
    let server = stub(&case).await;
    let config = configure(&user, &server, "extended");
    for (duration, sent_duration) in [("2h", "+2h"), ("+30m", "+30m"), ("1d2h", "+1d2h")] {
        for (format, wanted) in FORMATS.iter().zip(&wanted) {
            let args = ["extend-session", "5", duration].map(str::to_owned);
            let (ours, sent) = run(
                &server,
                &user,
                Cli::Ours,
                &invocation(&config, format, &args),
            )
            .await;
            let body: Vec<&str> = sent.iter().map(|s| s.body.as_str()).collect();
            let expected_body = format!(r#"{{"expires_at":"{sent_duration}"}}"#);
            if body != [expected_body.as_str()] || ours.status != Some(0) || &ours.stdout != wanted
            {
                problems.push(format!(
                    "extend-session {duration} --format {format}: sent {body:?}; {ours}\n{}",
                    diff(wanted, &ours.stdout)
                ));
            }
        }
    }

    let retired = Case::new(
        "retired",
        &["extend-session"],
        ("PUT", "/sessions/5"),
        c.retired_twice.clone(),
    );
    let server = stub(&retired).await;
    let config = configure(&user, &server, "retired");
    let flat = format!("error={}\n", shell_quoted(detail.as_str().expect("detail")));
    for (format, wanted) in FORMATS.iter().zip([&wanted[3], &wanted[4], &flat]) {
        let args = ["extend-session", "5", "2h"].map(str::to_owned);
        let (ours, _) = run(
            &server,
            &user,
            Cli::Ours,
            &invocation(&config, format, &args),
        )
        .await;
        if (ours.status, &ours.stdout) != (Some(1), wanted) {
            problems.push(format!(
                "extend-session on a retired session --format {format}: {ours}\n{}",
                diff(wanted, &ours.stdout)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
