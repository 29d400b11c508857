//! `--format flat`: one line of `key=value` pairs per pool or per session node, for shell
//! scripts (`docs/cli.md` §6).
//!
//! The original picks the first top-level key present among `error`, `pool`, `pools`,
//! `session` and `sessions`, joins its lines with `\n`, and `click.echo`es the text: with
//! a newline, except that `list-pools` and `list-sessions` (the only commands answering
//! `pools` and `sessions`) print nothing at all when there is nothing to show.
//!
//! Where the original crashes, this module prints something instead and says so:
//! * an API error (`AttributeError` in the original) prints `error='<detail>'`; a detail
//!   that is not a string (a 422 list, say) prints as its compact JSON text, quoted the same
//!   way;
//! * a field missing from a pool, session or node (`KeyError`) prints as empty, like null;
//!   a session without `nodes` has no nodes;
//! * nodes whose sort keys mix types (`TypeError` when Python compares `None` with a
//!   string) sort null first, then booleans and numbers, then strings (Python's order
//!   within each), then the rest in their given order;
//! * a body with none of the five keys, or that is not an object (`TypeError: Can't
//!   flatten`), prints nothing.
//!
//! `click.echo` also removes ANSI control sequences (`ESC [ … letter`) from what it
//! prints when stdout is not a terminal, which is how scripts read it. A server's strings
//! reach this format unescaped, so the sequences are removed here too, terminal or not.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// The top-level keys the formatter looks for, in the order it looks for them.
const KINDS: [&str; 5] = ["error", "pool", "pools", "session", "sessions"];

/// The five pool levels of `show-pool`, as `levels_<name>` fields.
const LEVELS: [&str; 5] = [
    "provisioning",
    "ready",
    "contextualizing",
    "deployed",
    "deprovisioning",
];

/// The lines for `body`, trailing newline included where the original prints one.
pub(super) fn render(body: &Value) -> String {
    let Value::Object(body) = body else {
        return String::new();
    };
    let Some((kind, value)) = KINDS
        .iter()
        .find_map(|&kind| body.get(kind).map(|v| (kind, v)))
    else {
        return String::new();
    };
    let lines = match kind {
        "error" => vec![field("error", &Value::String(error_detail(value)))],
        "pool" => vec![pool_line(value)],
        "pools" => items(value).iter().map(pool_line).collect(),
        "session" => session_lines(value),
        _ => items(value).iter().flat_map(session_lines).collect(),
    };
    let text = lines.join("\n");
    let list_command = matches!(kind, "pools" | "sessions");
    if list_command && text.is_empty() {
        text
    } else {
        strip_ansi(&(text + "\n"))
    }
}

/// click 8.5's `strip_ansi`: removes CSI sequences (`ESC [`, parameter bytes `0-?`,
/// intermediate bytes ` -/`, a final byte `@-~`), as `click.echo` does on a pipe.
fn strip_ansi(text: &str) -> String {
    static CSI: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new("\x1b\\[[0-?]*[ -/]*[@-~]").ok());
    match CSI.as_ref() {
        Some(csi) => csi.replace_all(text, "").into_owned(),
        None => text.to_owned(),
    }
}

/// The detail of the error wrapper `{"detail": …}` as text: a string as it is, anything
/// else (or a wrapper without `detail`) as compact JSON.
fn error_detail(error: &Value) -> String {
    let detail = error.get("detail").unwrap_or(error);
    match detail {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The elements of a list; anything else has none.
fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// `object[key]`, with a missing key (or a non-object) read as null.
fn get<'a>(object: &'a Value, key: &str) -> &'a Value {
    object.get(key).unwrap_or(&Value::Null)
}

/// `pool_name='…' fill_level=…`, plus the five `levels_*` when the pool has `levels`.
fn pool_line(pool: &Value) -> String {
    let empty = Map::new();
    let fields = pool.as_object().unwrap_or(&empty);
    let fill_level = fields
        .get("fill-level")
        .or_else(|| fields.get("fill_level"))
        .unwrap_or(&Value::Null);
    let mut parts = vec![
        field("pool_name", get(pool, "name")),
        field("fill_level", fill_level),
    ];
    if let Some(levels) = fields.get("levels") {
        for level in LEVELS {
            parts.push(field(&format!("levels_{level}"), get(levels, level)));
        }
    }
    parts.join(" ")
}

