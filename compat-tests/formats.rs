//! `duffy client --format json|yaml|flat` against the real Python: generated JSON values
//! (tricky strings, long strings, nested containers, odd numbers, realistic Duffy bodies)
//! rendered by [`duffy::cli::output::render`] and by CPython's `json.dumps(v, indent=4)`
//! and PyYAML 6.0.3's `yaml.dump(v)` (what the original client calls), plus `click.echo`'s
//! newline. Flat values are checked against `shlex.quote(str(v))`, Python's sort and
//! click's removal of ANSI sequences.
//!
//! One Python process (the cico virtualenv's, which has PyYAML 6.0.3) answers every case,
//! one JSON line per value, so proptest can shrink a failure to a minimal value.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use duffy::cli::output::{Format, render};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Number, Value, json};

/// Cases per property; each is one line to the Python process and back.
const CASES: u32 = 300;

/// The oracle. It reads `{"value": v, "flat": [scalars…], "session": s}` lines and answers
/// `{"json": …, "yaml": …, "flat": [...], "session": …}` lines.
const ORACLE: &str = r#"
import json, re, shlex, sys, yaml

# click.echo removes ANSI CSI sequences when stdout is a pipe (click 8.5's pattern).
CSI = re.compile(r"\033\[[0-?]*[ -/]*[@-~]")

def flat_value(v):
    # docs/cli.md section 6: null empty, booleans upper case, numbers bare, else str() quoted.
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return str(v)
    quoted = shlex.quote(str(v))
    return quoted if quoted.startswith("'") else "'" + quoted + "'"

def session_lines(s):
    nodes = sorted(s["nodes"], key=lambda n: (n["pool"], n["hostname"], n["ipaddr"]))
    head = [("session_id", s["id"]), ("active", s["active"]),
            ("created_at", s["created_at"]), ("retired_at", s["retired_at"])]
    lines = []
    for n in nodes:
        fields = head + [("pool", n["pool"]), ("hostname", n["hostname"]), ("ipaddr", n["ipaddr"])]
        lines.append(" ".join(k + "=" + flat_value(v) for k, v in fields))
    return lines

print(json.dumps({"yaml_version": yaml.__version__}), flush=True)
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    ask = json.loads(line.decode("utf-8"))
    value = ask["value"]
    answer = {
        "json": json.dumps(value, indent=4) + "\n",
        "yaml": yaml.dump(value) + "\n",
        "flat": [CSI.sub("", "pool_name=" + flat_value(v) + " fill_level=\n") for v in ask["flat"]],
        "session": CSI.sub("", "\n".join(session_lines(ask["session"])) + "\n"),
    }
    print(json.dumps(answer), flush=True)
"#;

