//! Web-server access logs (common or combined format) as recorded v2 traffic.
//!
//! Only `GET /Node/get`, `/Node/done`, `/Node/fail` and `/Inventory` are replayed. A log
//! records no body, so an answer is compatible when its status is the logged one and its
//! body is one of the answers v2 clients parse for that endpoint ([`check_answer`]).
//!
//! Sessions differ between the recording and the replay: [`SsidMap`] pairs the logged
//! ssids of `/Node/done` and `/Node/fail` with the ones our server handed out.

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::matcher::{Bindings, Pattern, clip, compare, show};
use crate::protocol::v2::{ALLOCATION_FAILED, Endpoint, INSUFFICIENT};

/// The longest log line read.
pub const MAX_LINE: usize = 64 * 1024;

/// `host ident user [date] "request" status size …` (anything after the size is ignored).
static LINE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"^\S+ \S+ \S+ \[[^\]]*\] "((?:[^"\\]|\\.)*)" (\d{3}) \S+(?:\s|$)"#).ok()
});

/// An access-log line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessLogError {
    /// Not in common or combined log format.
    #[error("unreadable access-log line: not in common/combined log format: {0}")]
    Malformed(String),
    /// Longer than [`MAX_LINE`].
    #[error("unreadable access-log line: longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Whether requests to `endpoint` are replayed: the calls of CI jobs, not the admin paths.
pub fn replayed(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::NodeGet | Endpoint::NodeDone | Endpoint::NodeFail | Endpoint::Inventory
    )
}

/// A logged request to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The query as logged (without `?`), possibly empty.
    pub query: String,
    /// The logged status.
    pub status: u16,
}

/// What one log line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// A blank line.
    Nothing,
    /// A request that is not replayed (another path or method, or no request line).
    Skipped,
    /// A request to replay.
    Request(LogRequest),
}

/// Reads one access-log line.
pub fn parse_line(line: &str) -> Result<LogLine, AccessLogError> {
    if line.len() > MAX_LINE {
        return Err(AccessLogError::TooLong);
    }
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(LogLine::Nothing);
    }
    let caps = LINE
        .as_ref()
        .and_then(|re| re.captures(line))
        .ok_or_else(|| AccessLogError::Malformed(clip(line)))?;
    let (request, status) = (&caps[1], &caps[2]);
    let status = status
        .parse::<u16>()
        .map_err(|_| AccessLogError::Malformed(clip(line)))?;
    let mut words = request.split(' ').filter(|w| !w.is_empty());
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        // `"-"` and other non-requests (bad requests logged by the server).
        return Ok(LogLine::Skipped);
    };
    if method != "GET" {
        return Ok(LogLine::Skipped);
    }
    // An absolute-form target (`GET http://host/Node/get?… HTTP/1.1`) is the same request.
    let target = ["http://", "https://"]
        .iter()
        .find_map(|scheme| target.strip_prefix(scheme))
        .map_or(target, |rest| rest.find('/').map_or("/", |i| &rest[i..]));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(match Endpoint::from_path(path).filter(|e| replayed(*e)) {
        Some(endpoint) => LogLine::Request(LogRequest {
            endpoint,
            query: query.to_owned(),
            status,
        }),
        None => LogLine::Skipped,
    })
}

/// Checks that a body is one of the answers v2 clients parse for the endpoint; `keyed` says
/// whether the request carried a non-empty key (`/Inventory` answers differ). The error is a
/// readable difference.
pub fn check_answer(endpoint: Endpoint, keyed: bool, body: &[u8]) -> Result<(), String> {
    if !replayed(endpoint) {
        return Err(not_replayed(endpoint));
    }
    let text = String::from_utf8_lossy(body);
    if endpoint == Endpoint::NodeGet && text.trim_end() == INSUFFICIENT {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(format!(
            "body: expected {}, got text {}",
            expected_answers(endpoint, keyed),
            show(&Value::String(text.into_owned()))
        ));
    };
    if is_msg(&value) {
        return Ok(());
    }
    let shape = match endpoint {
        Endpoint::NodeGet => {
            if value
                .as_str()
                .is_some_and(|s| s.starts_with(ALLOCATION_FAILED))
            {
                return Ok(());
            }
            if !value.is_object() {
                return Err(format!(
                    "body: expected {}, got {}",
                    expected_answers(endpoint, keyed),
                    show(&value)
                ));
            }
            json!({"hosts": {"$each": "{{_:string}}"}, "ssid": "{{_:string}}"})
        }
        Endpoint::NodeDone | Endpoint::NodeFail => {
            if value == json!("Done") {
                return Ok(());
            }
            return Err(format!(
                "body: expected {}, got {}",
                expected_answers(endpoint, keyed),
                show(&value)
            ));
        }
        Endpoint::Inventory if keyed => json!({"$each": ["{{_:string}}", "{{_:string}}"]}),
        Endpoint::Inventory => {
            let mut row = vec![json!("{{_}}"); 14];
            row[1] = json!("{{_:string}}");
            row[6] = json!({"$anyof": [null, "{{_:string}}"]});
            json!({ "$each": row })
        }
        _ => return Err(not_replayed(endpoint)),
    };
    let pattern = Pattern::parse(&shape).map_err(|e| format!("internal pattern: {e}"))?;
    let diffs = compare(&pattern, &value, &mut Bindings::default());
    if diffs.is_empty() {
        Ok(())
    } else {
        let shown: Vec<String> = diffs.iter().take(3).map(|d| d.to_string()).collect();
        Err(format!(
            "not a v2 {} answer: {}",
            endpoint.path(),
            shown.join("; ")
        ))
    }
}