/// One line per node of the session, sorted by (pool, hostname, ipaddr).
fn session_lines(session: &Value) -> Vec<String> {
    let mut nodes: Vec<&Value> = items(get(session, "nodes")).iter().collect();
    // A stable sort, as Python's `sorted`.
    nodes.sort_by(|a, b| {
        ["pool", "hostname", "ipaddr"]
            .iter()
            .map(|key| py_cmp(get(a, key), get(b, key)))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    nodes
        .into_iter()
        .map(|node| {
            [
                field("session_id", get(session, "id")),
                field("active", get(session, "active")),
                field("created_at", get(session, "created_at")),
                field("retired_at", get(session, "retired_at")),
                field("pool", get(node, "pool")),
                field("hostname", get(node, "hostname")),
                field("ipaddr", get(node, "ipaddr")),
            ]
            .join(" ")
        })
        .collect()
}

/// Python's `<` on two sort keys where it is defined (numbers and booleans with each
/// other, strings by code point, which is UTF-8 byte order); a total order elsewhere (see
/// the module documentation).
fn py_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) | Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Array(_) | Value::Object(_) => 3,
        }
    }
    fn numeric(v: &Value) -> f64 {
        match v {
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            _ => f64::NAN,
        }
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(_) | Value::Number(_), Value::Bool(_) | Value::Number(_)) => numeric(a)
            .partial_cmp(&numeric(b))
            .unwrap_or(Ordering::Equal),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `key=value`: null empty, booleans `TRUE`/`FALSE`, numbers bare, anything else Python's
/// `str()` of it, shell-quoted and always in single quotes.
fn field(key: &str, value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Value::Number(n) => super::py_number(n),
        Value::String(s) => shell_quote(s),
        Value::Array(_) | Value::Object(_) => shell_quote(&py_repr(value)),
    };
    format!("{key}={text}")
}

