//! Reading what a playbook run reported: the JSON lines our callback plugin writes
//! (`callback.py`), one per task result.

use serde::Deserialize;
use serde_json::Value;

/// One task result as the callback plugin records it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TaskEvent {
    /// `ok`, `failed`, `unreachable` or `skipped`.
    pub event: String,
    /// The inventory host the task ran for.
    #[serde(default)]
    pub host: String,
    /// The task's name (empty when the playbook gives none).
    #[serde(default)]
    pub task: String,
    /// The module or action, e.g. `set_fact`.
    #[serde(default)]
    pub action: String,
    /// Whether a failure was ignored (`ignore_errors`).
    #[serde(default)]
    pub ignore_errors: bool,
    /// The result's `msg`, if any.
    #[serde(default)]
    pub msg: Option<String>,
    /// `ansible_facts.duffy_out` of a successful `set_fact` that sets it.
    #[serde(default)]
    pub duffy_out: Option<Value>,
}

impl TaskEvent {
    /// How the task reads in a log line: its name, else its action.
    fn label(&self) -> &str {
        if self.task.is_empty() {
            &self.action
        } else {
            &self.task
        }
    }
}

/// Parses the callback's JSON lines; lines that do not parse (a run killed mid-write) are
/// skipped.
pub fn parse_events(text: &str) -> Vec<TaskEvent> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// `duffy_out` of the last successful `set_fact` that set it, as the original reads it.
pub fn duffy_out(events: &[TaskEvent]) -> Option<&Value> {
    events
        .iter()
        .rev()
        .find(|e| e.event == "ok" && e.duffy_out.is_some())
        .and_then(|e| e.duffy_out.as_ref())
}

/// The failures that were not ignored, one phrase each, for the warning of a failed run.
pub fn failures(events: &[TaskEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| (e.event == "failed" && !e.ignore_errors) || e.event == "unreachable")
        .map(|e| {
            let what = if e.event == "unreachable" {
                "unreachable in"
            } else {
                "failed:"
            };
            match &e.msg {
                Some(msg) => format!("[{}] {what} {}: {}", e.host, e.label(), one_line(msg)),
                None => format!("[{}] {what} {}", e.host, e.label()),
            }
        })
        .collect()
}

/// The node entries of a `duffy_out`: its `nodes` list (the original's contract), or the
/// value itself when a playbook sets a bare list.
pub fn node_entries(duffy_out: &Value) -> Option<Vec<Value>> {
    match duffy_out {
        Value::Object(map) => map.get("nodes").and_then(Value::as_array).cloned(),
        Value::Array(list) => Some(list.clone()),
        _ => None,
    }
}

/// A message squeezed onto one line and cut to a readable length.
pub fn one_line(text: &str) -> String {
    const MAX: usize = 300;
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// The last `lines` non-empty lines of a program's output, for a failure without events.
pub fn tail(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    kept[start..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EVENTS: &str = r#"{"event": "ok", "host": "localhost", "task": "first", "action": "set_fact", "ignore_errors": false, "duffy_out": {"nodes": [{"ipaddr": "10.0.0.1"}]}}
{"event": "failed", "host": "localhost", "task": "tolerated", "action": "command", "ignore_errors": true, "msg": "meh"}
{"event": "ok", "host": "localhost", "task": "", "action": "set_fact", "ignore_errors": false, "duffy_out": {"nodes": [{"ipaddr": "10.0.0.2"}]}}
{"event": "ok", "host": "localhost", "task": "other fact", "action": "set_fact", "ignore_errors": false}
{"event": "failed", "host": "localhost", "task": "boom", "action": "fail", "ignore_errors": false, "msg": "it\nbroke"}
{"event": "ok", "host": "loc"#;

    #[test]
    fn the_last_duffy_out_wins_and_broken_lines_are_skipped() {
        let events = parse_events(EVENTS);
        assert_eq!(events.len(), 5);
        assert_eq!(
            duffy_out(&events),
            Some(&json!({"nodes": [{"ipaddr": "10.0.0.2"}]}))
        );
        assert_eq!(
            failures(&events),
            vec!["[localhost] failed: boom: it broke".to_owned()]
        );
    }

    #[test]
    fn node_entries_come_from_nodes_or_a_bare_list() {
        let entry = json!({"ipaddr": "10.0.0.1"});
        assert_eq!(
            node_entries(&json!({"nodes": [entry.clone()]})),
            Some(vec![entry.clone()])
        );
        assert_eq!(node_entries(&json!([entry.clone()])), Some(vec![entry]));
        assert_eq!(node_entries(&json!({"other": []})), None);
        assert_eq!(node_entries(&json!("x")), None);
    }

    #[test]
    fn messages_are_squeezed_and_cut() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        let long = "x".repeat(400);
        assert_eq!(one_line(&long).chars().count(), 301);
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
    }
}