/// `{"msg": "…"}`: v2's refusals (`Invalid duffy key`, `Invalid session ID`, …).
fn is_msg(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get("msg").is_some_and(Value::is_string))
}

fn expected_answers(endpoint: Endpoint, keyed: bool) -> &'static str {
    match endpoint {
        Endpoint::NodeGet => {
            "a v2 /Node/get answer ({\"hosts\": […], \"ssid\": \"…\"}, text \"Insufficient Nodes in READY State\", \"Failed to allocate nodes…\" or {\"msg\": …})"
        }
        Endpoint::NodeDone | Endpoint::NodeFail => "\"Done\" or {\"msg\": …}",
        Endpoint::Inventory if keyed => "a keyed v2 inventory ([[hostname, \"ssid\"], …])",
        Endpoint::Inventory => "a v2 inventory (14-column rows)",
        _ => "no answer: the path is not replayed",
    }
}

fn not_replayed(endpoint: Endpoint) -> String {
    format!("{}: the path is not replayed", endpoint.path())
}

/// Pairs logged ssids with the ones the replayed server handed out.
///
/// Every ssid a replayed `/Node/get` obtains is queued under the key the log line carried.
/// When a `/Node/done` or `/Node/fail` line names an ssid not seen before, it is mapped to
/// the oldest queued ssid of the same logged key, which leaves the queue; later lines with
/// that logged ssid get the same mapping.
#[derive(Debug, Default)]
pub struct SsidMap {
    obtained: HashMap<String, VecDeque<String>>,
    mapped: HashMap<String, String>,
}

impl SsidMap {
    /// Records an ssid obtained by a replayed `/Node/get` with the logged `key`.
    pub fn obtained(&mut self, key: &str, ssid: String) {
        self.obtained
            .entry(key.to_owned())
            .or_default()
            .push_back(ssid);
    }

    /// The ssid already standing for `logged`, if any.
    pub fn get(&self, logged: &str) -> Option<&str> {
        self.mapped.get(logged).map(String::as_str)
    }

