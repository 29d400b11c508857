//! `duffy client`: the original 3.4.0 from PyPI against our server ([`live`]), ours compared
//! with it byte for byte on canned answers ([`stub`]), and our client's own failures
//! ([`failures`]). The expectations are `docs/cli.md` §4–§6.

use serde_json::Value;

use crate::harness::cico::Output;

mod failures;
mod live;
mod stub;

/// The output formats, in the order the tests run them.
pub const FORMATS: [&str; 3] = ["json", "yaml", "flat"];

/// Stdout of a `--format yaml` run read back as data; panics if it is not YAML.
pub fn yaml_value(out: &Output) -> Value {
    yaml_serde::from_str(&out.stdout).unwrap_or_else(|e| panic!("not YAML ({e}): {out}"))
}

/// A value as the flat format writes it (`docs/cli.md` §6): null empty, booleans `TRUE`/`FALSE`,
/// numbers bare, anything else shell-quoted and always in single quotes.
pub fn flat_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "TRUE".to_owned(),
        Value::Bool(false) => "FALSE".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => shell_quoted(s),
        other => shell_quoted(&other.to_string()),
    }
}

/// `shlex.quote(s)`, wrapped in single quotes when it was not already.
pub fn shell_quoted(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        format!("'{s}'")
    } else {
        format!("'{}'", s.replace('\'', r#"'"'"'"#))
    }
}

/// The lines the flat format prints for a v3 answer holding `pool`, `pools`, `session` or
/// `sessions` (nodes sorted by pool, hostname and ipaddr, as the original sorts them).
pub fn flat_lines(body: &Value) -> Vec<String> {
    let pool_line = |pool: &Value| {
        let mut fields = vec![
            ("pool_name".to_owned(), pool["name"].clone()),
            ("fill_level".to_owned(), pool["fill-level"].clone()),
        ];
        if let Some(levels) = pool.get("levels") {
            for state in [
                "provisioning",
                "ready",
                "contextualizing",
                "deployed",
                "deprovisioning",
            ] {
                fields.push((format!("levels_{state}"), levels[state].clone()));
            }
        }
        join(&fields)
    };
    let session_lines = |session: &Value| {
        let mut nodes = session["nodes"].as_array().expect("nodes").clone();
        nodes.sort_by_key(|n| {
            ["pool", "hostname", "ipaddr"].map(|k| n[k].as_str().unwrap_or_default().to_owned())
        });
        nodes
            .iter()
            .map(|node| {
                let fields = [
                    ("session_id", &session["id"]),
                    ("active", &session["active"]),
                    ("created_at", &session["created_at"]),
                    ("retired_at", &session["retired_at"]),
                    ("pool", &node["pool"]),
                    ("hostname", &node["hostname"]),
                    ("ipaddr", &node["ipaddr"]),
                ];
                join(fields.map(|(k, v)| (k.to_owned(), v.clone())).as_slice())
            })
            .collect::<Vec<_>>()
    };
    if let Some(pool) = body.get("pool") {
        vec![pool_line(pool)]
    } else if let Some(pools) = body.get("pools") {
        pools
            .as_array()
            .expect("pools")
            .iter()
            .map(pool_line)
            .collect()
    } else if let Some(session) = body.get("session") {
        session_lines(session)
    } else {
        let sessions = body["sessions"].as_array().expect("sessions");
        sessions.iter().flat_map(session_lines).collect()
    }
}

/// `key=value` pairs joined by single spaces.
fn join(fields: &[(String, Value)]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", flat_value(v)))
        .collect();
    pairs.join(" ")
}

/// Whether stderr reads as a one-line error message rather than a dump.
pub fn one_line_error(out: &Output) -> bool {
    let stderr = out.stderr.trim_end_matches('\n');
    !stderr.is_empty()
        && !stderr.contains('\n')
        && !["Traceback", "panicked", "backtrace", "Backtrace"]
            .iter()
            .any(|s| stderr.contains(s))
}