/// The Python process and its pipes.
struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Starts the script with the virtualenv's Python and checks its PyYAML version.
    fn start(venv: &Path) -> Oracle {
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", ORACLE])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut oracle = Oracle {
            child,
            stdin,
            stdout,
        };
        let hello = oracle.read();
        assert_eq!(hello["yaml_version"], "6.0.3", "the oracle's PyYAML");
        oracle
    }

    /// The next answer line.
    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the Python oracle exited (its traceback is above)");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends one question line and waits for its answer.
    fn ask(&mut self, question: &Value) -> Value {
        let mut line = serde_json::to_string(question).unwrap();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        self.read()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Strings that exercise PyYAML's resolvers, indicators, quoting and folding, and the
/// JSON encoder's escapes.
fn tricky_string() -> BoxedStrategy<String> {
    let words = prop::sample::select(vec![
        "",
        " ",
        "yes",
        "Yes",
        "NO",
        "no",
        "on",
        "Off",
        "y",
        "n",
        "Y",
        "true",
        "False",
        "TRUE",
        "null",
        "Null",
        "NULL",
        "~",
        ".inf",
        "-.Inf",
        ".NaN",
        "<<",
        "=",
        "!",
        "&",
        "*",
        "-",
        "--",
        "---",
        "...",
        "?",
        ":",
        "#",
        "- a",
        "? a",
        "a: b",
        "a #b",
        "'",
        "\"",
        "0",
        "00",
        "0x1F",
        "0b11",
        "0o17",
        "017",
        "1_000",
        "1:30",
        "1:30.5",
        "+1",
        "-1.5e+3",
        "1e5",
        "2026-11-22",
        "2026-11-22T02:36:36Z",
        "2026-11-22 02:36:36.123456+00:00",
        "1.0",
        "192.168.1.37",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        3 => words,
        2 => "[-+]?[0-9_]{1,6}(\\.[0-9_]{0,3})?([eE][-+]?[0-9]{1,2})?",
        1 => "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,3})?( ?Z| ?[-+][0-9]{1,2}(:[0-9]{2})?)?)?",
        4 => "[ a-z0-9:#?\\[\\]{},&*!|>'\"%@`.~=<-]{0,14}",
        2 => "[ \t\n\ra-z'\"\\\\]{0,12}",
        1 => "([a-z' ]|\u{1b}|\\[|[0-9;?/@~]){0,14}",
        2 => "[a-z é€😀\u{85}\u{a0}\u{2028}\u{2029}\u{feff}\u{0}-\u{1f}\u{7f}]{0,12}",
        2 => "[a-z]{1,12}( [a-z]{1,12}){5,20}",
        1 => "[a-z ]{60,200}",
        1 => "[a-z]{60,200}",
        1 => "[a-z'é :#\n\t\"-]{60,200}",
        1 => "[a-zé ]{40,160}",
        1 => "( ?)[a-z]{1,10}(  ?[a-z\u{e9}]{1,9}){8,25}( ?)",
    ]
    .boxed()
}

/// Finite floats, with the ones whose Python `repr` changes layout well represented.
fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        prop::num::f64::POSITIVE
            | prop::num::f64::NEGATIVE
            | prop::num::f64::NORMAL
            | prop::num::f64::SUBNORMAL
            | prop::num::f64::ZERO,
        prop::sample::select(vec![
            0.1, 1.0, -0.0, 1e15, 1e16, 1.5e16, 1e20, 1e-4, 1e-5, 1.2345e-5, 5e-324, 1e300,
        ]),
        (-1000i32..1000, 0i32..4).prop_map(|(m, e)| f64::from(m) / 10f64.powi(e)),
        // Exact ties between two shortest candidates, which Python breaks to even.
        (1u64 << 47..1u64 << 52, 0u8..4).prop_map(|(i, q)| (i as f64) + f64::from(q) * 0.25),
        any::<u64>().prop_map(f64::from_bits),
    ]
    .boxed()
}

/// JSON scalars.
fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (-20i64..20).prop_map(Value::from),
        2 => float().prop_filter_map("finite", |x| Number::from_f64(x).map(Value::Number)),
        6 => tricky_string().prop_map(Value::String),
    ]
    .boxed()
}

/// Mapping keys: short tricky ones, and some around PyYAML's 128-character simple-key limit.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        8 => tricky_string(),
        1 => "[a-z ]{118,130}",
        1 => "[a-zé:#' ]{100,140}",
    ]
    .boxed()
}