/// `shlex.quote`, then single quotes around what it left bare: so always `'…'`, each
/// embedded `'` written as `'"'"'`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// Python's `repr()` of the value `json.loads` made, which `str()` of a list or dict
/// prints: `['a', 1, None]`, `{'k': True}`.
fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::Number(n) => super::py_number(n),
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `repr()` of a string: single quotes unless the text has `'` and no `"`;
/// backslash escapes for the quote, `\`, `\t`, `\n`, `\r` and non-printable characters.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(ch),
            c if is_printable(c) => out.push(c),
            c => {
                let n = u32::from(c);
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character outside printable ASCII: false for
/// controls, format characters, separators other than the space, surrogates and private
/// use. Python also says false for unassigned code points, which this does not know; it
/// only matters for the `repr()` of a list or dict inside a flat field, which no Duffy
/// server sends.
fn is_printable(c: char) -> bool {
    !matches!(u32::from(c),
        0x00..=0x1f
        | 0x7f..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x890..=0x891
        | 0x8e2
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Unless a test says otherwise, every expected string below is what the original
    // formatter printed: `DuffyFlatFormatter().format(body)` from PyPI's duffy[client] 3.4.0
    // (CPython 3.11.7), followed by `click.echo`'s newline as the command adds it; the
    // `docs/cli.md` §6 examples were also run through the real `duffy client --format flat`
    // against a stub server answering those bodies.

    fn session(id: i64, active: bool, retired_at: Value, nodes: Value) -> Value {
        json!({
            "id": id,
            "active": active,
            "created_at": "2026-11-22T02:36:36Z",
            "retired_at": retired_at,
            "tenant": {"id": 1, "name": "tenant"},
            "nodes": nodes,
        })
    }

    fn node(pool: &str, hostname: &str, ipaddr: &str) -> Value {
        json!({"id": 1, "hostname": hostname, "ipaddr": ipaddr, "pool": pool, "state": "deployed", "data": {}})
    }

    #[test]
    fn list_pools_example() {
        let body = json!({"action": "get", "pools": [
            {"name": "virt-ec2-t2-centos-9s-x86_64", "fill-level": 5},
            {"name": "metal-ec2-c5n-centos-8s-x86_64", "fill-level": 2},
        ]});
        assert_eq!(
            render(&body),
            "pool_name='virt-ec2-t2-centos-9s-x86_64' fill_level=5\n\
             pool_name='metal-ec2-c5n-centos-8s-x86_64' fill_level=2\n"
        );
    }

    #[test]
    fn show_pool_example() {
        let body = json!({"action": "get", "pool": {
            "name": "virtual-test-x86_64",
            "fill_level": 3,
            "levels": {"provisioning": 0, "ready": 3, "contextualizing": 0, "deployed": 2, "deprovisioning": 0},
        }});
        assert_eq!(
            render(&body),
            "pool_name='virtual-test-x86_64' fill_level=3 levels_provisioning=0 levels_ready=3 levels_contextualizing=0 levels_deployed=2 levels_deprovisioning=0\n"
        );
    }

    #[test]
    fn fill_level_spellings() {
        let pools = json!({"pools": [
            {"name": "a", "fill-level": 1, "fill_level": 2},
            {"name": "b", "fill_level": 2},
            {"name": "c"},
            {"name": "d", "fill-level": null, "fill_level": 4},
        ]});
        assert_eq!(
            render(&pools),
            "pool_name='a' fill_level=1\npool_name='b' fill_level=2\npool_name='c' fill_level=\npool_name='d' fill_level=\n"
        );
    }

    #[test]
    fn show_session_and_retire_session_examples() {
        let nodes = json!([node(
            "virtual-fedora35-x86_64-small",
            "node-opennebula-small-27.example.net",
            "192.168.1.37"
        )]);
        let shown =
            json!({"action": "get", "session": session(4, true, Value::Null, nodes.clone())});
        assert_eq!(
            render(&shown),
            "session_id=4 active=TRUE created_at='2026-11-22T02:36:36Z' retired_at= pool='virtual-fedora35-x86_64-small' hostname='node-opennebula-small-27.example.net' ipaddr='192.168.1.37'\n"
        );
        let retired = json!({"action": "put", "session": session(4, false, json!("2026-11-22T02:40:02Z"), nodes)});
        assert_eq!(
            render(&retired),
            "session_id=4 active=FALSE created_at='2026-11-22T02:36:36Z' retired_at='2026-11-22T02:40:02Z' pool='virtual-fedora35-x86_64-small' hostname='node-opennebula-small-27.example.net' ipaddr='192.168.1.37'\n"
        );
    }

    #[test]
    fn nodes_sort_by_pool_hostname_ipaddr() {
        let nodes = json!([
            node("b", "h1", "10.0.0.1"),
            node("a", "h2", "10.0.0.9"),
            node("a", "h2", "10.0.0.10"),
            node("a", "H3", "10.0.0.2"),
        ]);
        let body = json!({"sessions": [session(7, true, Value::Null, nodes), session(8, true, Value::Null, json!([]))]});
        let tail = "active=TRUE created_at='2026-11-22T02:36:36Z' retired_at=";
        assert_eq!(
            render(&body),
            format!(
                "session_id=7 {tail} pool='a' hostname='H3' ipaddr='10.0.0.2'\n\
                 session_id=7 {tail} pool='a' hostname='h2' ipaddr='10.0.0.10'\n\
                 session_id=7 {tail} pool='a' hostname='h2' ipaddr='10.0.0.9'\n\
                 session_id=7 {tail} pool='b' hostname='h1' ipaddr='10.0.0.1'\n"
            )
        );
    }

    #[test]
    fn null_sort_keys() {
        // The original sorts these (`None == None` never reaches `<`) and prints empties.
        let nodes = json!([
            {"pool": "p", "hostname": null, "ipaddr": "1.2.3.5"},
            {"pool": "p", "hostname": null, "ipaddr": "1.2.3.4"},
        ]);
        let body = json!({"session": session(5, true, Value::Null, nodes)});
        let head = "session_id=5 active=TRUE created_at='2026-11-22T02:36:36Z' retired_at= pool='p' hostname=";
        assert_eq!(
            render(&body),
            format!("{head} ipaddr='1.2.3.4'\n{head} ipaddr='1.2.3.5'\n")
        );
        // Ours only: the original raises TypeError comparing None with a string.
        let mixed = json!([
            {"pool": "p", "hostname": "h", "ipaddr": "1"},
            {"pool": "p", "hostname": null, "ipaddr": "2"},
        ]);
        let body = json!({"session": session(5, true, Value::Null, mixed)});
        let lines = render(&body);
        let order: Vec<&str> = lines.lines().map(|l| &l[l.len() - 3..]).collect();
        assert_eq!(order, ["'2'", "'1'"]);
    }

    #[test]
    fn nothing_to_show() {
        // list-pools / list-sessions: nothing, not even a newline.
        assert_eq!(render(&json!({"action": "get", "pools": []})), "");
        assert_eq!(render(&json!({"action": "get", "sessions": []})), "");
        let nodeless = json!({"sessions": [session(1, true, Value::Null, json!([]))]});
        assert_eq!(render(&nodeless), "");
        // show-session of a session without nodes: click.echo("") prints a newline.
        let one = json!({"action": "get", "session": session(1, true, Value::Null, json!([]))});
        assert_eq!(render(&one), "\n");
    }

    #[test]
    fn first_key_wins() {
        let body = json!({"sessions": [], "pool": {"name": "p"}, "error": {"detail": "x"}});
        assert_eq!(render(&body), "error='x'\n");
        let body = json!({"sessions": [], "pool": {"name": "p"}});
        assert_eq!(render(&body), "pool_name='p' fill_level=\n");
    }

    #[test]
    fn errors_print_their_detail() {
        // Ours: the original crashes with AttributeError on every error wrapper.
        let quota = json!({"error": {"detail": "quota exceeded: requested nodes (99) + current allocation (0) = 99 > 10"}});
        assert_eq!(
            render(&quota),
            "error='quota exceeded: requested nodes (99) + current allocation (0) = 99 > 10'\n"
        );
        let quoted = json!({"error": {"detail": "session 42's gone", "extra": 1}});
        assert_eq!(render(&quoted), "error='session 42'\"'\"'s gone'\n");
        let list = json!({"error": {"detail": [{"loc": ["body"], "msg": "bad"}]}});
        assert_eq!(
            render(&list),
            "error='[{\"loc\":[\"body\"],\"msg\":\"bad\"}]'\n"
        );
        assert_eq!(
            render(&json!({"error": {"detail": null}})),
            "error='null'\n"
        );
        assert_eq!(render(&json!({"error": "boom"})), "error='boom'\n");
    }

    #[test]
    fn unflattenable_bodies_print_nothing() {
        // Ours: the original raises TypeError("Can't flatten …").
        assert_eq!(render(&json!({"action": "get"})), "");
        assert_eq!(render(&json!(["pools"])), "");
        assert_eq!(render(&json!("error")), "");
    }

    #[test]
    fn ansi_sequences_are_removed_as_click_does_on_a_pipe() {
        // Printed by the real `duffy client --format flat show-session 5 | od -c` (a pipe).
        let nodes = json!([{"pool": "p\u{1b}[31mred\u{1b}[0m", "hostname": "h\u{1b}]0;title\u{7}x", "ipaddr": "1\u{1b}[?25l2\u{1b}Z"}]);
        let body = json!({"action": "get", "session": session(5, true, Value::Null, nodes)});
        assert_eq!(
            render(&body),
            "session_id=5 active=TRUE created_at='2026-11-22T02:36:36Z' retired_at= pool='pred' hostname='h\u{1b}]0;title\u{7}x' ipaddr='12\u{1b}Z'\n"
        );
        // A sequence may run on past the closing quote: click strips the printed line.
        let pools = json!({"pools": [{"name": "a\u{1b}[", "fill-level": 1}]});
        assert_eq!(render(&pools), "pool_name='aill_level=1\n");
    }

    #[test]
    fn value_rules() {
        let cases = [
            (json!(null), "k="),
            (json!(true), "k=TRUE"),
            (json!(false), "k=FALSE"),
            (json!(0), "k=0"),
            (json!(-3), "k=-3"),
            (json!(1.5), "k=1.5"),
            (json!(1e20), "k=1e+20"),
            (json!(""), "k=''"),
            (json!("abc"), "k='abc'"),
            (json!("a b"), "k='a b'"),
            (json!("ab'cd"), "k='ab'\"'\"'cd'"),
            (json!("'"), "k=''\"'\"''"),
            (json!("$HOME `x` \"q\" \\"), "k='$HOME `x` \"q\" \\'"),
            (json!("a\nb\u{e9}"), "k='a\nb\u{e9}'"),
            (
                json!(["a", 1, null, true, 1.0]),
                "k='['\"'\"'a'\"'\"', 1, None, True, 1.0]'",
            ),
            (
                json!({"k": "it's", "q": "\"'", "t": "\t\u{1}\u{7f}\u{e9}\u{a0}\u{2028}\u{1f600}"}),
                "k='{'\"'\"'k'\"'\"': \"it'\"'\"'s\", '\"'\"'q'\"'\"': '\"'\"'\"\\'\"'\"''\"'\"', '\"'\"'t'\"'\"': '\"'\"'\\t\\x01\\x7f\u{e9}\\xa0\\u2028\u{1f600}'\"'\"'}'",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(field("k", &value), want, "{value}");
        }
    }
}