    /// The ssid standing for `logged`, mapping it now if it is new; `None` when the key has
    /// no unmapped session left.
    pub fn resolve(&mut self, key: &str, logged: &str) -> Option<String> {
        if let Some(ssid) = self.mapped.get(logged) {
            return Some(ssid.clone());
        }
        let ssid = self.obtained.get_mut(key)?.pop_front()?;
        self.mapped.insert(logged.to_owned(), ssid.clone());
        Some(ssid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_combined_lines() {
        let line = r#"10.0.0.1 - - [12/Mar/2019:10:01:02 +0000] "GET /Node/get?key=abc&ver=7&count=2 HTTP/1.1" 200 57 "-" "python-cicoclient-wrapper""#;
        assert_eq!(
            parse_line(line).unwrap(),
            LogLine::Request(LogRequest {
                endpoint: Endpoint::NodeGet,
                query: "key=abc&ver=7&count=2".into(),
                status: 200
            })
        );
        let line = "h - u [d] \"GET /Inventory HTTP/1.0\" 403 -";
        assert_eq!(
            parse_line(line).unwrap(),
            LogLine::Request(LogRequest {
                endpoint: Endpoint::Inventory,
                query: String::new(),
                status: 403
            })
        );
        let line =
            r#"h - - [d] "GET http://duffy.ci/Node/done?key=k&ssid=578e1a0b HTTP/1.1" 200 6"#;
        assert!(matches!(
            parse_line(line).unwrap(),
            LogLine::Request(LogRequest {
                endpoint: Endpoint::NodeDone,
                ..
            })
        ));
    }

    #[test]
    fn other_requests_are_skipped() {
        for line in [
            r#"h - - [d] "POST /Node/get?key=k HTTP/1.1" 405 31"#,
            r#"h - - [d] "GET /Help HTTP/1.1" 200 10"#,
            r#"h - - [d] "GET /Node/get/ HTTP/1.1" 404 10"#,
            r#"h - - [d] "-" 400 0"#,
            r#"h - - [d] "GET" 400 0"#,
        ] {
            assert_eq!(parse_line(line).unwrap(), LogLine::Skipped, "{line}");
        }
        assert_eq!(parse_line("  \r\n").unwrap(), LogLine::Nothing);
    }

    #[test]
    fn admin_paths_are_neither_replayed_nor_judged() {
        for endpoint in Endpoint::ALL.into_iter().filter(|e| !replayed(*e)) {
            let line = format!(
                r#"h - - [d] "GET {}?key=k HTTP/1.1" 200 6"#,
                endpoint.path()
            );
            assert_eq!(parse_line(&line).unwrap(), LogLine::Skipped, "{line}");
            let judged = check_answer(endpoint, true, br#"{"msg":"x"}"#).unwrap_err();
            assert!(judged.ends_with("the path is not replayed"), "{judged}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            "GET /Node/get?key=k",
            r#"h - - [d] "GET /Node/get HTTP/1.1" 2000 5"#,
            r#"h - - [d] "GET /Node/get HTTP/1.1 200 5"#,
            r#"h - - d "GET /Node/get HTTP/1.1" 200 5"#,
            "{\"request\": {}}",
        ] {
            assert!(
                matches!(parse_line(line), Err(AccessLogError::Malformed(_))),
                "{line}"
            );
        }
        let long = format!(
            r#"h - - [d] "GET /Inventory?{} HTTP/1.1" 200 5"#,
            "a".repeat(MAX_LINE)
        );
        assert_eq!(parse_line(&long), Err(AccessLogError::TooLong));
    }

    #[test]
    fn node_get_answers() {
        let ok = |body: &str| check_answer(Endpoint::NodeGet, true, body.as_bytes());
        assert_eq!(ok(r#"{"hosts":["a","b"],"ssid":"42"}"#), Ok(()));
        assert_eq!(ok("Insufficient Nodes in READY State"), Ok(()));
        assert_eq!(
            ok(r#""Failed to allocate nodes: quota exceeded: …""#),
            Ok(())
        );
        assert_eq!(ok(r#"{"msg":"Invalid duffy key"}"#), Ok(()));
        assert_eq!(
            ok(r#"{"hosts":["a"],"ssid":42}"#).unwrap_err(),
            "not a v2 /Node/get answer: $.ssid: expected a string, got 42"
        );
        assert!(
            ok("Internal Server Error")
                .unwrap_err()
                .starts_with("body: expected a v2 /Node/get answer (",)
        );
        assert!(ok("\"Done\"").unwrap_err().ends_with("got \"Done\""));
    }

    #[test]
    fn done_and_inventory_answers() {
        assert_eq!(check_answer(Endpoint::NodeDone, true, b"\"Done\""), Ok(()));
        assert_eq!(
            check_answer(Endpoint::NodeFail, true, br#"{"msg":"Invalid session ID"}"#),
            Ok(())
        );
        assert_eq!(
            check_answer(Endpoint::NodeDone, true, b"\"Failed to return nodes on completion\""),
            Err("body: expected \"Done\" or {\"msg\": …}, got \"Failed to return nodes on completion\"".into())
        );
        assert_eq!(
            check_answer(Endpoint::Inventory, true, br#"[["n1.test","7"]]"#),
            Ok(())
        );
        assert_eq!(
            check_answer(Endpoint::Inventory, true, br#"[["n1.test",7]]"#).unwrap_err(),
            "not a v2 /Inventory answer: $[0][1]: expected a string, got 7"
        );
        let row =
            r#"[1,"n1.test","127.1.0.1",null,1,"Deployed","7",null,null,null,null,"p",null,null]"#;
        assert_eq!(
            check_answer(Endpoint::Inventory, false, format!("[{row}]").as_bytes()),
            Ok(())
        );
        assert_eq!(check_answer(Endpoint::Inventory, false, b"[]"), Ok(()));
        assert_eq!(
            check_answer(Endpoint::Inventory, false, br#"[[1,"n1.test"]]"#).unwrap_err(),
            r#"not a v2 /Inventory answer: $[0]: expected 14 elements, got 2: [1,"n1.test"]"#
        );
    }

    #[test]
    fn ssids_map_to_the_oldest_unmapped_session_of_the_same_key() {
        let mut map = SsidMap::default();
        map.obtained("k1", "10".into());
        map.obtained("k2", "11".into());
        map.obtained("k1", "12".into());
        assert_eq!(map.get("578e1a0b"), None);
        assert_eq!(map.resolve("k1", "578e1a0b").as_deref(), Some("10"));
        assert_eq!(map.resolve("k1", "c0ffee00").as_deref(), Some("12"));
        // Seen before: the same mapping, whatever the key now.
        assert_eq!(map.resolve("k2", "578e1a0b").as_deref(), Some("10"));
        assert_eq!(map.get("c0ffee00"), Some("12"));
        assert_eq!(map.resolve("k1", "deadbeef"), None, "k1 has nothing left");
        assert_eq!(map.resolve("k2", "deadbeef").as_deref(), Some("11"));
        assert_eq!(map.resolve("k3", "other"), None);
    }
}