/// Any JSON value, nested a few levels.
fn value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// Realistic Duffy bodies: pool lists and details, sessions with nodes, errors.
fn duffy_body() -> BoxedStrategy<Value> {
    let name = "[a-z0-9-]{1,40}";
    let timestamp = "2026-(0[1-9]|1[0-2])-[0-2][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{6})?(Z|\\+00:00)";
    let pool = (name, 0u32..20, any::<bool>()).prop_map(|(name, fill, dash)| {
        let key = if dash { "fill-level" } else { "fill_level" };
        json!({"name": name, key: fill})
    });
    let levels = (name, prop::collection::vec(0u32..10, 5)).prop_map(|(name, l)| {
        json!({"name": name, "fill_level": l[0] + l[1], "levels": {
            "provisioning": l[0], "ready": l[1], "contextualizing": l[2],
            "deployed": l[3], "deprovisioning": l[4]}})
    });
    let node = (
        name,
        "[a-z0-9.-]{1,30}",
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        1u32..999,
    )
        .prop_map(|(pool, host, ip, id)| {
            json!({"id": id, "hostname": host, "ipaddr": ip, "pool": pool,
                   "state": "deployed", "comment": null, "data": {"provision": {"id": id}}})
        });
    let session = (
        1u32..10_000,
        any::<bool>(),
        timestamp,
        prop::option::of(timestamp),
        prop::collection::vec(node, 0..4),
    )
        .prop_map(|(id, active, created, retired, nodes)| {
            json!({"id": id, "active": active, "created_at": created, "retired_at": retired,
                   "expires_at": created, "tenant": {"id": 1, "name": "tenant", "active": true},
                   "data": {"nodes_specs": [{"quantity": 1, "pool": "p"}]}, "nodes": nodes})
        });
    prop_oneof![
        prop::collection::vec(pool, 0..4).prop_map(|p| json!({"action": "get", "pools": p})),
        levels.prop_map(|p| json!({"action": "get", "pool": p})),
        session
            .clone()
            .prop_map(|s| json!({"action": "get", "session": s})),
        prop::collection::vec(session, 0..3).prop_map(|s| json!({"action": "get", "sessions": s})),
        tricky_string().prop_map(|d| json!({"error": {"detail": d}})),
    ]
    .boxed()
}

/// A session whose nodes' sort keys collide often, for the flat format's node order.
fn sortable_session() -> BoxedStrategy<Value> {
    let part = prop_oneof![Just("a".to_owned()), Just("B".to_owned()), tricky_string()];
    let node = (part.clone(), part.clone(), part)
        .prop_map(|(p, h, i)| json!({"pool": p, "hostname": h, "ipaddr": i}));
    (
        scalar(),
        scalar(),
        scalar(),
        scalar(),
        prop::collection::vec(node, 0..6),
    )
        .prop_map(|(id, active, created, retired, nodes)| {
            json!({"id": id, "active": active, "created_at": created,
                   "retired_at": retired, "nodes": nodes})
        })
        .boxed()
}

/// One case: `value` through json and yaml, `flat` scalars and `session` through flat.
fn check(
    oracle: &RefCell<Oracle>,
    value: &Value,
    flat: &[Value],
    session: &Value,
) -> Result<(), TestCaseError> {
    let question = json!({"value": value, "flat": flat, "session": session});
    let answer = oracle.borrow_mut().ask(&question);
    prop_assert_eq!(
        render(Format::Json, value),
        answer["json"].as_str().unwrap()
    );
    prop_assert_eq!(
        render(Format::Yaml, value),
        answer["yaml"].as_str().unwrap()
    );
    for (scalar, want) in flat.iter().zip(answer["flat"].as_array().unwrap()) {
        let line = render(Format::Flat, &json!({"pool": {"name": scalar}}));
        prop_assert_eq!(line, want.as_str().unwrap(), "flat value of {}", scalar);
    }
    let want = answer["session"].as_str().unwrap();
    prop_assert_eq!(render(Format::Flat, &json!({"session": session})), want);
    Ok(())
}

/// Runs `CASES` cases of `strategy` through [`check`] on one Python process.
async fn differential(strategy: BoxedStrategy<Value>) {
    if crate::harness::skipped() {
        return;
    }
    let venv = crate::harness::venv::cico_venv().await;
    tokio::task::block_in_place(|| {
        let oracle = RefCell::new(Oracle::start(&venv));
        let mut runner = TestRunner::new(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let cases = (
            strategy,
            prop::collection::vec(value(), 0..4),
            sortable_session(),
        );
        let result = runner.run(&cases, |(value, flat, session)| {
            check(&oracle, &value, &flat, &session)
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_yaml_match_python_for_any_json_value() {
    differential(value()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_yaml_match_python_for_top_level_objects() {
    let object = prop::collection::vec((key(), value()), 0..8)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        .boxed();
    differential(object).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_formats_match_python_for_duffy_bodies() {
    differential(duffy_body()).await;
}
